//! exFAT volumes (USB sticks, SD cards): the boot sector, the allocation table, and directory
//! entry sets (a file entry, its stream extension, its name entries). Files stored as one
//! run of clusters (`NoFatChain`) are read without the table. Every cluster number, chain and
//! length is checked before it is used.

use std::collections::HashSet;
use std::io::{self, Read};

use super::device::{Device, Tracked, le16, le32, le64, read_at};
use super::volume::{MAX_DEPTH, MAX_ENTRIES, Volume};
use crate::formats::members::Members;

pub(super) fn identify(sector: &[u8]) -> bool {
    sector.get(3..11) == Some(b"EXFAT   ")
}

/// Where everything lies, from the boot sector.
#[derive(Debug, Clone, Copy)]
struct Layout {
    cluster: u64,
    /// The allocation table's offset, in bytes.
    fat: u64,
    /// Offset of cluster 2, in bytes.
    heap: u64,
    clusters: u32,
    root: u32,
}

impl Layout {
    fn parse(boot: &[u8]) -> Result<Self, String> {
        let sector_shift = u32::from(boot[108]);
        let cluster_shift = u32::from(boot[109]);
        if !(9..=12).contains(&sector_shift) || sector_shift + cluster_shift > 25 {
            return Err("its sector or cluster size is impossible".into());
        }
        if boot[11..64].iter().any(|&b| b != 0) {
            return Err("its boot sector's must-be-zero area is not".into());
        }
        let sector = 1u64 << sector_shift;
        let clusters = le32(boot, 92);
        let fat = u64::from(le32(boot, 80)) * sector;
        let fat_len = u64::from(le32(boot, 84)) * sector;
        if fat_len < (u64::from(clusters) + 2) * 4 {
            return Err("its allocation table is too small for its clusters".into());
        }
        Ok(Self {
            cluster: sector << cluster_shift,
            fat,
            heap: u64::from(le32(boot, 88)) * sector,
            clusters,
            root: le32(boot, 96),
        })
    }

    fn valid(&self, cluster: u32) -> bool {
        (2..self.clusters.saturating_add(2)).contains(&cluster)
    }

    fn offset(&self, cluster: u32) -> u64 {
        self.heap + u64::from(cluster - 2) * self.cluster
    }

    /// The cluster after `cluster`: the next one of a contiguous run, or the table's entry.
    fn next(&self, device: &mut dyn Device, cluster: u32, contiguous: bool) -> io::Result<u32> {
        let next = if contiguous {
            cluster.saturating_add(1)
        } else {
            let mut entry = [0u8; 4];
            read_at(device, self.fat + u64::from(cluster) * 4, &mut entry)?;
            u32::from_le_bytes(entry)
        };
        if self.valid(next) {
            Ok(next)
        } else {
            Err(damaged(format!(
                "cluster {cluster} is followed by {next:#x}, the end of the chain or out of range, \
                 before the data's length"
            )))
        }
    }
}

fn damaged(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// A file's (or directory's) data: a run of clusters or a chain, `valid` bytes read from
/// them and the rest, up to `left`, zeros (exFAT's valid data length).
struct Data<'a, D> {
    device: &'a mut D,
    layout: Layout,
    contiguous: bool,
    cluster: u32,
    within: u64,
    valid: u64,
    left: u64,
}

impl<D: Device> Read for Data<'_, D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        if self.valid == 0 {
            let n = self.left.min(buf.len() as u64) as usize;
            buf[..n].fill(0);
            self.left -= n as u64;
            return Ok(n);
        }
        if self.within == self.layout.cluster {
            self.cluster = self
                .layout
                .next(self.device, self.cluster, self.contiguous)?;
            self.within = 0;
        }
        if !self.layout.valid(self.cluster) {
            return Err(damaged(format!(
                "the data starts at cluster {:#x}, out of range",
                self.cluster
            )));
        }
        let n = (self.layout.cluster - self.within)
            .min(self.valid)
            .min(buf.len() as u64) as usize;
        read_at(
            self.device,
            self.layout.offset(self.cluster) + self.within,
            &mut buf[..n],
        )?;
        self.within += n as u64;
        self.valid -= n as u64;
        self.left -= n as u64;
        Ok(n)
    }
}

/// One file or directory of a directory, from its entry set.
struct Entry {
    name: String,
    directory: bool,
    contiguous: bool,
    cluster: u32,
    valid: u64,
    size: u64,
}

