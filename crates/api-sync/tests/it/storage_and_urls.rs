//! Scan-and-upload (local store and a real S3-compatible server), scan existing objects, and
//! URL scans against a real HTTP server on loopback.

use axum::response::Redirect;
use axum::routing::get;
use scan_core::testing::{self, eicar};
use storage::StorageConfig;

use crate::testutil::{Server, USER, detection_files, json};

fn s3_endpoint() -> String {
    std::env::var("VERDICT_TEST_S3_ENDPOINT").unwrap_or_else(|_| {
        panic!("VERDICT_TEST_S3_ENDPOINT is not set: run the tests through scripts/test.sh, which starts the S3 server")
    })
}

async fn s3_client() -> aws_sdk_s3::Client {
    let store = storage::S3Store::new(&storage::S3Config {
        region: Some("us-east-1".into()),
        endpoint: Some(s3_endpoint()),
        path_style: true,
    })
    .await;
    store.client().clone()
}

async fn s3_bucket(client: &aws_sdk_s3::Client, versioned: bool) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "sync-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    client.create_bucket().bucket(&name).send().await.unwrap();
    if versioned {
        use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
        client
            .put_bucket_versioning()
            .bucket(&name)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    name
}

async fn s3_server() -> Server {
    Server::start_with(|c| {
        c.storage = StorageConfig::S3(storage::S3Config {
            region: Some("us-east-1".into()),
            endpoint: Some(s3_endpoint()),
            path_style: true,
        });
        c.tag_existing = true;
    })
    .await
}

