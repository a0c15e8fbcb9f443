//! cpio archives in the "new" ASCII format (`newc`/`crc`: initramfs, RPM payloads).

use std::io::Cursor;

use super::Format;
use crate::expand::{Declared, Exact, Members, Taken};

pub(super) const FORMAT: Format = Format {
    name: "cpio",
    identify: |data| data.starts_with(b"070701") || data.starts_with(b"070702"),
    expand,
};

fn expand(members: &mut Members<'_, '_>, data: &[u8]) {
    const TYPE_MASK: u32 = 0o170000;
    const REGULAR: u32 = 0o100000;
    let mut cursor = Cursor::new(data);
    loop {
        if members.stopped() {
            return;
        }
        let mut entry = match cpio::newc::Reader::new(cursor) {
            Ok(entry) => entry,
            Err(e) => return members.corrupt("cpio archive", e),
        };
        if entry.entry().is_trailer() {
            return;
        }
        let (mode, size) = (entry.entry().mode(), u64::from(entry.entry().file_size()));
        let child = members.child(entry.entry().name());
        if mode & TYPE_MASK == REGULAR
            && size > 0
            && members.admit(&child, Declared::size(size))
            && members.read(&child, &mut Exact::new(&mut entry, size), None) == Taken::Broken
        {
            return;
        }
        cursor = match entry.finish() {
            Ok(cursor) => cursor,
            Err(e) => return members.corrupt("cpio archive", e),
        };
    }
}
