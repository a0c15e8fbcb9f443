//! Memory while a large mapped object is scanned: a test binary of its own, so the process's
//! peak resident set is this test's alone.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::FileExt;
use std::sync::Arc;

use async_trait::async_trait;
use scan_core::{
    Detection, Engine, EngineError, ScanInput, ScanObject, Scanner, Scope, SpoolPolicy, Verdict,
};

const SIZE: u64 = 1 << 30;
const MARKER: &[u8] = b"the-last-bytes";

/// Reads every byte of the root object, as an engine that needs the whole object does (YARA,
/// a hash), and reports whether the object's last bytes are the marker. (A reader that touches
/// one byte a page and nothing else maps pages already in the page cache far faster than it
/// reads: on kernel 6.18 with ext4's large folios it passes 256 MiB between two trims, so that
/// case is not what the trimmer bounds; see `spool.rs`.)
struct EveryPage;

#[async_trait]
impl Engine for EveryPage {
    fn name(&self) -> &str {
        "every-page"
    }
    fn scope(&self) -> Scope {
        Scope::RootOnly
    }
    async fn scan(&self, object: &ScanObject<'_>) -> Result<Vec<Detection>, EngineError> {
        let data = object.data;
        let sum = data.chunks(8).fold(0u64, |sum, word| {
            sum ^ word.iter().fold(0, |w, b| w << 8 | u64::from(*b))
        });
        std::hint::black_box(sum);
        Ok(if data.ends_with(MARKER) {
            vec![Detection::named("Whole.Object.Seen")]
        } else {
            Vec::new()
        })
    }
    async fn health(&self) -> Result<String, EngineError> {
        Ok("ok".into())
    }
}

fn peak_resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .unwrap();
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_mapped_object_is_seen_whole_without_staying_resident() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("large.bin");
    // Sparse, so it costs no disk; each page read is still a page-cache page mapped in, as with
    // a file of real data.
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(SIZE).unwrap();
    file.write_all_at(MARKER, SIZE - MARKER.len() as u64)
        .unwrap();
    drop(file);

    let scanner = Scanner::builder().engine(EveryPage).build().unwrap();
    // The peak from here on: 5 resets the process's high-water mark.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let input = ScanInput::from_path(&path, &SpoolPolicy::default()).unwrap();
    assert_eq!(input.size(), SIZE);
    let report = scanner.scan_input("large.bin", Arc::new(input)).await;

    assert_eq!(report.verdict, Verdict::Infected, "{report:?}");
    assert_eq!(report.detections[0].name, "Whole.Object.Seen");
    let peak = peak_resident_bytes();
    assert!(
        peak < 256 << 20,
        "peak resident {} MiB while scanning a {} MiB object",
        peak >> 20,
        SIZE >> 20
    );
}
