//! Recursive expansion: walks the tree of an object and its archive members, hands every node
//! to the engines that want it, and records what could not be examined. Runs on one blocking
//! thread per scan; every decoded byte passes through [`crate::decompress::Capped`].

use std::io::{Cursor, Read};
use std::sync::Arc;

use sevenz_rust2::{ArchiveReader, EntryDecision, Password};
use zip::ZipArchive;
use zip::result::ZipError;

use crate::decompress::{Budget, Capped, Consumed, Counting, LimitHit, stream_decoder};
use crate::engine::{Engine, EngineError, ScanObject, Scope};
use crate::filetype::{self, FileType};
use crate::input::{ObjectData, Spool, SpoolConfig, SpoolError};
use crate::limits::Limit;
use crate::verdict::{Detection, EngineSummary, Problem, Reason};

/// 7z decoders may allocate dictionaries and models up to this much (KiB); larger ones are
/// refused rather than allocated.
const SEVENZ_MEMORY_LIMIT_KB: usize = 256 * 1024;
/// The most memory any one decoder may ask for (an LZMA dictionary, say), in bytes; the same
/// bound as 7z's. Standard presets need at most 64 MiB.
pub(crate) const DECODER_MEMORY_LIMIT: u64 = 256 << 20;

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
    spool: &'s SpoolConfig,
    handle: tokio::runtime::Handle,
    budget: Budget,
    stopped: bool,
    out: Outcome,
}

