//! Every endpoint and status code of contract section 2, the validation 400s, 409 for a pending
//! trace id, expiry, and the synchronous siblings.

use std::time::Duration;

use scan_core::testing::{self, PdfObject, eicar};
use serde_json::{Value, json};

use crate::testutil::{KEY, OTHER_KEY, Peer, Server};

#[tokio::test]
async fn test_endpoint_is_204_for_each_configured_key_and_401_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let keys_file = dir.path().join("keys");
    std::fs::write(&keys_file, "# rotated in March\nfile-key-3\n").unwrap();
    let server = Server::start_with(|c| c.api_keys_file = Some(keys_file.clone())).await;
    for key in [KEY, OTHER_KEY, "file-key-3"] {
        let response = server
            .client
            .get(server.url("/api/v1/test"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204, "key {key}");
        assert!(response.bytes().await.unwrap().is_empty());
    }
    // The header the original product's SDKs send when configured with an API key.
    let by_header = |key: &'static str| {
        server
            .client
            .get(server.url("/api/v1/test"))
            .header("x-api-key", key)
            .send()
    };
    assert_eq!(by_header(OTHER_KEY).await.unwrap().status(), 204);
    assert_eq!(by_header("wrong").await.unwrap().status(), 401);
    for bad in [
        Some("wrong"),
        Some(""),
        Some("test-key-1-0123456789x"),
        None,
    ] {
        let mut request = server.client.get(server.url("/api/v1/test"));
        if let Some(key) = bad {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "key {bad:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], 401);
    }
    // Every API endpoint is behind the key, not only /test.
    for (method, path) in [
        ("POST", "/api/v1/scan/async/download"),
        ("POST", "/api/v1/scan/async/s3"),
        ("GET", "/api/v1/scan/async/result?trace_id=x"),
        ("POST", "/api/v1/scan/sync/download"),
        ("POST", "/api/v1/scan/sync/binary"),
        ("POST", "/api/v1/scan/sync/s3"),
    ] {
        let response = server
            .client
            .request(method.parse().unwrap(), server.url(path))
            .bearer_auth("wrong")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{method} {path}");
    }
}

