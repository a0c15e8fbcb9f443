//! Windows executables packed by UPX: the sections are one compressed stream, which UPX's
//! pack header (`UPX!`, at the end of the executable's headers) describes. A stream packed
//! with NRV2B, the method UPX picks for Windows executables unless told otherwise, is unpacked
//! and scanned as `upx-unpacked` (the image before UPX's call filter is undone, so strings and
//! embedded files read as they were). Other methods (NRV2D, NRV2E, LZMA) leave the executable
//! scanned as it is, as any other packer does.

use std::io::Cursor;

use super::embedded::pe_image_end;
use crate::decompress::{Codec, Counting, stream_decoder};
use crate::expand::{Declared, Members};

/// UPX's header: `UPX!`, version, format, method, level, two checksums, the unpacked and
/// packed lengths, and more, 32 bytes in all from version 10 on.
const HEADER: usize = 32;
/// Pack formats of Windows executables: 32-bit and 64-bit PE.
const WIN32_PE: u8 = 9;
const WIN64_PE: u8 = 36;
/// NRV2B with little-endian 32-bit flag words.
const NRV2B_LE32: u8 = 2;
/// The largest image unpacked: the decoder keeps all of it as its history.
const MAX_UNPACKED: usize = 64 << 20;

/// A packed stream found in an executable.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Packed {
    start: usize,
    compressed: usize,
    size: usize,
}

/// The NRV2B stream of a UPX-packed executable, if `data` is one.
pub(crate) fn packed(data: &[u8]) -> Option<Packed> {
    let image_end = pe_image_end(data)?;
    // The header sits in the executable's headers, before its first section's data.
    let head = &data[..data.len().min(image_end).min(8192)];
    let at = memchr::memmem::find(head, b"UPX!")?;
    let header = data.get(at..at + HEADER)?;
    let (version, format, method) = (header[4], header[5], header[6]);
    let u32_at = |i: usize| {
        u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]) as usize
    };
    let (size, compressed) = (u32_at(16), u32_at(20));
    let start = at + HEADER;
    (version >= 10
        && matches!(format, WIN32_PE | WIN64_PE)
        && method == NRV2B_LE32
        && size <= MAX_UNPACKED)
        .then_some(Packed {
            start,
            compressed,
            size,
        })
}

/// Unpacks the stream as the member `upx-unpacked`.
pub(crate) fn unpack(members: &mut Members<'_, '_>, data: &[u8], packed: Packed) {
    // A cut executable is decoded as far as it goes, and reported damaged there.
    let end = packed
        .start
        .saturating_add(packed.compressed)
        .min(data.len());
    let input = &data[packed.start.min(end)..end];
    let (counting, consumed) = Counting::new(Cursor::new(input));
    let declared = Declared::packed(packed.size as u64, packed.compressed as u64);
    match stream_decoder(Codec::Nrv2b { size: packed.size }, counting) {
        Ok(mut reader) => {
            members.member("upx-unpacked", declared, &mut reader, Some(consumed));
        }
        Err(e) => members.corrupt("UPX-packed executable", e),
    }
}
