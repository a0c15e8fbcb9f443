//! Run: `cargo run --release -p examples --example hash_lookup -- LIST` — the lookup side of
//! `benches/freshness_bench.sh`: loads a hash list into the hash engine, then scans 20,000 small
//! objects that are not listed, each looked up by its SHA-256, and prints one line of
//! `key=value` figures: load seconds, signatures, and microseconds per scan. Run with a list of
//! one line and with a long one: the difference is what the list's size costs a lookup.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use scan_core::{ScanInput, Scanner};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let list = std::env::args().nth(1).context("usage: hash_lookup LIST")?;
    let started = Instant::now();
    let mut engine = engines::HashEngine::new();
    engine.add_file(std::path::Path::new(&list))?;
    let load = started.elapsed().as_secs_f64();
    let signatures = engine.len();
    let scanner = Scanner::builder().engine(engine).build()?;
    let objects: Vec<Vec<u8>> = (0..20_000u32)
        .map(|i| format!("object {i}, not in any list").into_bytes())
        .collect();
    let started = Instant::now();
    let mut found = 0;
    for data in objects {
        let report = scanner
            .scan_input("object", Arc::new(ScanInput::from_bytes(data)))
            .await;
        found += report.detections.len();
    }
    let per_scan = started.elapsed().as_secs_f64() * 1e6 / 20_000.0;
    println!(
        "hashes signatures={signatures} load_seconds={load:.2} us_per_scan={per_scan:.1} found={found}"
    );
    Ok(())
}
