//! Tar archives: ustar, GNU, pax, and v7 recognised by its header checksum.

use std::io::Cursor;

use super::Format;
use crate::expand::{Declared, Members, Taken};
use crate::filetype::is_tar;

pub(super) const FORMAT: Format = Format {
    name: "tar",
    identify: is_tar,
    expand,
};

fn expand(members: &mut Members<'_, '_>, data: &[u8]) {
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
