//! Rules that change under a running scanner: reloads (called, and by the file watch), refused
//! sets, hash lists at feed scale, and the verdict cache in its embedded file.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engines::{EngineConfig, ReloadPolicy, Reloader};
use scan_core::{ScanInput, Scanner, Verdict};

use crate::testutil::scan;

const MARKER: &[u8] = b"quarterly report, nothing to see: FRESHNESS-MARKER-7f3a";

fn marker_rule(name: &str) -> String {
    format!(
        "rule {name} {{\n  strings:\n    $m = \"FRESHNESS-MARKER-7f3a\"\n  condition:\n    $m\n}}\n"
    )
}

fn yara_scanner(rules: &Path) -> (Scanner, Vec<EngineConfig>) {
    let configs = vec![EngineConfig::Yara {
        rules: vec![rules.to_owned()],
        max_object_size: None,
    }];
    let scanner = engines::build_scanner(&configs, Default::default(), Default::default()).unwrap();
    (scanner, configs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rule_added_under_load_applies_to_new_scans_and_no_report_mixes_sets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("base.yar"),
        marker_rule("Unrelated").replace("FRESHNESS-MARKER-7f3a", "something else"),
    )
    .unwrap();
    let (scanner, configs) = yara_scanner(dir.path());
    let reloader = Reloader::new(scanner.clone(), &configs);
    let before = scanner.fingerprint();

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..16 {
        let (scanner, stop) = (scanner.clone(), Arc::clone(&stop));
        clients.push(tokio::spawn(async move {
            let mut reports = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                reports.push(scan(&scanner, "marker.txt", MARKER.to_vec()).await);
            }
            // One more after the swap is certainly in place.
            reports.push(scan(&scanner, "marker.txt", MARKER.to_vec()).await);
            reports
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(
        dir.path().join("marker.yar"),
        marker_rule("Freshness_Marker"),
    )
    .unwrap();
    let after = reloader.reload().await.unwrap();
    assert_ne!(after, before, "a new rule must change the fingerprint");
    assert_eq!(scanner.fingerprint(), after);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);

    let (mut old, mut new) = (0, 0);
    for client in clients {
        let reports = client.await.unwrap();
        let last = reports.last().unwrap();
        assert_eq!(
            last.fingerprint, after,
            "the last scan of each client runs on the new set"
        );
        for report in reports {
            if report.fingerprint == before {
                assert_eq!(report.verdict, Verdict::Clean, "{report:?}");
                old += 1;
            } else {
                assert_eq!(report.fingerprint, after);
                assert_eq!(report.verdict, Verdict::Infected, "{report:?}");
                assert_eq!(report.detections[0].name, "Freshness_Marker");
                new += 1;
            }
        }
    }
    assert!(
        old > 0 && new > 0,
        "scans ran on both sides of the swap ({old} before, {new} after)"
    );
    assert_eq!(reloader.stats().reloaded, 1);
}

#[tokio::test]
async fn a_rule_file_that_does_not_compile_is_refused_and_the_old_set_stays() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("marker.yar"),
        marker_rule("Freshness_Marker"),
    )
    .unwrap();
    let (scanner, configs) = yara_scanner(dir.path());
    let reloader = Reloader::new(scanner.clone(), &configs);
    let before = scanner.fingerprint();

    let broken = dir.path().join("zz-broken.yar");
    std::fs::write(
        &broken,
        "rule Fine { condition: true }\n\nrule Broken {\n  condition: $missing\n}\n",
    )
    .unwrap();
    let err = reloader
        .reload()
        .await
        .expect_err("a broken rule must be refused");
    let said = err.to_string();
    assert!(said.contains("zz-broken.yar"), "names the file: {said}");
    assert!(said.contains(":4:"), "names the line: {said}");
    let stats = reloader.stats();
    assert_eq!((stats.reloaded, stats.refused), (0, 1));
    assert!(stats.last_refusal.unwrap().contains("zz-broken.yar"));
    assert_eq!(scanner.fingerprint(), before, "the set in use stays");
    let report = scan(&scanner, "marker.txt", MARKER.to_vec()).await;
    assert_eq!(report.verdict, Verdict::Infected);
    assert_eq!(report.fingerprint, before);
}

