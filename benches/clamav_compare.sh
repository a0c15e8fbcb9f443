#!/usr/bin/env bash
# Side by side with ClamAV itself, in one run, on one generated corpus:
#   clamscan with the test database, clamdscan --multiscan against the test clamd (cache emptied
#   first), and `verdict scan` with (a) the embedded engines and (b) embedded + clamd.
# Prints wall time, MB/s, infected files found, and peak RSS as a table.
#
#   benches/clamav_compare.sh [SIZE_MB] [mixed|documents|installers|images]   (default 300 MB of mixed
#   files; "documents" is PDFs with deflated streams and e-mails with attachments; "installers"
#   is disk images, cabinets, NSIS setups and ARJ archives; "images" is FAT, NTFS, VHD, VHDX,
#   squashfs (gzip and LZO) and UDF-only images)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
size_mb=${1:-300}
kind=${2:-mixed}

apt_install time python3
trap 'scripts/services.sh stop' EXIT
scripts/services.sh start
STATE="${VERDICT_SERVICES_DIR:-$PWD/target/test-services}"
. "$STATE/env"

build_release
verdict="${CARGO_TARGET_DIR:-target}/release/verdict"

work=$(mktemp -d)
trap 'rm -rf "$work"; scripts/services.sh stop' EXIT
log "building a ${size_mb} MB corpus ($kind)"
expected=$(python3 benches/make_corpus.py "$work/corpus" "$size_mb" "$kind")
bytes=$(du -sb "$work/corpus" | cut -f1)
files=$(find "$work/corpus" -type f | wc -l)
# The YARA twin of the test database's payload signature, so both sides look for the same things.
cat > "$work/payload.yar" <<'YAR'
rule Verdict_Test_Payload { strings: $m = "VERDICT-CLAMD-ONLY-TEST-PAYLOAD" condition: $m }
YAR

clamd_cache_empty() {
    python3 - "$VERDICT_TEST_CLAMD_SOCKET" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"zRELOAD\0"); s.recv(64)
for _ in range(100):
    try:
        t = socket.socket(socket.AF_UNIX); t.connect(sys.argv[1]); t.sendall(b"zPING\0")
        if t.recv(8).startswith(b"PONG"): break
    except OSError: pass
    time.sleep(0.05)
PY
}

clamd_pid=$(cat "$STATE/clamd.launch.pid")
rows=()
measure() {  # name, counter, command...
    local name=$1 counter=$2; shift 2
    local out="$work/$name.out"
    sync; echo 3 | as_root tee /proc/sys/vm/drop_caches >/dev/null 2>&1 || true
    /usr/bin/time -f "%e %M" -o "$work/$name.time" "$@" > "$out" 2>"$work/$name.err" || true
    read -r secs rss_kb < <(tail -n 1 "$work/$name.time")
    local found
    found=$($counter "$out")
    local mbps
    mbps=$(python3 -c "print(f'{$bytes/1e6/max($secs,1e-3):.1f}')")
    rows+=("$(printf '| %-28s | %8s | %9s | %5s / %s | %8s |' "$name" "$secs" "$mbps" "$found" "$expected" "$((rss_kb / 1024)) MiB")")
}
count_clam() { grep -c ' FOUND$' "$1" || true; }
# Plain output, as clamscan's is read: its summary counts files with a detection (a line per
# detection above it may name several members of one file).
count_verdict() { sed -n 's/^Infected files: //p' "$1"; }

log "clamscan"
measure "clamscan" count_clam clamscan -r --no-summary -d "$VERDICT_TEST_CLAMD_DB" "$work/corpus"
log "clamdscan --multiscan"
clamd_cache_empty
before_rss=$(awk '/VmHWM/ {print $2}' "/proc/$clamd_pid/status")
measure "clamdscan --multiscan" count_clam clamdscan --multiscan --no-summary --config-file="$STATE/clamd.conf" "$work/corpus"
clamd_rss=$(awk '/VmHWM/ {print $2}' "/proc/$clamd_pid/status")
log "verdict (embedded)"
measure "verdict (embedded)" count_verdict "$verdict" scan --no-progress --rules "$work/payload.yar" "$work/corpus"
log "verdict (embedded + clamd)"
clamd_cache_empty
measure "verdict (embedded + clamd)" count_verdict "$verdict" scan --no-progress --rules "$work/payload.yar" \
    --clamd "$VERDICT_TEST_CLAMD_SOCKET" "$work/corpus"

echo
echo "corpus: $files files, $((bytes / 1000000)) MB, $expected files carrying a payload"
echo "| tool | wall s | MB/s | infected found | peak RSS |"
echo "|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo "(clamdscan's RSS is the client's; clamd's own peak was $((clamd_rss / 1024)) MiB, $((before_rss / 1024)) MiB before the run."
echo " verdict + clamd RSS is verdict's; clamd's work is in clamd.)"
