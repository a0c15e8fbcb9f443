//! Random-access views of a disk image: the image's bytes, a virtual disk's blocks, a window
//! onto part of another view (a partition), and the record of which bytes files were read
//! from. Every view reads lazily: nothing is copied until a file inside is read.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::rc::Rc;

/// What every layer of a disk reads through.
pub(super) trait Device: Read + Seek {}

impl<T: Read + Seek> Device for T {}

/// A disk (or a partition of one) of `len` bytes.
pub(super) type Disk<'a> = Box<dyn Device + 'a>;

/// The bytes from `start` for `len` of another device, as a device of their own.
pub(super) struct Window<D> {
    inner: D,
    start: u64,
    len: u64,
    position: u64,
}

impl<D: Device> Window<D> {
    pub(super) fn new(inner: D, start: u64, len: u64) -> Self {
        Self {
            inner,
            start,
            len,
            position: 0,
        }
    }
}

impl<D: Device> Read for Window<D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.position);
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        self.inner
            .seek(SeekFrom::Start(self.start.saturating_add(self.position)))?;
        let n = self.inner.read(&mut buf[..want])?;
        self.position += n as u64;
        Ok(n)
    }
}

impl<D: Device> Seek for Window<D> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.position = seek_position(self.position, self.len, to)?;
        Ok(self.position)
    }
}

/// Where a seek lands in a device of `len` bytes; before the start is an error, past the end
/// is allowed (reads there return nothing), as for files.
pub(super) fn seek_position(position: u64, len: u64, to: SeekFrom) -> io::Result<u64> {
    let target = match to {
        SeekFrom::Start(at) => Some(at),
        SeekFrom::Current(delta) => position.checked_add_signed(delta),
        SeekFrom::End(delta) => len.checked_add_signed(delta),
    };
    target.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a seek before the start"))
}

/// Reads exactly `buf.len()` bytes at `offset`, or fails.
pub(super) fn read_at(device: &mut dyn Device, offset: u64, buf: &mut [u8]) -> io::Result<()> {
    device.seek(SeekFrom::Start(offset))?;
    device.read_exact(buf)
}

/// The length of a device (its end, found by seeking).
pub(super) fn len(device: &mut dyn Device) -> io::Result<u64> {
    let len = device.seek(SeekFrom::End(0))?;
    device.seek(SeekFrom::Start(0))?;
    Ok(len)
}

pub(super) fn le16(bytes: &[u8], at: usize) -> u16 {
    bytes
        .get(at..at + 2)
        .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]))
}

pub(super) fn le32(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at + 4)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

pub(super) fn le64(bytes: &[u8], at: usize) -> u64 {
    bytes.get(at..at + 8).map_or(0, |b| {
        u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    })
}

pub(super) fn be32(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at + 4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

pub(super) fn be64(bytes: &[u8], at: usize) -> u64 {
    bytes.get(at..at + 8).map_or(0, |b| {
        u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    })
}

/// Why a layer of a disk image could not be opened.
#[derive(Debug)]
pub(super) enum Unreadable {
    /// Its structures do not hold together.
    Damaged(String),
    /// A valid structure this reader does not open (a differencing disk, say).
    Unsupported(String),
}

/// Where a virtual disk's block lies in the image.
pub(super) trait BlockMap {
    /// The image offset of block `index`, or `None` for a block never written (it reads as
    /// zeros); an error for a state that cannot be read.
    fn locate(&self, index: u64) -> io::Result<Option<u64>>;
}

/// A virtual disk of `size` bytes made of blocks of `block_size` bytes that lie in `image`
/// where `map` says (VHD's and VHDX's allocation tables). Unwritten blocks read as zeros
/// without touching the image.
pub(super) struct Blocks<'a, M> {
    image: &'a [u8],
    map: M,
    block_size: u64,
    size: u64,
    position: u64,
}

impl<'a, M: BlockMap> Blocks<'a, M> {
    pub(super) fn new(image: &'a [u8], map: M, block_size: u64, size: u64) -> Self {
        Self {
            image,
            map,
            block_size: block_size.max(1),
            size,
            position: 0,
        }
    }
}

