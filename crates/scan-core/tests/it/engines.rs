//! How the scanner treats engines: failures, scopes, size limits, configuration errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use scan_core::testing::{self, eicar};
use scan_core::{
    ConfigError, Detection, Engine, EngineError, Reason, ScanInput, ScanObject, Scanner, Scope,
    Verdict,
};

use crate::testutil::Needle;

/// Fault injection: an engine that always fails, standing in for a crashed engine process
/// (the real clamd-down case is tested against real clamd in the engines crate).
struct Broken;

#[async_trait]
impl Engine for Broken {
    fn name(&self) -> &str {
        "broken"
    }
    async fn scan(&self, _: &ScanObject<'_>) -> Result<Vec<Detection>, EngineError> {
        Err(EngineError::Unavailable("connection refused".into()))
    }
    async fn health(&self) -> Result<String, EngineError> {
        Err(EngineError::Unavailable("connection refused".into()))
    }
}

/// Counts the objects it is given; takes only the root, and only objects up to 100 bytes.
struct RootCounter {
    seen: Arc<AtomicUsize>,
}

#[async_trait]
impl Engine for RootCounter {
    fn name(&self) -> &str {
        "root-counter"
    }
    fn scope(&self) -> Scope {
        Scope::RootOnly
    }
    fn max_object_size(&self) -> Option<u64> {
        Some(100)
    }
    async fn scan(&self, _: &ScanObject<'_>) -> Result<Vec<Detection>, EngineError> {
        self.seen.fetch_add(1, Ordering::SeqCst);
        Ok(Vec::new())
    }
    async fn health(&self) -> Result<String, EngineError> {
        Ok("ok".into())
    }
}

async fn scan(scanner: &Scanner, name: &str, bytes: Vec<u8>) -> scan_core::Report {
    scanner
        .scan_input(name, Arc::new(ScanInput::from_bytes(bytes)))
        .await
}

#[tokio::test]
async fn a_failing_engine_makes_the_verdict_error_never_clean() {
    let scanner = Scanner::builder()
        .engine(Needle::eicar())
        .engine(Broken)
        .build()
        .unwrap();
    let report = scan(&scanner, "clean.txt", b"harmless".to_vec()).await;
    assert_eq!(report.verdict, Verdict::Error);
    assert!(
        matches!(&report.problems[0].reason, Reason::EngineError { engine } if engine == "broken")
    );
    // Why, without the engine's own words (which may name where it lives): those go to the log.
    let message = report.error_message().unwrap();
    assert!(
        message.contains("engine broken could not be reached"),
        "{message}"
    );
    assert!(!message.contains("connection refused"), "{message}");
    assert_eq!(
        report
            .engines
            .iter()
            .find(|e| e.engine == "broken")
            .unwrap()
            .errors,
        1
    );

    // With a detection from the other engine, the verdict is Infected.
    let report = scan(&scanner, "eicar.com", eicar()).await;
    assert_eq!(report.verdict, Verdict::Infected);
}

#[tokio::test]
async fn root_only_engines_see_the_root_and_size_limits_are_reported() {
    let seen = Arc::new(AtomicUsize::new(0));
    let scanner = Scanner::builder()
        .engine(Needle::eicar())
        .engine(RootCounter {
            seen: Arc::clone(&seen),
        })
        .build()
        .unwrap();
    let small = testing::zip_with(&[("a", b"b")], zip::CompressionMethod::Stored);
    assert!(small.len() <= 200);
    let report = scan(&scanner, "small", b"tiny".to_vec()).await;
    assert_eq!(report.verdict, Verdict::Clean);
    assert_eq!(seen.load(Ordering::SeqCst), 1);

    let report = scan(
        &scanner,
        "large.zip",
        testing::zip(&[("a.txt", &[b'a'; 500])]),
    )
    .await;
    assert_eq!(
        seen.load(Ordering::SeqCst),
        1,
        "over its size limit: not sent"
    );
    assert_eq!(report.verdict, Verdict::Unscannable);
    assert!(
        matches!(&report.problems[0].reason, Reason::Declined { engine } if engine == "root-counter")
    );
    let summary = report
        .engines
        .iter()
        .find(|e| e.engine == "root-counter")
        .unwrap();
    assert_eq!((summary.objects_scanned, summary.objects_skipped), (0, 1));
    let needle = report
        .engines
        .iter()
        .find(|e| e.engine == "needle")
        .unwrap();
    assert_eq!(
        needle.objects_scanned, 2,
        "the every-object engine saw root and member"
    );
}

#[test]
fn a_scanner_without_engines_or_with_duplicates_is_refused() {
    assert!(matches!(
        Scanner::builder().build(),
        Err(ConfigError::NoEngines)
    ));
    let err = Scanner::builder()
        .engine(Needle::eicar())
        .engine(Needle::eicar())
        .build();
    assert!(matches!(err, Err(ConfigError::DuplicateEngine(name)) if name == "needle"));
}

/// Claims every detection for another engine and another object.
struct Impostor;

#[async_trait]
impl Engine for Impostor {
    fn name(&self) -> &str {
        "impostor"
    }
    async fn scan(&self, _: &ScanObject<'_>) -> Result<Vec<Detection>, EngineError> {
        Ok(vec![
            Detection::named("Test.Claimed").at("elsewhere/other.bin", "clamd"),
        ])
    }
    async fn health(&self) -> Result<String, EngineError> {
        Ok("ok".into())
    }
}

