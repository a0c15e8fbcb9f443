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

/// What became of one object: the one vocabulary from which the CLI's counts, the bucket
/// tags, bulk scans' counts, the actions and both APIs' answers are all mapped, so that each
/// name means the same objects everywhere. A [`Verdict`] is what a scan decided; an outcome also
/// names the object no scan could decide on because it could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Read, fully examined, nothing found ([`Verdict::Clean`]).
    Clean,
    /// Read, and something found ([`Verdict::Infected`]).
    Infected,
    /// Read, but part of it kept from the engines by its own bytes: a limit, encryption,
    /// damage, a format not unpacked ([`Verdict::Unscannable`]).
    Unscannable,
    /// Read, but the scan failed: an engine down, timed out or answering with an error
    /// ([`Verdict::Error`]).
    Error,
    /// Not read at all (missing, denied, storage or download failed), so never judged.
    Unread,
}

impl Outcome {
    /// The outcome of a scan that decided `verdict`.
    pub fn of(verdict: Verdict) -> Self {
        match verdict {
            Verdict::Clean => Outcome::Clean,
            Verdict::Infected => Outcome::Infected,
            Verdict::Unscannable => Outcome::Unscannable,
            Verdict::Error => Outcome::Error,
        }
    }

    /// The verdict behind it; `None` for [`Outcome::Unread`].
    pub fn verdict(self) -> Option<Verdict> {
        match self {
            Outcome::Clean => Some(Verdict::Clean),
            Outcome::Infected => Some(Verdict::Infected),
            Outcome::Unscannable => Some(Verdict::Unscannable),
            Outcome::Error => Some(Verdict::Error),
            Outcome::Unread => None,
        }
    }

    /// Whether the object was read but not fully examined ([`Outcome::Unscannable`] or
    /// [`Outcome::Error`]): what every `not_examined` count and setting means. An unread object
    /// is counted apart, as `unread`.
    pub fn not_examined(self) -> bool {
        matches!(self, Outcome::Unscannable | Outcome::Error)
    }

    /// Its name in tags, counts, logs and metrics: `clean`, `infected`, `unscannable`, `error`
    /// or `unread`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Clean => "clean",
            Outcome::Infected => "infected",
            Outcome::Unscannable => "unscannable",
            Outcome::Error => "error",
            Outcome::Unread => "unread",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Objects counted by [`Outcome`], as the CLI's summary and bulk scans' progress report them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tally {
    /// [`Outcome::Clean`] objects.
    pub clean: u64,
    /// [`Outcome::Infected`] objects.
    pub infected: u64,
    /// Objects read but not fully examined (see [`Outcome::not_examined`]).
    pub not_examined: u64,
    /// [`Outcome::Unread`] objects.
    pub unread: u64,
}

impl Tally {
    /// The counter `outcome` adds to, by its name in a [`Tally`] (`clean`, `infected`,
    /// `not_examined` or `unread`).
    pub fn counter(outcome: Outcome) -> &'static str {
        match outcome {
            Outcome::Clean => "clean",
            Outcome::Infected => "infected",
            Outcome::Unscannable | Outcome::Error => "not_examined",
            Outcome::Unread => "unread",
        }
    }

    /// Counts one object.
    pub fn add(&mut self, outcome: Outcome) {
        *match outcome {
            Outcome::Clean => &mut self.clean,
            Outcome::Infected => &mut self.infected,
            Outcome::Unscannable | Outcome::Error => &mut self.not_examined,
            Outcome::Unread => &mut self.unread,
        } += 1;
    }

    /// Adds another tally's counts.
    pub fn merge(&mut self, other: &Tally) {
        self.clean += other.clean;
        self.infected += other.infected;
        self.not_examined += other.not_examined;
        self.unread += other.unread;
    }

    /// Objects counted.
    pub fn total(&self) -> u64 {
        self.clean + self.infected + self.not_examined + self.unread
    }
}

/// One thing an engine found in one object: what an [`Engine`](crate::Engine) returns, and what
/// a [`Report`] lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct Detection {
    /// The object's path: the root's name, then each archive member on the way down, joined by `/`.
    pub path: String,
    /// What was found, as the engine names it.
    pub name: String,
    /// Which engine found it.
    pub engine: String,
}

impl Detection {
    /// A detection of this name, as an engine returns it: the scanner fills in
    /// [`path`](Self::path) and [`engine`](Self::engine) when it adds it to the report.
    pub fn named(name: impl Into<String>) -> Self {
        Detection {
            path: String::new(),
            name: name.into(),
            engine: String::new(),
        }
    }

