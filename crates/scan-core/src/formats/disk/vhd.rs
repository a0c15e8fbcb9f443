//! VHD (Virtual PC's format, still what Windows mounts on a double-click): a fixed disk is the
//! raw disk followed by a 512-byte footer; a dynamic one maps blocks through a table, and a
//! block never written reads as zeros. Differencing disks need their parent and are not
//! opened.

use std::io::{self, Cursor};

use super::device::{BlockMap, Blocks, Disk, Unreadable, Window, be32, be64};

const COOKIE: &[u8] = b"conectix";
const FOOTER: usize = 512;
const FIXED: u32 = 2;
const DYNAMIC: u32 = 3;
const DIFFERENCING: u32 = 4;
const UNALLOCATED: u32 = u32::MAX;

/// Whether `data` is a VHD: its footer ends the file (a dynamic disk also copies it to the
/// start).
pub(super) fn identify(data: &[u8]) -> bool {
    data.starts_with(COOKIE) || footer(data).is_some()
}

fn footer(data: &[u8]) -> Option<&[u8]> {
    let at = data.len().checked_sub(FOOTER)?;
    // Images made by old Virtual PC versions have a 511-byte footer.
    [at, at + 1]
        .into_iter()
        .filter_map(|at| data.get(at..))
        .find(|f| f.starts_with(COOKIE))
}

/// The virtual disk inside the VHD `data`.
pub(super) fn open(data: &[u8]) -> Result<Disk<'_>, Unreadable> {
    let footer = footer(data)
        .or_else(|| data.starts_with(COOKIE).then_some(data))
        .ok_or_else(|| Unreadable::Damaged("its footer is missing".into()))?;
    let size = be64(footer, 48);
    match be32(footer, 60) {
        FIXED => {
            let available = (data.len() - FOOTER.min(data.len())) as u64;
            if size > available {
                return Err(Unreadable::Damaged(format!(
                    "the fixed disk says {size} bytes but the image holds {available}"
                )));
            }
            Ok(Box::new(Window::new(Cursor::new(data), 0, size)))
        }
        DYNAMIC => dynamic(data, footer, size),
        DIFFERENCING => Err(Unreadable::Unsupported(
            "it is a differencing disk: only changes to a parent disk that is not here".into(),
        )),
        other => Err(Unreadable::Damaged(format!("unknown disk type {other}"))),
    }
}

/// A dynamic disk: the header the footer points to, then the block allocation table.
fn dynamic<'a>(data: &'a [u8], footer: &[u8], size: u64) -> Result<Disk<'a>, Unreadable> {
    let header = usize::try_from(be64(footer, 16))
        .ok()
        .and_then(|at| data.get(at..at.checked_add(1024)?))
        .filter(|h| h.starts_with(b"cxsparse"))
        .ok_or_else(|| Unreadable::Damaged("its dynamic disk header is missing".into()))?;
    let table = be64(header, 16);
    let entries = u64::from(be32(header, 28));
    let block_size = u64::from(be32(header, 32));
    if !block_size.is_power_of_two() || !(512..=(256 << 20)).contains(&block_size) {
        return Err(Unreadable::Damaged(format!(
            "its block size {block_size} is not a power of two between 512 bytes and 256 MiB"
        )));
    }
    let blocks = size.div_ceil(block_size);
    if blocks > entries {
        return Err(Unreadable::Damaged(format!(
            "its table maps {entries} blocks, too few for a disk of {size} bytes"
        )));
    }
    let end = table.saturating_add(blocks.saturating_mul(4));
    if end > data.len() as u64 {
        return Err(Unreadable::Damaged(
            "its block allocation table lies past the end of the image".into(),
        ));
    }
    // Each block starts with a bitmap of its sectors, padded to whole sectors.
    let bitmap = (block_size / 512).div_ceil(8).next_multiple_of(512);
    let map = Table {
        data,
        table,
        bitmap,
    };
    Ok(Box::new(Blocks::new(data, map, block_size, size)))
}

/// The block allocation table: big-endian sector numbers, all ones for a block not written.
struct Table<'a> {
    data: &'a [u8],
    table: u64,
    bitmap: u64,
}

impl BlockMap for Table<'_> {
    fn locate(&self, index: u64) -> io::Result<Option<u64>> {
        let at = usize::try_from(self.table + index * 4).unwrap_or(usize::MAX);
        match be32(self.data, at) {
            UNALLOCATED => Ok(None),
            sector => Ok(Some(u64::from(sector) * 512 + self.bitmap)),
        }
    }
}
