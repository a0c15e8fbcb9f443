//! Run: `cargo run -p examples --example custom_engine -- FILE` — scans FILE with a
//! custom policy engine that flags Windows executables anywhere in the archive tree, beside the
//! built-in YARA engine.
//!
//! An engine implements `scan_core::Engine`: a name, which objects it wants, and an async `scan`
//! of one object's bytes. CPU-bound engines may work synchronously inside `scan`: the scanner
//! always calls engines from a blocking thread.

use std::path::PathBuf;

use anyhow::Context;
use async_trait::async_trait;
use scan_core::{Detection, Engine, EngineError, ScanObject, Scanner, Scope};

/// Flags PE executables (an `MZ` header whose `e_lfanew` points at `PE\0\0`), e.g. for an upload
/// service that must never accept programs, whatever their file names say.
struct NoExecutables;

#[async_trait]
impl Engine for NoExecutables {
    fn name(&self) -> &str {
        "no-executables"
    }

    fn scope(&self) -> Scope {
        Scope::EveryObject
    }

    async fn scan(&self, object: &ScanObject<'_>) -> Result<Vec<Detection>, EngineError> {
        let data = object.data;
        let is_pe = data.starts_with(b"MZ")
            && data.get(0x3c..0x40).is_some_and(|field| {
                let offset = u32::from_le_bytes([field[0], field[1], field[2], field[3]]) as usize;
                data.get(offset..offset + 4) == Some(b"PE\0\0")
            });
        Ok(if is_pe {
            vec![Detection::named("Policy.Executable.PE")]
        } else {
            Vec::new()
        })
    }

    async fn health(&self) -> Result<String, EngineError> {
        Ok("ready".to_owned())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path: PathBuf = std::env::args_os()
        .nth(1)
        .context("usage: custom_engine FILE")?
        .into();
    let scanner = Scanner::builder()
        .engine(engines::YaraEngine::builtin()?)
        .engine(NoExecutables)
        .build()?;
    let report = scanner.scan_path(&path).await?;
    println!("{}: {}", report.name, report.verdict);
    for detection in &report.detections {
        println!(
            "  {} — {} ({})",
            detection.path, detection.name, detection.engine
        );
    }
    for problem in &report.problems {
        println!("  not examined: {problem}");
    }
    Ok(())
}
