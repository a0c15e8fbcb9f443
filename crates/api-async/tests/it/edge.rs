//! The real `verdict-async` binary against slow clients over loopback: trickled bodies are cut
//! off by the minimum pace, and one address cannot take every connection.

use std::time::Duration;

use test_support::trickle;

use crate::testutil::{KEY, Process, process_toml};

#[tokio::test]
async fn trickling_clients_are_cut_off_and_one_address_cannot_take_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}[queue]\ntype = \"embedded\"\npath = \"{}\"\n[http]\nmax_connections = 20\nmax_connections_per_address = 6\nmin_body_rate = 1000\nbody_rate_window_secs = 2\n",
        process_toml(dir.path()),
        dir.path().join("queue.redb").display()
    );
    let server = Process::start(dir.path(), "edge", &config).await;
    let addr: std::net::SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    let body = br#"{"download_url": "http://127.0.0.1:9/a", "trace_id": "slow"}"#.to_vec();
    let head = format!(
        "POST /api/v1/scan/async/download HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let binary_head = format!(
        "POST /api/v1/scan/sync/binary HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Length: 1000\r\n\r\n"
    );
    // 30 connections from one address (more than the 20 in all), each trickling a byte every
    // 500 ms; one of them an upload to scan in the request.
    let mut trickles: Vec<_> = (0..29)
        .map(|_| {
            tokio::spawn(trickle(
                addr,
                "127.0.0.1",
                head.clone(),
                body.clone(),
                Duration::from_millis(500),
            ))
        })
        .collect();
    trickles.push(tokio::spawn(trickle(
        addr,
        "127.0.0.1",
        binary_head,
        vec![b'x'; 1000],
        Duration::from_millis(500),
    )));
    let other = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let mut health = None;
    for _ in 0..50 {
        if let Ok(answer) = other.get(format!("{}/health", server.base)).send().await {
            health = Some(answer.status().as_u16());
            break;
        }
    }
    assert_eq!(health, Some(200), "another address got no answer");
    let mut refused = 0;
    let mut timed_out = 0;
    for answer in futures::future::join_all(trickles).await {
        let answer = answer.unwrap();
        if answer.starts_with("HTTP/1.1 503") {
            assert!(answer.contains("too many open connections"), "{answer}");
            refused += 1;
        } else {
            assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
            timed_out += 1;
        }
    }
    assert!(refused >= 24, "{refused} refused past the 6 per address");
    assert!(timed_out >= 1, "the admitted ones are cut off by the pace");
}
