//! End-to-end tests of the `verdict` binary: real process, real files, real engines.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use scan_core::testing::{self, eicar};

fn verdict(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args(args)
        .output()
        .expect("run verdict")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&path, bytes).expect("write");
    path.display().to_string()
}

#[test]
fn demo_files_prints_the_four_detections_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let demo = write(dir.path(), "DemoFiles", &testing::demo_files());
    let out = verdict(&["scan", &demo]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    let mut found: Vec<&str> = text.lines().filter(|l| l.ends_with(" FOUND")).collect();
    found.sort_unstable();
    let mut expected: Vec<String> = [
        "eicar.com",
        "eicar.com.txt",
        "eicar_com.zip/eicar.com",
        "eicarcom2.zip/eicar_com.zip/eicar.com",
    ]
    .iter()
    .map(|member| format!("{demo}/{member}: EICAR_Test_File FOUND"))
    .collect();
    expected.sort_unstable();
    assert_eq!(found, expected);
    assert!(text.contains("Infected files: 1"), "{text}");
}

#[test]
fn a_clean_folder_exits_0_and_lists_every_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.txt", b"hello");
    write(
        dir.path(),
        "sub/b.zip",
        &testing::zip(&[("c.txt", b"fine")]),
    );
    write(
        dir.path(),
        "sub/deeper/d.tar.gz",
        &testing::gzip(&testing::tar(&[("e", b"f")])),
    );
    let out = verdict(&["scan", &dir.path().display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert_eq!(
        text.lines().filter(|l| l.ends_with(": OK")).count(),
        3,
        "{text}"
    );
    assert!(text.contains("Scanned files: 3"), "{text}");
}

#[test]
fn a_bomb_exits_2_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = write(dir.path(), "zeros.gz", &testing::gzip_of_zeros(10 << 30));
    let out = verdict(&["scan", &bomb]);
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    assert!(
        text.contains("Heuristics.Limits.Exceeded.MaxCompressionRatio"),
        "{text}"
    );
    assert!(text.contains("NOT EXAMINED"), "{text}");

    let many = write(
        dir.path(),
        "many.zip",
        &testing::zip(&[("1", b"a"), ("2", b"b"), ("3", b"c")]),
    );
    let out = verdict(&["scan", "--max-files", "2", &many]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).contains("Heuristics.Limits.Exceeded.MaxFiles"));
}

#[test]
fn json_output_is_one_report_per_line() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "clean.txt", b"hello");
    write(
        dir.path(),
        "eicar.zip",
        &testing::zip(&[("eicar.com", &eicar())]),
    );
    let out = verdict(&["scan", "--json", &dir.path().display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let reports: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(reports.len(), 2);
    let infected = reports
        .iter()
        .find(|r| r["verdict"] == "Infected")
        .expect("infected report");
    assert_eq!(infected["detections"][0]["name"], "EICAR_Test_File");
    assert_eq!(infected["detections"][0]["engine"], "yara");
    assert!(
        infected["detections"][0]["path"]
            .as_str()
            .unwrap()
            .ends_with("eicar.zip/eicar.com")
    );
    let clean = reports
        .iter()
        .find(|r| r["verdict"] == "Clean")
        .expect("clean report");
    assert_eq!(clean["size"], 5);
    assert_eq!(clean["file_type"], "text");
}

#[test]
fn user_rules_and_hash_lists_are_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let payload = b"a harmless test payload made by the test suite".to_vec();
    let md5 = {
        use md5::Digest;
        hex::encode(md5::Md5::digest(&payload))
    };
    let hdb = write(
        dir.path(),
        "sigs/test.hdb",
        format!("{md5}:{}:Test.Payload.MD5\n", payload.len()).as_bytes(),
    );
    let rules = dir.path().join("rules");
    write(
        &rules,
        "words.yar",
        b"rule Suspicious_Word { strings: $a = \"suspicious-marker\" condition: $a }",
    );
    let samples = dir.path().join("samples");
    write(&samples, "payload.bin", &payload);
    write(
        &samples,
        "note.txt",
        b"this file has a suspicious-marker inside",
    );
    let out = verdict(&[
        "scan",
        "--rules",
        &rules.display().to_string(),
        "--hashes",
        &hdb,
        &samples.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("payload.bin: Test.Payload.MD5 FOUND"),
        "{text}"
    );
    assert!(text.contains("note.txt: Suspicious_Word FOUND"), "{text}");
}

#[test]
fn bad_input_is_reported_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.bin").display().to_string();
    let out = verdict(&["scan", &missing]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains("nope.bin: ERROR cannot read"),
        "{}",
        stdout(&out)
    );

    let bad_rule = write(
        dir.path(),
        "bad.yar",
        b"rule broken { condition: nonsense_identifier }",
    );
    let out = verdict(&["scan", "--rules", &bad_rule, &missing]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yar") && err.contains("do not compile"),
        "{err}"
    );
}

