//! Recursive expansion: walks the tree of an object and its members, hands every node to the
//! engines that want it, and records what could not be examined. The walker alone owns limits,
//! depth, paths, problems and engines; each carrier format (`crate::formats`) only yields its
//! members through [`Members`]. Runs on one blocking thread per scan, with a second one at a time
//! for a large object's engines ([`Walker::overlapped`]); every decoded byte passes through
//! [`crate::decompress::Capped`].

use std::io::Read;
use std::sync::Arc;

use crate::decompress::{Budget, Capped, Consumed, LimitHit};
use crate::engine::{Engine, EngineError, ScanObject, Scope};
use crate::filetype::{self, FileType};
use crate::formats;
use crate::limits::{Limit, Limits};
use crate::spool::{ObjectData, Spool, SpoolError, SpoolPolicy};
use crate::verdict::{Detection, EngineSummary, Problem, Reason};

/// The most memory any one decoder may ask for (an LZMA dictionary, say), in bytes; the same
/// bound as 7z's. Standard presets need at most 64 MiB.
pub(crate) const DECODER_MEMORY_LIMIT: u64 = 256 << 20;

/// Objects this large or larger have their engines run beside their opening (see
/// [`Walker::overlapped`]); below it a thread costs more than it saves.
const OVERLAP_FROM: usize = 16 << 20;

/// The `wanted` engines' results for `object`, in the same order. In-process engines complete
/// on their first poll, so this costs them nothing; network engines (clamd, ICAP) run
/// concurrently with each other.
fn scan_with(
    engines: &[Arc<dyn Engine>],
    handle: &tokio::runtime::Handle,
    wanted: &[usize],
    object: &ScanObject<'_>,
) -> Vec<Result<Vec<Detection>, EngineError>> {
    let scans = wanted.iter().map(|&i| engines[i].scan(object));
    handle.block_on(futures::future::join_all(scans))
}

/// What a walk found; turned into a [`crate::Report`] by the scanner.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) detections: Vec<Detection>,
    pub(crate) problems: Vec<Problem>,
    pub(crate) engines: Vec<EngineSummary>,
    pub(crate) objects: u64,
    pub(crate) bytes_expanded: u64,
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

pub(crate) struct Walker<'s> {
    engines: &'s [Arc<dyn Engine>],
    spool: &'s SpoolPolicy,
    handle: tokio::runtime::Handle,
    budget: Budget,
    stopped: bool,
    /// Whether an object's engines are running on a thread of their own (see
    /// [`Walker::overlapped`]).
    overlapping: bool,
    out: Outcome,
}

impl<'s> Walker<'s> {
    pub(crate) fn new(
        engines: &'s [Arc<dyn Engine>],
        spool: &'s SpoolPolicy,
        budget: Budget,
        handle: tokio::runtime::Handle,
    ) -> Self {
        let engine_summaries = engines
            .iter()
            .map(|e| EngineSummary {
                engine: e.name().to_owned(),
                ..EngineSummary::default()
            })
            .collect();
        Walker {
            engines,
            spool,
            handle,
            budget,
            stopped: false,
            overlapping: false,
            out: Outcome {
                engines: engine_summaries,
                ..Outcome::default()
            },
        }
    }

    /// Walks the whole tree under `root` and returns what was found.
    pub(crate) fn run(
        mut self,
        name: &str,
        root: &ObjectData,
        sha256: Option<&[u8; 32]>,
    ) -> Outcome {
        self.out.objects = 1;
        self.visit(name, 0, root.as_slice(), sha256);
        self.out.bytes_expanded = self.budget.expanded.get();
        self.out
    }

    fn visit(&mut self, path: &str, depth: u32, data: &[u8], sha256: Option<&[u8; 32]>) {
        if self.stopped {
            return;
        }
        if let Err(hit) = self.budget.check_time() {
            return self.limit(path, hit.0);
        }
        let format = formats::identify(data);
        let file_type = match format {
            Some(format) => FileType::Container(format.name),
            None => filetype::detect_unsupported(data),
        };
        let object = ScanObject {
            path,
            depth,
            data,
            file_type,
            sha256,
        };
        let wanted = self.engines_for(&object);
        if wanted.is_empty() {
            self.open(path, depth, data, format, file_type);
        } else if data.len() < OVERLAP_FROM || self.overlapping {
            let results = scan_with(self.engines, &self.handle, &wanted, &object);
            self.record(path, &wanted, results);
            self.open(path, depth, data, format, file_type);
        } else {
            self.overlapped(&object, &wanted, format);
        }
    }

    /// What is left of a visit once the engines have the object: its members, or the carriers
    /// embedded in it.
    fn open(
        &mut self,
        path: &str,
        depth: u32,
        data: &[u8],
        format: Option<&'static formats::Format>,
        file_type: FileType,
    ) {
        if let FileType::UnsupportedArchive(name) = file_type {
            self.problem(
                path,
                Reason::Unsupported,
                format!("{name} archives are not unpacked, so their contents were not examined"),
            );
        }
        let Some(format) = format else {
            return self.embedded(path, depth, data);
        };
        if let Some(mut members) = self.members(path, depth) {
            (format.expand)(&mut members, data);
        }
    }