#[tokio::test]
async fn the_file_watch_reloads_changed_rules_and_hash_lists_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("base.yar"),
        "rule Nothing { condition: false }\n",
    )
    .unwrap();
    let hashes = dir.path().join("feed.txt");
    std::fs::write(&hashes, "# a feed\n").unwrap();
    let configs = vec![
        EngineConfig::Yara {
            rules: vec![dir.path().to_owned()],
            max_object_size: None,
        },
        EngineConfig::Hashes {
            files: vec![hashes.clone()],
            max_object_size: None,
        },
    ];
    let scanner = engines::build_scanner(&configs, Default::default(), Default::default()).unwrap();
    let reloader = Arc::new(Reloader::new(scanner.clone(), &configs));
    let policy = ReloadPolicy {
        watch_every_secs: 0.1,
        on_sighup: false,
        ..Default::default()
    };
    let watching = tokio::spawn(Arc::clone(&reloader).run(policy));

    let first = scanner.fingerprint();
    std::fs::write(
        dir.path().join("marker.yar"),
        marker_rule("Freshness_Marker"),
    )
    .unwrap();
    let second = changed_from(&scanner, &first).await;
    let report = scan(&scanner, "marker.txt", MARKER.to_vec()).await;
    assert_eq!(report.verdict, Verdict::Infected);
    assert_eq!(report.fingerprint, second);

    let payload = b"a file only the hash feed knows".to_vec();
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&payload));
    std::fs::write(&hashes, format!("# a feed\n{sha}\n")).unwrap();
    changed_from(&scanner, &second).await;
    let report = scan(&scanner, "known.bin", payload).await;
    assert_eq!(report.verdict, Verdict::Infected);
    assert_eq!(report.detections[0].engine, "hashes");
    assert_eq!(report.detections[0].name, format!("Hash.{sha}"));
    watching.abort();
    assert_eq!(reloader.stats().reloaded, 2);
}

async fn changed_from(scanner: &Scanner, from: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = scanner.fingerprint();
        if now != from {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "the watch did not reload within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Ten million SHA-256 lines, the size of the largest public feeds, load into the compact table
/// and a hash planted among them is found; one that is not listed is not.
#[tokio::test]
async fn a_ten_million_line_hash_feed_loads_and_a_planted_hash_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed.txt");
    let planted = b"the planted sample".to_vec();
    let planted_sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&planted));
    write_feed(&feed, 10_000_000, 5_000_000, &planted_sha);

    let mut engine = engines::HashEngine::new();
    engine.add_file(&feed).unwrap();
    assert_eq!(engine.len(), 10_000_001);
    let scanner = Scanner::builder().engine(engine).build().unwrap();
    let report = scan(&scanner, "planted.bin", planted).await;
    assert_eq!(report.verdict, Verdict::Infected);
    assert_eq!(report.detections[0].name, format!("Hash.{planted_sha}"));
    let report = scan(&scanner, "other.bin", b"not planted".to_vec()).await;
    assert_eq!(report.verdict, Verdict::Clean);
}

/// `count` pseudo-random SHA-256 lines with `planted` after line `at`.
pub(crate) fn write_feed(path: &Path, count: usize, at: usize, planted: &str) {
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    writeln!(out, "# generated feed: {count} SHA-256 lines").unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut line = [0u8; 65];
    line[64] = b'\n';
    for i in 0..count {
        if i == at {
            writeln!(out, "{planted}").unwrap();
        }
        for chunk in line[..64].chunks_mut(16) {
            // xorshift64*: fast, and distinct enough for hashes that only need to be many.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let word = state.wrapping_mul(0x2545_f491_4f6c_dd1d);
            hex::encode_to_slice(word.to_be_bytes(), chunk).unwrap();
        }
        out.write_all(&line).unwrap();
    }
    out.flush().unwrap();
}

