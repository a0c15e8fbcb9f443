//! The format contract: [`Members`], the one door through which a carrier format yields the
//! members of one container, and [`Walk`], what the door borrows of the walk behind it. A
//! format names, sizes and reads its members here; limits, spooling, paths and problems are
//! kept here and in the walker, never in a format.

use std::io::Read;

use crate::decompress::{Budget, Capped, Consumed, DECODER_MEMORY_LIMIT, LimitHit};
use crate::limits::{Limit, Limits};
use crate::spool::{ObjectData, Spool, SpoolError, SpoolPolicy};
use crate::verdict::Reason;

/// What a container's [`Members`] borrow of the walk (`crate::formats::members::Walker` implements it):
/// the scan's caps and counts, its record of problems, and the walk of each member read.
pub(crate) trait Walk {
    /// The scan-wide caps every decoded byte is counted against.
    fn budget(&self) -> &Budget;
    /// How members are spooled: in memory up to a threshold, then to a file.
    fn spool_policy(&self) -> &SpoolPolicy;
    /// Whether the scan has stopped (a scan-wide limit, a failed spool).
    fn stopped(&self) -> bool;
    /// Stops the scan: nothing more can be read.
    fn stop(&mut self);
    /// Objects counted so far in this scan, the root included.
    fn objects(&self) -> u64;
    /// Counts one more object and returns the count.
    fn count_object(&mut self) -> u64;
    /// Records that the object at `path` could not be fully examined.
    fn problem(&mut self, path: &str, reason: Reason, message: String);
    /// Records a limit hit at `path`; a scan-wide limit stops the scan.
    fn limit(&mut self, path: &str, limit: Limit);
    /// Walks a member read whole: the engines, then what it holds.
    fn visit_member(&mut self, path: &str, depth: u32, data: &ObjectData);
}

/// What a format knows about a member before reading it, checked against the limits first so
/// a bomb is refused from its headers instead of expanded to find out.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Declared {
    /// The size the container says the member has, if it says.
    pub(crate) size: Option<u64>,
    /// Its compressed size, if it is compressed and the container says.
    pub(crate) compressed: Option<u64>,
}

impl Declared {
    /// Nothing is declared: limits are enforced while reading.
    pub(crate) const UNKNOWN: Declared = Declared {
        size: None,
        compressed: None,
    };

    /// A member stored as it is, of `size` bytes.
    pub(crate) fn size(size: u64) -> Self {
        Declared {
            size: Some(size),
            compressed: None,
        }
    }

    /// A compressed member.
    pub(crate) fn packed(size: u64, compressed: u64) -> Self {
        Declared {
            size: Some(size),
            compressed: Some(compressed),
        }
    }
}

/// What became of a member offered to [`Members`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Taken {
    /// Read to its end and walked.
    Read,
    /// Refused before reading (a limit, or the scan has stopped); already recorded.
    Refused,
    /// Reading failed part-way (damaged data, a limit hit while decoding); recorded, and what
    /// was decoded before the failure was walked. The container's reader may be unusable.
    Broken,
}

/// The one door through which a format yields the members of one container. It names them
/// (paths, indexes, cleaned names), counts them, checks their declared sizes, reads them through
/// the caps into a spool and walks them; the format only says what the container holds.
pub(crate) struct Members<'w> {
    walker: &'w mut dyn Walk,
    path: &'w str,
    depth: u32,
    next_index: usize,
    /// The size the last admitted member declared: room made for it at once when it is read.
    expected: Option<u64>,
}

impl<'w> Members<'w> {
    /// The door for the members of the container at `path`, itself at `depth`.
    pub(crate) fn new(walker: &'w mut dyn Walk, path: &'w str, depth: u32) -> Self {
        Members {
            walker,
            path,
            depth,
            next_index: 0,
            expected: None,
        }
    }

    /// The container's own path, as reports show it.
    pub(crate) fn path(&self) -> &str {
        self.path
    }

    /// The scan's limits, for formats that bound their own bookkeeping by them.
    pub(crate) fn limits(&self) -> &Limits {
        &self.walker.budget().limits
    }

    /// Whether the scan has stopped (a scan-wide limit, a failed spool): formats end their loop.
    pub(crate) fn stopped(&self) -> bool {
        self.walker.stopped()
    }

