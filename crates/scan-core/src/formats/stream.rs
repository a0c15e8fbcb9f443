//! Single-stream compression formats (gzip, bzip2, xz, zstd, lz4, lzip, Unix compress, raw
//! LZMA): one member, the
//! decoded stream, named after gzip's stored name or the parent without its compression suffix.

use std::io::Cursor;

use super::Format;
use crate::decompress::DECODER_MEMORY_LIMIT;
use crate::decompress::{Codec, Counting, seekable_decoder};
use crate::formats::members::{Declared, Members};
use crate::verdict::Reason;

pub(super) const GZIP: Format = Format {
    name: "gzip",
    identify: is_gzip,
    expand: |members, data| expand(members, data, Codec::Gzip),
};

/// gzip's magic, method 8 (deflate, the only one RFC 1952 defines) and no reserved flag bits:
/// what gzip itself and every other decoder insist on, so nothing else can hide content behind
/// that magic. The two magic bytes alone begin one random object in 65,536 (a tar of 10,000
/// random files holds one about one time in seven), and each was reported as damaged.
fn is_gzip(data: &[u8]) -> bool {
    data.starts_with(b"\x1F\x8B\x08") && data.get(3).is_some_and(|flags| flags & 0xE0 == 0)
}

pub(super) const BZIP2: Format = Format {
    name: "bzip2",
    identify: |data| {
        data.starts_with(b"BZh") && data.get(3).is_some_and(|b| (b'1'..=b'9').contains(b))
    },
    expand: |members, data| expand(members, data, Codec::Bzip2),
};

pub(super) const XZ: Format = Format {
    name: "xz",
    identify: |data| data.starts_with(b"\xFD7zXZ\x00"),
    expand: |members, data| expand(members, data, Codec::Xz),
};

pub(super) const ZSTD: Format = Format {
    name: "zstd",
    identify: |data| data.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]),
    expand: |members, data| expand(members, data, Codec::Zstd),
};

pub(super) const LZ4: Format = Format {
    name: "lz4",
    identify: |data| data.starts_with(&[0x04, 0x22, 0x4D, 0x18]),
    expand: |members, data| expand(members, data, Codec::Lz4),
};

pub(super) const LZIP: Format = Format {
    name: "lzip",
    identify: |data| data.starts_with(b"LZIP\x01"),
    expand: |members, data| expand(members, data, Codec::Lzip),
};

pub(super) const COMPRESS: Format = Format {
    name: "compress",
    identify: |data| {
        data.starts_with(&[0x1F, 0x9D])
            && data.get(2).is_some_and(|f| (9..=16).contains(&(f & 0x1F)))
    },
    expand: |members, data| expand(members, data, Codec::UnixCompress),
};

pub(super) const LZMA: Format = Format {
    name: "lzma",
    identify: is_lzma_alone,
    expand: |members, data| expand(members, data, Codec::LzmaAlone),
};

/// A raw LZMA stream has no magic, only a 13-byte header: properties (lc, lp, pb packed below
/// 225), a dictionary size, and the decoded size (or all ones for unknown). Encoders write
/// dictionaries of 2^n or 2^n + 2^(n-1) bytes (xz's own check for this format), and a size
/// below a terabyte when they know it; random data passes all that about once in 10^8.
fn is_lzma_alone(data: &[u8]) -> bool {
    let Some(header) = data.get(..13) else {
        return false;
    };
    let dict = u32::from_le_bytes([header[1], header[2], header[3], header[4]]);
    let size = u64::from_le_bytes([
        header[5], header[6], header[7], header[8], header[9], header[10], header[11], header[12],
    ]);
    let n = dict.checked_ilog2().unwrap_or(0);
    let dict_ok =
        (12..=30).contains(&n) && (dict == 1 << n || (n >= 1 && dict == (1 << n) + (1 << (n - 1))));
    header[0] < 225 && dict_ok && (size == u64::MAX || size < 1 << 40)
}

fn expand(members: &mut Members<'_>, data: &[u8], codec: Codec) {
    let name = member_name(members.path(), data, codec);
    let child = members.child(&name);
    if !members.admit(&child, Declared::UNKNOWN) {
        return;
    }
    let (counting, consumed) = Counting::new(Cursor::new(data));
    match seekable_decoder(codec, counting) {
        Ok(mut decoder) => {
            members.read(&child, &mut decoder, Some(consumed));
        }
        Err(e) if e.kind() == std::io::ErrorKind::OutOfMemory => {
            let message = format!(
                "the decoder would need more than {} MiB of memory ({e}), so it was not examined",
                DECODER_MEMORY_LIMIT >> 20
            );
            members.member_problem(&child, Reason::Unsupported, message);
        }
        Err(e) => members.corrupt("compressed stream", e),
    }
}

