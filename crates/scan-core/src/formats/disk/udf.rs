//! UDF (ECMA-167 as OSTA profiles it) volumes: DVD and Blu-ray images, and the `.iso` and
//! `.img` attachments Windows mounts with a double click. The anchor leads to the volume
//! descriptors, their partition and logical volume to the file set, and its root to every
//! file identifier and file entry; files are read through their allocation descriptors,
//! unrecorded extents as zeros. Type 1 partitions and UDF 2.50's metadata partition are
//! mapped; sparable and virtual (packet-written CD-RW, CD-R) partitions are `unsupported`.
//! A disc that also carries ISO 9660 (a bridge) is walked here too, for the files only its
//! UDF side names: Windows shows the UDF side.

use std::collections::HashSet;
use std::io::{self, Read};

use super::device::{Device, Tracked, le16, le32, le64, read_at};
use super::volume::{MAX_DEPTH, MAX_ENTRIES, Volume};
use crate::formats::members::Members;
use crate::verdict::Reason;

const WHAT: &str = "UDF volume";
/// The volume recognition sequence starts at 32 KiB, one descriptor per 2 KiB (or per block
/// when blocks are larger).
const VRS_START: usize = 32 << 10;
/// Descriptors examined before giving up on a sequence that does not end.
const MAX_VRS: usize = 64;
/// Blocks of a volume descriptor sequence read (the standard asks for at least 16).
const MAX_VDS_BLOCKS: u64 = 256;
/// Indirect entries and allocation extent descriptors followed for one file before it is
/// taken for a loop.
const MAX_HOPS: usize = 4096;
/// A directory's bytes: far past what `MAX_ENTRIES` identifiers take.
const MAX_DIRECTORY: u64 = 64 << 20;

/// Whether the volume recognition sequence names an ECMA-167 volume (`NSR02`/`NSR03` after a
/// `BEA01`). ISO 9660 descriptors (`CD001`) may come first: that is a bridge disc.
pub(super) fn identify(data: &[u8]) -> bool {
    let mut extended = false;
    for index in 0..MAX_VRS {
        let at = VRS_START + index * 2048;
        let Some(id) = data.get(at + 1..at + 6) else {
            return false;
        };
        match id {
            b"BEA01" => extended = true,
            b"NSR02" | b"NSR03" if extended => return true,
            b"CD001" | b"BOOT2" | b"CDW02" | b"TEA01" => {}
            // Blocks of 4 KiB leave empty room between descriptors.
            _ if data[at..at + 6].iter().all(|&b| b == 0) => {}
            _ => return false,
        }
    }
    false
}

/// Descriptor tag identifiers used here.
mod tag {
    pub(super) const ANCHOR: u16 = 2;
    pub(super) const PARTITION: u16 = 5;
    pub(super) const LOGICAL_VOLUME: u16 = 6;
    pub(super) const TERMINATING: u16 = 8;
    pub(super) const FILE_SET: u16 = 256;
    pub(super) const FILE_IDENTIFIER: u16 = 257;
    pub(super) const ALLOCATION_EXTENT: u16 = 258;
    pub(super) const INDIRECT: u16 = 259;
    pub(super) const FILE_ENTRY: u16 = 261;
    pub(super) const EXTENDED_FILE_ENTRY: u16 = 266;
}

/// The identifier of a descriptor whose tag checksum holds, or `None`.
fn tag_id(descriptor: &[u8]) -> Option<u16> {
    let tag = descriptor.get(..16)?;
    let sum = tag
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != 4)
        .fold(0u8, |sum, (_, &b)| sum.wrapping_add(b));
    (sum == tag[4] && tag[5] == 0).then(|| le16(tag, 0))
}

fn damaged(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// A block address inside a partition of the logical volume (ECMA-167's `lb_addr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Address {
    block: u32,
    partition: u16,
}

/// An extent of a file: `len` bytes from `at` (an absolute offset in the volume), or zeros.
#[derive(Debug, Clone, Copy)]
struct Run {
    at: Option<u64>,
    len: u64,
}

/// How a partition reference becomes a place in the volume.
enum Partition {
    /// Blocks from `start` (a byte offset), `blocks` of them.
    Physical { start: u64, blocks: u64 },
    /// UDF 2.50's metadata partition: its blocks are the metadata file's bytes, which lie in
    /// a physical partition through the file's extents.
    Metadata { runs: Vec<Run> },
}

