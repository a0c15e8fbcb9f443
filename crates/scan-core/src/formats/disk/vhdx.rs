//! VHDX (Hyper-V's format, MS-VHDX): two headers (the newer valid one wins), a region table
//! locating the block allocation table and the metadata (block size, disk size, sector size),
//! and payload blocks that are present, or read as zeros. Structures are checked with their
//! CRC-32C; a log left to replay, or a parent disk, is reported, never guessed through.

use std::io;

use super::device::{BlockMap, Blocks, Disk, Unreadable, le16, le32, le64};

const KIB_64: usize = 64 << 10;
const BAT: [u8; 16] = guid([
    0x66, 0x77, 0xC2, 0x2D, 0x23, 0xF6, 0x00, 0x42, 0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A, 0x08,
]);
const METADATA: [u8; 16] = guid([
    0x06, 0xA2, 0x7C, 0x8B, 0x90, 0x47, 0x9A, 0x4B, 0xB8, 0xFE, 0x57, 0x5F, 0x05, 0x0F, 0x88, 0x6E,
]);
const FILE_PARAMETERS: [u8; 16] = guid([
    0x37, 0x67, 0xA1, 0xCA, 0x36, 0xFA, 0x43, 0x4D, 0xB3, 0xB6, 0x33, 0xF0, 0xAA, 0x44, 0xE7, 0x6B,
]);
const VIRTUAL_DISK_SIZE: [u8; 16] = guid([
    0x24, 0x42, 0xA5, 0x2F, 0x1B, 0xCD, 0x76, 0x48, 0xB2, 0x11, 0x5D, 0xBE, 0xD8, 0x3B, 0xF4, 0xB8,
]);
const LOGICAL_SECTOR_SIZE: [u8; 16] = guid([
    0x1D, 0xBF, 0x41, 0x81, 0x6F, 0xA9, 0x09, 0x47, 0xBA, 0x47, 0xF2, 0x33, 0xA8, 0xFA, 0xAB, 0x5F,
]);

/// GUIDs as they lie on disk (the first three fields little-endian), written out so the
/// comparison is of bytes.
const fn guid(bytes: [u8; 16]) -> [u8; 16] {
    bytes
}

pub(super) fn identify(data: &[u8]) -> bool {
    data.starts_with(b"vhdxfile")
}

