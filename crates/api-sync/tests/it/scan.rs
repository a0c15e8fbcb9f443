//! Scanning uploads: verdict shapes, the binary form, bad requests, aborted and huge uploads.

use scan_core::testing::{self, eicar};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::testutil::{Server, WITHIN, detection_files, json, wait_until};

#[tokio::test]
async fn clean_infected_and_demo_files_in_the_contract_shape() {
    let server = Server::start().await;
    let token = server.token().await;

    let body = json(
        server
            .scan(&token, "notes.txt", b"plain words".to_vec(), None)
            .await,
    )
    .await;
    assert_eq!(body["result"], "Clean");
    assert_eq!(body["detectedInfections"], serde_json::json!([]));
    assert_eq!(body["errorMessage"], serde_json::Value::Null);
    assert_eq!(body["trueFileType"], "text");
    let date = body["dateScanned"].as_str().unwrap();
    assert!(
        date.ends_with('Z')
            && time::OffsetDateTime::parse(date, &time::format_description::well_known::Rfc3339)
                .is_ok(),
        "{date}"
    );

    let body = json(server.scan(&token, "eicar.com", eicar(), None).await).await;
    assert_eq!(body["result"], "Infected");
    assert_eq!(
        body["detectedInfections"],
        serde_json::json!([{ "file": "eicar.com", "infection": "EICAR_Test_File" }])
    );

    let body = json(
        server
            .scan(&token, "DemoFiles", testing::demo_files(), None)
            .await,
    )
    .await;
    assert_eq!(body["result"], "Infected");
    assert_eq!(
        detection_files(&body),
        [
            "DemoFiles/eicar.com",
            "DemoFiles/eicar.com.txt",
            "DemoFiles/eicar_com.zip/eicar.com",
            "DemoFiles/eicarcom2.zip/eicar_com.zip/eicar.com",
        ]
    );

    // Unscannable: a bomb, with the reason.
    let body = json(
        server
            .scan(&token, "zeros.gz", testing::gzip_of_zeros(1 << 30), None)
            .await,
    )
    .await;
    assert_eq!(body["result"], "Unscannable");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("MaxCompressionRatio"),
        "{body}"
    );
}

#[tokio::test]
async fn paths_are_case_insensitive_and_other_file_part_names_work() {
    let server = Server::start().await;
    let token = server.token().await;
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(eicar()).file_name("x.com"),
    );
    let response = server
        .client
        .post(server.url("/API/scan"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        json(response).await["detectedInfections"][0]["file"],
        "x.com"
    );
}

