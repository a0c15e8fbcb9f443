#!/usr/bin/env bash
# Makes sure this machine can build Verdict: a C toolchain (for zstd and aws-lc), libarchive and the Rust
# toolchain pinned in rust-toolchain.toml. Safe to run again; installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

# libarchive-dev: RAR archives are read through the system's libarchive (scan-core's feature rar).
apt_install build-essential pkg-config ca-certificates libarchive-dev

toolchain=$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)
if ! command -v cargo >/dev/null 2>&1; then
    [ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
    if ! command -v rustup >/dev/null 2>&1; then
        # Debian 13 and Ubuntu 24.04 package rustup; older releases need it from rustup.rs.
        apt_install rustup || {
            echo "No Rust toolchain and no rustup package here: install rustup (https://rustup.rs), then run this again." >&2
            exit 1
        }
    fi
    rustup toolchain install "$toolchain" --profile minimal -c rustfmt -c clippy
fi
cargo --version
