#!/usr/bin/env bash
# verdict-async end to end, in one run: submit, download from a local HTTP server, scan, callback
# received, for 2,000 small files (examples/async_load.rs plays origin and callback receiver).
# Four set-ups on a release build with the embedded engines, each the median of 5 runs:
#   embedded x1   one process, its own redb queue (the default)
#   embedded x2   two processes, each with its own queue; the client spreads jobs over both
#   redis x1      one process on a shared Redis
#   redis x2      two processes on one Redis; the client submits to both
# Prints a table with jobs/s and the ratios the issue asks for.
#
#   benches/async_bench.sh [JOBS] [CONCURRENCY]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
apt_install redis-server python3

jobs=${1:-2000}
concurrency=${2:-32}
workers=${VERDICT_BENCH_WORKERS:-32}

build_release
target="${CARGO_TARGET_DIR:-target}/release"

work=$(mktemp -d)
pids=()
stop_all() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}
cleanup() { stop_all; [ -n "${redis_pid:-}" ] && kill "$redis_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
    > "$work/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 100); do
    redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG && break
    sleep 0.05
done

# start MODE INDEX RUN: starts an instance, records its pid and appends its base URL to
# `bases` once it answers. Not run in a subshell, so the pid reaches stop_all.
start() {
    local mode=$1 index=$2 run=$3 port queue
    port=$(free_port)
    if [ "$mode" = embedded ]; then
        queue="type = \"embedded\"
path = \"$work/queue-$run-$index.redb\""
    else
        queue="type = \"redis\"
url = \"redis://127.0.0.1:$redis_port/\"
namespace = \"bench-$run\""
    fi
    cat > "$work/$run-$index.toml" <<EOF
listen = "127.0.0.1:$port"
api_keys = "bench-key"
workers = $workers
[callback]
secret = "bench-callback-secret-0123456789"
secret_file = "$work/callback.secret"
[fetch]
allow = ["127.0.0.0/8"]
[storage]
type = "local"
root = "$work/data"
[queue]
$queue
EOF
    RUST_LOG=warn "$target/verdict-async" --config "$work/$run-$index.toml" > "$work/$run-$index.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 200); do
        curl -sf "http://127.0.0.1:$port/health" > /dev/null 2>&1 && break
        sleep 0.05
    done
    bases+=("http://127.0.0.1:$port")
}

declare -A median
for setup in "embedded 1" "embedded 2" "redis 1" "redis 2"; do
    set -- $setup
    mode=$1 processes=$2
    figures=()
    for run in 1 2 3 4 5; do
        name="$mode-$processes-$run"
        bases=()
        for index in $(seq "$processes"); do start "$mode" "$index" "$name"; done
        line=$("$target/examples/async_load" bench-key "$jobs" "$concurrency" "${bases[@]}")
        stop_all
        echo "$mode x$processes run $run: $line"
        figures+=("$(sed -E 's/.*jobs_per_s=([0-9.]+).*/\1/' <<< "$line")")
    done
    median["$mode $processes"]=$(printf "%s\n" "${figures[@]}" | sort -n | sed -n 3p)
done

python3 - "${median[embedded 1]}" "${median[embedded 2]}" "${median[redis 1]}" "${median[redis 2]}" "$jobs" <<'PY'
import sys
e1, e2, r1, r2 = map(float, sys.argv[1:5])
jobs = sys.argv[5]
print()
print(f"| set-up ({jobs} jobs, median of 5) | jobs/s | vs embedded x1 |")
print("|---|---|---|")
for name, value in [("embedded, 1 process", e1), ("embedded, 2 processes (own queues)", e2),
                    ("redis, 1 process", r1), ("redis, 2 processes (one queue)", r2)]:
    print(f"| {name} | {value:.0f} | {value / e1:.2f} |")
print()
print(f"goal: embedded >= 500 jobs/s: {e1:.0f} ({e1 / 500:.1f}x the goal); "
      f"redis within 80% of embedded: x1 {r1 / e1:.2f}, x2 {r2 / e1:.2f}")
PY
