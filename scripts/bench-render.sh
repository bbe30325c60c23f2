#!/usr/bin/env bash
# Render time of every example (release build, in process): objects, YAML size, mean,
# p50 and p99 per render, and the cost of issuing a cluster's PKI.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo run --release --locked -q -p vaultkeeper-render --example render_time -- "${1:-2000}"
