//! The real `verdict-sync` binary against slow and hostile clients over loopback: trickled
//! bodies (the login's included) are cut off by the minimum pace and give their scan slot
//! back, one address cannot take every connection, and logins hold up under guessing and
//! cross-site posts.

use std::time::Duration;

use test_support::trickle;

use crate::testutil::{Binary, PASSWORD, USER, client_from, wait_until};

/// Small limits, so a test sees them: 2 s windows of 1,000 bytes/s, 6 connections per
/// address, 20 in all.
const TIGHT: &str = "[http]\nmax_connections = 20\nmax_connections_per_address = 6\nmin_body_rate = 1000\nbody_rate_window_secs = 2\n";

async fn login_from(server: &Binary, source: &str, user: &str, password: &str) -> u16 {
    client_from(source)
        .post(server.url("/api/Token"))
        .json(&serde_json::json!({ "username": user, "password": password }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn trickling_clients_are_cut_off_and_one_address_cannot_take_every_connection() {
    let server = Binary::start(TIGHT).await;
    // 30 connections from one address, each trickling a login body a byte every 500 ms:
    // more than the server's 20 connections in all.
    let login_head = |length: usize| {
        format!(
            "POST /api/Token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
        )
    };
    let body = br#"{"username": "alice", "password": "a guess that takes its time"}"#.to_vec();
    let trickles: Vec<_> = (0..30)
        .map(|_| {
            tokio::spawn(trickle(
                server.addr,
                "127.0.0.1",
                login_head(body.len()),
                body.clone(),
                Duration::from_millis(500),
            ))
        })
        .collect();
    // Another client is served all the same.
    let mut health = None;
    for _ in 0..50 {
        if let Ok(answer) = client_from("127.0.0.2")
            .get(server.url("/health"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
        {
            health = Some(answer.status().as_u16());
            break;
        }
    }
    assert_eq!(health, Some(200), "another address got no answer");
    let answers = futures::future::join_all(trickles).await;
    let mut refused = 0;
    let mut timed_out = 0;
    for answer in answers {
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

#[tokio::test]
async fn a_trickled_upload_gives_its_scan_slot_back() {
    let server = Binary::start(TIGHT).await;
    let token: serde_json::Value = reqwest::Client::new()
        .post(server.url("/api/Token"))
        .json(&serde_json::json!({ "username": USER, "password": PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["accessToken"].as_str().unwrap().to_owned();
    let head = format!(
        "POST /api/Scan HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n"
    );
    let upload = tokio::spawn(trickle(
        server.addr,
        "127.0.0.1",
        head,
        vec![b'x'; 1000],
        Duration::from_millis(200),
    ));
    let slots = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("verdict_scan_slots_taken "))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse::<u64>().ok())
    };
    let metrics = || async {
        reqwest::get(server.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    wait_until(
        "the upload to take its slot",
        Duration::from_secs(10),
        || async { slots(&metrics().await) == Some(1) },
    )
    .await;
    let answer = upload.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    wait_until("the slot to come back", Duration::from_secs(10), || async {
        slots(&metrics().await) == Some(0)
    })
    .await;
}

#[tokio::test]
async fn guessing_from_one_address_does_not_keep_the_owner_out_from_another() {
    let server = Binary::start("").await;
    // 20 guesses at the user's password from one address, all at once: a few are checked (and
    // fail), the rest wait their turn or are refused.
    let mut guesses: Vec<_> = (0..20)
        .map(|_| {
            let request = client_from("127.0.0.1")
                .post(server.url("/api/Token"))
                .json(&serde_json::json!({ "username": USER, "password": "a wrong guess" }))
                .send();
            tokio::spawn(async move { request.await.unwrap().status().as_u16() })
        })
        .collect();
    // Some of them answered: the guesses are counted.
    let mut statuses = Vec::new();
    for guess in guesses.drain(..3) {
        statuses.push(guess.await.unwrap());
    }
    // The owner, from another address, while the guesser is held off: straight in.
    assert_eq!(
        login_from(&server, "127.0.0.3", USER, PASSWORD).await,
        200,
        "the owner was kept out by another address's guesses"
    );
    for guess in guesses {
        statuses.push(guess.await.unwrap());
    }
    assert!(
        statuses.iter().all(|s| matches!(s, 401 | 429 | 503)),
        "only designed answers: {statuses:?}"
    );
    assert!(statuses.contains(&429), "{statuses:?}");
}

#[tokio::test]
async fn a_burst_of_parallel_guesses_gets_few_password_checks() {
    let server = Binary::start("").await;
    let names: Vec<String> = (0..46).map(|i| format!("user-{i}")).collect();
    let guesses = names
        .iter()
        .map(|name| login_from(&server, "127.0.0.4", name, "guess"));
    let answers = futures::future::join_all(guesses).await;
    let checked = answers.iter().filter(|s| matches!(s, 401 | 503)).count();
    let refused = answers.iter().filter(|s| **s == 429).count();
    assert_eq!(checked + refused, 46, "only designed answers: {answers:?}");
    assert!(
        checked <= 10,
        "{checked} of 46 parallel guesses reached the password check"
    );
}

#[tokio::test]
async fn a_login_another_site_could_send_is_refused() {
    let server = Binary::start("").await;
    let client = reqwest::Client::new();
    let body = serde_json::json!({ "username": USER, "password": PASSWORD }).to_string();
    let post = |content_type: Option<&str>, extra: Option<(&str, &str)>| {
        let mut request = client.post(server.url("/api/Token")).body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        if let Some((name, value)) = extra {
            request = request.header(name, value);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // What an HTML form or a simple cross-origin fetch can send.
    assert_eq!(post(Some("text/plain"), None).await, 415);
    assert_eq!(
        post(Some("application/x-www-form-urlencoded"), None).await,
        415
    );
    assert_eq!(
        post(Some("multipart/form-data; boundary=x"), None).await,
        415
    );
    // A browser says where a request came from.
    assert_eq!(
        post(None, Some(("Sec-Fetch-Site", "cross-site"))).await,
        403
    );
    assert_eq!(
        post(None, Some(("Origin", "https://evil.example"))).await,
        403
    );
    // The contract's clients: JSON, or no type at all; and the page itself, same-origin.
    assert_eq!(post(Some("application/json"), None).await, 200);
    assert_eq!(post(None, None).await, 200);
    assert_eq!(
        post(
            Some("application/json"),
            Some(("Sec-Fetch-Site", "same-origin"))
        )
        .await,
        200
    );
}
