#!/usr/bin/env bash
# A bounded schema-fuzzer run (schemathesis) against both servers' /openapi.json: any 5xx, any
# answer that does not match the document, or a schema the fuzzer cannot use fails the run.
#
# Usage: scripts/schema_fuzz.sh BIN_DIR   (where verdict-sync and verdict-async were built)
#
# The servers and the fuzzer run in a network namespace of their own (unshare -n) with only
# loopback up, so URLs the fuzzer invents for download_url or callback_url reach nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

BIN_DIR=$(realpath "${1:?usage: scripts/schema_fuzz.sh BIN_DIR}")
ST_VENV="${VERDICT_SCHEMATHESIS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/verdict/schemathesis-4.32.5}"
EXAMPLES=${VERDICT_FUZZ_EXAMPLES:-25}

if [ ! -x "$ST_VENV/bin/schemathesis" ]; then
    log "installing schemathesis into $ST_VENV"
    python3 -m venv "$ST_VENV" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$ST_VENV"; }
    "$ST_VENV/bin/pip" install -q "schemathesis==4.32.5"
fi

if [ "$(id -u)" -ne 0 ]; then
    exec sudo -E "$0" "$@"
fi

if [ "${VERDICT_IN_NETNS:-}" != 1 ]; then
    exec env VERDICT_IN_NETNS=1 unshare -n "$0" "$@"
fi
ip link set lo up

WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
mkdir -p "$WORK/data/bucket" "$WORK/spool"

cat > "$WORK/sync.toml" <<EOF
listen = "127.0.0.1:18080"
users_file = "$WORK/users"
[token]
secret = "schema-fuzz-signing-key-0123456789"
[spool]
temp_dir = "$WORK/spool"
[storage]
type = "local"
root = "$WORK/data"
EOF
cat > "$WORK/async.toml" <<EOF
listen = "127.0.0.1:18090"
api_keys = "schema-fuzz-key"
[queue]
type = "embedded"
path = "$WORK/queue.redb"
[callback]
secret = "schema-fuzz-callback-secret"
retry_for_secs = 1
[download]
attempts = 1
[spool]
temp_dir = "$WORK/spool"
[storage]
type = "local"
root = "$WORK/data"
EOF

printf 'fuzz password long enough\n' | "$BIN_DIR/verdict-sync" --config "$WORK/sync.toml" user add fuzzer >/dev/null 2>&1
RUST_LOG=warn "$BIN_DIR/verdict-sync" --config "$WORK/sync.toml" > "$WORK/sync.log" 2>&1 &
RUST_LOG=warn "$BIN_DIR/verdict-async" --config "$WORK/async.toml" > "$WORK/async.log" 2>&1 &

for port in 18080 18090; do
    for _ in $(seq 100); do
        python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/health', timeout=1)" 2>/dev/null && break
        sleep 0.1
    done
done

TOKEN=$(python3 - <<'PY'
import json, urllib.request
body = json.dumps({"username": "fuzzer", "password": "fuzz password long enough"}).encode()
request = urllib.request.Request("http://127.0.0.1:18080/api/Token", body, {"Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(request))["accessToken"])
PY
)

CHECKS=${VERDICT_FUZZ_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance}
# One worker (--workers 1): with two, Hypothesis parses lambdas' source on two threads at once, and this
# machine's CPython 3.11 then fails now and then inside the parser itself ("AST constructor
# recursion depth mismatch"), an error of the tool that would fail the run with every case passed.
fuzz() {
    local name=$1 base=$2 auth=$3
    log "schemathesis: $name ($EXAMPLES examples per operation)"
    "$ST_VENV/bin/schemathesis" run "$base/openapi.json" \
        --checks "$CHECKS" \
        --max-examples "$EXAMPLES" \
        --phases examples,coverage,fuzzing \
        --header "Authorization: Bearer $auth" \
        --seed 1 \
        --workers 1 \
        --request-timeout 20 \
        --generation-database none \
        --warnings off \
        --no-color \
        || { echo "--- $name log:"; tail -50 "$WORK/$name.log"; return 1; }
}
# schemathesis keeps a cache in the folder it runs in: the scratch folder, not the checkout.
cd "$WORK"
status=0
fuzz sync http://127.0.0.1:18080 "$TOKEN" || status=1
fuzz async http://127.0.0.1:18090 schema-fuzz-key || status=1
exit $status
