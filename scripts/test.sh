#!/usr/bin/env bash
# The whole test suite: formatting, lints, then every test of the workspace (unit, integration,
# doc tests; examples are built). Installs what the build needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
. scripts/lib.sh

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
log "cargo test"
cargo test --locked