    /// This detection, placed on the object at `path` and credited to `engine`.
    pub fn at(self, path: &str, engine: &str) -> Self {
        Detection {
            path: path.to_owned(),
            engine: engine.to_owned(),
            ..self
        }
    }
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
    /// One engine declined this object (for example it is over that engine's size limit): the
    /// narrow case, one engine and one object, of the object's [`Outcome::Unscannable`].
    /// `not_examined`, its earlier name, is read as well.
    #[serde(alias = "not_examined")]
    Declined {
        /// Which engine.
        engine: String,
    },
}

/// A part of the scan that did not complete, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
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
#[non_exhaustive]
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
#[non_exhaustive]
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
#[non_exhaustive]
pub struct Report {
    /// The name the root object was scanned under (upload name, file name, object key).
    pub name: String,
    /// The overall result, derived from `detections` and `problems` by [`Report::verdict_of`].
    pub verdict: Verdict,
    /// Everything found, in the order it was found.
    pub detections: Vec<Detection>,
    /// Everything that could not be examined.
    pub problems: Vec<Problem>,
    /// Size of the root object in bytes.
    pub size: u64,
    /// SHA-256 of the root object, lower-case hex; empty only from a scanner built with
    /// [`crate::ScannerBuilder::sha256_on_demand`] when nothing needed the hash.
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
    /// The fingerprint of the engine set that judged it ([`crate::EngineSet::fingerprint`]):
    /// what the engines' rules were, so a verdict can be told stale when they change.
    #[serde(default)]
    pub fingerprint: String,
    /// Whether the outcome came from the verdict cache (the same bytes judged before under the
    /// same fingerprint) instead of running the engines.
    #[serde(default)]
    pub cached: bool,
}

impl Report {
    /// What became of the object: [`Outcome::of`] its verdict.
    pub fn outcome(&self) -> Outcome {
        Outcome::of(self.verdict)
    }

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

    /// Whether another try could come out differently: an engine or the scan itself failed, or
    /// the scan ran out of time (which depends on the load as much as on the bytes). Nothing
    /// irreversible should follow such an outcome.
    pub fn may_change(&self) -> bool {
        self.problems.iter().any(|p| {
            matches!(
                p.reason,
                Reason::EngineError { .. }
                    | Reason::Failed
                    | Reason::LimitExceeded {
                        limit: Limit::MaxScanTime
                    }
            )
        })
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
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Outcome; 5] = [
        Outcome::Clean,
        Outcome::Infected,
        Outcome::Unscannable,
        Outcome::Error,
        Outcome::Unread,
    ];

    #[test]
    fn each_verdict_is_one_outcome_and_only_unread_has_none() {
        for outcome in ALL {
            match outcome.verdict() {
                Some(verdict) => assert_eq!(Outcome::of(verdict), outcome),
                None => assert_eq!(outcome, Outcome::Unread),
            }
        }
        let not_examined: Vec<_> = ALL.into_iter().filter(|o| o.not_examined()).collect();
        assert_eq!(not_examined, [Outcome::Unscannable, Outcome::Error]);
    }

    #[test]
    fn a_problem_an_engine_declined_reads_under_its_earlier_kind_too() {
        let problem = |kind: &str| {
            serde_json::from_value::<Problem>(serde_json::json!({
                "path": "a", "kind": kind, "engine": "clamd", "message": "too large"
            }))
            .unwrap()
            .reason
        };
        let declined = Reason::Declined {
            engine: "clamd".into(),
        };
        assert_eq!(problem("declined"), declined);
        assert_eq!(problem("not_examined"), declined);
        let written = serde_json::to_value(Problem {
            path: "a".into(),
            reason: declined,
            message: String::new(),
        })
        .unwrap();
        assert_eq!(written["kind"], "declined");
    }

    #[test]
    fn a_tally_counts_each_outcome_under_its_counter_name() {
        let mut tally = Tally::default();
        for outcome in ALL {
            tally.add(outcome);
        }
        assert_eq!(tally.total(), 5);
        let fields = serde_json::to_value(tally).unwrap();
        for outcome in ALL {
            let name = Tally::counter(outcome);
            let expected = if outcome.not_examined() { 2 } else { 1 };
            assert_eq!(fields[name], expected, "{name} in {fields}");
        }
        assert_eq!(fields.as_object().unwrap().len(), 4);
    }
}
