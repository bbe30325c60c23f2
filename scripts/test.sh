#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs the real OpenBao and S3 servers the
# tests run against (into .tools/), then formatting, lints and every test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

./scripts/install-tools.sh

# Golden files are compared, never rewritten, when the suite runs here.
export CI="${CI:-true}"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The operator's image is built without the sandbox and test-only features: lint that build too.
cargo clippy -p vaultkeeper --locked -- -D warnings
cargo test --workspace --locked --no-fail-fast "$@"
