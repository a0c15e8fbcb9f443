//! Golden files of verdict-async's JSON answers (tests/golden/): a deliberate change of what
//! clients receive shows up as a reviewed diff (`VERDICT_BLESS=1` rewrites them), an accidental
//! one fails here.

use std::path::PathBuf;
use std::time::Duration;

use scan_core::testing::eicar;
use serde_json::{Value, json};
use test_support::assert_golden;

use crate::testutil::{KEY, Server};

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

#[tokio::test]
async fn results_bulk_status_and_error_bodies_match_their_golden_files() {
    let server = Server::start().await;
    let binary = |bytes: Vec<u8>| {
        let request = server
            .client
            .post(server.url("/api/v1/scan/sync/binary"))
            .bearer_auth(KEY)
            .body(bytes);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    assert_golden(
        &golden("sync-binary-infected.json"),
        binary(eicar()).await,
        &[],
    );
    assert_golden(
        &golden("sync-binary-clean.json"),
        binary(b"meeting at noon".to_vec()).await,
        &[],
    );

    // A finished bulk scan's counts, on the local store.
    let data = server.data_dir();
    std::fs::create_dir_all(data.join("b/in")).unwrap();
    std::fs::write(data.join("b/in/a.txt"), "plain").unwrap();
    std::fs::write(data.join("b/in/e.com"), eicar()).unwrap();
    let started: Value = server
        .post(
            "/api/v1/scan/async/s3/bulk",
            &json!({"bucket": "b", "prefix": "in/"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = started["id"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        let status: Value = server
            .client
            .get(server.url(&format!("/api/v1/scan/async/s3/bulk/{id}")))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["finished"] == true {
            break status;
        }
        assert!(tokio::time::Instant::now() < deadline, "{status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_golden(&golden("bulk-finished.json"), status, &["/id", "/created"]);

    let unknown = server.poll("never-submitted").await;
    assert_eq!(unknown.status(), 404);
    assert_golden(
        &golden("result-unknown.json"),
        unknown.json().await.unwrap(),
        &[],
    );
    let bad = server
        .post(
            "/api/v1/scan/async/download",
            &json!({"download_url": "ftp://x/"}),
        )
        .await;
    assert_eq!(bad.status(), 400);
    assert_golden(
        &golden("download-not-http.json"),
        bad.json().await.unwrap(),
        &[],
    );
    server.stop().await;
}
