//! Compiled HTML Help (CHM, `ITSF`): a directory of named entries in two sections, the first
//! stored, the second one LZX stream (the "MSCompressed" section). Help files carry scripts
//! and executables; every entry but the section's own storage is a member, under its name.

use std::io::Cursor;

use super::Format;
use crate::decompress::{CHM_FRAME, ChmLzx, ChmSection, Counting};
use crate::formats::members::{Members, Slice};
use crate::verdict::Reason;

pub(super) const FORMAT: Format = Format {
    name: "chm",
    identify: |data| {
        data.starts_with(b"ITSF") && matches!(u32_at(data, 4), Some(2 | 3)) && data.len() > 0x58
    },
    expand,
};

/// Where the compressed section keeps its parameters, its frame table and its data.
const CONTROL: &str = "::DataSpace/Storage/MSCompressed/ControlData";
const RESET_TABLE: &str = "::DataSpace/Storage/MSCompressed/Transform/\
    {7FC28940-9D31-11D0-9B27-00A0C91E9C7C}/InstanceData/ResetTable";
const CONTENT: &str = "::DataSpace/Storage/MSCompressed/Content";

/// One directory entry.
#[derive(Debug)]
struct Entry {
    name: String,
    section: u64,
    offset: u64,
    length: u64,
}

fn expand(members: &mut Members<'_>, data: &[u8]) {
    let (content_at, entries) = match directory(data) {
        Ok(found) => found,
        Err(e) => return members.corrupt("CHM file", e),
    };
    let content = data.get(content_at..).unwrap_or(&[]);
    let files: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.length > 0 && !e.name.ends_with('/') && !e.name.starts_with("::DataSpace/"))
        .collect();
    if !members.expect(files.len() as u64) {
        return;
    }
    let mut compressed = Vec::new();
    for entry in files {
        if members.stopped() {
            return;
        }
        let name = entry.name.trim_start_matches('/');
        match entry.section {
            0 => match stored(content, entry) {
                Some(bytes) => {
                    members.bytes(name, bytes);
                }
                None => {
                    let child = members.child(name);
                    let message = "the entry lies past the end of the file";
                    members.member_problem(&child, Reason::Corrupt, message);
                }
            },
            1 => compressed.push(Slice {
                name: name.to_owned(),
                offset: entry.offset,
                size: entry.length,
            }),
            other => {
                let child = members.child(name);
                let message = format!("CHM content section {other} is not supported");
                members.member_problem(&child, Reason::Unsupported, message);
            }
        }
    }
    if compressed.is_empty() {
        return;
    }
    let (section, section_content) = match lzx_section(content, &entries) {
        Ok(section) => section,
        Err(e) => return members.corrupt("CHM compressed section", e),
    };
    let mut open = || {
        let (counting, consumed) = Counting::new(Cursor::new(section_content));
        Ok((ChmLzx::new(counting, section.clone())?, consumed))
    };
    members.cut("CHM compressed section", &mut open, &mut compressed);
}

/// An entry of the stored section, if it lies inside the file.
fn stored<'d>(content: &'d [u8], entry: &Entry) -> Option<&'d [u8]> {
    let start = usize::try_from(entry.offset).ok()?;
    let end = start.checked_add(usize::try_from(entry.length).ok()?)?;
    content.get(start..end)
}

/// The LZX parameters and the compressed bytes of section 1, from the three entries of the
/// stored section that describe it.
fn lzx_section<'d>(content: &'d [u8], entries: &[Entry]) -> Result<(ChmSection, &'d [u8]), String> {
    let find = |name: &str| {
        entries
            .iter()
            .find(|e| e.section == 0 && e.name == name)
            .and_then(|e| stored(content, e))
            .ok_or_else(|| format!("{name} is missing or lies past the end of the file"))
    };
    let control = find(CONTROL)?;
    let table = find(RESET_TABLE)?;
    // The content of a cut file is read as far as it goes: the frames it still holds are
    // decoded, and the first missing one is reported as damage on the file it belongs to.
    let data = entries
        .iter()
        .find(|e| e.section == 0 && e.name == CONTENT)
        .and_then(|e| {
            let rest = content.get(usize::try_from(e.offset).ok()?..)?;
            let len = usize::try_from(e.length)
                .unwrap_or(usize::MAX)
                .min(rest.len());
            Some(&rest[..len])
        })
        .ok_or_else(|| format!("{CONTENT} is missing or lies past the end of the file"))?;
    if control.get(4..8) != Some(b"LZXC") {
        return Err("the control data is not LZXC".into());
    }
    let field = |at| {
        u32_at(control, at)
            .map(u64::from)
            .ok_or("the control data is cut short")
    };
    let (version, mut reset, mut window) = (field(8)?, field(12)?, field(16)?);
    // Version 2 counts both in frames; version 1 in bytes.
    if version == 2 {
        reset *= CHM_FRAME;
        window *= CHM_FRAME;
    }
    if !window.is_power_of_two() || !(1 << 15..=1 << 21).contains(&window) {
        return Err(format!("an LZX window of {window} bytes"));
    }
    if reset == 0 || !reset.is_multiple_of(CHM_FRAME) {
        return Err(format!("a reset interval of {reset} bytes"));
    }
    // Reset table: version, entry count, entry size, header size, uncompressed length,
    // compressed length, frame size, then one 64-bit offset per frame.
    let short = "the reset table is cut short";
    let u64_at = |at: usize| {
        table
            .get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
    };
    let count = u32_at(table, 4).ok_or(short)? as usize;
    let header = u32_at(table, 12).ok_or(short)? as usize;
    let length = u64_at(16).ok_or(short)?;
    if u64_at(32) != Some(CHM_FRAME) {
        return Err("the reset table's frame size is not 32 KiB".into());
    }
    let available = table.len().saturating_sub(header) / 8;
    let frame_offsets = (0..count.min(available))
        .map(|i| u64_at(header + 8 * i).ok_or(short))
        .collect::<Result<Vec<_>, _>>()?;
    let section = ChmSection {
        window_bits: window.trailing_zeros() as u8,
        frames_per_reset: reset / CHM_FRAME,
        frame_offsets,
        length,
    };
    Ok((section, data))
}