/// The entry sets of a directory's bytes: in-use file entries with their stream extension
/// and name; anything else (bitmap, up-case table, label, deleted sets) is left out.
fn entries(bytes: &[u8]) -> Vec<Entry> {
    let mut out = Vec::new();
    let raw: Vec<&[u8]> = bytes.chunks_exact(32).collect();
    let mut i = 0;
    while i < raw.len() {
        let entry = raw[i];
        i += 1;
        match entry[0] {
            0 => break,
            0x85 => {}
            _ => continue,
        }
        let secondary = usize::from(entry[1]);
        let Some(set) = raw.get(i..i + secondary) else {
            break;
        };
        let Some(stream) = set.first().filter(|s| s[0] == 0xC0) else {
            continue;
        };
        let name_units = usize::from(stream[3]);
        let name: Vec<u16> = set[1..]
            .iter()
            .filter(|e| e[0] == 0xC1)
            .flat_map(|e| (0..15).map(|k| le16(e, 2 + 2 * k)))
            .take(name_units)
            .collect();
        i += secondary;
        let name = String::from_utf16_lossy(&name);
        if name.is_empty() {
            continue;
        }
        let size = le64(stream, 24);
        out.push(Entry {
            name,
            directory: le16(entry, 4) & 0x10 != 0,
            contiguous: stream[1] & 0x02 != 0,
            cluster: le32(stream, 20),
            valid: le64(stream, 8).min(size),
            size,
        });
    }
    out
}

/// Walks the exFAT volume on `device`.
pub(super) fn walk<D: Device>(members: &mut Members<'_>, device: D, volume: &mut Volume<'_>) {
    let mut device = Tracked::new(device, volume.reads());
    let mut boot = [0u8; 512];
    if let Err(e) = read_at(&mut device, 0, &mut boot) {
        return members.corrupt("exFAT volume", e);
    }
    let layout = match Layout::parse(&boot) {
        Ok(layout) => layout,
        Err(e) => return members.corrupt("exFAT volume", e),
    };
    // Only file reads in the cluster heap are counted for loops: the table is read again and
    // again.
    volume.reads().set_floor(layout.heap);
    let limit = (MAX_ENTRIES * 32) as u64;
    let mut seen = HashSet::new();
    // The root has no length of its own: its chain, up to the most entries a directory holds.
    let mut pending = vec![(String::new(), layout.root, false, limit, 0usize)];
    while let Some((prefix, first, contiguous, len, depth)) = pending.pop() {
        if members.stopped() {
            return;
        }
        if !seen.insert(first) {
            members.corrupt(
                "exFAT volume",
                format!("the directory {prefix}/ is one already walked (the tree loops)"),
            );
            continue;
        }
        let bytes = match directory(&mut device, layout, first, contiguous, len.min(limit)) {
            Ok(bytes) => bytes,
            Err(e) => {
                members.corrupt("exFAT volume", format!("the directory {prefix}/: {e}"));
                continue;
            }
        };
        for entry in entries(&bytes) {
            if members.stopped() {
                return;
            }
            let path = if prefix.is_empty() {
                entry.name.clone()
            } else {
                format!("{prefix}/{}", entry.name)
            };
            if entry.directory {
                if depth >= MAX_DEPTH {
                    members.corrupt(
                        "exFAT volume",
                        format!("the directory {path}/ nests deeper than {MAX_DEPTH} levels"),
                    );
                } else if volume.enter(members) {
                    pending.push((path, entry.cluster, entry.contiguous, entry.size, depth + 1));
                } else {
                    return;
                }
                continue;
            }
            let mut data = Data {
                device: &mut device,
                layout,
                contiguous: entry.contiguous,
                cluster: entry.cluster,
                within: 0,
                valid: entry.valid,
                left: entry.size,
            };
            volume.file(members, &path, entry.size, &mut data);
        }
    }
}

/// A directory's bytes: `len` of them (the root's chain ends before), following its chain.
fn directory<D: Device>(
    device: &mut D,
    layout: Layout,
    first: u32,
    contiguous: bool,
    len: u64,
) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut cluster = first;
    let mut visited = HashSet::new();
    // The root has no length of its own: its chain ends it. Any other directory must hold
    // the bytes its stream extension says.
    let root = len == (MAX_ENTRIES * 32) as u64;
    while (out.len() as u64) < len {
        if !layout.valid(cluster) {
            if out.is_empty() || !root {
                return Err(damaged(format!(
                    "its chain reaches cluster {cluster:#x}, out of range, before its length"
                )));
            }
            break;
        }
        if !visited.insert(cluster) {
            return Err(damaged("its chain of clusters loops".into()));
        }
        let start = out.len();
        out.resize(start + layout.cluster as usize, 0);
        read_at(device, layout.offset(cluster), &mut out[start..])?;
        cluster = if contiguous {
            cluster.saturating_add(1)
        } else {
            let mut entry = [0u8; 4];
            read_at(device, layout.fat + u64::from(cluster) * 4, &mut entry)?;
            u32::from_le_bytes(entry)
        };
    }
    out.truncate(len.min(out.len() as u64) as usize);
    Ok(out)
}