/// Everything needed to find a block: the block size and the logical volume's partitions.
struct Layout {
    block: u64,
    partitions: Vec<Partition>,
}

impl Layout {
    /// The absolute offset of `address`, or why it has none.
    fn locate(&self, address: Address) -> io::Result<u64> {
        let partition = self
            .partitions
            .get(usize::from(address.partition))
            .ok_or_else(|| damaged(format!("partition {} does not exist", address.partition)))?;
        match partition {
            Partition::Physical { start, blocks } => {
                if u64::from(address.block) >= *blocks {
                    return Err(damaged(format!(
                        "block {} lies outside its partition",
                        address.block
                    )));
                }
                Ok(start + u64::from(address.block) * self.block)
            }
            Partition::Metadata { runs } => {
                let mut offset = u64::from(address.block) * self.block;
                for run in runs {
                    if offset < run.len {
                        return run
                            .at
                            .map(|at| at + offset)
                            .ok_or_else(|| damaged("a metadata block is not recorded"));
                    }
                    offset -= run.len;
                }
                Err(damaged(format!(
                    "metadata block {} lies past the metadata file",
                    address.block
                )))
            }
        }
    }

    /// The runs of an extent of `len` bytes from `address`: one run in a physical partition,
    /// one per block in the metadata partition (its blocks need not lie together).
    fn runs(&self, address: Address, len: u64, out: &mut Vec<Run>) -> io::Result<()> {
        if let Some(Partition::Physical { blocks, .. }) =
            self.partitions.get(usize::from(address.partition))
        {
            let end = u64::from(address.block) + len.div_ceil(self.block);
            if end > *blocks {
                return Err(damaged("an extent runs past the end of its partition"));
            }
            out.push(Run {
                at: Some(self.locate(address)?),
                len,
            });
            return Ok(());
        }
        let mut left = len;
        let mut block = address.block;
        while left > 0 {
            let n = left.min(self.block);
            let at = self.locate(Address { block, ..address })?;
            match out.last_mut() {
                Some(Run {
                    at: Some(prev),
                    len,
                }) if *prev + *len == at => *len += n,
                _ => out.push(Run {
                    at: Some(at),
                    len: n,
                }),
            }
            left -= n;
            block = block
                .checked_add(1)
                .ok_or_else(|| damaged("an extent runs past block 2^32"))?;
        }
        Ok(())
    }
}

/// Reads one block at an absolute offset.
fn block_at(device: &mut dyn Device, at: u64, size: u64) -> io::Result<Vec<u8>> {
    let mut block = vec![0u8; size as usize];
    read_at(device, at, &mut block)?;
    Ok(block)
}

/// The block size and anchor: the anchor sits at block 256 (or the last block), its tag
/// naming its own location.
fn anchor(device: &mut dyn Device, len: u64) -> io::Result<(u64, Vec<u8>)> {
    for size in [2048u64, 512, 1024, 4096] {
        let last = (len / size).saturating_sub(1);
        for location in [256, last] {
            let Ok(block) = block_at(device, location * size, size) else {
                continue;
            };
            if tag_id(&block) == Some(tag::ANCHOR) && u64::from(le32(&block, 12)) == location {
                return Ok((size, block));
            }
        }
    }
    Err(damaged("it has no anchor volume descriptor"))
}

/// A partition map of the logical volume, before the metadata partition's file is read.
enum Map {
    Physical(u16),
    Metadata { number: u16, file: u32, mirror: u32 },
    Other(String),
}

/// The logical volume: its partition maps and where its file set descriptor is.
struct LogicalVolume {
    maps: Vec<Map>,
    file_set: Address,
}

