//! The workspace's test plumbing, shared by every crate's tests: service tests that skip (or,
//! under the README's test command, fail) by one rule, [`wait_until`] in place of fixed sleeps,
//! golden answers ([`assert_golden`]) and a slow client ([`trickle`]). The sample builders (EICAR,
//! archives, documents, bombs) stay with the formats they build, in `scan_core::testing`.
//!
//! A `publish = false` crate that only dev-dependencies name, so none of it reaches a release
//! build. Panics on failure, as test helpers should.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

/// The variable that turns a skipped service test into a failure: the README's test command
/// sets it, so a service that did not start can never pass as a skip there.
pub const REQUIRE_SERVICES: &str = "VERDICT_TEST_REQUIRE_SERVICES";

/// The value of the service variable `name` (an address `scripts/services.sh` exports), or
/// `None` after one line on stderr saying the test is skipped, when a plain `cargo test` runs
/// without the services. Panics instead when [`REQUIRE_SERVICES`] is set.
pub fn service_var(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(value) => Some(value),
        Err(_) if std::env::var_os(REQUIRE_SERVICES).is_some() => panic!(
            "{name} is not set, and {REQUIRE_SERVICES} says every service must be there: scripts/services.sh did not start it"
        ),
        Err(_) => {
            // Straight to the process's stderr: the test harness captures eprintln! of passing
            // tests, and a skip must be seen.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "skipped {}: {name} is not set (scripts/test.sh starts the service; or `scripts/services.sh start` and source target/test-services/env)",
                std::thread::current().name().unwrap_or("a test")
            );
            None
        }
    }
}

/// The service variable's value, or return from the (test) function after saying it is
/// skipped; see [`service_var`].
#[macro_export]
macro_rules! service_or_skip {
    ($name:expr) => {
        match $crate::service_var($name) {
            Some(value) => value,
            None => return,
        }
    };
}

/// Waits until `check` holds, polling every 20 ms, or panics after `within` naming `what`: for
/// conditions that come true after some time (a job started, a slot taken, a result expired), in
/// place of a fixed sleep that is too short on a slow machine and wasted on a fast one.
pub async fn wait_until<F, Fut>(what: &str, within: std::time::Duration, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A connection from `source` (another loopback address is another client to a server) to
/// `addr` that sends `head`, then trickles `body` a byte every `every`, until the server
/// answers or closes: the status line and headers it answered with (empty if it closed without
/// a word). How the servers' edge tests play a slow client.
pub async fn trickle(
    addr: std::net::SocketAddr,
    source: &str,
    head: String,
    body: Vec<u8>,
    every: std::time::Duration,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket
        .bind(std::net::SocketAddr::new(
            source.parse().expect("a source address"),
            0,
        ))
        .expect("bind the source address");
    let stream = socket.connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let sender = tokio::spawn(async move {
        if writer.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        for byte in body {
            tokio::time::sleep(every).await;
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
        }
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        }
    }
    sender.abort();
    String::from_utf8_lossy(&answer).into_owned()
}

/// Compares `actual` with the golden JSON file at `path`, after `volatile` fields (dates,
/// timings, ids: JSON pointers such as `/dateScanned`) are replaced by `"<volatile>"`. With
/// `VERDICT_BLESS=1` the file is written instead, so a deliberate change of an API's answer is
/// one command and a reviewed diff.
pub fn assert_golden(path: &std::path::Path, mut actual: serde_json::Value, volatile: &[&str]) {
    for pointer in volatile {
        if let Some(value) = actual.pointer_mut(pointer) {
            *value = serde_json::Value::String("<volatile>".to_owned());
        }
    }
    let text = serde_json::to_string_pretty(&actual).expect("JSON") + "\n";
    if std::env::var_os("VERDICT_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("golden folder");
        std::fs::write(path, &text).expect("write the golden file");
        return;
    }
    let golden = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with VERDICT_BLESS=1 to write it from this answer:\n{text}",
            path.display()
        )
    });
    assert_eq!(
        golden,
        text,
        "the answer differs from {} (if that is intended, rerun with VERDICT_BLESS=1 and review the diff)",
        path.display()
    );
}
