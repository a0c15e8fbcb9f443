//! Rules that change under the running binary: SIGHUP and the file watch, under load, a refused
//! rule file, the fingerprint in every answer, and the verdict cache.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::testutil::{Binary, scan_at, token_at};

const MARKER: &[u8] = b"quarterly report, nothing to see: FRESHNESS-MARKER-5c1d";
const RULE: &str = "rule Freshness_Marker {\n  strings:\n    $m = \"FRESHNESS-MARKER-5c1d\"\n  condition:\n    $m\n}\n";

fn rules_config(rules: &std::path::Path, watch_every_secs: f64) -> String {
    format!(
        "[[engines]]\ntype = \"yara\"\nrules = [\"{}\"]\n[reload]\nwatch_every_secs = {watch_every_secs}\n",
        rules.display()
    )
}

async fn health(client: &reqwest::Client, binary: &Binary) -> Value {
    client
        .get(binary.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn fingerprint_changes(client: &reqwest::Client, binary: &Binary, from: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = health(client, binary).await["fingerprint"]
            .as_str()
            .unwrap()
            .to_owned();
        if now != from {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "no reload within 20 s; log:\n{}",
            binary.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sixteen clients upload the marker without pause while a rule for it is added and SIGHUP
/// sent: no request fails, each answer's fingerprint is the set that judged it (clean before,
/// infected after), and the last answers are all infected.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sighup_under_load_swaps_the_rules_and_every_answer_names_its_set() {
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(
        rules.path().join("base.yar"),
        "rule Nothing { condition: false }\n",
    )
    .unwrap();
    let binary = Binary::start(&rules_config(rules.path(), 0.0)).await;
    let client = reqwest::Client::new();
    let first = health(&client, &binary).await;
    let before = first["fingerprint"].as_str().unwrap().to_owned();
    assert_eq!(first["engines"][0]["name"], "yara");
    assert_eq!(
        first["engines"][0]["rules"], 2,
        "built-in EICAR and Nothing: {first}"
    );
    let token = token_at(&client, &binary.base).await;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for i in 0..16 {
        let (client, base, token, stop) = (
            client.clone(),
            binary.base.clone(),
            token.clone(),
            std::sync::Arc::clone(&stop),
        );
        clients.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            loop {
                let done = stop.load(std::sync::atomic::Ordering::Relaxed);
                // Each client's bytes differ, so the verdict cache answers only its repeats.
                let mut bytes = MARKER.to_vec();
                bytes.extend_from_slice(format!(" client {i}").as_bytes());
                let response = scan_at(&client, &base, &token, "marker.txt", bytes, None).await;
                assert_eq!(response.status(), 200, "no request fails during a reload");
                answers.push(response.json::<Value>().await.unwrap());
                if done {
                    return answers;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    std::fs::write(rules.path().join("marker.yar"), RULE).unwrap();
    binary.signal("HUP");
    let after = fingerprint_changes(&client, &binary, &before).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);

    let (mut old, mut new) = (0, 0);
    for client in clients {
        let answers = client.await.unwrap();
        assert_eq!(answers.last().unwrap()["fingerprint"], after.as_str());
        for answer in answers {
            if answer["fingerprint"] == before.as_str() {
                assert_eq!(answer["result"], "Clean", "{answer}");
                old += 1;
            } else {
                assert_eq!(answer["fingerprint"], after.as_str(), "{answer}");
                assert_eq!(answer["result"], "Infected", "{answer}");
                assert_eq!(
                    answer["detectedInfections"][0]["infection"],
                    "Freshness_Marker"
                );
                new += 1;
            }
        }
    }
    assert!(old > 0 && new > 0, "{old} answers before, {new} after");
    let now = health(&client, &binary).await;
    assert_eq!(now["engines"][0]["rules"], 3, "{now}");
}

/// The file watch loads a new rule by itself; a rule file that does not compile is refused, the
/// set in use stays, the log names the file and line, and the metric counts it.
#[tokio::test]
async fn the_file_watch_reloads_and_a_broken_file_is_refused_with_its_line() {
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(
        rules.path().join("base.yar"),
        "rule Nothing { condition: false }\n",
    )
    .unwrap();
    let binary = Binary::start(&rules_config(rules.path(), 0.1)).await;
    let client = reqwest::Client::new();
    let token = token_at(&client, &binary.base).await;
    let before = health(&client, &binary).await["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    let answer: Value = scan_at(
        &client,
        &binary.base,
        &token,
        "m.txt",
        MARKER.to_vec(),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(answer["result"], "Clean");
    assert_eq!(answer["fingerprint"], before.as_str());

    std::fs::write(rules.path().join("marker.yar"), RULE).unwrap();
    let after = fingerprint_changes(&client, &binary, &before).await;
    let answer: Value = scan_at(
        &client,
        &binary.base,
        &token,
        "m.txt",
        MARKER.to_vec(),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(answer["result"], "Infected", "{answer}");
    assert_eq!(answer["fingerprint"], after.as_str());
    assert_eq!(
        answer["cached"], false,
        "another fingerprint is never answered from the cache"
    );
    let again: Value = scan_at(
        &client,
        &binary.base,
        &token,
        "renamed.txt",
        MARKER.to_vec(),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        again["cached"], true,
        "the same bytes under the same rules: {again}"
    );
    assert_eq!(again["result"], "Infected");

    std::fs::write(
        rules.path().join("zz-broken.yar"),
        "rule Fine { condition: true }\n\nrule Broken {\n  condition: $missing\n}\n",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !binary.log().contains("rules refused") {
        assert!(
            Instant::now() < deadline,
            "no refusal logged:\n{}",
            binary.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = binary.log();
    let refusal = log.lines().find(|l| l.contains("rules refused")).unwrap();
    assert!(
        refusal.contains("zz-broken.yar") && refusal.contains(":4:"),
        "{refusal}"
    );
    assert_eq!(
        health(&client, &binary).await["fingerprint"],
        after.as_str()
    );
    let metrics = client
        .get(binary.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("verdict_rule_reloads_total{outcome=\"refused\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("verdict_cache_total{outcome=\"hit\"} 1"),
        "{metrics}"
    );
    let answer: Value = scan_at(
        &client,
        &binary.base,
        &token,
        "m.txt",
        MARKER.to_vec(),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        answer["result"], "Infected",
        "the old set still judges: {answer}"
    );
}
