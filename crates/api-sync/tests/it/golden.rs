//! Golden files of verdict-sync's JSON answers (tests/golden/): a deliberate change of what
//! clients receive shows up as a reviewed diff (`VERDICT_BLESS=1` rewrites them), an accidental
//! one fails here.

use std::path::PathBuf;

use scan_core::testing::demo_files;
use test_support::assert_golden;

use crate::testutil::{Server, json};

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

#[tokio::test]
async fn the_scan_answer_and_the_error_bodies_match_their_golden_files() {
    let server = Server::start().await;
    let token = server.token().await;
    let infected = json(
        server
            .scan(&token, "DemoFiles.zip", demo_files(), None)
            .await,
    )
    .await;
    assert_golden(
        &golden("scan-infected.json"),
        infected,
        &[
            "/dateScanned",
            "/sha256",
            "/timings/readSeconds",
            "/timings/scanSeconds",
        ],
    );
    let clean = json(
        server
            .scan(&token, "notes.txt", b"meeting at noon".to_vec(), None)
            .await,
    )
    .await;
    assert_golden(
        &golden("scan-clean.json"),
        clean,
        &[
            "/dateScanned",
            "/timings/readSeconds",
            "/timings/scanSeconds",
        ],
    );
    let unauthorized = server
        .client
        .post(server.url("/api/Scan"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    assert_golden(&golden("unauthorized.json"), json(unauthorized).await, &[]);
    let missing = server
        .client
        .post(server.url("/api/Scan/Existing"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"container": "nope", "objectPath": "a.txt"}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_golden(&golden("existing-missing.json"), json(missing).await, &[]);
}
