#!/usr/bin/env bash
# Peak memory at any object size, in one run against a release build:
#   the CLI (`verdict scan`) on random data of 1, 4 and 16 GiB, a zip holding one 4 GiB member
#   and a tar of 10,000 files; verdict-sync (multipart) and verdict-async (`sync/binary`) each
#   taking a 4 GiB upload; and four 1 GiB uploads to verdict-sync in a row (the time of each: the
#   first, which makes the server's first spool file, on its own),
#   then the same file through the CLI, for the upload's speed as a share of the CLI's, and to a
#   bare loopback sink, for the share no server could pass on this machine (curl's own cost).
# Peak resident is measured twice: RssAnon + RssFile + RssShmem sampled every 20 ms while the
# object is scanned, and the kernel's own high-water mark (VmHWM; for the CLI, `time`'s max RSS,
# which is the same counter). Objects are made in VERDICT_BENCH_DIR (default /var/tmp) one at a
# time and deleted after; an object that does not fit on the disk there is made sparse instead
# (every page still read and mapped, so the memory figure holds; the row says so).
#
#   benches/memory_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
apt_install python3 curl time

build_release
target="$PWD/${CARGO_TARGET_DIR:-target}/release"

work=$(mktemp -d "${VERDICT_BENCH_DIR:-/var/tmp}/verdict-memory.XXXXXX")
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
export TMPDIR="$work"   # the servers' and the CLI's spool files go beside the objects

free_gib() { df --output=avail -B1G "$work" | tail -1 | tr -d ' '; }

# sampler PID OUT: the largest RssAnon + RssFile + RssShmem of PID until it exits or the
# sampler is stopped, in KiB, written to OUT.
sampler() {
    python3 - "$1" "$2" <<'PY' &
import signal, sys, time
pid, out = sys.argv[1], sys.argv[2]
peak = 0
def done(*_):
    open(out, "w").write(str(peak)); sys.exit(0)
signal.signal(signal.SIGTERM, done)
while True:
    try:
        status = open(f"/proc/{pid}/status").read()
    except OSError:
        done()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    try:
        peak = max(peak, sum(int(fields[k].split()[0]) for k in ("RssAnon", "RssFile", "RssShmem")))
    except (KeyError, ValueError):
        pass
    time.sleep(0.02)
PY
}

rows=()
# The default limits stop at 10,000 objects and 1 GiB members; raised so that every object here
# is examined whole, which is what the memory bound is about.
limits=(--max-files 20000 --max-file-size 8G --max-scan-size 32G --max-scan-time 600)
# cli KIND FILE: scans FILE with the CLI and records a row.
cli() {
    local kind=$1 file=$2 sampled_file="$work/sampled" started seconds hwm verdict
    started=$(date +%s.%N)
    /usr/bin/time -f "%M" -o "$work/time.out" "$target/verdict" scan --no-progress -q "${limits[@]}" \
        "$file" > "$work/scan.out" 2>&1 &
    local pid=$!
    # `time` is the parent; sample the scanner itself.
    local child=""
    for _ in $(seq 100); do child=$(pgrep -P "$pid" || true); [ -n "$child" ] && break; sleep 0.01; done
    sampler "$child" "$sampled_file"; local sampler_pid=$!
    wait "$pid" || true
    wait "$sampler_pid" 2>/dev/null || true
    seconds=$(python3 -c "import time; print(f'{time.time() - $started:.2f}')")
    hwm=$(tail -1 "$work/time.out")
    verdict=$(grep -Eo "Infected files: [0-9]+|Not fully examined: [0-9]+|Not read: [0-9]+" "$work/scan.out" | tr '\n' ' ')
    # Why anything was not examined, so a row's answer can be read.
    grep -E "NOT EXAMINED|ERROR" "$work/scan.out" | head -3 >&2 || true
    rows+=("cli|$kind|$(cat "$sampled_file")|$hwm|$seconds|$verdict")
    echo "cli $kind: sampled $(( $(cat "$sampled_file") / 1024 )) MiB, VmHWM $(( hwm / 1024 )) MiB, ${seconds} s; $verdict"
}

# random FILE GIB: random bytes, or a sparse file when the disk cannot hold them (echoes which).
random_file() {
    if [ "$(free_gib)" -gt $(( $2 + 2 )) ]; then
        head -c "$2G" /dev/urandom > "$1"; echo "random"
    else
        truncate -s "$2G" "$1"; echo "sparse (disk too small for random data)"
    fi
    # The new file's (and a deleted one's) writeback finishes before anything is timed, as in
    # sync_bench.sh: otherwise the disk still writing gigabytes of the bench's own making slows
    # whichever run comes first (a bare loopback sink went 0.75, 0.50, 0.34 s in a row).
    sync
}

