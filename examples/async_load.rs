//! Run: `cargo run --release -p examples --example async_load -- API_KEY JOBS CONCURRENCY
//! BASE_URL...` — end-to-end load for verdict-async, used by `benches/async_bench.sh`. It serves
//! the files to scan and receives the callbacks itself (one loopback HTTP server), submits `JOBS`
//! download jobs from `CONCURRENCY` clients spread round-robin over the `BASE_URL`s, and stops
//! the clock when the last callback has arrived. Prints one line of `key=value` figures.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};

struct Peer {
    files: Vec<Bytes>,
    seen: Mutex<HashSet<String>>,
    infected: Mutex<usize>,
    repeats: Mutex<usize>,
    all_in: tokio::sync::Notify,
    expected: usize,
}

/// Small files like the ones applications upload: text of 1-8 KB, every 10th a zip of three
/// texts, every 100th the EICAR test file (built here from parts, never stored).
fn make_files(count: usize) -> Vec<Bytes> {
    let words = [
        "scan", "verdict", "archive", "member", "payload", "report", "engine", "limit", "stream",
        "upload", "bucket", "object",
    ];
    let mut seed = 0x2545_f491_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let eicar = [
        "X5O!P%@AP[4\\PZX54(P^)7CC)7}$",
        "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*",
    ]
    .concat();
    (0..count)
        .map(|i| {
            if i % 100 == 42 {
                return Bytes::from(eicar.clone());
            }
            let mut text = String::new();
            let target = 1024 + (next() % 7168) as usize;
            while text.len() < target {
                text.push_str(words[(next() % words.len() as u64) as usize]);
                text.push(' ');
            }
            if i % 10 == 9 {
                Bytes::from(scan_core::testing::zip(&[
                    ("a.txt", text.as_bytes()),
                    ("b.txt", text.as_bytes()),
                    ("c.txt", text.as_bytes()),
                ]))
            } else {
                Bytes::from(text)
            }
        })
        .collect()
}

async fn file(State(peer): State<Arc<Peer>>, Path(i): Path<usize>) -> Result<Bytes, StatusCode> {
    peer.files.get(i).cloned().ok_or(StatusCode::NOT_FOUND)
}

async fn callback(State(peer): State<Arc<Peer>>, body: Bytes) -> StatusCode {
    let Ok(result) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let trace = result["trace_id"].as_str().unwrap_or_default().to_owned();
    let complete = {
        let Ok(mut seen) = peer.seen.lock() else {
            return StatusCode::INTERNAL_SERVER_ERROR;
        };
        if seen.insert(trace) {
            if result["status"] == "infected"
                && let Ok(mut infected) = peer.infected.lock()
            {
                *infected += 1;
            }
        } else if let Ok(mut repeats) = peer.repeats.lock() {
            *repeats += 1;
        }
        seen.len() >= peer.expected
    };
    if complete {
        peer.all_in.notify_one();
    }
    StatusCode::OK
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        bail!("usage: async_load API_KEY JOBS CONCURRENCY BASE_URL...");
    }
    let key = args[0].clone();
    let jobs: usize = args[1].parse().context("JOBS")?;
    let concurrency: usize = args[2].parse().context("CONCURRENCY")?;
    let bases: Vec<String> = args[3..].to_vec();

    let peer = Arc::new(Peer {
        files: make_files(jobs),
        seen: Mutex::default(),
        infected: Mutex::default(),
        repeats: Mutex::default(),
        all_in: tokio::sync::Notify::new(),
        expected: jobs,
    });
    let expected_infected = peer
        .files
        .iter()
        .filter(|f| f.len() == 68 && f.starts_with(b"X5O!"))
        .count();
    let app = axum::Router::new()
        .route("/f/{i}", get(file))
        .route("/cb", post(callback))
        .with_state(Arc::clone(&peer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let origin = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let all_in = peer.all_in.notified();
    tokio::pin!(all_in);
    all_in.as_mut().enable();
    let mut submitters = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, next, bases, key, origin) = (
            client.clone(),
            Arc::clone(&next),
            bases.clone(),
            key.clone(),
            origin.clone(),
        );
        submitters.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= jobs {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let base = &bases[i % bases.len()];
                let sent = Instant::now();
                let response = client
                    .post(format!("{base}/api/v1/scan/async/download"))
                    .bearer_auth(&key)
                    .json(&serde_json::json!({
                        "download_url": format!("{origin}/f/{i}"),
                        "callback_url": format!("{origin}/cb"),
                        "trace_id": format!("load-{i}"),
                    }))
                    .send()
                    .await?;
                if response.status() != 204 {
                    bail!("job {i}: {}", response.status());
                }
                latencies.push(sent.elapsed());
            }
        });
    }
    let mut latencies = Vec::with_capacity(jobs);
    while let Some(done) = submitters.join_next().await {
        latencies.extend(done??);
    }
    let submitted = started.elapsed();
    tokio::time::timeout(Duration::from_secs(600), all_in)
        .await
        .context("not every callback arrived within 10 minutes")?;
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p) as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let infected = *peer
        .infected
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    let repeats = *peer
        .repeats
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    if infected != expected_infected {
        bail!("{infected} infected callbacks, expected {expected_infected}");
    }
    println!(
        "jobs={jobs} seconds={:.3} jobs_per_s={:.1} submit_seconds={:.3} submit_p50_ms={:.2} submit_p99_ms={:.2} infected={infected} repeated_callbacks={repeats}",
        elapsed.as_secs_f64(),
        jobs as f64 / elapsed.as_secs_f64(),
        submitted.as_secs_f64(),
        pct(0.5),
        pct(0.99),
    );
    Ok(())
}
