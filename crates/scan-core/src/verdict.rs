//! The verdict model: what one scan found, and the two wire shapes the HTTP APIs speak.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::limits::Limit;

/// The overall result of one scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Verdict {
    /// Every object was fully examined by every engine that wanted it, and nothing was found.
    Clean,
    /// At least one engine found something, whatever else happened.
    Infected,
    /// Not everything could be examined: a limit, an encrypted or corrupt member, an archive
    /// format that is not unpacked, an object over an engine's size limit.
    Unscannable,
    /// The scan itself failed: an engine was down or answered with an error.
    Error,
}

impl Verdict {
    /// The name used on the wire by the synchronous API.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Clean => "Clean",
            Verdict::Infected => "Infected",
            Verdict::Unscannable => "Unscannable",
            Verdict::Error => "Error",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing an engine found in one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detection {
    /// The object's path: the root's name, then each archive member on the way down, joined by `/`.
    pub path: String,
    /// What was found, as the engine names it.
    pub name: String,
    /// Which engine found it.
    pub engine: String,
}

/// Why part of a scan could not be completed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// A configured limit stopped expansion.
    LimitExceeded {
        /// Which limit.
        limit: Limit,
    },
    /// A member is encrypted and cannot be read.
    Encrypted,
    /// An archive or compressed stream is damaged or truncated.
    Corrupt,
    /// A format or compression method that is recognised but not unpacked.
    Unsupported,
    /// An engine failed on this object (down, timed out, answered with an error).
    EngineError {
        /// Which engine.
        engine: String,
    },
    /// The scan itself failed here (for example the spool disk is full).
    Failed,
    /// An engine did not examine this object (for example it is over that engine's size limit).
    NotExamined {
        /// Which engine.
        engine: String,
    },
}

/// A part of the scan that did not complete, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The object's path, as in [`Detection::path`].
    pub path: String,
    /// The kind of problem.
    #[serde(flatten)]
    pub reason: Reason,
    /// A sentence a person can act on.
    pub message: String,
}

impl Problem {
    /// The limit this problem reports, if it is a limit.
    pub fn limit(&self) -> Option<Limit> {
        match self.reason {
            Reason::LimitExceeded { limit } => Some(limit),
            _ => None,
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// What one engine did during a scan; kept so several engines' results stay visible.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EngineSummary {
    /// The engine's name.
    pub engine: String,
    /// Objects the engine examined.
    pub objects_scanned: u64,
    /// Objects the engine was meant to see but did not examine (over its size limit).
    pub objects_skipped: u64,
    /// Detections it made.
    pub detections: u64,
    /// Objects on which it failed.
    pub errors: u64,
}

/// Where the time of a scan went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Reading the input: receiving, hashing, spooling.
    pub read_seconds: f64,
    /// Expansion and engines.
    pub scan_seconds: f64,
}

impl Timings {
    /// Both phases together.
    pub fn total(&self) -> Duration {
        Duration::from_secs_f64(self.read_seconds + self.scan_seconds)
    }
}

/// The full report of one scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The name the root object was scanned under (upload name, file name, object key).
    pub name: String,
    /// The overall result, derived from `detections` and `problems` by [`Report::new`].
    pub verdict: Verdict,
    /// Everything found, in the order it was found.
    pub detections: Vec<Detection>,
    /// Everything that could not be examined.
    pub problems: Vec<Problem>,
    /// Size of the root object in bytes.
    pub size: u64,
    /// SHA-256 of the root object, lower-case hex.
    pub sha256: String,
    /// The root's type as found from its content (never its name), e.g. `zip`, `pdf`, `text`.
    pub file_type: String,
    /// Objects examined: the root and every expanded member.
    pub objects: u64,
    /// Bytes produced by expansion.
    pub bytes_expanded: u64,
    /// One entry per configured engine.
    pub engines: Vec<EngineSummary>,
    /// When the scan finished.
    #[serde(with = "time::serde::rfc3339")]
    pub scanned_at: OffsetDateTime,
    /// Where the time went.
    pub timings: Timings,
}

impl Report {
    /// The merged verdict: any detection makes it Infected; otherwise any engine failure makes
    /// it Error; otherwise any other problem makes it Unscannable; only then Clean.
    pub fn verdict_of(detections: &[Detection], problems: &[Problem]) -> Verdict {
        if !detections.is_empty() {
            Verdict::Infected
        } else if problems
            .iter()
            .any(|p| matches!(p.reason, Reason::EngineError { .. } | Reason::Failed))
        {
            Verdict::Error
        } else if !problems.is_empty() {
            Verdict::Unscannable
        } else {
            Verdict::Clean
        }
    }

