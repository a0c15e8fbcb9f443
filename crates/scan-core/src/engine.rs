//! The `Engine` trait: what every scanning engine (in-process rules, clamd, ICAP...) offers the
//! scanner. scan-core defines it; implementations live downstream and scan-core never sees them.

use async_trait::async_trait;

use crate::filetype::FileType;
use crate::landmarks::Landmarks;
use crate::verdict::Detection;

/// Which objects of the expansion tree an engine wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Only the root object (engines that unpack archives themselves, like clamd).
    RootOnly,
    /// The root and every expanded member.
    EveryObject,
}

/// One object handed to an engine: the root or an expanded member.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ScanObject<'a> {
    /// Path through the archive tree, members joined by `/`.
    pub path: &'a str,
    /// Nesting depth: 0 for the root.
    pub depth: u32,
    /// The bytes (in memory or memory-mapped; never copied for the engine).
    pub data: &'a [u8],
    /// What the content is.
    pub file_type: FileType,
    /// SHA-256 when already known (it is for the root), so engines need not hash again.
    pub sha256: Option<&'a [u8; 32]>,
    /// Present when the scanner will search this object for carriers embedded in it (no format
    /// opens it). An engine that reads every byte anyway may report where the landmarks occur
    /// ([`Landmarks::report`]), sparing the scanner a pass of its own; one that does not
    /// leaves it alone.
    pub landmarks: Option<&'a Landmarks>,
}

/// What an engine judges with right now: its rule or signature set, as the engine set's
/// fingerprint and the status pages name it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Signatures {
    /// Rules or signatures held, when the engine can count them.
    pub count: Option<u64>,
    /// What identifies the set: a hash of the rules for in-process engines, the database
    /// version for clamd, the service tag for ICAP. Two sets with the same `version` judge
    /// alike; the fingerprint is made of these.
    pub version: String,
    /// When the set was loaded (in-process engines) or last seen (remote ones).
    #[serde(with = "time::serde::rfc3339::option")]
    pub loaded_at: Option<time::OffsetDateTime>,
}

impl Signatures {
    /// A set of `count` rules identified by `version`, loaded at `loaded_at`.
    pub fn new(
        count: Option<u64>,
        version: impl Into<String>,
        loaded_at: Option<time::OffsetDateTime>,
    ) -> Self {
        Signatures {
            count,
            version: version.into(),
            loaded_at,
        }
    }

    /// A set of `count` rules identified by `version`, loaded now.
    pub fn loaded(count: Option<u64>, version: impl Into<String>) -> Self {
        Signatures {
            count,
            version: version.into(),
            loaded_at: Some(time::OffsetDateTime::now_utc()),
        }
    }

    /// Nothing is known yet (a remote engine not asked so far).
    pub fn unknown() -> Self {
        Signatures {
            count: None,
            version: "unknown".to_owned(),
            loaded_at: None,
        }
    }
}

/// An engine could not give an answer for an object. The object then counts as not examined.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The engine (or the service behind it) could not be reached or went away.
    #[error("engine unavailable: {0}")]
    Unavailable(String),
    /// The engine did not answer in time.
    #[error("engine timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The engine answered, with an error or something we could not understand.
    #[error("engine failed: {0}")]
    Failed(String),
    /// The engine declines this object: one it cannot examine (too large for it, for example).
    #[error("declined: {0}")]
    Declined(String),
}

impl EngineError {
    /// What a report says of the failure, for the caller to read: why, without where the
    /// engine lives (an unreachable engine's address and the system's words are for the
    /// operator's log, where the error itself goes).
    pub fn public_message(&self) -> String {
        match self {
            EngineError::Unavailable(_) => {
                "could not be reached (the cause is in the server log)".to_owned()
            }
            EngineError::Timeout(after) => {
                format!("did not answer within {} s", after.as_secs_f64())
            }
            EngineError::Failed(why) => format!("answered with an error: {why}"),
            EngineError::Declined(why) => format!("did not examine it: {why}"),
        }
    }
}

/// A scanning engine.
///
/// `scan` may do CPU work synchronously: the [`Scanner`](crate::Scanner) always calls it from a
/// blocking thread, so an in-process engine need not spawn one itself. Network engines await
/// I/O as usual.
#[async_trait]
pub trait Engine: Send + Sync {
    /// A short, stable name used in reports (`yara`, `hashes`, `clamd`...).
    fn name(&self) -> &str;

    /// Which objects the engine wants.
    fn scope(&self) -> Scope {
        Scope::EveryObject
    }

    /// The largest object the engine can examine. Larger objects are not sent, and the report
    /// says they were not examined by this engine.
    fn max_object_size(&self) -> Option<u64> {
        None
    }

    /// Examines one object.
    ///
    /// Each detection needs only its name ([`Detection::named`]): the scanner sets its path and
    /// engine, so what an engine puts there is replaced.
    async fn scan(&self, object: &ScanObject<'_>) -> Result<Vec<Detection>, EngineError>;

    /// Whether the engine is ready; a short description (version, rule count) when it is.
    /// Remote engines also note what their signatures are now, for [`Engine::signatures`].
    async fn health(&self) -> Result<String, EngineError>;

    /// The rule or signature set the engine judges with, as last known: cheap and synchronous,
    /// so the scanner can work out its fingerprint at any time.
    fn signatures(&self) -> Signatures {
        Signatures::unknown()
    }
}
