//! What every file system walker shares: members named by their path in the volume (under the
//! partition's prefix), a bound on how many directories a walk may enter, and a bound on how
//! many bytes its files may add up to. Files of a sound volume never share clusters, so they
//! cannot hold more than the image does; a FAT chain that loops or an NTFS run list that points
//! back breaks that, and is stopped as the bomb it is instead of read to its declared size.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

use super::device::Reads;

use crate::formats::members::{Declared, Members, Taken};
use crate::verdict::Reason;

/// Directories nested deeper than this are not entered.
pub(super) const MAX_DEPTH: usize = 64;
/// Entries one directory may list: FAT's own limit. A directory whose chain (or B-tree)
/// loops lists without end; past this it is damaged.
pub(super) const MAX_ENTRIES: usize = 65_536;

/// One volume being walked.
pub(super) struct Volume<'p> {
    prefix: &'p str,
    what: &'static str,
    /// Bytes the volume's files may still add up to.
    left: Cell<u64>,
    /// Directories the walk may still enter.
    directories: u64,
    reads: Rc<Reads>,
}

impl<'p> Volume<'p> {
    /// A volume whose members go under `prefix` (empty for a disk that is one volume), `what`
    /// naming it in messages, read from an image of `image_len` bytes.
    pub(super) fn new(
        members: &Members<'_>,
        prefix: &'p str,
        what: &'static str,
        image_len: u64,
    ) -> Self {
        Self {
            prefix,
            what,
            // Room for metadata counted twice, and for a small image's slack.
            left: Cell::new(image_len.saturating_add(1 << 20)),
            directories: members.limits().max_files,
            reads: Rc::default(),
        }
    }

    /// Where the volume's file reads are counted: the device the walker reads through must
    /// be wrapped in a [`super::device::Tracked`] sharing it.
    pub(super) fn reads(&self) -> Rc<Reads> {
        Rc::clone(&self.reads)
    }

    /// Counts a directory the walk is about to enter; false (and the volume reported damaged)
    /// once more directories were entered than a scan may hold files: the tree loops.
    pub(super) fn enter(&mut self, members: &mut Members<'_>) -> bool {
        if self.directories == 0 {
            members.corrupt(
                self.what,
                "its directories loop or nest without end, so the walk stopped",
            );
            return false;
        }
        self.directories -= 1;
        true
    }

    /// The member path of `path` inside the volume.
    pub(super) fn path(&self, path: &str) -> String {
        if self.prefix.is_empty() {
            path.to_owned()
        } else {
            format!("{}/{path}", self.prefix)
        }
    }

    /// Yields one file of `size` bytes.
    pub(super) fn file(
        &self,
        members: &mut Members<'_>,
        path: &str,
        size: u64,
        reader: &mut dyn Read,
    ) -> Taken {
        let child = members.child(&self.path(path));
        if !members.admit(&child, Declared::size(size)) {
            return Taken::Refused;
        }
        let mut metered = Metered {
            inner: reader,
            left: &self.left,
        };
        self.reads.file(|| members.read(&child, &mut metered, None))
    }

    /// Records that a file could not be read as the volume stores it (compressed by a method
    /// not supported, encrypted).
    pub(super) fn unreadable(
        &self,
        members: &mut Members<'_>,
        path: &str,
        reason: Reason,
        message: String,
    ) {
        let child = members.child(&self.path(path));
        members.member_problem(&child, reason, message);
    }
}

/// A file's reader that fails once the volume's files add up to more than the image holds.
struct Metered<'r, 'c> {
    inner: &'r mut dyn Read,
    left: &'c Cell<u64>,
}

impl Read for Metered<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        match self.left.get().checked_sub(n as u64) {
            Some(left) => {
                self.left.set(left);
                Ok(n)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the volume's files add up to more than the image holds: clusters shared \
                 between files or a chain that loops, a bomb technique",
            )),
        }
    }
}
