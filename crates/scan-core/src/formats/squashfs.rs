//! squashfs images (Linux's compressed read-only file system: firmware, AppImages, live
//! systems), version 4 with gzip, xz, zstd or lz4, read through the `backhand` crate: every
//! regular file is a member under its path. LZO images are reported: the only Rust LZO reader
//! is GPL-licensed.

use std::io::Cursor;

use backhand::{BackhandError, FilesystemReader, InnerNode};

use super::Format;
use crate::expand::{Declared, Members};
use crate::verdict::Reason;

pub(super) const FORMAT: Format = Format {
    name: "squashfs",
    identify: |data| data.starts_with(b"hsqs") && data.get(28..30) == Some(&[4, 0]),
    expand,
};

fn expand(members: &mut Members<'_, '_>, data: &[u8]) {
    let filesystem = match FilesystemReader::from_reader(Cursor::new(data)) {
        Ok(filesystem) => filesystem,
        Err(BackhandError::UnsupportedCompression(method)) => {
            return members.problem(
                Reason::Unsupported,
                format!("the squashfs image is compressed with {method}, which is not supported"),
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
