//! Run: `cargo run --release -p verdict-examples --example sync_load -- BASE_URL USER PASSWORD
//! SMALL_DIR CONCURRENCY BIG_FILE` — a client of verdict-sync as the reference clients call it
//! (token, then multipart `documents` uploads), used by `benches/sync_bench.sh` as the load
//! generator. Prints one line of `key=value` figures for the small files and one for the big one.

use std::path::PathBuf;
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

async fn upload(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    path: &PathBuf,
) -> anyhow::Result<String> {
    let file = tokio::fs::File::open(path).await?;
    let len = file.metadata().await?.len();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
        file,
        256 * 1024,
    ));
    let part = reqwest::multipart::Part::stream_with_length(body, len).file_name(name);
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
        bail!("{}: {status} {body}", path.display());
    }
    Ok(body["result"].as_str().unwrap_or("?").to_owned())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base, user, password, small_dir, concurrency, big] = args.as_slice() else {
        bail!("usage: sync_load BASE_URL USER PASSWORD SMALL_DIR CONCURRENCY BIG_FILE");
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let token = Arc::new(token(&client, base, user, password).await?);
    let mut files: Vec<PathBuf> = std::fs::read_dir(small_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();

    let started = Instant::now();
    let results: Vec<anyhow::Result<(Duration, String)>> =
        futures::stream::iter(files.iter().cloned())
            .map(|path| {
                let (client, token, base) = (client.clone(), Arc::clone(&token), base.clone());
                async move {
                    let t = Instant::now();
                    let result = upload(&client, &base, &token, &path).await?;
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

    let big = PathBuf::from(big);
    let size = std::fs::metadata(&big)?.len();
    let t = Instant::now();
    let verdict = upload(&client, base, &token, &big).await?;
    let seconds = t.elapsed().as_secs_f64();
    println!(
        "big bytes={size} seconds={seconds:.3} mbps={:.1} verdict={verdict}",
        size as f64 / 1e6 / seconds
    );
    Ok(())
}