    /// A large object's engines run on a thread of their own while this one opens it, so it
    /// costs the longer of the two passes over its bytes, not their sum (a large member is
    /// read whole by YARA and again by the search for embedded carriers or by its format). What
    /// the engines find is recorded where it would have been had they run first, so reports
    /// read the same. One such thread per walk at a time: what lies inside runs in turn.
    fn overlapped(
        &mut self,
        object: &ScanObject<'_>,
        wanted: &[usize],
        format: Option<&'static formats::Format>,
    ) {
        let engines = self.engines;
        let handle = self.handle.clone();
        let (detections_before, problems_before) =
            (self.out.detections.len(), self.out.problems.len());
        self.overlapping = true;
        let results = std::thread::scope(|scope| {
            let running = std::thread::Builder::new()
                .name("verdict-engines".into())
                .spawn_scoped(scope, || scan_with(engines, &handle, wanted, object));
            let (path, depth, data) = (object.path, object.depth, object.data);
            match running {
                Ok(running) => {
                    self.open(path, depth, data, format, object.file_type);
                    running.join()
                }
                Err(error) => {
                    tracing::debug!(%error, "no thread for the engines; they run first");
                    let results = scan_with(engines, &handle, wanted, object);
                    self.open(path, depth, data, format, object.file_type);
                    Ok(results)
                }
            }
        });
        self.overlapping = false;
        let inside_detections = self.out.detections.split_off(detections_before);
        let inside_problems = self.out.problems.split_off(problems_before);
        match results {
            Ok(results) => self.record(object.path, wanted, results),
            Err(_) => {
                // A panic in an engine: the object was not examined by it, never clean.
                tracing::error!(path = object.path, "an engine panicked");
                self.problem(
                    object.path,
                    Reason::Failed,
                    "internal error while scanning; see the server log".to_owned(),
                );
            }
        }
        self.out.detections.extend(inside_detections);
        self.out.problems.extend(inside_problems);
    }

