//! `VerdictCache`: outcomes kept by content and fingerprint, so the same bytes under the same
//! rules run the engines once. The trait lives here; the stores (redb, Redis) live downstream.

use serde::{Deserialize, Serialize};

use crate::verdict::{Detection, EngineSummary, Report, Verdict};

/// What a cached outcome is filed under: the content's SHA-256 and the fingerprint of the
/// engine set that judged it. Another set never sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// SHA-256 of the root object.
    pub sha256: [u8; 32],
    /// The engine set's fingerprint ([`crate::EngineSet::fingerprint`]).
    pub fingerprint: String,
}

impl std::fmt::Display for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", hex::encode(self.sha256), self.fingerprint)
    }
}

/// What a cache keeps of a report: everything that follows from the bytes and the rules, none
/// of what follows from one request (name, time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CachedVerdict {
    /// The verdict.
    pub verdict: Verdict,
    /// What was found.
    pub detections: Vec<Detection>,
    /// Size of the root object.
    pub size: u64,
    /// The root's type.
    pub file_type: String,
    /// Objects examined.
    pub objects: u64,
    /// Bytes produced by expansion.
    pub bytes_expanded: u64,
    /// Per-engine results of the scan that was cached.
    pub engines: Vec<EngineSummary>,
}

impl CachedVerdict {
    /// What may be cached of `report`: only an outcome with nothing left unexamined (no limit
    /// hit, no engine down or failing, nothing encrypted or corrupt), since any of those could
    /// come out otherwise on another try and must be judged again.
    pub fn of(report: &Report) -> Option<Self> {
        if !report.problems.is_empty() || report.cached {
            return None;
        }
        Some(CachedVerdict {
            verdict: report.verdict,
            detections: report.detections.clone(),
            size: report.size,
            file_type: report.file_type.clone(),
            objects: report.objects,
            bytes_expanded: report.bytes_expanded,
            engines: report.engines.clone(),
        })
    }

    /// The report this answers for the object `name` with `sha256`, judged by `fingerprint`.
    pub(crate) fn into_report(self, name: &str, key: &CacheKey) -> Report {
        Report {
            name: name.to_owned(),
            verdict: Report::verdict_of(&self.detections, &[]),
            detections: self.detections,
            problems: Vec::new(),
            size: self.size,
            sha256: hex::encode(key.sha256),
            file_type: self.file_type,
            objects: self.objects,
            bytes_expanded: self.bytes_expanded,
            engines: self.engines,
            scanned_at: time::OffsetDateTime::now_utc(),
            timings: Default::default(),
            fingerprint: key.fingerprint.clone(),
            cached: true,
        }
    }
}

/// A cache could not be read or written. The scan then runs as if there were no cache.
#[derive(Debug, thiserror::Error)]
#[error("verdict cache: {0}")]
pub struct CacheError(pub String);

/// A store of [`CachedVerdict`]s. Implementations bound their size and drop entries older than
/// their time to live; a `get` after that answers `None`.
#[async_trait::async_trait]
pub trait VerdictCache: Send + Sync {
    /// The outcome filed under `key`, if any and still fresh.
    async fn get(&self, key: &CacheKey) -> Result<Option<CachedVerdict>, CacheError>;

    /// Files `verdict` under `key`.
    async fn put(&self, key: &CacheKey, verdict: &CachedVerdict) -> Result<(), CacheError>;
}
