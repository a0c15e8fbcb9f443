//! Archive throughput and whole-scan benchmarks (criterion), then a one-run comparison of the
//! scanner against the raw baselines: the zip crate reading the same archive to a sink, and
//! SHA-256 over the same bytes.
//!
//! Run: `cargo bench -p verdict-benches` (add `-- --quick` for a fast pass).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use scan_core::testing;
use scan_core::{ScanInput, Verdict};
use verdict_benches::{embedded_scanner, random, scan, sha256, text_like, zip_of, zip_to_sink};

const LARGE: usize = 256 << 20;
const SMALL_MEMBERS: usize = 20_000;

struct Corpus {
    large_member: Vec<u8>,
    large_zip: Vec<u8>,
    many_small_zip: Vec<u8>,
    nested: Vec<u8>,
    mixed: Vec<(String, Vec<u8>)>,
}

fn corpus() -> Corpus {
    let large_member = text_like(LARGE, 1);
    let large_zip = zip_of(&[("large.txt".into(), large_member.clone())]);
    let small: Vec<(String, Vec<u8>)> = (0..SMALL_MEMBERS)
        .map(|i| (format!("f{i}.txt"), text_like(1024, i as u64 + 7)))
        .collect();
    let many_small_zip = zip_of(&small);
    // tar.gz of zips of text: three levels of expansion.
    let inner_zips: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| {
            let members: Vec<(String, Vec<u8>)> = (0..20)
                .map(|j| (format!("d{j}.txt"), text_like(64 << 10, i * 100 + j)))
                .collect();
            (format!("part{i}.zip"), zip_of(&members))
        })
        .collect();
    let refs: Vec<(&str, &[u8])> = inner_zips
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let nested = testing::gzip(&testing::tar(&refs));
    let mut mixed: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..40 {
        mixed.push((format!("doc{i}.txt"), text_like(512 << 10, 1000 + i)));
        mixed.push((format!("bin{i}.bin"), random(512 << 10, 2000 + i)));
    }
    for i in 0..10 {
        let members: Vec<(String, Vec<u8>)> = (0..10)
            .map(|j| (format!("m{j}.txt"), text_like(128 << 10, 3000 + i * 10 + j)))
            .collect();
        mixed.push((format!("arch{i}.zip"), zip_of(&members)));
    }
    mixed.push((
        "eicar.zip".into(),
        testing::zip(&[("eicar.com", &testing::eicar())]),
    ));
    Corpus {
        large_member,
        large_zip,
        many_small_zip,
        nested,
        mixed,
    }
}

