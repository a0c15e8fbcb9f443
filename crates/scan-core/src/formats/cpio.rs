//! cpio archives: the "new" ASCII format (`newc`/`crc`: initramfs, RPM payloads) through the
//! cpio crate, and the old ones by hand: portable ASCII (`odc`, octal fields) and binary, in
//! either byte order.

use std::io::Cursor;

use super::Format;
use crate::formats::members::{Declared, Exact, Members, Taken};

pub(super) const FORMAT: Format = Format {
    name: "cpio",
    identify: |data| data.starts_with(b"070701") || data.starts_with(b"070702"),
    expand,
};

const TYPE_MASK: u32 = 0o170000;
const REGULAR: u32 = 0o100000;

pub(super) const ODC: Format = Format {
    name: "cpio",
    identify: |data| data.starts_with(b"070707") && odc_header(data).is_some(),
    expand: |members, data| expand_old(members, data, odc_header),
};

pub(super) const BINARY: Format = Format {
    name: "cpio",
    identify: |data| binary_header(data).is_some(),
    expand: |members, data| expand_old(members, data, binary_header),
};

/// One header of an old-format archive.
struct OldHeader {
    mode: u32,
    name: std::ops::Range<usize>,
    data: std::ops::Range<usize>,
    /// Where the next header starts (after the binary format's padding).
    next: usize,
}

/// Walks an old-format archive: header, name, data, header... up to `TRAILER!!!`.
fn expand_old(members: &mut Members<'_>, data: &[u8], header: fn(&[u8]) -> Option<OldHeader>) {
    let mut at = 0;
    while !members.stopped() {
        let Some(entry) = header(&data[at..]) else {
            return members.corrupt("cpio archive", format!("no valid header at offset {at}"));
        };
        let name = String::from_utf8_lossy(&data[at + entry.name.start..at + entry.name.end]);
        if name == "TRAILER!!!" {
            return;
        }
        let end = at + entry.data.end;
        let Some(bytes) = data.get(at + entry.data.start..end) else {
            let child = members.child(&name);
            return members.member_problem(
                &child,
                crate::verdict::Reason::Corrupt,
                "the member runs past the end of the archive",
            );
        };
        if entry.mode & TYPE_MASK == REGULAR && !bytes.is_empty() {
            members.bytes(&name, bytes);
        }
        at += entry.next;
        if at >= data.len() {
            return members.corrupt("cpio archive", "it ends without its trailer");
        }
    }
}

/// The `odc` header: 76 bytes of octal fields, then the name, then the data.
fn odc_header(data: &[u8]) -> Option<OldHeader> {
    let header = data.get(..76)?;
    if !header.starts_with(b"070707") {
        return None;
    }
    let octal = |range: std::ops::Range<usize>| -> Option<u64> {
        let field = std::str::from_utf8(&header[range]).ok()?;
        u64::from_str_radix(field, 8).ok()
    };
    let mode = u32::try_from(octal(18..24)?).ok()?;
    let name_size = usize::try_from(octal(59..65)?).ok()?;
    let file_size = usize::try_from(octal(65..76)?).ok()?;
    if name_size == 0 || name_size > 4096 || data.get(76 + name_size - 1) != Some(&0) {
        return None;
    }
    let data_start = 76 + name_size;
    let data_end = data_start.checked_add(file_size)?;
    Some(OldHeader {
        mode,
        name: 76..76 + name_size - 1,
        data: data_start..data_end,
        next: data_end,
    })
}

/// The binary header: 13 16-bit words in the archive's byte order (told by the magic 070707),
/// the name padded to an even length, then the data, padded too.
fn binary_header(data: &[u8]) -> Option<OldHeader> {
    let header = data.get(..26)?;
    let little = match header[..2] {
        [0xC7, 0x71] => true,
        [0x71, 0xC7] => false,
        _ => return None,
    };
    let word = |i: usize| -> u32 {
        let pair = [header[2 * i], header[2 * i + 1]];
        u32::from(if little {
            u16::from_le_bytes(pair)
        } else {
            u16::from_be_bytes(pair)
        })
    };
    let mode = word(3);
    let name_size = word(10) as usize;
    let file_size = (word(11) << 16 | word(12)) as usize;
    if name_size == 0 || name_size > 4096 || data.get(26 + name_size - 1) != Some(&0) {
        return None;
    }
    // Names and data are padded to an even length.
    let data_start = 26 + name_size + name_size % 2;
    let data_end = data_start + file_size;
    Some(OldHeader {
        mode,
        name: 26..26 + name_size - 1,
        data: data_start..data_end,
        next: data_end + data_end % 2,
    })
}

fn expand(members: &mut Members<'_>, data: &[u8]) {
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
