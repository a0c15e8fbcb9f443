//! Recursive expansion: walks the tree of an object and its members, hands every node to the
//! engines that want it, and records what could not be examined. The walker alone owns limits,
//! depth, paths, problems and engines; each carrier format (`crate::formats`) only yields its
//! members through [`Members`], which borrows the walker as a [`Walk`]. Runs on one blocking thread per scan, with a second one at a time
//! for a large object's engines ([`Walker::overlapped`]); every decoded byte passes through
//! [`crate::decompress::Capped`].

use std::sync::Arc;

use crate::decompress::Budget;
use crate::engine::{Engine, EngineError, ScanObject, Scope};
use crate::filetype::{self, FileType};
use crate::formats;
use crate::formats::members::{Declared, Members, Walk};
use crate::landmarks::{LandmarkKind, Landmarks};
use crate::limits::Limit;
use crate::spool::{ObjectData, SpoolPolicy};
use crate::verdict::{Detection, EngineSummary, Problem, Reason};

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
        self.visit(name, 0, root, sha256);
        self.out.bytes_expanded = self.budget.expanded.get();
        self.out
    }

    fn visit(
        &mut self,
        path: &str,
        depth: u32,
        object_data: &ObjectData,
        sha256: Option<&[u8; 32]>,
    ) {
        if self.stopped {
            return;
        }
        if let Err(hit) = self.budget.check_time() {
            return self.limit(path, hit.0);
        }
        let data = object_data.as_slice();
        let format = formats::identify(data, object_data.seen().script);
        let file_type = match format {
            Some(format) => FileType::Container(format.name),
            None => filetype::detect_unsupported(data),
        };
        // An object no format opens is searched for embedded carriers after its engines ran;
        // one of them may have found the landmarks that search starts from on its own pass.
        let landmarks = Landmarks::default();
        let object = ScanObject {
            path,
            depth,
            data,
            file_type,
            sha256,
            landmarks: format.is_none().then_some(&landmarks),
        };
        let wanted = self.engines_for(&object);
        if wanted.is_empty() {
            self.open(path, depth, data, format, file_type, None);
        } else if data.len() < OVERLAP_FROM || self.overlapping {
            let results = scan_with(self.engines, &self.handle, &wanted, &object);
            self.record(path, &wanted, results);
            self.open(path, depth, data, format, file_type, landmarks.found());
        } else {
            // The opening runs beside the engines, before they could report anything.
            let object = ScanObject {
                landmarks: None,
                ..object
            };
            self.overlapped(&object, &wanted, format);
        }
    }

    /// What is left of a visit once the engines have the object: its members, or the carriers
    /// embedded in it (searched from `landmarks` when an engine reported them).
    fn open(
        &mut self,
        path: &str,
        depth: u32,
        data: &[u8],
        format: Option<&'static formats::Format>,
        file_type: FileType,
        landmarks: Option<&[(usize, LandmarkKind)]>,
    ) {
        if let FileType::UnsupportedArchive(name) = file_type {
            self.problem(
                path,
                Reason::Unsupported,
                format!("{name} archives are not unpacked, so their contents were not examined"),
            );
        }
        let Some(format) = format else {
            return self.embedded(path, depth, data, landmarks);
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
                    self.open(path, depth, data, format, object.file_type, None);
                    running.join()
                }
                Err(error) => {
                    tracing::debug!(%error, "no thread for the engines; they run first");
                    let results = scan_with(engines, &handle, wanted, object);
                    self.open(path, depth, data, format, object.file_type, None);
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
    fn members<'w>(&'w mut self, path: &'w str, depth: u32) -> Option<Members<'w>> {
        if depth >= self.budget.limits.max_depth {
            self.limit(path, Limit::MaxRecursion);
            return None;
        }
        Some(Members::new(self, path, depth))
    }

    /// Carriers that start inside an object no format opens (an archive in an executable, a
    /// zip appended to an image): each is walked as `<path>@<offset>`.
    fn embedded(
        &mut self,
        path: &str,
        depth: u32,
        data: &[u8],
        landmarks: Option<&[(usize, LandmarkKind)]>,
    ) {
        if let Some(message) = formats::embedded::unopened(data) {
            self.problem(path, Reason::Unsupported, message.to_owned());
        }
        let offsets = formats::embedded::find(data, landmarks);
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
                let reason = Reason::Declined {
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
                Err(EngineError::Declined(why)) => {
                    summary.objects_skipped += 1;
                    let reason = Reason::Declined {
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
}

/// What the formats' [`Members`] borrow of the walk.
impl Walk for Walker<'_> {
    fn budget(&self) -> &Budget {
        &self.budget
    }

    fn spool_policy(&self) -> &SpoolPolicy {
        self.spool
    }

    fn stopped(&self) -> bool {
        self.stopped
    }

    fn stop(&mut self) {
        self.stopped = true;
    }

    fn objects(&self) -> u64 {
        self.out.objects
    }

    fn count_object(&mut self) -> u64 {
        self.out.objects += 1;
        self.out.objects
    }

    fn visit_member(&mut self, path: &str, depth: u32, data: &ObjectData) {
        self.visit(path, depth, data, None);
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
