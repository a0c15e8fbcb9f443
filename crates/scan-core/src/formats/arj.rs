//! ARJ archives (`60 EA`): a main header, then for each file a header and its data, each
//! header guarded by a CRC-32. Stored members and methods 1 to 4 are decoded; encrypted
//! ("garbled") members and members split across volumes are recognised and reported.

use std::io::Cursor;

use super::Format;
use crate::decompress::{Codec, Counting, stream_decoder};
use crate::formats::members::{Declared, Exact, Members, Taken};
use crate::verdict::Reason;

pub(super) const FORMAT: Format = Format {
    name: "arj",
    // The main header must hold together: a sane size, the comment-header type every ARJ
    // main header has, and its CRC.
    identify: |data| {
        data.starts_with(&[0x60, 0xEA])
            && matches!(header_at(data, 0), Ok(Some(h)) if h.basic.get(6) == Some(&2))
    },
    expand,
};

/// The largest basic header ARJ writes.
const MAX_HEADER: usize = 2600;
/// Header flags.
const GARBLED: u8 = 0x01;
const VOLUME: u8 = 0x04;
const EXTFILE: u8 = 0x08;
/// File types that carry no data.
const DIRECTORY: u8 = 3;
const VOLUME_LABEL: u8 = 4;

/// One header: its basic part (after the signature and size) and where the data after it
/// (and after its extended headers) starts.
struct Header<'d> {
    basic: &'d [u8],
    data_at: usize,
}

/// The header at `at`: `None` for the empty header that ends the archive.
fn header_at(data: &[u8], at: usize) -> Result<Option<Header<'_>>, String> {
    let short = || "a header is cut short".to_owned();
    if data.get(at..at + 2) != Some(&[0x60, 0xEA]) {
        return Err(format!("no header signature at offset {at}"));
    }
    let size = data
        .get(at + 2..at + 4)
        .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
        .ok_or_else(short)?;
    if size == 0 {
        return Ok(None);
    }
    if size > MAX_HEADER {
        return Err(format!("a header of {size} bytes"));
    }
    let basic = data.get(at + 4..at + 4 + size).ok_or_else(short)?;
    let crc = data.get(at + 4 + size..at + 8 + size).ok_or_else(short)?;
    if crc32fast::hash(basic).to_le_bytes() != crc {
        return Err(format!("the header at offset {at} fails its CRC"));
    }
    // Extended headers: a size, that many bytes and their CRC, until a size of zero.
    let mut next = at + 8 + size;
    loop {
        let ext = data
            .get(next..next + 2)
            .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
            .ok_or_else(short)?;
        next += 2;
        if ext == 0 {
            break;
        }
        next += ext + 4;
    }
    Ok(Some(Header {
        basic,
        data_at: next,
    }))
}

fn expand(members: &mut Members<'_>, data: &[u8]) {
    let mut at = match header_at(data, 0) {
        Ok(Some(main)) => main.data_at,
        Ok(None) => return members.corrupt("ARJ archive", "an empty main header"),
        Err(e) => return members.corrupt("ARJ archive", e),
    };
    loop {
        if members.stopped() {
            return;
        }
        let header = match header_at(data, at) {
            Ok(Some(header)) => header,
            Ok(None) => return,
            Err(e) => return members.corrupt("ARJ archive", e),
        };
        let basic = header.basic;
        if basic.len() < 30 {
            return members.corrupt("ARJ archive", "a file header is too short");
        }
        let first = usize::from(basic[0]).min(basic.len());
        let (flags, method, file_type) = (basic[4], basic[5], basic[6]);
        let u32_at =
            |i: usize| u32::from_le_bytes([basic[i], basic[i + 1], basic[i + 2], basic[i + 3]]);
        let (compressed, original) = (u64::from(u32_at(12)), u64::from(u32_at(16)));
        let name_field = &basic[first..];
        let name_len = memchr::memchr(0, name_field).unwrap_or(name_field.len());
        let name = String::from_utf8_lossy(&name_field[..name_len]).replace('\\', "/");
        let start = header.data_at;
        at = start.saturating_add(compressed as usize);
        if matches!(file_type, DIRECTORY | VOLUME_LABEL) {
            continue;
        }
        let body = data.get(start..at.min(data.len())).unwrap_or(&[]);
        if member(members, &name, flags, method, body, compressed, original) == Taken::Broken {
            return;
        }
        if at > data.len() {
            return members.corrupt("ARJ archive", "the last member is cut short");
        }
    }
}

/// Decodes one member, or records why it cannot be.
fn member(
    members: &mut Members<'_>,
    name: &str,
    flags: u8,
    method: u8,
    body: &[u8],
    compressed: u64,
    original: u64,
) -> Taken {
    let not_examined = |members: &mut Members<'_>, reason, message: &str| {
        let child = members.child(name);
        members.member_problem(&child, reason, message);
        Taken::Refused
    };
    if flags & GARBLED != 0 {
        return not_examined(
            members,
            Reason::Encrypted,
            "the ARJ member is encrypted (garbled)",
        );
    }
    if flags & (VOLUME | EXTFILE) != 0 {
        let message = "the ARJ member continues in another volume of a multi-volume archive, so it was not examined";
        return not_examined(members, Reason::Unsupported, message);
    }
    let (counting, consumed) = Counting::new(Cursor::new(body));
    match method {
        0 => members.member(
            name,
            Declared::size(original),
            &mut Exact::new(counting, original),
            None,
        ),
        1..=4 => {
            let decoder = match stream_decoder(
                Codec::Arj {
                    method,
                    size: original,
                },
                counting,
            ) {
                Ok(decoder) => decoder,
                Err(e) => return not_examined(members, Reason::Corrupt, &e.to_string()),
            };
            members.member(
                name,
                Declared::packed(original, compressed),
                &mut Exact::new(decoder, original),
                Some(consumed),
            )
        }
        other => {
            let message =
                format!("ARJ method {other} is not supported, so the member was not examined");
            not_examined(members, Reason::Unsupported, &message)
        }
    }
}