impl<'s> Walker<'s> {
    pub(crate) fn new(
        engines: &'s [Arc<dyn Engine>],
        spool: &'s SpoolConfig,
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
            out: Outcome {
                engines: engine_summaries,
                ..Outcome::default()
            },
        }
    }

    /// Walks the whole tree under `root` and returns what was found.
    pub(crate) fn run(mut self, name: &str, root: &ObjectData, sha256: &[u8; 32]) -> Outcome {
        self.out.objects = 1;
        self.visit(name, 0, root.as_slice(), Some(sha256));
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
        let file_type = filetype::detect(data);
        self.run_engines(&ScanObject {
            path,
            depth,
            data,
            file_type,
            sha256,
        });
        match file_type {
            FileType::Other => {}
            FileType::UnsupportedArchive(name) => self.problem(
                path,
                Reason::Unsupported,
                format!("{name} archives are not unpacked, so their contents were not examined"),
            ),
            _ if depth >= self.budget.limits.max_depth => self.limit(path, Limit::MaxRecursion),
            FileType::Zip => self.expand_zip(path, depth, data),
            FileType::Tar => self.expand_tar(path, depth, data),
            FileType::Ar => self.expand_ar(path, depth, data),
            FileType::Cpio => self.expand_cpio(path, depth, data),
            FileType::Ole => self.expand_ole(path, depth, data),
            FileType::SevenZ => self.expand_7z(path, depth, data),
            stream => self.expand_stream(path, depth, data, stream),
        }
    }

    fn run_engines(&mut self, object: &ScanObject<'_>) {
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
        if wanted.is_empty() {
            return;
        }
        // In-process engines complete on their first poll, so this costs them nothing; network
        // engines (clamd, ICAP) run concurrently with each other.
        let engines = self.engines;
        let scans = wanted.iter().map(|&i| engines[i].scan(object));
        let results = self.handle.block_on(futures::future::join_all(scans));
        for (&i, result) in wanted.iter().zip(results) {
            let engine = self.engines[i].name();
            let summary = &mut self.out.engines[i];
            match result {
                Ok(findings) => {
                    summary.objects_scanned += 1;
                    summary.detections += findings.len() as u64;
                    for finding in findings {
                        tracing::debug!(path = object.path, engine, name = %finding.name, "detection");
                        self.out.detections.push(Detection {
                            path: object.path.to_owned(),
                            name: finding.name,
                            engine: engine.to_owned(),
                        });
                    }
                }
                Err(EngineError::NotExamined(why)) => {
                    summary.objects_skipped += 1;
                    let reason = Reason::NotExamined {
                        engine: engine.to_owned(),
                    };
                    self.problem(
                        object.path,
                        reason,
                        format!("not examined by engine {engine}: {why}"),
                    );
                }
                Err(err) => {
                    summary.errors += 1;
                    tracing::warn!(path = object.path, engine, error = %err, "engine failed");
                    let reason = Reason::EngineError {
                        engine: engine.to_owned(),
                    };
                    self.problem(
                        object.path,
                        reason,
                        format!("engine {engine} failed: {err}"),
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

    /// Counts one more object against the scan's file limit; false when the limit is hit.
    fn admit(&mut self, path: &str) -> bool {
        if self.stopped {
            return false;
        }
        self.out.objects += 1;
        if self.out.objects > self.budget.limits.max_files {
            self.limit(path, Limit::MaxFiles);
            return false;
        }
        true
    }

    /// Refuses a member before decoding it when its declared sizes already break a limit.
    fn declared_ok(&mut self, path: &str, size: u64, compressed: Option<u64>) -> bool {
        let limits = &self.budget.limits;
        let limit = if size > limits.max_file_size {
            Some(Limit::MaxFileSize)
        } else if self.budget.expanded.get().saturating_add(size) > limits.max_scan_size {
            Some(Limit::MaxScanSize)
        } else if let Some(compressed) = compressed
            && size > limits.ratio_floor
            && size / compressed.max(1) > limits.max_ratio
        {
            Some(Limit::MaxCompressionRatio)
        } else if self
            .budget
            .overall_ratio_exceeded(self.budget.expanded.get().saturating_add(size))
        {
            Some(Limit::MaxCompressionRatio)
        } else {
            None
        };
        match limit {
            Some(limit) => {
                self.limit(path, limit);
                false
            }
            None => true,
        }
    }

    /// Decodes one member into a spool, through the caps.
    fn spool_member(
        &mut self,
        reader: &mut dyn Read,
        consumed: Option<Consumed>,
    ) -> Result<ObjectData, MemberError> {
        spool_capped(reader, consumed, &self.budget, self.spool)
    }

    /// Spools a member and visits it, recording what went wrong. Returns false when the member
    /// could not even be read to its end (the container's reader is then unusable).
    fn member(
        &mut self,
        path: &str,
        depth: u32,
        reader: &mut dyn Read,
        consumed: Option<Consumed>,
    ) -> bool {
        match self.spool_member(reader, consumed) {
            Ok(child) => {
                self.visit(path, depth, child.as_slice(), None);
                true
            }
            Err(MemberError::Limit(limit)) => {
                self.limit(path, limit);
                false
            }
            Err(MemberError::Corrupt { partial, message }) => {
                self.problem(
                    path,
                    Reason::Corrupt,
                    format!("damaged or truncated data: {message}"),
                );
                if let Some(partial) = partial {
                    self.visit(path, depth, partial.as_slice(), None);
                }
                false
            }
            Err(MemberError::TooMuchMemory(message)) => {
                let message = format!(
                    "the decoder would need more than {} MiB of memory ({message}), so it was not examined",
                    DECODER_MEMORY_LIMIT >> 20
                );
                self.problem(path, Reason::Unsupported, message);
                false
            }
            Err(MemberError::Spool(message)) => {
                let message = format!("could not spool the member: {message}");
                self.problem(path, Reason::Failed, message);
                self.stopped = true;
                false
            }
        }
    }

    fn expand_zip(&mut self, path: &str, depth: u32, data: &[u8]) {
        let (counting, consumed) = Counting::new(Cursor::new(data));
        let mut archive = match ZipArchive::new(counting) {
            Ok(archive) => archive,
            Err(e) => return self.zip_error(path, &e),
        };
        if self.out.objects.saturating_add(archive.len() as u64) > self.budget.limits.max_files {
            return self.limit(path, Limit::MaxFiles);
        }
        match archive.has_overlapping_entries() {
            Ok(false) => {}
            Ok(true) => return self.limit(path, Limit::ZipOverlappingEntries),
            Err(e) => return self.zip_error(path, &e),
        }
        if let Err(e) = archive.validate_header_consistency() {
            // Mismatched local and central headers or hidden entries: tools disagree on what the
            // archive holds. Scan what the central directory lists, but never call it clean.
            self.zip_error(path, &e);
        }
        for index in 0..archive.len() {
            if self.stopped {
                return;
            }
            let (name, is_dir, encrypted, size, compressed_size, method, lzma_dict) =
                match archive.by_index_raw(index) {
                    Ok(mut raw) => (
                        member_name(&raw.name().unwrap_or_default(), index),
                        raw.is_dir(),
                        raw.encrypted(),
                        raw.size(),
                        raw.compressed_size(),
                        raw.compression(),
                        if raw.compression() == zip::CompressionMethod::Lzma {
                            lzma_dictionary(&mut raw)
                        } else {
                            None
                        },
                    ),
                    Err(e) => {
                        self.zip_error(&format!("{path}/#{index}"), &e);
                        continue;
                    }
                };
            let child = join(path, &name);
            // A "directory" that carries bytes is a place to hide them: only empty ones are
            // skipped.
            if is_dir && size == 0 {
                continue;
            }
            if encrypted {
                self.problem(
                    &child,
                    Reason::Encrypted,
                    "the member is encrypted, so it could not be examined".to_owned(),
                );
                continue;
            }
            if !self.admit(&child) || !self.declared_ok(&child, size, Some(compressed_size)) {
                continue;
            }
            if let Some(dict) = lzma_dict.filter(|d| u64::from(*d) > DECODER_MEMORY_LIMIT) {
                // The decoder would allocate the whole dictionary up front.
                let message = format!(
                    "the LZMA member wants a {dict}-byte dictionary, over the decoder memory limit, so it was not examined"
                );
                self.problem(&child, Reason::Unsupported, message);
                continue;
            }
            if method == zip::CompressionMethod::Xz {
                // Decoded by our own xz reader, which has a memory limit the zip crate's lacks;
                // xz carries its own checksums.
                let decoded = archive
                    .by_index_raw(index)
                    .map_err(|e| e.to_string())
                    .and_then(|raw| stream_decoder(FileType::Xz, raw).map_err(|e| e.to_string()));
                match decoded {
                    Ok(mut decoder) => {
                        self.member(&child, depth + 1, &mut decoder, Some(consumed.clone()));
                    }
                    Err(e) => {
                        let message = format!("cannot decode the xz member: {e}");
                        self.problem(&child, Reason::Corrupt, message);
                    }
                }
                continue;
            }
            let mut file = match archive.by_index(index) {
                Ok(file) => file,
                Err(e) => {
                    self.zip_error(&child, &e);
                    continue;
                }
            };
            let stored = file.compression() == zip::CompressionMethod::Stored;
            self.member(
                &child,
                depth + 1,
                &mut file,
                (!stored).then(|| consumed.clone()),
            );
        }
    }

    fn zip_error(&mut self, path: &str, err: &ZipError) {
        let (reason, message) = match err {
            ZipError::UnsupportedArchive(msg) if *msg == ZipError::PASSWORD_REQUIRED => (
                Reason::Encrypted,
                "the member is encrypted, so it could not be examined".into(),
            ),
            ZipError::InvalidPassword => (
                Reason::Encrypted,
                "the member is encrypted, so it could not be examined".into(),
            ),
            ZipError::CompressionMethodNotSupported(method) => (
                Reason::Unsupported,
                format!("zip compression method {method} is not supported, so it was not examined"),
            ),
            ZipError::UnsupportedArchive(msg) => (
                Reason::Unsupported,
                format!("unsupported zip feature: {msg}"),
            ),
            ZipError::Io(io) => match LimitHit::from_io(io) {
                Some(limit) => return self.limit(path, limit),
                None => (Reason::Corrupt, format!("damaged or truncated zip: {io}")),
            },
            other => (
                Reason::Corrupt,
                format!("damaged or truncated zip: {other}"),
            ),
        };
        self.problem(path, reason, message);
    }

    fn expand_tar(&mut self, path: &str, depth: u32, data: &[u8]) {
        let mut archive = tar::Archive::new(Cursor::new(data));
        let entries = match archive.entries() {
            Ok(entries) => entries,
            Err(e) => return self.problem(path, Reason::Corrupt, format!("damaged tar: {e}")),
        };
        for (index, entry) in entries.enumerate() {
            if self.stopped {
                return;
            }
            let mut entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    // The tar crate cannot resynchronise after a bad header.
                    return self.problem(path, Reason::Corrupt, format!("damaged tar: {e}"));
                }
            };
            let kind = entry.header().entry_type();
            if !(kind.is_file() || kind.is_contiguous() || kind.is_gnu_sparse()) {
                continue;
            }
            let name = member_name(&String::from_utf8_lossy(&entry.path_bytes()), index);
            let child = join(path, &name);
            if !self.admit(&child) || !self.declared_ok(&child, entry.size(), None) {
                continue;
            }
            if !self.member(&child, depth + 1, &mut entry, None) {
                return;
            }
        }
    }

    fn expand_ar(&mut self, path: &str, depth: u32, data: &[u8]) {
        let mut archive = ar::Archive::new(Cursor::new(data));
        let mut index = 0;
        while let Some(entry) = archive.next_entry() {
            if self.stopped {
                return;
            }
            let mut entry = match entry {
                Ok(entry) => entry,
                Err(e) => return self.problem(path, Reason::Corrupt, format!("damaged ar: {e}")),
            };
            let name = member_name(&String::from_utf8_lossy(entry.header().identifier()), index);
            index += 1;
            let child = join(path, &name);
            if !self.admit(&child) || !self.declared_ok(&child, entry.header().size(), None) {
                continue;
            }
            let size = entry.header().size();
            if !self.member(
                &child,
                depth + 1,
                &mut Declared::new(&mut entry, size),
                None,
            ) {
                return;
            }
        }
    }

    fn expand_cpio(&mut self, path: &str, depth: u32, data: &[u8]) {
        const TYPE_MASK: u32 = 0o170000;
        const REGULAR: u32 = 0o100000;
        let mut cursor = Cursor::new(data);
        for index in 0.. {
            if self.stopped {
                return;
            }
            let mut entry = match cpio::newc::Reader::new(cursor) {
                Ok(entry) => entry,
                Err(e) => {
                    return self.problem(path, Reason::Corrupt, format!("damaged cpio: {e}"));
                }
            };
            if entry.entry().is_trailer() {
                return;
            }
            let (mode, size) = (entry.entry().mode(), entry.entry().file_size());
            if mode & TYPE_MASK == REGULAR && size > 0 {
                let child = join(path, &member_name(entry.entry().name(), index));
                if self.admit(&child)
                    && self.declared_ok(&child, u64::from(size), None)
                    && !self.member(
                        &child,
                        depth + 1,
                        &mut Declared::new(&mut entry, u64::from(size)),
                        None,
                    )
                {
                    return;
                }
            }
            cursor = match entry.finish() {
                Ok(cursor) => cursor,
                Err(e) => {
                    return self.problem(path, Reason::Corrupt, format!("damaged cpio: {e}"));
                }
            };
        }
    }

    fn expand_ole(&mut self, path: &str, depth: u32, data: &[u8]) {
        let mut file = match cfb::CompoundFile::open(Cursor::new(data)) {
            Ok(file) => file,
            Err(e) => {
                let message = format!("damaged OLE compound file: {e}");
                return self.problem(path, Reason::Corrupt, message);
            }
        };
        let streams: Vec<(std::path::PathBuf, u64)> = file
            .walk()
            .filter(|entry| entry.is_stream())
            .map(|entry| (entry.path().to_owned(), entry.len()))
            .collect();
        for (index, (stream_path, size)) in streams.into_iter().enumerate() {
            if self.stopped {
                return;
            }
            let raw = stream_path.to_string_lossy();
            let child = join(path, &member_name(raw.trim_start_matches('/'), index));
            if !self.admit(&child) || !self.declared_ok(&child, size, None) {
                continue;
            }
            match file.open_stream(&stream_path) {
                // Streams are independent: one that cannot be read does not end the others.
                Ok(mut stream) => {
                    self.member(&child, depth + 1, &mut stream, None);
                }
                Err(e) => {
                    let message = format!("damaged OLE stream: {e}");
                    self.problem(&child, Reason::Corrupt, message);
                }
            }
        }
    }

    fn expand_7z(&mut self, path: &str, depth: u32, data: &[u8]) {
        let (counting, consumed) = Counting::new(Cursor::new(data));
        let mut reader = match ArchiveReader::new_with_memory_limit(
            counting,
            Password::empty(),
            SEVENZ_MEMORY_LIMIT_KB,
        ) {
            Ok(reader) => reader,
            Err(e) => return self.sevenz_error(path, e),
        };
        // The walk already runs on its own blocking thread; decoder threads would only compete.
        reader.set_thread_count(1);
        let files = reader
            .archive()
            .files
            .iter()
            .filter(|f| f.has_stream)
            .count() as u64;
        if self.out.objects.saturating_add(files) > self.budget.limits.max_files {
            return self.limit(path, Limit::MaxFiles);
        }
        let mut index = 0usize;
        let result = reader.for_each_entries_with_decision(|entry, reader| {
            index += 1;
            if self.stopped {
                return Ok(EntryDecision::Stop);
            }
            if entry.is_directory || !entry.has_stream {
                return Ok(EntryDecision::Continue);
            }
            let child = join(path, &member_name(&entry.name, index - 1));
            let compressed = (entry.compressed_size > 0).then_some(entry.compressed_size);
            if !self.admit(&child) {
                return Ok(EntryDecision::Stop);
            }
            // Skipping (not draining) the rest of the block keeps a refused member from being
            // decoded anyway; the refusal is already recorded, so the verdict is not Clean.
            if !self.declared_ok(&child, entry.size, compressed) {
                return Ok(EntryDecision::SkipBlock);
            }
            Ok(
                if self.member(&child, depth + 1, reader, Some(consumed.clone())) {
                    EntryDecision::Continue
                } else {
                    EntryDecision::SkipBlock
                },
            )
        });
        if let Err(e) = result {
            self.sevenz_error(path, e);
        }
    }

    fn sevenz_error(&mut self, path: &str, err: sevenz_rust2::Error) {
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
            E::Io(io, _) if LimitHit::from_io(&io).is_some() => {
                if let Some(limit) = LimitHit::from_io(&io) {
                    self.limit(path, limit);
                }
                return;
            }
            other => (Reason::Corrupt, format!("damaged or truncated 7z: {other}")),
        };
        self.problem(path, reason, message);
    }

    fn expand_stream(&mut self, path: &str, depth: u32, data: &[u8], format: FileType) {
        let name = stream_member_name(path, data, format);
        let child = join(path, &name);
        if !self.admit(&child) {
            return;
        }
        let (counting, consumed) = Counting::new(Cursor::new(data));
        let mut decoder = match stream_decoder(format, counting) {
            Ok(decoder) => decoder,
            Err(e) => {
                let message = format!("cannot decode {}: {e}", format.name());
                return self.problem(path, Reason::Corrupt, message);
            }
        };
        self.member(&child, depth + 1, &mut decoder, Some(consumed));
    }
}

fn spool_capped(
    reader: &mut dyn Read,
    consumed: Option<Consumed>,
    budget: &Budget,
    config: &SpoolConfig,
) -> Result<ObjectData, MemberError> {
    let mut capped = Capped::new(reader, budget, consumed);
    let mut spool = Spool::new(config, None);
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
struct Declared<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Declared<R> {
    fn new(inner: R, size: u64) -> Self {
        Declared { inner, left: size }
    }
}

impl<R: Read> Read for Declared<R> {
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

/// The dictionary size of a zip LZMA member, from its raw data: a 2-byte version, a 2-byte
/// properties length (5), then the properties byte and the dictionary size (little-endian).
fn lzma_dictionary(raw: &mut dyn Read) -> Option<u32> {
    let mut header = [0u8; 9];
    raw.read_exact(&mut header).ok()?;
    Some(u32::from_le_bytes([
        header[5], header[6], header[7], header[8],
    ]))
}

fn join(parent: &str, name: &str) -> String {
    format!("{parent}/{name}")
}

/// A member's name as shown in paths: control characters replaced so a hostile name cannot
/// forge log lines or report paths; an empty name replaced by its index.
fn member_name(raw: &str, index: usize) -> String {
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

/// The name of a compressed stream's content: gzip's stored name when there is one, else the
/// parent's name without its compression suffix.
fn stream_member_name(parent_path: &str, data: &[u8], format: FileType) -> String {
    if format == FileType::Gzip
        && let Some(name) = gzip_stored_name(data)
    {
        return member_name(&name, 0);
    }
    let parent = parent_path.rsplit('/').next().unwrap_or(parent_path);
    let lower = parent.to_ascii_lowercase();
    let suffixes: &[(&str, &str)] = match format {
        FileType::Gzip => &[(".tgz", ".tar"), (".gz", ""), (".z", "")],
        FileType::Bzip2 => &[(".tbz2", ".tar"), (".tbz", ".tar"), (".bz2", "")],
        FileType::Xz => &[(".txz", ".tar"), (".xz", "")],
        FileType::Zstd => &[(".tzst", ".tar"), (".zst", "")],
        FileType::Lz4 => &[(".tlz4", ".tar"), (".lz4", "")],
        _ => &[],
    };
    for (suffix, replacement) in suffixes {
        if lower.ends_with(suffix) && lower.len() > suffix.len() {
            return format!("{}{replacement}", &parent[..parent.len() - suffix.len()]);
        }
    }
    format!("{parent}.{}-decoded", format.name())
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
            stream_member_name("a/b.tar.gz", b"\x1f\x8b\x08\0", FileType::Gzip),
            "b.tar"
        );
        assert_eq!(
            stream_member_name("x.TGZ", b"\x1f\x8b\x08\0", FileType::Gzip),
            "x.tar"
        );
        assert_eq!(stream_member_name("x.txz", b"", FileType::Xz), "x.tar");
        assert_eq!(
            stream_member_name("blob", b"", FileType::Zstd),
            "blob.zstd-decoded"
        );
    }

    #[test]
    fn gzip_stored_name_is_used_when_present() {
        let mut header = b"\x1f\x8b\x08\x08\0\0\0\0\0\x03".to_vec();
        header.extend_from_slice(b"dir/report.pdf\0");
        assert_eq!(
            stream_member_name("upload.bin", &header, FileType::Gzip),
            "report.pdf"
        );
    }

    #[test]
    fn member_names_cannot_carry_control_characters() {
        assert_eq!(member_name("evil\nname", 3), "evil?name");
        assert_eq!(member_name("", 3), "#3");
        assert_eq!(member_name("dir/", 0), "dir");
    }
}
