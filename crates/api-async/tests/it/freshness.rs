//! Rules that change under a running verdict-async: stored objects judged again (re-verdicts),
//! the file watch and SIGHUP on the binary, and the verdict cache shared through Redis.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::testutil::{CALLBACK_SECRET, KEY, Peer, Process, Server, namespace, redis_url};

const RULE: &str = "rule Freshness_Marker {\n  strings:\n    $m = \"FRESHNESS-MARKER-a91e\"\n  condition:\n    $m\n}\n";

fn tags_of(data: &std::path::Path, bucket: &str, key: &str) -> BTreeMap<String, String> {
    let path = data.join(bucket).join(format!(".{key}.tags.json"));
    let Ok(text) = std::fs::read_to_string(path) else {
        return BTreeMap::new();
    };
    let value: Value = serde_json::from_str(&text).unwrap();
    let tags = value
        .get("tags")
        .filter(|t| t.is_object())
        .unwrap_or(&value);
    serde_json::from_value(tags.clone()).unwrap()
}

async fn wait_for(what: &str, within: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn scans_total(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("verdict_scans_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// 100 stored objects are judged clean under fingerprint A (the re-verdict that runs at start);
/// a rule that matches 3 of them is added; in bounded time exactly those 3 are moved to the
/// quarantine and notified with their old and new verdict, the other 97 carry fingerprint B,
/// and no object is scanned twice under one fingerprint.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rule_change_judges_stored_objects_again_and_moves_and_notifies_the_newly_infected() {
    let peer = Peer::start().await;
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(
        rules.path().join("base.yar"),
        "rule Nothing { condition: false }\n",
    )
    .unwrap();
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let data = dir.path().join("data");
    for bucket in ["b", "q"] {
        std::fs::create_dir_all(data.join(bucket)).unwrap();
    }
    let marked = ["f017.txt", "f042.txt", "f088.txt"];
    for i in 0..100 {
        let name = format!("f{i:03}.txt");
        let mut text = format!("stored document number {i}\n");
        if marked.contains(&name.as_str()) {
            text.push_str("FRESHNESS-MARKER-a91e\n");
        }
        std::fs::write(data.join("b").join(&name), text).unwrap();
    }
    let mut config = crate::testutil::base_config(dir.path());
    config.engines = vec![engines::EngineConfig::Yara {
        rules: vec![rules.path().to_owned()],
        max_object_size: None,
    }];
    config.reload.watch_every_secs = 0.1;
    config.rescan.targets = vec!["b".to_owned()];
    config.rescan.max_objects_per_sec = 500.0;
    config.rescan.check_every_secs = 0.1;
    config.rescan.notify_url = Some(peer.callback_url("reverdict"));
    config.actions.infected = storage::actions::Action::Move;
    config.actions.quarantine_bucket = Some("q".into());
    let server = Server::start_in(dir.clone(), &config).await;
    let health = |server: &Server| {
        let request = server.client.get(server.url("/health")).send();
        async move { request.await.unwrap().json::<Value>().await.unwrap() }
    };
    let first = health(&server).await["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();

    let key = |i: usize| format!("f{i:03}.txt");
    wait_for(
        "every object judged under A",
        Duration::from_secs(60),
        async || (0..100).all(|i| tags_of(&data, "b", &key(i)).get("scan-engines") == Some(&first)),
    )
    .await;
    assert!((0..100).all(|i| tags_of(&data, "b", &key(i))["scan-result"] == "clean"));
    let metrics = || {
        let request = server.client.get(server.url("/metrics")).send();
        async move { request.await.unwrap().text().await.unwrap() }
    };
    assert_eq!(scans_total(&metrics().await), 100);

    std::fs::write(rules.path().join("marker.yar"), RULE).unwrap();
    let mut second = first.clone();
    wait_for("the rules reloaded", Duration::from_secs(20), async || {
        second = health(&server).await["fingerprint"]
            .as_str()
            .unwrap()
            .to_owned();
        second != first
    })
    .await;
    let notified = peer.accepted_callbacks(3, Duration::from_secs(60)).await;
    wait_for(
        "the other 97 judged under B",
        Duration::from_secs(60),
        async || {
            (0..100)
                .filter(|i| !marked.contains(&key(*i).as_str()))
                .all(|i| tags_of(&data, "b", &key(i)).get("scan-engines") == Some(&second))
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut moved: Vec<String> = std::fs::read_dir(data.join("q"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    moved.sort();
    assert_eq!(moved, marked, "exactly the three marked objects are moved");
    for name in marked {
        assert!(!data.join("b").join(name).exists());
    }
    let mut keys = Vec::new();
    for callback in peer.callbacks().iter().filter(|c| c.answered < 300) {
        let timestamp: u64 = callback.headers["x-verdict-timestamp"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let signature = callback.headers["x-verdict-signature"].to_str().unwrap();
        assert!(
            api_async::verify_callback(
                CALLBACK_SECRET.as_bytes(),
                timestamp,
                &callback.raw,
                signature
            ),
            "notifications are signed like callbacks"
        );
        let body = &callback.body;
        assert_eq!(body["event"], "reverdict.infected");
        assert_eq!(body["bucket"], "b");
        assert_eq!(
            body["before"],
            json!({"result": "clean", "fingerprint": first})
        );
        assert_eq!(body["after"]["status"], "infected");
        assert_eq!(body["after"]["finding"], "Freshness_Marker");
        assert_eq!(body["after"]["fingerprint"], second.as_str());
        keys.push(body["key"].as_str().unwrap().to_owned());
    }
    keys.sort();
    assert_eq!(keys, marked, "one notification per newly infected object");
    assert_eq!(notified.len(), 3);
    assert_eq!(
        scans_total(&metrics().await),
        200,
        "each object scanned once under each fingerprint"
    );
}

/// The same bytes scanned through two instances on one Redis: the second answers from the
/// cache the first filled.
#[tokio::test]
async fn two_instances_on_redis_share_the_verdict_cache() {
    test_support::service_or_skip!("VERDICT_TEST_REDIS_URL");
    let dir = tempfile::tempdir().unwrap();
    let ns = namespace();
    let config = format!(
        "api_keys = \"{KEY}\"\nworkers = 1\n[queue]\ntype = \"redis\"\nurl = \"{}\"\nnamespace = \"{ns}\"\n[storage]\ntype = \"local\"\nroot = \"{}\"\n",
        redis_url(),
        dir.path().join("data").display()
    );
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let one = Process::start(dir.path(), "one", &config).await;
    let two = Process::start(dir.path(), "two", &config).await;
    let client = reqwest::Client::new();
    let scan = |base: &str| {
        client
            .post(format!("{base}/api/v1/scan/sync/binary"))
            .bearer_auth(KEY)
            .body(b"shared between instances, judged once".to_vec())
            .send()
    };
    let first: Value = scan(&one.base).await.unwrap().json().await.unwrap();
    assert_eq!(first["status"], "clean", "{first}");
    assert!(first.get("cached").is_none(), "{first}");
    let second: Value = scan(&two.base).await.unwrap().json().await.unwrap();
    assert_eq!(second["status"], "clean", "{second}");
    assert_eq!(second["cached"], true, "{second}");
    assert_eq!(second["fingerprint"], first["fingerprint"]);
}

/// SIGHUP makes the binary load its rules again; the answer names the new fingerprint.
#[tokio::test]
async fn sighup_reloads_the_rules_of_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(
        rules.join("base.yar"),
        "rule Nothing { condition: false }\n",
    )
    .unwrap();
    let config = format!(
        "api_keys = \"{KEY}\"\n[queue]\ntype = \"embedded\"\npath = \"{}\"\n[storage]\ntype = \"local\"\nroot = \"{}\"\n[[engines]]\ntype = \"yara\"\nrules = [\"{}\"]\n[reload]\nwatch_every_secs = 0\n",
        dir.path().join("queue.redb").display(),
        dir.path().join("data").display(),
        rules.display()
    );
    let process = Process::start(dir.path(), "hup", &config).await;
    let client = reqwest::Client::new();
    let fingerprint = async || -> String {
        let health: Value = client
            .get(format!("{}/health", process.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        health["fingerprint"].as_str().unwrap().to_owned()
    };
    let scan = async || -> Value {
        client
            .post(format!("{}/api/v1/scan/sync/binary", process.base))
            .bearer_auth(KEY)
            .body(b"a memo: FRESHNESS-MARKER-a91e".to_vec())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    let before = fingerprint().await;
    assert_eq!(scan().await["status"], "clean");
    std::fs::write(rules.join("marker.yar"), RULE).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fingerprint().await,
        before,
        "the file watch is off: nothing changes by itself"
    );
    process.signal("HUP");
    let mut after = before.clone();
    wait_for("SIGHUP to reload", Duration::from_secs(20), async || {
        after = fingerprint().await;
        after != before
    })
    .await;
    let answer = scan().await;
    assert_eq!(answer["status"], "infected", "{answer}");
    assert_eq!(answer["finding"], "Freshness_Marker");
    assert_eq!(answer["fingerprint"], after.as_str());
}

/// An S3 object stored with a full-object SHA-256 checksum is judged from the cache by a HEAD
/// alone: the S3 server (moto) logs one GET of it however often it is scanned.
#[tokio::test]
async fn an_s3_object_with_a_sha256_checksum_is_not_downloaded_on_a_cache_hit() {
    test_support::service_or_skip!("VERDICT_TEST_S3_ENDPOINT");
    let (_endpoint, s3, client, suffix) = crate::testutil::test_s3().await;
    let bucket = format!("verdict-cache-{suffix}");
    client.create_bucket().bucket(&bucket).send().await.unwrap();
    let key = format!("in/report-{suffix}.txt");
    client
        .put_object()
        .bucket(&bucket)
        .key(&key)
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
        .body(b"a stored report, scanned twice".to_vec().into())
        .send()
        .await
        .unwrap();
    let server = Server::start_with(|c| c.storage = storage::StorageConfig::S3(s3)).await;
    let scan = async || -> Value {
        server
            .client
            .post(server.url("/api/v1/scan/sync/s3"))
            .bearer_auth(KEY)
            .json(&json!({"bucket": bucket, "key": key}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    let log = std::env::var("VERDICT_TEST_S3_LOG")
        .expect("VERDICT_TEST_S3_LOG: run the tests through scripts/test.sh");
    let gets = || {
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .filter(|l| l.contains(&format!("\"GET /{bucket}/{key}")))
            .count()
    };
    let first = scan().await;
    assert_eq!(first["status"], "clean", "{first}");
    assert!(first.get("cached").is_none());
    assert_eq!(gets(), 1);
    let second = scan().await;
    assert_eq!(second["status"], "clean", "{second}");
    assert_eq!(second["cached"], true, "{second}");
    assert_eq!(
        gets(),
        1,
        "a cache hit by checksum does not download the object"
    );
}
