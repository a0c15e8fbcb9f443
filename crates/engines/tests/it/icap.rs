//! IcapEngine against real c-icap (virus_scan backed by clamd), and a failing server.

use std::sync::Arc;

use engines::{IcapConfig, IcapEngine};
use scan_core::testing::eicar;
use scan_core::{Engine, Reason, Verdict};

use crate::testutil::{failing_icap_server, scan, scanner, service};

fn icap(url: &str) -> IcapEngine {
    IcapEngine::new(&IcapConfig {
        url: url.to_owned(),
        ..IcapConfig::default()
    })
    .unwrap()
}

fn padded_text(len: usize) -> Vec<u8> {
    b"lorem ipsum dolor sit amet "
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

#[tokio::test]
async fn small_objects_go_in_the_preview_with_ieof() {
    test_support::service_or_skip!("VERDICT_TEST_ICAP_URL");
    let engine = Arc::new(icap(&service("VERDICT_TEST_ICAP_URL")));
    let scanner = scanner(vec![engine.clone()]);
    let report = scan(&scanner, "note.txt", b"short and clean".to_vec()).await;
    assert_eq!(report.verdict, Verdict::Clean, "{:?}", report.problems);
    let report = scan(&scanner, "eicar.com", eicar()).await;
    assert_eq!(report.verdict, Verdict::Infected, "{:?}", report.problems);
    assert_eq!(report.detections[0].engine, "icap");
    assert!(
        report.detections[0].name.starts_with("Test-EICAR"),
        "{}",
        report.detections[0].name
    );
    let health = engine.health().await.unwrap();
    assert!(health.contains("ISTag"), "{health}");
}

#[tokio::test]
async fn larger_objects_continue_after_the_preview() {
    test_support::service_or_skip!("VERDICT_TEST_ICAP_URL");
    // c-icap offers a 1024-byte preview; these are far larger, so the rest is sent after
    // "100 Continue". The EICAR body signature is anchored at offset 0 and still matches.
    let scanner = scanner(vec![Arc::new(icap(&service("VERDICT_TEST_ICAP_URL")))]);
    let report = scan(&scanner, "big.txt", padded_text(300_000)).await;
    assert_eq!(report.verdict, Verdict::Clean, "{:?}", report.problems);
    let mut infected = eicar();
    infected.extend(padded_text(300_000));
    let report = scan(&scanner, "big-infected.txt", infected).await;
    assert_eq!(report.verdict, Verdict::Infected, "{:?}", report.problems);
    // And with preview turned off entirely.
    let no_preview = IcapEngine::new(&IcapConfig {
        url: service("VERDICT_TEST_ICAP_URL"),
        preview: Some(0),
        ..IcapConfig::default()
    })
    .unwrap();
    let scanner = crate::testutil::scanner(vec![Arc::new(no_preview)]);
    assert_eq!(
        scan(&scanner, "eicar.com", eicar()).await.verdict,
        Verdict::Infected
    );
}

#[tokio::test]
async fn a_server_error_is_an_error_verdict_and_a_dead_server_too() {
    let scanner = scanner(vec![Arc::new(icap(&failing_icap_server().await))]);
    let report = scan(&scanner, "note.txt", b"clean".to_vec()).await;
    assert_eq!(report.verdict, Verdict::Error);
    assert!(
        report.problems[0].message.contains("500"),
        "{}",
        report.problems[0].message
    );

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("icap://{}/avscan", listener.local_addr().unwrap());
    drop(listener);
    let scanner = crate::testutil::scanner(vec![Arc::new(icap(&dead))]);
    let report = scan(&scanner, "note.txt", b"clean".to_vec()).await;
    assert_eq!(report.verdict, Verdict::Error);
    assert!(matches!(
        &report.problems[0].reason,
        Reason::EngineError { .. }
    ));
}
