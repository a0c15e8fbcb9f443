//! squashfs images (Linux's compressed read-only file system: firmware, AppImages, live
//! systems), version 4 with gzip, xz, zstd, lz4 or LZO, read through the `backhand` crate:
//! every regular file is a member under its path. LZO blocks are decoded by our own decoder
//! (the only Rust LZO crate, which backhand would use, is GPL-licensed).

use std::io::Cursor;

use backhand::compression::{CompressionAction, Compressor, DefaultCompressor};
use backhand::kind::{self, Kind};
use backhand::{BackhandError, FilesystemCompressor, FilesystemReader, InnerNode, SuperBlock};

use super::Format;
use crate::formats::members::{Declared, Members};
use crate::verdict::Reason;

pub(super) const FORMAT: Format = Format {
    name: "squashfs",
    identify: |data| data.starts_with(b"hsqs") && data.get(28..30) == Some(&[4, 0]),
    expand,
};

/// backhand's decoders, with LZO added.
struct Codecs;

/// A squashfs block never holds more than this (its largest block size).
const MAX_BLOCK: usize = 1 << 20;

impl CompressionAction for Codecs {
    type Error = BackhandError;
    type Compressor = Compressor;
    type FilesystemCompressor = FilesystemCompressor;
    type SuperBlock = SuperBlock;

    fn decompress(
        &self,
        bytes: &[u8],
        out: &mut Vec<u8>,
        compressor: Compressor,
    ) -> Result<(), BackhandError> {
        match compressor {
            Compressor::Lzo => crate::decompress::lzo1x(bytes, out, MAX_BLOCK)
                .map_err(|_| BackhandError::CorruptedOrInvalidSquashfs),
            other => DefaultCompressor.decompress(bytes, out, other),
        }
    }

    fn compress(
        &self,
        _bytes: &[u8],
        _fc: FilesystemCompressor,
        _block_size: u32,
    ) -> Result<Vec<u8>, BackhandError> {
        // Images are only ever read here.
        Err(BackhandError::UnsupportedCompression(
            "writing is not supported".into(),
        ))
    }
}

static CODECS: Codecs = Codecs;

fn expand(members: &mut Members<'_>, data: &[u8]) {
    let kind = Kind::new_v4_with_const(&CODECS, kind::LE_V4_0);
    let filesystem =
        match FilesystemReader::from_reader_with_offset_and_kind(Cursor::new(data), 0, kind) {
            Ok(filesystem) => filesystem,
            Err(BackhandError::UnsupportedCompression(method)) => {
                return members.problem(
                    Reason::Unsupported,
                    format!(
                        "the squashfs image is compressed with {method}, which is not supported"
                    ),
                );
            }
            Err(e) => return members.corrupt("squashfs image", e),
        };
    let files = filesystem
        .files()
        .filter(|node| matches!(node.inner, InnerNode::File(_)))
        .count();
    if !members.expect(files as u64) {
        return;
    }
    for node in filesystem.files() {
        if members.stopped() {
            return;
        }
        let InnerNode::File(file) = &node.inner else {
            continue;
        };
        let path = node.fullpath.to_string_lossy();
        let path = path.trim_start_matches('/');
        let size = file.file_len() as u64;
        let packed: u64 = file.block_sizes().iter().map(|b| u64::from(b.size())).sum();
        let child = members.child(path);
        // Data in fragments is counted by its file's share of nothing: the ratio check then
        // falls back on what is read.
        let declared = if packed > 0 {
            Declared::packed(size, packed)
        } else {
            Declared::size(size)
        };
        if !members.admit(&child, declared) {
            continue;
        }
        let mut reader = match filesystem.file(file).reader_checked() {
            Ok(reader) => reader,
            Err(e) => {
                members.member_problem(
                    &child,
                    Reason::Corrupt,
                    format!("damaged or truncated squashfs file: {e}"),
                );
                continue;
            }
        };
        members.read(&child, &mut reader, None);
    }
}
