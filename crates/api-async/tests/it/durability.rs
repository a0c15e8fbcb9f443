//! Crashes, with the real binary and SIGKILL: the embedded store loses no accepted job, and on
//! Redis a second instance finishes every job of one that died mid-run.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::json;

use crate::testutil::{
    KEY, Peer, Process, kill_holding_claims, namespace, notifying_queue, process_toml, redis_url,
    s3_process_toml, test_s3, wait_for_result,
};

async fn submit(client: &reqwest::Client, base: &str, body: serde_json::Value) -> u16 {
    client
        .post(format!("{base}/api/v1/scan/async/download"))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn finished(client: &reqwest::Client, base: &str, traces: &[String]) -> usize {
    let mut done = 0;
    for trace in traces {
        if crate::testutil::poll(client, base, trace).await.status() == 200 {
            done += 1;
        }
    }
    done
}

#[tokio::test]
async fn embedded_jobs_accepted_before_a_sigkill_are_all_done_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::start().await;
    // Slow downloads and two workers: the queue is still full when the process dies.
    peer.delay_downloads(Duration::from_millis(150));
    let config = format!(
        "workers = 2\n{}[queue]\ntype = \"embedded\"\npath = \"{}\"\n",
        process_toml(dir.path()),
        dir.path().join("jobs.redb").display()
    );
    let client = reqwest::Client::new();
    let traces: Vec<String> = (0..30).map(|i| format!("crash-{i}")).collect();

    let mut first = Process::start(dir.path(), "first", &config).await;
    for (i, trace) in traces.iter().enumerate() {
        let bytes = if i % 3 == 0 {
            scan_core::testing::eicar()
        } else {
            format!("clean file {i}").into_bytes()
        };
        let url = peer.file(&format!("f{i}"), bytes);
        let status = submit(
            &client,
            &first.base,
            json!({"download_url": url, "trace_id": trace}),
        )
        .await;
        assert_eq!(status, 201);
    }
    // Wait for the first result, then kill it mid-run.
    wait_for_result(&client, &first.base, &traces[0], Duration::from_secs(20)).await;
    first.kill();
    let before: Vec<&String> = traces
        .iter()
        .enumerate()
        .filter(|(i, _)| !peer.downloads_of(&format!("f{i}")).is_empty())
        .map(|(_, trace)| trace)
        .collect();
    assert!(
        before.len() < traces.len(),
        "the kill must land mid-run for this test to mean anything ({} of {} started)",
        before.len(),
        traces.len()
    );

    peer.delay_downloads(Duration::ZERO);
    let second = Process::start(dir.path(), "second", &config).await;
    for (i, trace) in traces.iter().enumerate() {
        let result = wait_for_result(&client, &second.base, trace, Duration::from_secs(30)).await;
        let expected = if i % 3 == 0 { "infected" } else { "clean" };
        assert_eq!(result["status"], expected, "{trace}");
    }
    // Each job was downloaded by the second process at most once more than by the first.
    for i in 0..traces.len() {
        let downloads = peer.downloads_of(&format!("f{i}")).len();
        assert!(
            (1..=2).contains(&downloads),
            "f{i} downloaded {downloads} times"
        );
    }
}

