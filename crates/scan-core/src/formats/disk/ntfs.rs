//! NTFS volumes, read through the `ntfs` crate: every file's unnamed data under its path, and
//! each alternate data stream as `path:stream` (a place payloads hide). Hard links are read
//! once; system files (the first records of the MFT) are not members. Compressed and encrypted
//! (EFS) data are reported, since the crate reads neither.

use std::collections::HashSet;

use ntfs::structured_values::NtfsFileNamespace;
use ntfs::{Ntfs, NtfsAttributeFlags, NtfsAttributeType, NtfsFile};

use super::device::{Device, Tracked};
use super::volume::{MAX_DEPTH, MAX_ENTRIES, Volume};
use crate::formats::members::Members;
use crate::verdict::Reason;

/// Records below this number are the file system's own ($MFT, $Bitmap, $Extend...).
const FIRST_USER_RECORD: u64 = 24;
/// Attributes one file may have: an attribute list that loops lists without end.
const MAX_ATTRIBUTES: usize = 4096;
/// The root directory's record.
const ROOT: u64 = 5;

pub(super) fn identify(sector: &[u8]) -> bool {
    sector.get(3..11) == Some(b"NTFS    ")
}

/// Walks the NTFS volume on `device`.
pub(super) fn walk<D: Device>(members: &mut Members<'_>, device: D, volume: &mut Volume<'_>) {
    let mut device = Tracked::new(device, volume.reads());
    let ntfs = match Ntfs::new(&mut device) {
        Ok(ntfs) => ntfs,
        Err(e) => return members.corrupt("NTFS volume", e),
    };
    let mut seen = HashSet::from([ROOT]);
    let mut pending = vec![(String::new(), ROOT, 0usize)];
    while let Some((prefix, record, depth)) = pending.pop() {
        if members.stopped() {
            return;
        }
        let (entries, error) = list(&ntfs, &mut device, record);
        if let Some(e) = error {
            members.corrupt("NTFS volume", format!("the directory {prefix}/: {e}"));
        }
        for (name, record, is_directory) in entries {
            if members.stopped() {
                return;
            }
            if record < FIRST_USER_RECORD || !seen.insert(record) {
                continue;
            }
            let path = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            if is_directory {
                if depth >= MAX_DEPTH {
                    members.corrupt(
                        "NTFS volume",
                        format!("the directory {path}/ nests deeper than {MAX_DEPTH} levels"),
                    );
                } else if volume.enter(members) {
                    pending.push((path, record, depth + 1));
                } else {
                    return;
                }
                continue;
            }
            match ntfs.file(&mut device, record) {
                Ok(file) => streams(members, &mut device, &file, &path, volume),
                Err(e) => members.corrupt("NTFS volume", format!("the file {path}: {e}")),
            }
        }
    }
}

/// One entry of a directory: its name, its file record, whether it is a directory.
type Entry = (String, u64, bool);

/// A directory's entries, one per file (the DOS short name of a file that also has a long one
/// is skipped), and what went wrong if the listing stopped early.
fn list<D: Device>(ntfs: &Ntfs, device: &mut D, record: u64) -> (Vec<Entry>, Option<String>) {
    let mut entries = Vec::new();
    let directory = match ntfs.file(device, record) {
        Ok(directory) => directory,
        Err(e) => return (entries, Some(e.to_string())),
    };
    let index = match directory.directory_index(device) {
        Ok(index) => index,
        Err(e) => return (entries, Some(e.to_string())),
    };
    let mut iter = index.entries();
    while let Some(entry) = iter.next(device) {
        if entries.len() >= MAX_ENTRIES {
            let why = format!("it lists more than {MAX_ENTRIES} entries (its index loops)");
            return (entries, Some(why));
        }
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => return (entries, Some(e.to_string())),
        };
        let Some(Ok(name)) = entry.key() else {
            continue;
        };
        if name.namespace() == NtfsFileNamespace::Dos {
            continue;
        }
        let text = name.name().to_string_lossy();
        if text == "." {
            continue;
        }
        let record = entry.file_reference().file_record_number();
        entries.push((text, record, name.is_directory()));
    }
    (entries, None)
}

/// Yields each data stream of `file`: the unnamed one as `path`, named ones as `path:name`.
fn streams<D: Device>(
    members: &mut Members<'_>,
    device: &mut D,
    file: &NtfsFile<'_>,
    path: &str,
    volume: &Volume<'_>,
) {
    let mut attributes = file.attributes();
    let mut listed = 0;
    while let Some(item) = attributes.next(device) {
        if members.stopped() {
            return;
        }
        listed += 1;
        if listed > MAX_ATTRIBUTES {
            return members.corrupt(
                "NTFS volume",
                format!("the file {path} lists more than {MAX_ATTRIBUTES} attributes (its attribute list loops)"),
            );
        }
        let item = match item {
            Ok(item) => item,
            Err(e) => return members.corrupt("NTFS volume", format!("the file {path}: {e}")),
        };
        let attribute = match item.to_attribute() {
            Ok(attribute) => attribute,
            Err(e) => return members.corrupt("NTFS volume", format!("the file {path}: {e}")),
        };
        if !matches!(attribute.ty(), Ok(NtfsAttributeType::Data)) {
            continue;
        }
        let stream = attribute
            .name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let member = if stream.is_empty() {
            path.to_owned()
        } else {
            format!("{path}:{stream}")
        };
        let flags = attribute.flags();
        if flags.contains(NtfsAttributeFlags::ENCRYPTED) {
            let message = "the file is encrypted (EFS), so it could not be examined".to_owned();
            volume.unreadable(members, &member, Reason::Encrypted, message);
            continue;
        }
        if flags.contains(NtfsAttributeFlags::COMPRESSED) {
            let message =
                "the file is NTFS-compressed, which is not supported, so it was not examined"
                    .to_owned();
            volume.unreadable(members, &member, Reason::Unsupported, message);
            continue;
        }
        let value = match attribute.value(device) {
            Ok(value) => value,
            Err(e) => {
                members.corrupt("NTFS volume", format!("the file {member}: {e}"));
                continue;
            }
        };
        let size = value.len();
        let mut reader = value.attach(device);
        volume.file(members, &member, size, &mut reader);
    }
}
