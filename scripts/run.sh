#!/usr/bin/env bash
# The main job on its embedded default: renders everything vaultkeeper would apply for
# examples/ha-raft.yaml (a three-node HA raft cluster), like `helm template`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

./scripts/install-tools.sh >/dev/null
cargo build --release --locked -p vaultkeeper
exec ./target/release/vaultkeeper render -f "${1:-examples/ha-raft.yaml}"
