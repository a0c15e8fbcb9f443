//! The blocking calls, for embedders without a runtime: the same verdicts as the async road, from
//! a plain thread and from inside a caller's runtime, with engines that really wait on the
//! runtime's timer, and inputs spooled under the scanner's own policy.

use std::time::Duration;

use async_trait::async_trait;
use scan_core::testing::{self, eicar};
use scan_core::{
    Detection, Engine, EngineError, InputError, Reason, ScanObject, Scanner, SpoolPolicy, Verdict,
};

/// Waits on the runtime's timer before answering, as an engine behind a socket waits on its
/// reactor: without a driven runtime this engine cannot finish.
struct Remote;

#[async_trait]
impl Engine for Remote {
    fn name(&self) -> &str {
        "remote"
    }
    async fn scan(&self, object: &ScanObject<'_>) -> Result<Vec<Detection>, EngineError> {
        tokio::time::sleep(Duration::from_millis(2)).await;
        Ok(if object.data.starts_with(&eicar()) {
            vec![Detection::named("EICAR-Test")]
        } else {
            Vec::new()
        })
    }
    async fn health(&self) -> Result<String, EngineError> {
        Ok("ready".into())
    }
}

fn scanner() -> Scanner {
    Scanner::builder().engine(Remote).build().unwrap()
}

#[test]
fn a_plain_thread_gets_the_verdicts_of_the_async_road() {
    let dir = tempfile::tempdir().unwrap();
    let infected = dir.path().join("bundle.zip");
    std::fs::write(&infected, testing::zip(&[("inner/eicar.com", &eicar())])).unwrap();
    let clean = dir.path().join("notes.txt");
    std::fs::write(&clean, "minutes of the meeting").unwrap();
    let scanner = scanner();

    let report = scanner.scan_path_blocking(&infected).unwrap();
    assert_eq!(report.verdict, Verdict::Infected);
    assert_eq!(report.detections[0].path, "bundle.zip/inner/eicar.com");
    let async_report = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(scanner.scan_path(&infected))
        .unwrap();
    assert_eq!(report.detections, async_report.detections);

    assert_eq!(
        scanner.scan_path_blocking(&clean).unwrap().verdict,
        Verdict::Clean
    );
    let from_reader = scanner
        .scan_reader_blocking("upload.bin", &testing::gzip(&eicar())[..])
        .unwrap();
    assert_eq!(from_reader.verdict, Verdict::Infected);
    assert_eq!(from_reader.name, "upload.bin");
}

#[test]
fn many_threads_share_the_one_runtime() {
    let scanner = scanner();
    let verdicts: Vec<Verdict> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|i| {
                let scanner = &scanner;
                scope.spawn(move || {
                    let body = if i % 2 == 0 {
                        eicar()
                    } else {
                        b"plain".to_vec()
                    };
                    scanner
                        .scan_reader_blocking(&format!("f{i}"), &body[..])
                        .unwrap()
                        .verdict
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    for (i, verdict) in verdicts.iter().enumerate() {
        let expected = if i % 2 == 0 {
            Verdict::Infected
        } else {
            Verdict::Clean
        };
        assert_eq!(*verdict, expected, "file {i}");
    }
}

/// A caller already inside a runtime (a current-thread one, where blocking the only thread would
/// otherwise deadlock the engine's timer) gets its verdict instead of a panic.
#[tokio::test]
async fn a_caller_inside_a_runtime_does_not_panic_or_stall() {
    let scanner = scanner();
    let report = scanner
        .scan_reader_blocking("inside.com", &eicar()[..])
        .unwrap();
    assert_eq!(report.verdict, Verdict::Infected);
}

#[test]
fn inputs_are_spooled_under_the_scanners_own_policy() {
    let policy = SpoolPolicy {
        max_input_size: Some(1000),
        ..SpoolPolicy::default()
    };
    let scanner = Scanner::builder()
        .engine(Remote)
        .spool(policy)
        .build()
        .unwrap();
    let too_large = scanner.input_from_reader(&[0u8; 1001][..]);
    assert!(
        matches!(too_large, Err(InputError::TooLarge { limit: 1000 })),
        "{too_large:?}"
    );
    let fits = scanner.input_from_reader(&[0u8; 1000][..]).unwrap();
    assert_eq!(fits.size(), 1000);

    let mut builder = scanner.input_builder();
    builder.push(bytes::Bytes::from(vec![0u8; 600])).unwrap();
    let over = builder.push(bytes::Bytes::from(vec![0u8; 600]));
    assert!(matches!(over, Err(InputError::TooLarge { limit: 1000 })));

    let blocked = scanner.scan_reader_blocking("big", &[0u8; 5000][..]);
    assert!(matches!(blocked, Err(InputError::TooLarge { .. })));
}

/// A panicking engine stays inside the scan: the caller gets a report that is not Clean.
#[test]
fn an_engine_panic_is_a_failed_report_not_a_crash() {
    struct Panics;
    #[async_trait]
    impl Engine for Panics {
        fn name(&self) -> &str {
            "panics"
        }
        async fn scan(&self, _: &ScanObject<'_>) -> Result<Vec<Detection>, EngineError> {
            panic!("engine bug")
        }
        async fn health(&self) -> Result<String, EngineError> {
            Ok("ready".into())
        }
    }
    let scanner = Scanner::builder().engine(Panics).build().unwrap();
    let report = scanner.scan_reader_blocking("x", &b"data"[..]).unwrap();
    assert_ne!(report.verdict, Verdict::Clean);
    assert!(
        report.problems.iter().any(|p| p.reason == Reason::Failed),
        "{:?}",
        report.problems
    );
}