fn logical_volume(descriptor: &[u8], block: u64) -> io::Result<LogicalVolume> {
    if u64::from(le32(descriptor, 212)) != block {
        return Err(damaged(
            "its logical block size differs from the volume's sectors",
        ));
    }
    let file_set = Address {
        block: le32(descriptor, 252),
        partition: le16(descriptor, 256),
    };
    let table = le32(descriptor, 264) as usize;
    let count = le32(descriptor, 268) as usize;
    let maps_bytes = descriptor
        .get(440..440usize.saturating_add(table))
        .ok_or_else(|| damaged("its partition maps run past its descriptor"))?;
    let mut maps = Vec::new();
    let mut at = 0;
    for _ in 0..count {
        let (Some(&kind), Some(&len)) = (maps_bytes.get(at), maps_bytes.get(at + 1)) else {
            return Err(damaged("its partition maps are cut short"));
        };
        let len = usize::from(len);
        let map = maps_bytes
            .get(at..at + len)
            .filter(|_| len >= 6)
            .ok_or_else(|| damaged("a partition map is cut short"))?;
        maps.push(match (kind, len) {
            (1, 6) => Map::Physical(le16(map, 4)),
            (2, 64) => {
                let identifier = &map[5..28];
                let name = String::from_utf8_lossy(identifier)
                    .trim_end_matches('\0')
                    .to_owned();
                if name == "*UDF Metadata Partition" {
                    Map::Metadata {
                        number: le16(map, 38),
                        file: le32(map, 40),
                        mirror: le32(map, 44),
                    }
                } else {
                    Map::Other(name)
                }
            }
            _ => Map::Other(format!("a partition map of type {kind}")),
        });
        at += len;
    }
    Ok(LogicalVolume { maps, file_set })
}

/// A partition descriptor: its number, its first byte in the volume, its length in blocks.
type Described = (u16, u64, u64);

/// Reads the volume descriptor sequence the anchor points to: the partitions and the logical
/// volume.
fn descriptors(
    device: &mut dyn Device,
    block: u64,
    anchor: &[u8],
) -> io::Result<(Vec<Described>, LogicalVolume)> {
    // The main sequence first, then the reserve one if the main is unreadable.
    let mut last = None;
    for at in [16, 24] {
        let len = u64::from(le32(anchor, at));
        let location = u64::from(le32(anchor, at + 4));
        let mut partitions = Vec::new();
        let mut logical = None;
        for index in 0..(len / block).min(MAX_VDS_BLOCKS) {
            let Ok(descriptor) = block_at(device, (location + index) * block, block) else {
                break;
            };
            match tag_id(&descriptor) {
                Some(tag::PARTITION) => partitions.push((
                    le16(&descriptor, 22),
                    u64::from(le32(&descriptor, 188)) * block,
                    u64::from(le32(&descriptor, 192)),
                )),
                Some(tag::LOGICAL_VOLUME) => match logical_volume(&descriptor, block) {
                    Ok(volume) => logical = Some(volume),
                    Err(e) => last = Some(e),
                },
                Some(tag::TERMINATING) | None => break,
                Some(_) => {}
            }
        }
        if let Some(logical) = logical
            && !partitions.is_empty()
        {
            return Ok((partitions, logical));
        }
    }
    Err(last
        .unwrap_or_else(|| damaged("its volume descriptors name no partition or logical volume")))
}

/// A file entry, its indirect entries followed.
struct Entry {
    kind: u8,
    len: u64,
    runs: Vec<Run>,
    /// Data recorded inside the entry itself.
    embedded: Option<Vec<u8>>,
}

/// ICB file types (ECMA-167 4/14.6.6).
const DIRECTORY: u8 = 4;
const FILE: u8 = 5;

