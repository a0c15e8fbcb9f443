#!/usr/bin/env bash
# Test services on loopback, private to this checkout: installs them from Debian's packages if
# missing, writes their configs and a test signature database, starts them in the background,
# waits for them with a bounded probe, and stops them by the PIDs it recorded (never by name).
#
#   scripts/services.sh start   # prints nothing on success; writes $STATE/env for the tests
#   scripts/services.sh stop
#
# STATE defaults to target/test-services (override with VERDICT_SERVICES_DIR). The env file
# exports VERDICT_TEST_CLAMD_TCP, VERDICT_TEST_CLAMD_SOCKET, VERDICT_TEST_CLAMD_DB,
# VERDICT_TEST_ICAP_URL, VERDICT_TEST_S3_ENDPOINT (moto, an S3-compatible server, with test
# credentials in AWS_*), VERDICT_TEST_REDIS_URL, VERDICT_TEST_SDK_PYTHON (a Python with the
# attachmentAV SDK), VERDICT_TEST_MSOFFCRYPTO (msoffcrypto-tool), VERDICT_TEST_CARRIER_PYTHON (its venv's Python, with pycdlib), VERDICT_TEST_RAR_SAMPLES (RAR archives), VERDICT_TEST_CLAMAV_TESTFILES (ClamAV's test carriers); scripts/test.sh
# sources it before the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

STATE="${VERDICT_SERVICES_DIR:-$PWD/target/test-services}"
# moto lives in a venv outside the checkout, so a fresh clone does not reinstall it.
MOTO_VENV="${VERDICT_MOTO_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/verdict/moto-5.2.5-s3-sqs}"
# The original product's own Python SDK, which verdict-async's compatibility test drives.
SDK_VENV="${VERDICT_SDK_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/verdict/attachmentav-sdk-0.5.0}"
# Tools from PyPI that write carriers the tests scan (msoffcrypto-tool encrypts OOXML documents
# as Office does; pycdlib masters UDF discs whose UDF side names files the ISO 9660 side does not).
CARRIER_VENV="${VERDICT_CARRIER_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/verdict/carriers-1}"
RAR_SAMPLES="${XDG_CACHE_HOME:-$HOME/.cache}/verdict/rar-samples"
# Selenium, which drives Debian's headless Chromium through chromedriver for the page's tests.
BROWSER_VENV="${VERDICT_BROWSER_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/verdict/selenium-4.38.0}"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits up to ~10 s for a command to succeed.
wait_for() {
    local what=$1; shift
    for _ in $(seq 1 100); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "services: $what did not come up; see $STATE/*.log" >&2
    return 1
}

clamd_ping() {
    python3 - "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(1); s.connect(sys.argv[1])
s.sendall(b"zPING\0"); assert s.recv(16).startswith(b"PONG")
PY
}

icap_options() {
    python3 - "$1" <<'PY'
import socket, sys
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port), timeout=2)
s.sendall(f"OPTIONS icap://127.0.0.1:{port}/avscan ICAP/1.0\r\nHost: 127.0.0.1\r\nEncapsulated: null-body=0\r\n\r\n".encode())
assert s.recv(4096).startswith(b"ICAP/1.0 200")
PY
}

redis_ping() {
    python3 - "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
s.sendall(b"PING\r\n"); assert s.recv(16).startswith(b"+PONG")
PY
}

http_ok() {
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$1"
}

install_moto() {
    [ -x "$MOTO_VENV/bin/moto_server" ] && return 0
    log "installing moto (S3- and SQS-compatible test server) into $MOTO_VENV"
    python3 -m venv "$MOTO_VENV" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$MOTO_VENV"; }
    "$MOTO_VENV/bin/pip" install -q "moto[s3,sqs]==5.2.5" flask flask-cors
}

install_sdk() {
    [ -x "$SDK_VENV/bin/python" ] && "$SDK_VENV/bin/python" -c 'import attachmentav' 2>/dev/null && return 0
    log "installing the attachmentAV Python SDK (verdict-async client compatibility) into $SDK_VENV"
    python3 -m venv "$SDK_VENV" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$SDK_VENV"; }
    "$SDK_VENV/bin/pip" install -q "attachmentav-virus-malware-scan-sdk==0.5.0"
}

