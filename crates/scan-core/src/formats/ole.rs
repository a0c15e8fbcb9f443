//! OLE2 compound files (legacy Office documents, MSI packages, Outlook `.msg` messages): every
//! stream is a member, and what Office hides inside streams is unwrapped too: packaged files
//! (`Ole10Native`), VBA macro source (MS-OVBA compressed), objects embedded in PowerPoint
//! slides (zlib), and `.msg` attachments under their file names.

use std::collections::HashMap;
use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::Format;
use crate::decompress::{Codec, Counting, stream_decoder};
use crate::formats::members::{Declared, Exact, Members};
use crate::verdict::Reason;

pub(super) const FORMAT: Format = Format {
    name: "ole",
    identify: |data| data.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]),
    expand,
};

type Compound<'d> = cfb::CompoundFile<Cursor<&'d [u8]>>;

/// VBA module streams larger than this are not decompressed (real modules are kilobytes); the
/// stream itself is still scanned, and the skip is reported.
const MAX_VBA_MODULE: u64 = 16 << 20;
/// The `dir` stream of a VBA project: a few kilobytes in practice.
const MAX_VBA_DIR: u64 = 1 << 20;

fn expand(members: &mut Members<'_>, data: &[u8]) {
    let mut file = match cfb::CompoundFile::open(Cursor::new(data)) {
        Ok(file) => file,
        Err(e) => return members.corrupt("OLE compound file", e),
    };
    // An encrypted OOXML package is all there is of interest in its OLE wrapper.
    if super::office_crypto::examine(members, &mut file) {
        return;
    }
    let streams: Vec<(PathBuf, u64)> = file
        .walk()
        .filter(|entry| entry.is_stream())
        .map(|entry| (entry.path().to_owned(), entry.len()))
        .collect();
    let attachment_names = msg_attachment_names(&mut file, &streams);
    for (stream_path, size) in &streams {
        if members.stopped() {
            return;
        }
        let raw = stream_path.to_string_lossy();
        let raw = raw.trim_start_matches('/');
        let leaf = stream_path.file_name().map(|n| n.to_string_lossy());
        let parent = stream_path.parent().unwrap_or(Path::new("/"));
        // An Outlook attachment's data goes by its file name, as the mail client shows it.
        let name = match (leaf.as_deref(), attachment_names.get(parent)) {
            (Some(MSG_ATTACH_DATA), Some(file_name)) => {
                format!(
                    "{}/{file_name}",
                    parent.to_string_lossy().trim_start_matches('/')
                )
            }
            _ => msi_stream_name(raw),
        };
        let child = members.child(&name);
        if !members.admit(&child, Declared::size(*size)) {
            continue;
        }
        match file.open_stream(stream_path) {
            // Streams are independent: one that cannot be read does not end the others.
            Ok(mut stream) => {
                members.read(&child, &mut stream, None);
            }
            Err(e) => {
                let message = format!("damaged OLE stream: {e}");
                members.member_problem(&child, Reason::Corrupt, message);
                continue;
            }
        }
        match leaf.as_deref() {
            Some("\u{1}Ole10Native") => native_package(members, &mut file, stream_path, raw),
            Some("PowerPoint Document") => powerpoint_objects(members, &mut file, stream_path, raw),
            Some("dir") if file.is_stream(parent.join("_VBA_PROJECT")) => {
                vba_modules(members, &mut file, parent);
            }
            _ => {}
        }
    }
}

/// An MSI package's stream name made readable: MSI packs two characters of `0-9A-Za-z._`
/// into one code point of U+3800..U+47FF (one into U+4800..U+483F; U+4840 marks its tables),
/// so an embedded cabinet `Data1.cab` is stored as five CJK ideographs. Names outside that
/// scheme are returned as they are.
fn msi_stream_name(raw: &str) -> String {
    const ALPHABET: &[u8; 64] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz._";
    if !raw.chars().any(|c| ('\u{3800}'..='\u{4840}').contains(&c)) {
        return raw.to_owned();
    }
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        let code = u32::from(c);
        match code {
            0x3800..=0x47FF => {
                let packed = code - 0x3800;
                out.push(char::from(ALPHABET[(packed & 0x3F) as usize]));
                out.push(char::from(ALPHABET[((packed >> 6) & 0x3F) as usize]));
            }
            0x4800..=0x483F => out.push(char::from(ALPHABET[(code - 0x4800) as usize])),
            0x4840 => out.push('!'),
            _ => out.push(c),
        }
    }
    out
}

/// The stream of a `.msg` attachment that holds its bytes (`PidTagAttachDataBinary`).
const MSG_ATTACH_DATA: &str = "__substg1.0_37010102";