    /// Checks a member count the container declares up front (a zip's central directory) against
    /// the file limit, before anything is read. False (and recorded) when it is too many.
    pub(crate) fn expect(&mut self, count: u64) -> bool {
        let limit = self.walker.budget().limits.max_files;
        if self.walker.objects().saturating_add(count) > limit {
            self.limit(Limit::MaxFiles);
            return false;
        }
        true
    }

    /// Records that the container itself could not be fully examined.
    pub(crate) fn problem(&mut self, reason: Reason, message: impl Into<String>) {
        self.walker.problem(self.path, reason, message.into());
    }

    /// Records that the container is damaged; what was read of it is still walked.
    pub(crate) fn corrupt(&mut self, what: &str, err: impl std::fmt::Display) {
        self.problem(
            Reason::Corrupt,
            format!("damaged or truncated {what}: {err}"),
        );
    }

    /// Records a limit hit on the container itself.
    pub(crate) fn limit(&mut self, limit: Limit) {
        self.walker.limit(self.path, limit);
    }

    /// Records a limit if `err` carries one (a decoder stopped by the caps); false otherwise.
    pub(crate) fn limit_in(&mut self, err: &std::io::Error) -> bool {
        match LimitHit::from_io(err) {
            Some(limit) => {
                self.limit(limit);
                true
            }
            None => false,
        }
    }

    /// The path the next member gets: its name cleaned of control characters (a hostile name
    /// cannot forge log lines), or `#index` when it has none.
    pub(crate) fn child(&mut self, raw_name: &str) -> String {
        let index = self.next_index;
        self.next_index += 1;
        join(self.path, &member_name(raw_name, index))
    }

    /// Records that a member (from [`Members::child`]) could not be examined.
    pub(crate) fn member_problem(
        &mut self,
        child: &str,
        reason: Reason,
        message: impl Into<String>,
    ) {
        self.walker.problem(child, reason, message.into());
    }

    /// Counts a member against the file limit and checks its declared sizes. False (and
    /// recorded) when it is refused.
    pub(crate) fn admit(&mut self, child: &str, declared: Declared) -> bool {
        self.expected = None;
        let walker = &mut *self.walker;
        if walker.stopped() {
            return false;
        }
        if walker.count_object() > walker.budget().limits.max_files {
            walker.limit(child, Limit::MaxFiles);
            return false;
        }
        let Some(size) = declared.size else {
            return true;
        };
        let budget = walker.budget();
        let limits = &budget.limits;
        let expanded = budget.expanded.get().saturating_add(size);
        let limit = if size > limits.max_file_size {
            Some(Limit::MaxFileSize)
        } else if expanded > limits.max_scan_size {
            Some(Limit::MaxScanSize)
        } else if let Some(compressed) = declared.compressed
            && size > limits.ratio_floor
            && size / compressed.max(1) > limits.max_ratio
        {
            Some(Limit::MaxCompressionRatio)
        } else if budget.overall_ratio_exceeded(expanded) {
            Some(Limit::MaxCompressionRatio)
        } else {
            None
        };
        match limit {
            Some(limit) => {
                walker.limit(child, limit);
                false
            }
            None => {
                self.expected = Some(size);
                true
            }
        }
    }

    /// Reads an admitted member to its end through the caps, spooling it, and walks it.
    /// `consumed` counts the compressed input beneath `reader` (for the ratio check); `None`
    /// for data that is not compressed.
    pub(crate) fn read(
        &mut self,
        child: &str,
        reader: &mut dyn Read,
        consumed: Option<Consumed>,
    ) -> Taken {
        match self.spool(child, reader, consumed) {
            Ok(data) => {
                self.walk(child, &data);
                Taken::Read
            }
            Err(taken) => taken,
        }
    }

    /// Reads an admitted member through the caps into a spool without walking it, for a format
    /// that must look inside before it walks ([`Members::walk`]). A member that broke part-way
    /// is recorded, and what was decoded of it walked, here.
    pub(crate) fn spool(
        &mut self,
        child: &str,
        reader: &mut dyn Read,
        consumed: Option<Consumed>,
    ) -> Result<ObjectData, Taken> {
        let depth = self.depth + 1;
        let expected = self.expected.take();
        let walker = &mut *self.walker;
        match spool_capped(
            reader,
            consumed,
            expected,
            walker.budget(),
            walker.spool_policy(),
        ) {
            Ok(data) => Ok(data),
            Err(MemberError::Limit(limit)) => {
                walker.limit(child, limit);
                Err(Taken::Broken)
            }
            Err(MemberError::Corrupt { partial, message }) => {
                walker.problem(
                    child,
                    Reason::Corrupt,
                    format!("damaged or truncated data: {message}"),
                );
                if let Some(partial) = partial {
                    walker.visit_member(child, depth, &partial);
                }
                Err(Taken::Broken)
            }
            Err(MemberError::TooMuchMemory(message)) => {
                let message = format!(
                    "the decoder would need more than {} MiB of memory ({message}), so it was not examined",
                    DECODER_MEMORY_LIMIT >> 20
                );
                walker.problem(child, Reason::Unsupported, message);
                Err(Taken::Broken)
            }
            Err(MemberError::Spool(message)) => {
                let message = format!("could not spool the member: {message}");
                walker.problem(child, Reason::Failed, message);
                walker.stop();
                Err(Taken::Broken)
            }
        }
    }