#[tokio::test]
async fn the_scanner_sets_a_detections_path_and_engine_whatever_the_engine_wrote() {
    let scanner = Scanner::builder().engine(Impostor).build().unwrap();
    let report = scan(&scanner, "upload.bin", b"anything".to_vec()).await;
    assert_eq!(report.verdict, Verdict::Infected);
    assert_eq!(
        report.detections,
        vec![Detection::named("Test.Claimed").at("upload.bin", "impostor")]
    );
}

#[tokio::test]
async fn a_file_scanned_in_place_is_hashed_only_where_the_hash_is_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean.txt");
    std::fs::write(&clean, b"harmless words").unwrap();
    let infected = dir.path().join("eicar.com");
    std::fs::write(&infected, eicar()).unwrap();
    let spool = scan_core::SpoolPolicy::default();

    let on_demand = Scanner::builder()
        .engine(Needle::eicar())
        .sha256_on_demand()
        .build()
        .unwrap();
    let input = Arc::new(ScanInput::from_path(&clean, &spool).unwrap());
    let report = on_demand.scan_input("clean.txt", Arc::clone(&input)).await;
    assert_eq!(report.verdict, Verdict::Clean);
    assert_eq!(report.sha256, "", "nothing asked for the hash");
    assert!(
        input.sha256_if_known().is_none(),
        "the file was hashed anyway"
    );
    // Detections do not depend on the hash.
    let input = Arc::new(ScanInput::from_path(&infected, &spool).unwrap());
    let report = on_demand.scan_input("eicar.com", input).await;
    assert_eq!(report.verdict, Verdict::Infected);

    // By default every report carries it.
    let always = Scanner::builder().engine(Needle::eicar()).build().unwrap();
    let input = Arc::new(ScanInput::from_path(&clean, &spool).unwrap());
    let report = always.scan_input("clean.txt", input).await;
    use sha2::Digest;
    assert_eq!(
        report.sha256,
        hex::encode(sha2::Sha256::digest(b"harmless words"))
    );
}

/// A root of 17 MiB (past the size from which engines run beside the opening): it starts with
/// the EICAR string, and a zip holding EICAR is appended to it.
fn large_root_carrying_a_zip() -> Vec<u8> {
    let mut root = eicar();
    root.resize(17 << 20, 0);
    root.extend(testing::zip(&[("eicar.com", &eicar())]));
    root
}

/// Waits, when given the root, until it has been given a member: only an engine that runs
/// beside the opening of the root ever sees one then.
struct RootWaitsForAMember {
    member_seen: Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait]
impl Engine for RootWaitsForAMember {
    fn name(&self) -> &str {
        "root-waits"
    }
    async fn scan(&self, object: &ScanObject<'_>) -> Result<Vec<Detection>, EngineError> {
        if object.depth > 0 {
            self.member_seen.store(true, Ordering::SeqCst);
            return Ok(Vec::new());
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !self.member_seen.load(Ordering::SeqCst) {
            if std::time::Instant::now() > deadline {
                return Err(EngineError::Unavailable(
                    "the root's engines ran before its members were opened".into(),
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Ok(Vec::new())
    }
    async fn health(&self) -> Result<String, EngineError> {
        Ok("ok".into())
    }
}

#[tokio::test]
async fn a_large_objects_engines_run_beside_its_opening_and_report_in_walk_order() {
    let member_seen = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let scanner = Scanner::builder()
        .engine(Needle::eicar())
        .engine(RootWaitsForAMember {
            member_seen: Arc::clone(&member_seen),
        })
        .build()
        .unwrap();
    let report = scan(&scanner, "large.bin", large_root_carrying_a_zip()).await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(member_seen.load(Ordering::SeqCst));
    // The root's own detection comes first, as when its engines run before its members.
    let paths: Vec<&str> = report.detections.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(paths.len(), 2, "{paths:?}");
    assert_eq!(paths[0], "large.bin");
    assert!(
        paths[1].starts_with("large.bin@") && paths[1].ends_with("/eicar.com"),
        "{paths:?}"
    );
    assert_eq!(report.verdict, Verdict::Infected);
}

/// Fault injection: an engine with a bug that panics on large objects.
struct PanicsOnLargeObjects;

#[async_trait]
impl Engine for PanicsOnLargeObjects {
    fn name(&self) -> &str {
        "panics"
    }
    async fn scan(&self, object: &ScanObject<'_>) -> Result<Vec<Detection>, EngineError> {
        assert!(object.data.len() < 1 << 20, "a bug in an engine");
        Ok(Vec::new())
    }
    async fn health(&self) -> Result<String, EngineError> {
        Ok("ok".into())
    }
}

#[tokio::test]
async fn an_engine_that_panics_beside_the_opening_leaves_the_object_failed_and_its_members_scanned()
{
    let scanner = Scanner::builder()
        .engine(Needle::eicar())
        .engine(PanicsOnLargeObjects)
        .build()
        .unwrap();
    let report = scan(&scanner, "large.bin", large_root_carrying_a_zip()).await;
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.path == "large.bin" && p.reason == Reason::Failed),
        "{:?}",
        report.problems
    );
    assert!(
        report
            .detections
            .iter()
            .any(|d| d.path.ends_with("/eicar.com")),
        "{:?}",
        report.detections
    );
    assert_ne!(report.verdict, Verdict::Clean);
}
