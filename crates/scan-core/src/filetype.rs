//! Identifying an object by its content (magic bytes), never by its name.

/// What an object is, as far as expansion cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FileType {
    /// A carrier that expansion opens, by its format's name: `zip`, `tar`, `7z`, `gzip`,
    /// `email`, `pdf`, `rtf`, `ole`... (see [`container_formats`]).
    Container(&'static str),
    /// A container Verdict recognises but does not unpack (name in the tuple).
    UnsupportedArchive(&'static str),
    /// Anything else; not expanded.
    Other,
}

impl FileType {
    /// Whether expansion opens this type.
    pub fn is_container(self) -> bool {
        matches!(self, FileType::Container(_))
    }

    /// A short lower-case name: `zip`, `tar`, `7z`, `gzip`, `pdf`...
    pub fn name(self) -> &'static str {
        match self {
            FileType::Container(name) | FileType::UnsupportedArchive(name) => name,
            FileType::Other => "other",
        }
    }
}

/// The names of every format expansion opens, in the order identification tries them.
pub fn container_formats() -> impl Iterator<Item = &'static str> {
    crate::formats::FORMATS.iter().map(|f| f.name)
}

/// Identifies the container type of `data` from its content.
pub fn detect(data: &[u8]) -> FileType {
    match crate::formats::identify(data, None) {
        Some(format) => FileType::Container(format.name),
        None => detect_unsupported(data),
    }
}

/// What `data` is when no format opens it: a recognised but unsupported container, or other.
pub(crate) fn detect_unsupported(data: &[u8]) -> FileType {
    unsupported(data).map_or(FileType::Other, FileType::UnsupportedArchive)
}

/// Containers recognised but not unpacked: reported as such, so their content is never taken
/// for examined.
fn unsupported(data: &[u8]) -> Option<&'static str> {
    let starts = |magic: &[u8]| data.starts_with(magic);
    let at = |offset: usize, magic: &[u8]| data.get(offset..offset + magic.len()) == Some(magic);
    Some(if starts(b"Rar!\x1A\x07") {
        "rar"
    } else if starts(b"MSCF\0\0\0\0") {
        // A cabinet of a version other than 1.3.
        "cab"
    } else if starts(&[0x60, 0xEA]) && data.get(10) == Some(&0x02) {
        // An ARJ main header that does not hold together (its CRC fails).
        "arj"
    } else if starts(b"070707") {
        // An odc header that does not parse.
        "cpio (old ASCII format)"
    } else if starts(&[0x02, 0x21, 0x4C, 0x18]) {
        "lz4 (legacy format)"
    } else if starts(b"ISc(") {
        "InstallShield cabinet"
    } else if starts(&[0x7A, 0x1A, 0x20, 0x10]) && at(8, &[0x19, 0x04, 0x00, 0x10]) {
        // UID1 0x10201A7A: Symbian 9's SIS, a different format from the older one opened.
        "sis (Symbian 9)"
    } else if starts(b"xar!") {
        "xar"
    } else if at(7, b"**ACE**") {
        "ace"
    } else if at(2, b"-lh") && data.get(6) == Some(&b'-') {
        "lzh"
    } else if at(0x8001, b"CD001") || at(0x8801, b"CD001") || at(0x9001, b"CD001") {
        "iso9660"
    } else {
        return None;
    })
}

/// The type reported to users (`trueFileType`): a specific format when one is recognised
/// (`pdf`, `exe`, `docx`, `png`...), else the container name, else `text` or `binary`.
pub fn describe(data: &[u8]) -> String {
    if let Some(kind) = infer::get(data) {
        return kind.extension().to_owned();
    }
    match detect(data) {
        FileType::Other if data.is_empty() => "empty".to_owned(),
        FileType::Other if looks_like_text(data) => "text".to_owned(),
        FileType::Other => "binary".to_owned(),
        // Text that carries data URIs or script strings is still text to the person reading
        // the report.
        FileType::Container("data-uri" | "script") => "text".to_owned(),
        other => other.name().to_owned(),
    }
}

pub(crate) fn looks_like_text(data: &[u8]) -> bool {
    let sample = &data[..data.len().min(8192)];
    match std::str::from_utf8(sample) {
        Ok(text) => !text.contains('\0'),
        // A multi-byte character cut by the sample boundary is still text.
        Err(e) => e.error_len().is_none() && !sample[..e.valid_up_to()].contains(&0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes_decide_not_names() {
        assert_eq!(detect(b"PK\x03\x04rest"), FileType::Container("zip"));
        assert_eq!(detect(b"\x1f\x8b\x08\0"), FileType::Container("gzip"));
        assert_eq!(detect(b"BZh91AY&SY"), FileType::Container("bzip2"));
        assert_eq!(detect(b"BZhX"), FileType::Other);
        assert_eq!(detect(b"\xFD7zXZ\0\0"), FileType::Container("xz"));
        assert_eq!(
            detect(b"7z\xBC\xAF\x27\x1C\0\x04"),
            FileType::Container("7z")
        );
        // Opened through libarchive when the feature `rar` is on; else recognised, unopened.
        let rar = if cfg!(feature = "rar") {
            FileType::Container("rar")
        } else {
            FileType::UnsupportedArchive("rar")
        };
        assert_eq!(detect(b"Rar!\x1A\x07\x01\0"), rar);
        assert_eq!(detect(b"hello"), FileType::Other);
        assert_eq!(detect(&[0u8; 1024]), FileType::Other);
    }

    #[test]
    fn v7_tar_is_recognised_by_its_checksum() {
        let mut header = [0u8; 512];
        header[..5].copy_from_slice(b"a.txt");
        header[100..108].copy_from_slice(b"0000644\0");
        header[124..136].copy_from_slice(b"00000000003\0");
        let sum: u32 = header.iter().map(|b| u32::from(*b)).sum::<u32>() + 8 * u32::from(b' ');
        header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        assert_eq!(detect(&header), FileType::Container("tar"));
        header[0] = b'b'; // checksum no longer matches
        assert_eq!(detect(&header), FileType::Other);
    }

    #[test]
    fn describe_names_content() {
        assert_eq!(describe(b"%PDF-1.7\n"), "pdf");
        assert_eq!(describe(b"plain words\n"), "text");
        assert_eq!(describe(&[0u8, 1, 2, 3, 0xff]), "binary");
        assert_eq!(describe(b""), "empty");
    }
}
