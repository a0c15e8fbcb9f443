//! NSIS installers' data (`NullsoftInst`): the block an NSIS setup program carries after its
//! executable stub, found there by [`super::embedded`]. Its first header is followed by the
//! install script's header and the files, either each compressed on its own (a length with
//! the top bit set, then zlib's raw deflate or LZMA) or all as one solid stream of
//! length-prefixed items. The header becomes `header` and every other item `block-N`; NSIS's
//! own bzip2 variant is recognised and reported unsupported.

use std::io::{self, Cursor, Read};

use super::Format;
use crate::decompress::{Codec, Counting, stream_decoder};
use crate::formats::members::{Declared, Exact, Members, Taken};
use crate::verdict::Reason;

/// The first header's signature, after its 4-byte flags.
pub(super) const SIGNATURE: &[u8] = b"\xEF\xBE\xAD\xDENullsoftInst";
/// Flags, signature, header length and data length.
const FIRST_HEADER: usize = 28;

pub(super) const FORMAT: Format = Format {
    name: "nsis",
    identify: |data| data.get(4..20) == Some(SIGNATURE) && data.len() >= FIRST_HEADER,
    expand,
};

/// The largest script header probed when telling the two layouts apart.
const MAX_PROBED_HEADER: usize = 16 << 20;

/// How the installer's data is compressed, judged from its first bytes the way NSIS's own
/// readers do: LZMA starts with its properties byte (always 0x5D from NSIS) and a dictionary
/// size, NSIS's bzip2 with `1`, and anything else is zlib's raw deflate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compressor {
    Lzma,
    Bzip2,
    Deflate,
}

fn compressor(data: &[u8]) -> Compressor {
    match data {
        [0x5D, a, b, c, d, ..] if u32::from_le_bytes([*a, *b, *c, *d]).count_ones() <= 2 => {
            Compressor::Lzma
        }
        [b'1', ..] => Compressor::Bzip2,
        _ => Compressor::Deflate,
    }
}

fn decoder<'a>(
    compressor: Compressor,
    input: Counting<Cursor<&'a [u8]>>,
) -> io::Result<Box<dyn Read + 'a>> {
    match compressor {
        Compressor::Lzma => stream_decoder(Codec::LzmaRaw, input),
        Compressor::Deflate => stream_decoder(Codec::Deflate, input),
        Compressor::Bzip2 => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "NSIS's own bzip2 variant is not supported",
        )),
    }
}

fn expand(members: &mut Members<'_>, data: &[u8]) {
    let u32_at = |at: usize| {
        data.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let (Some(header_len), Some(data_len)) = (u32_at(20), u32_at(24)) else {
        return members.corrupt("NSIS installer", "the first header is cut short");
    };
    let end = data_len.min(data.len());
    let body = data.get(FIRST_HEADER..end).unwrap_or(&[]);
    if non_solid_header(body, header_len) {
        non_solid(members, body);
    } else {
        solid(members, body, header_len);
    }
    if data_len > data.len() && !members.stopped() {
        members.corrupt("NSIS installer", "its data is cut short");
    }
}

/// Whether the data is a series of blocks: the first one, the script's header, is stored or
/// decodes to exactly the length the first header gives.
fn non_solid_header(body: &[u8], header_len: usize) -> bool {
    // The probe decodes outside the caps, so only a header of a plausible size is tried
    // (NSIS headers are kilobytes); a larger claim is left to the solid reader's caps.
    if header_len > MAX_PROBED_HEADER {
        return false;
    }
    let Some((compressed, block, _)) = block_at(body, 0) else {
        return false;
    };
    if !compressed {
        return block.len() == header_len;
    }
    let kind = compressor(block);
    if kind == Compressor::Bzip2 {
        // Not decoded, so not checked: a block that fits is taken for one, to be reported.
        return true;
    }
    let (counting, _) = Counting::new(Cursor::new(block));
    let Ok(decoder) = decoder(kind, counting) else {
        return false;
    };
    let mut probe = Vec::new();
    decoder
        .take(header_len as u64 + 1)
        .read_to_end(&mut probe)
        .is_ok_and(|_| probe.len() == header_len)
}

/// The block at `at`: whether it is compressed, its bytes, and where the next one starts.
fn block_at(body: &[u8], at: usize) -> Option<(bool, &[u8], usize)> {
    let word = u32::from_le_bytes(body.get(at..at + 4)?.try_into().ok()?);
    let len = (word & 0x7FFF_FFFF) as usize;
    let block = body.get(at + 4..(at + 4).checked_add(len)?)?;
    Some((word & 0x8000_0000 != 0, block, at + 4 + len))
}

fn block_name(index: usize) -> String {
    if index == 0 {
        "header".to_owned()
    } else {
        format!("block-{index}")
    }
}

/// Blocks compressed one by one. After the last comes the installer's CRC-32.
fn non_solid(members: &mut Members<'_>, body: &[u8]) {
    let mut at = 0;
    for index in 0.. {
        if members.stopped() || body.len() - at <= 4 {
            return;
        }
        let Some((compressed, block, next)) = block_at(body, at) else {
            return members.corrupt(
                "NSIS installer",
                format!("block {index} runs past the end of its data"),
            );
        };
        at = next;
        let name = block_name(index);
        if !compressed {
            members.bytes(&name, block);
            continue;
        }
        let (counting, consumed) = Counting::new(Cursor::new(block));
        match decoder(compressor(block), counting) {
            Ok(mut reader) => {
                members.member(&name, Declared::UNKNOWN, &mut reader, Some(consumed));
            }
            Err(e) => not_decoded(members, &name, &e),
        }
    }
}

/// One stream of items, each a 32-bit length and its bytes; the first is the header.
fn solid(members: &mut Members<'_>, body: &[u8], header_len: usize) {
    let (counting, consumed) = Counting::new(Cursor::new(body));
    let mut reader = match decoder(compressor(body), counting) {
        Ok(reader) => reader,
        Err(e) => return not_decoded(members, "header", &e),
    };
    for index in 0.. {
        if members.stopped() {
            return;
        }
        let mut word = [0u8; 4];
        match read_length(&mut reader, &mut word) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) if members.limit_in(&e) => return,
            Err(e) => return members.corrupt("NSIS solid data", e),
        }
        let len = u64::from(u32::from_le_bytes(word) & 0x7FFF_FFFF);
        if index == 0 && len != header_len as u64 {
            return members.corrupt("NSIS solid data", "its first item is not the header");
        }
        let mut item = Exact::new((&mut reader).take(len), len);
        let taken = members.member(
            &block_name(index),
            Declared::size(len),
            &mut item,
            Some(consumed.clone()),
        );
        if taken == Taken::Broken {
            return;
        }
    }
}

/// Reads an item's length; false at the clean end of the stream.
fn read_length(reader: &mut dyn Read, word: &mut [u8; 4]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < 4 {
        match reader.read(&mut word[filled..])? {
            0 if filled == 0 => return Ok(false),
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => filled += n,
        }
    }
    Ok(true)
}

fn not_decoded(members: &mut Members<'_>, name: &str, err: &io::Error) {
    let child = members.child(name);
    let reason = match err.kind() {
        io::ErrorKind::Unsupported | io::ErrorKind::OutOfMemory => Reason::Unsupported,
        _ => Reason::Corrupt,
    };
    members.member_problem(
        &child,
        reason,
        format!("cannot decode the NSIS data: {err}"),
    );
}