#[tokio::test]
async fn the_cache_answers_the_same_bytes_under_another_name_and_only_under_the_same_rules() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("marker.yar"), marker_rule("Freshness_Marker")).unwrap();
    let configs = vec![EngineConfig::Yara {
        rules: vec![rules.clone()],
        max_object_size: None,
    }];
    let cache = storage::verdict_cache::RedbCache::open(
        &dir.path().join("cache.redb"),
        Duration::from_secs(3600),
        1000,
    )
    .unwrap();
    let scanner = engines::scanner_builder(&configs, Default::default(), Default::default())
        .unwrap()
        .cache(Arc::new(cache.clone()))
        .build()
        .unwrap();
    let reloader = Reloader::new(scanner.clone(), &configs);

    let first = scan(&scanner, "a.txt", MARKER.to_vec()).await;
    assert!(!first.cached);
    assert_eq!(first.verdict, Verdict::Infected);
    let again = scan(&scanner, "renamed.txt", MARKER.to_vec()).await;
    assert!(again.cached, "the same bytes under another name hit");
    assert_eq!(again.name, "renamed.txt");
    assert_eq!(again.verdict, Verdict::Infected);
    assert_eq!(again.detections, first.detections);
    assert_eq!(scanner.cache_stats().hits, 1);

    // Another rule set: another fingerprint, so the cached verdict is not used.
    std::fs::write(rules.join("more.yar"), "rule More { condition: false }\n").unwrap();
    reloader.reload().await.unwrap();
    let under_new = scan(&scanner, "a.txt", MARKER.to_vec()).await;
    assert!(!under_new.cached, "another fingerprint misses");
    assert_ne!(under_new.fingerprint, first.fingerprint);
}

#[tokio::test]
async fn nothing_left_unexamined_is_cached_and_entries_expire() {
    let dir = tempfile::tempdir().unwrap();
    let cache = storage::verdict_cache::RedbCache::open(
        &dir.path().join("cache.redb"),
        Duration::from_secs(1),
        1000,
    )
    .unwrap();
    // An engine that is down: every object is reported not examined.
    let clamd = engines::ClamdEngine::new(&engines::ClamdConfig {
        address: dir.path().join("no-such.sock").display().to_string(),
        connect_timeout_secs: 1.0,
        ..Default::default()
    })
    .unwrap();
    let scanner = Scanner::builder()
        .engine(engines::YaraEngine::builtin().unwrap())
        .engine(clamd)
        .cache(Arc::new(cache.clone()))
        .build()
        .unwrap();
    let down = scan(&scanner, "a.txt", b"plain text".to_vec()).await;
    assert_eq!(down.verdict, Verdict::Error);
    assert_eq!(
        cache.len().unwrap(),
        0,
        "a result with an engine down is not cached"
    );
    assert!(!scan(&scanner, "a.txt", b"plain text".to_vec()).await.cached);

    let scanner = Scanner::builder()
        .engine(engines::YaraEngine::builtin().unwrap())
        .cache(Arc::new(cache.clone()))
        .build()
        .unwrap();
    let clean = scan(&scanner, "a.txt", b"plain text".to_vec()).await;
    assert_eq!(clean.verdict, Verdict::Clean);
    assert!(scan(&scanner, "b.txt", b"plain text".to_vec()).await.cached);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(
        !scan(&scanner, "c.txt", b"plain text".to_vec()).await.cached,
        "an entry past its time to live is not used"
    );
}

#[tokio::test]
async fn the_cache_keeps_at_most_its_bound_and_drops_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let cache = storage::verdict_cache::RedbCache::open(
        &dir.path().join("cache.redb"),
        Duration::from_secs(3600),
        10,
    )
    .unwrap();
    let scanner = Scanner::builder()
        .engine(engines::YaraEngine::builtin().unwrap())
        .cache(Arc::new(cache.clone()))
        .build()
        .unwrap();
    for i in 0..30 {
        scan(&scanner, "f", format!("file {i}").into_bytes()).await;
    }
    assert!(
        cache.len().unwrap() <= 11,
        "{} entries",
        cache.len().unwrap()
    );
    assert!(
        scan(&scanner, "f", b"file 29".to_vec()).await.cached,
        "the newest stays"
    );
    assert!(
        !scan(&scanner, "f", b"file 0".to_vec()).await.cached,
        "the oldest left"
    );
    let input = Arc::new(ScanInput::from_bytes(b"file 28".to_vec()));
    assert!(scanner.cached("f", input.sha256()).await.is_some());
}
