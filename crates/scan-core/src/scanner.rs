//! The `Scanner`: one road for every scan — input, expansion, engines, verdict.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::AsyncRead;

use crate::decompress::Budget;
use crate::engine::Engine;
use crate::error::InputError;
use crate::expand::{Outcome, Walker};
use crate::filetype;
use crate::input::ScanInput;
use crate::limits::Limits;
use crate::spool::SpoolPolicy;
use crate::verdict::{Problem, Reason, Report, Timings};

/// A configured scanner. Cheap to clone; share one across a whole service.
#[derive(Clone)]
pub struct Scanner {
    inner: Arc<Inner>,
}

struct Inner {
    engines: Vec<Arc<dyn Engine>>,
    limits: Limits,
    spool: SpoolPolicy,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field(
                "engines",
                &self
                    .inner
                    .engines
                    .iter()
                    .map(|e| e.name())
                    .collect::<Vec<_>>(),
            )
            .field("limits", &self.inner.limits)
            .field("spool", &self.inner.spool)
            .finish()
    }
}

/// A scanner could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A scanner with no engine would call everything clean without looking.
    #[error("no engine is configured; a scanner needs at least one")]
    NoEngines,
    /// Two engines share a name, so reports could not tell them apart.
    #[error("two engines are named {0:?}; engine names must be unique")]
    DuplicateEngine(String),
}

/// Builds a [`Scanner`].
#[derive(Default)]
pub struct ScannerBuilder {
    engines: Vec<Arc<dyn Engine>>,
    limits: Limits,
    spool: SpoolPolicy,
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

    /// Checks the configuration and builds the scanner.
    pub fn build(self) -> Result<Scanner, ConfigError> {
        if self.engines.is_empty() {
            return Err(ConfigError::NoEngines);
        }
        for (i, engine) in self.engines.iter().enumerate() {
            if self.engines[..i].iter().any(|e| e.name() == engine.name()) {
                return Err(ConfigError::DuplicateEngine(engine.name().to_owned()));
            }
        }
        Ok(Scanner {
            inner: Arc::new(Inner {
                engines: self.engines,
                limits: self.limits,
                spool: self.spool,
            }),
        })
    }
}

impl Scanner {
    /// Starts building a scanner.
    pub fn builder() -> ScannerBuilder {
        ScannerBuilder::default()
    }

    /// The configured engines.
    pub fn engines(&self) -> &[Arc<dyn Engine>] {
        &self.inner.engines
    }

    /// The expansion limits.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The spool configuration (also used by callers that spool input themselves).
    pub fn spool_policy(&self) -> &SpoolPolicy {
        &self.inner.spool
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
        let scanner = self.clone();
        let handle = tokio::runtime::Handle::current();
        let owned_name = name.to_owned();
        let walk_input = Arc::clone(&input);
        let walked = tokio::task::spawn_blocking(move || {
            let inner = &scanner.inner;
            let budget = Budget::new(inner.limits.clone(), walk_input.size());
            let walker = Walker::new(&inner.engines, &inner.spool, budget, handle);
            walker.run(&owned_name, walk_input.data(), walk_input.sha256())
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
            sha256: input.sha256_hex(),
            file_type: filetype::describe(input.data().as_slice()),
            objects: outcome.objects,
            bytes_expanded: outcome.bytes_expanded,
            engines: outcome.engines,
            scanned_at: time::OffsetDateTime::now_utc(),
            timings: Timings {
                read_seconds: 0.0,
                scan_seconds: started.elapsed().as_secs_f64(),
            },
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
            "scanned"
        );
        report
    }
}
