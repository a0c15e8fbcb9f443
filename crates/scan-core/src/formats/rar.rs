//! RAR archives (versions 1.5 to 5) through libarchive (BSD licence): each file a member,
//! streamed chunk by chunk into the capped spool. What libarchive will not read is reported,
//! never passed over: an encrypted archive or member `encrypted`; a member continued in another
//! volume, and (with libarchive before 3.7) the files of a RAR 4 solid archive after its first,
//! `unsupported`; damage `corrupt`.

use std::io::{self, Cursor, Read};

use compress_tools::{ArchiveContents, ArchiveIterator};

use super::Format;
use crate::formats::members::{Declared, Members, Taken};
use crate::verdict::Reason;

pub(super) const FORMAT: Format = Format {
    name: "rar",
    identify: |data| data.starts_with(b"Rar!\x1A\x07"),
    expand,
};

/// The file type bits of a mode, and those of a directory.
const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;

fn expand(members: &mut Members<'_>, data: &[u8]) {
    let mut archive = match ArchiveIterator::from_read(Cursor::new(data)) {
        Ok(archive) => archive,
        Err(e) => return failed(members, None, &e.to_string()),
    };
    let mut next = archive.next();
    while let Some(item) = next {
        if members.stopped() {
            return;
        }
        match item {
            ArchiveContents::StartOfEntry(name, stat) => {
                if stat.st_mode & S_IFMT == S_IFDIR {
                    next = archive.next_header();
                    continue;
                }
                let child = members.child(&name);
                let size = u64::try_from(stat.st_size).unwrap_or(0);
                if !members.admit(&child, Declared::size(size)) {
                    // Passed over in the archive, not decoded to be thrown away.
                    next = archive.next_header();
                    continue;
                }
                let mut entry = Entry {
                    archive: &mut archive,
                    chunk: Vec::new(),
                    at: 0,
                    failure: None,
                    ended: false,
                };
                let taken = members.read(&child, &mut entry, None);
                let failure = entry.failure.take();
                let ended = entry.ended;
                if let Some(why) = failure {
                    if taken == Taken::Broken {
                        failed(members, Some(&child), &why);
                    }
                    return;
                }
                if !ended {
                    return;
                }
                next = archive.next();
            }
            ArchiveContents::Err(e) => return failed(members, None, &e.to_string()),
            // Chunks of an entry not taken, or a stray end: nothing to do.
            ArchiveContents::DataChunk(_) | ArchiveContents::EndOfEntry => next = archive.next(),
        }
    }
}

/// Records why libarchive stopped, on the member it was reading or on the archive.
fn failed(members: &mut Members<'_>, child: Option<&str>, why: &str) {
    let lower = why.to_ascii_lowercase();
    let (reason, message) = if lower.contains("ncrypt") || lower.contains("password") {
        (
            Reason::Encrypted,
            format!("the RAR archive is encrypted ({why})"),
        )
    } else if lower.contains("solid") {
        (
            Reason::Unsupported,
            format!(
                "the files of this RAR 4 solid archive after the first are not read by this build's libarchive ({why})"
            ),
        )
    } else if lower.contains("volume") {
        (
            Reason::Unsupported,
            format!("a RAR member continued in another volume of a set was not read whole ({why})"),
        )
    } else {
        (
            Reason::Corrupt,
            format!("damaged or truncated RAR archive: {why}"),
        )
    };
    match child {
        Some(child) => members.member_problem(child, reason, message),
        None => members.problem(reason, message),
    }
}

/// One entry's data, read chunk by chunk from the archive until its end.
struct Entry<'a, R: Read + io::Seek> {
    archive: &'a mut ArchiveIterator<R>,
    chunk: Vec<u8>,
    at: usize,
    /// What libarchive said when it stopped inside the entry.
    failure: Option<String>,
    ended: bool,
}

impl<R: Read + io::Seek> Read for Entry<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            if self.ended || buf.is_empty() {
                return Ok(0);
            }
            match self.archive.next() {
                Some(ArchiveContents::DataChunk(chunk)) => {
                    self.chunk = chunk;
                    self.at = 0;
                }
                Some(ArchiveContents::Err(e)) => {
                    let why = e.to_string();
                    self.failure = Some(why.clone());
                    return Err(io::Error::new(io::ErrorKind::InvalidData, why));
                }
                _ => {
                    self.ended = true;
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