    /// The limits that were hit, each once.
    pub fn limits_hit(&self) -> Vec<Limit> {
        let mut limits: Vec<Limit> = Vec::new();
        for limit in self.problems.iter().filter_map(Problem::limit) {
            if !limits.contains(&limit) {
                limits.push(limit);
            }
        }
        limits
    }

    /// Why the verdict is Unscannable or Error, in words a person can act on; `None` for Clean
    /// and Infected (the contract keeps `errorMessage` null there).
    pub fn error_message(&self) -> Option<String> {
        if !matches!(self.verdict, Verdict::Unscannable | Verdict::Error) {
            return None;
        }
        const SHOWN: usize = 5;
        let mut text = self
            .problems
            .iter()
            .take(SHOWN)
            .map(Problem::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        if self.problems.len() > SHOWN {
            text.push_str(&format!("; and {} more", self.problems.len() - SHOWN));
        }
        Some(text)
    }

    /// The synchronous API's response body for this report.
    pub fn to_sync_response(&self) -> SyncScanResponse {
        SyncScanResponse {
            date_scanned: format_date(self.scanned_at),
            detected_infections: self
                .detections
                .iter()
                .map(|d| DetectedInfection {
                    file: d.path.clone(),
                    infection: d.name.clone(),
                })
                .collect(),
            error_message: self.error_message(),
            result: self.verdict.as_str().to_owned(),
            true_file_type: self.file_type.clone(),
            size: self.size,
            sha256: self.sha256.clone(),
            engines: self.engines.clone(),
        }
    }

    /// The asynchronous API's result (polling body and the core of the callback) for this report.
    pub fn to_async_result(&self) -> AsyncScanResult {
        let status = match self.verdict {
            Verdict::Clean => AsyncStatus::Clean,
            Verdict::Infected => AsyncStatus::Infected,
            Verdict::Unscannable | Verdict::Error => AsyncStatus::No,
        };
        let finding = (status == AsyncStatus::Infected).then(|| {
            let mut names: Vec<&str> = Vec::new();
            for d in &self.detections {
                if !names.contains(&d.name.as_str()) {
                    names.push(&d.name);
                }
            }
            names.join(", ")
        });
        AsyncScanResult {
            status,
            finding,
            size: Some(self.size),
            realfiletype: Some(self.file_type.clone()).filter(|t| !t.is_empty()),
            reason: self.error_message(),
            engines: self.engines.clone(),
        }
    }
}

/// `dateScanned` as the original service writes it: UTC, RFC 3339, seven fractional digits, `Z`.
fn format_date(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.nanosecond() / 100
    )
}

/// One entry of `detectedInfections` in the synchronous API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DetectedInfection {
    /// Path of the infected object, archive members joined by `/`.
    pub file: String,
    /// What was found.
    pub infection: String,
}

/// The synchronous API's verdict body (contract section 1). Fields past `result` are additive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncScanResponse {
    /// UTC, RFC 3339 with a `Z`.
    pub date_scanned: String,
    /// One entry per detection.
    pub detected_infections: Vec<DetectedInfection>,
    /// Why the result is `Unscannable` or `Error`; `null` otherwise.
    pub error_message: Option<String>,
    /// `Clean`, `Infected`, `Unscannable` or `Error`.
    pub result: String,
    /// The type found from the content.
    pub true_file_type: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
    /// Per-engine results.
    pub engines: Vec<EngineSummary>,
}

/// `status` in the asynchronous API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AsyncStatus {
    /// Nothing found, everything examined.
    Clean,
    /// Something found.
    Infected,
    /// Could not be scanned (download failed, too large, unreadable, engine failure).
    No,
}

/// The asynchronous API's result body (contract section 2). `realfiletype`, `reason` and
/// `engines` are additive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AsyncScanResult {
    /// `clean`, `infected` or `no`.
    pub status: AsyncStatus,
    /// What was found; only when infected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding: Option<String>,
    /// Size in bytes, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The file's type found from its content (`zip`, `pdf`, `text`...), as the original
    /// product's `realfiletype`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realfiletype: Option<String>,
    /// Why the status is `no`, for people and logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Per-engine results.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub engines: Vec<EngineSummary>,
}