#[tokio::test]
async fn on_redis_a_second_instance_finishes_every_job_of_one_killed_mid_run() {
    test_support::service_or_skip!("VERDICT_TEST_REDIS_URL");
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::start().await;
    peer.delay_downloads(Duration::from_millis(50));
    let space = namespace();
    let config = format!(
        "workers = 4\njob_lease_secs = 1\n{}[queue]\ntype = \"redis\"\nurl = \"{}\"\nnamespace = \"{space}\"\n",
        process_toml(dir.path()),
        redis_url(),
    );
    let client = reqwest::Client::new();
    let mut doomed = Process::start(dir.path(), "doomed", &config).await;
    let survivor = Process::start(dir.path(), "survivor", &config).await;
    let jobs = 200;
    let traces: Vec<String> = (0..jobs).map(|i| format!("job-{i}")).collect();
    for (i, trace) in traces.iter().enumerate() {
        let url = peer.file(&format!("f{i}"), format!("payload {i}").into_bytes());
        let status = submit(
            &client,
            &doomed.base,
            json!({"download_url": url, "trace_id": trace, "callback_url": peer.callback_url(trace)}),
        )
        .await;
        assert_eq!(status, 204, "{trace}");
    }
    peer.accepted_callbacks(40, Duration::from_secs(30)).await;
    kill_holding_claims(&mut doomed, &space).await;
    let at_kill = peer.accepted_callbacks(0, Duration::ZERO).await.len();
    assert!(
        at_kill < jobs,
        "killed mid-run ({at_kill} of {jobs} delivered)"
    );

    // Every job is delivered and pollable from the survivor.
    let delivered = |peer: &Peer| {
        peer.callbacks()
            .into_iter()
            .filter(|c| c.answered < 300)
            .map(|c| c.body["trace_id"].as_str().unwrap().to_owned())
            .collect::<HashSet<_>>()
            .len()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while delivered(&peer) < jobs {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {jobs} jobs delivered after the kill",
            delivered(&peer)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(finished(&client, &survivor.base, &traces).await, jobs);

    // At least once, never more than the jobs the dead instance had in hand: a repeat can only
    // be a job it had called back for but not yet marked done, and it carries the same job id.
    let mut per_trace: HashMap<String, Vec<String>> = HashMap::new();
    for callback in peer.callbacks().iter().filter(|c| c.answered < 300) {
        per_trace
            .entry(callback.body["trace_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(callback.header("x-verdict-job-id").to_owned());
    }
    let repeated: Vec<_> = per_trace.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(
        repeated.len() <= 4,
        "{} jobs were delivered twice",
        repeated.len()
    );
    for (trace, ids) in repeated {
        assert!(ids.iter().all(|id| *id == ids[0]), "{trace}: {ids:?}");
    }
    // The dead instance held claims when killed, so the survivor had to take them over once
    // their lease ran out.
    let log = std::fs::read_to_string(dir.path().join("survivor.log")).unwrap();
    assert!(log.contains("taking over jobs"), "{log}");
    assert!(!log.contains("ERROR"), "{log}");
}

#[tokio::test]
async fn caller_strings_cannot_forge_log_lines_or_send_terminal_escapes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let config = format!(
        "{}[queue]\ntype = \"embedded\"\npath = \"{}\"\n",
        process_toml(dir.path()),
        dir.path().join("queue.redb").display()
    );
    let process = Process::start(dir.path(), "logs", &config).await;
    let client = reqwest::Client::new();
    let forged = "\n2026-12-01T00:00:00Z ERROR forged admin login\u{1b}[2J";
    let trace = format!("t{forged}");
    let status = submit(
        &client,
        &process.base,
        json!({"download_url": format!("http://127.0.0.1:9/x?q={forged}"), "trace_id": trace}),
    )
    .await;
    assert_eq!(status, 201);
    wait_for_result(&client, &process.base, &trace, Duration::from_secs(20)).await;
    let log = std::fs::read(dir.path().join("logs.log")).unwrap();
    assert!(!log.contains(&0x1b), "an escape byte reached the log");
    let log = String::from_utf8(log).unwrap();
    assert!(
        !log.lines()
            .any(|l| l.starts_with("2026-12-01T00:00:00Z ERROR forged")),
        "{log}"
    );
    assert!(
        log.contains("\\n2026-12-01T00:00:00Z ERROR forged admin login\\x1b[2J"),
        "{log}"
    );
}

#[tokio::test]
async fn sqs_bucket_events_all_get_their_verdict_when_a_worker_is_sigkilled_mid_scan() {
    test_support::service_or_skip!("VERDICT_TEST_S3_ENDPOINT");
    test_support::service_or_skip!("VERDICT_TEST_REDIS_URL");
    const OBJECTS: usize = 300;
    let (endpoint, _, s3, suffix) = test_s3().await;
    let name = format!("sqskill-{suffix}");
    let (sqs, queue_url) = notifying_queue(&endpoint, &s3, &name).await;
    let dir = tempfile::tempdir().unwrap();
    // Both instances consume the queue, on one Redis; objects outside in/ are not watched.
    let space = namespace();
    let config = format!(
        "workers = 2\njob_lease_secs = 1\n{}[queue]\ntype = \"redis\"\nurl = \"{}\"\nnamespace = \"{space}\"\n[events]\nprefixes = [\"in/\"]\n[events.sqs]\nqueue_urls = [\"{queue_url}\"]\nendpoint = \"{endpoint}\"\nwait_secs = 1\n",
        s3_process_toml(dir.path(), &endpoint),
        redis_url(),
    );
    let infected = |i: usize| i % 50 == 3;
    {
        use futures::StreamExt;
        futures::stream::iter(0..OBJECTS)
            .map(|i| {
                let (s3, name) = (s3.clone(), name.clone());
                let body = if infected(i) {
                    scan_core::testing::eicar()
                } else {
                    format!("object {i}").into_bytes()
                };
                async move {
                    s3.put_object()
                        .bucket(name)
                        .key(format!("in/{i:04}.txt"))
                        .body(aws_sdk_s3::primitives::ByteStream::from(body))
                        .send()
                        .await
                        .unwrap();
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<()>>()
            .await;
    }
    s3.put_object()
        .bucket(&name)
        .key("elsewhere/eicar.com")
        .body(aws_sdk_s3::primitives::ByteStream::from(
            scan_core::testing::eicar(),
        ))
        .send()
        .await
        .unwrap();

    // Every notification waits in SQS before either instance starts, so the kill lands while
    // there is work in hand.
    let mut doomed = Process::start(dir.path(), "doomed", &config).await;
    let survivor = Process::start(dir.path(), "survivor", &config).await;
    let http = reqwest::Client::new();
    let finished = |base: String| {
        let http = http.clone();
        async move {
            let text = http
                .get(format!("{base}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            text.lines()
                .filter(|l| l.starts_with("verdict_jobs_finished_total{"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>() as usize
        }
    };
    let verdicts = || {
        use futures::StreamExt;
        futures::stream::iter(0..OBJECTS)
            .map(|i| {
                let (s3, name) = (s3.clone(), name.clone());
                async move {
                    let tags = s3
                        .get_object_tagging()
                        .bucket(name)
                        .key(format!("in/{i:04}.txt"))
                        .send()
                        .await
                        .unwrap();
                    let tag = tags.tag_set().iter().find(|t| t.key() == "scan-result");
                    tag.map(|t| (i, t.value().to_owned()))
                }
            })
            .buffer_unordered(32)
            .filter_map(|found| async move { found })
            .collect::<HashMap<usize, String>>()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while finished(doomed.base.clone()).await < 10 {
        assert!(tokio::time::Instant::now() < deadline, "nothing scanned");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let held = kill_holding_claims(&mut doomed, &space).await;
    let at_kill = finished(survivor.base.clone()).await + 10;
    assert!(
        at_kill < OBJECTS,
        "killed mid-run (about {at_kill} of {OBJECTS} done)"
    );
    let _restarted = Process::start(dir.path(), "restarted", &config).await;

    // Done when SQS holds no message and the shared queue no job; then every object must
    // have its verdict (polling the tags meanwhile would only slow the S3 server down).
    let idle = || async {
        let messages = crate::testutil::sqs_messages(&sqs, &queue_url).await;
        let health: serde_json::Value = http
            .get(format!("{}/health", survivor.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        messages == 0 && health["pending_jobs"] == 0
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while !idle().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the work never ran out"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let found = verdicts().await;
    assert_eq!(
        found.len(),
        OBJECTS,
        "objects with a verdict after the kill"
    );
    for (i, verdict) in found {
        let want = if infected(i) { "infected" } else { "clean" };
        assert_eq!(verdict, want, "in/{i:04}.txt");
    }
    let outside = s3
        .get_object_tagging()
        .bucket(&name)
        .key("elsewhere/eicar.com")
        .send()
        .await
        .unwrap();
    assert!(
        outside.tag_set().is_empty(),
        "a prefix not watched is left alone"
    );
    // The dead instance's claimed jobs were taken over once their lease ran out.
    let logs = ["survivor", "restarted"]
        .map(|n| std::fs::read_to_string(dir.path().join(format!("{n}.log"))).unwrap());
    assert!(
        logs.iter().any(|l| l.contains("taking over jobs")),
        "the dead instance's {} claims were taken over: {logs:?}",
        held.len()
    );
    drop(survivor);
}
