//! FAT12, FAT16 and FAT32 volumes: the BIOS parameter block, the allocation table read a
//! sector at a time as chains are followed, and directories with their long (VFAT) names.
//! Written here rather than through the `fatfs` crate: a scanner meets damaged and hostile
//! volumes, and every cluster number, chain and count is checked before it is used (`fatfs`
//! panics on a cluster number out of range).

use std::cell::RefCell;
use std::collections::HashSet;
use std::io::{self, Read};

use super::device::{Device, Tracked, le16, le32, read_at};
use super::volume::{MAX_DEPTH, MAX_ENTRIES, Volume};
use crate::formats::members::Members;

/// Whether `sector` is a FAT boot sector: a jump, and a BIOS parameter block whose fields
/// have the only values FAT allows.
pub(super) fn identify(sector: &[u8]) -> bool {
    if sector.len() < 512 {
        return false;
    }
    let jump = (sector[0] == 0xEB && sector[2] == 0x90) || sector[0] == 0xE9;
    let media = sector[21];
    jump && Layout::parse(sector).is_ok()
        && (media == 0xF0 || media >= 0xF8)
        // NTFS and exFAT start with a jump too, and leave these fields zero; checked apart.
        && &sector[3..11] != b"NTFS    "
        && &sector[3..11] != b"EXFAT   "
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Width {
    Fat12,
    Fat16,
    Fat32,
}

/// Where everything lies, from the boot sector.
#[derive(Debug, Clone, Copy)]
struct Layout {
    width: Width,
    sector: u64,
    cluster: u64,
    /// The first FAT's offset, in bytes.
    fat: u64,
    /// FAT12/16's fixed root directory: offset and length in bytes.
    root: (u64, u64),
    /// FAT32's root directory cluster.
    root_cluster: u32,
    /// Offset of cluster 2, in bytes.
    data: u64,
    /// Number of data clusters (valid cluster numbers are 2 to this plus one).
    clusters: u32,
}

impl Layout {
    fn parse(boot: &[u8]) -> Result<Self, String> {
        let sector = u64::from(le16(boot, 11));
        let per_cluster = u64::from(boot[13]);
        let reserved = u64::from(le16(boot, 14));
        let fats = u64::from(boot[16]);
        let root_entries = u64::from(le16(boot, 17));
        let total = match u64::from(le16(boot, 19)) {
            0 => u64::from(le32(boot, 32)),
            n => n,
        };
        let fat_sectors = match u64::from(le16(boot, 22)) {
            0 => u64::from(le32(boot, 36)),
            n => n,
        };
        if ![512, 1024, 2048, 4096].contains(&sector)
            || !per_cluster.is_power_of_two()
            || reserved == 0
            || !(1..=4).contains(&fats)
            || total == 0
            || fat_sectors == 0
        {
            return Err("its BIOS parameter block holds impossible values".into());
        }
        let root_sectors = (root_entries * 32).div_ceil(sector);
        let first_data = reserved + fats * fat_sectors + root_sectors;
        let data_sectors = total
            .checked_sub(first_data)
            .ok_or("its tables are larger than the volume")?;
        let clusters = data_sectors / per_cluster;
        let width = if clusters < 4085 {
            Width::Fat12
        } else if clusters < 65525 {
            Width::Fat16
        } else {
            Width::Fat32
        };
        let entry_bits = match width {
            Width::Fat12 => 12,
            Width::Fat16 => 16,
            Width::Fat32 => 32,
        };
        if fat_sectors * sector * 8 < (clusters + 2) * entry_bits {
            return Err("its allocation table is too small for its clusters".into());
        }
        if width == Width::Fat32 && root_entries != 0 {
            return Err("a FAT32 volume with a fixed root directory".into());
        }
        Ok(Self {
            width,
            sector,
            cluster: per_cluster * sector,
            fat: reserved * sector,
            root: ((reserved + fats * fat_sectors) * sector, root_entries * 32),
            root_cluster: le32(boot, 44),
            data: first_data * sector,
            clusters: u32::try_from(clusters).map_err(|_| "too many clusters")?,
        })
    }

    fn valid(&self, cluster: u32) -> bool {
        (2..self.clusters.saturating_add(2)).contains(&cluster)
    }

    fn offset(&self, cluster: u32) -> u64 {
        self.data + u64::from(cluster - 2) * self.cluster
    }
}

/// What the table says follows a cluster.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Cluster(u32),
    End,
}

/// The volume: its layout and the table sector last read.
struct Fat {
    layout: Layout,
    cached: RefCell<Option<(u64, Vec<u8>)>>,
}

