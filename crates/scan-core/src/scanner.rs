//! The `Scanner`: one road for every scan — input, expansion, engines, verdict.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use tokio::io::AsyncRead;

use crate::cache::{CacheKey, CachedVerdict, VerdictCache};
use crate::decompress::Budget;
use crate::engine::Engine;
use crate::engine_set::{ConfigError, EngineSet};
use crate::error::InputError;
use crate::expand::{Outcome, Walker};
use crate::filetype;
use crate::input::ScanInput;
use crate::limits::Limits;
use crate::spool::SpoolPolicy;
use crate::verdict::{Problem, Reason, Report, Timings};

/// A configured scanner. Cheap to clone; share one across a whole service. Clones share one
/// engine set, so a swap ([`Scanner::replace_engines`]) reaches every clone.
#[derive(Clone)]
pub struct Scanner {
    inner: Arc<Inner>,
}

struct Inner {
    /// The set new scans start with. A scan takes its own `Arc` and keeps it to the end.
    set: RwLock<Arc<EngineSet>>,
    limits: Limits,
    spool: SpoolPolicy,
    cache: Option<Arc<dyn VerdictCache>>,
    cache_counts: CacheCounts,
    sha256_on_demand: bool,
}

/// How the verdict cache has fared since start.
#[derive(Debug, Default)]
struct CacheCounts {
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
}

/// The verdict cache's counters since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Scans answered from the cache.
    pub hits: u64,
    /// Scans that found nothing cached and ran the engines.
    pub misses: u64,
    /// Reads or writes the cache failed (the scan then ran without it).
    pub errors: u64,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field("engines", &self.engine_set())
            .field("limits", &self.inner.limits)
            .field("spool", &self.inner.spool)
            .field("cache", &self.inner.cache.is_some())
            .finish()
    }
}

/// Builds a [`Scanner`].
#[derive(Default)]
pub struct ScannerBuilder {
    engines: Vec<Arc<dyn Engine>>,
    limits: Limits,
    spool: SpoolPolicy,
    cache: Option<Arc<dyn VerdictCache>>,
    sha256_on_demand: bool,
}

impl ScannerBuilder {
    /// Adds an engine.
    pub fn engine(mut self, engine: impl Engine + 'static) -> Self {
        self.engines.push(Arc::new(engine));
        self
    }

    /// Adds an engine that is shared with something else (a health endpoint, say).
    pub fn shared_engine(mut self, engine: Arc<dyn Engine>) -> Self {
        self.engines.push(engine);
        self
    }

    /// Adds several shared engines at once, in order (what `engines::build_engines` returns).
    pub fn engines(mut self, engines: impl IntoIterator<Item = Arc<dyn Engine>>) -> Self {
        self.engines.extend(engines);
        self
    }

    /// Sets the expansion limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets where and how objects are spooled.
    pub fn spool(mut self, spool: SpoolPolicy) -> Self {
        self.spool = spool;
        self
    }

