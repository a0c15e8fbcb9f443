//! Login and tokens: the contract's shapes and every way a token can be wrong.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::testutil::{PASSWORD, SECRET, Server, USER, WITHIN, json, wait_until};

#[tokio::test]
async fn login_answers_the_contract_shape_with_or_without_content_type() {
    let server = Server::start().await;
    // No Content-Type at all: still JSON. Lower-case path: same endpoint.
    let body = format!(r#"{{"username": "{USER}", "password": "{PASSWORD}"}}"#);
    let response = server
        .client
        .post(server.url("/api/token"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let token = json(response).await;
    assert_eq!(token["tokenType"], "Bearer");
    assert_eq!(token["expiresIn"], 3600);
    assert!(token["accessToken"].as_str().unwrap().split('.').count() == 3);
}

#[tokio::test]
async fn wrong_password_and_unknown_user_look_the_same() {
    let server = Server::start().await;
    let mut bodies = Vec::new();
    for (user, password) in [(USER, "wrong"), ("nobody", PASSWORD)] {
        let response = server
            .client
            .post(server.url("/api/Token"))
            .json(&serde_json::json!({ "username": user, "password": password }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        bodies.push(json(response).await);
    }
    assert_eq!(
        bodies[0], bodies[1],
        "the answer must not say which was wrong"
    );
    assert_eq!(bodies[0]["error"], "wrong username or password");

    let response = server
        .client
        .post(server.url("/api/Token"))
        .body("username=alice")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(
        json(response).await["error"]
            .as_str()
            .unwrap()
            .contains("JSON")
    );
}

fn b64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn signed(alg: jsonwebtoken::Algorithm, exp: u64) -> String {
    let claims = serde_json::json!({ "sub": USER, "iat": exp.saturating_sub(3600), "exp": exp });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn expired_tampered_none_and_wrong_algorithm_tokens_get_401() {
    let server = Server::start().await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let good = server.token().await;
    let mut tampered = good.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(format!(r#"{{"sub":"{USER}","exp":{}}}"#, now + 3600).as_bytes())
    );
    let cases = [
        ("expired", signed(jsonwebtoken::Algorithm::HS256, now - 600)),
        ("tampered", tampered),
        ("none algorithm", none),
        ("HS512", signed(jsonwebtoken::Algorithm::HS512, now + 600)),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (what, token) in cases {
        let response = server.scan(&token, "a.txt", b"x".to_vec(), None).await;
        assert_eq!(response.status(), 401, "{what}");
        // One stable answer: the JWT parser's words stay in the log.
        assert_eq!(
            json(response).await["error"],
            "invalid or expired token",
            "{what}"
        );
    }
    let response = server
        .client
        .post(server.url("/api/Scan"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // The good token still works, and a valid token from another replica with the same key too.
    assert_eq!(
        server
            .scan(&good, "a.txt", b"x".to_vec(), None)
            .await
            .status(),
        200
    );
    let replica = signed(jsonwebtoken::Algorithm::HS256, now + 600);
    assert_eq!(
        server
            .scan(&replica, "a.txt", b"x".to_vec(), None)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn users_added_while_running_can_log_in() {
    let server = Server::start().await;
    // At once: a change within the same tick of the file system's clock must be seen too.
    api_sync::users::add_user(
        &server.dir.path().join("users"),
        "bob",
        "bob's long password",
    )
    .unwrap();
    let response = server
        .client
        .post(server.url("/api/Token"))
        .json(&serde_json::json!({ "username": "bob", "password": "bob's long password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn password_checks_past_the_limit_are_503_not_queued_without_bound() {
    // One argon2 check at a time and no waiting: guesses sent together find it taken.
    let server = Server::start_with(|c| {
        c.max_concurrent_logins = 1;
        c.login_wait_ms = 0;
    })
    .await;
    let guesses = (0..6).map(|i| {
        server
            .client
            .post(server.url("/api/Token"))
            .json(&serde_json::json!({ "username": USER, "password": format!("guess {i}") }))
            .send()
    });
    let answers = futures::future::join_all(guesses).await;
    let mut busy = 0;
    for answer in answers {
        let answer = answer.unwrap();
        match answer.status().as_u16() {
            401 => {}
            503 => {
                busy += 1;
                assert_eq!(answer.headers()["retry-after"], "1");
            }
            other => panic!("a guess got {other}"),
        }
    }
    assert!(busy >= 1, "six guesses at once all got a password check");
    // The check is free again afterwards: the right password still logs in (asserts 200).
    assert!(!server.token().await.is_empty());
}

#[tokio::test]
async fn a_removed_users_token_stops_working() {
    let server = Server::start().await;
    let token = server.token().await;
    let response = server.scan(&token, "a.txt", b"x".to_vec(), None).await;
    assert_eq!(response.status(), 200);
    // The operator removes the user: the file is rewritten without the user's line, with a
    // modification time that differs from the one loaded however fine the clock is.
    let users = server.dir.path().join("users");
    let kept: String = std::fs::read_to_string(&users)
        .unwrap()
        .lines()
        .filter(|line| !line.starts_with(&format!("{USER}:")))
        .map(|line| format!("{line}\n"))
        .collect();
    let file = std::fs::File::create(&users).unwrap();
    std::io::Write::write_all(&mut &file, kept.as_bytes()).unwrap();
    file.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        .unwrap();
    let response = server.scan(&token, "a.txt", b"x".to_vec(), None).await;
    assert_eq!(response.status(), 401);
    assert_eq!(json(response).await["error"], "invalid or expired token");
}

#[tokio::test]
async fn failed_logins_are_counted_per_address_even_across_another_users_success() {
    let server = Server::start().await;
    api_sync::users::add_user(
        &server.dir.path().join("users"),
        "bob",
        "bob's long password",
    )
    .unwrap();
    let login = |source: &str, user: String, password: &'static str| {
        crate::testutil::client_from(source)
            .post(server.url("/api/Token"))
            .json(&serde_json::json!({ "username": user, "password": password }))
            .send()
    };
    // Bob exists once the server has re-read its users file (seen from an address of its own,
    // so nothing here counts against the one under test).
    wait_until("bob to be able to log in", WITHIN, || async {
        login("127.0.0.5", "bob".to_owned(), "bob's long password")
            .await
            .unwrap()
            .status()
            == 200
    })
    .await;
    for _ in 0..5 {
        let status = login("127.0.0.1", USER.to_owned(), "wrong")
            .await
            .unwrap()
            .status();
        assert_eq!(status, 401);
    }
    // Bob's login from the same address waits its turn and succeeds...
    let bob = login("127.0.0.1", "bob".to_owned(), "bob's long password")
        .await
        .unwrap()
        .status();
    assert_eq!(bob, 200);
    // ...and does not clear the address: 30 guesses at once, each at a different name, meet
    // its count, so they queue behind each other and most are refused without a check. A
    // check that finds every password check busy answers 503, as designed.
    let guesses = (0..30).map(|i| login("127.0.0.1", format!("user-{i}"), "guess"));
    let answers = futures::future::join_all(guesses).await;
    let mut refused = 0;
    for answer in answers {
        let answer = answer.unwrap();
        match answer.status().as_u16() {
            401 | 503 => {}
            429 => {
                refused += 1;
                let wait: u64 = answer.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(wait >= 1);
            }
            other => panic!("a guess got {other}"),
        }
    }
    assert!(
        refused >= 20,
        "only {refused} of 30 parallel guesses were refused"
    );
}

#[tokio::test]
async fn every_401_names_the_bearer_scheme_as_the_async_server_does() {
    let server = Server::start_with(|c| c.http.metrics_token = Some("scrape-token-1".into())).await;
    for (method, path) in [
        ("POST", "/api/Scan"),
        ("POST", "/api/Scan/URL"),
        ("GET", "/metrics"),
    ] {
        let response = server
            .client
            .request(method.parse().unwrap(), server.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{path}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer", "{path}");
    }
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .bearer_auth("scrape-token-1")
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
}

/// Starts the real binary with `--init` and returns it with everything it wrote to stderr up to
/// the moment it listens.
async fn start_binary(dir: &std::path::Path) -> (std::process::Child, String, String) {
    use std::io::BufRead;
    let config = dir.join("sync.toml");
    // Port 0: the server picks a free port and logs it, so no other test can take it between
    // a probe and the bind.
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nusers_file = \"{}\"\n[token]\nsecret = \"{SECRET}\"\n[storage]\ntype = \"local\"\nroot = \"{}\"\n",
            dir.join("users").display(),
            dir.display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_verdict-sync"))
        .arg("--config")
        .arg(&config)
        .arg("--init")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (text, address) = tokio::task::spawn_blocking(move || {
        let mut seen = String::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.unwrap();
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("verdict-sync listening") {
                let address = line
                    .split_whitespace()
                    .find_map(|word| word.strip_prefix("address="))
                    .map(str::to_owned);
                return (seen, address);
            }
        }
        (seen, None)
    })
    .await
    .unwrap();
    let address = address.unwrap_or_else(|| panic!("the server never listened: {text}"));
    (child, text, address)
}

#[tokio::test]
async fn the_first_start_prints_a_working_password_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut first, said, address) = start_binary(dir.path()).await;
    let password = said
        .lines()
        .skip_while(|l| !l.contains("created the user `admin`"))
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.contains("created the user"))
        .unwrap_or_else(|| panic!("no password shown: {said}"))
        .to_owned();
    let login = reqwest::Client::new()
        .post(format!("http://{address}/api/Token"))
        .json(&serde_json::json!({ "username": "admin", "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    first.kill().unwrap();
    first.wait().unwrap();
    let (mut second, said_again, _) = start_binary(dir.path()).await;
    assert!(!said_again.contains("created the user"), "{said_again}");
    assert!(
        !said_again.contains(&password),
        "the password is never shown again"
    );
    second.kill().unwrap();
    second.wait().unwrap();
    let users = std::fs::read_to_string(dir.path().join("users")).unwrap();
    assert_eq!(users.lines().count(), 1);
    assert!(!users.contains(&password));
}
