#!/usr/bin/env bash
# Peak RSS of verdict-sync under 96 parallel wrong logins (the login-memory attack; goal: under
# 256 MiB). Builds the release binary unless one is given.
#   benches/login_rss.sh [PATH_TO_VERDICT_SYNC]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
if [ $# -ge 1 ]; then
    bin=$(realpath "$1")
else
    build_release
    bin=$(realpath "${CARGO_TARGET_DIR:-target}/release/verdict-sync")
fi
dir=$(mktemp -d); cd "$dir"
head -c 32 /dev/urandom | base64 > token.secret
echo "correct horse battery" | "$bin" user add alice --users users >/dev/null 2>&1
VERDICT_LISTEN=127.0.0.1:18099 VERDICT_USERS_FILE=users VERDICT_TOKEN_SECRET_FILE=token.secret VERDICT_DATA_DIR=data "$bin" serve > log 2>&1 &
pid=$!
for _ in $(seq 50); do curl -s -o /dev/null 127.0.0.1:18099/health && break; sleep 0.2; done
before=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
python3 - <<'PY'
import json, threading, urllib.request, collections
codes = collections.Counter()
def guess(i):
    req = urllib.request.Request("http://127.0.0.1:18099/api/Token", data=json.dumps({"username": "alice", "password": f"wrong{i}"}).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r: codes[r.status] += 1
    except urllib.error.HTTPError as e: codes[e.code] += 1
threads = [threading.Thread(target=guess, args=(i,)) for i in range(96)]
[t.start() for t in threads]; [t.join() for t in threads]
print("answers:", dict(codes))
PY
peak=$(awk '/VmHWM/ {print $2}' /proc/$pid/status); after=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
echo "RSS before ${before} KiB, peak ${peak} KiB, after ${after} KiB"
kill $pid; rm -rf "$dir"