#[tokio::test]
async fn clean_uploads_land_in_s3_and_infected_ones_do_not() {
    test_support::service_or_skip!("VERDICT_TEST_S3_ENDPOINT");
    let server = s3_server().await;
    let client = s3_client().await;
    let bucket = s3_bucket(&client, false).await;
    let token = server.token().await;

    let bytes = b"quarterly figures, nothing else".to_vec();
    let target = format!("{bucket}/reports/q3.txt");
    let body = json(
        server
            .scan(&token, "q3.txt", bytes.clone(), Some(&target))
            .await,
    )
    .await;
    assert_eq!(body["result"], "Clean");
    assert_eq!(body["stored"], true);
    assert_eq!(body["uploadedTo"], format!("s3://{bucket}/reports/q3.txt"));
    let object = client
        .get_object()
        .bucket(&bucket)
        .key("reports/q3.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(
        object.body.collect().await.unwrap().into_bytes().as_ref(),
        &bytes[..]
    );

    let body = json(
        server
            .scan(
                &token,
                "eicar.com",
                eicar(),
                Some(&format!("{bucket}/bad/eicar.com")),
            )
            .await,
    )
    .await;
    assert_eq!(body["result"], "Infected");
    assert_eq!(body["stored"], false);
    assert!(
        client
            .head_object()
            .bucket(&bucket)
            .key("bad/eicar.com")
            .send()
            .await
            .is_err(),
        "infected file must not land"
    );

    // Bucket only: a generated key, keeping the extension.
    let body = json(
        server
            .scan(
                &token,
                "photo.png",
                b"not really a png".to_vec(),
                Some(&bucket),
            )
            .await,
    )
    .await;
    let uploaded = body["uploadedTo"].as_str().unwrap();
    let key = uploaded.strip_prefix(&format!("s3://{bucket}/")).unwrap();
    assert!(
        key.starts_with("verdict-") && key.ends_with(".png"),
        "{key}"
    );
    assert!(
        client
            .head_object()
            .bucket(&bucket)
            .key(key)
            .send()
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn existing_objects_with_and_without_version_and_missing_ones() {
    test_support::service_or_skip!("VERDICT_TEST_S3_ENDPOINT");
    let server = s3_server().await;
    let client = s3_client().await;
    let bucket = s3_bucket(&client, true).await;
    let token = server.token().await;
    let first = client
        .put_object()
        .bucket(&bucket)
        .key("in/file.bin")
        .body(eicar().into())
        .send()
        .await
        .unwrap();
    client
        .put_object()
        .bucket(&bucket)
        .key("in/file.bin")
        .body(b"clean now".to_vec().into())
        .send()
        .await
        .unwrap();
    let scan_existing = |body: serde_json::Value| {
        let request = server
            .client
            .post(server.url("/api/Scan/Existing"))
            .bearer_auth(&token)
            .json(&body);
        async move { request.send().await.unwrap() }
    };
    let latest = json(
        scan_existing(serde_json::json!({ "container": bucket, "objectPath": "in/file.bin" }))
            .await,
    )
    .await;
    assert_eq!(latest["result"], "Clean");
    let old = json(
        scan_existing(serde_json::json!({
            "container": bucket, "objectPath": "in/file.bin", "versionId": first.version_id().unwrap(), "uploadedBy": "tests"
        }))
        .await,
    )
    .await;
    assert_eq!(old["result"], "Infected");
    assert_eq!(detection_files(&old), ["in/file.bin"]);
    let tags = client
        .get_object_tagging()
        .bucket(&bucket)
        .key("in/file.bin")
        .send()
        .await
        .unwrap();
    assert!(
        tags.tag_set()
            .iter()
            .any(|t| t.key() == "scan-result" && t.value() == "clean"),
        "{tags:?}"
    );

    let missing =
        scan_existing(serde_json::json!({ "container": bucket, "objectPath": "nope" })).await;
    assert_eq!(missing.status(), 404);
    assert!(
        json(missing).await["error"]
            .as_str()
            .unwrap()
            .contains("does not exist")
    );
    let bad = scan_existing(serde_json::json!({ "container": bucket })).await;
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn local_store_upload_when_no_s3_is_configured() {
    let server = Server::start().await;
    let token = server.token().await;
    let body = json(
        server
            .scan(
                &token,
                "a.txt",
                b"local bytes".to_vec(),
                Some("bucket/dir/a.txt"),
            )
            .await,
    )
    .await;
    assert_eq!(body["stored"], true);
    // The object's name, not the server's disk layout.
    assert_eq!(body["uploadedTo"], "local://bucket/dir/a.txt");
    assert_eq!(
        std::fs::read(server.data_dir().join("bucket/dir/a.txt")).unwrap(),
        b"local bytes"
    );
    // A key that tries to leave the bucket: the verdict comes back, the file is not stored.
    let body = json(
        server
            .scan(
                &token,
                "a.txt",
                b"x".to_vec(),
                Some("bucket/../../escape.txt"),
            )
            .await,
    )
    .await;
    assert_eq!(body["result"], "Clean");
    assert_eq!(body["stored"], false);
    assert!(
        body["uploadError"]
            .as_str()
            .unwrap()
            .contains("inside its bucket"),
        "{body}"
    );
    assert!(!server.dir.path().join("escape.txt").exists());
    // Over-long names are refused as names (400), never passed to the file system to fail with
    // its own words (which would be a 502 quoting the OS).
    for object_path in ["k".repeat(5000), format!("dir/{}", "n".repeat(300))] {
        let response = server
            .client
            .post(server.url("/api/Scan/Existing"))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "container": "bucket", "objectPath": object_path }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let text = response.text().await.unwrap();
        assert!(text.contains("bytes"), "{text}");
        assert!(
            !text.contains("os error") && !text.contains(&server.data_dir().display().to_string()),
            "{text}"
        );
    }
}

#[tokio::test]
async fn scan_existing_carries_out_the_actions_policy_on_request() {
    let server = Server::start_with(|c| {
        c.actions = storage::actions::ActionsConfig {
            on_requests: true,
            infected: storage::actions::Action::Move,
            quarantine_bucket: Some("held".into()),
            quarantine_prefix: "q/".into(),
            ..Default::default()
        };
    })
    .await;
    let data = server.data_dir();
    for (path, bytes) in [("in/bad.com", eicar()), ("in/fine.txt", b"fine".to_vec())] {
        std::fs::create_dir_all(data.join("uploads/in")).unwrap();
        std::fs::write(data.join("uploads").join(path), bytes).unwrap();
    }
    std::fs::create_dir_all(data.join("held")).unwrap();
    let token = server.token().await;
    let existing = |key: &str| {
        let request = server
            .client
            .post(server.url("/api/Scan/Existing"))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "container": "uploads", "objectPath": key }));
        async move { json(request.send().await.unwrap()).await }
    };
    let bad = existing("in/bad.com").await;
    assert_eq!(bad["result"], "Infected");
    assert_eq!(bad["objectAction"]["action"], "move", "{bad}");
    assert_eq!(bad["objectAction"]["done"], true, "{bad}");
    assert_eq!(bad["objectAction"]["to"], "local://held/q/in/bad.com");
    assert!(!data.join("uploads/in/bad.com").exists());
    assert!(data.join("held/q/in/bad.com").exists());
    let fine = existing("in/fine.txt").await;
    assert_eq!(fine["objectAction"]["action"], "tag", "{fine}");
    let tags: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(data.join("uploads/in/.fine.txt.tags.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(tags["scan-result"], "clean");
    assert_eq!(tags["scan-engines"].as_str().unwrap().len(), 12);
}

async fn file_server() -> String {
    let app = axum::Router::new()
        .route("/files/clean.txt", get(|| async { "nothing here" }))
        .route("/files/eicar.com", get(|| async { eicar() }))
        .route("/files/demo.zip", get(|| async { testing::demo_files() }))
        .route(
            "/to-metadata",
            get(|| async { Redirect::temporary("http://169.254.169.254/latest/meta-data/") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

#[tokio::test]
async fn urls_are_scanned_in_json_and_multipart_form_and_guarded() {
    let files = file_server().await;
    let server = Server::start().await;
    let token = server.token().await;
    let post_json = |url: String| {
        let request = server
            .client
            .post(server.url("/api/Scan/URL"))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "url": url }));
        async move { request.send().await.unwrap() }
    };
    assert_eq!(
        json(post_json(format!("{files}/files/clean.txt")).await).await["result"],
        "Clean"
    );
    let body = json(post_json(format!("{files}/files/demo.zip")).await).await;
    assert_eq!(detection_files(&body).len(), 4);
    assert!(detection_files(&body)[0].starts_with("demo.zip/"));

    // Multipart, labelled as JSON, as some reference clients send it.
    let boundary = "----verdictboundary";
    let multipart_body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"url\"\r\n\r\n{files}/files/eicar.com\r\n--{boundary}--\r\n"
    );
    let response = server
        .client
        .post(server.url("/api/scan/URL"))
        .bearer_auth(&token)
        .header("Content-Type", "application/json")
        .body(multipart_body)
        .send()
        .await
        .unwrap();
    assert_eq!(json(response).await["result"], "Infected");

    let redirect = post_json(format!("{files}/to-metadata")).await;
    assert_eq!(
        redirect.status(),
        403,
        "a redirect to a denied address is refused"
    );
    let missing = post_json(format!("{files}/files/missing")).await;
    assert_eq!(missing.status(), 502);

    let strict = Server::start_with(|c| c.fetch.allow.clear()).await;
    let token = strict.token().await;
    let response = strict
        .client
        .post(strict.url("/api/Scan/URL"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "url": format!("{files}/files/clean.txt") }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    // The refusal is stable and does not say what the name resolved to or which rule matched.
    let error = json(response).await["error"].as_str().unwrap().to_owned();
    assert!(error.contains("not allowed"), "{error}");
    assert!(!error.contains("loopback"), "{error}");
}

#[tokio::test]
async fn each_user_scans_and_stores_only_where_its_scopes_reach() {
    let server = Server::start_with(|c| {
        c.scopes.insert(
            USER.to_owned(),
            toml::from_str("scan = [\"bucket/mine/\"]\nupload = [\"bucket/in/\"]").unwrap(),
        );
    })
    .await;
    // A second user, whom no entry names: with scopes configured, it reaches nothing.
    api_sync::users::add_user(
        &server.dir.path().join("users"),
        "bob",
        "bob's own password",
    )
    .unwrap();
    let data = server.data_dir();
    std::fs::create_dir_all(data.join("bucket/mine")).unwrap();
    std::fs::create_dir_all(data.join("bucket/theirs")).unwrap();
    std::fs::write(data.join("bucket/mine/a.txt"), "mine").unwrap();
    std::fs::write(data.join("bucket/theirs/a.txt"), "theirs").unwrap();
    let token = server.token().await;
    let existing = |token: String, key: &'static str| {
        let request = server
            .client
            .post(server.url("/api/Scan/Existing"))
            .bearer_auth(token)
            .json(&serde_json::json!({"container": "bucket", "objectPath": key}));
        async move { request.send().await.unwrap() }
    };
    assert_eq!(existing(token.clone(), "mine/a.txt").await.status(), 200);
    let refused = existing(token.clone(), "theirs/a.txt").await;
    assert_eq!(refused.status(), 403);
    assert!(
        json(refused).await["error"]
            .as_str()
            .unwrap()
            .contains("may not scan")
    );

    let stored = server
        .scan(&token, "ok.txt", b"fine".to_vec(), Some("bucket/in/ok.txt"))
        .await;
    assert_eq!(stored.status(), 200);
    assert!(data.join("bucket/in/ok.txt").exists());
    let refused = server
        .scan(
            &token,
            "ok.txt",
            b"fine".to_vec(),
            Some("bucket/out/ok.txt"),
        )
        .await;
    assert_eq!(refused.status(), 403);
    assert!(!data.join("bucket/out/ok.txt").exists());

    let bob: serde_json::Value = server
        .client
        .post(server.url("/api/Token"))
        .json(&serde_json::json!({"username": "bob", "password": "bob's own password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bob = bob["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(existing(bob.clone(), "mine/a.txt").await.status(), 403);
    // Scanning without storing stays open to every user.
    assert_eq!(
        server
            .scan(&bob, "x.txt", b"x".to_vec(), None)
            .await
            .status(),
        200
    );
}
