#!/usr/bin/env bash
# The main job on embedded defaults (YARA with the built-in EICAR rule; no clamd, S3 or Redis):
# builds Verdict in release mode and scans the given files and folders.
#   scripts/run.sh PATH...        (default: a generated demo folder with the EICAR test file)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh >/dev/null
. scripts/lib.sh

log "building verdict (release)"
cargo build --release --locked -p verdict-cli --quiet
bin="${CARGO_TARGET_DIR:-target}/release/verdict"

if [ $# -eq 0 ]; then
    demo=$(mktemp -d)
    trap 'rm -rf "$demo"' EXIT
    printf 'an ordinary text file\n' > "$demo/readme.txt"
    # The EICAR test file, assembled here so no file in the repository holds it whole.
    printf '%s%s%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$' 'EICAR-STANDARD-ANTIVIRUS-' 'TEST-FILE!$H+H*' > "$demo/eicar.com"
    (cd "$demo" && tar czf bundle.tar.gz eicar.com readme.txt)
    log "no paths given: scanning a demo folder holding the EICAR test file ($demo)"
    status=0
    "$bin" scan "$demo" || status=$?
    exit "$status"
fi
exec "$bin" scan "$@"