#[test]
fn size_flags_parse_human_sizes() {
    assert_eq!(cli::parse_size("100M"), Ok(100 << 20));
    assert_eq!(cli::parse_size("2GiB"), Ok(2 << 30));
    assert_eq!(cli::parse_size("512"), Ok(512));
    assert!(cli::parse_size("lots").is_err());
}

#[test]
fn clamd_joins_the_embedded_engines_from_the_command_line() {
    let address = test_support::service_or_skip!("VERDICT_TEST_CLAMD_SOCKET");
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "eicar.zip",
        &testing::zip(&[("eicar.com", &eicar())]),
    );
    let out = verdict(&["scan", "--json", "--clamd", &address, &file]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let mut engines: Vec<&str> = report["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["engine"].as_str().unwrap())
        .collect();
    engines.sort_unstable();
    assert_eq!(engines, ["clamd", "yara"], "{report}");
}

/// Each file's verdict and detections (engine, name, path), from `--json` output.
fn verdicts(out: &Output) -> Vec<(String, String, Vec<String>)> {
    let mut all: Vec<_> = stdout(out)
        .lines()
        .map(|line| {
            let report: serde_json::Value = serde_json::from_str(line).unwrap();
            let mut found: Vec<String> = report["detections"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| format!("{} {} {}", d["engine"], d["name"], d["path"]))
                .collect();
            found.sort();
            (
                report["name"].as_str().unwrap().to_owned(),
                report["verdict"].to_string(),
                found,
            )
        })
        .collect();
    all.sort();
    all
}

#[test]
fn a_servers_config_file_gives_the_same_verdicts_as_the_flags() {
    let socket = test_support::service_or_skip!("VERDICT_TEST_CLAMD_SOCKET");
    let dir = tempfile::tempdir().unwrap();
    let payload = b"another harmless payload made by the test suite".to_vec();
    let md5 = {
        use md5::Digest;
        hex::encode(md5::Md5::digest(&payload))
    };
    let hdb = write(
        dir.path(),
        "sigs/test.hdb",
        format!("{md5}:{}:Test.Payload.MD5\n", payload.len()).as_bytes(),
    );
    let rules = dir.path().join("rules");
    write(
        &rules,
        "words.yar",
        b"rule Suspicious_Word { strings: $a = \"suspicious-marker\" condition: $a }",
    );
    let samples = dir.path().join("samples");
    write(&samples, "payload.bin", &payload);
    write(&samples, "note.txt", b"a suspicious-marker in here");
    write(&samples, "clean.txt", b"nothing to see");
    write(
        &samples,
        "eicar.zip",
        &testing::zip(&[("eicar.com", &eicar())]),
    );
    let deep = testing::zip(&[(
        "a.zip",
        &testing::zip(&[("b.zip", &testing::zip(&[("c.txt", b"deep")]))]),
    )]);
    write(&samples, "deep.zip", &deep);
    // A verdict-sync configuration file, server settings and all.
    let config = write(
        dir.path(),
        "verdict.toml",
        format!(
            "listen = \"127.0.0.1:9\"\nusers_file = \"/nonexistent/users\"\nmax_concurrent_scans = 4\n[token]\nsecret = \"not used by the command\"\n[limits]\nmax_depth = 2\n[[engines]]\ntype = \"yara\"\nrules = [\"{}\"]\n[[engines]]\ntype = \"hashes\"\nfiles = [\"{hdb}\"]\n[[engines]]\ntype = \"clamd\"\naddress = \"{socket}\"\n",
            rules.display()
        )
        .as_bytes(),
    );
    let target = samples.display().to_string();
    let by_flags = verdict(&[
        "scan",
        "--json",
        "--rules",
        &rules.display().to_string(),
        "--hashes",
        &hdb,
        "--clamd",
        &socket,
        "--max-depth",
        "2",
        &target,
    ]);
    let by_file = verdict(&["scan", "--json", "--config", &config, &target]);
    assert_eq!(
        by_file.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&by_file.stderr)
    );
    assert_eq!(verdicts(&by_file), verdicts(&by_flags));
    let seen = verdicts(&by_file);
    let engines_seen: std::collections::BTreeSet<String> = seen
        .iter()
        .flat_map(|(_, _, found)| {
            found
                .iter()
                .map(|f| f.split(' ').next().unwrap().to_owned())
        })
        .collect();
    assert_eq!(
        engines_seen.into_iter().collect::<Vec<_>>(),
        ["\"clamd\"", "\"hashes\"", "\"yara\""],
        "{seen:?}"
    );
    let deep = seen
        .iter()
        .find(|(name, _, _)| name.ends_with("deep.zip"))
        .unwrap();
    assert_ne!(
        deep.1, "\"clean\"",
        "the depth limit of the file applies: {deep:?}"
    );
}

