//! Corpus builders and baselines shared by the benchmarks: text-like data that compresses the
//! way documents do, archives of it, and the raw operations (zip crate to a sink, SHA-256) that
//! the scanner's speed is compared against.

use std::io::{Cursor, Read, Write};
use std::sync::Arc;

use scan_core::{ScanInput, Scanner};
use sha2::Digest;
use zip::write::SimpleFileOptions;

/// Deterministic text-like bytes: words from a small vocabulary, so deflate reaches roughly the
/// 3-4x ratio of real documents instead of the 1000x of zeros or the 1x of noise.
pub fn text_like(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "scan",
        "verdict",
        "archive",
        "member",
        "payload",
        "the",
        "of",
        "and",
        "report",
        "engine",
        "limit",
        "stream",
        "upload",
        "bucket",
        "object",
        "clean",
        "rule",
        "signature",
        "depth",
        "ratio",
        "spool",
        "hash",
        "network",
        "service",
        "client",
        "request",
        "response",
        "time",
    ];
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(WORDS[(x % WORDS.len() as u64) as usize].as_bytes());
        out.push(if x.is_multiple_of(11) { b'\n' } else { b' ' });
        if x.is_multiple_of(97) {
            out.extend_from_slice(format!("{}", x % 100_000).as_bytes());
        }
    }
    out.truncate(len);
    out
}

/// Deterministic incompressible bytes.
pub fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A zip of the given members, deflated at the default level.
pub fn zip_of(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in members {
        w.start_file(name.as_str(), options).expect("start");
        w.write_all(data).expect("write");
    }
    w.finish().expect("finish").into_inner()
}

/// Baseline: the zip crate reading every member of `archive` to a sink. Returns bytes read.
pub fn zip_to_sink(archive: &[u8]) -> u64 {
    let mut zip = zip::ZipArchive::new(Cursor::new(archive)).expect("zip");
    let mut total = 0;
    let mut buf = vec![0u8; 256 * 1024];
    for i in 0..zip.len() {
        let mut file = zip.by_index(i).expect("member");
        loop {
            let n = file.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    }
    total
}

/// Baseline: SHA-256 over bytes.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

/// The embedded engines (YARA built-in rules, and a hash list of `hash_sigs` SHA-256 and MD5
/// signatures that match nothing), as a service would run them, with default limits except
/// `max_files`, raised so the many-members benchmark measures expansion, not the limit.
pub fn embedded_scanner(hash_sigs: usize) -> Scanner {
    let mut hashes = engines::HashEngine::new();
    let mut list = String::new();
    for i in 0..hash_sigs {
        let fake = sha256(format!("sig{i}").as_bytes());
        // Sizes that real objects in the corpus will not have, as in a real signature set where
        // almost nothing matches by size.
        list.push_str(&format!("{}:{}:Bench.Sig{i}\n", hex(&fake), 1_000_003 + i));
        list.push_str(&format!(
            "{}:{}:Bench.Md5Sig{i}\n",
            &hex(&fake)[..32],
            2_000_003 + i
        ));
    }
    hashes.add_list("bench", &list).expect("hash list");
    Scanner::builder()
        .limits(scan_core::Limits {
            max_files: 100_000,
            ..scan_core::Limits::default()
        })
        .engine(engines::YaraEngine::builtin().expect("yara"))
        .engine(hashes)
        .build()
        .expect("scanner")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Scans bytes with the scanner, blocking on a runtime.
pub fn scan(
    rt: &tokio::runtime::Runtime,
    scanner: &Scanner,
    input: &Arc<ScanInput>,
) -> scan_core::Report {
    rt.block_on(scanner.scan_input("bench", Arc::clone(input)))
}
