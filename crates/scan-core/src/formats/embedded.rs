//! Carriers that start inside another file, the way self-extracting archives, installers and
//! droppers carry them: archives in a Windows executable (its overlay, or a resource; an NSIS
//! setup's data), Windows executables and RAR, 7z and cabinet archives inside any other data,
//! and a zip appended to an image or any other file. Candidates are found by a bounded, linear
//! search for magic numbers (or from the landmarks an engine found on its own pass, see
//! `crate::landmarks`) and kept only when the carrier's own identification accepts the data
//! from there; each becomes a member named `<path>@<offset>`.

use memchr::memmem;

use crate::landmarks::{LandmarkKind, MAX_PE_HEADER_OFFSET};

/// Magic numbers searched for inside a Windows executable: zip, 7z, RAR (WinRAR's
/// self-extractors), cabinet, OLE (MSI).
const MAGICS: &[&[u8]] = &[
    b"PK\x03\x04",
    b"7z\xBC\xAF\x27\x1C",
    b"Rar!\x1A\x07",
    b"MSCF\0\0\0\0",
    b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1",
];
/// At most this many zip end records are kept while looking for zips in one executable.
const MAX_END_RECORDS: usize = 1 << 16;
/// Where an embedded object starts, and how long it is.
type Span = (usize, usize);

/// At most this many embedded carriers are taken from one object.
const MAX_EMBEDDED: usize = 64;

/// The carriers that start inside `data` (never at 0), in order: their offsets and lengths.
/// `landmarks`, when an engine reported them, spare the search for their magic numbers.
pub(crate) fn find(
    data: &[u8],
    landmarks: Option<&[(usize, LandmarkKind)]>,
) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    if let Some(image_end) = pe_image_end(data) {
        executable_contents(data, 0, image_end, data.len(), &mut found);
    } else {
        // Executables inside other data, each taken at its image's length (so a hash of the
        // executable matches), with what it carries looked for up to the next one; and the
        // archives a self-extractor's stub or any other data holds (RAR, 7z, cabinets).
        let (executables, archives) = if text_at_both_ends(data) {
            (Vec::new(), Vec::new())
        } else {
            embedded_objects(data, landmarks)
        };
        found.extend(archives);
        let ends = executables.iter().skip(1).map(|e| e.0).chain([data.len()]);
        for (&(start, len), end) in executables.iter().zip(ends) {
            found.push((start, len));
            executable_contents(data, start, start + len, end, &mut found);
        }
        // A zip after an executable found here is that executable's overlay, found above.
        if let Some(at) =
            appended_zip(data).filter(|&at| executables.first().is_none_or(|e| e.0 > at))
        {
            found.push((at, data.len() - at));
        }
    }
    // One carrier per offset: the first found, whose length is the most exact (an installer's
    // own entry beats a length guessed from a header).
    found.sort_by_key(|(at, _)| *at);
    found.dedup_by_key(|(at, _)| *at);
    found.truncate(MAX_EMBEDDED);
    found
}

