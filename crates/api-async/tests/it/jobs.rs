//! Jobs end to end: callbacks (fields, headers, signature, retries, unreachable receivers),
//! download retries and failures, S3 objects on the real S3 server, and Redis scale-out.

use std::time::Duration;

use api_async::verify_callback;
use scan_core::testing::eicar;
use serde_json::json;

use crate::testutil::{
    CALLBACK_SECRET, Peer, Server, namespace, notifying_queue, put_all, redis_url, test_s3,
};

const WITHIN: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_callback_carries_every_field_the_callers_headers_and_a_valid_signature() {
    let peer = Peer::start().await;
    let archive = scan_core::testing::zip(&[("inner/eicar.com", &eicar())]);
    let url = peer.file("invoice.zip", archive.clone());
    let server = Server::start().await;
    let response = server
        .post(
            "/api/v1/scan/async/download",
            &json!({
                "download_url": url,
                "download_headers": {"Authorization": "Bearer origin-token"},
                "callback_url": peer.callback_url("done"),
                "callback_headers": {
                    "X-Tenant": "acme",
                    "Content-Type": "text/plain",
                    "X-Verdict-Signature": "forged"
                },
                "trace_id": "inv-7",
                "custom_data": "{\"row\": 12, \"note\": \"żółw\"}"
            }),
        )
        .await;
    assert_eq!(response.status(), 204);
    assert!(response.headers().get("location").is_none());
    assert!(response.bytes().await.unwrap().is_empty());

    let callback = peer.accepted_callbacks(1, WITHIN).await.remove(0);
    let body = &callback.body;
    assert_eq!(body["status"], "infected");
    assert_eq!(body["finding"], "EICAR_Test_File");
    assert_eq!(body["size"], archive.len());
    assert_eq!(body["realfiletype"], "zip");
    assert!(body["download_time"].as_f64().unwrap() >= 0.0);
    assert!(body["scan_time"].as_f64().unwrap() > 0.0);
    assert_eq!(body["download_url"], url);
    assert_eq!(body["trace_id"], "inv-7");
    assert_eq!(body["custom_data"], "{\"row\": 12, \"note\": \"żółw\"}");
    // The caller's header arrives; ours win for Content-Type and the signature.
    assert_eq!(callback.header("x-tenant"), "acme");
    assert_eq!(callback.header("content-type"), "application/json");
    assert_eq!(
        callback.header("content-length"),
        callback.raw.len().to_string()
    );
    let timestamp: u64 = callback.header("x-verdict-timestamp").parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(timestamp) < 60);
    assert!(verify_callback(
        CALLBACK_SECRET.as_bytes(),
        timestamp,
        &callback.raw,
        callback.header("x-verdict-signature"),
    ));
    assert!(!verify_callback(
        b"some-other-secret-entirely",
        timestamp,
        &callback.raw,
        callback.header("x-verdict-signature"),
    ));
    assert!(!callback.header("x-verdict-job-id").is_empty());
    // The download carried the caller's headers.
    assert_eq!(
        peer.downloads_of("invoice.zip")[0]["authorization"],
        "Bearer origin-token"
    );
    // And with a trace id the result is pollable too.
    assert_eq!(server.result("inv-7", WITHIN).await["status"], "infected");
}

#[tokio::test]
async fn a_failing_receiver_gets_the_callback_once_it_recovers_and_the_result_is_pollable_meanwhile()
 {
    let peer = Peer::start().await;
    let url = peer.file("a.txt", b"fine".to_vec());
    peer.script_callbacks(&[503, 503]);
    // Backoff 100 ms, then 200 ms: the receiver recovers on the third attempt.
    let server = Server::start_with(|c| c.callback.first_backoff_ms = 300).await;
    let response = server
        .post(
            "/api/v1/scan/async/download",
            &json!({"download_url": url, "callback_url": peer.callback_url("flaky"), "trace_id": "flaky-1"}),
        )
        .await;
    assert_eq!(response.status(), 204);
    // Pollable while the callback is still being retried (the first retry waits 300 ms).
    let polled = server.result("flaky-1", WITHIN).await;
    assert_eq!(polled["status"], "clean");
    let accepted = peer.accepted_callbacks(1, WITHIN).await;
    let all = peer.callbacks();
    let statuses: Vec<u16> = all.iter().map(|c| c.answered).collect();
    assert_eq!(statuses, [503, 503, 200]);
    assert_eq!(accepted[0].body["status"], "clean");
    // All three attempts were the same delivery of the same job.
    let ids: Vec<&str> = all.iter().map(|c| c.header("x-verdict-job-id")).collect();
    assert!(ids.iter().all(|id| *id == ids[0]));
}

