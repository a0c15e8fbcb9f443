//! The servers' edge over real loopback sockets: header and keep-alive timeouts, the head-size
//! bound, the connection cap, stalled bodies, bounded multipart heads and the drain deadline.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_edge::body::{self, BodyError, Form};
use http_edge::{EdgeConfig, error_response};
use test_support::wait_until;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn answer(err: BodyError) -> Response {
    let status = match err {
        BodyError::Stalled(_) => StatusCode::REQUEST_TIMEOUT,
        _ => StatusCode::BAD_REQUEST,
    };
    error_response(status, &err.to_string())
}

/// Spools the whole body and answers its length.
async fn spool(request: Request) -> Response {
    let config = scan_core::SpoolPolicy::default();
    match body::spool(request.into_body().into_data_stream(), config).await {
        Ok(input) => input.size().to_string().into_response(),
        Err(e) => answer(e),
    }
}

/// Counts the parts of a multipart body.
async fn parts(request: Request) -> Response {
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let boundary = match Form::boundary(&content_type) {
        Ok(boundary) => boundary,
        Err(e) => return answer(e),
    };
    let mut form = Form::new(request.into_body(), boundary, 4096);
    let mut count = 0;
    loop {
        match form.next_field().await {
            Ok(Some(field)) => {
                if let Err(e) = body::drain(field).await {
                    return answer(e);
                }
                count += 1;
            }
            Ok(None) => return count.to_string().into_response(),
            Err(e) => return answer(e),
        }
    }
}

struct Running {
    address: std::net::SocketAddr,
    /// Requests to `/slow` and `/brief` whose handler has started.
    entered: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(config: EdgeConfig) -> Running {
    let entered = Arc::new(AtomicUsize::new(0));
    let (slow_entered, brief_entered) = (Arc::clone(&entered), Arc::clone(&entered));
    let app = Router::new()
        .route("/", get(|| async { "hello" }))
        .route(
            "/slow",
            get(|| async move {
                slow_entered.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(3600)).await;
                "never"
            }),
        )
        .route(
            "/brief",
            get(|| async move {
                brief_entered.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                "done"
            }),
        )
        .route("/spool", post(spool))
        .route("/parts", post(parts));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(async move {
        http_edge::serve(listener, app, &config, Duration::from_secs(1), async {
            let _ = stopped.await;
        })
        .await
    });
    Running {
        address,
        entered,
        stop: Some(stop),
        served,
    }
}

fn quick() -> EdgeConfig {
    EdgeConfig {
        header_timeout_secs: 1,
        ..EdgeConfig::default()
    }
}

/// Reads until the server closes the connection (or `limit` passes, which fails the test).
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> String {
    let mut all = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server kept the connection open");
    String::from_utf8_lossy(&all).into_owned()
}

#[tokio::test]
async fn a_client_sending_headers_slowly_is_cut_off() {
    let server = start(quick()).await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    let mut closed = false;
    // One header line every 300 ms; with a 1 s header timeout the server closes within a few.
    for i in 0..20 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if stream
            .write_all(format!("X-Line-{i}: slow\r\n").as_bytes())
            .await
            .is_err()
        {
            closed = true;
            break;
        }
        let mut buf = [0u8; 64];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buf)).await
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "a request head sent over 6 s was still being read");
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() {
    let server = start(quick()).await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let text = read_to_close(&mut stream, Duration::from_secs(10)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("hello"), "{text}");
}

#[tokio::test]
async fn an_oversized_request_head_gets_431() {
    let server = start(EdgeConfig {
        max_header_bytes: 8 * 1024,
        ..EdgeConfig::default()
    })
    .await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    let big = "a".repeat(16 * 1024);
    let request = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    let _ = stream.write_all(request.as_bytes()).await;
    let text = read_to_close(&mut stream, Duration::from_secs(10)).await;
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
}