/// The content offset and every entry of the listing chunks (PMGL) of the directory. The
/// chunks are read in order, not through their links, so a loop in the links hides nothing
/// and costs nothing.
fn directory(data: &[u8]) -> Result<(usize, Vec<Entry>), String> {
    let short = || "the header is cut short".to_owned();
    let u64_at = |at: usize| {
        data.get(at..at + 8)
            .and_then(|b| usize::try_from(u64::from_le_bytes(b.try_into().ok()?)).ok())
            .ok_or_else(short)
    };
    let version = u32_at(data, 4).ok_or_else(short)?;
    let dir_at = u64_at(0x48)?;
    let dir_len = u64_at(0x50)?;
    let content_at = if version >= 3 {
        u64_at(0x58)?
    } else {
        dir_at.checked_add(dir_len).ok_or_else(short)?
    };
    let dir = data
        .get(dir_at..dir_at.saturating_add(dir_len).min(data.len()))
        .filter(|d| d.starts_with(b"ITSP"))
        .ok_or("no directory (ITSP) where the header says")?;
    let header_len = u32_at(dir, 8).ok_or_else(short)? as usize;
    let chunk_size = u32_at(dir, 16).ok_or_else(short)? as usize;
    if !(64..=1 << 20).contains(&chunk_size) {
        return Err(format!("a directory chunk size of {chunk_size} bytes"));
    }
    let chunks = dir.get(header_len..).ok_or_else(short)?;
    let mut entries = Vec::new();
    for chunk in chunks.chunks(chunk_size) {
        if !chunk.starts_with(b"PMGL") {
            continue;
        }
        let free = u32_at(chunk, 4).unwrap_or(0) as usize;
        let end = chunk.len().saturating_sub(free).max(20);
        listing(chunk.get(20..end).unwrap_or(&[]), &mut entries);
        if entries.len() > 1 << 20 {
            return Err("more than a million directory entries".into());
        }
    }
    if dir.len() < dir_len || content_at > data.len() {
        return Err("the file is cut short".into());
    }
    Ok((content_at, entries))
}

/// The entries of one listing chunk: a name, then its section, offset and length, each a
/// variable-length integer. A damaged entry ends the chunk.
fn listing(mut chunk: &[u8], entries: &mut Vec<Entry>) {
    while !chunk.is_empty() {
        let Some(len) = encint(&mut chunk) else {
            return;
        };
        let Some(len) = usize::try_from(len).ok().filter(|&len| len <= chunk.len()) else {
            return;
        };
        let name = String::from_utf8_lossy(&chunk[..len]).into_owned();
        chunk = &chunk[len..];
        let (Some(section), Some(offset), Some(length)) =
            (encint(&mut chunk), encint(&mut chunk), encint(&mut chunk))
        else {
            return;
        };
        entries.push(Entry {
            name,
            section,
            offset,
            length,
        });
    }
}

/// A CHM variable-length integer: seven bits a byte, most significant first, the top bit set
/// on every byte but the last.
fn encint(data: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, &byte) in data.iter().enumerate().take(9) {
        value = (value << 7) | u64::from(byte & 0x7F);
        if byte & 0x80 == 0 {
            *data = &data[i + 1..];
            return Some(value);
        }
    }
    None
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    data.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encints_are_big_endian_sevens() {
        let mut data: &[u8] = &[0x81, 0x00, 0x05, 0xFF];
        assert_eq!(encint(&mut data), Some(128));
        assert_eq!(encint(&mut data), Some(5));
        assert_eq!(encint(&mut data), None);
    }
}