/// What the executable at `start` of `data` carries, up to `end`: archives anywhere in it (the
/// overlay after its image, which ends at `image_end`, or a resource), and in its overlay the
/// files installers append behind a small header of their own (InstallShield: name, path,
/// version and size as strings), an NSIS setup's data, and other executables.
fn executable_contents(
    data: &[u8],
    start: usize,
    image_end: usize,
    end: usize,
    found: &mut Vec<(usize, usize)>,
) {
    let region = &data[..end];
    // The next executable may start inside this one's image (one PE inside another's).
    let image_end = image_end.min(end);
    // Zip end records, found once: every local header is checked against the few after it.
    let eocds: Vec<usize> = memmem::find_iter(region, b"PK\x05\x06")
        .take(MAX_END_RECORDS)
        .collect();
    for magic in MAGICS {
        for at in memmem::find_iter(&region[start + 1..], magic).map(|at| at + start + 1) {
            if found.len() >= MAX_EMBEDDED {
                break;
            }
            // Inside a carrier already taken (a zip's own entries): walked with it.
            if found
                .iter()
                .any(|&(from, len)| (from..from + len).contains(&at))
            {
                continue;
            }
            if let Some(len) = carrier_at(region, at, &eocds) {
                found.push((at, len));
            }
        }
    }
    let overlay = &region[image_end..];
    found.extend(installshield_files(overlay).map(|(at, len)| (at + image_end, len)));
    // An NSIS setup's data: its first header, which holds the data's length.
    for at in memmem::find_iter(overlay, super::nsis::SIGNATURE) {
        let first = image_end + at;
        let Some(header) = first.checked_sub(4).and_then(|s| region.get(s..s + 28)) else {
            continue;
        };
        let len = u32::from_le_bytes([header[24], header[25], header[26], header[27]]) as usize;
        if len >= 28 && found.len() < MAX_EMBEDDED {
            found.push((first - 4, len.min(end - (first - 4))));
        }
    }
    for at in memmem::find_iter(overlay, b"MZ").map(|at| at + image_end) {
        if found.len() >= MAX_EMBEDDED {
            break;
        }
        if let Some(len) = pe_image_end(&region[at..]).filter(|_| at > 0) {
            found.push((at, len));
        }
    }
}

/// The signature AutoIt writes before a compiled script (`AU3!EA05`, `AU3!EA06`): the script
/// and the files it installs follow, encrypted with AutoIt's own scheme.
const AUTOIT: &[u8] = b"\xA3\x48\x4B\xBE\x98\x6C\x4A\xA9\x99\x4C\x53\x0A\x86\xD6\x48\x7DAU3!EA0";

/// Why an executable's contents were not all examined, if it carries something recognised but
/// not unpacked: a compiled
/// AutoIt script, or InstallShield's own encoded setup streams at the head of its overlay. Its
/// contents were not examined, so the executable must not be reported clean.
pub(crate) fn unopened(data: &[u8]) -> Option<&'static str> {
    let image_end = pe_image_end(data)?;
    if memmem::find(data, AUTOIT).is_some() {
        return Some(
            "the AutoIt compiled script it carries is not unpacked (AutoIt encrypts the script and its files), so they were not examined",
        );
    }
    let head = &data[image_end..data.len().min(image_end + 1024)];
    let installshield = [&b"InstallShield\0"[..], b"ISSetupStream\0"];
    if installshield
        .iter()
        .any(|m| memmem::find(head, m).is_some())
    {
        return Some(
            "the InstallShield setup streams it carries are not decoded, so the files they hold were not examined",
        );
    }
    None
}

/// The files an InstallShield setup appends to itself: entries of a file name, a path, a
/// version and a decimal size, each NUL-terminated, then that many bytes of the file. Read
/// while the entries hold together; the offsets and lengths of the files' data.
fn installshield_files(overlay: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let mut fields = [&b""[..]; 4];
        let mut next = at;
        for field in &mut fields {
            let rest = overlay.get(next..)?;
            let len = rest.iter().take(260).position(|b| *b == 0)?;
            *field = &rest[..len];
            next += len + 1;
        }
        let [name, path, version, size] = fields;
        let printable =
            |f: &[u8]| !f.is_empty() && f.iter().all(|b| b.is_ascii_graphic() || *b == b' ');
        if !(printable(name) && printable(path) && printable(version)) {
            return None;
        }
        let size: usize = std::str::from_utf8(size).ok()?.parse().ok()?;
        let end = next.checked_add(size).filter(|&end| end <= overlay.len())?;
        at = end;
        Some((next, size))
    })
    .take(MAX_EMBEDDED)
}