/// Reads the file entry at `address` and its allocation descriptors.
fn entry(device: &mut dyn Device, layout: &Layout, mut address: Address) -> io::Result<Entry> {
    let mut hops = 0;
    let block = loop {
        let block = block_at(device, layout.locate(address)?, layout.block)?;
        match tag_id(&block) {
            Some(tag::FILE_ENTRY | tag::EXTENDED_FILE_ENTRY) => break block,
            Some(tag::INDIRECT) if hops < MAX_HOPS => {
                hops += 1;
                address = Address {
                    block: le32(&block, 40),
                    partition: le16(&block, 44),
                };
            }
            _ => {
                return Err(damaged(format!(
                    "block {} of partition {} holds no file entry",
                    address.block, address.partition
                )));
            }
        }
    };
    let extended = le16(&block, 0) == tag::EXTENDED_FILE_ENTRY;
    // An extended entry's stream directory (ECMA-167 4/14.17, its ICB at byte 152) holds named
    // streams: data beside the main one, as NTFS's alternate streams. They are not read, so the
    // entry must not pass for examined.
    if extended && le32(&block, 152) & 0x3FFF_FFFF != 0 {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "its named streams (a UDF stream directory) are not read",
        ));
    }
    let kind = block[27];
    let flags = le16(&block, 34);
    let len = le64(&block, 56);
    let (ea_at, base) = if extended { (208, 216) } else { (168, 176) };
    let ea_len = le32(&block, ea_at) as usize;
    let ad_len = le32(&block, ea_at + 4) as usize;
    let start = base + ea_len;
    let descriptors = block
        .get(start..start.saturating_add(ad_len))
        .ok_or_else(|| damaged("its allocation descriptors run past its entry"))?;
    let mut entry = Entry {
        kind,
        len,
        runs: Vec::new(),
        embedded: None,
    };
    match flags & 7 {
        3 => {
            if len > ad_len as u64 {
                return Err(damaged("its embedded data is shorter than its length"));
            }
            entry.embedded = Some(descriptors[..len as usize].to_vec());
        }
        form @ (0 | 1) => extents(
            device,
            layout,
            address.partition,
            form == 1,
            descriptors,
            &mut entry.runs,
        )?,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "its extended allocation descriptors are not read",
            ));
        }
    }
    Ok(entry)
}

/// Collects the runs of a list of short (`long` false) or long allocation descriptors,
/// following continuations into allocation extent descriptors.
fn extents(
    device: &mut dyn Device,
    layout: &Layout,
    partition: u16,
    long: bool,
    first: &[u8],
    runs: &mut Vec<Run>,
) -> io::Result<()> {
    let size = if long { 16 } else { 8 };
    let mut list = first.to_vec();
    let mut hops = 0;
    'lists: loop {
        for descriptor in list.chunks_exact(size) {
            let raw = le32(descriptor, 0);
            let (kind, len) = (raw >> 30, u64::from(raw & 0x3FFF_FFFF));
            if len == 0 {
                break 'lists;
            }
            let address = Address {
                block: le32(descriptor, 4),
                partition: if long { le16(descriptor, 8) } else { partition },
            };
            match kind {
                0 => layout.runs(address, len, runs)?,
                1 | 2 => runs.push(Run { at: None, len }),
                _ => {
                    hops += 1;
                    if hops > MAX_HOPS {
                        return Err(damaged("its allocation descriptors continue without end"));
                    }
                    let block = block_at(device, layout.locate(address)?, layout.block)?;
                    if tag_id(&block) != Some(tag::ALLOCATION_EXTENT) {
                        return Err(damaged("a continuation of its extents is not one"));
                    }
                    let n = le32(&block, 20) as usize;
                    list = block
                        .get(24..24usize.saturating_add(n))
                        .ok_or_else(|| damaged("an allocation extent runs past its block"))?
                        .to_vec();
                    continue 'lists;
                }
            }
        }
        break;
    }
    Ok(())
}

/// A file's bytes: its runs in order, unrecorded ones as zeros, up to its length (a file
/// whose extents end early reads zeros to its length, as a mounted volume shows it).
struct Data<'a> {
    device: &'a mut dyn Device,
    runs: std::vec::IntoIter<Run>,
    current: Option<Run>,
    within: u64,
    left: u64,
}

impl Read for Data<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let run = loop {
            match self.current {
                Some(run) if self.within < run.len => break Some(run),
                _ => {
                    self.current = self.runs.next();
                    self.within = 0;
                    if self.current.is_none() {
                        break None;
                    }
                }
            }
        };
        let room = run.map_or(self.left, |run| run.len - self.within);
        let n = room.min(self.left).min(buf.len() as u64) as usize;
        match run.and_then(|run| run.at) {
            Some(at) => read_at(self.device, at + self.within, &mut buf[..n])?,
            None => buf[..n].fill(0),
        }
        self.within += n as u64;
        self.left -= n as u64;
        Ok(n)
    }
}

