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
if [ "$#" -gt 0 ]; then
    # Arguments for the test harness: one plain cargo run, one binary at a time.
    cargo test --workspace --locked --no-fail-fast "$@"
    exit
fi
# Build every test binary, then run them side by side (scripts/run-tests.py says how and
# why), then the documentation tests.
cargo test --workspace --locked --no-run
python3 scripts/run-tests.py
cargo test --workspace --locked --doc
