//! Tar archives: ustar, GNU, pax, and v7 recognised by its header checksum.

use std::io::Cursor;

use super::Format;
use crate::formats::members::{Declared, Members, Taken};

pub(super) const FORMAT: Format = Format {
    name: "tar",
    identify: is_tar,
    expand,
};

/// A tar header is 512 bytes; POSIX and GNU put a magic at 257, old v7 archives have none, so a
/// valid header checksum identifies them (the same test GNU `file` uses).
fn is_tar(data: &[u8]) -> bool {
    let Some(header) = data.get(..512) else {
        return false;
    };
    if &header[257..262] == b"ustar" {
        return true;
    }
    let Some(stored) = parse_octal(&header[148..156]) else {
        return false;
    };
    let sum: u64 = header
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                u64::from(b' ')
            } else {
                u64::from(*b)
            }
        })
        .sum();
    // An all-zero block has checksum 256 of spaces; refuse it, plain zeros are not a tar.
    header[0] != 0 && stored == sum
}

fn parse_octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?;
    let text = text.trim_matches(|c: char| c == ' ' || c == '\0');
    if text.is_empty() {
        return None;
    }
    u64::from_str_radix(text, 8).ok()
}

fn expand(members: &mut Members<'_>, data: &[u8]) {
    let mut archive = tar::Archive::new(Cursor::new(data));
    let entries = match archive.entries() {
        Ok(entries) => entries,
        Err(e) => return members.corrupt("tar", e),
    };
    for entry in entries {
        if members.stopped() {
            return;
        }
        // The tar crate cannot resynchronise after a bad header.
        let mut entry = match entry {
            Ok(entry) => entry,
            Err(e) => return members.corrupt("tar", e),
        };
        let kind = entry.header().entry_type();
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let child = members.child(&name);
        if !(kind.is_file() || kind.is_contiguous() || kind.is_gnu_sparse()) {
            continue;
        }
        if !members.admit(&child, Declared::size(entry.size())) {
            continue;
        }
        if members.read(&child, &mut entry, None) == Taken::Broken {
            return;
        }
    }
}
