#!/usr/bin/env bash
# The main job on its embedded default: `vaultkeeper sandbox`. A simulated Kubernetes
# cluster whose pods are real OpenBao processes, the CRD and the operator installed as
# deploy/ installs them, examples/openbao.yaml applied, progress until it is Ready, then
# the kubectl commands to try. Runs until Ctrl-C. Needs root (pods run in mount
# namespaces). Extra arguments go to the sandbox, e.g. `--example ha-raft`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

./scripts/install-tools.sh >/dev/null
cargo build --release --locked -p vaultkeeper --features sandbox
exec ./target/release/vaultkeeper sandbox --bao .tools/bin/bao "$@"
