//! Crashes, with the real binary and SIGKILL: the embedded store loses no accepted job, and on
//! Redis a second instance finishes every job of one that died mid-run.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::json;

use crate::testutil::{KEY, Peer, Process, namespace, process_toml, redis_url, wait_for_result};

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
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::start().await;
    peer.delay_downloads(Duration::from_millis(50));
    let config = format!(
        "workers = 4\njob_lease_secs = 1\n{}[queue]\ntype = \"redis\"\nurl = \"{}\"\nnamespace = \"{}\"\n",
        process_toml(dir.path()),
        redis_url(),
        namespace()
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
    doomed.kill();
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
    // The dead instance was busy when killed (its queue was never empty), so the survivor had
    // to take its claimed jobs over once their lease ran out.
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
