//! Symbian installation files (SIS, EPOC releases 3 to 6): a header of counts and pointers,
//! then file records, each pointing at its data, deflated with zlib unless the installer says
//! it is not. Each file becomes a member under its destination name. Symbian 9's SIS files are
//! a different format, recognised and reported unsupported.

use std::io::Cursor;

use super::Format;
use crate::decompress::{Codec, Counting, stream_decoder};
use crate::formats::members::{Declared, Members, Taken};
use crate::verdict::Reason;

/// UID3 of every SIS file, and UID2 of releases 3 to 5 and of release 6.
const UID3: u32 = 0x1000_0419;
const UID2_OLD: u32 = 0x1000_006D;
const UID2_R6: u32 = 0x1000_3A12;
/// Header option: the files are stored, not deflated.
const NO_COMPRESS: u16 = 0x0008;

pub(super) const FORMAT: Format = Format {
    name: "sis",
    identify: |data| {
        u32_at(data, 8) == Some(UID3) && matches!(u32_at(data, 4), Some(UID2_OLD | UID2_R6))
    },
    expand,
};

fn expand(members: &mut Members<'_>, data: &[u8]) {
    let field16 = |at| u16_at(data, at).map(usize::from);
    let (Some(languages), Some(files), Some(options), Some(at)) =
        (field16(18), field16(20), u16_at(data, 36), u32_at(data, 52))
    else {
        return members.corrupt("SIS file", "the header is cut short");
    };
    let release6 = u32_at(data, 4) == Some(UID2_R6);
    let compressed = options & NO_COMPRESS == 0;
    if !members.expect(files as u64) {
        return;
    }
    let mut at = at as usize;
    for _ in 0..files {
        if members.stopped() {
            return;
        }
        let Some(kind) = u32_at(data, at) else {
            return members.corrupt("SIS file", "a file record is cut short");
        };
        at += 4;
        let record = match kind {
            // One file, or one per language.
            0 | 1 => {
                let copies = if kind == 0 { 1 } else { languages.max(1) };
                match file_record(data, at, copies, release6) {
                    Some(record) => record,
                    None => return members.corrupt("SIS file", "a file record is cut short"),
                }
            }
            // If and else-if carry a condition of a given size; else and end-if nothing.
            3 | 4 => {
                let Some(size) = u32_at(data, at) else {
                    return members.corrupt("SIS file", "a condition record is cut short");
                };
                at = at.saturating_add(4 + size as usize);
                continue;
            }
            5 | 6 => continue,
            other => {
                let message = format!(
                    "SIS record type {other} is not read, so the files after it were not examined"
                );
                return members.problem(Reason::Unsupported, message);
            }
        };
        at = record.next;
        for (index, &(len, ptr, original)) in record.copies.iter().enumerate() {
            let name = if record.copies.len() > 1 {
                format!("{}#{index}", record.name)
            } else {
                record.name.clone()
            };
            if file(
                members,
                data,
                &name,
                compressed && record.has_data,
                (len, ptr, original),
            ) == Taken::Broken
            {
                return;
            }
        }
    }
}

struct Record {
    name: String,
    /// Length, offset and (release 6) original length of each language's copy.
    copies: Vec<(usize, usize, Option<u64>)>,
    /// False for a "null" file, which names a file the installer creates but carries no data.
    has_data: bool,
    next: usize,
}

/// A file record after its type: file type, details, source and destination names, then the
/// lengths and offsets of each copy (and, from release 6, their original lengths and a MIME type).
fn file_record(data: &[u8], at: usize, copies: usize, release6: bool) -> Option<Record> {
    let field = |i: usize| u32_at(data, at + 4 * i).map(|v| v as usize);
    let file_type = field(0)?;
    let (name_len, name_ptr) = (field(4)?, field(5)?);
    let lens = (0..copies)
        .map(|i| field(6 + i))
        .collect::<Option<Vec<_>>>()?;
    let ptrs = (0..copies)
        .map(|i| field(6 + copies + i))
        .collect::<Option<Vec<_>>>()?;
    let mut words = 6 + 2 * copies;
    let originals = if release6 {
        let originals = (0..copies)
            .map(|i| field(words + i).map(|v| Some(v as u64)))
            .collect::<Option<Vec<_>>>()?;
        words += copies + 2;
        originals
    } else {
        vec![None; copies]
    };
    let name = data.get(name_ptr..name_ptr.checked_add(name_len)?)?;
    let units: Vec<u16> = name
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let name = String::from_utf16_lossy(&units).replace('\\', "/");
    // `!:/sys/bin/app.exe`: the drive is chosen at install time.
    let name = name
        .split_once(":/")
        .map_or(name.as_str(), |(_, rest)| rest)
        .to_owned();
    Some(Record {
        name,
        copies: lens
            .into_iter()
            .zip(ptrs)
            .zip(originals)
            .map(|((len, ptr), original)| (len, ptr, original))
            .collect(),
        has_data: file_type != 4,
        next: at + 4 * words,
    })
}

fn file(
    members: &mut Members<'_>,
    data: &[u8],
    name: &str,
    deflated: bool,
    (len, ptr, original): (usize, usize, Option<u64>),
) -> Taken {
    let Some(body) = ptr.checked_add(len).and_then(|end| data.get(ptr..end)) else {
        let child = members.child(name);
        members.member_problem(
            &child,
            Reason::Corrupt,
            "the file lies past the end of the SIS file",
        );
        return Taken::Refused;
    };
    if !deflated {
        return members.bytes(name, body);
    }
    let (counting, consumed) = Counting::new(Cursor::new(body));
    let declared = match original {
        Some(size) => Declared::packed(size, len as u64),
        None => Declared::UNKNOWN,
    };
    match stream_decoder(Codec::Zlib, counting) {
        Ok(mut reader) => members.member(name, declared, &mut reader, Some(consumed)),
        Err(e) => {
            let child = members.child(name);
            members.member_problem(
                &child,
                Reason::Corrupt,
                format!("damaged SIS file data: {e}"),
            );
            Taken::Refused
        }
    }
}

fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    data.get(at..at + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    data.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}