/// The virtual disk inside the VHDX `data`.
pub(super) fn open(data: &[u8]) -> Result<Disk<'_>, Unreadable> {
    let header = [KIB_64, 2 * KIB_64]
        .into_iter()
        .filter_map(|at| data.get(at..at + 4096))
        .filter(|h| h.starts_with(b"head") && checksum_holds(h, 4))
        .max_by_key(|h| le64(h, 8))
        .ok_or_else(|| Unreadable::Damaged("neither of its headers is valid".into()))?;
    if le16(header, 66) != 1 {
        return Err(Unreadable::Unsupported(format!(
            "version {} of the format",
            le16(header, 66)
        )));
    }
    if header[48..64].iter().any(|&b| b != 0) {
        return Err(Unreadable::Unsupported(
            "its log holds writes not yet applied (the disk was not closed cleanly)".into(),
        ));
    }
    let regions = [3 * KIB_64, 4 * KIB_64]
        .into_iter()
        .filter_map(|at| data.get(at..at + KIB_64))
        .find(|r| r.starts_with(b"regi") && checksum_holds(r, 4))
        .ok_or_else(|| Unreadable::Damaged("neither copy of its region table is valid".into()))?;
    let count = (le32(regions, 8) as usize).min((KIB_64 - 16) / 32);
    let region = |id: &[u8; 16]| {
        (0..count)
            .map(|i| &regions[16 + i * 32..48 + i * 32])
            .find(|e| &e[..16] == id)
            .map(|e| (le64(e, 16), u64::from(le32(e, 24))))
    };
    let (bat_at, bat_len) = region(&BAT)
        .ok_or_else(|| Unreadable::Damaged("it has no block allocation table".into()))?;
    let (meta_at, meta_len) =
        region(&METADATA).ok_or_else(|| Unreadable::Damaged("it has no metadata region".into()))?;
    let metadata = slice(data, meta_at, meta_len)
        .filter(|m| m.starts_with(b"metadata"))
        .ok_or_else(|| Unreadable::Damaged("its metadata region lies outside the image".into()))?;
    let item = |id: &[u8; 16], len: usize| -> Result<&[u8], Unreadable> {
        let entries = usize::from(le16(metadata, 10)).min(2047);
        (0..entries)
            .filter_map(|i| metadata.get(32 + i * 32..64 + i * 32))
            .find(|e| &e[..16] == id)
            .and_then(|e| slice(metadata, u64::from(le32(e, 16)), len as u64))
            .ok_or_else(|| Unreadable::Damaged("a required metadata item is missing".into()))
    };
    let parameters = item(&FILE_PARAMETERS, 8)?;
    let block_size = u64::from(le32(parameters, 0));
    if le32(parameters, 4) & 2 != 0 {
        return Err(Unreadable::Unsupported(
            "it is a differencing disk: only changes to a parent disk that is not here".into(),
        ));
    }
    let size = le64(item(&VIRTUAL_DISK_SIZE, 8)?, 0);
    let sector = u64::from(le32(item(&LOGICAL_SECTOR_SIZE, 4)?, 0));
    if !block_size.is_power_of_two() || !((1 << 20)..=(256 << 20)).contains(&block_size) {
        return Err(Unreadable::Damaged(format!(
            "its block size {block_size} is not a power of two between 1 and 256 MiB"
        )));
    }
    if sector != 512 && sector != 4096 {
        return Err(Unreadable::Damaged(format!(
            "its sector size {sector} is neither 512 nor 4096"
        )));
    }
    // One sector bitmap entry follows every `chunk` payload entries in the table.
    let chunk = (1u64 << 23) * sector / block_size;
    let blocks = size.div_ceil(block_size);
    let entries = blocks + blocks.saturating_sub(1) / chunk.max(1);
    if entries.saturating_mul(8) > bat_len || slice(data, bat_at, bat_len).is_none() {
        return Err(Unreadable::Damaged(
            "its block allocation table is too small for the disk, or lies outside the image"
                .into(),
        ));
    }
    let map = Table {
        data,
        table: bat_at,
        chunk: chunk.max(1),
    };
    Ok(Box::new(Blocks::new(data, map, block_size, size)))
}

fn slice(data: &[u8], at: u64, len: u64) -> Option<&[u8]> {
    let at = usize::try_from(at).ok()?;
    data.get(at..at.checked_add(usize::try_from(len).ok()?)?)
}

/// Whether the CRC-32C over `structure` (its checksum field at `at` taken as zero) matches.
fn checksum_holds(structure: &[u8], at: usize) -> bool {
    let stored = le32(structure, at);
    let mut copy = structure.to_vec();
    copy[at..at + 4].fill(0);
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, &copy) as u32 == stored
}

/// The block allocation table: 64-bit entries, a state in the low bits and the block's offset
/// in megabytes above bit 20.
struct Table<'a> {
    data: &'a [u8],
    table: u64,
    chunk: u64,
}

impl BlockMap for Table<'_> {
    fn locate(&self, index: u64) -> io::Result<Option<u64>> {
        let entry_index = index + index / self.chunk;
        let at = usize::try_from(self.table + entry_index * 8).unwrap_or(usize::MAX);
        let entry = le64(self.data, at);
        match entry & 7 {
            // Not present, undefined, zero, unmapped: no data was ever written there.
            0..=3 => Ok(None),
            6 => Ok(Some((entry >> 20) << 20)),
            state => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("block {index} is in state {state}, which needs a parent disk"),
            )),
        }
    }
}