    /// The most a member may take in memory before it is spooled to a file: a format that
    /// decodes a member whole, in one call, does so only up to this size.
    pub(crate) fn memory_room(&self) -> u64 {
        self.walker.spool_policy().memory_threshold as u64
    }

    /// Walks an admitted member that its format decoded whole from `input` compressed bytes,
    /// counted against the limits as if it had been read through them.
    pub(crate) fn decoded(&mut self, child: &str, decoded: Vec<u8>, input: u64) -> Taken {
        let budget = self.walker.budget();
        let n = decoded.len() as u64;
        if let Err(LimitHit(limit)) = budget
            .charge(n, n, Some(input))
            .and_then(|()| budget.check_time())
        {
            self.walker.limit(child, limit);
            return Taken::Broken;
        }
        self.walk(child, &ObjectData::from_vec(decoded));
        Taken::Read
    }

    /// Walks a member spooled by [`Members::spool`].
    pub(crate) fn walk(&mut self, child: &str, data: &ObjectData) {
        self.walker.visit_member(child, self.depth + 1, data);
    }

    /// Names, admits and reads one member: [`Members::child`], [`Members::admit`] and
    /// [`Members::read`] together.
    pub(crate) fn member(
        &mut self,
        raw_name: &str,
        declared: Declared,
        reader: &mut dyn Read,
        consumed: Option<Consumed>,
    ) -> Taken {
        let child = self.child(raw_name);
        if !self.admit(&child, declared) {
            return Taken::Refused;
        }
        self.read(&child, reader, consumed)
    }

    /// A member the format already holds whole (a decoded string, a slice of the container).
    pub(crate) fn bytes(&mut self, raw_name: &str, mut bytes: &[u8]) -> Taken {
        self.member(
            raw_name,
            Declared::size(bytes.len() as u64),
            &mut bytes,
            None,
        )
    }
}

/// A file that lies at an offset in one decoded stream (a cabinet folder, a CHM's compressed
/// section), cut from it by [`Members::cut`].
#[derive(Debug, Clone)]
pub(crate) struct Slice {
    pub(crate) name: String,
    pub(crate) offset: u64,
    pub(crate) size: u64,
}

/// Reading through the same region of a stream twice (files that overlap, or listed out of
/// order) restarts its decoding; past this many restarts the container is refused as a bomb.
const MAX_RESTARTS: u32 = 16;

impl Members<'_> {
    /// Yields `files` cut from the stream that `open` decodes (`what` names it in messages):
    /// the stream is decoded once, in order of the files' offsets, so a container of many
    /// small files costs one pass. Gaps and refused files are decoded (and counted) but not
    /// kept; a file that starts before the end of the previous one restarts the decoding, at
    /// most [`MAX_RESTARTS`] times.
    pub(crate) fn cut<R: Read>(
        &mut self,
        what: &str,
        open: &mut dyn FnMut() -> std::io::Result<(R, Consumed)>,
        files: &mut [Slice],
    ) {
        if files.is_empty() {
            return;
        }
        files.sort_by_key(|f| f.offset);
        let (mut reader, mut consumed) = match open() {
            Ok(opened) => opened,
            Err(e) => return self.corrupt(what, e),
        };
        let mut position = 0u64;
        let mut restarts = 0;
        for file in files.iter() {
            if self.stopped() {
                return;
            }
            let child = self.child(&file.name);
            if !self.admit(&child, Declared::size(file.size)) {
                continue;
            }
            if file.offset < position {
                restarts += 1;
                if restarts > MAX_RESTARTS {
                    let message =
                        format!("files of the {what} overlap again and again, a bomb technique");
                    return self.member_problem(&child, Reason::Corrupt, message);
                }
                (reader, consumed) = match open() {
                    Ok(opened) => opened,
                    Err(e) => return self.corrupt(what, e),
                };
                position = 0;
            }
            // Skipped bytes still cost decoding, so they count against the budget and time.
            let gap = file.offset - position;
            let mut skipped = Capped::new((&mut reader).take(gap), self.walker.budget(), None);
            match std::io::copy(&mut skipped, &mut std::io::sink()) {
                Ok(skipped) if skipped == gap => {}
                Ok(_) => {
                    let message = format!("the file starts past the end of the {what}'s data");
                    self.member_problem(&child, Reason::Corrupt, message);
                    continue;
                }
                Err(e) => {
                    if !self.limit_in(&e) {
                        let message = format!("damaged {what} data: {e}");
                        self.member_problem(&child, Reason::Corrupt, message);
                    }
                    return;
                }
            }
            let mut exact = Exact::new((&mut reader).take(file.size), file.size);
            let taken = self.read(&child, &mut exact, Some(consumed.clone()));
            position = file.offset + file.size;
            if taken == Taken::Broken {
                return;
            }
        }
    }
}