/// Serves `body` to every connection on a loopback port, for URL scans (or as a proxy would,
/// whatever it is asked): its address, and how many connections it has had.
fn serve_to_every_connection(body: Vec<u8>) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&connections);
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    (addr, connections)
}

/// A URL on a loopback server that serves `body`.
fn serve_once_per_connection(body: Vec<u8>) -> String {
    let (addr, _) = serve_to_every_connection(body);
    format!("http://{addr}/files/sample.zip")
}

#[test]
fn urls_are_scanned_and_guarded() {
    let url = serve_once_per_connection(testing::zip(&[("eicar.com", &eicar())]));
    let out = verdict(&["scan", "--allow-fetch", "127.0.0.0/8", &url]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains(&format!("{url}/eicar.com: EICAR_Test_File FOUND")),
        "{}",
        stdout(&out)
    );

    let out = verdict(&["scan", &url]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).contains("loopback"), "{}", stdout(&out));
}

#[test]
fn s3_prefixes_are_listed_and_every_object_scanned() {
    let endpoint = test_support::service_or_skip!("VERDICT_TEST_S3_ENDPOINT");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let bucket = format!("cli-test-{}", std::process::id());
    runtime.block_on(async {
        let store = storage_client(&endpoint).await;
        store.create_bucket().bucket(&bucket).send().await.unwrap();
        for (key, body) in [
            ("in/a.txt", b"clean text".to_vec()),
            ("in/sub/e.zip", testing::zip(&[("eicar.com", &eicar())])),
            ("out/b.txt", eicar()),
        ] {
            store
                .put_object()
                .bucket(&bucket)
                .key(key)
                .body(body.into())
                .send()
                .await
                .unwrap();
        }
    });
    let out = verdict(&[
        "scan",
        "--s3-endpoint",
        &endpoint,
        &format!("s3://{bucket}/in/"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("s3://{bucket}/in/a.txt: OK")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "s3://{bucket}/in/sub/e.zip/eicar.com: EICAR_Test_File FOUND"
        )),
        "{text}"
    );
    assert!(
        !text.contains("out/b.txt"),
        "only the prefix is scanned: {text}"
    );
    assert!(text.contains("Scanned files: 2"), "{text}");

    let out = verdict(&[
        "scan",
        "--s3-endpoint",
        &endpoint,
        &format!("s3://{bucket}/nothing-here/"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains("no objects under this prefix"),
        "{}",
        stdout(&out)
    );
}

async fn storage_client(endpoint: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "verdict-test",
            "verdict-test",
            None,
            None,
            "tests",
        ))
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

#[test]
fn proxy_variables_do_not_carry_a_fetch_past_the_guard() {
    // A "proxy" that would fetch anything it is asked for: here it answers with the test file.
    let (proxy, asked) = serve_to_every_connection(testing::zip(&[("eicar.com", &eicar())]));
    let proxy_url = format!("http://{proxy}");
    let mut command = Command::new(env!("CARGO_BIN_EXE_verdict"));
    for variable in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        command.env(variable, &proxy_url);
    }
    command.env_remove("NO_PROXY").env_remove("no_proxy");
    let out = command
        .args(["scan", "http://localhost:9/files/sample.zip"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stdout(&out).contains("loopback"), "{}", stdout(&out));
    assert_eq!(asked.load(Ordering::SeqCst), 0, "the proxy was asked");
}

/// The keys a run printed a verdict line for (`s3://bucket/KEY: OK` or `...: NAME FOUND`).
fn keys_reported(text: &str, bucket: &str) -> Vec<String> {
    let lead = format!("s3://{bucket}/");
    text.lines()
        .filter_map(|line| line.strip_prefix(&lead))
        .filter_map(|rest| rest.split(": ").next())
        .map(str::to_owned)
        .collect()
}

/// Runs `verdict scan` on the prefix with a state file, stops it with `signal` once the state
/// shows `after` objects done, and returns what it printed and its exit code.
fn interrupted_run(args: &[&str], state: &Path, after: u64, signal: &str) -> (String, Option<i32>) {
    let child = Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let done = std::fs::read_to_string(state)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["files"].as_u64())
            .unwrap_or(0);
        if done >= after {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no progress");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let killed = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    (stdout(&out), out.status.code())
}

#[test]
fn an_interrupted_bucket_scan_resumes_from_its_state_file_without_scanning_anything_twice() {
    let endpoint = test_support::service_or_skip!("VERDICT_TEST_S3_ENDPOINT");
    const OBJECTS: usize = 240;
    let infected = |i: usize| i % 40 == 5;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let bucket = format!("cli-resume-{}", std::process::id());
    runtime.block_on(async {
        let store = storage_client(&endpoint).await;
        store.create_bucket().bucket(&bucket).send().await.unwrap();
        for i in 0..OBJECTS {
            let body = if infected(i) {
                eicar()
            } else {
                format!("object {i}").into_bytes()
            };
            store
                .put_object()
                .bucket(&bucket)
                .key(format!("r/{i:04}.txt"))
                .body(body.into())
                .send()
                .await
                .unwrap();
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("scan.state");
    let target = format!("s3://{bucket}/r/");
    let state_arg = state.display().to_string();
    let args = [
        "scan",
        "--s3-endpoint",
        &endpoint,
        "--jobs",
        "1",
        "--resume",
        &state_arg,
        &target,
    ];

    // Ctrl-C: stops at once, the state saved exactly.
    let (first, code) = interrupted_run(&args, &state, 40, "-INT");
    assert_eq!(code, Some(130), "{first}");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let first_keys = keys_reported(&first, &bucket);
    assert_eq!(saved["files"], first_keys.len() as u64);
    assert_eq!(saved["after"], first_keys.last().unwrap().as_str());
    assert_eq!(saved["finished"], false);

    // SIGKILL: nothing runs on the way out; at most the object in flight is done again.
    let (second, code) = interrupted_run(&args, &state, first_keys.len() as u64 + 40, "-KILL");
    assert_eq!(code, None, "killed by a signal");
    let second_keys = keys_reported(&second, &bucket);

    let out = verdict(&args);
    assert_eq!(out.status.code(), Some(1), "infected objects among them");
    let third_keys = keys_reported(&stdout(&out), &bucket);
    let mut all: Vec<String> = [first_keys, second_keys, third_keys].concat();
    let reported = all.len();
    all.sort();
    all.dedup();
    let expected: Vec<String> = (0..OBJECTS).map(|i| format!("r/{i:04}.txt")).collect();
    assert_eq!(all, expected, "every object reported");
    assert!(
        reported - OBJECTS <= 1,
        "{} objects scanned twice",
        reported - OBJECTS
    );
    let text = stdout(&out);
    // The summary counts the earlier runs' objects from the state file.
    assert!(
        text.contains(&format!("Scanned files: {OBJECTS}")),
        "{text}"
    );
    let infected_count = (0..OBJECTS).filter(|i| infected(*i)).count();
    assert!(
        text.contains(&format!("Infected files: {infected_count}")),
        "{text}"
    );

    // Finished: a rerun scans nothing and says why.
    let again = verdict(&args);
    assert_eq!(again.status.code(), Some(1));
    assert!(keys_reported(&stdout(&again), &bucket).is_empty());
    assert!(String::from_utf8_lossy(&again.stderr).contains("scanned to the end already"));
    // The state belongs to its target.
    let other = format!("s3://{bucket}/elsewhere/");
    let wrong = verdict(&[
        "scan",
        "--s3-endpoint",
        &endpoint,
        "--resume",
        &state_arg,
        &other,
    ]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("another file"));
}

/// `verdict rescan` judges stored objects again: the first run tags every object with the
/// rules' fingerprint, a run under the same rules skips them all, and after a rule is added
/// only the newly matching object is found and named with what it was.
#[test]
fn rescan_judges_only_what_older_rules_judged_and_names_what_turned_infected() {
    let endpoint = test_support::service_or_skip!("VERDICT_TEST_S3_ENDPOINT");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let bucket = format!("cli-rescan-{}", std::process::id());
    let store = runtime.block_on(storage_client(&endpoint));
    runtime.block_on(async {
        store.create_bucket().bucket(&bucket).send().await.unwrap();
        for (key, body) in [
            ("in/a.txt", &b"an ordinary memo"[..]),
            ("in/b.txt", &b"memo with RESCAN-MARKER-31b7 inside"[..]),
            ("in/c.txt", &b"another memo"[..]),
        ] {
            store
                .put_object()
                .bucket(&bucket)
                .key(key)
                .body(body.to_vec().into())
                .send()
                .await
                .unwrap();
        }
    });
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(
        rules.path().join("base.yar"),
        "rule Nothing { condition: false }\n",
    )
    .unwrap();
    let target = format!("s3://{bucket}/in/");
    let rules_dir = rules.path().display().to_string();
    let rescan = || {
        verdict(&[
            "rescan",
            "--s3-endpoint",
            &endpoint,
            "--rules",
            &rules_dir,
            &target,
        ])
    };
    let tag_of = |key: &str, name: &str| {
        runtime.block_on(async {
            let tags = store
                .get_object_tagging()
                .bucket(&bucket)
                .key(key)
                .send()
                .await
                .unwrap();
            tags.tag_set()
                .iter()
                .find(|t| t.key() == name)
                .map(|t| t.value().to_owned())
        })
    };

    let first = rescan();
    assert_eq!(first.status.code(), Some(0), "{}", stdout(&first));
    assert!(
        stdout(&first).contains("Scanned files: 3"),
        "{}",
        stdout(&first)
    );
    let judged_by = tag_of("in/a.txt", "scan-engines").unwrap();
    assert_eq!(tag_of("in/b.txt", "scan-result").as_deref(), Some("clean"));

    let again = rescan();
    assert!(
        stdout(&again).contains("Scanned files: 0"),
        "the same rules judge nothing again: {}",
        stdout(&again)
    );

    std::fs::write(
        rules.path().join("marker.yar"),
        "rule Rescan_Marker { strings: $m = \"RESCAN-MARKER-31b7\" condition: $m }\n",
    )
    .unwrap();
    let after = rescan();
    assert_eq!(after.status.code(), Some(1), "{}", stdout(&after));
    let text = stdout(&after);
    assert!(text.contains("Scanned files: 3"), "{text}");
    assert!(
        text.contains(&format!("s3://{bucket}/in/b.txt: Rescan_Marker FOUND")),
        "{text}"
    );
    let said = String::from_utf8_lossy(&after.stderr);
    assert!(
        said.contains(&format!(
            "s3://{bucket}/in/b.txt was clean (rules {judged_by})"
        )),
        "{said}"
    );
    assert_eq!(
        tag_of("in/b.txt", "scan-result").as_deref(),
        Some("infected")
    );
    assert_ne!(tag_of("in/a.txt", "scan-engines").unwrap(), judged_by);
}