/// The length of the carrier that starts at `at`, if its header holds together beyond its
/// magic number: the magic numbers of zip and cabinets are also constants in the code of every
/// program that reads them, and a guess that fails to open would make an ordinary executable
/// Unscannable. A zip needs an end record whose central directory leads back to it (offsets
/// relative to the zip, or to the file for self-extractors that adjust them); a cabinet its
/// version 1.3 and a size inside the data; a 7z its version and header offsets; an OLE file
/// its byte-order mark and a sector size.
fn carrier_at(data: &[u8], at: usize, eocds: &[usize]) -> Option<usize> {
    let rest = &data[at..];
    let u16_at = |b: &[u8], i: usize| {
        b.get(i..i + 2)
            .map(|w| usize::from(u16::from_le_bytes([w[0], w[1]])))
    };
    let u32_at = |b: &[u8], i: usize| {
        b.get(i..i + 4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]) as usize)
    };
    if rest.starts_with(b"PK\x03\x04") {
        let after = eocds.partition_point(|&eocd| eocd <= at);
        return eocds[after..]
            .iter()
            .take(8)
            .map(|&eocd| eocd - at)
            .find_map(|eocd| {
                let cd_size = u32_at(rest, eocd + 12)?;
                let cd_offset = u32_at(rest, eocd + 16)?;
                let comment = u16_at(rest, eocd + 20)?;
                let relative = eocd == cd_offset.checked_add(cd_size)?;
                let absolute = at + eocd == cd_offset.checked_add(cd_size)? && cd_offset > at;
                let cd = if relative {
                    cd_offset
                } else {
                    cd_offset.checked_sub(at)?
                };
                ((relative || absolute) && rest.get(cd..)?.starts_with(b"PK\x01\x02"))
                    .then(|| (eocd + 22 + comment).min(rest.len()))
            });
    }
    if rest.starts_with(b"MSCF") {
        let len = u32_at(rest, 8)?;
        let files = u32_at(rest, 16)?;
        let version_ok = rest.get(24..26) == Some(&[3, 1][..]);
        return (version_ok && len >= 36 && len <= rest.len() && files < len).then_some(len);
    }
    if rest.starts_with(b"7z\xBC\xAF\x27\x1C") {
        let offset =
            usize::try_from(u64::from_le_bytes(rest.get(12..20)?.try_into().ok()?)).ok()?;
        let size = usize::try_from(u64::from_le_bytes(rest.get(20..28)?.try_into().ok()?)).ok()?;
        let len = 32usize.checked_add(offset)?.checked_add(size)?;
        return (rest.get(6) == Some(&0) && len <= rest.len()).then_some(len);
    }
    if rest.starts_with(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1") {
        let byte_order = rest.get(28..30) == Some(&[0xFE, 0xFF][..]);
        let sector_shift = u16_at(rest, 30)?;
        return (byte_order && matches!(sector_shift, 9 | 12)).then_some(rest.len());
    }
    None
}

/// What starts inside other data (a dropper's payload in an image, a document stream, a
/// self-extractor's stub of another platform, any blob), found from its magic numbers:
/// Windows executables (each `MZ` whose `e_lfanew` points at a `PE\0\0` signature and whose
/// section table holds together, with its image's length), and RAR, 7z and cabinet archives
/// whose headers hold together (a RAR to the end of the data). Each candidate costs a few
/// reads, so the search stays linear however many magic numbers hostile data holds.
fn embedded_objects(
    data: &[u8],
    landmarks: Option<&[(usize, LandmarkKind)]>,
) -> (Vec<Span>, Vec<Span>) {
    let candidates: Box<dyn Iterator<Item = (usize, Magic)>> = match landmarks {
        Some(found) => Box::new(magics_from_landmarks(data, found)),
        None => Box::new(magics(data)),
    };
    let mut executables: Vec<Span> = Vec::new();
    let mut archives: Vec<Span> = Vec::new();
    for (at, magic) in candidates {
        if executables.len() + archives.len() >= MAX_EMBEDDED {
            break;
        }
        // Inside an archive already taken: walked with it.
        if archives
            .iter()
            .any(|&(from, len)| (from..from + len).contains(&at))
        {
            continue;
        }
        let rest = &data[at..];
        match magic {
            Magic::Mz => {
                if let Some(len) = pe_image_end(rest) {
                    executables.push((at, len));
                }
            }
            Magic::Rar => {
                if rar_header_holds(rest) {
                    archives.push((at, rest.len()));
                }
            }
            Magic::SevenZip | Magic::Cabinet => {
                if let Some(len) = carrier_at(data, at, &[]) {
                    archives.push((at, len));
                }
            }
        }
    }
    (executables, archives)
}

