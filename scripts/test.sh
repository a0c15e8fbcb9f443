#!/usr/bin/env bash
# The whole test suite: formatting, lints, docs (no broken links), then every test of the
# workspace (unit, integration, doc tests; examples are built) against real services (clamd,
# c-icap, moto for S3 and SQS, Redis, a headless browser), installed and started on loopback by
# scripts/services.sh and stopped again when this script exits, then a schema fuzz of both APIs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
. scripts/lib.sh

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
log "cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
log "starting test services"
trap 'scripts/services.sh stop' EXIT
scripts/services.sh start
. "${VERDICT_SERVICES_DIR:-target/test-services}/env"

log "cargo test"
# A service test whose variable is missing fails here instead of skipping with a line, as it
# does under a plain `cargo test`: nothing passes as a skip in this command.
VERDICT_TEST_REQUIRE_SERVICES=1 cargo test --locked

# cargo test built both servers' binaries for its integration tests; fuzz their schemas.
log "schema fuzzing both APIs"
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
scripts/schema_fuzz.sh "$TARGET_DIR/debug"
