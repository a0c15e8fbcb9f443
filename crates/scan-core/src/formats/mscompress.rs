//! MS-Compress files, as `compress.exe` wrote them for Windows 3.x and DOS installers
//! (`SETUP.EX_`, `clam.ex_`): SZDD (LZSS) and KWAJ (stored, XOR, LZSS; its Huffman and MSZIP
//! methods are reported unsupported). One member: the expanded file.

use std::io::{Cursor, Read};

use super::Format;
use crate::decompress::{Codec, Counting, stream_decoder};
use crate::formats::members::{Declared, Exact, Members};
use crate::verdict::Reason;

const SZDD_MAGIC: &[u8] = b"SZDD\x88\xF0\x27\x33";
const KWAJ_MAGIC: &[u8] = b"KWAJ\x88\xF0\x27\xD1";

pub(super) const SZDD: Format = Format {
    name: "szdd",
    // The magic, then compression mode 'A' (the only one there is).
    identify: |data| data.starts_with(SZDD_MAGIC) && data.get(8) == Some(&b'A') && data.len() >= 14,
    expand: expand_szdd,
};

pub(super) const KWAJ: Format = Format {
    name: "kwaj",
    identify: |data| data.starts_with(KWAJ_MAGIC) && data.len() >= 14,
    expand: expand_kwaj,
};

fn expand_szdd(members: &mut Members<'_>, data: &[u8]) {
    // Header: magic, mode, the file name's last character, the expanded size.
    let last = data[9];
    let size = u64::from(u32::from_le_bytes([data[10], data[11], data[12], data[13]]));
    let name = expanded_name(members.path(), (last != 0).then_some(char::from(last)));
    lzss_member(members, &name, &data[14..], Some(size));
}

/// The expanded file. When its size is declared, ending short of it is damage, never a whole
/// file.
fn lzss_member(members: &mut Members<'_>, name: &str, compressed: &[u8], size: Option<u64>) {
    let child = members.child(name);
    let declared = Declared {
        size,
        compressed: Some(compressed.len() as u64),
    };
    if !members.admit(&child, declared) {
        return;
    }
    let (counting, consumed) = Counting::new(Cursor::new(compressed));
    let mut decoder = match stream_decoder(Codec::Lzss, counting) {
        Ok(decoder) => decoder,
        Err(e) => return members.member_problem(&child, Reason::Corrupt, e.to_string()),
    };
    match size {
        Some(size) => {
            let mut exact = Exact::new(decoder.take(size), size);
            members.read(&child, &mut exact, Some(consumed))
        }
        None => members.read(&child, &mut decoder, Some(consumed)),
    };
}

fn expand_kwaj(members: &mut Members<'_>, data: &[u8]) {
    let word = |at: usize| {
        data.get(at..at + 2)
            .map(|w| usize::from(u16::from_le_bytes([w[0], w[1]])))
    };
    let (Some(method), Some(offset), Some(flags)) = (word(8), word(10), word(12)) else {
        return members.corrupt("KWAJ file", "its header is cut short");
    };
    // Optional headers, in order, as the flags say: expanded length, an unknown word, extra
    // data with its length, the file name and extension, more extra data.
    let mut at = 14;
    let mut size = None;
    let mut file_name = String::new();
    if flags & 1 != 0 {
        size = data
            .get(at..at + 4)
            .map(|w| u64::from(u32::from_le_bytes([w[0], w[1], w[2], w[3]])));
        at += 4;
    }
    if flags & 2 != 0 {
        at += 2;
    }
    if flags & 4 != 0 {
        at += 2 + word(at).unwrap_or(0);
    }
    for (bit, max, separator) in [(8, 9, ""), (16, 4, ".")] {
        if flags & bit != 0 {
            let field: Vec<u8> = data
                .get(at..)
                .unwrap_or(&[])
                .iter()
                .take(max)
                .take_while(|b| **b != 0)
                .copied()
                .collect();
            at += field.len() + 1;
            if !field.is_empty() {
                file_name.push_str(separator);
                file_name.extend(field.iter().map(|&b| char::from(b)));
            }
        }
    }
    let Some(body) = data.get(offset..) else {
        return members.corrupt("KWAJ file", "its data offset is past the end");
    };
    let name = if file_name.is_empty() || file_name.starts_with('.') {
        expanded_name(members.path(), None)
    } else {
        file_name
    };
    match method {
        0 => {
            members.bytes(&name, body);
        }
        1 => {
            let flipped: Vec<u8> = body.iter().map(|b| b ^ 0xFF).collect();
            members.bytes(&name, &flipped);
        }
        2 => lzss_member(members, &name, body, size),
        other => {
            let child = members.child(&name);
            let message = format!(
                "KWAJ compression method {other} is not supported, so the file was not examined"
            );
            members.member_problem(&child, Reason::Unsupported, message);
        }
    }
}

/// The expanded file's name: the compressed one with its trailing `_` replaced by the
/// character the header kept (`SETUP.EX_` -> `SETUP.EXE`).
fn expanded_name(parent_path: &str, last: Option<char>) -> String {
    let parent = parent_path.rsplit('/').next().unwrap_or(parent_path);
    match (parent.strip_suffix('_'), last) {
        (Some(stem), Some(last)) => format!("{stem}{last}"),
        // mscompress appends the `_` and keeps no character.
        (Some(stem), None) if !stem.is_empty() => stem.to_owned(),
        _ => format!("{parent}.expanded"),
    }
}
