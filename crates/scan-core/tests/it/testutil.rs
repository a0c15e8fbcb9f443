//! Shared helpers: engines that match byte strings or whole objects, and scanners configured
//! for tests.

use std::sync::Arc;

use async_trait::async_trait;
use scan_core::testing::eicar;
use scan_core::{
    Detection, Engine, EngineError, Limit, Limits, Report, ScanInput, ScanObject, Scanner,
    SpoolPolicy, Verdict,
};

/// A real engine for tests: reports `name` for every object `matches` accepts.
pub(crate) struct Matching<F> {
    engine: &'static str,
    detection: &'static str,
    matches: F,
}

#[async_trait]
impl<F: Fn(&[u8]) -> bool + Send + Sync> Engine for Matching<F> {
    fn name(&self) -> &str {
        self.engine
    }

    async fn scan(&self, object: &ScanObject<'_>) -> Result<Vec<Detection>, EngineError> {
        Ok(if (self.matches)(object.data) {
            vec![Detection::named(self.detection)]
        } else {
            Vec::new()
        })
    }

    async fn health(&self) -> Result<String, EngineError> {
        Ok("ready".into())
    }
}

/// Objects that start with a byte string (anchored, like the EICAR definition, so containers
/// that store members uncompressed do not match too).
pub(crate) struct Needle;

impl Needle {
    pub(crate) fn eicar() -> Matching<impl Fn(&[u8]) -> bool + Send + Sync + use<>> {
        let needle = eicar();
        Matching {
            engine: "needle",
            detection: "EICAR-Test",
            matches: move |data: &[u8]| data.starts_with(&needle),
        }
    }
}

/// Objects that are `data` byte for byte (by SHA-256), for tests that must see a member
/// decoded exactly.
pub(crate) struct Whole;

impl Whole {
    /// Objects whose SHA-256 is one of `digests`, each reported as `name`.
    pub(crate) fn any_of(
        digests: Vec<[u8; 32]>,
        name: &'static str,
    ) -> Matching<impl Fn(&[u8]) -> bool + Send + Sync + use<>> {
        use sha2::Digest;
        Matching {
            engine: "whole",
            detection: name,
            matches: move |data: &[u8]| {
                digests.contains(&<[u8; 32]>::from(sha2::Sha256::digest(data)))
            },
        }
    }

    pub(crate) fn of(
        data: &[u8],
        name: &'static str,
    ) -> Matching<impl Fn(&[u8]) -> bool + Send + Sync + use<>> {
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(data).into();
        Matching {
            engine: "whole",
            detection: name,
            matches: move |data: &[u8]| <[u8; 32]>::from(sha2::Sha256::digest(data)) == digest,
        }
    }
}

/// A scanner with one engine and `limits`, spooling into `spool_dir`.
fn scanner_of_with(
    spool_dir: &std::path::Path,
    engine: impl Engine + 'static,
    limits: Limits,
) -> Scanner {
    Scanner::builder()
        .engine(engine)
        .limits(limits)
        .spool(SpoolPolicy {
            // Small, so tests exercise the file-backed path too.
            memory_threshold: 64 * 1024,
            temp_dir: Some(spool_dir.to_owned()),
            max_input_size: None,
            reuse_files: true,
        })
        .build()
        .expect("scanner")
}

/// A scanner with one engine, default limits, spooling into `spool_dir`.
pub(crate) fn scanner_of(spool_dir: &std::path::Path, engine: impl Engine + 'static) -> Scanner {
    scanner_of_with(spool_dir, engine, Limits::default())
}

/// A scanner with the EICAR needle engine, default limits, spooling into `spool_dir`.
pub(crate) fn scanner(spool_dir: &std::path::Path) -> Scanner {
    scanner_with(spool_dir, Limits::default())
}

/// A scanner with the EICAR needle engine and `limits`.
pub(crate) fn scanner_with(spool_dir: &std::path::Path, limits: Limits) -> Scanner {
    scanner_of_with(spool_dir, Needle::eicar(), limits)
}

pub(crate) async fn scan(scanner: &Scanner, name: &str, bytes: Vec<u8>) -> Report {
    scanner
        .scan_input(name, Arc::new(ScanInput::from_bytes(bytes)))
        .await
}

pub(crate) fn paths(report: &Report) -> Vec<&str> {
    let mut paths: Vec<&str> = report.detections.iter().map(|d| d.path.as_str()).collect();
    paths.sort_unstable();
    paths
}

/// Asserts a not-clean report naming `limit`.
pub(crate) fn assert_limit(report: &Report, limit: Limit) {
    assert_eq!(report.verdict, Verdict::Unscannable, "{report:#?}");
    assert!(
        report.limits_hit().contains(&limit),
        "expected {limit}, got {:?}",
        report.problems
    );
    let message = report
        .error_message()
        .expect("an unscannable report explains itself");
    assert!(message.contains(limit.heuristic_name()), "{message}");
}

pub(crate) fn assert_no_spool_files(dir: &std::path::Path) {
    let left: Vec<_> = std::fs::read_dir(dir).expect("spool dir").collect();
    assert!(left.is_empty(), "spool files left behind: {left:?}");
}

/// Asserts a bomb was stopped early: less than 64 MiB expanded.
pub(crate) fn assert_stopped_early(report: &Report) {
    assert!(
        report.bytes_expanded < 64 << 20,
        "expanded {} bytes",
        report.bytes_expanded
    );
}
