//! Run: `cargo run --release -p examples --example s3_bench -- fill ENDPOINT BUCKET
//! PREFIX COUNT` or `... -- list-get ENDPOINT BUCKET PREFIX CONCURRENCY [tag]` — the S3 side of
//! `benches/bucket_scan.sh`. `fill` creates the bucket and puts COUNT small objects under PREFIX
//! (text of 100-400 bytes, every 100th the EICAR test file, built here). `list-get` is the
//! ceiling a bucket scan is measured against: it lists the prefix page by page and reads every
//! object's bytes, CONCURRENCY at a time, with nothing scanned; with `tag` it also does what the
//! `tag` action costs per object (a HEAD, a tag read and a tag write). Prints one line of
//! `key=value` figures. Credentials and region come from the environment.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use futures::StreamExt;
use storage::{ObjectRef, ObjectStore, S3Config, S3Store};
use tokio::io::AsyncReadExt;

fn store(endpoint: &str) -> S3Config {
    S3Config {
        region: None,
        endpoint: Some(endpoint.to_owned()),
        path_style: true,
    }
}

fn body(i: usize) -> Vec<u8> {
    if i % 100 == 42 {
        // The EICAR test string, put together at run time so no file holds it.
        let mut eicar = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$".to_vec();
        eicar.extend_from_slice(b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*");
        return eicar;
    }
    format!(
        "object {i}: {}",
        "bucket scan benchmark text ".repeat(4 + i % 12)
    )
    .into_bytes()
}

async fn fill(endpoint: &str, bucket: &str, prefix: &str, count: usize) -> anyhow::Result<()> {
    let s3 = S3Store::new(&store(endpoint)).await;
    let client = s3.client().clone();
    if let Err(e) = client.create_bucket().bucket(bucket).send().await {
        // Already there from an earlier run is fine; anything else shows up on the first put.
        eprintln!("create bucket: {e}");
    }
    let started = Instant::now();
    let failures = futures::stream::iter(0..count)
        .map(|i| {
            let client = client.clone();
            async move {
                client
                    .put_object()
                    .bucket(bucket)
                    .key(format!("{prefix}{i:06}.txt"))
                    .body(body(i).into())
                    .send()
                    .await
                    .is_err()
            }
        })
        .buffer_unordered(32)
        .filter(|failed| std::future::ready(*failed))
        .count()
        .await;
    if failures > 0 {
        bail!("{failures} of {count} puts failed");
    }
    println!(
        "filled={count} seconds={:.2}",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn list_get(
    endpoint: &str,
    bucket: &str,
    prefix: &str,
    concurrency: usize,
    tag: bool,
) -> anyhow::Result<()> {
    let s3 = Arc::new(S3Store::new(&store(endpoint)).await);
    let started = Instant::now();
    let mut after: Option<String> = None;
    let mut objects = 0usize;
    let mut bytes = 0u64;
    loop {
        let page = s3.list_page(bucket, prefix, after.as_deref(), 1000).await?;
        after = page.objects.last().map(|o| o.key.clone()).or(after);
        let read: Vec<anyhow::Result<u64>> = futures::stream::iter(page.objects)
            .map(|listed| {
                let s3 = Arc::clone(&s3);
                async move {
                    let object = ObjectRef::new(bucket, listed.key);
                    let (_, mut reader) = s3.get(&object).await?;
                    let mut sink = Vec::new();
                    reader.read_to_end(&mut sink).await?;
                    if tag {
                        s3.head(&object).await?;
                        let mut tags = s3.tags(&object).await?;
                        tags.push(("scan-result".to_owned(), "clean".to_owned()));
                        s3.tag(&object, &tags).await?;
                    }
                    Ok(sink.len() as u64)
                }
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        for one in read {
            bytes += one.context("reading an object")?;
            objects += 1;
        }
        if !page.more {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "objects={objects} bytes={bytes} seconds={seconds:.2} objects_per_s={:.1}",
        objects as f64 / seconds
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).context("missing argument");
    match arg(0)? {
        "fill" => fill(arg(1)?, arg(2)?, arg(3)?, arg(4)?.parse()?).await,
        "list-get" => {
            let tag = args.get(5).is_some_and(|a| a == "tag");
            list_get(arg(1)?, arg(2)?, arg(3)?, arg(4)?.parse()?, tag).await
        }
        other => bail!("unknown mode {other:?}: fill or list-get"),
    }
}
