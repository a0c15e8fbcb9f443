//! Archive throughput and whole-scan benchmarks (criterion), then a one-run comparison of the
//! scanner against the raw baselines: the zip crate reading the same archive to a sink, and
//! SHA-256 over the same bytes.
//!
//! Run: `cargo bench -p benches` (add `-- --quick` for a fast pass).

use std::sync::Arc;
use std::time::{Duration, Instant};

use benches::{embedded_scanner, random, scan, sha256, text_like, zip_of, zip_to_sink};
use criterion::{Criterion, Throughput};
use scan_core::testing::{self, PdfFilter, PdfObject};
use scan_core::{ScanInput, Scanner, Verdict};

const LARGE: usize = 256 << 20;
const SMALL_MEMBERS: usize = 20_000;

struct Corpus {
    large_member: Vec<u8>,
    large_zip: Vec<u8>,
    many_small_zip: Vec<u8>,
    nested: Vec<u8>,
    mixed: Vec<(String, Vec<u8>)>,
    documents: Vec<(String, Vec<u8>)>,
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
        documents: documents(),
    }
}

/// PDFs with deflated text streams and an attached zip, and e-mails with a text body, an HTML
/// alternative and base64 attachments (a zip and a PDF): what document uploads look like.
fn documents() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for i in 0..30u64 {
        let mut objects = vec![PdfObject::dict("/Type /Catalog")];
        for j in 0..6 {
            objects.push(PdfObject::stream(
                "",
                &text_like(160 << 10, 4000 + i * 10 + j),
                &[PdfFilter::Flate],
            ));
        }
        let attachment = zip_of(&[("notes.txt".into(), text_like(200 << 10, 5000 + i))]);
        objects.push(PdfObject::dict(
            "/Type /Filespec /F (notes.zip) /EF << /F 9 0 R >>",
        ));
        objects.push(PdfObject::stream(
            "/Type /EmbeddedFile",
            &attachment,
            &[PdfFilter::Flate],
        ));
        out.push((format!("report{i}.pdf"), testing::pdf(&objects)));
    }
    for i in 0..30u64 {
        let zip = zip_of(
            &(0..3)
                .map(|j| {
                    (
                        format!("part{j}.txt"),
                        text_like(200 << 10, 6000 + i * 10 + j),
                    )
                })
                .collect::<Vec<_>>(),
        );
        let pdf = testing::pdf_with_attachment("a.txt", &text_like(100 << 10, 7000 + i));
        out.push((
            format!("mail{i}.eml"),
            email(i, &[("archive.zip", &zip), ("invoice.pdf", &pdf)]),
        ));
    }
    out
}

fn email(seed: u64, attachments: &[(&str, &[u8])]) -> Vec<u8> {
    use base64::Engine;
    let mut m = b"From: Billing <billing@example.com>\r\nTo: you@example.com\r\nSubject: Documents\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n".to_vec();
    m.extend_from_slice(b"--outer\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n--alt\r\nContent-Type: text/plain\r\n\r\n");
    m.extend_from_slice(&text_like(20 << 10, 8000 + seed));
    m.extend_from_slice(b"\r\n--alt\r\nContent-Type: text/html\r\n\r\n<html><body><p>");
    m.extend_from_slice(&text_like(20 << 10, 9000 + seed));
    m.extend_from_slice(b"</p></body></html>\r\n--alt--\r\n");
    for (name, data) in attachments {
        m.extend_from_slice(
            format!("--outer\r\nContent-Type: application/octet-stream; name=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"{name}\"\r\n\r\n").as_bytes(),
        );
        let encoded = base64::engine::general_purpose::STANDARD.encode(data);
        for line in encoded.as_bytes().chunks(76) {
            m.extend_from_slice(line);
            m.extend_from_slice(b"\r\n");
        }
    }
    m.extend_from_slice(b"--outer--\r\n");
    m
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

    let mixed = inputs_of(&corpus.mixed);
    let total: u64 = mixed.iter().map(|i| i.size()).sum();
    let mut g = c.benchmark_group("mixed_corpus");
    g.sample_size(10).throughput(Throughput::Bytes(total));
    g.bench_function("verdict_scan_two_at_a_time", |b| {
        b.iter(|| assert_eq!(scan_all(rt, &scanner, &mixed), (1, 0)))
    });
    g.finish();

    let documents = inputs_of(&corpus.documents);
    let total: u64 = documents.iter().map(|i| i.size()).sum();
    let mut g = c.benchmark_group("documents_and_mail");
    g.sample_size(10).throughput(Throughput::Bytes(total));
    g.bench_function("verdict_scan_two_at_a_time", |b| {
        b.iter(|| assert_eq!(scan_all(rt, &scanner, &documents), (0, 0)))
    });
    g.finish();
}

fn inputs_of(files: &[(String, Vec<u8>)]) -> Vec<Arc<ScanInput>> {
    files
        .iter()
        .map(|(_, d)| Arc::new(ScanInput::from_bytes(d.clone())))
        .collect()
}

/// Scans every input, two at a time (the cores here); returns how many came back Infected and
/// how many not clean otherwise.
fn scan_all(
    rt: &tokio::runtime::Runtime,
    scanner: &Scanner,
    inputs: &[Arc<ScanInput>],
) -> (usize, usize) {
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        let mut results = Vec::new();
        for input in inputs {
            if set.len() == 2
                && let Some(r) = set.join_next().await
            {
                results.push(r.expect("join"));
            }
            let (scanner, input) = (scanner.clone(), Arc::clone(input));
            set.spawn(async move { scanner.scan_input("m", input).await.verdict });
        }
        results.extend(set.join_all().await);
        let infected = results.iter().filter(|v| **v == Verdict::Infected).count();
        let other = results
            .iter()
            .filter(|v| !matches!(v, Verdict::Infected | Verdict::Clean))
            .count();
        (infected, other)
    })
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
    let mixed = inputs_of(&corpus.mixed);
    let mixed_mb = mixed.iter().map(|i| i.size()).sum::<u64>() as f64 / 1e6;
    let mixed_time = median(|| {
        assert_eq!(scan_all(rt, &scanner, &mixed), (1, 0));
    });
    let documents = inputs_of(&corpus.documents);
    let documents_mb = documents.iter().map(|i| i.size()).sum::<u64>() as f64 / 1e6;
    let documents_time = median(|| {
        assert_eq!(scan_all(rt, &scanner, &documents), (0, 0));
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
    println!(
        "mixed corpus ({mixed_mb:.0} MB, {} files): {:8.0} MB/s",
        mixed.len(),
        mixed_mb / mixed_time.as_secs_f64()
    );
    println!(
        "documents and mail ({documents_mb:.0} MB, {} files): {:8.0} MB/s",
        documents.len(),
        documents_mb / documents_time.as_secs_f64()
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