/// File names of `.msg` attachments by attachment storage: the long name
/// (`PidTagAttachLongFilename`), else the short one, UTF-16LE.
fn msg_attachment_names(
    file: &mut Compound<'_>,
    streams: &[(PathBuf, u64)],
) -> HashMap<PathBuf, String> {
    let mut names = HashMap::new();
    for suffix in ["__substg1.0_3704001F", "__substg1.0_3707001F"] {
        for (path, size) in streams {
            if path.file_name().is_none_or(|n| n != suffix) || *size > 2048 {
                continue;
            }
            let Some(parent) = path.parent() else {
                continue;
            };
            let mut bytes = Vec::new();
            if let Ok(stream) = file.open_stream(path)
                && stream.take(2048).read_to_end(&mut bytes).is_ok()
            {
                let units: Vec<u16> = bytes
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .take_while(|u| *u != 0)
                    .collect();
                let name = String::from_utf16_lossy(&units);
                let base = name.rsplit(['/', '\\']).next().unwrap_or("").to_owned();
                if !base.is_empty() {
                    // The long name comes second and wins.
                    names.insert(parent.to_owned(), base);
                }
            }
        }
    }
    names
}

/// An `\x01Ole10Native` stream: a packaged file (OLE "Package" object) behind a 4-byte size.
fn native_package(members: &mut Members<'_>, file: &mut Compound<'_>, path: &Path, raw: &str) {
    let Ok(mut stream) = file.open_stream(path) else {
        return;
    };
    let mut size = [0u8; 4];
    if stream.read_exact(&mut size).is_err() {
        return;
    }
    package(members, &mut stream, raw);
}

/// Reads the native data of an OLE "Package" object (after its size field) and yields the file
/// it carries as `<prefix>/<file name>`. Data that is not a package is left alone: the stream
/// holding it was scanned whole already.
pub(super) fn package(members: &mut Members<'_>, reader: &mut dyn Read, prefix: &str) {
    let Ok((name, size)) = package_header(reader) else {
        return;
    };
    let child = members.child(&format!("{prefix}/{name}"));
    if members.admit(&child, Declared::size(size)) {
        members.read(&child, &mut Exact::new(reader.take(size), size), None);
    }
}

/// The header of a Package object's native data: a 2-byte signature, the label, the original
/// path, 4 bytes, the temporary path with its length, then the data size. Returns the file name
/// and the data size.
fn package_header(reader: &mut dyn Read) -> io::Result<(String, u64)> {
    let mut signature = [0u8; 2];
    reader.read_exact(&mut signature)?;
    let label = c_string(reader)?;
    let original = c_string(reader)?;
    let mut word = [0u8; 4];
    reader.read_exact(&mut word)?;
    reader.read_exact(&mut word)?;
    let temp_len = u32::from_le_bytes(word);
    if temp_len > 4096 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "temporary path too long",
        ));
    }
    io::copy(&mut reader.take(u64::from(temp_len)), &mut io::sink())?;
    reader.read_exact(&mut word)?;
    let size = u64::from(u32::from_le_bytes(word));
    let path = if original.is_empty() { label } else { original };
    let name = path.rsplit(['/', '\\']).next().unwrap_or("").to_owned();
    Ok((
        if name.is_empty() {
            "package".to_owned()
        } else {
            name
        },
        size,
    ))
}

/// A NUL-terminated ANSI string of at most 1 KiB.
fn c_string(reader: &mut dyn Read) -> io::Result<String> {
    let mut bytes = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        reader.read_exact(&mut byte)?;
        if byte[0] == 0 {
            break;
        }
        if bytes.len() == 1024 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "string too long",
            ));
        }
        bytes.push(byte[0]);
    }
    // ANSI: every byte maps to the char of the same value.
    Ok(bytes.into_iter().map(char::from).collect())
}

/// Objects embedded in PowerPoint 97-2003 slides: `ExOleObjStg` records (type 0x1011) of the
/// `PowerPoint Document` stream, zlib-compressed when their instance is 1. Containers (version
/// 0xF) are entered, every other record skipped by its length, so the walk is linear.
fn powerpoint_objects(members: &mut Members<'_>, file: &mut Compound<'_>, path: &Path, raw: &str) {
    const EX_OLE_OBJ_STG: u16 = 0x1011;
    let Ok(mut stream) = file.open_stream(path) else {
        return;
    };
    let end = stream.len();
    let mut header = [0u8; 8];
    while !members.stopped() {
        let Ok(at) = stream.stream_position() else {
            return;
        };
        if at + 8 > end || stream.read_exact(&mut header).is_err() {
            return;
        }
        let ver_instance = u16::from_le_bytes([header[0], header[1]]);
        let kind = u16::from_le_bytes([header[2], header[3]]);
        let len = u64::from(u32::from_le_bytes([
            header[4], header[5], header[6], header[7],
        ]));
        let body = at + 8;
        if ver_instance & 0xF == 0xF {
            continue;
        }
        if kind == EX_OLE_OBJ_STG && body + len <= end {
            let name = format!("{raw}/ExOleObjStg@{at}");
            if ver_instance >> 4 == 1 && len >= 4 {
                let mut size = [0u8; 4];
                if stream.read_exact(&mut size).is_err() {
                    return;
                }
                let size = u64::from(u32::from_le_bytes(size));
                let (counting, consumed) = Counting::new((&mut stream).take(len - 4));
                if let Ok(mut decoder) = stream_decoder(Codec::Zlib, counting) {
                    members.member(
                        &name,
                        Declared::packed(size, len - 4),
                        &mut decoder,
                        Some(consumed),
                    );
                }
            } else {
                members.member(
                    &name,
                    Declared::size(len),
                    &mut (&mut stream).take(len),
                    None,
                );
            }
        }
        if stream.seek(SeekFrom::Start(body + len)).is_err() {
            return;
        }
    }
}