#[tokio::test]
async fn connections_past_the_cap_wait_until_one_closes() {
    let server = start(EdgeConfig {
        max_connections: 2,
        header_timeout_secs: 60,
        ..EdgeConfig::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(server.address).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(stream);
    }
    let mut third = TcpStream::connect(server.address).await.unwrap();
    third
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "a third connection was served while two were open"
    );
    drop(held.pop());
    let text = read_to_close(&mut third, Duration::from_secs(10)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[tokio::test]
async fn a_body_that_stalls_gets_408_and_time_spent_waiting_for_it_counts() {
    let server = start(EdgeConfig::default()).await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream
        .write_all(b"POST /spool HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nfirst bytes")
        .await
        .unwrap();
    let text = read_to_close(&mut stream, Duration::from_secs(10)).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("sent nothing for 1 s"), "{text}");
}

#[tokio::test]
async fn a_stall_inside_a_text_part_is_timed_out_too() {
    let server = start(EdgeConfig::default()).await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    let head = "POST /parts HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XX\r\nContent-Length: 1000\r\n\r\n";
    let body = "--XX\r\nContent-Disposition: form-data; name=\"composite\"\r\n\r\nNO";
    stream
        .write_all(format!("{head}{body}").as_bytes())
        .await
        .unwrap();
    let text = read_to_close(&mut stream, Duration::from_secs(10)).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
}

#[tokio::test]
async fn multipart_without_a_boundary_in_sight_is_refused_early() {
    let server = start(EdgeConfig::default()).await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    // Announced as 256 MiB; the answer must come after a few KiB of it, not the whole.
    let head = "POST /parts HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XX\r\nContent-Length: 268435456\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let junk = vec![b'j'; 16 * 1024];
    let mut sent = 0usize;
    let mut answer = Vec::new();
    while sent < 8 * 1024 * 1024 {
        if stream.write_all(&junk).await.is_err() {
            break;
        }
        sent += junk.len();
        let mut buf = [0u8; 1024];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(5), stream.read(&mut buf)).await
        {
            answer.extend_from_slice(&buf[..n]);
            break;
        }
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 400"),
        "after {sent} bytes: {text}"
    );
    assert!(sent <= 1024 * 1024, "answered only after {sent} bytes");
    // A part whose head never ends is refused the same way.
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
        .write_all(b"--XX\r\nContent-Disposition: form-data; name=\"a\"\r\nX-Endless: ")
        .await
        .unwrap();
    let mut answered = String::new();
    for _ in 0..512 {
        if stream.write_all(&junk).await.is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(5), stream.read(&mut buf)).await
        {
            answered = String::from_utf8_lossy(&buf[..n]).into_owned();
            break;
        }
    }
    assert!(answered.starts_with("HTTP/1.1 400"), "{answered}");
    assert!(answered.contains("longer than 4096 bytes"), "{answered}");
}

#[tokio::test]
async fn well_formed_multipart_still_reads() {
    let server = start(EdgeConfig::default()).await;
    let client = reqwest::Client::new();
    let form = reqwest::multipart::Form::new()
        .text("composite", "NONE")
        .part(
            "documents",
            reqwest::multipart::Part::bytes(vec![7u8; 300_000]).file_name("a.bin"),
        );
    let response = client
        .post(format!("http://{}/parts", server.address))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "2");
}

#[tokio::test]
async fn shutdown_lets_short_requests_finish_and_cuts_long_ones_at_the_deadline() {
    let mut server = start(EdgeConfig {
        drain_secs: 2,
        ..EdgeConfig::default()
    })
    .await;
    let client = reqwest::Client::new();
    let brief = tokio::spawn(
        client
            .get(format!("http://{}/brief", server.address))
            .send(),
    );
    let slow = tokio::spawn(client.get(format!("http://{}/slow", server.address)).send());
    let entered = Arc::clone(&server.entered);
    wait_until(
        "both requests are in their handlers",
        Duration::from_secs(10),
        || {
            let entered = Arc::clone(&entered);
            async move { entered.load(Ordering::SeqCst) == 2 }
        },
    )
    .await;
    let _ = server.stop.take().unwrap().send(());
    let served = tokio::time::timeout(Duration::from_secs(20), &mut server.served).await;
    assert!(
        served.is_ok(),
        "serve did not return after the drain deadline"
    );
    let brief = brief.await.unwrap().unwrap();
    assert_eq!(brief.text().await.unwrap(), "done");
    assert!(
        slow.await.unwrap().is_err(),
        "the hour-long request was cut off"
    );
    assert!(
        TcpStream::connect(server.address).await.is_err(),
        "no longer accepting"
    );
}