impl Fat {
    /// The table entry of `cluster`, read from `device`.
    fn next(&self, device: &mut dyn Device, cluster: u32) -> io::Result<Next> {
        let layout = &self.layout;
        let (at, bytes) = match layout.width {
            Width::Fat12 => (u64::from(cluster) * 3 / 2, 2),
            Width::Fat16 => (u64::from(cluster) * 2, 2),
            Width::Fat32 => (u64::from(cluster) * 4, 4),
        };
        let mut raw = [0u8; 4];
        for (i, slot) in raw.iter_mut().take(bytes).enumerate() {
            *slot = self.table_byte(device, at + i as u64)?;
        }
        let value = match layout.width {
            Width::Fat12 => {
                let word = u32::from(u16::from_le_bytes([raw[0], raw[1]]));
                if cluster.is_multiple_of(2) {
                    word & 0xFFF
                } else {
                    word >> 4
                }
            }
            Width::Fat16 => u32::from(u16::from_le_bytes([raw[0], raw[1]])),
            Width::Fat32 => u32::from_le_bytes(raw) & 0x0FFF_FFFF,
        };
        let end = match layout.width {
            Width::Fat12 => 0xFF8,
            Width::Fat16 => 0xFFF8,
            Width::Fat32 => 0x0FFF_FFF8,
        };
        if value >= end {
            Ok(Next::End)
        } else if layout.valid(value) {
            Ok(Next::Cluster(value))
        } else {
            Err(damaged(format!(
                "cluster {cluster} is followed by {value:#x}, which is free, bad or out of range"
            )))
        }
    }

    fn table_byte(&self, device: &mut dyn Device, at: u64) -> io::Result<u8> {
        let sector = self.layout.sector;
        let start = at / sector * sector;
        let mut cached = self.cached.borrow_mut();
        if cached.as_ref().is_none_or(|(s, _)| *s != start) {
            let mut buf = vec![0u8; sector as usize];
            read_at(device, self.layout.fat + start, &mut buf)?;
            *cached = Some((start, buf));
        }
        Ok(cached
            .as_ref()
            .map_or(0, |(_, buf)| buf[(at - start) as usize]))
    }

    /// The bytes of a directory: the fixed root, or a chain of clusters (which must not
    /// loop, and is read up to the most entries a directory may hold).
    fn directory(&self, device: &mut dyn Device, first: Option<u32>) -> io::Result<Vec<u8>> {
        let limit = (MAX_ENTRIES * 32) as u64;
        let Some(mut cluster) = first else {
            let (at, len) = self.layout.root;
            let mut buf = vec![0u8; len.min(limit) as usize];
            read_at(device, at, &mut buf)?;
            return Ok(buf);
        };
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        loop {
            if !self.layout.valid(cluster) {
                return Err(damaged(format!(
                    "a directory starts at cluster {cluster:#x}, out of range"
                )));
            }
            if !seen.insert(cluster) {
                return Err(damaged("a directory's chain of clusters loops".into()));
            }
            let start = out.len();
            out.resize(start + self.layout.cluster as usize, 0);
            read_at(device, self.layout.offset(cluster), &mut out[start..])?;
            if out.len() as u64 >= limit {
                return Ok(out);
            }
            match self.next(device, cluster)? {
                Next::Cluster(next) => cluster = next,
                Next::End => return Ok(out),
            }
        }
    }
}

fn damaged(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// A file's bytes, cluster after cluster along its chain, up to its size.
struct FileReader<'a, D> {
    device: &'a mut D,
    fat: &'a Fat,
    cluster: u32,
    within: u64,
    left: u64,
}

impl<D: Device> Read for FileReader<'_, D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let layout = &self.fat.layout;
        if self.within == layout.cluster {
            self.cluster = match self.fat.next(self.device, self.cluster)? {
                Next::Cluster(next) => next,
                Next::End => {
                    return Err(damaged(
                        "the file's chain of clusters ends before its size".into(),
                    ));
                }
            };
            self.within = 0;
        }
        if !layout.valid(self.cluster) {
            return Err(damaged(format!(
                "the file starts at cluster {:#x}, out of range",
                self.cluster
            )));
        }
        let n = (layout.cluster - self.within)
            .min(self.left)
            .min(buf.len() as u64) as usize;
        read_at(
            self.device,
            layout.offset(self.cluster) + self.within,
            &mut buf[..n],
        )?;
        self.within += n as u64;
        self.left -= n as u64;
        Ok(n)
    }
}

/// One directory entry, its long name put together.
struct Entry {
    name: String,
    directory: bool,
    cluster: u32,
    size: u64,
}