/// A magic number [`embedded_objects`] starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Magic {
    Mz,
    Rar,
    SevenZip,
    Cabinet,
}

/// Every magic number in `data` after its first byte, in order, in one pass for all of them.
fn magics(data: &[u8]) -> impl Iterator<Item = (usize, Magic)> + '_ {
    static MAGICS: std::sync::LazyLock<aho_corasick::AhoCorasick> =
        std::sync::LazyLock::new(|| {
            // Leftmost-first lets the searcher use its vectorised (Teddy) prefilter, which
            // checks every magic's first two bytes at once; the default (overlapping) kind
            // stops at every `M`, `R` and `7`, four times the cost. No magic can start inside
            // another's match, so no hit is lost.
            aho_corasick::AhoCorasick::builder()
                .match_kind(aho_corasick::MatchKind::LeftmostFirst)
                .build([
                    &b"MZ"[..],
                    LandmarkKind::Rar.bytes(),
                    LandmarkKind::SevenZip.bytes(),
                    LandmarkKind::Cabinet.bytes(),
                ])
                .unwrap_or_else(|e| unreachable!("four plain patterns: {e}"))
        });
    const BY_PATTERN: [Magic; 4] = [Magic::Mz, Magic::Rar, Magic::SevenZip, Magic::Cabinet];
    MAGICS
        .find_iter(data.get(1..).unwrap_or(&[]))
        .map(|hit| (hit.start() + 1, BY_PATTERN[hit.pattern().as_usize()]))
}

/// The same magic numbers as [`magics`], in the same order, from landmarks an engine found:
/// the archives' own, and each `MZ` within reach of a `PE\0\0` signature (every valid
/// executable's `MZ` is, and no other can be taken). The reaches of nearby signatures are
/// merged first, so no byte is searched twice and the cost stays at most one pass.
fn magics_from_landmarks<'d>(
    data: &'d [u8],
    found: &'d [(usize, LandmarkKind)],
) -> impl Iterator<Item = (usize, Magic)> + 'd {
    let archives = found.iter().filter_map(|&(at, kind)| {
        let magic = match kind {
            LandmarkKind::PeSignature => return None,
            LandmarkKind::Rar => Magic::Rar,
            LandmarkKind::SevenZip => Magic::SevenZip,
            LandmarkKind::Cabinet => Magic::Cabinet,
        };
        (at > 0 && at < data.len()).then_some((at, magic))
    });
    let mut reaches: Vec<std::ops::Range<usize>> = Vec::new();
    for &(at, kind) in found {
        if kind != LandmarkKind::PeSignature {
            continue;
        }
        let reach = at.saturating_sub(MAX_PE_HEADER_OFFSET).max(1)..at.min(data.len());
        match reaches.last_mut() {
            Some(last) if reach.start <= last.end => last.end = last.end.max(reach.end),
            _ if !reach.is_empty() => reaches.push(reach),
            _ => {}
        }
    }
    let executables = reaches.into_iter().flat_map(move |reach| {
        memmem::find_iter(&data[reach.clone()], b"MZ").map(move |at| (reach.start + at, Magic::Mz))
    });
    merged(archives, executables)
}

/// Two iterators of offsets, each in order, as one in order.
fn merged<T>(
    a: impl Iterator<Item = (usize, T)>,
    b: impl Iterator<Item = (usize, T)>,
) -> impl Iterator<Item = (usize, T)> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) if y.0 < x.0 => b.next(),
        (Some(_), _) => a.next(),
        (None, _) => b.next(),
    })
}

