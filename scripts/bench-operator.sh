#!/usr/bin/env bash
# Measures the operator on the simulated cluster with real OpenBao pods and prints a
# table: apply → Ready and scale 3 → 5, each next to its floor measured in the same run
# (the same bao binary formed into a raft cluster by hand over HTTP, no Kubernetes), pod
# restart → unsealed, API requests per no-op pass, and the RSS of the real
# `vaultkeeper run` process with 100 VaultClusters. See docs/operations.md for what each
# number means and the last measured values.
#
#   scripts/bench-operator.sh            # release build of the operator (the honest RSS)
#   PROFILE=debug scripts/bench-operator.sh
#   BENCH_ONLY=rss scripts/bench-operator.sh   # the memory measurement alone (~1 min)
#   BENCH_ONLY=restart scripts/bench-operator.sh   # apply, then five pod restarts
#
# Needs bao from scripts/install-tools.sh, kubectl and curl.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
profile="${PROFILE:-release}"
flag=()
if [ "$profile" = release ]; then flag=(--release); fi
target="${CARGO_TARGET_DIR:-$root/target}"

if [ ! -x "${VAULTKEEPER_BAO:-$root/.tools/bin/bao}" ]; then
  echo "missing .tools/bin/bao: run scripts/install-tools.sh" >&2
  exit 1
fi
command -v kubectl >/dev/null || [ -x "$root/.tools/bin/kubectl" ] ||
  { echo "kubectl is needed (kustomize of deploy/)" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is needed to poll sys/health" >&2; exit 1; }

cargo build --quiet "${flag[@]}" -p vaultkeeper --bin vaultkeeper
cargo build --quiet "${flag[@]}" -p vaultkeeper-e2e --example bench_operator
echo "operator binary: $target/$profile/vaultkeeper ($profile build); $(nproc) CPUs"
VAULTKEEPER_BIN="$target/$profile/vaultkeeper" "$target/$profile/examples/bench_operator"
