//! Windows executables packed by UPX: the sections are one compressed stream, which UPX's
//! pack header (`UPX!`, at the end of the executable's headers) describes. A stream packed
//! with NRV2B, the method UPX picks for Windows executables unless told otherwise, is unpacked
//! and scanned as `upx-unpacked` (the image before UPX's call filter is undone, so strings and
//! embedded files read as they were). Other methods (NRV2D, NRV2E, LZMA), and streams that do
//! not decode, leave the executable scanned as it is, as any other packer does.

use std::io::{self, Cursor, Read};

use super::embedded::pe_image_end;
use crate::decompress::{Codec, Counting, stream_decoder};
use crate::formats::members::{Declared, Members};

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

/// Unpacks the stream as the member `upx-unpacked`. A stream that does not decode (a packer
/// stacked on UPX, which encrypts it, or a cut file) leaves the executable scanned as packed,
/// as other packers are: unpacking is an extra view of an executable, not a carrier that
/// holds files, so a failure hides nothing that was visible before.
pub(crate) fn unpack(members: &mut Members<'_>, data: &[u8], packed: Packed) {
    let end = packed
        .start
        .saturating_add(packed.compressed)
        .min(data.len());
    let input = &data[packed.start.min(end)..end];
    let (counting, _) = Counting::new(Cursor::new(input));
    // Bounded by the declared size, which is at most `MAX_UNPACKED`.
    let mut image = Vec::new();
    let decoded = stream_decoder(Codec::Nrv2b { size: packed.size }, counting)
        .and_then(|mut reader| reader.read_to_end(&mut image));
    if let Err(e) = decoded.and_then(|_| {
        (image.len() == packed.size)
            .then_some(())
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "the stream ends early"))
    }) {
        tracing::debug!(path = members.path(), error = %e, "UPX stream not unpacked; scanned as packed");
        return;
    }
    let child = members.child("upx-unpacked");
    if members.admit(
        &child,
        Declared::packed(packed.size as u64, packed.compressed as u64),
    ) {
        members.read(&child, &mut image.as_slice(), None);
    }
}
