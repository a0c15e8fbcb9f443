//! ClamdEngine against real clamd: TCP and unix socket, nested archives, limits, outages.

use std::sync::Arc;

use engines::{ClamdConfig, ClamdEngine};
use scan_core::testing::{self, eicar};
use scan_core::{Engine, Reason, Verdict};

use crate::testutil::{PrivateClamd, clamd_only_payload, scan, scanner, service};

fn clamd(address: &str) -> ClamdEngine {
    ClamdEngine::new(&ClamdConfig {
        address: address.to_owned(),
        ..ClamdConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn clean_and_eicar_over_tcp_and_the_unix_socket() {
    test_support::service_or_skip!("VERDICT_TEST_CLAMD_TCP");
    test_support::service_or_skip!("VERDICT_TEST_CLAMD_SOCKET");
    for address in [
        service("VERDICT_TEST_CLAMD_TCP"),
        service("VERDICT_TEST_CLAMD_SOCKET"),
    ] {
        let scanner = scanner(vec![Arc::new(clamd(&address))]);
        let report = scan(&scanner, "notes.txt", b"nothing to see".to_vec()).await;
        assert_eq!(
            report.verdict,
            Verdict::Clean,
            "{address}: {:?}",
            report.problems
        );
        let report = scan(&scanner, "eicar.com", eicar()).await;
        assert_eq!(report.verdict, Verdict::Infected, "{address}");
        assert_eq!(report.detections[0].engine, "clamd");
        assert!(
            report.detections[0].name.starts_with("Test-EICAR"),
            "{}",
            report.detections[0].name
        );
        // Several scans on the same engine reuse the pooled session.
        let report = scan(&scanner, "payload.bin", clamd_only_payload()).await;
        assert_eq!(report.detections[0].name, "Verdict-Test-Payload.UNOFFICIAL");
    }
    let version = clamd(&service("VERDICT_TEST_CLAMD_TCP"))
        .health()
        .await
        .unwrap();
    assert!(version.starts_with("ClamAV "), "{version}");
}

#[tokio::test]
async fn clamd_unpacks_the_root_itself_and_finds_eicar_deep_inside() {
    test_support::service_or_skip!("VERDICT_TEST_CLAMD_SOCKET");
    let inner = testing::zip(&[("eicar.com", &eicar())]);
    let middle = testing::zip(&[("inner.zip", &inner)]);
    let outer = testing::zip(&[("middle.zip", &middle), ("readme.txt", b"hello")]);
    let scanner = scanner(vec![Arc::new(clamd(&service("VERDICT_TEST_CLAMD_SOCKET")))]);
    let report = scan(&scanner, "outer.zip", outer).await;
    assert_eq!(report.verdict, Verdict::Infected);
    assert_eq!(report.detections.len(), 1);
    assert_eq!(
        report.detections[0].path, "outer.zip",
        "root-only: clamd saw the root"
    );
    assert_eq!(report.engines[0].objects_scanned, 1);
}

#[tokio::test]
async fn objects_over_clamds_stream_limit_are_never_clean() {
    test_support::service_or_skip!("VERDICT_TEST_CLAMD_SOCKET");
    test_support::service_or_skip!("VERDICT_TEST_CLAMD_TCP");
    // Told the truth (25 MiB, as clamd.conf says): not sent at all.
    let big = vec![b'a'; 30 << 20];
    let scanner = scanner(vec![Arc::new(clamd(&service("VERDICT_TEST_CLAMD_SOCKET")))]);
    let report = scan(&scanner, "big.txt", big.clone()).await;
    assert_eq!(report.verdict, Verdict::Unscannable);
    assert!(matches!(&report.problems[0].reason, Reason::Declined { engine } if engine == "clamd"));
    assert_eq!(report.engines[0].objects_skipped, 1);

    // Misconfigured higher than clamd's limit: clamd answers "INSTREAM size limit exceeded",
    // which is reported as not examined, never as clean.
    let engine = ClamdEngine::new(&ClamdConfig {
        address: service("VERDICT_TEST_CLAMD_TCP"),
        stream_max_length: 100 << 20,
        ..ClamdConfig::default()
    })
    .unwrap();
    let scanner = crate::testutil::scanner(vec![Arc::new(engine)]);
    let report = scan(&scanner, "big.txt", big).await;
    assert_eq!(
        report.verdict,
        Verdict::Unscannable,
        "{:?}",
        report.problems
    );
    assert!(
        report.problems[0].message.contains("StreamMaxLength"),
        "{}",
        report.problems[0].message
    );
    // The engine still works afterwards (the closed connection was not pooled).
    let report = scan(&scanner, "eicar.com", eicar()).await;
    assert_eq!(report.verdict, Verdict::Infected);
}

#[tokio::test]
async fn clamd_going_down_gives_error_and_recovery_needs_nothing() {
    test_support::service_or_skip!("VERDICT_TEST_CLAMD_DB");
    let mut clamd_process = PrivateClamd::start();
    let engine = Arc::new(clamd(&clamd_process.socket().display().to_string()));
    let scanner = scanner(vec![engine.clone()]);
    assert_eq!(
        scan(&scanner, "a.txt", b"fine".to_vec()).await.verdict,
        Verdict::Clean
    );

    clamd_process.stop();
    let report = scan(&scanner, "a.txt", b"fine".to_vec()).await;
    assert_eq!(report.verdict, Verdict::Error, "{:?}", report.problems);
    assert!(
        matches!(&report.problems[0].reason, Reason::EngineError { engine } if engine == "clamd")
    );
    assert!(engine.health().await.is_err());

    clamd_process.resume();
    let report = scan(&scanner, "eicar.com", eicar()).await;
    assert_eq!(report.verdict, Verdict::Infected, "{:?}", report.problems);
    assert!(engine.health().await.is_ok());
}
