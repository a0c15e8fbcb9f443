#!/usr/bin/env bash
# The servers' edge under the hardening issue's load, against release builds on loopback with
# the embedded engines: for each of verdict-sync and verdict-async, (a) one 2 GiB upload,
# streamed, and (b) 64 clients sending 200 small scans each (half EICAR, half clean). Every
# answer must be the right verdict or a 503; reports each server's peak anonymous RSS (sampled)
# and its VmHWM after both.
#
#   benches/edge_load.sh            [CLIENTS=64 PER_CLIENT=200 BIG_MIB=2048]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
CLIENTS=${CLIENTS:-64}
PER_CLIENT=${PER_CLIENT:-200}
BIG_MIB=${BIG_MIB:-2048}

build_release
target="${CARGO_TARGET_DIR:-target}/release"

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/data/bucket" "$work/spool"

log "making a ${BIG_MIB} MiB file"
head -c "$((BIG_MIB << 20))" /dev/urandom > "$work/big.bin"

port_of() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
sync_port=$(port_of)
async_port=$(port_of)
cat > "$work/sync.toml" <<EOF
listen = "127.0.0.1:$sync_port"
users_file = "$work/users"
max_body_bytes = 4294967296
[token]
secret = "edge-load-signing-key-0123456789"
[spool]
temp_dir = "$work/spool"
[storage]
type = "local"
root = "$work/data"
EOF
cat > "$work/async.toml" <<EOF
listen = "127.0.0.1:$async_port"
api_keys = "edge-load-key"
max_body_bytes = 4294967296
[queue]
type = "embedded"
path = "$work/queue.redb"
[callback]
secret = "edge-load-callback-secret"
[spool]
temp_dir = "$work/spool"
[storage]
type = "local"
root = "$work/data"
EOF
printf 'edge load password\n' | "$target/verdict-sync" --config "$work/sync.toml" user add bench 2>/dev/null
RUST_LOG=warn "$target/verdict-sync" --config "$work/sync.toml" 2> "$work/sync.log" &
pids+=($!); sync_pid=$!
RUST_LOG=warn "$target/verdict-async" --config "$work/async.toml" 2> "$work/async.log" &
pids+=($!); async_pid=$!
for port in "$sync_port" "$async_port"; do
    for _ in $(seq 100); do
        curl -fs "http://127.0.0.1:$port/health" >/dev/null && break
        sleep 0.1
    done
done
# Peak anonymous memory (heap, stacks) of each server, sampled every 50 ms: VmHWM alone also
# counts the pages of spool files the scanner maps, which are page cache, not the process's own.
python3 - "$sync_pid" "$async_pid" "$work/anon-peak" <<'PY' &
import sys, time
pids, out = sys.argv[1:3], sys.argv[3]
peak = {p: 0 for p in pids}
while True:
    try:
        for p in pids:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("RssAnon:"):
                    peak[p] = max(peak[p], int(line.split()[1]))
    except FileNotFoundError:
        break
    with open(out, "w") as f:
        f.write(" ".join(str(peak[p]) for p in pids))
    time.sleep(0.05)
PY
pids+=($!)
token=$(curl -fs "http://127.0.0.1:$sync_port/api/Token" -H 'Content-Type: application/json' \
    -d '{"username":"bench","password":"edge load password"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["accessToken"])')

log "one ${BIG_MIB} MiB upload to each server"
for which in sync async; do
    if [ $which = sync ]; then
        url="http://127.0.0.1:$sync_port/api/Scan"; auth="Authorization: Bearer $token"
    else
        url="http://127.0.0.1:$async_port/api/v1/scan/sync/binary"; auth="Authorization: Bearer edge-load-key"
    fi
    start=$(date +%s.%N)
    answer=$(curl -fs -X POST -T "$work/big.bin" -H "$auth" -H 'Content-Type: application/octet-stream' "$url")
    end=$(date +%s.%N)
    python3 - "$which" "$answer" "$start" "$end" "$BIG_MIB" <<'PY'
import json, sys
which, answer, start, end, mib = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
verdict = answer.get("result") or answer.get("status")
assert verdict in ("Clean", "clean"), answer
print(f"{which}: big upload verdict={verdict} seconds={end - start:.1f} MB/s={mib * 1.048576 / (end - start):.0f}")
PY
done
leftover=$(find "$work/spool" -type f | wc -l)
echo "spool files left after the big uploads: $leftover"

log "$CLIENTS clients x $PER_CLIENT scans against each server"
python3 - "$sync_port" "$async_port" "$token" "$CLIENTS" "$PER_CLIENT" <<'PY'
import http.client, json, sys, threading, time, uuid
sync_port, async_port, token = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
clients, per_client = int(sys.argv[4]), int(sys.argv[5])
eicar = ("X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + "EICAR-STANDARD-ANTIVIRUS-" + "TEST-FILE!$H+H*").encode()

def sync_request(i):
    data = eicar if i % 2 else b"clean text %d" % i
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"documents\"; filename=\"f{i}.txt\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": f"multipart/form-data; boundary={boundary}"}
    return "/api/Scan", body, headers, ("Infected" if i % 2 else "Clean"), "result"

def async_request(i):
    data = eicar if i % 2 else b"clean text %d" % i
    headers = {"Authorization": "Bearer edge-load-key", "Content-Type": "application/octet-stream"}
    return "/api/v1/scan/sync/binary", data, headers, ("infected" if i % 2 else "clean"), "status"

for name, port, make in (("sync", sync_port, sync_request), ("async", async_port, async_request)):
    counts = {"right": 0, "busy": 0, "wrong": 0}
    lock = threading.Lock()
    def client(c):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for k in range(per_client):
            path, body, headers, expected, field = make(c * per_client + k)
            try:
                conn.request("POST", path, body, headers)
                response = conn.getresponse()
                payload = response.read()
            except Exception as e:
                conn.close(); conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                with lock: counts["wrong"] += 1
                print(f"{name}: transport error {e!r}", file=sys.stderr)
                continue
            with lock:
                if response.status == 503:
                    counts["busy"] += 1
                elif response.status == 200 and json.loads(payload).get(field) == expected:
                    counts["right"] += 1
                else:
                    counts["wrong"] += 1
                    print(f"{name}: {response.status} {payload[:200]!r}", file=sys.stderr)
    start = time.time()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads: t.start()
    for t in threads: t.join()
    took = time.time() - start
    total = clients * per_client
    print(f"{name}: {total} scans in {took:.1f} s ({total / took:.0f}/s): right={counts['right']} busy(503)={counts['busy']} wrong={counts['wrong']}")
    if counts["wrong"]:
        sys.exit(1)
PY

sleep 0.2
read -r sync_anon async_anon < "$work/anon-peak" || true  # no final newline
for which in sync async; do
    pid=$([ $which = sync ] && echo "$sync_pid" || echo "$async_pid")
    anon=$([ $which = sync ] && echo "$sync_anon" || echo "$async_anon")
    echo "$which: peak anonymous RSS $((anon / 1024)) MiB; VmHWM $(awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' /proc/$pid/status) (with the mapped spool file's page cache)"
done
