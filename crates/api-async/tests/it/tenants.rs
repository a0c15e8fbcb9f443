//! Keys as tenants: what each may scan, bulk-scan and post events for, its quota of queued
//! jobs, and callbacks that name it inside the signed body (signed with its own key when it
//! has one).

use std::time::Duration;

use scan_core::testing::eicar;
use serde_json::{Value, json};

use crate::testutil::{CALLBACK_SECRET, KEY, PLAIN_KEY, Peer, Server};

const BILLING: &str = "billing-key-0123456789";
const BILLING_CALLBACKS: &str = "billing-callbacks-0123456789";

fn billing() -> api_async::KeyConfig {
    toml::from_str(&format!(
        r#"
        name = "billing"
        key = "{BILLING}"
        scan = ["invoices/in/"]
        bulk = ["invoices/in/"]
        events = ["invoices/in/"]
        max_queued_jobs = 2
        callback_secret = "{BILLING_CALLBACKS}"
        "#
    ))
    .unwrap()
}

async fn post_as(server: &Server, key: &str, path: &str, body: &Value) -> reqwest::Response {
    server
        .client
        .post(server.url(path))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn created(bucket: &str, keys: &[&str]) -> Value {
    let records: Vec<Value> = keys
        .iter()
        .map(|key| json!({"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}))
        .collect();
    json!({ "Records": records })
}

#[tokio::test]
async fn a_key_reaches_only_its_own_buckets_and_prefixes() {
    let server = Server::start_with(|c| {
        c.keys.push(api_async::KeyConfig {
            max_queued_jobs: Some(100),
            ..billing()
        });
        c.events.buckets = vec!["watched".into(), "invoices".into()];
        c.workers = 0;
    })
    .await;
    for bucket in ["invoices", "payroll", "watched"] {
        std::fs::create_dir_all(server.data_dir().join(bucket).join("in")).unwrap();
    }
    let s3 = |bucket: &str, key: &str| json!({"bucket": bucket, "key": key, "trace_id": format!("{bucket}/{key}")});
    let status = |r: reqwest::Response| r.status().as_u16();

    // Scans.
    assert_eq!(
        status(
            post_as(
                &server,
                BILLING,
                "/api/v1/scan/async/s3",
                &s3("invoices", "in/a.pdf")
            )
            .await
        ),
        201
    );
    let refused = post_as(
        &server,
        BILLING,
        "/api/v1/scan/async/s3",
        &s3("payroll", "in/a.pdf"),
    )
    .await;
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("may not scan"),
        "{body}"
    );
    assert_eq!(
        status(
            post_as(
                &server,
                BILLING,
                "/api/v1/scan/async/s3",
                &s3("invoices", "out/a.pdf")
            )
            .await
        ),
        403
    );
    assert_eq!(
        status(
            post_as(
                &server,
                BILLING,
                "/api/v1/scan/sync/s3",
                &s3("payroll", "in/a.pdf")
            )
            .await
        ),
        403
    );

    // Bulk scans: inside the scope only; a plain key only over watched buckets.
    let bulk = |bucket: &str, prefix: &str| json!({"bucket": bucket, "prefix": prefix});
    assert_eq!(
        status(
            post_as(
                &server,
                BILLING,
                "/api/v1/scan/async/s3/bulk",
                &bulk("invoices", "in/")
            )
            .await
        ),
        201
    );
    assert_eq!(
        status(
            post_as(
                &server,
                BILLING,
                "/api/v1/scan/async/s3/bulk",
                &bulk("invoices", "")
            )
            .await
        ),
        403,
        "the whole bucket is more than in/"
    );
    assert_eq!(
        status(
            post_as(
                &server,
                BILLING,
                "/api/v1/scan/async/s3/bulk",
                &bulk("payroll", "in/")
            )
            .await
        ),
        403
    );
    assert_eq!(
        status(
            post_as(
                &server,
                PLAIN_KEY,
                "/api/v1/scan/async/s3/bulk",
                &bulk("payroll", "")
            )
            .await
        ),
        403
    );
    assert_eq!(
        status(
            post_as(
                &server,
                PLAIN_KEY,
                "/api/v1/scan/async/s3/bulk",
                &bulk("watched", "in/")
            )
            .await
        ),
        201
    );

    // Events: a plain key may post none; a scoped one only for its own objects.
    let plain = post_as(
        &server,
        PLAIN_KEY,
        "/api/v1/events/s3",
        &created("watched", &["in/x"]),
    )
    .await;
    assert_eq!(plain.status(), 403);
    let answer: Value = post_as(
        &server,
        BILLING,
        "/api/v1/events/s3",
        &created("invoices", &["in/mine.pdf", "out/not-mine.pdf"]),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        (answer["queued"].clone(), answer["ignored"].clone()),
        (json!(1), json!(1)),
        "out/ is not the key's: {answer}"
    );
}

#[tokio::test]
async fn one_key_cannot_fill_the_queue_for_the_others() {
    // No workers: what is queued stays queued.
    let server = Server::start_with(|c| {
        c.keys.push(billing());
        c.workers = 0;
    })
    .await;
    std::fs::create_dir_all(server.data_dir().join("invoices/in")).unwrap();
    let job = |n: u32| json!({"bucket": "invoices", "key": format!("in/{n}.pdf"), "trace_id": format!("t{n}")});
    for n in 0..2 {
        assert_eq!(
            post_as(&server, BILLING, "/api/v1/scan/async/s3", &job(n))
                .await
                .status(),
            201
        );
    }
    let over = post_as(&server, BILLING, "/api/v1/scan/async/s3", &job(2)).await;
    assert_eq!(over.status(), 429);
    assert!(over.headers().contains_key("retry-after"));
    let body: Value = over.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("quota"), "{body}");
    // Another key is not held up by it.
    assert_eq!(
        post_as(&server, KEY, "/api/v1/scan/async/s3", &job(3))
            .await
            .status(),
        201
    );
    assert!(server.metrics().await.contains("over_quota"));
}

#[tokio::test]
async fn callbacks_name_their_key_inside_the_signed_body_and_use_its_own_secret() {
    let peer = Peer::start().await;
    let server = Server::start_with(|c| c.keys.push(billing())).await;
    let url = peer.file("eicar.com", eicar());
    for (key, name) in [(BILLING, "billing"), (KEY, "shared")] {
        let answer = post_as(
            &server,
            key,
            "/api/v1/scan/async/download",
            &json!({"download_url": url, "callback_url": peer.callback_url(name), "trace_id": "same-id"}),
        )
        .await;
        assert_eq!(answer.status(), 204);
    }
    let callbacks = peer.accepted_callbacks(2, Duration::from_secs(20)).await;
    for callback in callbacks {
        let timestamp: u64 = callback.header("x-verdict-timestamp").parse().unwrap();
        let signature = callback.header("x-verdict-signature");
        let own = callback.body["key_id"].as_str().unwrap().to_owned();
        if own == api_async::keys::key_id(BILLING.as_bytes()) {
            assert!(api_async::verify_callback(
                BILLING_CALLBACKS.as_bytes(),
                timestamp,
                &callback.raw,
                signature
            ));
            assert!(
                !api_async::verify_callback(
                    CALLBACK_SECRET.as_bytes(),
                    timestamp,
                    &callback.raw,
                    signature
                ),
                "another tenant's receiver cannot verify it"
            );
        } else {
            assert_eq!(own, api_async::keys::key_id(KEY.as_bytes()));
            assert!(api_async::verify_callback(
                CALLBACK_SECRET.as_bytes(),
                timestamp,
                &callback.raw,
                signature
            ));
        }
        assert_eq!(callback.body["trace_id"], "same-id");
        assert_eq!(callback.body["status"], "infected");
    }
}

#[tokio::test]
async fn a_queued_job_of_a_key_whose_scope_narrowed_is_not_scanned() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let mut config = crate::testutil::base_config(dir.path());
    config.keys.push(billing());
    config.workers = 0;
    // The job would tag the object it scans.
    config.actions.on_requests = true;
    let server = Server::start_in(std::sync::Arc::clone(&dir), &config).await;
    std::fs::create_dir_all(server.data_dir().join("invoices/in")).unwrap();
    std::fs::write(server.data_dir().join("invoices/in/a.pdf"), b"%PDF-1.4").unwrap();
    let queued = post_as(
        &server,
        BILLING,
        "/api/v1/scan/async/s3",
        &json!({"bucket": "invoices", "key": "in/a.pdf", "trace_id": "narrowed"}),
    )
    .await;
    assert_eq!(queued.status(), 201);
    server.stop().await;

    // The operator narrows the key; the job queued before runs now.
    let mut narrowed = billing();
    narrowed.scan = toml::from_str::<api_async::KeyConfig>(&format!(
        "name = \"b\"\nkey = \"{BILLING}\"\nscan = [\"invoices/other/\"]"
    ))
    .unwrap()
    .scan;
    config.keys.pop();
    config.keys.push(narrowed);
    config.workers = 2;
    let server = Server::start_in(dir, &config).await;
    let result = server
        .client
        .get(server.url("/api/v1/scan/async/result"))
        .query(&[("trace_id", "narrowed")])
        .bearer_auth(BILLING);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let answer: Value = loop {
        let response = result.try_clone().unwrap().send().await.unwrap();
        if response.status() == 200 {
            break response.json().await.unwrap();
        }
        assert!(tokio::time::Instant::now() < deadline, "no result");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(answer["status"], "no", "{answer}");
    assert!(
        answer["reason"]
            .as_str()
            .unwrap()
            .contains("may no longer scan"),
        "{answer}"
    );
}
