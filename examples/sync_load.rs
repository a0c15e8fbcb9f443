//! Run: `cargo run --release -p examples --example sync_load -- BASE_URL USER PASSWORD
//! SMALL_DIR CONCURRENCY BIG_FILE` (`-`: no big file) — a client of verdict-sync as the reference clients call it
//! (token, then multipart `documents` uploads), used by `benches/sync_bench.sh` as the load
//! generator. Prints one line of `key=value` figures for the small files and one for the big one
//! (median of three uploads).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;

async fn token(
    client: &reqwest::Client,
    base: &str,
    user: &str,
    password: &str,
) -> anyhow::Result<String> {
    let response = client
        .post(format!("{base}/api/Token"))
        .json(&serde_json::json!({ "username": user, "password": password }))
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("login failed: {}", response.status());
    }
    let body: serde_json::Value = response.json().await?;
    body["accessToken"]
        .as_str()
        .map(str::to_owned)
        .context("no accessToken")
}

/// Uploads `data` as the `documents` part, in 1 MiB slices of the same buffer (no copies), so
/// the load generator spends its CPU on the connection and the figures are the server's.
async fn upload(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    name: &str,
    data: bytes::Bytes,
) -> anyhow::Result<String> {
    let len = data.len() as u64;
    let slices: Vec<Result<bytes::Bytes, std::io::Error>> = (0..data.len())
        .step_by(1 << 20)
        .map(|at| Ok(data.slice(at..(at + (1 << 20)).min(data.len()))))
        .collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(slices));
    let part = reqwest::multipart::Part::stream_with_length(body, len).file_name(name.to_owned());
    let form = reqwest::multipart::Form::new()
        .part("documents", part)
        .text("composite", "NONE");
    let response = client
        .post(format!("{base}/api/Scan"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await?;
    let status = response.status();
    let body: serde_json::Value = response.json().await?;
    if !status.is_success() {
        bail!("{name}: {status} {body}");
    }
    Ok(body["result"].as_str().unwrap_or("?").to_owned())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base, user, password, small_dir, concurrency, big] = args.as_slice() else {
        bail!("usage: sync_load BASE_URL USER PASSWORD SMALL_DIR CONCURRENCY BIG_FILE|-");
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let token = Arc::new(token(&client, base, user, password).await?);
    let mut files: Vec<PathBuf> = std::fs::read_dir(small_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let small: Vec<(String, bytes::Bytes)> = files
        .iter()
        .map(|path| Ok((file_name(path), bytes::Bytes::from(std::fs::read(path)?))))
        .collect::<std::io::Result<_>>()?;

    let started = Instant::now();
    let results: Vec<anyhow::Result<(Duration, String)>> = futures::stream::iter(small)
        .map(|(name, data)| {
            let (client, token, base) = (client.clone(), Arc::clone(&token), base.clone());
            async move {
                let t = Instant::now();
                let result = upload(&client, &base, &token, &name, data).await?;
                Ok((t.elapsed(), result))
            }
        })
        .buffer_unordered(concurrency.parse()?)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let mut latencies = Vec::new();
    let mut infected = 0;
    for result in results {
        let (latency, verdict) = result?;
        latencies.push(latency);
        infected += usize::from(verdict == "Infected");
    }
    latencies.sort();
    println!(
        "small requests={} seconds={:.3} rps={:.1} p50_ms={:.1} p99_ms={:.1} infected={infected}",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
    );

    if big == "-" {
        return Ok(());
    }
    let big = PathBuf::from(big);
    let data = bytes::Bytes::from(std::fs::read(&big)?);
    let size = data.len() as u64;
    let mut runs = Vec::new();
    let mut verdict = String::new();
    for _ in 0..3 {
        let t = Instant::now();
        verdict = upload(&client, base, &token, &file_name(&big), data.clone()).await?;
        runs.push(t.elapsed().as_secs_f64());
    }
    runs.sort_by(f64::total_cmp);
    let seconds = runs[1];
    println!(
        "big bytes={size} seconds={seconds:.3} mbps={:.1} verdict={verdict} runs={runs:?}",
        size as f64 / 1e6 / seconds
    );
    Ok(())
}