/// A file identifier's name: OSTA compressed Unicode, 8 or 16 bits a character.
fn name(raw: &[u8]) -> String {
    let Some((&compression, rest)) = raw.split_first() else {
        return String::new();
    };
    let name = match compression {
        16 | 255 => {
            let units: Vec<u16> = rest
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        _ => rest.iter().map(|&b| char::from(b)).collect(),
    };
    name.replace(['/', '\\', '\0'], "_")
}

/// One named child of a directory.
struct Child {
    name: String,
    directory: bool,
    icb: Address,
}

/// The file identifiers of a directory's bytes, without the parent and deleted ones.
fn children(bytes: &[u8]) -> io::Result<Vec<Child>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 38 <= bytes.len() {
        let fid = &bytes[at..];
        if tag_id(fid) != Some(tag::FILE_IDENTIFIER) {
            return Err(damaged(format!(
                "its directory holds no file identifier at byte {at}"
            )));
        }
        let characteristics = fid[18];
        let name_len = usize::from(fid[19]);
        let use_len = usize::from(le16(fid, 36));
        let len = (38 + use_len + name_len).next_multiple_of(4);
        let raw = fid
            .get(38 + use_len..38 + use_len + name_len)
            .ok_or_else(|| damaged("a file identifier runs past its directory"))?;
        at += len;
        if characteristics & 0x0C != 0 {
            continue;
        }
        let name = name(raw);
        if name.is_empty() || name == "." || name == ".." {
            continue;
        }
        if out.len() >= MAX_ENTRIES {
            return Err(damaged(
                "a directory lists more entries than any volume holds",
            ));
        }
        out.push(Child {
            name,
            directory: characteristics & 0x02 != 0,
            icb: Address {
                block: le32(fid, 24),
                partition: le16(fid, 28),
            },
        });
    }
    Ok(out)
}