for gib in 1 4 16; do
    log "CLI: $gib GiB"
    how=$(random_file "$work/object" "$gib")
    cli "$gib GiB, $how" "$work/object"
    rm -f "$work/object"
done

log "CLI: a zip holding one 4 GiB member (hex text, deflated: about 2.2 GiB)"
python3 - "$work/member.zip" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED, compresslevel=1, allowZip64=True) as z:
    with z.open("member.txt", "w", force_zip64=True) as member:
        for _ in range(4096):
            member.write(os.urandom(512 << 10).hex().encode())
PY
cli "zip, one 4 GiB member" "$work/member.zip"
rm -f "$work/member.zip"

log "CLI: a tar of 10,000 files (100 KiB each)"
python3 - "$work/many.tar" <<'PY'
import io, os, sys, tarfile
with tarfile.open(sys.argv[1], "w") as t:
    for i in range(10_000):
        data = os.urandom(100 << 10)
        info = tarfile.TarInfo(f"dir{i // 1000}/file{i:05}.bin"); info.size = len(data)
        t.addfile(info, io.BytesIO(data))
PY
cli "tar, 10,000 files" "$work/many.tar"
rm -f "$work/many.tar"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_health() {
    for _ in $(seq 200); do curl -sf "http://127.0.0.1:$1/health" > /dev/null 2>&1 && return; sleep 0.05; done
    echo "the server did not start" >&2; exit 1
}
hwm_of() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

password="bench-password-$RANDOM$RANDOM"
printf '%s\n' "$password" | "$target/verdict-sync" user add bench --users "$work/users" 2>/dev/null
start_sync() {
    sync_port=$(free_port)
    cat > "$work/sync.toml" <<TOML
listen = "127.0.0.1:$sync_port"
users_file = "$work/users"
[token]
secret = "bench-signing-key-0123456789abcdef"
[storage]
type = "local"
root = "$work/sync-data"
[cache]
enabled = false
TOML
    RUST_LOG=warn "$target/verdict-sync" --config "$work/sync.toml" > "$work/sync.log" 2>&1 &
    server_pid=$!
    wait_health "$sync_port"
    token=$(curl -sf -H 'content-type: application/json' \
        -d "{\"username\":\"bench\",\"password\":\"$password\"}" "http://127.0.0.1:$sync_port/api/Token" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["accessToken"])')
}
stop_server() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""; }
sync_upload() {
    curl -sf -o "$work/answer.json" -w '%{time_total}' -H "authorization: Bearer $token" \
        -F "documents=@$1" "http://127.0.0.1:$sync_port/api/Scan"
}
# server_row WHO KIND FIELD UPLOAD...: runs the upload command with the server's memory sampled
# and records a row (FIELD: the answer's verdict field).
server_row() {
    local who=$1 kind=$2 field=$3 seconds sampler_pid; shift 3
    sampler "$server_pid" "$work/sampled"; sampler_pid=$!
    seconds=$("$@")
    kill "$sampler_pid"; wait "$sampler_pid" 2>/dev/null || true
    rows+=("$who|$kind|$(cat "$work/sampled")|$(hwm_of "$server_pid")|$seconds|$(python3 -c \
        'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$work/answer.json" "$field")")
}
async_upload() {
    # -T streams the file (a --data-binary body would be read into curl's memory first).
    curl -sf -o "$work/answer.json" -w '%{time_total}' -X POST -T "$1" \
        -H 'content-type: application/octet-stream' -H 'authorization: Bearer bench-key' \
        "http://127.0.0.1:$async_port/api/v1/scan/sync/binary"
}

log "verdict-sync: a 4 GiB upload"
how=$(random_file "$work/upload" 4)
start_sync
server_row verdict-sync "4 GiB upload, $how" result sync_upload "$work/upload"
stop_server

log "verdict-async: a 4 GiB upload (sync/binary)"
async_port=$(free_port)
cat > "$work/async.toml" <<TOML
listen = "127.0.0.1:$async_port"
api_keys = "bench-key"
[callback]
secret = "bench-callback-secret-0123456789"
secret_file = "$work/callback.secret"
[storage]
type = "local"
root = "$work/async-data"
[queue]
type = "embedded"
path = "$work/queue.redb"
[cache]
enabled = false
TOML
RUST_LOG=warn "$target/verdict-async" --config "$work/async.toml" > "$work/async.log" 2>&1 &
server_pid=$!
wait_health "$async_port"
server_row verdict-async "4 GiB upload, $how" status async_upload "$work/upload"
stop_server
rm -f "$work/upload"