/// The entries of a directory's bytes: deleted ones, volume labels and `.`/`..` left out; a
/// long name is used when its checksum matches the short entry it belongs to.
fn entries(bytes: &[u8], width: Width) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut long: Vec<u16> = Vec::new();
    let mut long_sum = None;
    for raw in bytes.chunks_exact(32) {
        match raw[0] {
            0 => break,
            0xE5 => {
                long.clear();
                continue;
            }
            _ => {}
        }
        let attributes = raw[11];
        if attributes & 0x3F == 0x0F {
            // A long-name piece: they come last piece first, each with 13 UTF-16 units.
            let mut piece: Vec<u16> = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30]
                .iter()
                .map(|&at| le16(raw, at))
                .collect();
            if raw[0] & 0x40 != 0 {
                long.clear();
            }
            piece.extend_from_slice(&long);
            long = piece;
            long_sum = Some(raw[13]);
            continue;
        }
        if attributes & 0x08 != 0 {
            long.clear();
            continue;
        }
        let short = &raw[..11];
        let sum = short
            .iter()
            .fold(0u8, |s, &b| s.rotate_right(1).wrapping_add(b));
        let name = if !long.is_empty() && long_sum == Some(sum) {
            let end = long
                .iter()
                .position(|&u| u == 0 || u == 0xFFFF)
                .unwrap_or(long.len());
            String::from_utf16_lossy(&long[..end])
        } else {
            short_name(raw)
        };
        long.clear();
        if name == "." || name == ".." || name.is_empty() {
            continue;
        }
        let high = if width == Width::Fat32 {
            u32::from(le16(raw, 20)) << 16
        } else {
            0
        };
        out.push(Entry {
            name,
            directory: attributes & 0x10 != 0,
            cluster: high | u32::from(le16(raw, 26)),
            size: u64::from(le32(raw, 28)),
        });
    }
    out
}

/// An 8.3 name as Windows shows it: `REPORT.EXE`, or lower case where the entry says so.
fn short_name(raw: &[u8]) -> String {
    let text = |bytes: &[u8], lower: bool| -> String {
        bytes
            .iter()
            .map(|&b| {
                let c = char::from(b);
                if lower { c.to_ascii_lowercase() } else { c }
            })
            .collect::<String>()
            .trim_end()
            .to_owned()
    };
    let mut base = raw[..8].to_vec();
    if base[0] == 0x05 {
        base[0] = 0xE5;
    }
    let base = text(&base, raw[12] & 0x08 != 0);
    let extension = text(&raw[8..11], raw[12] & 0x10 != 0);
    if extension.is_empty() {
        base
    } else {
        format!("{base}.{extension}")
    }
}

/// Walks the FAT volume on `device`.
pub(super) fn walk<D: Device>(members: &mut Members<'_>, device: D, volume: &mut Volume<'_>) {
    let mut device = Tracked::new(device, volume.reads());
    let mut boot = [0u8; 512];
    if let Err(e) = read_at(&mut device, 0, &mut boot) {
        return members.corrupt("FAT volume", e);
    }
    let layout = match Layout::parse(&boot) {
        Ok(layout) => layout,
        Err(e) => return members.corrupt("FAT volume", e),
    };
    // Only file reads in the data area are counted for loops: tables are read again and again.
    volume.reads().set_floor(layout.data);
    let fat = Fat {
        layout,
        cached: RefCell::new(None),
    };
    let root = (layout.width == Width::Fat32).then_some(layout.root_cluster);
    let mut seen = HashSet::new();
    let mut pending = vec![(String::new(), root, 0usize)];
    while let Some((prefix, first, depth)) = pending.pop() {
        if members.stopped() {
            return;
        }
        let bytes = match fat.directory(&mut device, first) {
            Ok(bytes) => bytes,
            Err(e) => {
                members.corrupt("FAT volume", format!("the directory {prefix}/: {e}"));
                continue;
            }
        };
        for entry in entries(&bytes, layout.width) {
            if members.stopped() {
                return;
            }
            let path = if prefix.is_empty() {
                entry.name
            } else {
                format!("{prefix}/{}", entry.name)
            };
            if entry.directory {
                if entry.cluster == 0 || !seen.insert(entry.cluster) {
                    // Cluster 0 is the root again: a directory that loops back.
                    members.corrupt(
                        "FAT volume",
                        format!("the directory {path}/ is one already walked (the tree loops)"),
                    );
                } else if depth >= MAX_DEPTH {
                    members.corrupt(
                        "FAT volume",
                        format!("the directory {path}/ nests deeper than {MAX_DEPTH} levels"),
                    );
                } else if volume.enter(members) {
                    pending.push((path, Some(entry.cluster), depth + 1));
                } else {
                    return;
                }
                continue;
            }
            let mut reader = FileReader {
                device: &mut device,
                fat: &fat,
                cluster: entry.cluster,
                within: 0,
                left: entry.size,
            };
            volume.file(members, &path, entry.size, &mut reader);
        }
    }
}
