//! ISO 9660 disk images (CDs, and the `.iso` attachments used to carry executables past
//! mark-of-the-web): the directory tree is walked from the Joliet volume (long Unicode names)
//! when there is one, else the primary volume, and every file is a member under its path. A
//! bridge disc's UDF side is walked after it, for the files the ISO 9660 side does not name.

use std::collections::HashSet;

use super::Format;
use crate::formats::members::Members;
use crate::verdict::Reason;

pub(super) const FORMAT: Format = Format {
    name: "iso9660",
    identify: |data| data.get(0x8001..0x8006) == Some(b"CD001"),
    expand,
};

const SECTOR: usize = 2048;
/// Volume descriptors are read up to this many sectors past the first (a set ends with its
/// terminator long before).
const MAX_DESCRIPTORS: usize = 64;
/// Directories nested deeper than this are not followed (loops are caught separately).
const MAX_DIRECTORY_DEPTH: usize = 64;

/// A volume's root: its directory's extent and length, and whether names are UTF-16 (Joliet).
struct Volume {
    block_size: usize,
    root_extent: usize,
    root_length: usize,
    joliet: bool,
}

fn expand(members: &mut Members<'_>, data: &[u8]) {
    let mut read = HashSet::new();
    walk(members, data, &mut read);
    // A bridge disc: Windows shows its UDF side, which may name files the ISO 9660 side
    // does not (or other bytes under the same names).
    if super::disk::udf_identify(data) && !members.stopped() {
        super::disk::udf_bridge(members, data, &read);
    }
}

/// Walks the ISO 9660 tree, recording where each file read lies (offset and length).
fn walk(members: &mut Members<'_>, data: &[u8], read: &mut HashSet<(u64, u64)>) {
    let Some(volume) = volume(data) else {
        return members.corrupt(
            "ISO 9660 image",
            "no primary volume descriptor could be read",
        );
    };
    if volume.root_length == 0 || volume.root_extent <= 16 {
        return members.corrupt("ISO 9660 image", "its root directory is missing");
    }
    let mut seen = HashSet::new();
    let mut pending = vec![(
        String::new(),
        volume.root_extent,
        volume.root_length,
        0usize,
    )];
    while let Some((prefix, extent, length, depth)) = pending.pop() {
        if members.stopped() {
            return;
        }
        if !seen.insert(extent) {
            continue;
        }
        let start = extent.saturating_mul(volume.block_size);
        let Some(records) = data.get(start..start.saturating_add(length)) else {
            members.corrupt(
                "ISO 9660 image",
                format!("the directory {prefix}/ lies past the end of the image"),
            );
            continue;
        };
        for record in directory_records(records) {
            if members.stopped() {
                return;
            }
            let name = record_name(record.name, volume.joliet);
            if name.is_empty() {
                continue;
            }
            let path = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            if record.directory {
                if depth < MAX_DIRECTORY_DEPTH {
                    pending.push((path, record.extent, record.length, depth + 1));
                } else {
                    let child = members.child(&path);
                    members.member_problem(
                        &child,
                        Reason::LimitExceeded {
                            limit: crate::limits::Limit::MaxRecursion,
                        },
                        "directories nested too deep in the image",
                    );
                }
                continue;
            }
            let start = record.extent.saturating_mul(volume.block_size);
            match data.get(start..start.saturating_add(record.length)) {
                Some(bytes) => {
                    read.insert((start as u64, bytes.len() as u64));
                    members.bytes(&path, bytes);
                }
                None => {
                    let child = members.child(&path);
                    members.member_problem(
                        &child,
                        Reason::Corrupt,
                        "the file lies past the end of the image (it is cut short)",
                    );
                }
            }
        }
    }
}

/// The Joliet supplementary volume if there is one, else the primary volume.
fn volume(data: &[u8]) -> Option<Volume> {
    let mut primary = None;
    for index in 0..MAX_DESCRIPTORS {
        let at = (16 + index) * SECTOR;
        let Some(descriptor) = data.get(at..at + SECTOR) else {
            break;
        };
        if &descriptor[1..6] != b"CD001" {
            break;
        }
        let kind = descriptor[0];
        if kind == 255 {
            break;
        }
        let joliet = kind == 2 && matches!(&descriptor[88..91], b"%/@" | b"%/C" | b"%/E");
        if kind != 1 && !joliet {
            continue;
        }
        let block_size = usize::from(u16::from_le_bytes([descriptor[128], descriptor[129]]));
        let root = &descriptor[156..190];
        let volume = Volume {
            block_size: if block_size == 0 { SECTOR } else { block_size },
            root_extent: u32::from_le_bytes([root[2], root[3], root[4], root[5]]) as usize,
            root_length: u32::from_le_bytes([root[10], root[11], root[12], root[13]]) as usize,
            joliet,
        };
        if joliet {
            return Some(volume);
        }
        primary.get_or_insert(volume);
    }
    primary
}

struct Record<'d> {
    extent: usize,
    length: usize,
    directory: bool,
    name: &'d [u8],
}

/// The records of a directory's data, skipping the padding at the end of each sector, and the
/// `.` and `..` entries (names `\0` and `\1`).
fn directory_records(data: &[u8]) -> impl Iterator<Item = Record<'_>> {
    let mut at = 0;
    std::iter::from_fn(move || {
        loop {
            let len = usize::from(*data.get(at)?);
            if len == 0 {
                // Records do not cross sectors: the rest of this one is padding.
                at = (at / SECTOR + 1) * SECTOR;
                continue;
            }
            let record = data.get(at..at + len)?;
            at += len;
            if len < 34 {
                return None;
            }
            let name_len = usize::from(record[32]);
            let name = record.get(33..33 + name_len)?;
            if name == [0] || name == [1] {
                continue;
            }
            return Some(Record {
                extent: u32::from_le_bytes([record[2], record[3], record[4], record[5]]) as usize,
                length: u32::from_le_bytes([record[10], record[11], record[12], record[13]])
                    as usize,
                directory: record[25] & 2 != 0,
                name,
            });
        }
    })
}

/// A file identifier as a path component: UTF-16BE on Joliet volumes, else ASCII; the `;1`
/// version and a trailing dot dropped, and separators replaced.
fn record_name(raw: &[u8], joliet: bool) -> String {
    let name = if joliet {
        let units: Vec<u16> = raw
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    } else {
        raw.iter().map(|&b| char::from(b)).collect()
    };
    let name = name.split(';').next().unwrap_or("");
    let name = name.strip_suffix('.').unwrap_or(name);
    name.replace(['/', '\\'], "_")
}