#[tokio::test]
async fn a_polled_job_is_201_with_location_then_404_until_done_then_200() {
    let peer = Peer::start().await;
    // A real (one-object) PDF: a file that only starts like one is damaged, so not clean.
    let pdf = testing::pdf(&[PdfObject::dict("/Type /Catalog")]);
    let clean = peer.file("report.pdf", pdf.clone());
    let infected = peer.file("eicar.com", eicar());
    // Slow downloads, so the 404 before completion is observed for sure.
    peer.delay_downloads(Duration::from_millis(400));
    let server = Server::start().await;

    let response = server
        .post(
            "/api/v1/scan/async/download",
            &json!({"download_url": clean, "trace_id": "order 42/a&b"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(
        location,
        server.url("/api/v1/scan/async/result?trace_id=order+42%2Fa%26b")
    );
    assert!(response.bytes().await.unwrap().is_empty());

    let early = server
        .client
        .get(&location)
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(early.status(), 404, "the download takes 400 ms");
    let result = server.result("order 42/a&b", Duration::from_secs(20)).await;
    assert_eq!(result["status"], "clean");
    assert_eq!(result["size"], pdf.len());
    assert!(result.get("finding").is_none());
    // The Location URL itself answers.
    let by_location = server
        .client
        .get(&location)
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(by_location.status(), 200);

    let response = server
        .post(
            "/api/v1/scan/async/download",
            &json!({"download_url": infected, "trace_id": "bad-1"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let result = server.result("bad-1", Duration::from_secs(20)).await;
    assert_eq!(result["status"], "infected");
    assert_eq!(result["finding"], "EICAR_Test_File");
    assert_eq!(result["size"], eicar().len());

    // Both jobs show in the metrics, which need no key.
    let metrics = server.metrics().await;
    for line in [
        "verdict_jobs_submitted_total{outcome=\"queued\"} 2",
        "verdict_jobs_finished_total{status=\"infected\"} 1",
        "verdict_jobs_finished_total{status=\"clean\"} 1",
        "verdict_scans_total{result=\"Infected\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    let unknown = server.poll("never-submitted").await;
    assert_eq!(unknown.status(), 404);
    let missing = server
        .client
        .get(server.url("/api/v1/scan/async/result"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 400);
}

#[tokio::test]
async fn the_public_url_is_the_base_of_location() {
    let peer = Peer::start().await;
    let url = peer.file("a.txt", b"a".to_vec());
    let server =
        Server::start_with(|c| c.public_url = Some("https://scan.example.com/".into())).await;
    let response = server
        .post(
            "/api/v1/scan/async/download",
            &json!({"download_url": url, "trace_id": "t"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(
        response.headers()["location"],
        "https://scan.example.com/api/v1/scan/async/result?trace_id=t"
    );
}

#[tokio::test]
async fn results_expire() {
    let peer = Peer::start().await;
    let url = peer.file("a.txt", b"short-lived".to_vec());
    let server = Server::start_with(|c| c.result_ttl_secs = 1).await;
    let response = server
        .post(
            "/api/v1/scan/async/download",
            &json!({"download_url": url, "trace_id": "brief"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(
        server.result("brief", Duration::from_secs(10)).await["status"],
        "clean"
    );
    crate::testutil::wait_until(
        "the result expired after its 1 s TTL",
        Duration::from_secs(10),
        || async { server.poll("brief").await.status() == 404 },
    )
    .await;
}

#[tokio::test]
async fn invalid_submissions_are_400_with_the_field_named() {
    let server = Server::start().await;
    let long_data = "x".repeat(16 * 1024 + 1);
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "/api/v1/scan/async/download",
            json!({"trace_id": "t"}),
            "download_url is required",
        ),
        (
            "/api/v1/scan/async/download",
            json!({"download_url": "", "trace_id": "t"}),
            "download_url is required",
        ),
        (
            "/api/v1/scan/async/download",
            json!({"download_url": 7, "trace_id": "t"}),
            "download_url must be a string",
        ),
        (
            "/api/v1/scan/async/download",
            json!({"download_url": "ftp://example.com/a", "trace_id": "t"}),
            "http or https",
        ),
        (
            "/api/v1/scan/async/download",
            json!({"download_url": "file:///etc/passwd", "trace_id": "t"}),
            "http or https",
        ),
        (
            "/api/v1/scan/async/download",
            json!({"download_url": "not a url", "trace_id": "t"}),
            "is not a URL",
        ),
        (
            "/api/v1/scan/async/download",
            json!({"download_url": "https://example.com/a"}),
            "trace_id is required",
        ),
        (
            "/api/v1/scan/async/download",
            json!({"download_url": "https://example.com/a", "trace_id": ""}),
            "trace_id must not be empty",
        ),
        (
            "/api/v1/scan/async/download",
            json!({"download_url": "https://example.com/a", "trace_id": "t", "custom_data": long_data}),
            "custom_data",
        ),
        (
            "/api/v1/scan/async/download",
            json!({"download_url": "https://example.com/a", "trace_id": "t", "custom_data": {"a": 1}}),
            "custom_data must be a string",
        ),
        (
            "/api/v1/scan/async/download",
            json!({"download_url": "https://example.com/a", "trace_id": "t", "download_headers": ["a"]}),
            "download_headers must be an object",
        ),
        (
            "/api/v1/scan/async/download",
            json!({"download_url": "https://example.com/a", "trace_id": "t", "download_headers": {"X-A": 1}}),
            "download_headers.X-A must be a string",
        ),
        (
            "/api/v1/scan/async/download",
            json!({"download_url": "https://example.com/a", "trace_id": "t", "download_headers": {"bad name": "v"}}),
            "not a valid header name",
        ),
        (
            "/api/v1/scan/async/download",
            json!({"download_url": "https://example.com/a", "callback_url": "https://example.com/cb", "callback_headers": {"X-N": {"nested": true}}}),
            "callback_headers.X-N must be a string",
        ),
        (
            "/api/v1/scan/async/download",
            json!({"download_url": "https://example.com/a", "trace_id": "t", "download_headers": {"Host": "internal.example"}}),
            "download_headers: Host is set by the client",
        ),
        (
            "/api/v1/scan/async/download",
            json!({"download_url": "https://example.com/a", "callback_url": "https://example.com/cb", "callback_headers": {"Transfer-Encoding": "chunked"}}),
            "callback_headers: Transfer-Encoding is set by the client",
        ),
        (
            "/api/v1/scan/sync/download",
            json!({"download_url": "https://example.com/a", "download_headers": {"connection": "close"}}),
            "download_headers: connection is set by the client",
        ),
        (
            "/api/v1/scan/async/download",
            json!({"download_url": "https://example.com/a", "callback_url": "gopher://example.com/cb"}),
            "callback_url must be an http or https URL",
        ),
        (
            "/api/v1/scan/async/download",
            json!(["download_url"]),
            "JSON object",
        ),
        (
            "/api/v1/scan/async/s3",
            json!({"key": "k", "trace_id": "t"}),
            "bucket is required",
        ),
        (
            "/api/v1/scan/async/s3",
            json!({"bucket": "b", "trace_id": "t"}),
            "key is required",
        ),
        (
            "/api/v1/scan/async/s3",
            json!({"bucket": "b", "key": "k"}),
            "trace_id is required",
        ),
        (
            "/api/v1/scan/sync/download",
            json!({}),
            "download_url is required",
        ),
        (
            "/api/v1/scan/sync/download",
            json!({"download_url": "ftp://x/y"}),
            "http or https",
        ),
    ];
    for (path, body, expected) in cases {
        let response = server.post(path, &body).await;
        assert_eq!(response.status(), 400, "{path} {body}");
        let answer: Value = response.json().await.unwrap();
        let message = answer["error"].as_str().unwrap();
        assert!(
            message.contains(expected),
            "{path} {body}: {message:?} lacks {expected:?}"
        );
        assert_eq!(answer["status"], 400);
    }
    let not_json = server
        .client
        .post(server.url("/api/v1/scan/async/download"))
        .bearer_auth(KEY)
        .body("download_url=https://example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    let body: Value = not_json.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("not valid JSON"));
    let huge = json!({"download_url": "https://example.com/a", "trace_id": "t", "custom_data": "x".repeat(300 * 1024)});
    let response = server.post("/api/v1/scan/async/download", &huge).await;
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("256 KiB"),
        "{body}"
    );
    // Nothing invalid was queued.
    assert_eq!(server.pending_jobs().await, 0);
}

#[tokio::test]
async fn a_trace_id_still_pending_is_409_and_free_again_once_done() {
    // No workers: jobs stay queued, so the trace id stays pending for sure.
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let mut config = crate::testutil::base_config(dir.path());
    config.workers = 0;
    let front = Server::start_in(dir.clone(), &config).await;
    let peer = Peer::start().await;
    let url = peer.file("a.txt", b"first".to_vec());
    let submit = json!({"download_url": url, "trace_id": "dup"});
    assert_eq!(
        front
            .post("/api/v1/scan/async/download", &submit)
            .await
            .status(),
        201
    );
    let again = front.post("/api/v1/scan/async/download", &submit).await;
    assert_eq!(again.status(), 409);
    let body: Value = again.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("still pending"),
        "{body}"
    );
    // The same trace id through the other endpoint is the same conflict.
    let s3 = front
        .post(
            "/api/v1/scan/async/s3",
            &json!({"bucket": "b", "key": "k", "trace_id": "dup"}),
        )
        .await;
    assert_eq!(s3.status(), 409);
    assert_eq!(front.pending_jobs().await, 1);
    front.stop().await;

    // A server with workers on the same store finishes the job; then the id may be reused.
    config.workers = 2;
    let worker = Server::start_in(dir.clone(), &config).await;
    assert_eq!(
        worker.result("dup", Duration::from_secs(20)).await["status"],
        "clean"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while worker.pending_jobs().await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job never completed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let infected = peer.file("second.com", eicar());
    let reuse = worker
        .post(
            "/api/v1/scan/async/download",
            &json!({"download_url": infected, "trace_id": "dup"}),
        )
        .await;
    assert_eq!(reuse.status(), 201);
    assert_eq!(
        worker.result("dup", Duration::from_secs(20)).await["status"],
        "infected"
    );
}

#[tokio::test]
async fn a_full_queue_is_503_with_retry_after() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let mut config = crate::testutil::base_config(dir.path());
    config.workers = 0;
    config.max_queued_jobs = 2;
    let server = Server::start_in(dir, &config).await;
    for (i, expected) in [(1, 201), (2, 201), (3, 503)] {
        let response = server
            .post(
                "/api/v1/scan/async/download",
                &json!({"download_url": "https://example.com/a", "trace_id": format!("t{i}")}),
            )
            .await;
        assert_eq!(response.status(), expected, "job {i}");
        if expected == 503 {
            assert_eq!(response.headers()["retry-after"], "1");
        }
    }
}

#[tokio::test]
async fn sync_siblings_answer_the_verdict_in_the_response() {
    let peer = Peer::start().await;
    let clean = peer.file("clean.txt", b"just text".to_vec());
    let infected = peer.file("eicar.txt", eicar());
    let server = Server::start_with(|c| c.max_body_bytes = Some(1024)).await;

    let answer: Value = server
        .post(
            "/api/v1/scan/sync/download",
            &json!({"download_url": clean}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["status"], "clean");
    assert_eq!(answer["size"], 9);

    let response = server
        .post(
            "/api/v1/scan/sync/download",
            &json!({"download_url": infected, "download_headers": {"X-Origin-Token": "abc"}}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["status"], "infected");
    assert_eq!(answer["finding"], "EICAR_Test_File");
    assert_eq!(peer.downloads_of("eicar.txt")[0]["x-origin-token"], "abc");

    let missing: Value = server
        .post(
            "/api/v1/scan/sync/download",
            &json!({"download_url": format!("{}/files/nothing", peer.base)}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(missing["status"], "no");
    assert!(
        missing["reason"].as_str().unwrap().contains("404"),
        "{missing}"
    );

    let binary = |body: Vec<u8>| {
        server
            .client
            .post(server.url("/api/v1/scan/sync/binary"))
            .bearer_auth(KEY)
            .body(body)
            .send()
    };
    let answer: Value = binary(eicar()).await.unwrap().json().await.unwrap();
    assert_eq!(answer["status"], "infected");
    assert_eq!(answer["finding"], "EICAR_Test_File");
    let answer: Value = binary(b"plain".to_vec())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (answer["status"].as_str(), answer["size"].as_u64()),
        (Some("clean"), Some(5))
    );
    let too_big = binary(vec![b'a'; 2048]).await.unwrap();
    assert_eq!(too_big.status(), 413);
}

#[tokio::test]
async fn a_stalled_binary_upload_is_408_and_frees_its_slot() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::start_with(|c| {
        c.upload_idle_timeout_secs = 1;
        c.max_concurrent_sync_scans = 1;
    })
    .await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/scan/sync/binary HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {KEY}\r\nContent-Length: 1000\r\n\r\nonly ten b"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut answer))
        .await
        .expect("the server should give up on the stalled body after 1 s")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // The only scan slot is free again.
    let response = server
        .client
        .post(server.url("/api/v1/scan/sync/binary"))
        .bearer_auth(KEY)
        .body("fine")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn the_openapi_document_lists_every_endpoint_and_the_result_fields() {
    let server = Server::start().await;
    let doc = server.get_json("/openapi.json").await;
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/v1/scan/async/download", "post"),
        ("/api/v1/scan/async/s3", "post"),
        ("/api/v1/scan/async/result", "get"),
        ("/api/v1/test", "get"),
        ("/api/v1/scan/sync/download", "post"),
        ("/api/v1/scan/sync/s3", "post"),
        ("/api/v1/scan/sync/binary", "post"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path} missing");
    }
    let result = &doc["components"]["schemas"]["AsyncScanResult"]["properties"];
    for field in ["status", "finding", "size", "realfiletype", "reason"] {
        assert!(result[field].is_object(), "AsyncScanResult.{field} missing");
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["api_key"]["name"], "x-api-key");
    let download = &paths["/api/v1/scan/async/download"]["post"]["responses"];
    for status in ["201", "204", "400", "401", "409", "503"] {
        assert!(
            download[status].is_object(),
            "async download {status} undocumented"
        );
    }
    // Every keyed operation documents 401; empty strings are outside the schema as in the
    // code; an empty binary body is an empty file, so the body is optional.
    for (path, method) in [
        ("/api/v1/scan/async/result", "get"),
        ("/api/v1/scan/sync/download", "post"),
        ("/api/v1/scan/sync/s3", "post"),
        ("/api/v1/scan/sync/binary", "post"),
        ("/metrics", "get"),
    ] {
        assert!(
            paths[path][method]["responses"]["401"].is_object(),
            "{method} {path}: 401"
        );
    }
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["SyncDownloadRequest"]["properties"]["download_url"]["minLength"],
        1
    );
    assert_eq!(
        schemas["SyncS3Request"]["properties"]["bucket"]["minLength"],
        1
    );
    assert_eq!(
        schemas["Delivery"]["properties"]["trace_id"]["minLength"],
        1
    );
    assert_eq!(
        paths["/api/v1/scan/sync/binary"]["post"]["requestBody"]["required"],
        false
    );
}

#[tokio::test]
async fn a_body_announced_over_the_limit_is_413_before_it_is_sent() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::start_with(|c| c.max_body_bytes = Some(1 << 20)).await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // The head alone: the server must not wait for 2 MiB that the limit refuses anyway (the
    // idle timeout is the default minute, so waiting would fail the read below).
    let head = format!(
        "POST /api/v1/scan/sync/binary HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {KEY}\r\nContent-Length: {}\r\n\r\n",
        2 << 20
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut answer))
        .await
        .expect("the server should answer from the head")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("limit of 1048576 bytes"), "{answer}");
}

#[tokio::test]
async fn only_a_plain_host_header_becomes_the_base_of_location() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::start().await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let submit = |host: &'static str, trace: &'static str| {
        let addr = addr.clone();
        async move {
            let body = format!(
                r#"{{"download_url": "https://example.com/a.zip", "trace_id": "{trace}"}}"#
            );
            let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let request = format!(
                "POST /api/v1/scan/async/download HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(request.as_bytes()).await.unwrap();
            let mut answer = String::new();
            socket.read_to_string(&mut answer).await.unwrap();
            answer
        }
    };
    for (host, trace) in [
        ("evil.example/phish?", "a"),
        ("user@evil.example", "b"),
        ("evil.example#x", "c"),
    ] {
        let answer = submit(host, trace).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{host}: {answer}");
        assert!(
            answer.contains("the Host header is not a host name"),
            "{host}: {answer}"
        );
        assert!(
            !answer.to_ascii_lowercase().contains("location:"),
            "{host}: {answer}"
        );
    }
    let answer = submit("scan.internal:8090", "d").await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(
        answer.contains("location: http://scan.internal:8090/api/v1/scan/async/result?trace_id=d"),
        "{answer}"
    );
}

async fn poll_as(server: &Server, key: &str, trace_id: &str) -> reqwest::Response {
    server
        .client
        .get(server.url(&format!("/api/v1/scan/async/result?trace_id={trace_id}")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

async fn submit_as(server: &Server, key: &str, url: &str, trace_id: &str) -> reqwest::Response {
    server
        .client
        .post(server.url("/api/v1/scan/async/download"))
        .bearer_auth(key)
        .json(&json!({"download_url": url, "trace_id": trace_id}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_trace_id_belongs_to_the_key_that_submitted_it() {
    let peer = Peer::start().await;
    let infected = peer.file("eicar.com", eicar());
    let clean = peer.file("clean.txt", b"just text".to_vec());
    let server = Server::start().await;
    assert_eq!(
        submit_as(&server, KEY, &infected, "shared-name")
            .await
            .status(),
        201
    );
    let mine = server.result("shared-name", Duration::from_secs(20)).await;
    assert_eq!(mine["status"], "infected");
    // Another key neither reads the result nor replaces it: its own job under the same name is
    // its own.
    assert_eq!(
        poll_as(&server, OTHER_KEY, "shared-name").await.status(),
        404
    );
    assert_eq!(
        submit_as(&server, OTHER_KEY, &clean, "shared-name")
            .await
            .status(),
        201
    );
    let mut theirs = Value::Null;
    for _ in 0..400 {
        let response = poll_as(&server, OTHER_KEY, "shared-name").await;
        if response.status() == 200 {
            theirs = response.json().await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(theirs["status"], "clean");
    let still_mine: Value = poll_as(&server, KEY, "shared-name")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        still_mine["status"], "infected",
        "the first key's result was not replaced"
    );
}

#[tokio::test]
async fn shared_trace_ids_are_one_space_for_every_key() {
    let peer = Peer::start().await;
    let infected = peer.file("eicar.com", eicar());
    let server = Server::start_with(|c| c.shared_trace_ids = true).await;
    assert_eq!(
        submit_as(&server, KEY, &infected, "team-id").await.status(),
        201
    );
    server.result("team-id", Duration::from_secs(20)).await;
    let seen: Value = poll_as(&server, OTHER_KEY, "team-id")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(seen["status"], "infected");
}

#[tokio::test]
async fn metrics_need_the_metrics_token_when_one_is_set() {
    let server = Server::start_with(|c| c.http.metrics_token = Some("scrape-token-1".into())).await;
    let metrics = |token: Option<&'static str>| {
        let mut request = server.client.get(server.url("/metrics"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(metrics(None).await.unwrap().status(), 401);
    assert_eq!(
        metrics(Some(KEY)).await.unwrap().status(),
        401,
        "an API key is not the metrics token"
    );
    let allowed = metrics(Some("scrape-token-1")).await.unwrap();
    assert_eq!(allowed.status(), 200);
    assert!(allowed.text().await.unwrap().contains("verdict_scans"));

    // The token closes every count: the status page, and /health's.
    let get = |path: &'static str, token: Option<&'static str>| {
        let mut request = server.client.get(server.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(get("/", None).await.unwrap().status(), 401);
    assert_eq!(
        get("/", Some("scrape-token-1")).await.unwrap().status(),
        200
    );
    let health: serde_json::Value = get("/health", None).await.unwrap().json().await.unwrap();
    assert_eq!(
        health,
        serde_json::json!({"status": "ok"}),
        "up, without counts"
    );
    let health: serde_json::Value = get("/health", Some("scrape-token-1"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(health["pending_jobs"].is_u64(), "{health}");
}

#[tokio::test]
async fn the_status_page_shows_the_queue_last_hours_jobs_workers_and_engines_without_a_key() {
    let peer = Peer::start().await;
    let infected = peer.file("eicar.com", eicar());
    let server = Server::start().await;
    assert_eq!(
        submit_as(&server, KEY, &infected, "for-the-page")
            .await
            .status(),
        201
    );
    server.result("for-the-page", Duration::from_secs(20)).await;
    // The result is stored before the job leaves the queue: wait for the queue to be empty,
    // which is what the page is asserted to show.
    test_support::wait_until("the queue to empty", Duration::from_secs(10), || async {
        let health: serde_json::Value = server
            .client
            .get(server.url("/health"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        health["pending_jobs"] == 0
    })
    .await;
    let page = server.client.get(server.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200, "no key needed");
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("0 jobs waiting or running"), "{html}");
    // One infected job in the last hour, shown in the table's second row, second cell.
    let finished = html.split("<table id=\"finished\">").nth(1).unwrap();
    let counts: Vec<&str> = finished
        .split("<td>")
        .skip(1)
        .map(|cell| cell.split("</td>").next().unwrap())
        .collect();
    assert_eq!(counts[..3], ["0", "1", "0"], "{finished}");
    assert!(html.contains("<td>yara</td><td class=\"ok\">ok"), "{html}");
    assert!(html.contains("id=\"workers\""), "{html}");
    assert!(
        !html.contains(KEY) && !html.contains("callback-secret"),
        "nothing secret on it"
    );
}
