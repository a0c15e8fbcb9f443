//! 7-Zip archives, decoded by sevenz-rust2 with its memory limit and one decoder thread.

use std::io::Cursor;

use sevenz_rust2::{ArchiveReader, EntryDecision, Password};

use super::Format;
use crate::decompress::Counting;
use crate::formats::members::{Declared, Members, Taken};
use crate::verdict::Reason;

pub(super) const FORMAT: Format = Format {
    name: "7z",
    identify: |data| data.starts_with(b"7z\xBC\xAF\x27\x1C"),
    expand,
};

/// 7z decoders may allocate dictionaries and models up to this much (KiB); larger ones are
/// refused rather than allocated.
const MEMORY_LIMIT_KB: usize = 256 * 1024;

fn expand(members: &mut Members<'_>, data: &[u8]) {
    let (counting, consumed) = Counting::new(Cursor::new(data));
    let mut reader =
        match ArchiveReader::new_with_memory_limit(counting, Password::empty(), MEMORY_LIMIT_KB) {
            Ok(reader) => reader,
            Err(e) => return sevenz_error(members, e),
        };
    // The walk already runs on its own blocking thread; decoder threads would only compete.
    reader.set_thread_count(1);
    let files = reader
        .archive()
        .files
        .iter()
        .filter(|f| f.has_stream)
        .count() as u64;
    if !members.expect(files) {
        return;
    }
    let result = reader.for_each_entries_with_decision(|entry, reader| {
        let child = members.child(&entry.name);
        if members.stopped() {
            return Ok(EntryDecision::Stop);
        }
        if entry.is_directory || !entry.has_stream {
            return Ok(EntryDecision::Continue);
        }
        let declared = Declared {
            size: Some(entry.size),
            compressed: (entry.compressed_size > 0).then_some(entry.compressed_size),
        };
        // Skipping (not draining) the rest of the block keeps a refused member from being
        // decoded anyway; the refusal is already recorded, so the verdict is not Clean.
        if !members.admit(&child, declared) {
            return Ok(if members.stopped() {
                EntryDecision::Stop
            } else {
                EntryDecision::SkipBlock
            });
        }
        Ok(match members.read(&child, reader, Some(consumed.clone())) {
            Taken::Read => EntryDecision::Continue,
            Taken::Refused | Taken::Broken => EntryDecision::SkipBlock,
        })
    });
    if let Err(e) = result {
        sevenz_error(members, e);
    }
}

fn sevenz_error(members: &mut Members<'_>, err: sevenz_rust2::Error) {
    use sevenz_rust2::Error as E;
    let (reason, message) = match err {
        E::PasswordRequired | E::MaybeBadPassword(_) => (
            Reason::Encrypted,
            "the 7z archive is encrypted, so it could not be examined".to_owned(),
        ),
        E::UnsupportedCompressionMethod(method) => (
            Reason::Unsupported,
            format!("7z compression method {method} is not supported, so it was not examined"),
        ),
        E::MaxMemLimited { actaul_kb, .. } => (
            Reason::Unsupported,
            format!("the 7z decoder would need {actaul_kb} KiB of memory, over the limit"),
        ),
        E::Io(io, _) if members.limit_in(&io) => return,
        other => (Reason::Corrupt, format!("damaged or truncated 7z: {other}")),
    };
    members.problem(reason, message);
}
