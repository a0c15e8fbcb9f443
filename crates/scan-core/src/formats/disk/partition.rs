//! Partition tables: MBR (four primary entries, and the chain of logical partitions in an
//! extended one) and GPT (its header checked by CRC-32, a backup tried when the primary one
//! fails). Partitions are numbered as Linux numbers them: MBR primaries 1-4, logical ones from
//! 5, GPT entries by their slot.

use std::collections::HashSet;

use super::device::{Device, Unreadable, le32, le64, read_at};

/// Logical partitions in one extended partition, at most (a chain longer, or one that loops,
/// is damaged).
const MAX_LOGICAL: usize = 128;
/// GPT entries read, at most (the usual table holds 128; the count is the writer's to choose).
const MAX_GPT_ENTRIES: u32 = 1024;

/// One partition: its number and where it lies on the disk, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Partition {
    pub(super) number: u32,
    pub(super) start: u64,
    pub(super) len: u64,
    /// The MBR type byte (0 for GPT), for messages about what the partition holds.
    pub(super) kind: u8,
}

/// Whether `sector` (a disk's first 512 bytes) holds a plausible MBR partition table: the
/// boot signature, and entries whose flags and extents make sense, at least one in use.
pub(super) fn is_mbr(sector: &[u8], disk_len: u64) -> bool {
    if sector.len() < 512 || sector[510..512] != [0x55, 0xAA] {
        return false;
    }
    let sectors = disk_len / 512;
    let mut used = 0;
    for entry in sector[446..510].chunks_exact(16) {
        if entry[0] != 0 && entry[0] != 0x80 {
            return false;
        }
        if entry[4] == 0 {
            continue;
        }
        let start = u64::from(le32(entry, 8));
        let count = u64::from(le32(entry, 12));
        // A protective MBR (GPT) spans the disk, or all of 32 bits of it.
        if start == 0 || count == 0 || (entry[4] != 0xEE && start >= sectors) {
            return false;
        }
        used += 1;
    }
    used > 0
}

/// The partitions of a disk whose first sector is `mbr`.
pub(super) fn partitions(
    disk: &mut dyn Device,
    mbr: &[u8],
    disk_len: u64,
) -> Result<Vec<Partition>, Unreadable> {
    let entries: Vec<&[u8]> = mbr[446..510].chunks_exact(16).collect();
    if entries.iter().any(|e| e[4] == 0xEE) {
        return gpt(disk, disk_len);
    }
    let mut found = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let kind = entry[4];
        let start = u64::from(le32(entry, 8)) * 512;
        let len = u64::from(le32(entry, 12)) * 512;
        match kind {
            0 => {}
            0x05 | 0x0F | 0x85 => logical(disk, start, &mut found)?,
            _ => found.push(Partition {
                number: i as u32 + 1,
                start,
                len,
                kind,
            }),
        }
    }
    Ok(found)
}

/// Follows an extended partition's chain of boot records: each holds one logical partition
/// (placed relative to itself) and a link to the next (relative to the extended partition).
fn logical(
    disk: &mut dyn Device,
    extended: u64,
    found: &mut Vec<Partition>,
) -> Result<(), Unreadable> {
    let mut seen = HashSet::new();
    let mut record = extended;
    let mut number = 5;
    loop {
        if !seen.insert(record) || seen.len() > MAX_LOGICAL {
            return Err(Unreadable::Damaged(
                "its chain of logical partitions loops or never ends".into(),
            ));
        }
        let mut sector = [0u8; 512];
        read_at(disk, record, &mut sector).map_err(|e| {
            Unreadable::Damaged(format!(
                "a logical partition's boot record cannot be read: {e}"
            ))
        })?;
        if sector[510..512] != [0x55, 0xAA] {
            return Err(Unreadable::Damaged(
                "a logical partition's boot record has no signature".into(),
            ));
        }
        let this = &sector[446..462];
        if this[4] != 0 {
            found.push(Partition {
                number,
                start: record + u64::from(le32(this, 8)) * 512,
                len: u64::from(le32(this, 12)) * 512,
                kind: this[4],
            });
            number += 1;
        }
        let next = &sector[462..478];
        if next[4] == 0 {
            return Ok(());
        }
        record = extended + u64::from(le32(next, 8)) * 512;
    }
}

/// A GUID partition table: the header at LBA 1 (or the backup at the disk's last sector), its
/// entries, each with a non-zero type in use.
fn gpt(disk: &mut dyn Device, disk_len: u64) -> Result<Vec<Partition>, Unreadable> {
    let mut last_error = String::from("its GPT header is missing");
    // 512-byte sectors, then 4096-byte ones; the primary header, then the backup.
    for sector in [512u64, 4096] {
        let backup = (disk_len / sector).saturating_sub(1) * sector;
        for at in [sector, backup] {
            let mut header = vec![0u8; sector as usize];
            if read_at(disk, at, &mut header).is_err() || !header.starts_with(b"EFI PART") {
                continue;
            }
            match gpt_entries(disk, &header, sector) {
                Ok(found) => return Ok(found),
                Err(e) => last_error = e,
            }
        }
    }
    Err(Unreadable::Damaged(last_error))
}

fn gpt_entries(
    disk: &mut dyn Device,
    header: &[u8],
    sector: u64,
) -> Result<Vec<Partition>, String> {
    let size = le32(header, 12) as usize;
    if !(92..=header.len()).contains(&size) {
        return Err(format!("its GPT header size {size} is impossible"));
    }
    let mut copy = header[..size].to_vec();
    copy[16..20].fill(0);
    if crc32fast::hash(&copy) != le32(header, 16) {
        return Err("its GPT header fails its checksum".into());
    }
    let table = le64(header, 72).saturating_mul(sector);
    let count = le32(header, 80);
    let entry_size = le32(header, 84) as usize;
    if count > MAX_GPT_ENTRIES || !(128..=4096).contains(&entry_size) {
        return Err(format!(
            "its GPT holds {count} entries of {entry_size} bytes, more than a table does"
        ));
    }
    let mut entries = vec![0u8; count as usize * entry_size];
    read_at(disk, table, &mut entries)
        .map_err(|e| format!("its GPT entries cannot be read: {e}"))?;
    if crc32fast::hash(&entries) != le32(header, 88) {
        return Err("its GPT entries fail their checksum".into());
    }
    let mut found = Vec::new();
    for (i, entry) in entries.chunks_exact(entry_size).enumerate() {
        if entry[..16].iter().all(|&b| b == 0) {
            continue;
        }
        let first = le64(entry, 32);
        let last = le64(entry, 40);
        if last < first {
            return Err(format!("GPT partition {} ends before it starts", i + 1));
        }
        found.push(Partition {
            number: i as u32 + 1,
            start: first.saturating_mul(sector),
            len: (last - first + 1).saturating_mul(sector),
            kind: 0,
        });
    }
    Ok(found)
}