    /// Keeps outcomes in `cache`, by content and fingerprint.
    pub fn cache(mut self, cache: Arc<dyn VerdictCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Hashes a root only where something needs its SHA-256 (a cache, a hash signature of its
    /// size) and leaves the report's `sha256` empty otherwise, unless it was computed while the
    /// input was read. For callers that do not show the hash (the CLI's plain output): a file
    /// scanned in place is then not hashed for nothing, which is most of the CPU a folder of
    /// plain files costs.
    pub fn sha256_on_demand(mut self) -> Self {
        self.sha256_on_demand = true;
        self
    }

    /// Checks the configuration and builds the scanner.
    pub fn build(self) -> Result<Scanner, ConfigError> {
        let set = EngineSet::new(self.engines)?;
        Ok(Scanner {
            inner: Arc::new(Inner {
                set: RwLock::new(Arc::new(set)),
                limits: self.limits,
                spool: self.spool,
                cache: self.cache,
                cache_counts: CacheCounts::default(),
                sha256_on_demand: self.sha256_on_demand,
            }),
        })
    }
}

impl Scanner {
    /// Starts building a scanner.
    pub fn builder() -> ScannerBuilder {
        ScannerBuilder::default()
    }

    /// The engine set new scans start with.
    pub fn engine_set(&self) -> Arc<EngineSet> {
        match self.inner.set.read() {
            Ok(set) => Arc::clone(&set),
            // A panic while swapping cannot leave a half-written Arc behind.
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The fingerprint of the engine set new scans start with.
    pub fn fingerprint(&self) -> String {
        self.engine_set().fingerprint().to_owned()
    }

    /// Makes `engines` the set every new scan starts with; scans in flight finish on the set
    /// they started with. Returns the new set.
    pub fn replace_engines(
        &self,
        engines: Vec<Arc<dyn Engine>>,
    ) -> Result<Arc<EngineSet>, ConfigError> {
        let set = Arc::new(EngineSet::new(engines)?);
        self.install(Arc::clone(&set));
        Ok(set)
    }

    /// Fingerprints the engines again on what they hold now (a remote engine reloaded its
    /// database); the set changes only when the fingerprint would. Returns whether it did.
    pub fn refresh_fingerprint(&self) -> bool {
        let current = self.engine_set();
        if !current.is_stale() {
            return false;
        }
        let set = current.refreshed();
        if set.fingerprint() == current.fingerprint() {
            return false;
        }
        self.install(Arc::new(set));
        true
    }

    /// Asks every engine for its health (remote engines note their signature versions as they
    /// answer, within `timeout` each) and then [`Scanner::refresh_fingerprint`]s.
    pub async fn poll_engines(&self, timeout: std::time::Duration) -> bool {
        let set = self.engine_set();
        for engine in set.engines() {
            if let Err(e) = tokio::time::timeout(timeout, engine.health())
                .await
                .unwrap_or(Err(crate::engine::EngineError::Timeout(timeout)))
            {
                tracing::debug!(engine = engine.name(), error = %e, "engine poll failed");
            }
        }
        self.refresh_fingerprint()
    }

    fn install(&self, set: Arc<EngineSet>) {
        let mut held = match self.inner.set.write() {
            Ok(held) => held,
            Err(poisoned) => poisoned.into_inner(),
        };
        if held.fingerprint() != set.fingerprint() {
            tracing::info!(
                was = held.fingerprint(),
                now = set.fingerprint(),
                "the engines' fingerprint changed"
            );
        }
        *held = set;
    }

    /// The expansion limits.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The spool configuration (also used by callers that spool input themselves).
    pub fn spool_policy(&self) -> &SpoolPolicy {
        &self.inner.spool
    }

    /// Whether outcomes are cached.
    pub fn has_cache(&self) -> bool {
        self.inner.cache.is_some()
    }

    /// The verdict cache's counters since start.
    pub fn cache_stats(&self) -> CacheStats {
        let counts = &self.inner.cache_counts;
        CacheStats {
            hits: counts.hits.load(Ordering::Relaxed),
            misses: counts.misses.load(Ordering::Relaxed),
            errors: counts.errors.load(Ordering::Relaxed),
        }
    }

    /// The cached outcome for content with `sha256` under the current engine set, as the report
    /// of an object called `name`; `None` without a cache or a fresh entry. Lets a caller that
    /// knows an object's SHA-256 before reading it (an S3 checksum) skip reading it.
    pub async fn cached(&self, name: &str, sha256: &[u8; 32]) -> Option<Report> {
        let set = self.engine_set();
        self.cache_lookup(name, sha256, &set).await
    }

    async fn cache_lookup(&self, name: &str, sha256: &[u8; 32], set: &EngineSet) -> Option<Report> {
        let cache = self.inner.cache.as_ref()?;
        let key = CacheKey {
            sha256: *sha256,
            fingerprint: set.fingerprint().to_owned(),
        };
        let counts = &self.inner.cache_counts;
        match cache.get(&key).await {
            Ok(Some(hit)) => {
                counts.hits.fetch_add(1, Ordering::Relaxed);
                Some(hit.into_report(name, &key))
            }
            Ok(None) => {
                counts.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
            Err(e) => {
                counts.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "verdict cache read failed; scanning");
                None
            }
        }
    }

    async fn cache_store(&self, report: &Report, input: &ScanInput) {
        let Some(cache) = self.inner.cache.as_ref() else {
            return;
        };
        let Some(entry) = CachedVerdict::of(report) else {
            return;
        };
        let key = CacheKey {
            sha256: *input.sha256(),
            fingerprint: report.fingerprint.clone(),
        };
        if let Err(e) = cache.put(&key, &entry).await {
            self.inner
                .cache_counts
                .errors
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "verdict cache write failed");
        }
    }

    /// Reads a file and scans it; the report is named after the file's name.
    pub async fn scan_path(&self, path: &Path) -> Result<Report, InputError> {
        let started = Instant::now();
        let input = ScanInput::from_path_async(path, &self.inner.spool).await?;
        let read = started.elapsed();
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let mut report = self.scan_input(&name, Arc::new(input)).await;
        report.timings.read_seconds = read.as_secs_f64();
        Ok(report)
    }

    /// Reads a stream to its end (spooling it) and scans it under `name`.
    pub async fn scan_reader<R>(&self, name: &str, reader: R) -> Result<Report, InputError>
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let started = Instant::now();
        let input = ScanInput::from_async_reader(reader, &self.inner.spool).await?;
        let read = started.elapsed();
        let mut report = self.scan_input(name, Arc::new(input)).await;
        report.timings.read_seconds = read.as_secs_f64();
        Ok(report)
    }

    /// Scans an input that is already spooled. The input stays usable afterwards (keep a clone
    /// of the `Arc` to store a clean upload, for instance).
    pub async fn scan_input(&self, name: &str, input: Arc<ScanInput>) -> Report {
        let started = Instant::now();
        let set = self.engine_set();
        if self.inner.cache.is_some() {
            if input.sha256_if_known().is_none() {
                // The key is the content's hash: a file opened in place is hashed now, off the
                // runtime's threads.
                let hashing = Arc::clone(&input);
                let _ = tokio::task::spawn_blocking(move || {
                    hashing.sha256();
                })
                .await;
            }
            if let Some(mut report) = self.cache_lookup(name, input.sha256(), &set).await {
                report.timings.scan_seconds = started.elapsed().as_secs_f64();
                tracing::info!(
                    name,
                    verdict = %report.verdict,
                    size = report.size,
                    fingerprint = %report.fingerprint,
                    "scanned (cached)"
                );
                return report;
            }
        }
        let scanner = self.clone();
        let handle = tokio::runtime::Handle::current();
        let owned_name = name.to_owned();
        let walk_input = Arc::clone(&input);
        let walk_set = Arc::clone(&set);
        let walked = tokio::task::spawn_blocking(move || {
            let inner = &scanner.inner;
            if !inner.sha256_on_demand {
                walk_input.sha256();
            }
            let budget = Budget::new(inner.limits.clone(), walk_input.size());
            let walker = Walker::new(walk_set.engines(), &inner.spool, budget, handle);
            walker.run(&owned_name, walk_input.data(), walk_input.sha256_if_known())
        })
        .await;
        let outcome = walked.unwrap_or_else(|e| {
            // A panic inside an engine or decoder must not take the caller down, and must not
            // pass for clean.
            tracing::error!(name, error = %e, "scan task failed");
            Outcome {
                problems: vec![Problem {
                    path: name.to_owned(),
                    reason: Reason::Failed,
                    message: "internal error while scanning; see the server log".to_owned(),
                }],
                ..Outcome::default()
            }
        });
        let report = Report {
            name: name.to_owned(),
            verdict: Report::verdict_of(&outcome.detections, &outcome.problems),
            detections: outcome.detections,
            problems: outcome.problems,
            size: input.size(),
            sha256: if self.inner.sha256_on_demand {
                input.sha256_if_known().map(hex::encode).unwrap_or_default()
            } else {
                input.sha256_hex()
            },
            file_type: filetype::describe(input.data().as_slice()),
            objects: outcome.objects,
            bytes_expanded: outcome.bytes_expanded,
            engines: outcome.engines,
            scanned_at: time::OffsetDateTime::now_utc(),
            timings: Timings {
                read_seconds: 0.0,
                scan_seconds: started.elapsed().as_secs_f64(),
            },
            fingerprint: set.fingerprint().to_owned(),
            cached: false,
        };
        let engines: Vec<&str> = report.engines.iter().map(|e| e.engine.as_str()).collect();
        tracing::info!(
            name,
            verdict = %report.verdict,
            engines = %engines.join(","),
            size = report.size,
            objects = report.objects,
            detections = report.detections.len(),
            problems = report.problems.len(),
            seconds = report.timings.scan_seconds,
            fingerprint = %report.fingerprint,
            "scanned"
        );
        self.cache_store(&report, &input).await;
        report
    }
}
