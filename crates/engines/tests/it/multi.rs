//! Several engines at once, configured the way services configure them.

use scan_core::testing::{self, eicar};
use scan_core::{Reason, Verdict};

use crate::testutil::{clamd_only_payload, scan, scanner, service};

fn engines_from(json: serde_json::Value) -> Vec<std::sync::Arc<dyn scan_core::Engine>> {
    let configs: Vec<engines::EngineConfig> = serde_json::from_value(json).unwrap();
    engines::build_engines(&configs).unwrap()
}

#[tokio::test]
async fn yara_finds_one_thing_clamd_another_both_in_the_report() {
    test_support::service_or_skip!("VERDICT_TEST_CLAMD_TCP");
    test_support::service_or_skip!("VERDICT_TEST_ICAP_URL");
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(
        rules.path().join("marker.yar"),
        "rule Yara_Only_Marker { strings: $m = \"yara-only-marker\" condition: $m }",
    )
    .unwrap();
    let scanner = scanner(engines_from(serde_json::json!([
        { "type": "yara", "rules": [rules.path()] },
        { "type": "clamd", "address": service("VERDICT_TEST_CLAMD_TCP") },
        { "type": "icap", "url": service("VERDICT_TEST_ICAP_URL") },
    ])));
    let bundle = testing::zip(&[
        ("notes/marker.txt", b"this has the yara-only-marker in it"),
        ("payload.bin", &clamd_only_payload()),
    ]);
    let report = scan(&scanner, "bundle.zip", bundle).await;
    assert_eq!(report.verdict, Verdict::Infected, "{:?}", report.problems);
    let mut found: Vec<(&str, &str, &str)> = report
        .detections
        .iter()
        .map(|d| (d.engine.as_str(), d.path.as_str(), d.name.as_str()))
        .collect();
    found.sort_unstable();
    assert_eq!(
        found,
        [
            ("clamd", "bundle.zip", "Verdict-Test-Payload.UNOFFICIAL"),
            ("icap", "bundle.zip", "Verdict-Test-Payload.UNOFFICIAL"),
            ("yara", "bundle.zip/notes/marker.txt", "Yara_Only_Marker"),
        ]
    );
    let names: Vec<&str> = report.engines.iter().map(|e| e.engine.as_str()).collect();
    assert_eq!(names, ["yara", "clamd", "icap"]);
    assert!(
        report.engines.iter().all(|e| e.objects_scanned > 0),
        "{:?}",
        report.engines
    );
}

#[tokio::test]
async fn one_engine_down_means_not_clean() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = listener.local_addr().unwrap().to_string();
    drop(listener);
    let scanner = scanner(engines_from(serde_json::json!([
        { "type": "yara" },
        { "type": "clamd", "address": dead, "connect_timeout_secs": 1.0 },
    ])));
    let report = scan(&scanner, "fine.txt", b"fine".to_vec()).await;
    assert_eq!(report.verdict, Verdict::Error);
    assert!(report.error_message().unwrap().contains("clamd"));
    // A detection by the engine that works still makes it Infected.
    assert_eq!(
        scan(&scanner, "eicar.com", eicar()).await.verdict,
        Verdict::Infected
    );
}

#[tokio::test]
async fn per_engine_size_limits_are_reported_as_not_examined() {
    test_support::service_or_skip!("VERDICT_TEST_CLAMD_SOCKET");
    let scanner = scanner(engines_from(serde_json::json!([
        { "type": "yara", "max_object_size": 1000 },
        { "type": "clamd", "address": service("VERDICT_TEST_CLAMD_SOCKET") },
    ])));
    let report = scan(&scanner, "big.txt", vec![b'x'; 5000]).await;
    assert_eq!(report.verdict, Verdict::Unscannable);
    assert!(matches!(&report.problems[0].reason, Reason::Declined { engine } if engine == "yara"));
    assert!(
        report
            .error_message()
            .unwrap()
            .contains("over its limit of 1000 bytes")
    );
    let report = scan(&scanner, "small.txt", vec![b'x'; 500]).await;
    assert_eq!(report.verdict, Verdict::Clean);
}
