#!/usr/bin/env bash
# verdict-sync under load, in one run: (a) 1,000 small files from 16 concurrent clients and
# (b) one 1 GiB upload (median of 3), against a release build on loopback with the embedded engines; then the
# same 1 GiB file scanned by `verdict scan` from disk, so the HTTP overhead is a ratio. Reports
# requests/s, p50/p99, MB/s and the server's peak RSS.
#
#   benches/sync_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
apt_install python3

build_release
target="${CARGO_TARGET_DIR:-target}/release"

work=$(mktemp -d)
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

log "making 1,000 small files and a 1 GiB file"
python3 - "$work/small" <<'PY'
import os, random, sys, zipfile, io
out = sys.argv[1]; os.makedirs(out)
rng = random.Random(7)
words = "scan verdict archive member payload report engine limit stream upload bucket object".split()
for i in range(1000):
    if i % 10 == 9:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for j in range(3):
                z.writestr(f"m{j}.txt", " ".join(rng.choice(words) for _ in range(2000)))
        data = buf.getvalue()
    else:
        data = " ".join(rng.choice(words) for _ in range(rng.randint(100, 8000))).encode()
    with open(f"{out}/f{i:04}.txt" if i % 10 != 9 else f"{out}/f{i:04}.zip", "wb") as f:
        f.write(data)
PY
head -c 1073741824 /dev/urandom > "$work/big.bin"
sync   # let writeback of the new files finish before anything is timed

log "verdict scan of the same 1 GiB file first, on a quiet machine (median of 3; the file is in the page cache, as the upload's is in memory)"
sync
cli_runs=()
for _ in 1 2 3; do
    start=$(date +%s.%N)
    "$target/verdict" scan --no-progress -q "$work/big.bin" > /dev/null
    end=$(date +%s.%N)
    cli_runs+=("$(python3 -c "print(f'{$end - $start:.3f}')")")
done
cli_seconds=$(printf '%s\n' "${cli_runs[@]}" | sort -n | sed -n 2p)
echo "cli runs: ${cli_runs[*]}"

log "starting verdict-sync"
password="bench-password-$RANDOM$RANDOM"
printf '%s\n' "$password" | "$target/verdict-sync" user add bench --users "$work/users" 2>/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/data" "$work/spool"
VERDICT_LISTEN="127.0.0.1:$port" VERDICT_USERS_FILE="$work/users" VERDICT_DATA_DIR="$work/data" \
VERDICT_TOKEN_SECRET="bench-signing-key-0123456789abcdef" RUST_LOG=warn TMPDIR="$work/spool" \
    "$target/verdict-sync" serve > "$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/health', timeout=1)" 2>/dev/null && break
    sleep 0.1
done

log "load"
"$target/examples/sync_load" "http://127.0.0.1:$port" bench "$password" "$work/small" 16 "$work/big.bin" | tee "$work/load.txt"
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$server_pid/status")

http_seconds=$(sed -n 's/^big .*seconds=\([0-9.]*\).*/\1/p' "$work/load.txt")
python3 - "$cli_seconds" "$http_seconds" "$rss_kb" <<'PY'
import sys
cli, http, rss = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
mb = 1073741824 / 1e6
print()
print(f"| 1 GiB | verdict scan (disk) | verdict-sync upload | ratio HTTP/CLI | server peak RSS |")
print(f"|---|---|---|---|---|")
print(f"| | {cli:.2f} s, {mb/cli:.0f} MB/s | {http:.2f} s, {mb/http:.0f} MB/s | {cli/http:.2f} | {rss/1024:.0f} MiB |")
PY
