//! Shared helpers: a byte-string engine and scanners configured for tests.

use std::sync::Arc;

use async_trait::async_trait;
use scan_core::testing::eicar;
use scan_core::{
    Engine, EngineError, Finding, Limit, Limits, Report, ScanInput, ScanObject, Scanner,
    SpoolConfig, Verdict,
};

/// A real engine for tests: reports `name` when an object starts with `needle` (anchored, like
/// the EICAR definition, so containers that store members uncompressed do not match too).
pub(crate) struct Needle {
    pub(crate) needle: Vec<u8>,
    pub(crate) name: &'static str,
}

impl Needle {
    pub(crate) fn eicar() -> Self {
        Needle {
            needle: eicar(),
            name: "EICAR-Test",
        }
    }
}

#[async_trait]
impl Engine for Needle {
    fn name(&self) -> &str {
        "needle"
    }

    async fn scan(&self, object: &ScanObject<'_>) -> Result<Vec<Finding>, EngineError> {
        let found = object.data.starts_with(&self.needle);
        Ok(if found {
            vec![Finding::new(self.name)]
        } else {
            Vec::new()
        })
    }

    async fn health(&self) -> Result<String, EngineError> {
        Ok("ready".into())
    }
}

/// A real engine for tests that must see a member decoded byte for byte: reports `name` when
/// an object's SHA-256 is that of `data`.
pub(crate) struct Whole {
    sha256: [u8; 32],
    name: &'static str,
}

impl Whole {
    pub(crate) fn new(data: &[u8], name: &'static str) -> Self {
        use sha2::Digest;
        Whole {
            sha256: sha2::Sha256::digest(data).into(),
            name,
        }
    }
}

#[async_trait]
impl Engine for Whole {
    fn name(&self) -> &str {
        "whole"
    }

    async fn scan(&self, object: &ScanObject<'_>) -> Result<Vec<Finding>, EngineError> {
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(object.data).into();
        Ok(if digest == self.sha256 {
            vec![Finding::new(self.name)]
        } else {
            Vec::new()
        })
    }

    async fn health(&self) -> Result<String, EngineError> {
        Ok("ready".into())
    }
}

/// A scanner with one engine, default limits, spooling into `spool_dir`.
pub(crate) fn scanner_of(spool_dir: &std::path::Path, engine: impl Engine + 'static) -> Scanner {
    Scanner::builder()
        .engine(engine)
        .spool(SpoolConfig {
            memory_threshold: 64 * 1024,
            temp_dir: Some(spool_dir.to_owned()),
            max_input_size: None,
        })
        .build()
        .expect("scanner")
}

/// A scanner with the EICAR needle engine, default limits, spooling into `spool_dir`.
pub(crate) fn scanner(spool_dir: &std::path::Path) -> Scanner {
    scanner_with(spool_dir, Limits::default())
}

pub(crate) fn scanner_with(spool_dir: &std::path::Path, limits: Limits) -> Scanner {
    Scanner::builder()
        .engine(Needle::eicar())
        .limits(limits)
        .spool(SpoolConfig {
            // Small, so tests exercise the file-backed path too.
            memory_threshold: 64 * 1024,
            temp_dir: Some(spool_dir.to_owned()),
            max_input_size: None,
        })
        .build()
        .expect("scanner")
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