#[tokio::test]
async fn an_unreachable_callback_host_is_given_up_after_the_bound_and_the_result_stays() {
    let peer = Peer::start().await;
    let url = peer.file("a.txt", eicar());
    let closed = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let server = Server::start_with(|c| c.callback.retry_for_secs = 1).await;
    let response = server
        .post(
            "/api/v1/scan/async/download",
            &json!({"download_url": url, "callback_url": format!("http://{closed}/hook"), "trace_id": "lost-cb"}),
        )
        .await;
    assert_eq!(response.status(), 204);
    assert_eq!(server.result("lost-cb", WITHIN).await["status"], "infected");
    // The job ends (it is not stuck retrying forever) within the bound plus a margin.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while server.pending_jobs().await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job never gave up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.poll("lost-cb").await.status(), 200);
}

#[tokio::test]
async fn a_callback_to_a_refused_address_is_not_sent() {
    let peer = Peer::start().await;
    let url = peer.file("a.txt", b"x".to_vec());
    let server = Server::start().await;
    // The metadata address is never reached, whatever the caller asks.
    let response = server
        .post(
            "/api/v1/scan/async/download",
            &json!({"download_url": url, "callback_url": "http://169.254.169.254/latest/meta-data", "trace_id": "ssrf"}),
        )
        .await;
    assert_eq!(response.status(), 204);
    assert_eq!(server.result("ssrf", WITHIN).await["status"], "clean");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while server.pending_jobs().await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "refusal should be final at once"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn downloads_are_retried_when_they_may_pass_and_a_404_is_final() {
    let peer = Peer::start().await;
    let flaky = peer.file("flaky.bin", eicar());
    peer.fail_file("flaky.bin", 2);
    let gone = format!("{}/files/gone.bin", peer.base);
    let server = Server::start().await;
    for (url, trace) in [(&flaky, "flaky"), (&gone, "gone")] {
        let response = server
            .post(
                "/api/v1/scan/async/download",
                &json!({"download_url": url, "trace_id": trace, "callback_url": peer.callback_url(trace)}),
            )
            .await;
        assert_eq!(response.status(), 204);
    }
    let flaky_result = server.result("flaky", WITHIN).await;
    assert_eq!(flaky_result["status"], "infected", "{flaky_result}");
    assert_eq!(
        peer.downloads_of("flaky.bin").len(),
        3,
        "two 503s, then success"
    );

    let gone_result = server.result("gone", WITHIN).await;
    assert_eq!(gone_result["status"], "no");
    let reason = gone_result["reason"].as_str().unwrap();
    assert!(reason.contains("404"), "{reason}");
    assert_eq!(
        peer.downloads_of("gone.bin").len(),
        1,
        "a 404 is not retried"
    );
    // The callback says "no" too, with the reason.
    let callbacks = peer.accepted_callbacks(2, WITHIN).await;
    let gone_callback = callbacks
        .iter()
        .find(|c| c.body["trace_id"] == "gone")
        .unwrap();
    assert_eq!(gone_callback.body["status"], "no");
    assert!(
        gone_callback.body["reason"]
            .as_str()
            .unwrap()
            .contains("404")
    );
}

#[tokio::test]
async fn s3_jobs_scan_the_latest_object_or_the_version_asked_for() {
    test_support::service_or_skip!("VERDICT_TEST_S3_ENDPOINT");
    use aws_sdk_s3::primitives::ByteStream;
    let (_, s3config, client, suffix) = test_s3().await;
    let bucket = format!("async-{suffix}");
    client.create_bucket().bucket(&bucket).send().await.unwrap();
    client
        .put_bucket_versioning()
        .bucket(&bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let first = client
        .put_object()
        .bucket(&bucket)
        .key("uploads/doc.bin")
        .body(ByteStream::from(eicar()))
        .send()
        .await
        .unwrap();
    let old_version = first.version_id().unwrap().to_owned();
    client
        .put_object()
        .bucket(&bucket)
        .key("uploads/doc.bin")
        .body(ByteStream::from(b"now harmless".to_vec()))
        .send()
        .await
        .unwrap();

    let peer = Peer::start().await;
    let server =
        Server::start_with(|c| c.storage = storage::StorageConfig::S3(s3config.clone())).await;
    let submit = |trace: &str, version: Option<&str>, key: &str| {
        let mut body = json!({"bucket": bucket, "key": key, "trace_id": trace, "callback_url": peer.callback_url(trace)});
        if let Some(v) = version {
            body["version"] = json!(v);
        }
        body
    };
    for body in [
        submit("latest", None, "uploads/doc.bin"),
        submit("old", Some(&old_version), "uploads/doc.bin"),
        submit("absent", None, "uploads/nothing.bin"),
    ] {
        assert_eq!(
            server.post("/api/v1/scan/async/s3", &body).await.status(),
            204
        );
    }
    let latest = server.result("latest", WITHIN).await;
    assert_eq!(
        (latest["status"].as_str(), latest["size"].as_u64()),
        (Some("clean"), Some(12))
    );
    let old = server.result("old", WITHIN).await;
    assert_eq!(old["status"], "infected");
    assert_eq!(old["finding"], "EICAR_Test_File");
    let absent = server.result("absent", WITHIN).await;
    assert_eq!(absent["status"], "no");
    // The synchronous sibling reads the same objects.
    let latest_body = json!({"bucket": bucket, "key": "uploads/doc.bin"});
    let old_body = json!({"bucket": bucket, "key": "uploads/doc.bin", "version": old_version});
    let now: serde_json::Value = server
        .post("/api/v1/scan/sync/s3", &latest_body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(now["status"], "clean");
    let then: serde_json::Value = server
        .post("/api/v1/scan/sync/s3", &old_body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(then["status"], "infected");
    let callbacks = peer.accepted_callbacks(3, WITHIN).await;
    let old_callback = callbacks
        .iter()
        .find(|c| c.body["trace_id"] == "old")
        .unwrap();
    let address = old_callback.body["download_url"].as_str().unwrap();
    assert!(
        address.contains(&bucket) && address.contains("uploads/doc.bin"),
        "{address}"
    );
    assert!(
        address.ends_with(&format!("?versionId={old_version}")),
        "{address}"
    );
}

#[tokio::test]
async fn on_redis_a_job_submitted_to_one_instance_is_polled_from_another() {
    test_support::service_or_skip!("VERDICT_TEST_REDIS_URL");
    let peer = Peer::start().await;
    let url = peer.file("shared.com", eicar());
    let ns = namespace();
    let redis = |c: &mut api_async::Config| {
        c.queue = api_async::config::QueueConfig::Redis {
            url: redis_url(),
            namespace: ns.clone(),
        };
    };
    // The front end takes requests only; the back end only works.
    let front = Server::start_with(|c| {
        redis(c);
        c.workers = 0;
    })
    .await;
    let back = Server::start_with(redis).await;
    let response = front
        .post(
            "/api/v1/scan/async/download",
            &json!({"download_url": url, "trace_id": "across"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(back.result("across", WITHIN).await["status"], "infected");
    assert_eq!(
        front.result("across", WITHIN).await["finding"],
        "EICAR_Test_File"
    );
}

#[tokio::test]
async fn graceful_shutdown_gives_unfinished_jobs_back_and_a_new_server_finishes_them() {
    let peer = Peer::start().await;
    let url = peer.file("slow.txt", b"slow".to_vec());
    peer.delay_downloads(Duration::from_secs(30));
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let mut config = crate::testutil::base_config(dir.path());
    config.shutdown_grace_secs = 1;
    let first = Server::start_in(dir.clone(), &config).await;
    let response = first
        .post(
            "/api/v1/scan/async/download",
            &json!({"download_url": url, "trace_id": "interrupted"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    // Once the worker has started the (30 s) download, stop: the grace period (1 s) runs out.
    crate::testutil::wait_until("the download started", WITHIN, || async {
        !peer.downloads_of("slow.txt").is_empty()
    })
    .await;
    first.stop().await;
    assert_eq!(peer.downloads_of("slow.txt").len(), 1);

    peer.delay_downloads(Duration::ZERO);
    let second = Server::start_in(dir.clone(), &config).await;
    assert_eq!(
        second.result("interrupted", WITHIN).await["status"],
        "clean"
    );
    assert_eq!(
        peer.downloads_of("slow.txt").len(),
        2,
        "done again by the new server"
    );
}

#[tokio::test]
async fn a_receiver_that_is_down_does_not_hold_up_other_jobs() {
    let peer = Peer::start().await;
    let first = peer.file("first.txt", b"first".to_vec());
    let second = peer.file("second.txt", b"second".to_vec());
    let closed = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    // One worker, and a callback that keeps failing for 30 s.
    let server = Server::start_with(|c| {
        c.workers = 1;
        c.callback.retry_for_secs = 30;
    })
    .await;
    let response = server
        .post(
            "/api/v1/scan/async/download",
            &json!({"download_url": first, "callback_url": format!("http://{closed}/"), "trace_id": "stuck-callback"}),
        )
        .await;
    assert_eq!(response.status(), 204);
    server.result("stuck-callback", WITHIN).await;
    let response = server
        .post(
            "/api/v1/scan/async/download",
            &json!({"download_url": second, "trace_id": "next"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    // Done while the first job's callback is still being retried.
    assert_eq!(
        server.result("next", Duration::from_secs(10)).await["status"],
        "clean"
    );
    // The second job leaves the queue just after its result is stored; the first stays,
    // still delivering.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while server.pending_jobs().await != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} jobs pending, not just the first one, still delivering",
            server.pending_jobs().await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_job_that_never_finishes_is_given_up_after_max_attempts() {
    use api_async::{EmbeddedStore, Job, JobQueue, JobSpec, Source};
    let peer = Peer::start().await;
    let url = peer.file("poison.bin", b"whatever".to_vec());
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let mut config = crate::testutil::base_config(dir.path());
    config.max_attempts = 2;
    // Two earlier processes claimed this job and died before finishing it.
    let api_async::config::QueueConfig::Embedded { path } = &config.queue else {
        unreachable!()
    };
    for round in 0..2 {
        let store = EmbeddedStore::open(path, 10).unwrap();
        if round == 0 {
            let job = Job {
                id: "poison".into(),
                spec: JobSpec {
                    source: Source::Url {
                        url: url.clone(),
                        headers: Default::default(),
                    },
                    callback_url: None,
                    callback_headers: Default::default(),
                    trace_id: Some("poison".into()),
                    custom_data: None,
                    // Submitted through the API with the test key, it would carry that key's id.
                    owner: Some(api_async::keys::key_id(crate::testutil::KEY.as_bytes())),
                    submitted_by: Some(api_async::keys::key_id(crate::testutil::KEY.as_bytes())),
                    tag_object: false,
                    watched: false,
                    bulk: None,
                    rescans: 0,
                    reverdict: false,
                },
                attempts: 0,
                receipt: String::new(),
            };
            store.push(&job).await.unwrap();
        }
        let claimed = store.claim(1, Duration::ZERO).await.unwrap();
        assert_eq!(claimed[0].attempts, round + 1);
    }
    let server = Server::start_in(dir, &config).await;
    let result = server.result("poison", WITHIN).await;
    assert_eq!(result["status"], "no");
    assert!(
        result["reason"]
            .as_str()
            .unwrap()
            .contains("started 2 times"),
        "{result}"
    );
    assert!(
        peer.downloads_of("poison.bin").is_empty(),
        "not tried a third time"
    );
}

#[tokio::test]
async fn a_bomb_and_an_encrypted_archive_are_never_clean() {
    let peer = Peer::start().await;
    let bomb = peer.file(
        "bomb.zip",
        scan_core::testing::nested_zip_bomb(6, 10, 1 << 20),
    );
    let locked = peer.file(
        "locked.zip",
        scan_core::testing::zip_encrypted(&[("secret.txt", b"hidden")], "pw"),
    );
    let server = Server::start().await;
    for (url, trace) in [(&bomb, "bomb"), (&locked, "locked")] {
        let response = server
            .post(
                "/api/v1/scan/async/download",
                &json!({"download_url": url, "trace_id": trace}),
            )
            .await;
        assert_eq!(response.status(), 201);
    }
    let bomb = server.result("bomb", WITHIN).await;
    assert_eq!(bomb["status"], "no", "{bomb}");
    assert!(
        bomb["reason"].as_str().unwrap().contains("Limits.Exceeded"),
        "{bomb}"
    );
    let locked = server.result("locked", WITHIN).await;
    assert_eq!(locked["status"], "no", "{locked}");
    assert!(
        locked["reason"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("encrypt"),
        "{locked}"
    );
}

#[tokio::test]
async fn bucket_event_webhooks_scan_and_tag_each_new_object_keeping_its_other_tags() {
    test_support::service_or_skip!("VERDICT_TEST_S3_ENDPOINT");
    let (_, s3config, client, suffix) = test_s3().await;
    let bucket = format!("events-{suffix}");
    client.create_bucket().bucket(&bucket).send().await.unwrap();
    put_all(
        &client,
        &bucket,
        vec![
            ("in/a b.txt", b"plain text".to_vec()),
            ("in/eicar.com", eicar()),
        ],
        Some("owner=team-a"),
    )
    .await;
    let server =
        Server::start_with(|c| c.storage = storage::StorageConfig::S3(s3config.clone())).await;
    // MinIO's webhook shape (one record) and AWS's (URL-encoded key, with a removal beside it).
    let minio = json!({"EventName": "s3:ObjectCreated:Put", "Key": format!("{bucket}/in/eicar.com"),
        "Records": [{"eventVersion": "2.0", "eventSource": "minio:s3", "eventName": "s3:ObjectCreated:Put",
            "s3": {"bucket": {"name": bucket}, "object": {"key": "in%2Feicar.com", "size": 68, "versionId": ""}}}]});
    let aws = json!({"Records": [
        {"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": bucket}, "object": {"key": "in/a+b.txt", "size": 10}}},
        {"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectRemoved:Delete",
            "s3": {"bucket": {"name": bucket}, "object": {"key": "in/old.txt"}}}]});
    for (body, queued, ignored) in [(minio, 1, 0), (aws, 1, 1)] {
        let response = server.post("/api/v1/events/s3", &body).await;
        assert_eq!(response.status(), 200);
        let answer: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            (answer["queued"].as_u64(), answer["ignored"].as_u64()),
            (Some(queued), Some(ignored))
        );
    }
    let bad = server
        .post("/api/v1/events/s3", &json!({"hello": "world"}))
        .await;
    assert_eq!(bad.status(), 400);
    let test_event = json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": bucket});
    assert_eq!(
        server.post("/api/v1/events/s3", &test_event).await.status(),
        200
    );

    let tags_of = |key: &'static str| {
        let client = client.clone();
        let bucket = bucket.clone();
        async move {
            let answer = client
                .get_object_tagging()
                .bucket(&bucket)
                .key(key)
                .send()
                .await
                .unwrap();
            answer
                .tag_set()
                .iter()
                .map(|t| (t.key().to_owned(), t.value().to_owned()))
                .collect::<std::collections::BTreeMap<_, _>>()
        }
    };
    let deadline = std::time::Instant::now() + WITHIN;
    loop {
        let eicar_tags = tags_of("in/eicar.com").await;
        let text_tags = tags_of("in/a b.txt").await;
        if eicar_tags.contains_key("scan-result") && text_tags.contains_key("scan-result") {
            assert_eq!(eicar_tags["scan-result"], "infected");
            assert_eq!(text_tags["scan-result"], "clean");
            for tags in [&eicar_tags, &text_tags] {
                assert_eq!(
                    tags["owner"], "team-a",
                    "the object's own tag is kept: {tags:?}"
                );
                assert!(tags["scan-date"].starts_with("20"), "{tags:?}");
            }
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not tagged: {eicar_tags:?} {text_tags:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("verdict_object_actions_total{outcome=\"done\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn objects_put_into_a_bucket_notifying_sqs_are_scanned_and_tagged_and_the_messages_deleted() {
    test_support::service_or_skip!("VERDICT_TEST_S3_ENDPOINT");
    let (endpoint, s3config, s3, suffix) = test_s3().await;
    let name = format!("sqs-{suffix}");
    let (sqs, queue_url) = notifying_queue(&endpoint, &s3, &name).await;
    let server = Server::start_with(|c| {
        c.storage = storage::StorageConfig::S3(s3config.clone());
        c.events.sqs = api_async::sqs::SqsConfig {
            queue_urls: vec![queue_url.clone()],
            endpoint: Some(endpoint.clone()),
            wait_secs: 1,
            ..Default::default()
        };
    })
    .await;
    put_all(
        &s3,
        &name,
        vec![
            ("in/a b.txt", b"plain text".to_vec()),
            ("in/eicar.com", eicar()),
        ],
        None,
    )
    .await;
    let deadline = std::time::Instant::now() + WITHIN;
    let result_of = |key: &'static str| {
        let s3 = s3.clone();
        let name = name.clone();
        async move {
            let tags = s3
                .get_object_tagging()
                .bucket(&name)
                .key(key)
                .send()
                .await
                .unwrap();
            tags.tag_set()
                .iter()
                .find(|t| t.key() == "scan-result")
                .map(|t| t.value().to_owned())
        }
    };
    loop {
        let (text, eicar) = (
            result_of("in/a b.txt").await,
            result_of("in/eicar.com").await,
        );
        if text.is_some() && eicar.is_some() {
            assert_eq!(text.as_deref(), Some("clean"));
            assert_eq!(eicar.as_deref(), Some("infected"));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not tagged: {text:?} {eicar:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every message (the test event and both records) was handled and deleted.
    assert_eq!(crate::testutil::sqs_messages(&sqs, &queue_url).await, 0);
    server.stop().await;
}

#[tokio::test]
async fn the_actions_policy_moves_infected_objects_to_quarantine_and_deletes_unscannable_ones() {
    test_support::service_or_skip!("VERDICT_TEST_S3_ENDPOINT");
    let (_, s3config, client, suffix) = test_s3().await;
    let (bucket, quarantine) = (format!("act-{suffix}"), format!("qua-{suffix}"));
    for b in [&bucket, &quarantine] {
        client.create_bucket().bucket(b).send().await.unwrap();
    }
    let locked = scan_core::testing::zip_encrypted(&[("secret.txt", b"hidden")], "pw");
    put_all(
        &client,
        &bucket,
        vec![
            ("in/fine.txt", b"plain text".to_vec()),
            ("in/eicar.com", eicar()),
            ("in/locked.zip", locked),
        ],
        Some("owner=team-a"),
    )
    .await;
    let server = Server::start_with(|c| {
        c.storage = storage::StorageConfig::S3(s3config.clone());
        c.actions = storage::actions::ActionsConfig {
            infected: storage::actions::Action::Move,
            not_examined: storage::actions::Action::Delete,
            quarantine_bucket: Some(quarantine.clone()),
            quarantine_prefix: "held/".to_owned(),
            ..Default::default()
        };
    })
    .await;
    notify_created(
        &server,
        &bucket,
        &["in/fine.txt", "in/eicar.com", "in/locked.zip"],
    )
    .await;
    let exists = |b: String, k: &'static str| {
        let client = client.clone();
        async move { client.head_object().bucket(b).key(k).send().await.is_ok() }
    };
    let deadline = std::time::Instant::now() + WITHIN;
    while exists(bucket.clone(), "in/eicar.com").await
        || exists(bucket.clone(), "in/locked.zip").await
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the infected and the unscannable objects are still in place"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Infected: moved, with its content type, its own tag, the verdict and where it came from.
    let held = client
        .head_object()
        .bucket(&quarantine)
        .key("held/in/eicar.com")
        .send()
        .await
        .unwrap();
    assert_eq!(held.content_type(), Some("application/x-test"));
    let tags: std::collections::BTreeMap<String, String> = client
        .get_object_tagging()
        .bucket(&quarantine)
        .key("held/in/eicar.com")
        .send()
        .await
        .unwrap()
        .tag_set()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect();
    assert_eq!(tags["scan-result"], "infected");
    assert_eq!(tags["owner"], "team-a");
    let origin = held
        .metadata()
        .and_then(|m| m.get(storage::actions::ORIGIN_METADATA))
        .cloned();
    assert_eq!(origin, Some(format!("{bucket}/in/eicar.com")));
    // Unscannable (encrypted): deleted, not quarantined. Clean: tagged, in place.
    assert!(!exists(quarantine.clone(), "held/in/locked.zip").await);
    let fine = client
        .get_object_tagging()
        .bucket(&bucket)
        .key("in/fine.txt")
        .send()
        .await
        .unwrap();
    assert!(
        fine.tag_set()
            .iter()
            .any(|t| t.key() == "scan-result" && t.value() == "clean")
    );
}

#[test]
fn an_actions_policy_that_cannot_be_carried_out_is_refused_at_start() {
    use storage::actions::{Action, ActionsConfig};
    let no_bucket = ActionsConfig {
        infected: Action::Move,
        ..Default::default()
    };
    assert!(
        no_bucket
            .check()
            .unwrap_err()
            .to_string()
            .contains("quarantine_bucket")
    );
    let deletes_clean = ActionsConfig {
        clean: Action::Delete,
        ..Default::default()
    };
    assert!(deletes_clean.check().is_err());
    assert!(ActionsConfig::default().check().is_ok());
}

#[test]
fn filters_skip_by_prefix_suffix_size_and_tag() {
    let filters = api_async::config::FiltersConfig {
        skip_prefixes: vec!["logs/".into()],
        skip_suffixes: vec![".TMP".into()],
        min_size: Some(1),
        max_size: Some(1000),
        skip_tagged: vec!["scan-fingerprint=abc".into(), "legal-hold".into()],
        skip_already_scanned: false,
    };
    assert!(filters.by_name("logs/today.txt").is_some());
    assert!(
        filters.by_name("in/upload.tmp").is_some(),
        "suffixes ignore case"
    );
    assert_eq!(filters.by_name("in/upload.pdf"), None);
    assert!(filters.needs_head());
    let tag = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
    assert!(filters.by_head(0, &[]).unwrap().contains("min_size"));
    assert!(filters.by_head(1001, &[]).unwrap().contains("max_size"));
    assert!(
        filters
            .by_head(10, &tag("scan-fingerprint", "abc"))
            .is_some()
    );
    assert_eq!(filters.by_head(10, &tag("scan-fingerprint", "other")), None);
    assert!(
        filters
            .by_head(10, &tag("legal-hold", "anything"))
            .is_some()
    );
    assert_eq!(filters.by_head(10, &[]), None);
    assert!(!api_async::config::FiltersConfig::default().needs_head());
}

#[tokio::test]
async fn objects_the_filters_skip_are_counted_and_never_scanned_or_tagged() {
    test_support::service_or_skip!("VERDICT_TEST_S3_ENDPOINT");
    let (_, s3config, client, suffix) = test_s3().await;
    let bucket = format!("skip-{suffix}");
    client.create_bucket().bucket(&bucket).send().await.unwrap();
    put_all(
        &client,
        &bucket,
        vec![
            ("logs/eicar.com", eicar()),
            ("in/big.bin", vec![b'x'; 4096]),
            ("in/eicar.com", eicar()),
        ],
        None,
    )
    .await;
    let server = Server::start_with(|c| {
        c.storage = storage::StorageConfig::S3(s3config.clone());
        c.filters = api_async::config::FiltersConfig {
            skip_prefixes: vec!["logs/".into()],
            max_size: Some(1024),
            ..Default::default()
        };
    })
    .await;
    notify_created(
        &server,
        &bucket,
        &["logs/eicar.com", "in/big.bin", "in/eicar.com"],
    )
    .await;
    let deadline = std::time::Instant::now() + WITHIN;
    loop {
        let metrics = server.metrics().await;
        if metrics.contains("verdict_jobs_finished_total{status=\"skipped\"} 2")
            && metrics.contains("verdict_jobs_finished_total{status=\"infected\"} 1")
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for key in ["logs/eicar.com", "in/big.bin"] {
        let tags = client
            .get_object_tagging()
            .bucket(&bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        assert!(
            tags.tag_set().is_empty(),
            "{key} was tagged: {:?}",
            tags.tag_set()
        );
    }
    let scanned = client
        .get_object_tagging()
        .bucket(&bucket)
        .key("in/eicar.com")
        .send()
        .await
        .unwrap();
    assert!(
        scanned
            .tag_set()
            .iter()
            .any(|t| t.key() == "scan-result" && t.value() == "infected")
    );
}

/// Posts an AWS-shaped notification of `keys` created in `bucket` to the webhook.
async fn notify_created(server: &Server, bucket: &str, keys: &[&str]) {
    let records: Vec<serde_json::Value> = keys
        .iter()
        .map(|key| json!({"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}))
        .collect();
    let response = server
        .post("/api/v1/events/s3", &json!({"Records": records}))
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn with_on_requests_the_policy_also_acts_on_objects_callers_ask_about() {
    let server = Server::start_with(|c| {
        c.actions.on_requests = true;
        c.actions.infected = storage::actions::Action::Delete;
        // A legal hold holds whoever asks: a held object is scanned, never acted on.
        c.filters.skip_tagged = vec!["legal-hold".into()];
    })
    .await;
    let data = server.data_dir();
    std::fs::create_dir_all(data.join("b")).unwrap();
    std::fs::write(data.join("b/bad.com"), eicar()).unwrap();
    std::fs::write(data.join("b/held.com"), eicar()).unwrap();
    std::fs::write(
        data.join("b/.held.com.tags.json"),
        r#"{"legal-hold": "case-7"}"#,
    )
    .unwrap();
    std::fs::write(data.join("b/fine.com"), b"fine").unwrap();

    let queued = server
        .post(
            "/api/v1/scan/async/s3",
            &json!({"bucket": "b", "key": "bad.com", "trace_id": "asked-1"}),
        )
        .await;
    assert_eq!(queued.status(), 201);
    let result = server.result("asked-1", WITHIN).await;
    assert_eq!(result["status"], "infected", "{result}");
    assert_eq!(result["object_action"]["action"], "delete", "{result}");
    assert_eq!(result["object_action"]["done"], true, "{result}");
    assert!(!data.join("b/bad.com").exists());

    let held: serde_json::Value = server
        .post(
            "/api/v1/scan/sync/s3",
            &json!({"bucket": "b", "key": "held.com"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(held["status"], "infected", "scanned all the same: {held}");
    assert_eq!(held["object_action"]["done"], false, "{held}");
    assert!(
        held["object_action"]["error"]
            .as_str()
            .unwrap()
            .contains("legal-hold"),
        "{held}"
    );
    assert!(
        data.join("b/held.com").exists(),
        "a held object is not deleted"
    );

    let answer: serde_json::Value = server
        .post(
            "/api/v1/scan/sync/s3",
            &json!({"bucket": "b", "key": "fine.com"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["status"], "clean", "{answer}");
    assert_eq!(answer["object_action"]["action"], "tag", "{answer}");
    assert!(data.join("b/.fine.com.tags.json").exists());
}

#[tokio::test]
async fn an_engine_down_never_deletes_or_moves_an_object() {
    // clamd at a loopback port nobody listens on: a real engine outage.
    let closed = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let server = Server::start_with(|c| {
        c.engines = vec![engines::EngineConfig::Clamd(engines::ClamdConfig {
            address: closed.to_string(),
            connect_timeout_secs: 0.5,
            ..Default::default()
        })];
        c.actions.not_examined = storage::actions::Action::Delete;
        c.actions.infected = storage::actions::Action::Move;
        c.actions.quarantine_bucket = Some("q".into());
    })
    .await;
    let data = server.data_dir();
    for bucket in ["b", "q"] {
        std::fs::create_dir_all(data.join(bucket)).unwrap();
    }
    std::fs::write(data.join("b/report.pdf"), b"%PDF-1.4 clean enough").unwrap();
    notify_created(&server, "b", &["report.pdf"]).await;
    let tags_file = data.join("b/.report.pdf.tags.json");
    test_support::wait_until("the object tagged", WITHIN, || async { tags_file.exists() }).await;
    let tags: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&tags_file).unwrap()).unwrap();
    assert_eq!(tags["scan-result"], "error", "{tags}");
    assert!(
        data.join("b/report.pdf").exists(),
        "not deleted on an engine outage"
    );
    assert!(std::fs::read_dir(data.join("q")).unwrap().next().is_none());
}