fn benches(c: &mut Criterion, corpus: &Corpus, rt: &tokio::runtime::Runtime) {
    let scanner = embedded_scanner(1000);
    let large = Arc::new(ScanInput::from_bytes(corpus.large_zip.clone()));
    let small = Arc::new(ScanInput::from_bytes(corpus.many_small_zip.clone()));
    let nested = Arc::new(ScanInput::from_bytes(corpus.nested.clone()));

    let mut g = c.benchmark_group("large_deflated_member");
    g.sample_size(10)
        .throughput(Throughput::Bytes(LARGE as u64));
    g.bench_function("baseline_zip_crate_to_sink", |b| {
        b.iter(|| zip_to_sink(&corpus.large_zip))
    });
    g.bench_function("baseline_sha256", |b| {
        b.iter(|| sha256(&corpus.large_member))
    });
    g.bench_function("verdict_scan", |b| {
        b.iter(|| assert_eq!(scan(rt, &scanner, &large).verdict, Verdict::Clean))
    });
    g.finish();

    let mut g = c.benchmark_group("many_small_members");
    g.sample_size(10)
        .throughput(Throughput::Elements(SMALL_MEMBERS as u64));
    g.bench_function("baseline_zip_crate_to_sink", |b| {
        b.iter(|| zip_to_sink(&corpus.many_small_zip))
    });
    g.bench_function("verdict_scan", |b| {
        b.iter(|| {
            let report = scan(rt, &scanner, &small);
            assert_eq!(
                report.objects,
                SMALL_MEMBERS as u64 + 1,
                "{:?}",
                report.problems
            );
        })
    });
    g.finish();

    let mut g = c.benchmark_group("nested_tar_gz_of_zips");
    g.sample_size(10)
        .throughput(Throughput::Bytes(20 * 20 * (64 << 10)));
    g.bench_function("verdict_scan", |b| b.iter(|| scan(rt, &scanner, &nested)));
    g.finish();

    let inputs: Vec<Arc<ScanInput>> = corpus
        .mixed
        .iter()
        .map(|(_, d)| Arc::new(ScanInput::from_bytes(d.clone())))
        .collect();
    let total: u64 = inputs.iter().map(|i| i.size()).sum();
    let mut g = c.benchmark_group("mixed_corpus");
    g.sample_size(10).throughput(Throughput::Bytes(total));
    g.bench_function("verdict_scan_two_at_a_time", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut set = tokio::task::JoinSet::new();
                let mut results = Vec::new();
                for input in &inputs {
                    if set.len() == 2
                        && let Some(r) = set.join_next().await
                    {
                        results.push(r.expect("join"));
                    }
                    let (scanner, input) = (scanner.clone(), Arc::clone(input));
                    set.spawn(async move { scanner.scan_input("m", input).await.verdict });
                }
                results.extend(set.join_all().await);
                assert_eq!(
                    results.iter().filter(|v| **v == Verdict::Infected).count(),
                    1
                );
            })
        })
    });
    g.finish();
}

fn median(mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[2]
}

/// Medians of 5, all in this run, as ratios: the goal is a full scan of the large member at
/// >= 80% of raw inflate speed.
fn comparison(corpus: &Corpus, rt: &tokio::runtime::Runtime) {
    let scanner = embedded_scanner(1000);
    let large = Arc::new(ScanInput::from_bytes(corpus.large_zip.clone()));
    let small = Arc::new(ScanInput::from_bytes(corpus.many_small_zip.clone()));
    let mb = LARGE as f64 / 1e6;
    let zip_sink = median(|| {
        zip_to_sink(&corpus.large_zip);
    });
    let hash = median(|| {
        sha256(&corpus.large_member);
    });
    let full = median(|| {
        let report = scan(rt, &scanner, &large);
        assert_eq!(report.verdict, Verdict::Clean, "{:?}", report.problems);
    });
    let small_sink = median(|| {
        zip_to_sink(&corpus.many_small_zip);
    });
    let small_scan = median(|| {
        let report = scan(rt, &scanner, &small);
        assert_eq!(report.objects, SMALL_MEMBERS as u64 + 1);
    });
    let rate = |d: Duration| mb / d.as_secs_f64();
    let members = |d: Duration| SMALL_MEMBERS as f64 / d.as_secs_f64();
    println!("\n== Verdict vs raw baselines (medians of 5, this run) ==");
    println!("large deflated member ({mb:.0} MB expanded):");
    println!("  zip crate to sink   {:8.0} MB/s", rate(zip_sink));
    println!("  sha256              {:8.0} MB/s", rate(hash));
    println!("  verdict full scan   {:8.0} MB/s", rate(full));
    println!(
        "  ratio full scan / zip crate to sink: {:.2}",
        zip_sink.as_secs_f64() / full.as_secs_f64()
    );
    println!("{SMALL_MEMBERS} small members:");
    println!(
        "  zip crate to sink   {:8.0} members/s",
        members(small_sink)
    );
    println!(
        "  verdict full scan   {:8.0} members/s",
        members(small_scan)
    );
    println!(
        "  ratio full scan / zip crate to sink: {:.2}",
        small_sink.as_secs_f64() / small_scan.as_secs_f64()
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let corpus = corpus();
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c, &corpus, &rt);
    c.final_summary();
    comparison(&corpus, &rt);
}
