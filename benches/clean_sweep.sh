#!/usr/bin/env bash
# The clean-files sweep: scans files that carry nothing (this machine's documentation, images,
# programs and libraries, and the project's own tree) and lists every one not answered Clean,
# with its problems. A format parser that takes ordinary files for damaged or unsupported
# carriers shows up here; the goal is none.
#
#   benches/clean_sweep.sh [DIR...]   (default: /usr/share/doc /usr/share/pixmaps /usr/share/icons
#                                      /usr/bin /usr/lib/x86_64-linux-gnu and the repository)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
build_release
verdict="${CARGO_TARGET_DIR:-target}/release/verdict"
if [ $# -eq 0 ]; then
    set -- /usr/share/doc /usr/share/pixmaps /usr/share/icons /usr/bin /usr/lib/x86_64-linux-gnu "$PWD/crates" "$PWD/docs"
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
log "scanning $*"
"$verdict" scan --json --no-progress "$@" > "$out" 2>/dev/null || true
python3 - "$out" <<'PY'
import json, sys, collections
counts = collections.Counter()
odd = []
for line in open(sys.argv[1]):
    try:
        report = json.loads(line)
    except ValueError:
        continue
    if "verdict" not in report:
        continue
    counts[report["verdict"]] += 1
    if report["verdict"] != "Clean":
        odd.append(report)
print("objects by verdict:", dict(counts))
for report in odd:
    # A problem's reason is flattened into it (its tag, and the limit for a limit).
    problems = "; ".join(
        f'{p["path"]}: {", ".join(f"{k}={v}" for k, v in p.items() if k not in ("path", "message"))}: {p["message"]}'
        for p in report["problems"])
    found = ", ".join(d["name"] for d in report["detections"])
    print(f'{report["verdict"]:12} {report["name"]}  {found or problems}')
PY
