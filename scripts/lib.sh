# Shared shell helpers for Verdict's scripts. Sourced, not run.

# Run as root, or through sudo when not root.
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=""
# Install Debian packages that are missing; one `apt-get update` per run, only when needed.
apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "==> installing ${missing[*]}"
    if [ -z "$APT_UPDATED" ]; then
        as_root apt-get update -qq
        APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

log() { echo "==> $*"; }

# Every release build of the scripts and benchmarks is this one command, so they all share one
# set of artifacts: building a different subset of packages would unify features differently
# and recompile most of the tree. Cargo's own progress bar shows while it builds.
build_release() {
    log "building (release; the first time takes a few minutes, later runs reuse it)"
    cargo build --release --locked --bins --examples
}