install_carriers() {
    if [ ! -x "$CARRIER_VENV/bin/msoffcrypto-tool" ] || ! "$CARRIER_VENV/bin/python" -c 'import pycdlib' 2>/dev/null; then
        log "installing carrier tools (msoffcrypto-tool, pycdlib) into $CARRIER_VENV"
        python3 -m venv "$CARRIER_VENV" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$CARRIER_VENV"; }
        "$CARRIER_VENV/bin/pip" install -q "msoffcrypto-tool==5.4.2" "pycdlib==1.22.0"
    fi
    # RAR samples: no free tool writes RAR; the rarfile package's source ships its test archives.
    if [ ! -d "$RAR_SAMPLES/rarfile-4.2/test/files" ]; then
        log "fetching RAR test archives (PyPI rarfile 4.2 source) into $RAR_SAMPLES"
        mkdir -p "$RAR_SAMPLES"
        "$CARRIER_VENV/bin/pip" download -q --no-deps --no-binary :all: -d "$RAR_SAMPLES" "rarfile==4.2"
        tar -xzf "$RAR_SAMPLES/rarfile-4.2.tar.gz" -C "$RAR_SAMPLES"
    fi
}

install_browser() {
    apt_install chromium chromium-driver
    [ -x "$BROWSER_VENV/bin/python" ] && "$BROWSER_VENV/bin/python" -c 'import selenium' 2>/dev/null && return 0
    log "installing Selenium (the web page's browser tests) into $BROWSER_VENV"
    python3 -m venv "$BROWSER_VENV" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$BROWSER_VENV"; }
    "$BROWSER_VENV/bin/pip" install -q "selenium==4.38.0"
}

write_signatures() {
    local db=$1
    mkdir -p "$db"
    # EICAR, assembled here from parts, as an MD5 hash signature and as a body signature.
    local eicar hex md5
    eicar=$(printf '%s%s%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$' 'EICAR-STANDARD-ANTIVIRUS-' 'TEST-FILE!$H+H*')
    md5=$(printf '%s' "$eicar" | md5sum | cut -d' ' -f1)
    hex=$(printf '%s' "$eicar" | od -An -tx1 | tr -d ' \n')
    printf '%s:68:Test-EICAR-MD5\n' "$md5" > "$db/verdict-test.hdb"
    # The payload marker the tests generate (see engines' testutil): a body signature only clamd has.
    local marker
    marker=$(printf 'VERDICT-CLAMD-ONLY-TEST-PAYLOAD' | od -An -tx1 | tr -d ' \n')
    printf 'Test-EICAR-Body:0:0:%s\nVerdict-Test-Payload:0:*:%s\n' "$hex" "$marker" > "$db/verdict-test.ndb"
}

