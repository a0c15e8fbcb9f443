//! Run: `cargo run -p examples --example embed -- FILE` — scans FILE with the embedded
//! engines (YARA with the built-in EICAR rule) and prints the sync API's JSON verdict.
//!
//! This is how another Rust service embeds Verdict: build one `Scanner` at start-up, share it
//! (it is cheap to clone), and call it for each file. Exit code: 0 clean, 1 infected, 2 other.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use scan_core::{Limits, Scanner, Verdict};

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let path: PathBuf = std::env::args_os()
        .nth(1)
        .context("usage: embed FILE")?
        .into();

    let scanner = Scanner::builder()
        .limits(Limits {
            max_depth: 8,
            ..Limits::default()
        })
        .engines(engines::embedded_engines(
            &engines::EmbeddedConfig::default(),
        )?)
        .build()?;

    // The whole report: verdict, every detection and every part not examined, with paths.
    let report = scanner.scan_path(&path).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::from(match report.verdict {
        Verdict::Clean => 0,
        Verdict::Infected => 1,
        Verdict::Unscannable | Verdict::Error => 2,
    }))
}
