//! BinHex 4.0 (classic Mac files in mail): six-bit text between colons, run-length encoded,
//! holding a header with the file's name and its data and resource forks, both yielded.

use std::io::{self, Read};
use std::sync::LazyLock;

use super::Format;
use super::text::{Decoder, SixBits, six_bit_values};
use crate::decompress::{Codec, Counting, stream_decoder};
use crate::formats::members::{Declared, Exact, Members, Taken};

pub(super) const FORMAT: Format = Format {
    name: "binhex",
    identify: |data| marker(data).is_some(),
    expand,
};

const MARKER: &[u8] = b"(This file must be converted with BinHex";
/// Built once: identification runs on every object of every scan.
static FINDER: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new(MARKER));
/// The marker line must start within this many bytes (mail bodies put a little text first).
const SEARCH: usize = 8 << 10;
/// BinHex's six-bit alphabet; `:` ends the data.
static SIX_BIT: [u8; 256] = six_bit_values(
    b"!\"#$%&'()*+,-012345689@ABCDEFGHIJKLMNPQRSTUVXYZ[`abcdefhijklmpqr",
    &[],
);

fn marker(data: &[u8]) -> Option<usize> {
    let window = &data[..data.len().min(SEARCH + MARKER.len())];
    // BinHex is text: binary data is turned down at its first NUL.
    if memchr::memchr(0, window).is_some() {
        return None;
    }
    FINDER
        .find_iter(window)
        .find(|&at| at == 0 || window[at - 1] == b'\n')
}

fn expand(members: &mut Members<'_>, data: &[u8]) {
    let Some(at) = marker(data) else { return };
    let after = &data[at..];
    let Some(start) = memchr::memchr(b'\n', after)
        .and_then(|line| memchr::memchr(b':', &after[line..]).map(|colon| line + colon + 1))
    else {
        return members.corrupt("BinHex file", "no data after the marker line");
    };
    let (counting, consumed) =
        Counting::new(Decoder::new(&after[start..], SixBits::new(&SIX_BIT, b':')));
    let mut reader = match stream_decoder(Codec::BinHexRle, counting) {
        Ok(reader) => reader,
        Err(e) => return members.corrupt("BinHex file", e),
    };
    let (name, data_len, rsrc_len) = match header(&mut reader) {
        Ok(header) => header,
        Err(e) => return members.corrupt("BinHex header", e),
    };
    let child = members.child(&name);
    if members.admit(&child, Declared::size(data_len)) {
        let mut fork = Exact::new((&mut reader).take(data_len), data_len);
        if members.read(&child, &mut fork, Some(consumed.clone())) != Taken::Read {
            return;
        }
    } else {
        return;
    }
    let mut crc = [0u8; 2];
    if rsrc_len == 0 || reader.read_exact(&mut crc).is_err() {
        return;
    }
    let child = members.child(&format!("{name}.rsrc"));
    if members.admit(&child, Declared::size(rsrc_len)) {
        let mut fork = Exact::new((&mut reader).take(rsrc_len), rsrc_len);
        members.read(&child, &mut fork, Some(consumed));
    }
}

/// Name length, name, version, type, creator, flags, data length, resource length, CRC.
fn header(reader: &mut dyn Read) -> io::Result<(String, u64, u64)> {
    let mut len = [0u8; 1];
    reader.read_exact(&mut len)?;
    let mut name = vec![0u8; usize::from(len[0])];
    reader.read_exact(&mut name)?;
    let mut fixed = [0u8; 1 + 4 + 4 + 2 + 4 + 4 + 2];
    reader.read_exact(&mut fixed)?;
    let data_len = u32::from_be_bytes([fixed[11], fixed[12], fixed[13], fixed[14]]);
    let rsrc_len = u32::from_be_bytes([fixed[15], fixed[16], fixed[17], fixed[18]]);
    // Mac Roman names: ASCII is what matters for a path.
    let name: String = name
        .iter()
        .map(|&b| if b.is_ascii() { char::from(b) } else { '_' })
        .collect();
    let name = name.replace(['/', '\\'], "_");
    Ok((name, u64::from(data_len), u64::from(rsrc_len)))
}
