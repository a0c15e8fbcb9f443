//! Bombs and limits: each gives a not-clean verdict naming the limit, without expanding the
//! bomb (the benchmark measures time and memory; here we check the verdict, that expansion
//! stopped early, and that no spool file remains).

use scan_core::testing::{self, eicar};
use scan_core::{Limit, Limits, Verdict};
use zip::CompressionMethod;

use crate::testutil::{
    assert_limit, assert_no_spool_files, assert_stopped_early, paths, scan, scanner, scanner_with,
};

#[tokio::test]
async fn nested_zip_bomb_stops_on_the_overall_ratio() {
    let dir = tempfile::tempdir().unwrap();
    // 10 levels of 10 copies of 1 MiB of zeros: 10^10 MiB expanded from a few kilobytes.
    let bomb = testing::nested_zip_bomb(10, 10, 1 << 20);
    assert!(
        bomb.len() < 1 << 20,
        "the bomb itself is small: {}",
        bomb.len()
    );
    let report = scan(&scanner(dir.path()), "bomb.zip", bomb).await;
    assert_limit(&report, Limit::MaxCompressionRatio);
    assert_stopped_early(&report);
    assert_no_spool_files(dir.path());
}

#[tokio::test]
async fn nested_bomb_of_tiny_members_stops_on_the_file_count() {
    let dir = tempfile::tempdir().unwrap();
    // Tiny leaves keep every ratio harmless; the object count is what runs out.
    let bomb = testing::nested_zip_bomb(10, 10, 16);
    let report = scan(&scanner(dir.path()), "bomb.zip", bomb).await;
    assert_limit(&report, Limit::MaxFiles);
    assert!(
        report.objects <= Limits::default().max_files + 1,
        "{}",
        report.objects
    );
}

#[tokio::test]
async fn overlapping_entries_are_refused_before_expanding() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = testing::overlapping_zip(1000, 4 << 20);
    let report = scan(&scanner(dir.path()), "overlap.zip", bomb).await;
    assert_limit(&report, Limit::ZipOverlappingEntries);
    assert_eq!(report.bytes_expanded, 0);
}

#[tokio::test]
async fn a_hundred_thousand_entries_hit_the_file_limit_from_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let report = scan(
        &scanner(dir.path()),
        "many.zip",
        testing::many_entries_zip(100_000),
    )
    .await;
    assert_limit(&report, Limit::MaxFiles);
    assert_eq!(
        report.objects, 1,
        "refused from the central directory, before any member"
    );
}

#[tokio::test]
async fn ten_gib_of_zeros_in_gzip_stops_on_the_member_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = testing::gzip_of_zeros(10 << 30);
    assert!(bomb.len() < 16 << 20);
    let report = scan(&scanner(dir.path()), "zeros.gz", bomb).await;
    assert_limit(&report, Limit::MaxCompressionRatio);
    assert_stopped_early(&report);
    assert_no_spool_files(dir.path());
}

#[tokio::test]
async fn a_gib_of_zeros_in_lz4_stops_on_the_member_ratio_and_is_real() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = testing::lz4_of_zeros(1 << 30);
    assert!(bomb.len() < 8 << 20);
    let report = scan(&scanner(dir.path()), "zeros.lz4", bomb).await;
    assert_limit(&report, Limit::MaxCompressionRatio);
    assert_stopped_early(&report);
    // The same shape, smaller and with the ratio check off, decodes whole: the stop above is
    // the limit's doing, not a broken frame.
    let limits = Limits {
        max_ratio: u64::MAX,
        ..Limits::default()
    };
    let whole = scan(
        &scanner_with(dir.path(), limits),
        "z.lz4",
        testing::lz4_of_zeros(16 << 20),
    )
    .await;
    assert_eq!(whole.verdict, Verdict::Clean, "{:?}", whole.problems);
    assert_eq!(whole.bytes_expanded, 16 << 20);
    assert_no_spool_files(dir.path());
}

#[tokio::test]
async fn the_zeros_gzip_is_a_real_stream_when_limits_allow() {
    // Guards the bomb builder: with the ratio check off the stream decodes to its full size,
    // so the test above is stopped by the limit, not by a broken file.
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_ratio: u64::MAX,
        ..Limits::default()
    };
    let report = scan(
        &scanner_with(dir.path(), limits),
        "z.gz",
        testing::gzip_of_zeros(64 << 20),
    )
    .await;
    assert_eq!(report.verdict, Verdict::Clean, "{:?}", report.problems);
    assert_eq!(report.bytes_expanded, 64 << 20);
}

