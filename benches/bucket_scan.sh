#!/usr/bin/env bash
# Bucket scans against the S3 server's own ceiling, in one run, on release builds: OBJECTS small
# objects (1% EICAR) under one prefix in moto, then
#   list+get            examples/s3_bench: list every page, read every object, nothing scanned
#                       (at the concurrency of one instance, and of two)
#   list+get+tag        the same plus what the tag action costs (HEAD, tag read, tag write)
#   cli                 verdict scan --jobs N s3://bucket/prefix/
#   async x1, x2        a bulk scan (POST /api/v1/scan/async/s3/bulk) on one and on two
#                       verdict-async instances sharing a Redis, actions "none", timed from the
#                       POST to finished = true
#   async x1 tag        one instance with the default action (tag), against list+get+tag
# Prints objects/s and each as a ratio of its ceiling. The bench starts its own moto and Redis
# (from what scripts/services.sh installs), so the test services are left alone.
#
#   benches/bucket_scan.sh        [OBJECTS=10000 WORKERS=16]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
OBJECTS=${OBJECTS:-10000}
WORKERS=${WORKERS:-16}
MOTO_VENV="${VERDICT_MOTO_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/verdict/moto-5.2.5-s3-sqs}"
[ -x "$MOTO_VENV/bin/moto_server" ] || { echo "moto is not installed: run scripts/services.sh start once" >&2; exit 2; }
command -v redis-server >/dev/null || { echo "redis-server is not installed: run scripts/services.sh start once" >&2; exit 2; }

build_release
target="${CARGO_TARGET_DIR:-target}/release"
examples="$target/examples"

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
port_of() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done; echo "$1 did not answer" >&2; exit 1; }

s3_port=$(port_of)
redis_port=$(port_of)
"$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$s3_port" > "$work/moto.log" 2>&1 &
pids+=($!)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no > "$work/redis.log" 2>&1 &
pids+=($!)
endpoint="http://127.0.0.1:$s3_port"
wait_http "$endpoint/"
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true

bucket="bench"
log "putting $OBJECTS objects into moto"
"$examples/s3_bench" fill "$endpoint" "$bucket" "p/" "$OBJECTS"

rate_of() { sed -n 's/.*objects_per_s=\([0-9.]*\).*/\1/p'; }
log "moto's own list+get rate"
base1=$("$examples/s3_bench" list-get "$endpoint" "$bucket" p/ "$WORKERS" | rate_of)
base2=$("$examples/s3_bench" list-get "$endpoint" "$bucket" p/ "$((WORKERS * 2))" | rate_of)

log "verdict scan --jobs $WORKERS"
start=$(date +%s.%N)
set +e
"$target/verdict" scan --no-progress --quiet --jobs "$WORKERS" --s3-endpoint "$endpoint" "s3://$bucket/p/" > "$work/cli.out"
code=$?
set -e
end=$(date +%s.%N)
[ "$code" = 1 ] || { echo "verdict scan exited $code (1 expected: EICAR among them)" >&2; tail "$work/cli.out" >&2; exit 1; }
grep -q "Scanned files: $OBJECTS" "$work/cli.out" || { tail "$work/cli.out" >&2; exit 1; }
cli=$(python3 -c "print(f'{$OBJECTS / ($end - $start):.1f}')")

# One bulk scan on INSTANCES verdict-async processes sharing Redis under namespace NS, with the
# given [actions] lines; writes objects/s from the POST to finished into $work/rate-NS (run in
# this shell, not in $(...), so the servers are in `pids` and do not hold a pipe open).
bulk_rate() {
    local instances=$1 ns=$2 actions=$3 bases=()
    for i in $(seq 1 "$instances"); do
        local port
        port=$(port_of)
        cat > "$work/async-$ns-$i.toml" <<EOF
listen = "127.0.0.1:$port"
api_keys = "bench-key"
workers = $WORKERS
[queue]
type = "redis"
url = "redis://127.0.0.1:$redis_port/"
namespace = "$ns"
[callback]
secret = "bucket-bench-callback-secret"
[spool]
temp_dir = "$work"
[storage]
type = "s3"
endpoint = "$endpoint"
path_style = true
[events]
buckets = ["$bucket"]
[actions]
$actions
EOF
        RUST_LOG=warn "$target/verdict-async" --config "$work/async-$ns-$i.toml" > "$work/async-$ns-$i.log" 2>&1 &
        pids+=($!)
        wait_http "http://127.0.0.1:$port/health"
        bases+=("http://127.0.0.1:$port")
    done
    python3 - "${bases[@]}" "$bucket" "$OBJECTS" > "$work/rate-$ns" <<'PY'
import json, sys, time, urllib.request
*bases, bucket, objects = sys.argv[1:]
def call(method, url, body=None):
    request = urllib.request.Request(url, method=method, data=body and json.dumps(body).encode(),
        headers={"Authorization": "Bearer bench-key", "Content-Type": "application/json"})
    with urllib.request.urlopen(request) as answer:
        return json.load(answer)
started = time.monotonic()
bulk = call("POST", f"{bases[0]}/api/v1/scan/async/s3/bulk", {"bucket": bucket, "prefix": "p/"})
while True:
    status = call("GET", f"{bases[-1]}/api/v1/scan/async/s3/bulk/{bulk['id']}")
    if status["finished"]:
        break
    time.sleep(0.05)
seconds = time.monotonic() - started
done = status["clean"] + status["infected"]
if status["listed"] != int(objects) or done != int(objects):
    sys.exit(f"wrong counts: {status}")
print(f"{int(objects) / seconds:.1f}")
PY
}

# Stops the verdict-async instances, leaving moto and Redis (the first two).
stop_instances() {
    for p in "${pids[@]:2}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]:2}"; do wait "$p" 2>/dev/null || true; done
    pids=("${pids[@]:0:2}")
}

none=$'clean = "none"\ninfected = "none"\nnot_examined = "none"'
log "bulk scan, one instance"
bulk_rate 1 b1 "$none"
stop_instances
log "bulk scan, two instances on one Redis"
bulk_rate 2 b2 "$none"
stop_instances
log "moto's list+get+tag rate, and a bulk scan with the tag action"
basetag=$("$examples/s3_bench" list-get "$endpoint" "$bucket" p/ "$WORKERS" tag | rate_of)
bulk_rate 1 b3 'clean = "tag"'
stop_instances
async1=$(cat "$work/rate-b1")
async2=$(cat "$work/rate-b2")
async1tag=$(cat "$work/rate-b3")

ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
echo
printf '%-22s %12s %14s %8s\n' "set-up" "objects/s" "ceiling/s" "ratio"
printf '%-22s %12s %14s %8s\n' "list+get (x$WORKERS)" "$base1" "" ""
printf '%-22s %12s %14s %8s\n' "list+get (x$((WORKERS * 2)))" "$base2" "" ""
printf '%-22s %12s %14s %8s\n' "list+get+tag (x$WORKERS)" "$basetag" "" ""
printf '%-22s %12s %14s %8s\n' "cli --jobs $WORKERS" "$cli" "$base1" "$(ratio "$cli" "$base1")"
printf '%-22s %12s %14s %8s\n' "async x1, no action" "$async1" "$base1" "$(ratio "$async1" "$base1")"
printf '%-22s %12s %14s %8s\n' "async x2, no action" "$async2" "$base2" "$(ratio "$async2" "$base2")"
printf '%-22s %12s %14s %8s\n' "async x1, tag" "$async1tag" "$basetag" "$(ratio "$async1tag" "$basetag")"
