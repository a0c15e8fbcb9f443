//! Microsoft cabinets (MS-CAB): installers, MSI packages and Windows updates carry them. Each
//! folder's data is decoded once, in order (stored, MSZIP or LZX; Quantum is reported
//! unsupported), and its files are cut from it by offset, so a folder of many files costs one
//! pass however many files it holds.

use std::io::Cursor;

use super::Format;
use crate::decompress::{CabCompression, CabFolder, Counting};
use crate::formats::members::{Members, Slice};
use crate::verdict::Reason;

pub(super) const FORMAT: Format = Format {
    name: "cab",
    // The signature, zero reserved bytes, and a version 1.3 header.
    identify: |data| data.starts_with(b"MSCF\0\0\0\0") && data.get(24..26) == Some(&[3, 1][..]),
    expand,
};

struct Folder {
    data_offset: usize,
    blocks: u16,
    compression: Result<CabCompression, String>,
}

struct File {
    name: String,
    size: u64,
    offset: u64,
    folder: u16,
}

fn expand(members: &mut Members<'_>, data: &[u8]) {
    let header = match Header::parse(data) {
        Ok(header) => header,
        Err(e) => return members.corrupt("cabinet", e),
    };
    if !members.expect(u64::from(header.files)) {
        return;
    }
    let (folders, files) = match header.entries(data) {
        Ok(entries) => entries,
        Err(e) => return members.corrupt("cabinet", e),
    };
    for (index, folder) in folders.iter().enumerate() {
        let in_folder: Vec<Slice> = files
            .iter()
            .filter(|f| usize::from(f.folder) == index)
            .map(|f| Slice {
                name: f.name.clone(),
                offset: f.offset,
                size: f.size,
            })
            .collect();
        folder_files(members, data, &header, folder, in_folder);
        if members.stopped() {
            return;
        }
    }
    for file in files
        .iter()
        .filter(|f| usize::from(f.folder) >= folders.len())
    {
        let child = members.child(&file.name);
        // 0xFFFD..0xFFFF: continued from or into another cabinet of a set.
        let message = "the file continues in another cabinet of its set, so it was not examined";
        members.member_problem(&child, Reason::Unsupported, message);
    }
}

/// Decodes one folder in one pass and yields its files, in order of their offsets.
fn folder_files(
    members: &mut Members<'_>,
    data: &[u8],
    header: &Header,
    folder: &Folder,
    mut files: Vec<Slice>,
) {
    let compression = match &folder.compression {
        Ok(compression) => *compression,
        Err(message) => {
            for file in files {
                let child = members.child(&file.name);
                members.member_problem(&child, Reason::Unsupported, message.clone());
            }
            return;
        }
    };
    let mut open = || -> std::io::Result<_> {
        let input = data.get(folder.data_offset..).unwrap_or(&[]);
        let (counting, consumed) = Counting::new(Cursor::new(input));
        let reader = CabFolder::new(counting, folder.blocks, header.data_reserve, compression)?;
        Ok((reader, consumed))
    };
    members.cut("cabinet folder", &mut open, &mut files);
}

/// The cabinet header (CFHEADER) fields that matter.
struct Header {
    files_offset: usize,
    folders: u16,
    files: u16,
    /// Where the CFFOLDER entries start.
    folders_at: usize,
    folder_reserve: usize,
    data_reserve: usize,
}

impl Header {
    fn parse(data: &[u8]) -> Result<Header, String> {
        let short = || "the header is cut short".to_owned();
        let u16_at = |at: usize| {
            data.get(at..at + 2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
                .ok_or_else(short)
        };
        let u32_at = |at: usize| {
            data.get(at..at + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(short)
        };
        let files_offset = u32_at(16)? as usize;
        let folders = u16_at(26)?;
        let files = u16_at(28)?;
        let flags = u16_at(30)?;
        let mut at = 36;
        let (mut folder_reserve, mut data_reserve) = (0, 0);
        if flags & 4 != 0 {
            let header_reserve = usize::from(u16_at(36)?);
            folder_reserve = usize::from(*data.get(38).ok_or_else(short)?);
            data_reserve = usize::from(*data.get(39).ok_or_else(short)?);
            at = 40 + header_reserve;
        }
        // The names of the previous and next cabinets of a set, when there are any.
        for flag in [1, 2] {
            if flags & flag != 0 {
                for _ in 0..2 {
                    let len = data
                        .get(at..)
                        .and_then(|d| memchr::memchr(0, d))
                        .ok_or_else(short)?;
                    at += len + 1;
                }
            }
        }
        Ok(Header {
            files_offset,
            folders,
            files,
            folders_at: at,
            folder_reserve,
            data_reserve,
        })
    }

    fn entries(&self, data: &[u8]) -> Result<(Vec<Folder>, Vec<File>), String> {
        let mut folders = Vec::with_capacity(usize::from(self.folders));
        let mut at = self.folders_at;
        for _ in 0..self.folders {
            let entry = data.get(at..at + 8).ok_or("a folder entry is cut short")?;
            let data_offset = u32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]) as usize;
            let blocks = u16::from_le_bytes([entry[4], entry[5]]);
            let kind = u16::from_le_bytes([entry[6], entry[7]]);
            let compression = match kind & 0x0F {
                0 => Ok(CabCompression::None),
                1 => Ok(CabCompression::MsZip),
                3 => Ok(CabCompression::Lzx(((kind >> 8) & 0x1F) as u8)),
                2 => Err(
                    "Quantum compression is not supported, so the file was not examined".to_owned(),
                ),
                other => Err(format!(
                    "cabinet compression type {other} is not supported, so the file was not examined"
                )),
            };
            folders.push(Folder {
                data_offset,
                blocks,
                compression,
            });
            at += 8 + self.folder_reserve;
        }
        let mut files = Vec::with_capacity(usize::from(self.files));
        let mut at = self.files_offset;
        for _ in 0..self.files {
            let entry = data.get(at..at + 16).ok_or("a file entry is cut short")?;
            let size = u64::from(u32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]));
            let offset = u64::from(u32::from_le_bytes([entry[4], entry[5], entry[6], entry[7]]));
            let folder = u16::from_le_bytes([entry[8], entry[9]]);
            let name_at = at + 16;
            let len = data
                .get(name_at..)
                .and_then(|d| memchr::memchr(0, d))
                .ok_or("a file name is cut short")?;
            let name = String::from_utf8_lossy(&data[name_at..name_at + len]).replace('\\', "/");
            files.push(File {
                name,
                size,
                offset,
                folder,
            });
            at = name_at + len + 1;
        }
        Ok((folders, files))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifies_cabinets_by_signature_and_version() {
        let mut header = b"MSCF\0\0\0\0".to_vec();
        header.resize(36, 0);
        header[24] = 3;
        header[25] = 1;
        assert!((FORMAT.identify)(&header));
        header[25] = 2;
        assert!(!(FORMAT.identify)(&header));
    }

    #[test]
    fn a_header_cut_short_is_an_error() {
        assert!(Header::parse(b"MSCF\0\0\0\0\0\0").is_err());
    }
}