/// Why a member could not be spooled.
enum MemberError {
    Limit(Limit),
    /// The stream broke part-way; what was decoded before the break is kept so it can still be
    /// scanned (a truncated archive can still carry a detectable payload).
    Corrupt {
        partial: Option<ObjectData>,
        message: String,
    },
    Spool(String),
    /// The decoder would need more memory than it may have.
    TooMuchMemory(String),
}

fn spool_capped(
    reader: &mut dyn Read,
    consumed: Option<Consumed>,
    expected: Option<u64>,
    budget: &Budget,
    config: &SpoolPolicy,
) -> Result<ObjectData, MemberError> {
    let mut capped = Capped::new(reader, budget, consumed);
    let mut spool = Spool::new(config, None);
    if let Some(size) = expected {
        spool.expect(size);
    }
    loop {
        match spool.read_from(&mut capped, &mut |_| {}) {
            Ok(0) => break,
            Ok(_) => {}
            Err(SpoolError::Read(e)) => {
                if let Some(limit) = LimitHit::from_io(&e) {
                    return Err(MemberError::Limit(limit));
                }
                if e.kind() == std::io::ErrorKind::OutOfMemory {
                    return Err(MemberError::TooMuchMemory(e.to_string()));
                }
                let partial = spool.finish().ok().filter(|p| !p.is_empty());
                return Err(MemberError::Corrupt {
                    partial,
                    message: e.to_string(),
                });
            }
            Err(SpoolError::Write(e)) => return Err(MemberError::Spool(e.to_string())),
            Err(SpoolError::TooLarge(_)) => return Err(MemberError::Limit(Limit::MaxFileSize)),
        }
    }
    spool
        .finish()
        .map_err(|e| MemberError::Spool(e.to_string()))
}

/// A member whose size its container declared (ar, cpio, tar): ending before that size is an
/// error, not an end, so a cut archive is reported damaged and never taken for whole.
pub(crate) struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Exact<R> {
    pub(crate) fn new(inner: R, size: u64) -> Self {
        Exact { inner, left: size }
    }
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        if read == 0 && self.left > 0 && !buf.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "the member ends {} bytes short of its declared size",
                    self.left
                ),
            ));
        }
        self.left = self.left.saturating_sub(read as u64);
        Ok(read)
    }
}

fn join(parent: &str, name: &str) -> String {
    format!("{parent}/{name}")
}

/// A member's name as shown in paths: control characters replaced so a hostile name cannot
/// forge log lines or report paths; an empty name replaced by its index.
fn member_name(raw: &str, index: usize) -> String {
    // `./usr/bin/x` (how cpio and tar name what was archived from `.`) is `usr/bin/x`.
    let mut raw = raw;
    while let Some(rest) = raw.strip_prefix("./") {
        raw = rest;
    }
    let cleaned: String = raw
        .trim_end_matches('/')
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if cleaned.is_empty() {
        format!("#{index}")
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names_cannot_carry_control_characters() {
        assert_eq!(member_name("evil\nname", 3), "evil?name");
        assert_eq!(member_name("", 3), "#3");
        assert_eq!(member_name("dir/", 0), "dir");
        assert_eq!(member_name("././usr/bin/x", 0), "usr/bin/x");
        assert_eq!(member_name("./", 4), "#4");
    }
}