/// Reads a directory's bytes from its entry.
fn directory_bytes(device: &mut dyn Device, entry: Entry) -> io::Result<Vec<u8>> {
    if entry.len > MAX_DIRECTORY {
        return Err(damaged("its directory is larger than any directory can be"));
    }
    if let Some(bytes) = entry.embedded {
        return Ok(bytes);
    }
    // Grown as read: a length alone reserves nothing.
    let mut bytes = Vec::with_capacity(entry.len.min(1 << 20) as usize);
    Data {
        device,
        runs: entry.runs.into_iter(),
        current: None,
        within: 0,
        left: entry.len,
    }
    .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Builds the partitions of the logical volume, reading the metadata file where there is one.
fn layout(device: &mut dyn Device, len: u64) -> Result<(Layout, Address), Unopened> {
    let (block, anchor) = anchor(device, len).map_err(Unopened::Damaged)?;
    let (partitions, logical) = descriptors(device, block, &anchor).map_err(Unopened::Damaged)?;
    let physical = |number: u16| {
        partitions
            .iter()
            .find(|p| p.0 == number)
            .map(|&(_, start, blocks)| Partition::Physical { start, blocks })
            .ok_or_else(|| {
                Unopened::Damaged(damaged(format!("partition {number} is not described")))
            })
    };
    let mut layout = Layout {
        block,
        partitions: Vec::new(),
    };
    let mut metadata = Vec::new();
    for (index, map) in logical.maps.iter().enumerate() {
        let partition = match map {
            Map::Physical(number) => physical(*number)?,
            Map::Metadata { number, .. } => {
                metadata.push(index);
                physical(*number)?
            }
            Map::Other(name) => {
                return Err(Unopened::Unsupported(format!(
                    "its partition ({name}) is not read"
                )));
            }
        };
        layout.partitions.push(partition);
    }
    for index in metadata {
        let Map::Metadata { file, mirror, .. } = logical.maps[index] else {
            continue;
        };
        let partition = u16::try_from(index).unwrap_or(u16::MAX);
        // The metadata file's entry lies in the physical partition the map names, which
        // stands at this index until it is replaced.
        let mut found = None;
        for at in [file, mirror] {
            let address = Address {
                block: at,
                partition,
            };
            if let Ok(entry) = entry(device, &layout, address)
                && entry.embedded.is_none()
            {
                found = Some(entry.runs);
                break;
            }
        }
        let runs = found.ok_or_else(|| {
            Unopened::Damaged(damaged(
                "neither its metadata file nor the mirror is readable",
            ))
        })?;
        layout.partitions[index] = Partition::Metadata { runs };
    }
    let file_set = block_at(
        device,
        layout.locate(logical.file_set).map_err(Unopened::Damaged)?,
        block,
    )
    .map_err(Unopened::Damaged)?;
    if tag_id(&file_set) != Some(tag::FILE_SET) {
        return Err(Unopened::Damaged(damaged(
            "its file set descriptor is missing",
        )));
    }
    let root = Address {
        block: le32(&file_set, 404),
        partition: le16(&file_set, 408),
    };
    Ok((layout, root))
}

/// Why a volume could not be opened.
enum Unopened {
    Damaged(io::Error),
    Unsupported(String),
}

/// Walks the UDF volume on `device` (`len` bytes). Files whose data starts at an offset in
/// `skip` with the same length were read already (a bridge disc's ISO 9660 side) and are not
/// read again.
pub(super) fn walk<D: Device>(
    members: &mut Members<'_>,
    device: D,
    len: u64,
    volume: &mut Volume<'_>,
    skip: &HashSet<(u64, u64)>,
) {
    let mut device = Tracked::new(device, volume.reads());
    let (layout, root) = match layout(&mut device, len) {
        Ok(found) => found,
        Err(Unopened::Damaged(e)) => return members.corrupt(WHAT, e),
        Err(Unopened::Unsupported(message)) => {
            return members.problem(
                Reason::Unsupported,
                format!("the {WHAT} could not be opened: {message}"),
            );
        }
    };
    let mut directories = HashSet::new();
    let mut files = HashSet::new();
    let mut pending = vec![(String::new(), root, 0usize)];
    while let Some((prefix, icb, depth)) = pending.pop() {
        if members.stopped() {
            return;
        }
        if !directories.insert(icb) {
            members.corrupt(
                WHAT,
                format!("the directory {prefix}/ is one already walked (the tree loops)"),
            );
            continue;
        }
        let listed = entry(&mut device, &layout, icb)
            .and_then(|entry| match entry.kind {
                DIRECTORY => directory_bytes(&mut device, entry),
                _ => Err(damaged("its entry is not a directory's")),
            })
            .and_then(|bytes| children(&bytes));
        let children = match listed {
            Ok(children) => children,
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                let why = format!("the directory {prefix}/: {e}");
                volume.unreadable(members, &prefix, Reason::Unsupported, why);
                continue;
            }
            Err(e) => {
                members.corrupt(WHAT, format!("the directory {prefix}/: {e}"));
                continue;
            }
        };
        for child in children {
            if members.stopped() {
                return;
            }
            let path = if prefix.is_empty() {
                child.name
            } else {
                format!("{prefix}/{}", child.name)
            };
            if child.directory {
                if depth >= MAX_DEPTH {
                    members.corrupt(
                        WHAT,
                        format!("the directory {path}/ nests deeper than {MAX_DEPTH} levels"),
                    );
                } else if volume.enter(members) {
                    pending.push((path, child.icb, depth + 1));
                } else {
                    return;
                }
                continue;
            }
            // A file named twice (a hard link) is read once.
            if !files.insert(child.icb) {
                continue;
            }
            let entry = match entry(&mut device, &layout, child.icb) {
                Ok(entry) => entry,
                Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                    volume.unreadable(members, &path, Reason::Unsupported, e.to_string());
                    continue;
                }
                Err(e) => {
                    let child = members.child(&volume.path(&path));
                    members.member_problem(&child, Reason::Corrupt, e.to_string());
                    continue;
                }
            };
            if entry.kind != FILE && entry.kind != 0 {
                // Symbolic links, devices and stream directories hold no file's bytes.
                continue;
            }
            if let [Run { at: Some(at), len }] = entry.runs[..]
                && skip.contains(&(at, len.min(entry.len)))
            {
                continue;
            }
            let size = entry.len;
            match entry.embedded {
                Some(bytes) => {
                    volume.file(members, &path, size, &mut bytes.as_slice());
                }
                None => {
                    let mut data = Data {
                        device: &mut device,
                        runs: entry.runs.into_iter(),
                        current: None,
                        within: 0,
                        left: size,
                    };
                    volume.file(members, &path, size, &mut data);
                }
            }
        }
    }
}