#[tokio::test]
async fn nesting_past_the_depth_limit_is_not_clean() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = testing::zip(&[("clean.txt", b"fine")]);
    for level in 0..20 {
        bytes = testing::zip(&[(&format!("level{level}.zip"), &bytes)]);
    }
    let report = scan(&scanner(dir.path()), "deep.zip", bytes).await;
    assert_limit(&report, Limit::MaxRecursion);
}

#[tokio::test]
async fn member_size_limit_is_named_and_other_members_still_scanned() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_file_size: 1 << 20,
        ..Limits::default()
    };
    let big = vec![7u8; 2 << 20];
    let archive = testing::tar(&[("big.bin", &big), ("eicar.com", &eicar())]);
    let report = scan(&scanner_with(dir.path(), limits.clone()), "t.tar", archive).await;
    // The detection wins over the limit, and the limit is still reported.
    assert_eq!(report.verdict, Verdict::Infected);
    assert_eq!(paths(&report), ["t.tar/eicar.com"]);
    assert_eq!(report.limits_hit(), [Limit::MaxFileSize]);

    let archive = testing::zip(&[("big.bin", &big)]);
    let report = scan(&scanner_with(dir.path(), limits), "z.zip", archive).await;
    assert_limit(&report, Limit::MaxFileSize);
}

#[tokio::test]
async fn scan_time_budget_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_scan_time: std::time::Duration::ZERO,
        ..Limits::default()
    };
    let report = scan(
        &scanner_with(dir.path(), limits),
        "a.zip",
        testing::zip(&[("a", b"b")]),
    )
    .await;
    assert_limit(&report, Limit::MaxScanTime);
}

/// Rewrites the compression method of every entry of a one-entry stored zip (local and central
/// headers), leaving its bytes as they are.
fn with_method(mut zip: Vec<u8>, method: u16) -> Vec<u8> {
    assert_eq!(&zip[..4], b"PK\x03\x04");
    zip[8..10].copy_from_slice(&method.to_le_bytes());
    let central = zip
        .windows(4)
        .position(|w| w == b"PK\x01\x02")
        .expect("a central directory entry");
    zip[central + 10..central + 12].copy_from_slice(&method.to_le_bytes());
    zip
}

#[tokio::test]
async fn decoders_that_would_need_gigabytes_of_memory_are_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());

    // A zip LZMA member whose header asks for a 4 GiB dictionary.
    let mut lzma = vec![0x10, 0x02, 0x05, 0x00, 0x5D, 0xF0, 0xFF, 0xFF, 0xFF];
    lzma.extend_from_slice(&[0u8; 64]);
    let zip = with_method(
        testing::zip_with(&[("huge-dict.bin", &lzma)], CompressionMethod::Stored),
        14,
    );
    let report = scan(&scanner, "dict.zip", zip).await;
    assert_eq!(report.verdict, Verdict::Unscannable);
    assert!(
        report.error_message().unwrap().contains("dictionary"),
        "{:?}",
        report.problems
    );

    // The same xz stream alone and as a zip member (method 95).
    let xz = xz_wanting_4_gib();
    let in_zip = with_method(
        testing::zip_with(&[("dict.bin", &xz)], CompressionMethod::Stored),
        95,
    );
    for (name, bytes) in [("dict.xz", xz), ("xz-member.zip", in_zip)] {
        let report = scan(&scanner, name, bytes).await;
        assert_eq!(
            report.verdict,
            Verdict::Unscannable,
            "{name}: {:?}",
            report.problems
        );
        assert!(
            report
                .error_message()
                .unwrap()
                .contains("would need more than 256 MiB of memory"),
            "{name}: {:?}",
            report.problems
        );
    }
    assert_no_spool_files(dir.path());
}

/// An xz stream whose block asks for a 4 GiB dictionary (LZMA2 property 40), with the block
/// header's CRC32 made right again so only the size is wrong.
fn xz_wanting_4_gib() -> Vec<u8> {
    let mut xz = testing::xz(b"some ordinary bytes to compress");
    let block = 12;
    let header_len = (usize::from(xz[block]) + 1) * 4;
    let props = (block..block + header_len)
        .position(|i| xz[i] == 0x21 && xz[i + 1] == 0x01)
        .map(|at| block + at + 2)
        .expect("an LZMA2 filter in the block header");
    xz[props] = 40;
    let mut crc = flate2::Crc::new();
    crc.update(&xz[block..block + header_len - 4]);
    xz[block + header_len - 4..block + header_len].copy_from_slice(&crc.sum().to_le_bytes());
    xz
}

