#!/usr/bin/env bash
# The main job on embedded defaults: YARA with the built-in EICAR rule, files stored under
# ./data, no clamd, S3 or Redis. Builds in release mode first.
#
#   scripts/run.sh                 start verdict-sync on 127.0.0.1:8080 (Ctrl-C stops it)
#   scripts/run.sh async           start verdict-async on 127.0.0.1:8090, jobs in ./verdict-async.redb
#   scripts/run.sh user add NAME   add a user (password read from the terminal or stdin)
#   scripts/run.sh scan PATH...    scan files and folders with the `verdict` command
#   scripts/run.sh demo            scan a generated folder holding the EICAR test file
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh >/dev/null
. scripts/lib.sh

build_release
bin="${CARGO_TARGET_DIR:-target}/release"

# Real signatures, used by themselves when they are there (README, "Signatures"): YARA rule packs
# under ./rules, hash lists under ./hashes, and clamd (kept current by freshclam) when its socket
# exists. Each is reloaded when its files change; every start logs the engines and their rules.
[ -z "${VERDICT_RULES:-}" ] && [ -d rules ] && export VERDICT_RULES="$PWD/rules"
[ -z "${VERDICT_HASHES:-}" ] && [ -d hashes ] && export VERDICT_HASHES="$PWD/hashes"
if [ -z "${VERDICT_CLAMD:-}" ] && [ -S /var/run/clamav/clamd.ctl ]; then
    export VERDICT_CLAMD="unix:/var/run/clamav/clamd.ctl"
fi

case "${1:-serve}" in
    scan)
        shift
        exec "$bin/verdict" scan "$@"
        ;;
    demo)
        demo=$(mktemp -d)
        trap 'rm -rf "$demo"' EXIT
        printf 'an ordinary text file\n' > "$demo/readme.txt"
        # The EICAR test file, assembled here so no file in the repository holds it whole.
        printf '%s%s%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$' 'EICAR-STANDARD-ANTIVIRUS-' 'TEST-FILE!$H+H*' > "$demo/eicar.com"
        (cd "$demo" && tar czf bundle.tar.gz eicar.com readme.txt)
        log "scanning a demo folder holding the EICAR test file ($demo)"
        status=0
        "$bin/verdict" scan "$demo" || status=$?
        exit "$status"
        ;;
    serve|user)
        [ "${1:-serve}" = serve ] && [ $# -gt 0 ] && shift
        export VERDICT_USERS_FILE="${VERDICT_USERS_FILE:-$PWD/users}"
        export VERDICT_DATA_DIR="${VERDICT_DATA_DIR:-$PWD/data}"
        mkdir -p "$VERDICT_DATA_DIR"
        # A signing key that survives restarts (tokens stay valid); never committed.
        if [ -z "${VERDICT_TOKEN_SECRET_FILE:-}${VERDICT_TOKEN_SECRET:-}" ]; then
            export VERDICT_TOKEN_SECRET_FILE="$PWD/token.secret"
            [ -s "$VERDICT_TOKEN_SECRET_FILE" ] || (umask 077; od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$VERDICT_TOKEN_SECRET_FILE")
        fi
        if [ "${1:-}" = user ]; then
            exec "$bin/verdict-sync" "$@"
        fi
        # --init: on the first start, the user `admin` with a random password, printed once.
        exec "$bin/verdict-sync" --init serve "$@"
        ;;
    async)
        shift
        export VERDICT_DATA_DIR="${VERDICT_DATA_DIR:-$PWD/data}"
        mkdir -p "$VERDICT_DATA_DIR"
        # An API key and a callback signing key that survive restarts; never committed.
        if [ -z "${VERDICT_API_KEYS:-}${VERDICT_API_KEYS_FILE:-}" ]; then
            export VERDICT_API_KEYS_FILE="$PWD/api-keys"
            if [ ! -s "$VERDICT_API_KEYS_FILE" ]; then
                (umask 077; od -An -tx1 -N24 /dev/urandom | tr -d ' \n' > "$VERDICT_API_KEYS_FILE"; echo >> "$VERDICT_API_KEYS_FILE")
            fi
            echo "API key (Authorization: Bearer ...): $(head -n1 "$VERDICT_API_KEYS_FILE")  [from $VERDICT_API_KEYS_FILE]"
        fi
        export VERDICT_CALLBACK_SECRET_FILE="${VERDICT_CALLBACK_SECRET_FILE:-$PWD/callback.secret}"
        exec "$bin/verdict-async" "$@"
        ;;
    *)
        echo "usage: scripts/run.sh [serve | async | user add NAME | scan PATH... | demo]" >&2
        exit 2
        ;;
esac