log "verdict-sync: four 1 GiB uploads in a row"
how=$(random_file "$work/upload" 1)
start_sync
# The first upload to a new server makes its first spool file; the next ones write over it
# (spool files are kept for 20 s). A new file's page cache is allocated as it is written, which
# on a VM whose free memory goes back to the host costs up to a second per GiB more: the first
# is reported on its own, the three after it are the steady state.
first=$(sync_upload "$work/upload")
steady=()
for _ in 1 2 3; do steady+=("$(sync_upload "$work/upload")"); done
stop_server
# The same upload to a bare loopback sink (reads the body, answers 200, keeps nothing): curl's
# and the kernel's own cost, the fastest any server could take it on this machine.
sink_port=$(free_port)
python3 - "$sink_port" <<'PY' &
import socket, sys
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", int(sys.argv[1])))
listener.listen(4)
buf = memoryview(bytearray(4 << 20))
while True:
    conn, _ = listener.accept()
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(65536)
        if not chunk:
            break
        head += chunk
    if b"\r\n\r\n" not in head:
        # A connection that closed before a whole request (the readiness probe's).
        conn.close()
        continue
    head, rest = head.split(b"\r\n\r\n", 1)
    fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
    fields = {k.strip().lower(): v.strip() for k, v in fields.items()}
    if fields.get(b"expect", b"").lower() == b"100-continue":
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    left = int(fields.get(b"content-length", b"0")) - len(rest)
    while left > 0:
        n = conn.recv_into(buf, min(left, len(buf)))
        if n == 0:
            break
        left -= n
    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
    conn.close()
PY
server_pid=$!
for _ in $(seq 100); do python3 -c "import socket; socket.create_connection(('127.0.0.1', $sink_port))" 2>/dev/null && break; sleep 0.05; done
sinks=()
for _ in 1 2 3; do
    sinks+=("$(curl -sf -o /dev/null -w '%{time_total}' -F "documents=@$work/upload" "http://127.0.0.1:$sink_port/")")
done
stop_server
# The same file through the CLI, three times, for the upload-to-CLI ratio (the fastest of each).
scans=()
for _ in 1 2 3; do
    started=$(date +%s.%N)
    "$target/verdict" scan -q "$work/upload" > /dev/null
    scans+=("$(python3 -c 'import sys, time; print(time.time() - float(sys.argv[1]))' "$started")")
done

python3 - "${steady[*]}" "$how" "${scans[*]}" "${sinks[*]}" "$first" "${rows[@]}" <<'PY'
import sys
steady = [float(x) for x in sys.argv[1].split()]
scans = [float(x) for x in sys.argv[3].split()]
sinks = [float(x) for x in sys.argv[4].split()]
first = float(sys.argv[5])
print()
print("| process | object | peak sampled (Anon+File+Shmem) | VmHWM | seconds | answer |")
print("|---|---|---|---|---|---|")
for row in sys.argv[6:]:
    who, kind, sampled, hwm, seconds, answer = row.split("|")
    # A process that ends before the sampler's first reading has no sample; VmHWM still bounds it.
    sampled = f"{int(sampled) / 1024:.0f} MiB" if int(sampled) > 0 else "not sampled (ended first)"
    print(f"| {who} | {kind} | {sampled} | {int(hwm) / 1024:.0f} MiB | {seconds} | {answer.strip()} |")
print()
print(f"| the first 1 GiB upload to a new verdict-sync ({sys.argv[2]}; its first spool file) | {first:.2f} s | | | "
      + f"{first / min(steady):.2f} x the fastest after it |")
print(f"| three 1 GiB uploads in a row after it | " + " | ".join(f"{s:.2f} s" for s in steady)
      + f" | slowest / fastest {max(steady) / min(steady):.2f} |")
print("| the same 1 GiB file through the CLI | " + " | ".join(f"{s:.2f} s" for s in scans)
      + f" | the upload at {min(scans) / min(steady):.2f} of the CLI's speed (fastest of each) |")
print("| the same upload to a bare loopback sink | " + " | ".join(f"{s:.2f} s" for s in sinks)
      + f" | any server's ceiling: {min(scans) / min(sinks):.2f} of the CLI's speed |")
PY