start() {
    # clamav-testfiles: ClamAV's own test carriers (clam.exe in mail, PDF, RTF, OLE...), which
    # the engines tests scan with a hash signature of clam.exe. cpio, mscompress, gcab,
    # genisoimage, msitools, xz, 7z, arj, makensis and zip write the old-format archives, SZDD files,
    # cabinets, disk images, MSI packages, raw LZMA streams, PPMd 7z archives, ARJ archives and
    # NSIS installers of scan-core's tests; lzip, ncompress (compress) and rpm (rpmbuild) the
    # lzip, .Z and RPM files; unar, or bsdtar (libarchive-tools) where unar cannot (this unar
    # fails on RAR 5 with subfolders), extracts the RAR samples for the bytes to expect; qpdf
    # encrypts PDFs with every revision of the standard security handler. Disk images:
    # dosfstools and mtools (FAT), ntfs-3g (NTFS, written through its FUSE driver), exfatprogs
    # and exfat-fuse (exFAT), fdisk and gdisk (MBR and GPT tables), qemu-utils (VHD, VHDX),
    # squashfs-tools, udftools (mkudffs: empty UDF volumes of each revision).
    apt_install clamav-daemon clamav clamdscan c-icap libc-icap-mod-virus-scan python3 redis-server clamav-testfiles cpio mscompress gcab genisoimage msitools xz-utils p7zip-full arj nsis zip lzip ncompress rpm unar libarchive-tools qpdf \
        dosfstools mtools ntfs-3g exfatprogs exfat-fuse fdisk gdisk qemu-utils squashfs-tools udftools
    install_moto
    install_sdk
    install_carriers
    install_browser
    stop >/dev/null 2>&1 || true
    mkdir -p "$STATE/tmp" "$STATE/db"
    chmod 755 "$STATE" "$STATE/tmp"
    write_signatures "$STATE/db"
    local clamd_port icap_port
    clamd_port=$(free_port)
    icap_port=$(free_port)

    cat > "$STATE/clamd.conf" <<CONF
Foreground yes
DatabaseDirectory $STATE/db
TemporaryDirectory $STATE/tmp
LocalSocket $STATE/clamd.sock
TCPSocket $clamd_port
TCPAddr 127.0.0.1
StreamMaxLength 25M
MaxFileSize 100M
MaxScanSize 400M
MaxRecursion 17
MaxFiles 10000
AlertExceedsMax yes
LogFile $STATE/clamd.log
PidFile $STATE/clamd.pid
CONF
    setsid clamd -c "$STATE/clamd.conf" > "$STATE/clamd.out" 2>&1 < /dev/null &
    echo $! > "$STATE/clamd.launch.pid"
    wait_for clamd clamd_ping "$STATE/clamd.sock"

    local modules=/usr/lib/x86_64-linux-gnu/c_icap
    [ -d "$modules" ] || modules=$(dirname "$(dpkg -L libc-icap-mod-virus-scan | grep '/virus_scan.so$' | head -1)")
    cat > "$STATE/c-icap.conf" <<CONF
PidFile $STATE/c-icap.pid
CommandsSocket $STATE/c-icap.ctl
Port 127.0.0.1:$icap_port
StartServers 1
MaxServers 2
MinSpareThreads 2
MaxSpareThreads 8
ThreadsPerChild 8
TmpDir $STATE/tmp
ModulesDir $modules
ServicesDir $modules
TemplateDir /usr/share/c_icap/templates/
LoadMagicFile /etc/c-icap/c-icap.magic
ServerLog $STATE/c-icap-server.log
AccessLog $STATE/c-icap-access.log
DebugLevel 1
Module common clamd_mod.so
clamd_mod.ClamdSocket $STATE/clamd.sock
Service antivirus_module virus_scan.so
virus_scan.DefaultEngine clamd
virus_scan.ScanFileTypes TEXT DATA EXECUTABLE ARCHIVE GIF JPEG MSOFFICE
virus_scan.MaxObjectSize 100M
ServiceAlias avscan virus_scan?allow204=on&sizelimit=off&mode=simple
CONF
    setsid c-icap -N -f "$STATE/c-icap.conf" > "$STATE/c-icap.out" 2>&1 < /dev/null &
    echo $! > "$STATE/c-icap.launch.pid"
    wait_for c-icap icap_options "$icap_port"

    local s3_port
    s3_port=$(free_port)
    setsid "$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$s3_port" > "$STATE/moto.log" 2>&1 < /dev/null &
    echo $! > "$STATE/moto.launch.pid"
    wait_for moto http_ok "http://127.0.0.1:$s3_port/"

    local redis_port
    redis_port=$(free_port)
    setsid redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$STATE" > "$STATE/redis.log" 2>&1 < /dev/null &
    echo $! > "$STATE/redis.launch.pid"
    wait_for redis redis_ping "$redis_port"

    cat > "$STATE/env" <<ENV
export VERDICT_TEST_CLAMD_TCP=127.0.0.1:$clamd_port
export VERDICT_TEST_CLAMD_SOCKET=$STATE/clamd.sock
export VERDICT_TEST_CLAMD_DB=$STATE/db
export VERDICT_TEST_ICAP_URL=icap://127.0.0.1:$icap_port/avscan
export VERDICT_TEST_S3_ENDPOINT=http://127.0.0.1:$s3_port
export VERDICT_TEST_S3_LOG=$STATE/moto.log
export VERDICT_TEST_REDIS_URL=redis://127.0.0.1:$redis_port/
export VERDICT_TEST_SDK_PYTHON=$SDK_VENV/bin/python
export VERDICT_TEST_BROWSER_PYTHON=$BROWSER_VENV/bin/python
export VERDICT_TEST_MSOFFCRYPTO=$CARRIER_VENV/bin/msoffcrypto-tool
export VERDICT_TEST_CARRIER_PYTHON=$CARRIER_VENV/bin/python
export VERDICT_TEST_RAR_SAMPLES=$RAR_SAMPLES/rarfile-4.2/test/files
export VERDICT_TEST_CLAMAV_TESTFILES=/usr/share/clamav-testfiles
export AWS_ACCESS_KEY_ID=verdict-test
export AWS_SECRET_ACCESS_KEY=verdict-test
export AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
ENV
}

stop() {
    for name in redis moto c-icap clamd; do
        local pidfile="$STATE/$name.launch.pid"
        if [ -f "$pidfile" ]; then
            local pid
            pid=$(cat "$pidfile")
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
            rm -f "$pidfile"
        fi
    done
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