impl<M: BlockMap> Read for Blocks<'_, M> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.position >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let block = self.position / self.block_size;
        let within = self.position % self.block_size;
        let n = (self.block_size - within)
            .min(self.size - self.position)
            .min(buf.len() as u64) as usize;
        match self.map.locate(block)? {
            None => buf[..n].fill(0),
            Some(start) => {
                let from = start
                    .checked_add(within)
                    .and_then(|at| usize::try_from(at).ok());
                let bytes = from
                    .and_then(|from| self.image.get(from..from.checked_add(n)?))
                    .ok_or_else(|| {
                        io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("block {block} lies past the end of the image"),
                        )
                    })?;
                buf[..n].copy_from_slice(bytes);
            }
        }
        self.position += n as u64;
        Ok(n)
    }
}

impl<M> Seek for Blocks<'_, M> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.position = seek_position(self.position, self.size, to)?;
        Ok(self.position)
    }
}

/// The bytes of a volume that its files have been read from. Files of a sound volume never
/// share a byte, so a file that reads a byte already read is on a chain that loops, or shares
/// clusters with another (a FAT loop, an NTFS run list that points back): caught at once,
/// instead of read on to the file's declared size.
#[derive(Default)]
pub(super) struct Reads {
    /// Whether a file is being read (directory and table reads are not counted).
    reading: Cell<bool>,
    /// Reads below this offset (FAT's tables and fixed root directory) are not counted.
    floor: Cell<u64>,
    /// Ranges read, start to end, merged where they touch.
    ranges: RefCell<BTreeMap<u64, u64>>,
}

impl Reads {
    pub(super) fn set_floor(&self, floor: u64) {
        self.floor.set(floor);
    }

    /// Counts reads while `f` reads a file.
    pub(super) fn file<T>(&self, f: impl FnOnce() -> T) -> T {
        self.reading.set(true);
        let out = f();
        self.reading.set(false);
        out
    }

    fn record(&self, start: u64, end: u64) -> io::Result<()> {
        if !self.reading.get() || end <= start {
            return Ok(());
        }
        let start = start.max(self.floor.get());
        if end <= start {
            return Ok(());
        }
        let mut ranges = self.ranges.borrow_mut();
        let before = ranges.range(..end).next_back().map(|(&s, &e)| (s, e));
        if let Some((_, e)) = before
            && e > start
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a file reads clusters already read: its chain loops or is shared with another \
                 file, a bomb technique",
            ));
        }
        let (mut new_start, mut new_end) = (start, end);
        if let Some((s, e)) = before
            && e == start
        {
            ranges.remove(&s);
            new_start = s;
        }
        if let Some(e) = ranges.remove(&end) {
            new_end = e;
        }
        if ranges.len() >= MAX_RANGES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the volume's files lie in more than {MAX_RANGES} separate pieces, a bomb \
                     technique; it was not read on"
                ),
            ));
        }
        ranges.insert(new_start, new_end);
        Ok(())
    }
}

/// Separate ranges [`Reads`] keeps at most (about 32 MiB): a volume whose files are cut into
/// more pieces than this (one cluster each, every other cluster) is not read on, so the map
/// cannot grow with the bytes a hostile image makes us read.
const MAX_RANGES: usize = 1 << 20;

/// A device whose reads are counted in [`Reads`].
pub(super) struct Tracked<D> {
    inner: D,
    reads: Rc<Reads>,
    position: u64,
}

impl<D: Device> Tracked<D> {
    pub(super) fn new(inner: D, reads: Rc<Reads>) -> Self {
        Self {
            inner,
            reads,
            position: 0,
        }
    }
}

impl<D: Device> Read for Tracked<D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let end = self.position + n as u64;
        self.reads.record(self.position, end)?;
        self.position = end;
        Ok(n)
    }
}

impl<D: Device> Seek for Tracked<D> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.position = self.inner.seek(to)?;
        Ok(self.position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_refuse_a_byte_read_twice_and_a_map_of_too_many_pieces() {
        let reads = Reads::default();
        reads.file(|| {
            assert!(reads.record(0, 10).is_ok());
            assert!(reads.record(10, 20).is_ok(), "touching ranges merge");
            assert!(reads.record(15, 16).is_err(), "inside one read already");
            // Every other byte: each read a piece of its own, until the map is full.
            for piece in 0..MAX_RANGES as u64 - 1 {
                let at = 100 + 2 * piece;
                assert!(reads.record(at, at + 1).is_ok());
            }
            let past = 100 + 2 * MAX_RANGES as u64;
            let refused = reads.record(past, past + 1).unwrap_err();
            assert!(refused.to_string().contains("separate pieces"), "{refused}");
            // A read that only extends a piece still goes on.
            assert!(reads.record(20, 21).is_ok());
        });
    }
}