/// Whether the RAR signature at the start of `rest` is followed by a first header whose
/// checksum holds: RAR 4 (`...\x07\x00`) keeps the low half of a CRC-32 of its header after
/// the field, RAR 5 (`...\x07\x01\x00`) a CRC-32 of its header from its size on. The
/// signature alone is a constant in every program that reads RAR (libarchive's own code holds
/// it), and a guess that fails to open would make an ordinary file Unscannable.
fn rar_header_holds(rest: &[u8]) -> bool {
    let u16_at = |i: usize| rest.get(i..i + 2).map(|w| u16::from_le_bytes([w[0], w[1]]));
    if rest.get(6) == Some(&0) {
        // CRC (2 bytes) at 7, then type, flags and the header's size (from the CRC on).
        let (Some(crc), Some(size)) = (u16_at(7), u16_at(12)) else {
            return false;
        };
        let header = usize::from(size)
            .checked_sub(2)
            .and_then(|len| rest.get(9..9 + len));
        return header.is_some_and(|h| h.len() >= 5 && crc32fast::hash(h) as u16 == crc);
    }
    if rest.get(6..8) == Some(&[1, 0][..]) {
        let Some(crc) = rest
            .get(8..12)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        else {
            return false;
        };
        // The header's size, a variable-length integer of at most 3 bytes, counts the bytes
        // after it; the CRC covers the size field too.
        let mut size = 0usize;
        for (i, &byte) in rest.iter().skip(12).take(3).enumerate() {
            size |= usize::from(byte & 0x7F) << (7 * i);
            if byte & 0x80 == 0 {
                let field = i + 1;
                return size > 0
                    && rest
                        .get(12..12 + field + size)
                        .is_some_and(|h| crc32fast::hash(h) == crc);
            }
        }
    }
    false
}

/// Whether `data` reads as text at both ends (its first and last 8 KiB): a document, not a
/// blob an executable hides in. The search for executables is one pass over every byte, as
/// costly as a tenth of a whole scan, so text, most of what is uploaded, is spared it. An
/// executable's headers are full of NULs, so one appended to a text, or put at its start,
/// still makes it binary at that end.
fn text_at_both_ends(data: &[u8]) -> bool {
    let mut tail = &data[data.len().saturating_sub(8192)..];
    // The tail may begin inside a multi-byte character.
    for _ in 0..3 {
        match tail {
            [byte, rest @ ..] if (0x80..0xC0).contains(byte) => tail = rest,
            _ => break,
        }
    }
    crate::filetype::looks_like_text(data) && crate::filetype::looks_like_text(tail)
}

/// Where a zip appended to other data starts: its end-of-central-directory record says how
/// long its central directory is and where, relative to the zip's own start, it begins. The
/// record is looked for in the last 4 KiB (room for a comment); this runs on every object no
/// format opens, so it must cost next to nothing.
fn appended_zip(data: &[u8]) -> Option<usize> {
    const EOCD: usize = 22;
    let tail_start = data.len().saturating_sub((4 << 10) + EOCD);
    // Backwards over the `P`s of the tail: a zip without a comment is found at the first.
    let eocd = memchr::memrchr_iter(b'P', &data[tail_start..])
        .map(|at| tail_start + at)
        .find(|&at| data[at..].starts_with(b"PK\x05\x06"))?;
    let record = data.get(eocd..eocd + EOCD)?;
    let cd_size = u32::from_le_bytes([record[12], record[13], record[14], record[15]]) as usize;
    let cd_offset = u32::from_le_bytes([record[16], record[17], record[18], record[19]]) as usize;
    let start = eocd.checked_sub(cd_size)?.checked_sub(cd_offset)?;
    (start > 0 && data[start..].starts_with(b"PK\x03\x04")).then_some(start)
}

