//! Zip archives (and everything built on them: docx, xlsx, jar, apk...): members read through
//! the zip crate, with overlapping entries refused and inconsistent headers reported.

use std::io::{self, Read, Seek, SeekFrom};

use zip::ZipArchive;
use zip::result::ZipError;

use super::Format;
use crate::decompress::DECODER_MEMORY_LIMIT;
use crate::decompress::{Codec, Counting, stream_decoder};
use crate::formats::members::{Declared, Members};
use crate::limits::Limit;
use crate::verdict::Reason;

pub(super) const FORMAT: Format = Format {
    name: "zip",
    identify,
    expand,
};

fn identify(data: &[u8]) -> bool {
    data.starts_with(b"PK\x03\x04")
        || data.starts_with(b"PK\x05\x06")
        || data.starts_with(b"PK\x07\x08")
}

const ENCRYPTED: &str = "the member is encrypted, so it could not be examined";

fn expand(members: &mut Members<'_>, data: &[u8]) {
    let shift = offsets_shift(data);
    let (counting, consumed) = Counting::new(Shifted {
        data,
        shift,
        position: 0,
    });
    let mut archive = match ZipArchive::new(counting) {
        Ok(archive) => archive,
        Err(e) => return zip_error(members, None, &e),
    };
    if !members.expect(archive.len() as u64) {
        return;
    }
    match archive.has_overlapping_entries() {
        Ok(false) => {}
        Ok(true) => return members.limit(Limit::ZipOverlappingEntries),
        Err(e) => return zip_error(members, None, &e),
    }
    if let Err(e) = archive.validate_header_consistency() {
        // Mismatched local and central headers or hidden entries: tools disagree on what the
        // archive holds. Scan what the central directory lists, but never call it clean.
        zip_error(members, None, &e);
    }
    for index in 0..archive.len() {
        if members.stopped() {
            return;
        }
        let (name, is_dir, encrypted, size, compressed_size, method, lzma_dict, placed) =
            match archive.by_index_raw(index) {
                Ok(mut raw) => (
                    raw.name().unwrap_or_default().into_owned(),
                    raw.is_dir(),
                    raw.encrypted(),
                    raw.size(),
                    raw.compressed_size(),
                    raw.compression(),
                    if raw.compression() == zip::CompressionMethod::Lzma {
                        lzma_dictionary(&mut raw)
                    } else {
                        None
                    },
                    raw.data_start().map(|start| Placed {
                        start,
                        crc32: raw.crc32(),
                    }),
                ),
                Err(e) => {
                    let child = members.child("");
                    zip_error(members, Some(&child), &e);
                    continue;
                }
            };
        let child = members.child(&name);
        // A "directory" that carries bytes is a place to hide them: only empty ones are skipped.
        if is_dir && size == 0 {
            continue;
        }
        if encrypted {
            members.member_problem(&child, Reason::Encrypted, ENCRYPTED);
            continue;
        }
        if let Some(message) = unsupported_method(method, size) {
            members.member_problem(&child, Reason::Unsupported, message);
            continue;
        }
        if !members.admit(&child, Declared::packed(size, compressed_size)) {
            continue;
        }
        if let Some(dict) = lzma_dict.filter(|d| u64::from(*d) > DECODER_MEMORY_LIMIT) {
            // The decoder would allocate the whole dictionary up front.
            let message = format!(
                "the LZMA member wants a {dict}-byte dictionary, over the decoder memory limit, so it was not examined"
            );
            members.member_problem(&child, Reason::Unsupported, message);
            continue;
        }
        if method == zip::CompressionMethod::Xz {
            // Decoded by our own xz reader, which has a memory limit the zip crate's lacks; xz
            // carries its own checksums.
            let decoded = archive
                .by_index_raw(index)
                .map_err(|e| e.to_string())
                .and_then(|raw| stream_decoder(Codec::Xz, raw).map_err(|e| e.to_string()));
            match decoded {
                Ok(mut decoder) => {
                    members.read(&child, &mut decoder, Some(consumed.clone()));
                }
                Err(e) => {
                    let message = format!("cannot decode the xz member: {e}");
                    members.member_problem(&child, Reason::Corrupt, message);
                }
            }
            continue;
        }
        if method == zip::CompressionMethod::Deflated
            && size <= members.memory_room()
            && let Some(decoded) = placed.and_then(|placed| {
                let at = placed.start.checked_sub(shift)?;
                let at = usize::try_from(at).ok()?;
                let len = usize::try_from(compressed_size).ok()?;
                inflate_whole(data.get(at..at.checked_add(len)?)?, size, placed.crc32)
            })
        {
            members.decoded(&child, decoded, compressed_size);
            continue;
        }
        let mut file = match archive.by_index(index) {
            Ok(file) => file,
            Err(e) => {
                zip_error(members, Some(&child), &e);
                continue;
            }
        };
        let stored = file.compression() == zip::CompressionMethod::Stored;
        members.read(&child, &mut file, (!stored).then(|| consumed.clone()));
    }
}

/// Where a member's compressed bytes start in the archive's own offsets, and their CRC-32.
#[derive(Clone, Copy)]
struct Placed {
    start: u64,
    crc32: u32,
}

