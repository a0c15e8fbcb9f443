#!/usr/bin/env bash
# Freshness, in one run against a release build on loopback:
#   (a) verdict-sync on 1,000 small files (zips of documents, half with a zip inside), 16
#       clients, the verdict cache cold then warm (the same files again): requests/s and
#       p50/p99 of each, and the ratio; YARA alone, then YARA and clamd when a clamd socket is
#       there (VERDICT_BENCH_CLAMD, the system's, or the test services');
#   (a2) the same files through `verdict scan --cache`, cold then warm: the cache without HTTP;
#   (b) scan latency p99 over 4,000 requests with the cache off, without a reload and while the
#       rules are reloaded every second (a rule file rewritten, and SIGHUP), five rounds
#       alternating, and the ratio of the median p99s;
#   (c) a ten-million-line SHA-256 feed: `verdict scan --hashes` load time and peak RSS, and a
#       small object's scan time with the feed loaded against with a one-line list.
#
#   benches/freshness_bench.sh
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

log "making 1,000 small files, each holding archives"
python3 - "$work/small" <<'PY'
import os, random, sys, zipfile, io
out = sys.argv[1]; os.makedirs(out)
rng = random.Random(11)
words = "scan verdict archive member payload report engine limit stream upload bucket object".split()
text = lambda: " ".join(rng.choice(words) for _ in range(rng.randint(200, 2000)))
def zipped(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            z.writestr(name, data)
    return buf.getvalue()
for i in range(1000):
    # An attachment as mail carries them: a few documents, and half the time a zip inside.
    members = [(f"doc{j}.txt", text()) for j in range(3)]
    if i % 2:
        members.append(("inner.zip", zipped([(f"part{j}.txt", text()) for j in range(2)])))
    with open(f"{out}/f{i:04}.zip", "wb") as f:
        f.write(zipped(members))
PY
# Four times as many requests for the latency runs, so a reload falls inside each.
mkdir -p "$work/many"
for k in 1 2 3 4; do
    for f in "$work"/small/*; do ln -s "$f" "$work/many/$k-$(basename "$f")"; done
done
mkdir -p "$work/rules"
printf 'rule Nothing { condition: false }\n' > "$work/rules/base.yar"

password="bench-password-$RANDOM$RANDOM"
printf '%s\n' "$password" | "$target/verdict-sync" user add bench --users "$work/users" 2>/dev/null

# start_sync NAME EXTRA_TOML: verdict-sync with the rules folder, on a free port.
start_sync() {
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    mkdir -p "$work/$1/data"
    cat > "$work/$1/sync.toml" <<TOML
listen = "127.0.0.1:$port"
users_file = "$work/users"
[token]
secret = "bench-signing-key-0123456789abcdef"
[storage]
type = "local"
root = "$work/$1/data"
[[engines]]
type = "yara"
rules = ["$work/rules"]
[reload]
watch_every_secs = 0
$2
TOML
    RUST_LOG=info "$target/verdict-sync" --config "$work/$1/sync.toml" > "$work/$1/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 100); do
        python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/health', timeout=1)" 2>/dev/null && break
        sleep 0.1
    done
}
stop_sync() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""; }
load() { "$target/examples/sync_load" "http://127.0.0.1:$port" bench "$password" "$work/${1:-small}" 16 - ; }
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }

log "(a) the verdict cache, cold then warm"
start_sync cache "[cache]
path = \"$work/cache/verdicts.redb\""
cold=$(load); warm=$(load)
stop_sync
echo "cold: $cold"; echo "warm: $warm"
# With clamd too, as a deployment with real signatures runs (clamd's own socket, or the test
# services' when scripts/services.sh started them).
clamd_socket="${VERDICT_BENCH_CLAMD:-}"
[ -z "$clamd_socket" ] && [ -S /var/run/clamav/clamd.ctl ] && clamd_socket=/var/run/clamav/clamd.ctl
[ -z "$clamd_socket" ] && [ -S target/test-services/clamd.sock ] && clamd_socket="$PWD/target/test-services/clamd.sock"
clamd_cold="small requests=0 seconds=0 rps=0 p50_ms=0 p99_ms=0 infected=0"; clamd_warm="$clamd_cold"
if [ -n "$clamd_socket" ]; then
    start_sync clamd "[cache]
path = \"$work/clamd/verdicts.redb\"
[[engines]]
type = \"clamd\"
address = \"unix:$clamd_socket\""
    clamd_cold=$(load); clamd_warm=$(load)
    stop_sync
    echo "with clamd ($clamd_socket): cold: $clamd_cold"; echo "with clamd: warm: $clamd_warm"
fi

log "(b) p99 without and during reloads (cache off; a rule added and SIGHUP every second), five rounds"
start_sync reload "[cache]
enabled = false"
load many > /dev/null   # warm-up
# One run's p99 on two shared cores moves by a third between identical runs, so quiet and busy
# runs alternate and the medians are compared.
quiet_runs=(); busy_runs=()
for round in 1 2 3 4 5; do
    quiet_runs+=("$(load many)")
    (
        i=0
        while :; do
            i=$((i + 1))
            printf 'rule Churn_%s_%s { strings: $a = "churn-%s" condition: $a }\n' "$round" "$i" "$i" \
                > "$work/rules/churn.yar"
            kill -HUP "$server_pid"
            sleep 1
        done
    ) &
    churn=$!
    busy_runs+=("$(load many)")
    kill "$churn"; wait "$churn" 2>/dev/null || true
done
reloads=$(grep -c "rules reloaded" "$work/reload/server.log" || true)
stop_sync
rm -f "$work/rules/churn.yar"
printf 'quiet: %s\n' "${quiet_runs[@]}"; printf 'during reloads: %s\n' "${busy_runs[@]}"
echo "$reloads reloads logged"
quiet=$(printf '%s\n' "${quiet_runs[@]}"); busy=$(printf '%s\n' "${busy_runs[@]}")

log "(a2) the cache without HTTP: verdict scan --cache over the same 1,000 files, cold then warm"
cli_cache() {
    /usr/bin/time -f "%e" "$target/verdict" scan --no-progress -q --rules "$work/rules" \
        --cache "$work/cli-cache.redb" "$work/small" 2>&1 > /dev/null | tail -1
}
cli_cold=(); cli_warm=()
for _ in 1 2 3; do
    rm -f "$work/cli-cache.redb"
    cli_cold+=("$(cli_cache)"); cli_warm+=("$(cli_cache)")
done
echo "verdict scan cold: ${cli_cold[*]} s; warm: ${cli_warm[*]} s"

log "(c) a ten-million-line SHA-256 feed"
python3 - "$work/feed.txt" <<'PY'
import os, sys
with open(sys.argv[1], "w") as f:
    f.write("# generated: 10,000,000 SHA-256 lines\n")
    chunk = 100_000
    for _ in range(10_000_000 // chunk):
        raw = os.urandom(32 * chunk).hex()
        f.write("\n".join(raw[i:i + 64] for i in range(0, len(raw), 64)))
        f.write("\n")
PY
printf 'x\n' > "$work/one.txt"
/usr/bin/time -v "$target/verdict" scan --no-progress -q --hashes "$work/feed.txt" "$work/one.txt" \
    > /dev/null 2> "$work/feed.time" || true
load_s=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/feed.time")
rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/feed.time")
/usr/bin/time -v "$target/verdict" scan --no-progress -q "$work/one.txt" > /dev/null 2> "$work/none.time" || true
base_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/none.time")
printf '%s\n' 0000000000000000000000000000000000000000000000000000000000000000 > "$work/one-line.txt"
small_list=$("$target/examples/hash_lookup" "$work/one-line.txt")
big_list=$("$target/examples/hash_lookup" "$work/feed.txt")
echo "$small_list"; echo "$big_list"

python3 - "$cold" "$warm" "$quiet" "$busy" "$load_s" "$rss_kb" "$base_kb" "$small_list" "$big_list" "$clamd_cold" "$clamd_warm" "${cli_cold[*]}" "${cli_warm[*]}" "$reloads" <<'PY'
import statistics, sys
def fields(line):
    return {k: float(v) for k, v in (p.split("=") for p in line.split()[1:])}
cold, warm = fields(sys.argv[1]), fields(sys.argv[2])
quiet = [fields(l) for l in sys.argv[3].splitlines()]
busy = [fields(l) for l in sys.argv[4].splitlines()]
cli_cold = statistics.median(float(x) for x in sys.argv[12].split())
cli_warm = statistics.median(float(x) for x in sys.argv[13].split())
load_s, rss_kb, base_kb = sys.argv[5], int(sys.argv[6]), int(sys.argv[7])
small_list, big_list = fields(sys.argv[8]), fields(sys.argv[9])
print()
print("| verdict cache, 1,000 files, 16 clients | requests/s | p50 ms | p99 ms |")
print("|---|---|---|---|")
print(f"| cold | {cold['rps']:.0f} | {cold['p50_ms']:.1f} | {cold['p99_ms']:.1f} |")
print(f"| warm | {warm['rps']:.0f} | {warm['p50_ms']:.1f} | {warm['p99_ms']:.1f} |")
print(f"| warm / cold | {warm['rps'] / cold['rps']:.1f}x | | |")
clamd_cold, clamd_warm = fields(sys.argv[10]), fields(sys.argv[11])
if clamd_cold["rps"]:
    print(f"| cold, YARA and clamd | {clamd_cold['rps']:.0f} | {clamd_cold['p50_ms']:.1f} | {clamd_cold['p99_ms']:.1f} |")
    print(f"| warm, YARA and clamd | {clamd_warm['rps']:.0f} | {clamd_warm['p50_ms']:.1f} | {clamd_warm['p99_ms']:.1f} |")
    print(f"| warm / cold, with clamd | {clamd_warm['rps'] / clamd_cold['rps']:.1f}x | | |")
print()
print(f"| verdict scan --cache, no HTTP (median of 3, seconds) | cold {cli_cold:.2f} | warm {cli_warm:.2f} | {cli_cold / cli_warm:.1f}x |")
print()
print(f"| p99 during reloads (cache off, 4,000 requests a run, {sys.argv[14]} reloads) | requests/s | p99 ms |")
print("|---|---|---|")
for n, (q, b) in enumerate(zip(quiet, busy), 1):
    print(f"| round {n}: no reload / a reload every second | {q['rps']:.0f} / {b['rps']:.0f} | {q['p99_ms']:.1f} / {b['p99_ms']:.1f} |")
q99 = statistics.median(q["p99_ms"] for q in quiet)
b99 = statistics.median(b["p99_ms"] for b in busy)
print(f"| median p99: no reload / during reloads | | {q99:.1f} / {b99:.1f} |")
print(f"| ratio of the medians | | {b99 / q99:.2f} |")
print()
print("| 10,000,000 SHA-256 lines | load (wall) | peak RSS | RSS over no feed | scan with 1 line | scan with 10M lines |")
print("|---|---|---|---|---|---|")
print(f"| verdict scan --hashes | {load_s} | {rss_kb / 1024:.0f} MiB | {(rss_kb - base_kb) / 1024:.0f} MiB | {small_list['us_per_scan']:.1f} us | {big_list['us_per_scan']:.1f} us |")
PY