/// The name of a compressed stream's content: gzip's stored name when there is one, else the
/// parent's name without its compression suffix.
fn member_name(parent_path: &str, data: &[u8], codec: Codec) -> String {
    if codec == Codec::Gzip
        && let Some(name) = gzip_stored_name(data)
    {
        return name;
    }
    let parent = parent_path.rsplit('/').next().unwrap_or(parent_path);
    let lower = parent.to_ascii_lowercase();
    let (suffixes, format): (&[(&str, &str)], &str) = match codec {
        Codec::Gzip => (&[(".tgz", ".tar"), (".gz", ""), (".z", "")], "gzip"),
        Codec::Bzip2 => (
            &[(".tbz2", ".tar"), (".tbz", ".tar"), (".bz2", "")],
            "bzip2",
        ),
        Codec::Xz => (&[(".txz", ".tar"), (".xz", "")], "xz"),
        Codec::Zstd => (&[(".tzst", ".tar"), (".zst", "")], "zstd"),
        Codec::Lz4 => (&[(".tlz4", ".tar"), (".lz4", "")], "lz4"),
        Codec::LzmaAlone => (&[(".tlz", ".tar"), (".lzma", "")], "lzma"),
        Codec::Lzip => (&[(".tlz", ".tar"), (".lz", "")], "lzip"),
        Codec::UnixCompress => (&[(".taz", ".tar"), (".z", "")], "compress"),
        _ => (&[], "stream"),
    };
    for (suffix, replacement) in suffixes {
        if lower.ends_with(suffix) && lower.len() > suffix.len() {
            return format!("{}{replacement}", &parent[..parent.len() - suffix.len()]);
        }
    }
    format!("{parent}.{format}-decoded")
}

/// Reads the FNAME field of a gzip header (RFC 1952), if set.
fn gzip_stored_name(data: &[u8]) -> Option<String> {
    const FEXTRA: u8 = 0x04;
    const FNAME: u8 = 0x08;
    let flags = *data.get(3)?;
    if flags & FNAME == 0 {
        return None;
    }
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let xlen = u16::from_le_bytes([*data.get(10)?, *data.get(11)?]) as usize;
        at += 2 + xlen;
    }
    let rest = data.get(at..)?;
    let end = rest.iter().take(1024).position(|b| *b == 0)?;
    // RFC 1952 says ISO 8859-1; every byte maps to the char of the same value.
    let name: String = rest[..end].iter().map(|&b| char::from(b)).collect();
    let base = name.rsplit(['/', '\\']).next().unwrap_or(&name).to_owned();
    (!base.is_empty()).then_some(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_drop_the_compression_suffix() {
        assert_eq!(
            member_name("a/b.tar.gz", b"\x1f\x8b\x08\0", Codec::Gzip),
            "b.tar"
        );
        assert_eq!(
            member_name("x.TGZ", b"\x1f\x8b\x08\0", Codec::Gzip),
            "x.tar"
        );
        assert_eq!(member_name("x.txz", b"", Codec::Xz), "x.tar");
        assert_eq!(member_name("blob", b"", Codec::Zstd), "blob.zstd-decoded");
    }

    #[test]
    fn gzip_is_its_magic_with_deflate_and_no_reserved_flags() {
        assert!(is_gzip(b"\x1f\x8b\x08\x08\0\0\0\0\0\x03"));
        assert!(is_gzip(&crate::testing::gzip(b"content")));
        assert!(!is_gzip(b"\x1f\x8b"), "too short to say");
        assert!(
            !is_gzip(b"\x1f\x8b\x09\0random"),
            "a method no decoder knows"
        );
        assert!(!is_gzip(b"\x1f\x8b\x08\x20random"), "a reserved flag set");
    }

    #[test]
    fn gzip_stored_name_is_used_when_present() {
        let mut header = b"\x1f\x8b\x08\x08\0\0\0\0\0\x03".to_vec();
        header.extend_from_slice(b"dir/report.pdf\0");
        assert_eq!(
            member_name("upload.bin", &header, Codec::Gzip),
            "report.pdf"
        );
    }
}