/// A deflated member decoded in one call, straight from the archive's bytes into a buffer of
/// its declared size: a fifth faster than streaming it through the zip crate, which copies the
/// input through a buffer and keeps a window. Only a member that ends exactly at its size with
/// its CRC is taken; anything else is `None`, and the streaming reader, which says what is
/// wrong, reads it instead. The buffer never grows past the declared size (plus the byte that
/// shows the stream ends there), so a lying header costs no more than it declared.
fn inflate_whole(compressed: &[u8], size: u64, crc32: u32) -> Option<Vec<u8>> {
    let size = usize::try_from(size).ok()?;
    let mut decoded = Vec::new();
    decoded.try_reserve_exact(size.checked_add(1)?).ok()?;
    let mut inflater = flate2::Decompress::new(false);
    let status = inflater
        .decompress_vec(compressed, &mut decoded, flate2::FlushDecompress::Finish)
        .ok()?;
    (status == flate2::Status::StreamEnd
        && decoded.len() == size
        && crc32fast::hash(&decoded) == crc32)
        .then_some(decoded)
}

/// The most a member of the legacy methods (shrink, reduce, implode) may declare: their
/// decoders keep the whole output as their history, so memory grows with the member. The
/// PKZIP 1.x archives that use them hold small files.
const LEGACY_MAX_SIZE: u64 = 64 << 20;

/// Why a member's method cannot be decoded here, if it cannot.
#[allow(deprecated)]
fn unsupported_method(method: zip::CompressionMethod, size: u64) -> Option<String> {
    use zip::CompressionMethod as M;
    match method {
        M::Unsupported(id) => Some(format!(
            "zip compression method {id} is not supported, so the member was not examined"
        )),
        M::Shrink | M::Reduce(_) | M::Implode if size > LEGACY_MAX_SIZE => Some(format!(
            "a {method} member of {size} bytes is over the {} MiB this legacy method is decoded for, so it was not examined",
            LEGACY_MAX_SIZE >> 20
        )),
        _ => None,
    }
}

/// How far a zip's offsets point past where its parts are: zero for an ordinary zip; for a
/// self-extractor whose offsets were adjusted to the whole file (`zip -A`, the SFX builders),
/// the size of the executable it was cut from. Read from the end record and the central
/// directory it must lead to.
fn offsets_shift(data: &[u8]) -> u64 {
    const EOCD: usize = 22;
    let tail = data.len().saturating_sub((64 << 10) + EOCD);
    let Some(eocd) = memchr::memmem::rfind(&data[tail..], b"PK\x05\x06").map(|at| tail + at) else {
        return 0;
    };
    let Some(record) = data.get(eocd..eocd + EOCD) else {
        return 0;
    };
    let cd_size = u32::from_le_bytes([record[12], record[13], record[14], record[15]]) as usize;
    let cd_offset = u32::from_le_bytes([record[16], record[17], record[18], record[19]]) as usize;
    match eocd.checked_sub(cd_size) {
        Some(cd) if cd_offset > cd && data[cd..].starts_with(b"PK\x01\x02") => {
            (cd_offset - cd) as u64
        }
        _ => 0,
    }
}

/// A zip's bytes as its offsets expect them: `shift` bytes of nothing, then the zip.
struct Shifted<'d> {
    data: &'d [u8],
    shift: u64,
    position: u64,
}

impl Read for Shifted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = if self.position < self.shift {
            let n = buf
                .len()
                .min(usize::try_from(self.shift - self.position).unwrap_or(usize::MAX));
            buf[..n].fill(0);
            n
        } else {
            let at = usize::try_from(self.position - self.shift).unwrap_or(usize::MAX);
            let rest = self.data.get(at..).unwrap_or(&[]);
            let n = buf.len().min(rest.len());
            buf[..n].copy_from_slice(&rest[..n]);
            n
        };
        self.position += n as u64;
        Ok(n)
    }
}

impl Seek for Shifted<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let end = self.shift + self.data.len() as u64;
        let target = match to {
            SeekFrom::Start(at) => Some(at),
            SeekFrom::End(delta) => end.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
        };
        self.position = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.position)
    }
}

/// Records a zip error against a member, or the archive when `child` is `None`.
fn zip_error(members: &mut Members<'_>, child: Option<&str>, err: &ZipError) {
    let (reason, message) = match err {
        ZipError::UnsupportedArchive(msg) if *msg == ZipError::PASSWORD_REQUIRED => {
            (Reason::Encrypted, ENCRYPTED.to_owned())
        }
        ZipError::InvalidPassword => (Reason::Encrypted, ENCRYPTED.to_owned()),
        ZipError::CompressionMethodNotSupported(method) => (
            Reason::Unsupported,
            format!("zip compression method {method} is not supported, so it was not examined"),
        ),
        ZipError::UnsupportedArchive(msg) => (
            Reason::Unsupported,
            format!("unsupported zip feature: {msg}"),
        ),
        ZipError::Io(io) if members.limit_in(io) => return,
        ZipError::Io(io) => (Reason::Corrupt, format!("damaged or truncated zip: {io}")),
        other => (
            Reason::Corrupt,
            format!("damaged or truncated zip: {other}"),
        ),
    };
    match child {
        Some(child) => members.member_problem(child, reason, message),
        None => members.problem(reason, message),
    }
}

/// The dictionary size of a zip LZMA member, from its raw data: a 2-byte version, a 2-byte
/// properties length (5), then the properties byte and the dictionary size (little-endian).
fn lzma_dictionary(raw: &mut dyn Read) -> Option<u32> {
    let mut header = [0u8; 9];
    raw.read_exact(&mut header).ok()?;
    Some(u32::from_le_bytes([
        header[5], header[6], header[7], header[8],
    ]))
}