#[tokio::test]
async fn the_binary_body_form_takes_file_name_from_a_header() {
    let server = Server::start().await;
    let token = server.token().await;
    let response = server
        .client
        .post(server.url("/api/Scan"))
        .bearer_auth(&token)
        .header("Content-Type", "application/octet-stream")
        .header("File-Name", "report.zip")
        .body(testing::zip(&[("eicar.com", &eicar())]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        detection_files(&json(response).await),
        ["report.zip/eicar.com"]
    );
}

#[tokio::test]
async fn missing_file_part_and_malformed_multipart_are_400() {
    let server = Server::start().await;
    let token = server.token().await;
    let form = reqwest::multipart::Form::new().text("composite", "NONE");
    let response = server
        .client
        .post(server.url("/api/Scan"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(
        json(response).await["error"]
            .as_str()
            .unwrap()
            .contains("documents")
    );

    let response = server
        .client
        .post(server.url("/api/Scan"))
        .bearer_auth(&token)
        .header("Content-Type", "multipart/form-data; boundary=XYZ")
        .body("--XYZ\r\nContent-Disposition: form-data; name=\"documents\"; filename=\"a\"\r\n\r\nunterminated")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = server
        .client
        .post(server.url("/api/Scan"))
        .bearer_auth(&token)
        .header("Content-Type", "multipart/form-data")
        .body("no boundary at all")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn an_upload_aborted_half_way_leaves_nothing_behind() {
    let server = Server::start().await;
    let token = server.token().await;
    let mut socket = server
        .start_raw_upload(
            &token,
            "multipart/form-data; boundary=B",
            200 << 20,
            "--B\r\nContent-Disposition: form-data; name=\"documents\"; filename=\"big.bin\"\r\n\r\n",
        )
        .await;
    let chunk = vec![7u8; 1 << 20];
    for _ in 0..20 {
        socket.write_all(&chunk).await.unwrap();
    }
    drop(socket);
    // The server notices, fails that request, and keeps serving; no spool file remains.
    wait_until("the aborted upload gives its slot back", WITHIN, || async {
        server
            .metrics()
            .await
            .contains("verdict_scan_slots_taken 0")
    })
    .await;
    wait_until("the spool is empty", WITHIN, || async {
        std::fs::read_dir(server.spool_dir()).unwrap().count() == 0
    })
    .await;
    let health = server
        .client
        .get(server.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let body = json(
        server
            .scan(&token, "after.txt", b"fine".to_vec(), None)
            .await,
    )
    .await;
    assert_eq!(body["result"], "Clean");
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("verdict_scans_total{result=\"Clean\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn three_gib_stream_through_without_being_buffered() {
    use futures::StreamExt;
    use sha2::Digest;
    const SIZE: u64 = 3 << 30;
    const CHUNK: usize = 1 << 20;
    let server = Server::start().await;
    let token = server.token().await;
    // Generated on the fly: a 1 MiB pattern, varied per chunk so the file is not one repeat.
    let (hash_tx, hash_rx) = std::sync::mpsc::channel::<bytes::Bytes>();
    let hasher = std::thread::spawn(move || {
        let mut sha = sha2::Sha256::new();
        for chunk in hash_rx {
            sha.update(&chunk);
        }
        hex::encode(sha.finalize())
    });
    let pattern: Vec<u8> = (0..CHUNK).map(|i| (i * 31 % 251) as u8).collect();
    let stream = futures::stream::iter(0..SIZE / CHUNK as u64).map(move |i| {
        let mut chunk = pattern.clone();
        chunk[..8].copy_from_slice(&i.to_le_bytes());
        let chunk = bytes::Bytes::from(chunk);
        let _ = hash_tx.send(chunk.clone());
        Ok::<_, std::io::Error>(chunk)
    });
    let part =
        reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(stream), SIZE)
            .file_name("huge.bin");
    let form = reqwest::multipart::Form::new().part("documents", part);
    let response = server
        .client
        .post(server.url("/api/Scan"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = json(response).await;
    assert_eq!(body["result"], "Clean", "{body}");
    assert_eq!(body["size"], SIZE);
    assert_eq!(body["sha256"].as_str().unwrap(), hasher.join().unwrap());
    assert_eq!(std::fs::read_dir(server.spool_dir()).unwrap().count(), 0);
    let mut buf = [0u8; 1];
    let _ = tokio::io::empty().read(&mut buf).await;
}

#[tokio::test]
async fn uploads_over_the_configured_limit_get_413() {
    let server = Server::start_with(|c| c.max_body_bytes = Some(1 << 20)).await;
    let token = server.token().await;
    let response = server
        .scan(&token, "big.bin", vec![1u8; 2 << 20], None)
        .await;
    assert_eq!(response.status(), 413);
    assert!(
        json(response).await["error"]
            .as_str()
            .unwrap()
            .contains("limit")
    );
}

#[tokio::test]
async fn health_and_openapi_need_no_token() {
    let server = Server::start().await;
    let health = server
        .client
        .get(server.url("/HEALTH"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(json(health).await["status"], "ok");
    let doc = json(
        server
            .client
            .get(server.url("/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/Token",
        "/api/Scan",
        "/api/Scan/Existing",
        "/api/Scan/URL",
        "/health",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    for path in ["/api/Scan", "/api/Scan/Existing", "/api/Scan/URL"] {
        assert!(
            doc["paths"][path]["post"]["responses"]["401"].is_object(),
            "{path}: 401"
        );
    }
    assert!(doc["paths"]["/metrics"]["get"]["responses"]["401"].is_object());
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["ExistingRequest"]["properties"]["container"]["minLength"],
        1
    );
    assert_eq!(
        schemas["ExistingRequest"]["properties"]["objectPath"]["minLength"],
        1
    );
    assert_eq!(schemas["UrlRequest"]["properties"]["url"]["minLength"], 1);
    assert_eq!(
        doc["paths"]["/api/Scan"]["post"]["requestBody"]["required"],
        false
    );
    let verdict = &doc["components"]["schemas"]["SyncScanResponse"]["properties"];
    for field in [
        "dateScanned",
        "detectedInfections",
        "errorMessage",
        "result",
        "trueFileType",
    ] {
        assert!(
            verdict[field].is_object(),
            "{field} missing from the verdict schema"
        );
    }
}

#[tokio::test]
async fn more_scans_than_allowed_get_503() {
    let server = Server::start_with(|c| c.max_concurrent_scans = 1).await;
    let token = server.token().await;
    // Hold the only scan slot with an upload that is still arriving.
    let slow = server
        .start_raw_upload(&token, "application/octet-stream", 1_000_000, "first bytes")
        .await;
    wait_until("the slow upload holds the slot", WITHIN, || async {
        server
            .metrics()
            .await
            .contains("verdict_scan_slots_taken 1")
    })
    .await;
    let response = server.scan(&token, "b.txt", b"x".to_vec(), None).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    // A client that writes its whole (small) request before reading gets the 503 and keeps its
    // connection: the refused body is read and dropped, not left to break the pipe.
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let body = vec![b'z'; 200 * 1024];
    for _ in 0..2 {
        let head = format!(
            "POST /api/Scan HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        socket.write_all(&body).await.unwrap();
        let mut answer = vec![0u8; 4096];
        let n = socket.read(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    }
    drop(slow);
}

#[tokio::test]
async fn an_upload_that_stalls_gets_408_and_frees_its_slot() {
    let server = Server::start_with(|c| {
        c.upload_idle_timeout_secs = 1;
        c.max_concurrent_scans = 1;
    })
    .await;
    let token = server.token().await;
    let mut stalled = server
        .start_raw_upload(
            &token,
            "application/octet-stream",
            1_000_000,
            "a few bytes, then nothing",
        )
        .await;
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stalled.read(&mut answer),
    )
    .await
    .expect("the server answers a stalled upload")
    .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("sent nothing"), "{answer}");
    // The only scan slot is free again.
    let body = json(
        server
            .scan(&token, "next.txt", b"fine".to_vec(), None)
            .await,
    )
    .await;
    assert_eq!(body["result"], "Clean");
    assert_eq!(std::fs::read_dir(server.spool_dir()).unwrap().count(), 0);
}

#[tokio::test]
async fn a_stall_inside_a_text_part_or_a_second_file_gets_408_and_frees_the_slot() {
    let server = Server::start_with(|c| {
        c.upload_idle_timeout_secs = 1;
        c.max_concurrent_scans = 1;
    })
    .await;
    let token = server.token().await;
    let content_type = "multipart/form-data; boundary=XYZ";
    for first in [
        // Stalls inside `composite`, before any file.
        "--XYZ\r\nContent-Disposition: form-data; name=\"composite\"\r\n\r\nNO",
        // A whole file, then a stall inside a second file part that is only drained.
        "--XYZ\r\nContent-Disposition: form-data; name=\"documents\"; filename=\"a.txt\"\r\n\r\nfine\r\n--XYZ\r\nContent-Disposition: form-data; name=\"other\"; filename=\"b.txt\"\r\n\r\nsome",
    ] {
        let mut stalled = server
            .start_raw_upload(&token, content_type, 1_000_000, first)
            .await;
        let mut answer = vec![0u8; 4096];
        let n = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            stalled.read(&mut answer),
        )
        .await
        .expect("the server answers a stalled multipart body")
        .unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    let body = json(
        server
            .scan(&token, "next.txt", b"fine".to_vec(), None)
            .await,
    )
    .await;
    assert_eq!(body["result"], "Clean", "the one slot is free again");
}

#[tokio::test]
async fn a_multipart_body_that_never_shows_its_boundary_is_400_after_a_few_kib() {
    use tokio::io::AsyncWriteExt;
    let server = Server::start().await;
    let token = server.token().await;
    let mut socket = server
        .start_raw_upload(&token, "multipart/form-data; boundary=XYZ", 256 << 20, "")
        .await;
    let junk = vec![b'j'; 16 * 1024];
    let mut sent = 0usize;
    let mut answer = Vec::new();
    while sent < 16 << 20 {
        if socket.write_all(&junk).await.is_err() {
            break;
        }
        sent += junk.len();
        let mut buf = [0u8; 2048];
        if let Ok(Ok(n)) =
            tokio::time::timeout(std::time::Duration::from_millis(5), socket.read(&mut buf)).await
        {
            answer.extend_from_slice(&buf[..n]);
            break;
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 400"),
        "after {sent} bytes: {answer}"
    );
    assert!(answer.contains("multipart"), "{answer}");
    assert!(sent <= 1 << 20, "answered only after {sent} bytes of junk");
}

#[tokio::test]
async fn an_upload_announced_over_the_limit_is_413_before_it_is_sent() {
    use tokio::io::AsyncReadExt;
    let server = Server::start_with(|c| c.max_body_bytes = Some(1 << 20)).await;
    let token = server.token().await;
    // The head alone, for both body kinds: the server must not wait for 2 MiB that the limit
    // refuses anyway (the idle timeout is the default minute, so waiting fails the read).
    for content_type in [
        "application/octet-stream",
        "multipart/form-data; boundary=b",
    ] {
        let mut socket = server
            .start_raw_upload(&token, content_type, 2 << 20, "")
            .await;
        let mut answer = vec![0u8; 4096];
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(10), socket.read(&mut answer))
                .await
                .expect("the server should answer from the head")
                .unwrap();
        let answer = String::from_utf8_lossy(&answer[..read]);
        assert!(
            answer.starts_with("HTTP/1.1 413"),
            "{content_type}: {answer}"
        );
    }
}

#[tokio::test]
async fn an_answer_says_an_engine_failed_without_saying_where_it_lives() {
    // clamd at a loopback port nobody listens on: a real outage.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let server = Server::start_with(|c| {
        c.engines = vec![engines::EngineConfig::Clamd(engines::ClamdConfig {
            address: closed.to_string(),
            connect_timeout_secs: 0.5,
            ..Default::default()
        })];
    })
    .await;
    let token = server.token().await;
    let body =
        crate::testutil::json(server.scan(&token, "a.txt", b"hello".to_vec(), None).await).await;
    assert_eq!(body["result"], "Error", "{body}");
    let text = body.to_string();
    assert!(
        text.contains("clamd") && text.contains("could not be reached"),
        "{text}"
    );
    assert!(
        !text.contains(&closed.port().to_string()),
        "the engine's address: {text}"
    );
    assert!(!text.contains("refused"), "the system's words: {text}");
}