/// The source of every module of a VBA project storage (the one holding `dir` and
/// `_VBA_PROJECT`), decompressed, as `<module stream>.vba`.
fn vba_modules(members: &mut Members<'_>, file: &mut Compound<'_>, storage: &Path) {
    let storage_name = storage.to_string_lossy().trim_start_matches('/').to_owned();
    let dir = match read_stream(file, &storage.join("dir"), MAX_VBA_DIR) {
        Ok(dir) => dir,
        Err(e) => {
            let message = format!("the VBA project's directory could not be read: {e}");
            return members.member_problem(
                &format!("{}/{storage_name}/dir", members.path()),
                Reason::Corrupt,
                message,
            );
        }
    };
    let mut decoded = Vec::new();
    let read = stream_decoder(Codec::Ovba, &dir[..])
        .and_then(|d| d.take(MAX_VBA_DIR * 8).read_to_end(&mut decoded));
    if let Err(e) = read {
        let message = format!("the VBA project's directory is damaged: {e}");
        return members.member_problem(
            &format!("{}/{storage_name}/dir", members.path()),
            Reason::Corrupt,
            message,
        );
    }
    for (stream_name, offset) in vba_module_streams(&decoded) {
        if members.stopped() {
            return;
        }
        let stream_path = storage.join(&stream_name);
        let child = members.child(&format!("{storage_name}/{stream_name}.vba"));
        let source = match read_stream(file, &stream_path, MAX_VBA_MODULE) {
            Ok(source) => source,
            Err(e) => {
                let message = format!("the VBA module could not be read: {e}");
                members.member_problem(&child, Reason::Corrupt, message);
                continue;
            }
        };
        let Some(compressed) = source.get(offset as usize..) else {
            let message = format!("the VBA module's source offset {offset} is past its end");
            members.member_problem(&child, Reason::Corrupt, message);
            continue;
        };
        if !members.admit(&child, Declared::UNKNOWN) {
            continue;
        }
        let (counting, consumed) = Counting::new(compressed);
        if let Ok(mut decoder) = stream_decoder(Codec::Ovba, counting) {
            members.read(&child, &mut decoder, Some(consumed));
        }
    }
}

fn read_stream(file: &mut Compound<'_>, path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let stream = file.open_stream(path)?;
    if stream.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} bytes is over the {max}-byte limit for it", stream.len()),
        ));
    }
    let mut bytes = Vec::with_capacity(stream.len() as usize);
    stream.take(max).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Module stream names and source offsets from a decompressed VBA `dir` stream (MS-OVBA
/// 2.3.4.2): records of a 2-byte id and a 4-byte size, except PROJECTVERSION (0x0009), whose
/// size field says 4 but which carries 6 bytes.
fn vba_module_streams(dir: &[u8]) -> Vec<(String, u32)> {
    const PROJECT_VERSION: u16 = 0x0009;
    const MODULE_STREAM_NAME: u16 = 0x001A;
    const MODULE_OFFSET: u16 = 0x0031;
    let mut modules: Vec<(String, u32)> = Vec::new();
    let mut at = 0usize;
    while let Some(header) = dir.get(at..at + 6) {
        let id = u16::from_le_bytes([header[0], header[1]]);
        let size = u32::from_le_bytes([header[2], header[3], header[4], header[5]]) as usize;
        let size = if id == PROJECT_VERSION { 6 } else { size };
        let Some(body) = dir.get(at + 6..(at + 6).saturating_add(size)) else {
            break;
        };
        match id {
            MODULE_STREAM_NAME => modules.push((body.iter().map(|&b| char::from(b)).collect(), 0)),
            MODULE_OFFSET if body.len() == 4 => {
                if let Some(last) = modules.last_mut() {
                    last.1 = u32::from_le_bytes([body[0], body[1], body[2], body[3]]);
                }
            }
            _ => {}
        }
        at += 6 + size;
    }
    modules.retain(|(name, _)| !name.is_empty() && !name.contains(['/', '\\', '\0']));
    modules
}