/// The end of a Windows executable's image in the file (the end of its headers or of its last
/// section's raw data, whichever is later), if `data` starts with a valid PE: an `MZ` header
/// whose `e_lfanew` points at `PE\0\0`, a sane section count, and sections inside the file's
/// 4 GiB range. What follows the image is the overlay.
pub(crate) fn pe_image_end(data: &[u8]) -> Option<usize> {
    if !data.starts_with(b"MZ") {
        return None;
    }
    let u16_at = |at: usize| {
        data.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        data.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let pe = u32_at(0x3C)?;
    if pe > MAX_PE_HEADER_OFFSET || data.get(pe..pe + 4)? != LandmarkKind::PeSignature.bytes() {
        return None;
    }
    let sections = usize::from(u16_at(pe + 6)?);
    let optional = usize::from(u16_at(pe + 20)?);
    if sections == 0 || sections > 96 {
        return None;
    }
    let headers = u32_at(pe + 24 + 60).unwrap_or(0);
    let table = pe + 24 + optional;
    let mut end = headers;
    for index in 0..sections {
        let section = table + index * 40;
        let size = u32_at(section + 16)?;
        let offset = u32_at(section + 20)?;
        if size > 0 {
            end = end.max(offset.checked_add(size)?);
        }
    }
    Some(end.min(data.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zip_appended_to_an_image_is_found_from_its_end_record() {
        let mut data = b"\x89PNG\r\n\x1a\nimage bytes".to_vec();
        let start = data.len();
        // A zip with no entries but a local header before its (empty) central directory.
        data.extend_from_slice(b"PK\x03\x04");
        data.extend_from_slice(&[0; 26]);
        let cd_offset = (data.len() - start) as u32;
        data.extend_from_slice(b"PK\x05\x06");
        data.extend_from_slice(&[0; 8]);
        data.extend_from_slice(&0u32.to_le_bytes());
        data.extend_from_slice(&cd_offset.to_le_bytes());
        data.extend_from_slice(&[0; 2]);
        assert_eq!(appended_zip(&data), Some(start));
        assert_eq!(appended_zip(b"no zip here"), None);
    }

    #[test]
    fn pe_headers_must_hold_together() {
        assert_eq!(pe_image_end(b"MZ"), None);
        let mut pe = vec![0u8; 0x400];
        pe[..2].copy_from_slice(b"MZ");
        pe[0x3C] = 0x80;
        pe[0x80..0x84].copy_from_slice(b"PE\0\0");
        pe[0x86] = 1; // one section
        pe[0x94] = 0xE0; // optional header size
        let section = 0x80 + 24 + 0xE0;
        pe[section + 16..section + 20].copy_from_slice(&0x100u32.to_le_bytes());
        pe[section + 20..section + 24].copy_from_slice(&0x200u32.to_le_bytes());
        assert_eq!(pe_image_end(&pe), Some(0x300));
        pe[0x86] = 0;
        assert_eq!(pe_image_end(&pe), None);
    }

    /// A PE of one section whose `PE\0\0` lies `e_lfanew` bytes after its `MZ`.
    fn pe_with_header_at(e_lfanew: usize) -> Vec<u8> {
        let table = e_lfanew + 24 + 0xE0;
        let mut pe = vec![0u8; table + 40 + 0x200];
        pe[..2].copy_from_slice(b"MZ");
        pe[0x3C..0x40].copy_from_slice(&(e_lfanew as u32).to_le_bytes());
        pe[e_lfanew..e_lfanew + 4].copy_from_slice(b"PE\0\0");
        pe[e_lfanew + 6] = 1;
        pe[e_lfanew + 20] = 0xE0;
        let raw = (table + 40) as u32;
        pe[table + 16..table + 20].copy_from_slice(&0x200u32.to_le_bytes());
        pe[table + 20..table + 24].copy_from_slice(&raw.to_le_bytes());
        pe
    }

    /// Every landmark in `data`, as an engine that searched every byte reports them.
    fn every_landmark(data: &[u8]) -> Vec<(usize, LandmarkKind)> {
        let mut found: Vec<_> = LandmarkKind::ALL
            .into_iter()
            .flat_map(|kind| memmem::find_iter(data, kind.bytes()).map(move |at| (at, kind)))
            .collect();
        found.sort_unstable_by_key(|&(at, _)| at);
        found
    }

    #[test]
    fn landmarks_find_exactly_what_the_search_of_its_own_finds() {
        // Binary filler in which no two neighbouring bytes begin a magic number.
        let noise = |len: usize| (0..len).map(|i| (i * 131 % 251) as u8).collect::<Vec<u8>>();
        let mut data = noise(1000);
        let mut planted = Vec::new();
        let mut plant = |data: &mut Vec<u8>, bytes: &[u8]| {
            planted.push(data.len());
            data.extend_from_slice(bytes);
        };
        // Executables with their signature near, and as far as allowed, from their header.
        plant(&mut data, &pe_with_header_at(0x80));
        data.extend(noise(3000));
        plant(&mut data, &pe_with_header_at(MAX_PE_HEADER_OFFSET));
        data.extend(noise(500));
        // Decoys: an `MZ` that points nowhere, a signature with no header before it, and a
        // header one byte beyond reach.
        data.extend_from_slice(b"MZ\x90\x00");
        data.extend_from_slice(b"xxPE\0\0yy");
        data.extend_from_slice(&pe_with_header_at(MAX_PE_HEADER_OFFSET + 1));
        // A cabinet and a RAR whose headers hold together.
        let mut cab = b"MSCF\0\0\0\0".to_vec();
        cab.extend_from_slice(&64u32.to_le_bytes());
        cab.extend_from_slice(&[0; 4]);
        cab.extend_from_slice(&1u32.to_le_bytes());
        cab.extend_from_slice(&[0; 4]);
        cab.extend_from_slice(&[3, 1]);
        cab.resize(64, 0);
        plant(&mut data, &cab);
        data.extend(noise(100));
        let mut rar = b"Rar!\x1A\x07\x00".to_vec();
        let body = [0x73, 0, 0, 13, 0, 0, 0, 0, 0, 0, 0];
        rar.extend_from_slice(&(crc32fast::hash(&body) as u16).to_le_bytes());
        rar.extend_from_slice(&body);
        plant(&mut data, &rar);
        data.extend(noise(2000));

        let own = embedded_objects(&data, None);
        let found: Vec<usize> = own.0.iter().chain(&own.1).map(|s| s.0).collect();
        let mut expected = planted.clone();
        expected.sort_unstable();
        let mut found_sorted = found.clone();
        found_sorted.sort_unstable();
        assert_eq!(
            found_sorted, expected,
            "the search of its own finds every planted carrier"
        );
        assert_eq!(embedded_objects(&data, Some(&every_landmark(&data))), own);

        // The landmarks are what the search starts from: one left out is one not found.
        let without_first_pe: Vec<_> = every_landmark(&data)
            .into_iter()
            .filter(|&(at, _)| at != planted[0] + 0x80)
            .collect();
        let (executables, _) = embedded_objects(&data, Some(&without_first_pe));
        assert!(!executables.iter().any(|e| e.0 == planted[0]));
        assert!(executables.iter().any(|e| e.0 == planted[1]));
    }

    #[test]
    fn a_rar_signature_counts_only_with_a_first_header_that_holds() {
        // RAR 4: the main header (type 0x73, no flags, 13 bytes, 6 reserved) after the mark.
        let mut rar4 = b"Rar!\x1A\x07\x00".to_vec();
        let body = [0x73, 0, 0, 13, 0, 0, 0, 0, 0, 0, 0];
        rar4.extend_from_slice(&(crc32fast::hash(&body) as u16).to_le_bytes());
        rar4.extend_from_slice(&body);
        assert!(rar_header_holds(&rar4));
        // RAR 5: the main archive header (size 3: type 1, no flags, no archive flags).
        let mut rar5 = b"Rar!\x1A\x07\x01\x00".to_vec();
        let header = [3, 1, 0, 0];
        rar5.extend_from_slice(&crc32fast::hash(&header).to_le_bytes());
        rar5.extend_from_slice(&header);
        assert!(rar_header_holds(&rar5));
        // The signature as a constant in a reader's code, followed by whatever comes next.
        for mut broken in [rar4, rar5] {
            let last = broken.len() - 1;
            broken[last] ^= 1;
            assert!(!rar_header_holds(&broken));
            assert!(!rar_header_holds(&broken[..10]));
        }
        let mut code =
            b"\x48\x8d\x05Rar!\x1A\x07\x00\x48\x89\xc7\xe8\x00\x00\x00\x00\x85\xc0".to_vec();
        code.extend_from_slice(&[0x90; 64]);
        assert_eq!(embedded_objects(&code, None), (Vec::new(), Vec::new()));
    }
}