    /// The door for the members of the container at `path`, unless it is already as deep as
    /// the limit allows (recorded then).
    fn members<'w>(&'w mut self, path: &'w str, depth: u32) -> Option<Members<'w, 's>> {
        if depth >= self.budget.limits.max_depth {
            self.limit(path, Limit::MaxRecursion);
            return None;
        }
        Some(Members {
            walker: self,
            path,
            depth,
            next_index: 0,
            expected: None,
        })
    }

    /// Carriers that start inside an object no format opens (an archive in an executable, a
    /// zip appended to an image): each is walked as `<path>@<offset>`.
    fn embedded(&mut self, path: &str, depth: u32, data: &[u8]) {
        if let Some(message) = formats::embedded::unopened(data) {
            self.problem(path, Reason::Unsupported, message.to_owned());
        }
        let offsets = formats::embedded::find(data);
        let upx = formats::upx::packed(data);
        if offsets.is_empty() && upx.is_none() {
            return;
        }
        let Some(mut members) = self.members(path, depth) else {
            return;
        };
        if let Some(packed) = upx {
            formats::upx::unpack(&mut members, data, packed);
        }
        for (offset, len) in offsets {
            if members.stopped() {
                return;
            }
            let child = format!("{path}@{offset}");
            let mut carrier = &data[offset..offset + len];
            if members.admit(&child, Declared::size(len as u64)) {
                members.read(&child, &mut carrier, None);
            }
        }
    }

    /// The engines that take `object` (their indexes); those it is too large for are recorded
    /// as not having examined it.
    fn engines_for(&mut self, object: &ScanObject<'_>) -> Vec<usize> {
        let size = object.data.len() as u64;
        let mut wanted = Vec::with_capacity(self.engines.len());
        for (i, engine) in self.engines.iter().enumerate() {
            if engine.scope() == Scope::RootOnly && object.depth > 0 {
                continue;
            }
            if let Some(max) = engine.max_object_size()
                && size > max
            {
                self.out.engines[i].objects_skipped += 1;
                let message = format!(
                    "not examined by engine {}: {size} bytes is over its limit of {max} bytes",
                    engine.name()
                );
                let reason = Reason::NotExamined {
                    engine: engine.name().to_owned(),
                };
                self.problem(object.path, reason, message);
                continue;
            }
            wanted.push(i);
        }
        wanted
    }

    /// Records what the `wanted` engines (see [`scan_with`]) made of the object at `path`.
    fn record(
        &mut self,
        path: &str,
        wanted: &[usize],
        results: Vec<Result<Vec<Detection>, EngineError>>,
    ) {
        for (&i, result) in wanted.iter().zip(results) {
            let engine = self.engines[i].name();
            let summary = &mut self.out.engines[i];
            match result {
                Ok(detections) => {
                    summary.objects_scanned += 1;
                    summary.detections += detections.len() as u64;
                    for detection in detections {
                        tracing::debug!(path, engine, name = %detection.name, "detection");
                        self.out.detections.push(detection.at(path, engine));
                    }
                }
                Err(EngineError::NotExamined(why)) => {
                    summary.objects_skipped += 1;
                    let reason = Reason::NotExamined {
                        engine: engine.to_owned(),
                    };
                    self.problem(
                        path,
                        reason,
                        format!("not examined by engine {engine}: {why}"),
                    );
                }
                Err(err) => {
                    summary.errors += 1;
                    tracing::warn!(path, engine, error = %err, "engine failed");
                    let reason = Reason::EngineError {
                        engine: engine.to_owned(),
                    };
                    self.problem(
                        path,
                        reason,
                        format!("engine {engine} {}", err.public_message()),
                    );
                }
            }
        }
    }

    fn problem(&mut self, path: &str, reason: Reason, message: String) {
        tracing::debug!(path, ?reason, %message, "object not fully examined");
        self.out.problems.push(Problem {
            path: path.to_owned(),
            reason,
            message,
        });
    }

    fn limit(&mut self, path: &str, limit: Limit) {
        let message = match limit {
            Limit::MaxRecursion => format!(
                "archives are nested deeper than {} levels ({limit})",
                self.budget.limits.max_depth
            ),
            Limit::MaxFiles => format!(
                "more than {} files in one scan ({limit})",
                self.budget.limits.max_files
            ),
            Limit::MaxScanSize => format!(
                "expanding would produce more than {} bytes in one scan ({limit})",
                self.budget.limits.max_scan_size
            ),
            Limit::MaxFileSize => format!(
                "a member expands to more than {} bytes ({limit})",
                self.budget.limits.max_file_size
            ),
            Limit::MaxCompressionRatio => format!(
                "a member expands more than {} times its compressed size ({limit})",
                self.budget.limits.max_ratio
            ),
            Limit::MaxScanTime => format!(
                "the scan took longer than {:?} ({limit})",
                self.budget.limits.max_scan_time
            ),
            Limit::ZipOverlappingEntries => {
                format!("zip entries overlap, a zip bomb technique ({limit})")
            }
        };
        self.problem(path, Reason::LimitExceeded { limit }, message);
        if limit.ends_scan() {
            self.stopped = true;
        }
    }
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
pub(crate) struct Members<'w, 's> {
    walker: &'w mut Walker<'s>,
    path: &'w str,
    depth: u32,
    next_index: usize,
    /// The size the last admitted member declared: room made for it at once when it is read.
    expected: Option<u64>,
}

impl Members<'_, '_> {
    /// The container's own path, as reports show it.
    pub(crate) fn path(&self) -> &str {
        self.path
    }

    /// The scan's limits, for formats that bound their own bookkeeping by them.
    pub(crate) fn limits(&self) -> &Limits {
        &self.walker.budget.limits
    }

    /// Whether the scan has stopped (a scan-wide limit, a failed spool): formats end their loop.
    pub(crate) fn stopped(&self) -> bool {
        self.walker.stopped
    }

    /// Checks a member count the container declares up front (a zip's central directory) against
    /// the file limit, before anything is read. False (and recorded) when it is too many.
    pub(crate) fn expect(&mut self, count: u64) -> bool {
        let limit = self.walker.budget.limits.max_files;
        if self.walker.out.objects.saturating_add(count) > limit {
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
        if walker.stopped {
            return false;
        }
        walker.out.objects += 1;
        if walker.out.objects > walker.budget.limits.max_files {
            walker.limit(child, Limit::MaxFiles);
            return false;
        }
        let Some(size) = declared.size else {
            return true;
        };
        let budget = &walker.budget;
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
        match spool_capped(reader, consumed, expected, &walker.budget, walker.spool) {
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
                    walker.visit(child, depth, partial.as_slice(), None);
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
                walker.stopped = true;
                Err(Taken::Broken)
            }
        }
    }

    /// The most a member may take in memory before it is spooled to a file: a format that
    /// decodes a member whole, in one call, does so only up to this size.
    pub(crate) fn memory_room(&self) -> u64 {
        self.walker.spool.memory_threshold as u64
    }

    /// Walks an admitted member that its format decoded whole from `input` compressed bytes,
    /// counted against the limits as if it had been read through them.
    pub(crate) fn decoded(&mut self, child: &str, decoded: Vec<u8>, input: u64) -> Taken {
        let budget = &self.walker.budget;
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
        self.walker
            .visit(child, self.depth + 1, data.as_slice(), None);
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

impl Members<'_, '_> {
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
            let mut skipped = Capped::new((&mut reader).take(gap), &self.walker.budget, None);
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
