//! Bulk scans of a bucket prefix: counts by outcome, filters and per-prefix actions on the
//! embedded store, and on Redis two real instances, one SIGKILLed mid-listing and restarted,
//! that still give every object exactly one outcome.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use scan_core::testing::eicar;
use serde_json::{Value, json};

use crate::testutil::{
    KEY, OTHER_KEY, Peer, Process, Server, kill_holding_claims, namespace, pending_claims,
    redis_url, s3_process_toml, test_s3,
};

/// Starts a bulk scan through `base`; its id.
async fn start_bulk(client: &reqwest::Client, base: &str, body: &Value) -> String {
    let response = client
        .post(format!("{base}/api/v1/scan/async/s3/bulk"))
        .bearer_auth(KEY)
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let answer: Value = response.json().await.unwrap();
    let id = answer["id"].as_str().unwrap().to_owned();
    assert!(
        location.ends_with(&format!("/api/v1/scan/async/s3/bulk/{id}")),
        "{location}"
    );
    assert_eq!(answer["finished"], false);
    id
}

async fn bulk_status(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    key: &str,
) -> reqwest::Response {
    client
        .get(format!("{base}/api/v1/scan/async/s3/bulk/{id}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

/// Polls the bulk scan until `done(status)`, or panics after `within` with the last status.
async fn wait_bulk(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let response = bulk_status(client, base, id, KEY).await;
        assert_eq!(response.status(), 200);
        let status: Value = response.json().await.unwrap();
        if done(&status) {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bulk scan not there in time: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn tags_beside(data: &std::path::Path, bucket: &str, key: &str) -> BTreeMap<String, String> {
    let path = data.join(bucket).join(key);
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(path.with_file_name(format!(".{name}.tags.json")))
        .unwrap_or_else(|e| panic!("{key} has no tags: {e}"));
    // A plain map of tags, or tags beside metadata.
    let value: Value = serde_json::from_str(&text).unwrap();
    let tags = value
        .get("tags")
        .filter(|t| t.is_object())
        .unwrap_or(&value);
    serde_json::from_value(tags.clone()).unwrap()
}

#[tokio::test]
async fn a_bulk_scan_counts_every_outcome_applies_filters_and_the_prefix_policy_and_stays_private()
{
    let peer = Peer::start().await;
    let server = Server::start_with(|c| {
        c.bulk_page_size = 2;
        c.filters.skip_suffixes = vec![".log".into()];
        c.filters.max_size = Some(1000);
        c.actions.rules = vec![storage::actions::ActionRule {
            bucket: "b".into(),
            prefix: "in/drop/".into(),
            infected: Some(storage::actions::Action::Delete),
            ..Default::default()
        }];
    })
    .await;
    let data = server.data_dir();
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("in/a.txt", b"plain text".to_vec()),
        ("in/e.com", eicar()),
        ("in/drop/e2.com", eicar()),
        (
            "in/z.zip",
            scan_core::testing::zip_encrypted(&[("s.txt", b"hidden")], "pw"),
        ),
        ("in/skip.log", eicar()),
        ("in/big.bin", vec![b'x'; 2000]),
        ("out/x.com", eicar()),
    ];
    for (key, bytes) in &files {
        let path = data.join("b").join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    let id = start_bulk(
        &server.client,
        &server.base,
        &json!({"bucket": "b", "prefix": "in/", "callback_url": peer.callback_url("bulk")}),
    )
    .await;
    let status = wait_bulk(
        &server.client,
        &server.base,
        &id,
        Duration::from_secs(30),
        |s| s["finished"] == true,
    )
    .await;
    let counts: BTreeMap<&str, u64> = [
        "listed",
        "queued",
        "done",
        "clean",
        "infected",
        "not_examined",
        "skipped",
        "unread",
    ]
    .into_iter()
    .map(|k| (k, status[k].as_u64().unwrap()))
    .collect();
    let expected: BTreeMap<&str, u64> = [
        ("listed", 6),
        ("queued", 4),
        ("done", 6),
        ("clean", 1),
        ("infected", 2),
        ("not_examined", 1),
        ("skipped", 2),
        ("unread", 0),
    ]
    .into_iter()
    .collect();
    assert_eq!(counts, expected, "{status}");
    let scanned_bytes: usize = [0, 1, 2, 3].iter().map(|i| files[*i].1.len()).sum();
    assert_eq!(status["bytes"], scanned_bytes as u64);

    // Tags on what was scanned, with the engines' fingerprint; none on what was skipped.
    let clean = tags_beside(&data, "b", "in/a.txt");
    assert_eq!(clean["scan-result"], "clean");
    assert_eq!(clean["scan-engines"].len(), 12, "{clean:?}");
    assert_eq!(
        tags_beside(&data, "b", "in/e.com")["scan-result"],
        "infected"
    );
    assert_eq!(
        tags_beside(&data, "b", "in/z.zip")["scan-result"],
        "unscannable"
    );
    assert!(!data.join("b/in/.skip.log.tags.json").exists());
    assert!(!data.join("b/in/.big.bin.tags.json").exists());
    assert!(
        !data.join("b/out/.x.com.tags.json").exists(),
        "outside the prefix"
    );
    // The rule for in/drop/ deletes infected objects there; elsewhere they are tagged.
    assert!(!data.join("b/in/drop/e2.com").exists());
    assert!(data.join("b/in/e.com").exists());

    // One signed callback per scanned object, saying what was done to it.
    let callbacks = peer.accepted_callbacks(4, Duration::from_secs(10)).await;
    let mut actions: Vec<(String, String)> = callbacks
        .iter()
        .map(|c| {
            assert_eq!(c.body["object_action"]["done"], true, "{}", c.body);
            (
                c.body["download_url"].as_str().unwrap().to_owned(),
                c.body["object_action"]["action"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    actions.sort();
    assert_eq!(
        actions,
        vec![
            ("local://b/in/a.txt".to_owned(), "tag".to_owned()),
            ("local://b/in/drop/e2.com".to_owned(), "delete".to_owned()),
            ("local://b/in/e.com".to_owned(), "tag".to_owned()),
            ("local://b/in/z.zip".to_owned(), "tag".to_owned()),
        ]
    );

    // Another key sees nothing; a bucket that is not there, or no bucket, is refused at once.
    assert_eq!(
        bulk_status(&server.client, &server.base, &id, OTHER_KEY)
            .await
            .status(),
        404
    );
    let missing = server
        .post("/api/v1/scan/async/s3/bulk", &json!({"bucket": "nope"}))
        .await;
    assert_eq!(missing.status(), 404);
    let error: Value = missing.json().await.unwrap();
    assert!(error["error"].as_str().unwrap().contains("nope"), "{error}");
    let no_bucket = server
        .post("/api/v1/scan/async/s3/bulk", &json!({"prefix": "in/"}))
        .await;
    assert_eq!(no_bucket.status(), 400);
    server.stop().await;
}

#[tokio::test]
async fn a_bulk_scan_on_two_redis_instances_survives_a_sigkill_mid_listing_with_every_object_counted_once()
 {
    test_support::service_or_skip!("VERDICT_TEST_S3_ENDPOINT");
    test_support::service_or_skip!("VERDICT_TEST_REDIS_URL");
    const OBJECTS: usize = 2000;
    let (endpoint, _, client, suffix) = test_s3().await;
    let bucket = format!("bulk-{suffix}");
    client.create_bucket().bucket(&bucket).send().await.unwrap();
    let infected = |i: usize| i % 100 == 7;
    let mut bytes = 0u64;
    let mut puts = Vec::new();
    for i in 0..OBJECTS {
        let body = if infected(i) {
            eicar()
        } else {
            format!("object {i}").into_bytes()
        };
        bytes += body.len() as u64;
        puts.push((format!("scan/{i:05}.txt"), body));
    }
    puts.push(("other/outside.com".to_owned(), eicar()));
    futures::stream::iter(puts)
        .map(|(key, body)| {
            let client = client.clone();
            let bucket = bucket.clone();
            async move {
                client
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .body(aws_sdk_s3::primitives::ByteStream::from(body))
                    .send()
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;

    let dir = tempfile::tempdir().unwrap();
    let space = namespace();
    let config = format!(
        "workers = 4\njob_lease_secs = 1\nbulk_page_size = 100\n{}[queue]\ntype = \"redis\"\nurl = \"{}\"\nnamespace = \"{space}\"\n",
        s3_process_toml(dir.path(), &endpoint),
        redis_url(),
    );
    let http = reqwest::Client::new();
    let mut doomed = Process::start(dir.path(), "doomed", &config).await;
    let survivor = Process::start(dir.path(), "survivor", &config).await;
    let id = start_bulk(
        &http,
        &doomed.base,
        &json!({"bucket": bucket, "prefix": "scan/"}),
    )
    .await;

    let at_kill = wait_bulk(&http, &survivor.base, &id, Duration::from_secs(60), |s| {
        s["done"].as_u64().unwrap() >= 300
    })
    .await;
    let held = kill_holding_claims(&mut doomed, &space).await;
    assert_eq!(
        at_kill["listing_done"], false,
        "the kill must land mid-listing for this test to mean anything: {at_kill}"
    );
    let _restarted = Process::start(dir.path(), "restarted", &config).await;

    let end = wait_bulk(&http, &survivor.base, &id, Duration::from_secs(120), |s| {
        s["finished"] == true
    })
    .await;
    let infected_count = (0..OBJECTS).filter(|i| infected(*i)).count() as u64;
    assert_eq!(end["listed"], OBJECTS as u64, "{end}");
    assert_eq!(end["done"], OBJECTS as u64, "{end}");
    assert_eq!(end["infected"], infected_count, "{end}");
    assert_eq!(end["clean"], OBJECTS as u64 - infected_count, "{end}");
    for none in ["not_examined", "skipped", "unread"] {
        assert_eq!(end[none], 0, "{none}: {end}");
    }
    assert_eq!(
        end["bytes"], bytes,
        "each object's bytes are counted once: {end}"
    );

    // Every object under the prefix carries its own verdict; the one outside was not touched.
    let wrong: Vec<String> = futures::stream::iter(0..OBJECTS)
        .map(|i| {
            let client = client.clone();
            let bucket = bucket.clone();
            async move {
                let key = format!("scan/{i:05}.txt");
                let tags = client
                    .get_object_tagging()
                    .bucket(bucket)
                    .key(&key)
                    .send()
                    .await
                    .unwrap();
                let result: Vec<&str> = tags
                    .tag_set()
                    .iter()
                    .filter(|t| t.key() == "scan-result")
                    .map(|t| t.value())
                    .collect();
                let want = if infected(i) { "infected" } else { "clean" };
                (result != [want]).then(|| format!("{key}: {result:?}"))
            }
        })
        .buffer_unordered(32)
        .filter_map(|wrong| async move { wrong })
        .collect()
        .await;
    assert!(
        wrong.is_empty(),
        "{} objects without their verdict: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    let outside = client
        .get_object_tagging()
        .bucket(&bucket)
        .key("other/outside.com")
        .send()
        .await
        .unwrap();
    assert!(outside.tag_set().is_empty());
    // The claims the dead instance held were taken over and finished: none is pending now.
    let left: Vec<String> = pending_claims(&space)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| held.contains(id))
        .collect();
    assert!(
        left.is_empty(),
        "claims of the dead instance still pending: {left:?}"
    );
    let logs = ["survivor.log", "restarted.log"]
        .map(|name| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default());
    assert!(
        logs.iter().any(|log| log.contains("taking over jobs")),
        "the dead instance's {} claims were taken over by another instance",
        held.len()
    );
}

/// What both stores must do for bulk scans: the checkpoint moves once per page, an outcome is
/// recorded once per key, and nothing is recorded for an unknown bulk scan.
async fn bulk_store_contract(store: &dyn api_async::bulk::BulkStore) {
    use api_async::bulk::{Advance, BulkScan, Entry};
    use scan_core::Outcome;
    assert!(store.bulk("missing").await.unwrap().is_none());
    let scan = BulkScan {
        id: "b1".to_owned(),
        owner: Some("owner".to_owned()),
        submitted_by: Some("owner".to_owned()),
        bucket: "bucket".to_owned(),
        prefix: "in/".to_owned(),
        callback_url: None,
        callback_headers: Default::default(),
        created: "2026-12-02T00:00:00Z".to_owned(),
        reverdict: false,
    };
    store.create(&scan).await.unwrap();
    let page = |page, after: &str, last| Advance {
        page,
        from: (page > 0).then(|| "in/c".to_owned()),
        after: Some(after.to_owned()),
        listed: 3,
        queued: 2,
        whole: true,
        last,
    };
    // A page cut short (the queue was full) moves the key only, from where it started.
    let cut_short = Advance {
        page: 0,
        from: None,
        after: Some("in/a".to_owned()),
        listed: 1,
        queued: 1,
        whole: false,
        last: false,
    };
    assert!(store.advance("b1", &cut_short).await.unwrap());
    let (_, progress) = store.bulk("b1").await.unwrap().unwrap();
    assert_eq!(
        (progress.pages, progress.after.as_deref()),
        (0, Some("in/a"))
    );
    assert!(
        !store.advance("b1", &cut_short).await.unwrap(),
        "a run that started before the cut-short one moved it does not move it again"
    );
    let rest = Advance {
        page: 0,
        from: Some("in/a".to_owned()),
        after: Some("in/c".to_owned()),
        listed: 2,
        queued: 1,
        whole: true,
        last: false,
    };
    assert!(store.advance("b1", &rest).await.unwrap());
    let mut again = page(0, "in/c", false);
    again.from = None;
    assert!(
        !store.advance("b1", &again).await.unwrap(),
        "a page moves it once"
    );
    assert!(
        !store.advance("b1", &page(2, "in/z", true)).await.unwrap(),
        "nor can one skip ahead"
    );
    assert!(
        store
            .record("b1", "in/a", Entry::Judged(Outcome::Clean), 10)
            .await
            .unwrap()
    );
    assert!(
        !store
            .record("b1", "in/a", Entry::Judged(Outcome::Infected), 5)
            .await
            .unwrap()
    );
    assert!(store.record("b1", "in/b", Entry::Skipped, 0).await.unwrap());
    assert!(
        !store
            .record("missing", "in/a", Entry::Judged(Outcome::Clean), 1)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .recorded("b1", &["in/a".into(), "in/c".into(), "in/b".into()])
            .await
            .unwrap(),
        [true, false, true]
    );
    let (stored, progress) = store.bulk("b1").await.unwrap().unwrap();
    assert_eq!(stored, scan);
    assert_eq!(
        (
            progress.pages,
            progress.after.as_deref(),
            progress.listed,
            progress.queued
        ),
        (1, Some("in/c"), 3, 2)
    );
    assert_eq!(
        (
            progress.clean,
            progress.infected,
            progress.skipped,
            progress.bytes
        ),
        (1, 0, 1, 10)
    );
    assert!(!progress.listing_done && !progress.finished());
    assert!(store.advance("b1", &page(1, "in/f", true)).await.unwrap());
    let (_, progress) = store.bulk("b1").await.unwrap().unwrap();
    assert!(progress.listing_done);
    assert_eq!(progress.listed, 6);
}

#[tokio::test]
async fn the_bulk_store_contract_holds_on_the_embedded_store_and_on_redis() {
    test_support::service_or_skip!("VERDICT_TEST_REDIS_URL");
    let dir = tempfile::tempdir().unwrap();
    let embedded = api_async::EmbeddedStore::open(&dir.path().join("q.redb"), 100).unwrap();
    bulk_store_contract(&embedded).await;
    let redis = api_async::RedisStore::open(
        &redis_url(),
        &namespace(),
        "contract",
        Duration::from_secs(5),
        100,
    )
    .await
    .unwrap();
    bulk_store_contract(&redis).await;
    // The embedded store keeps it across a restart.
    drop(embedded);
    let reopened = api_async::EmbeddedStore::open(&dir.path().join("q.redb"), 100).unwrap();
    let (_, progress) = api_async::bulk::BulkStore::bulk(&reopened, "b1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(progress.listed, 6);
}

#[tokio::test]
async fn a_moved_objects_own_event_and_a_bulk_scan_of_the_quarantine_leave_it_alone() {
    let server = Server::start_with(|c| {
        c.actions.infected = storage::actions::Action::Move;
        c.actions.quarantine_bucket = Some("q".into());
        c.actions.quarantine_prefix = "held/".into();
    })
    .await;
    let data = server.data_dir();
    for bucket in ["b", "q"] {
        std::fs::create_dir_all(data.join(bucket)).unwrap();
    }
    std::fs::write(data.join("b/bad.com"), eicar()).unwrap();
    std::fs::write(data.join("q/note.txt"), b"outside the quarantine prefix").unwrap();
    let created = |bucket: &str, key: &str| json!({"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}]});
    let answer: Value = server
        .post("/api/v1/events/s3", &created("b", "bad.com"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["queued"], 1);
    let moved = data.join("q/held/bad.com");
    test_support::wait_until(
        "the infected object moved",
        Duration::from_secs(20),
        || async { moved.exists() },
    )
    .await;

    // The quarantine's own bucket notifies too: its event is ignored, not a second move.
    let answer: Value = server
        .post("/api/v1/events/s3", &created("q", "held/bad.com"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (answer["queued"].clone(), answer["ignored"].clone()),
        (json!(0), json!(1)),
        "{answer}"
    );

    let id = start_bulk(&server.client, &server.base, &json!({"bucket": "q"})).await;
    let status = wait_bulk(
        &server.client,
        &server.base,
        &id,
        Duration::from_secs(20),
        |s| s["finished"] == true,
    )
    .await;
    assert_eq!(status["listed"], 2, "{status}");
    assert_eq!(status["skipped"], 1, "the quarantined object: {status}");
    assert_eq!(status["clean"], 1, "the rest of the bucket: {status}");
    assert!(moved.exists(), "still where it was moved to");
    assert!(
        !data.join("q/held/held/bad.com").exists(),
        "never moved again"
    );
    let tags = tags_beside(&data, "q", "held/bad.com");
    assert_eq!(tags["scan-result"], "infected");
}

/// Starts verdict-async on `dir` with a queue of 12 jobs, 2 workers and pages of 5.
async fn small_queue_server(dir: std::sync::Arc<tempfile::TempDir>) -> Server {
    let mut config = crate::testutil::base_config(dir.path());
    config.max_queued_jobs = 12;
    config.workers = 2;
    config.bulk_page_size = 5;
    Server::start_in(dir, &config).await
}

#[tokio::test]
async fn many_bulk_scans_on_a_small_queue_drain_to_the_end_and_after_a_restart_too() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let server = small_queue_server(std::sync::Arc::clone(&dir)).await;
    let data = server.data_dir();
    for scan in 0..4 {
        let folder = data.join("b").join(format!("s{scan}"));
        std::fs::create_dir_all(&folder).unwrap();
        for n in 0..30 {
            std::fs::write(folder.join(format!("{n:02}.txt")), format!("file {n}")).unwrap();
        }
    }
    // Four listings at once against a queue of 12 and 2 workers: each page job finds the queue
    // full again and again, and must give its worker back each time.
    let mut ids = Vec::new();
    for scan in 0..3 {
        let prefix = format!("s{scan}/");
        ids.push(
            start_bulk(
                &server.client,
                &server.base,
                &json!({"bucket": "b", "prefix": prefix}),
            )
            .await,
        );
    }
    for id in &ids {
        let status = wait_bulk(
            &server.client,
            &server.base,
            id,
            Duration::from_secs(60),
            |s| s["finished"] == true,
        )
        .await;
        assert_eq!(
            (status["listed"].clone(), status["clean"].clone()),
            (json!(30), json!(30)),
            "{status}"
        );
    }

    // Again, stopped while the queue is full of a bulk scan's jobs, then started again.
    let id = start_bulk(
        &server.client,
        &server.base,
        &json!({"bucket": "b", "prefix": "s3/"}),
    )
    .await;
    wait_bulk(
        &server.client,
        &server.base,
        &id,
        Duration::from_secs(30),
        |s| s["queued"].as_u64().unwrap_or(0) >= 5,
    )
    .await;
    server.stop().await;
    let server = small_queue_server(dir).await;
    let status = wait_bulk(
        &server.client,
        &server.base,
        &id,
        Duration::from_secs(60),
        |s| s["finished"] == true,
    )
    .await;
    assert_eq!(
        (
            status["listed"].clone(),
            status["clean"].clone(),
            status["done"].clone()
        ),
        (json!(30), json!(30), json!(30)),
        "every object once: {status}"
    );
}
