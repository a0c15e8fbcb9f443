//! The original product's own client: the attachmentAV Python SDK (installed by
//! scripts/services.sh) drives every endpoint it has, and what it got back is checked here.

use std::time::Duration;

use scan_core::testing::{self, PdfObject, eicar};
use serde_json::Value;

use crate::testutil::{KEY, Peer, Server};

#[tokio::test]
async fn the_attachmentav_python_sdk_works_unchanged() {
    let python = test_support::service_or_skip!("VERDICT_TEST_SDK_PYTHON");
    let peer = Peer::start().await;
    let clean = peer.file(
        "clean.pdf",
        testing::pdf(&[PdfObject::dict("/Type /Catalog")]),
    );
    let infected = peer.file("eicar.com", eicar());
    let server = Server::start().await;
    // The local store (the embedded default) holds the "S3" object: data/<bucket>/<key>.
    let object = server.data_dir().join("uploads/in/report.txt");
    std::fs::create_dir_all(object.parent().unwrap()).unwrap();
    std::fs::write(&object, b"quarterly numbers").unwrap();

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/sdk/attachmentav_client.py"
    );
    let output = tokio::process::Command::new(&python)
        .arg(script)
        .args([
            server.base.as_str(),
            KEY,
            clean.as_str(),
            infected.as_str(),
            "uploads",
            "in/report.txt",
            &peer.callback_url("sdk"),
        ])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "the SDK script failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let got: Value = serde_json::from_slice(&output.stdout).unwrap();

    assert_eq!(got["sync_binary"]["status"], "infected");
    assert_eq!(got["sync_binary"]["finding"], "EICAR_Test_File");
    assert_eq!(got["sync_binary"]["size"], 68);
    assert_eq!(got["sync_binary_api_key"]["status"], "clean");
    assert_eq!(got["sync_download"]["status"], "clean");
    assert_eq!(got["sync_download"]["realfiletype"], "pdf");
    assert_eq!(got["sync_s3"]["status"], "clean");
    assert_eq!(got["sync_s3"]["size"], 17);
    assert_eq!(got["async_polled"]["status"], "infected", "{got}");
    assert_eq!(got["bad_key"], "401");

    let callback = peer
        .accepted_callbacks(1, Duration::from_secs(20))
        .await
        .remove(0);
    assert_eq!(callback.body["status"], "clean");
    assert_eq!(callback.body["custom_data"], "sdk-s3");
    assert_eq!(callback.header("x-from-sdk"), "yes");
}
