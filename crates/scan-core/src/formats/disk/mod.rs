//! Disk images, the attachments that carry payloads past mark-of-the-web when Windows mounts
//! them: VHD and VHDX virtual disks, raw images (`.img`), their MBR or GPT partitions, the FAT,
//! exFAT and NTFS volumes on them, and UDF discs. One expansion goes from the image through each
//! layer to the files, reading only what the file systems point to (sparse and unallocated
//! space is never read); files are members under their path in the volume, behind `part-N/` on
//! a partitioned disk: `disk.vhd/part-1/Invoice/report.exe`.

mod device;
mod exfat;
mod fat;
mod ntfs;
mod partition;
mod udf;
mod vhd;
mod vhdx;
mod volume;

use std::collections::HashSet;
use std::io::{Cursor, Seek, SeekFrom};

use super::Format;
use crate::formats::members::Members;
use crate::verdict::Reason;
use device::{Device, Disk, Unreadable, Window, read_at};
use volume::Volume;

pub(super) const VHD: Format = Format {
    name: "vhd",
    identify: vhd::identify,
    expand: |members, data| layered(members, data, "VHD image", vhd::open),
};

pub(super) const VHDX: Format = Format {
    name: "vhdx",
    identify: vhdx::identify,
    expand: |members, data| layered(members, data, "VHDX image", vhdx::open),
};

/// A UDF volume from the first sector on (a disc image without ISO 9660 beside it; a bridge
/// disc is opened as ISO 9660, which then calls [`udf_bridge`]).
pub(super) const UDF: Format = Format {
    name: "udf",
    identify: udf::identify,
    expand: |members, data| udf_bridge(members, data, &HashSet::new()),
};

/// Whether `data` holds a UDF volume.
pub(super) fn udf_identify(data: &[u8]) -> bool {
    udf::identify(data)
}

/// Walks the UDF volume of a disc image, leaving out the files whose bytes (offset and
/// length) are in `read`.
pub(super) fn udf_bridge(members: &mut Members<'_>, data: &[u8], read: &HashSet<(u64, u64)>) {
    let len = data.len() as u64;
    let mut volume = Volume::new(members, "", "UDF volume", len);
    udf::walk(members, Cursor::new(data), len, &mut volume, read);
}

/// A raw disk: a partition table, or one volume from the first sector on.
pub(super) const RAW: Format = Format {
    name: "disk image",
    identify: |data| {
        let sector = &data[..data.len().min(512)];
        volume_kind(sector).is_some() || partition::is_mbr(sector, data.len() as u64)
    },
    expand: |members, data| {
        let disk: Disk<'_> = Box::new(Cursor::new(data));
        expand_disk(members, disk, data.len() as u64, "disk image");
    },
};

/// A partition holding no file system this reader walks is scanned whole up to this size.
const MAX_RAW_PARTITION: u64 = 64 << 20;

/// The file systems this reader walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fat,
    Exfat,
    Ntfs,
}

impl Kind {
    fn what(self) -> &'static str {
        match self {
            Kind::Fat => "FAT volume",
            Kind::Exfat => "exFAT volume",
            Kind::Ntfs => "NTFS volume",
        }
    }
}

/// The file system a volume's first sector announces.
fn volume_kind(sector: &[u8]) -> Option<Kind> {
    if ntfs::identify(sector) {
        Some(Kind::Ntfs)
    } else if exfat::identify(sector) {
        Some(Kind::Exfat)
    } else if fat::identify(sector) {
        Some(Kind::Fat)
    } else {
        None
    }
}

/// A virtual disk format: opened to its disk, which is then read as a raw one.
fn layered<'a>(
    members: &mut Members<'_>,
    data: &'a [u8],
    what: &str,
    open: fn(&'a [u8]) -> Result<Disk<'a>, Unreadable>,
) {
    match open(data) {
        Ok(disk) => expand_disk(members, disk, data.len() as u64, what),
        Err(why) => report(members, what, why),
    }
}

fn report(members: &mut Members<'_>, what: &str, why: Unreadable) {
    match why {
        Unreadable::Damaged(message) => members.corrupt(what, message),
        Unreadable::Unsupported(message) => members.problem(
            Reason::Unsupported,
            format!("the {what} could not be opened: {message}"),
        ),
    }
}

/// Reads a disk: one volume from its first sector, or the volumes of its partitions.
fn expand_disk(members: &mut Members<'_>, mut disk: Disk<'_>, image_len: u64, what: &str) {
    let disk_len = match device::len(&mut *disk) {
        Ok(len) => len,
        Err(e) => {
            return members.corrupt(what, e);
        }
    };
    let mut sector = [0u8; 512];
    if let Err(e) = read_at(&mut *disk, 0, &mut sector) {
        return members.corrupt(what, format!("its first sector cannot be read: {e}"));
    }
    if let Some(kind) = volume_kind(&sector) {
        let mut volume = Volume::new(members, "", kind.what(), image_len);
        return walk(members, kind, &mut *disk, &mut volume);
    }
    if !partition::is_mbr(&sector, disk_len) {
        return members.problem(
            Reason::Unsupported,
            format!("the {what} holds no partition table or file system this reader opens"),
        );
    }
    let partitions = match partition::partitions(&mut *disk, &sector, disk_len) {
        Ok(partitions) => partitions,
        Err(why) => return report(members, what, why),
    };
    for part in partitions {
        if members.stopped() {
            break;
        }
        let prefix = format!("part-{}", part.number);
        if part.start.saturating_add(part.len) > disk_len {
            members.corrupt(what, format!("{prefix} ends past the end of the disk"));
            continue;
        }
        let mut window = Window::new(&mut *disk, part.start, part.len);
        let mut first = [0u8; 512];
        if let Err(e) = read_at(&mut window, 0, &mut first) {
            members.corrupt(what, format!("{prefix} cannot be read: {e}"));
            continue;
        }
        let Some(kind) = volume_kind(&first) else {
            // No file system this reader walks (Windows' reserved partition, boot code, Linux
            // file systems): a small one is read whole as a member, so its bytes are scanned
            // and any carrier in it opened; a large one is reported, never taken as empty.
            if part.len <= MAX_RAW_PARTITION {
                let _ = window.seek(SeekFrom::Start(0));
                let declared = crate::formats::members::Declared::size(part.len);
                members.member(&prefix, declared, &mut window, None);
            } else {
                members.problem(
                    Reason::Unsupported,
                    format!(
                        "{prefix} (type {:#04x}) holds a file system this reader does not open",
                        part.kind
                    ),
                );
            }
            continue;
        };
        let mut volume = Volume::new(members, &prefix, kind.what(), image_len);
        walk(members, kind, &mut window, &mut volume);
    }
}

fn walk(members: &mut Members<'_>, kind: Kind, device: &mut dyn Device, volume: &mut Volume<'_>) {
    // The file system readers expect the device at its start.
    if let Err(e) = device.seek(SeekFrom::Start(0)) {
        return members.corrupt(kind.what(), e);
    }
    match kind {
        Kind::Fat => fat::walk(members, device, volume),
        Kind::Exfat => exfat::walk(members, device, volume),
        Kind::Ntfs => ntfs::walk(members, device, volume),
    }
}