#[tokio::test]
async fn a_pdf_stream_inflating_to_gigabytes_stops_on_the_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let zeros = testing::zlib_of_zeros(4 << 30);
    let mut pdf = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n".to_vec();
    pdf.extend_from_slice(
        format!(
            "2 0 obj\n<< /Filter /FlateDecode /Length {} >>\nstream\n",
            zeros.len()
        )
        .as_bytes(),
    );
    pdf.extend_from_slice(&zeros);
    pdf.extend_from_slice(b"\nendstream\nendobj\n%%EOF\n");
    let report = scan(&scanner(dir.path()), "bomb.pdf", pdf).await;
    assert_limit(&report, Limit::MaxCompressionRatio);
    assert_stopped_early(&report);
    assert_no_spool_files(dir.path());
}

#[tokio::test]
async fn a_bomb_smuggled_in_a_data_uri_stops_on_the_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let html = testing::html_data_uri("bomb.gz", &testing::gzip_of_zeros(4 << 30));
    let report = scan(&scanner(dir.path()), "page.html", html).await;
    assert_limit(&report, Limit::MaxCompressionRatio);
    assert_stopped_early(&report);
}

#[tokio::test]
async fn documents_with_a_hundred_thousand_objects_stop_on_the_file_limit() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let mut pdf = b"%PDF-1.7\n".to_vec();
    for n in 1..=100_000 {
        pdf.extend_from_slice(
            format!("{n} 0 obj\n<< /Length 2 >>\nstream\nhi\nendstream\nendobj\n").as_bytes(),
        );
    }
    pdf.extend_from_slice(b"%%EOF\n");
    let report = scan(&scanner, "many.pdf", pdf).await;
    assert_limit(&report, Limit::MaxFiles);

    let files: Vec<(String, Vec<u8>)> = (0..100_000)
        .map(|i| (format!("{i}.txt"), b"x".to_vec()))
        .collect();
    let borrowed: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let report = scan(&scanner, "winmail.dat", testing::tnef(&borrowed)).await;
    assert_limit(&report, Limit::MaxFiles);
}

/// Text made of nothing but the markers parsers look for: each is read once, so these finish
/// (a parser that rescanned the rest of the data for each marker would take hours), and the
/// one real payload at the end is still found.
#[tokio::test]
async fn text_made_of_parser_markers_is_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let payload = testing::html_data_uri("a.exe", &eicar());
    let mut uris = b"data:,".repeat(300_000);
    uris.extend_from_slice(&payload);
    let report = scan(&scanner, "uris.html", uris).await;
    assert_eq!(report.verdict, Verdict::Infected, "{:?}", report.problems);

    // Lines that look like mbox separators but are not followed by headers.
    let mut mbox = b"From a Mon\nTo: y\nSubject: x\n\n".to_vec();
    mbox.extend_from_slice(&b"\n\nFrom x\nnot a header".repeat(200_000));
    let report = scan(&scanner, "box.mbox", mbox).await;
    assert_eq!(report.file_type, "email");
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    let mut pdf = b"%PDF-1.7\n".to_vec();
    pdf.extend_from_slice(&b"1 0 obj /JS (".repeat(200_000));
    pdf.extend_from_slice(b"\n%%EOF\n");
    let report = scan(&scanner, "js.pdf", pdf).await;
    // Each object's script runs into the next object's number: 200,000 scripts, so the file
    // limit ends it, not the time.
    assert_limit(&report, Limit::MaxFiles);
}

#[tokio::test]
async fn a_flood_of_embedded_candidates_is_capped() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    // 20,000 valid executables one after another in a blob: at most 64 are taken.
    let blob: Vec<u8> = std::iter::once(vec![0u8; 16])
        .chain(std::iter::repeat_n(testing::pe(), 20_000))
        .flatten()
        .collect();
    let report = scan(&scanner, "blob.bin", blob).await;
    assert_eq!(report.verdict, Verdict::Clean, "{:?}", report.problems);
    assert_eq!(report.objects, 1 + 64);
    // An executable whose overlay is a million zip signatures and `MZ`s that lead nowhere.
    let mut setup = testing::pe();
    for _ in 0..500_000 {
        setup.extend_from_slice(b"PK\x03\x04MZ");
    }
    let report = scan(&scanner, "setup.exe", setup).await;
    assert_eq!(report.verdict, Verdict::Clean, "{:?}", report.problems);
    assert_eq!(report.objects, 1);
}
