//! Damaged, truncated, encrypted and unsupported input: never clean, always with a reason,
//! never a panic; and what can still be read is still scanned.

use scan_core::testing::{self, eicar};
use scan_core::{Reason, Report, Verdict};

use crate::testutil::{assert_no_spool_files, paths, scan, scanner};

fn assert_reason(report: &Report, reason: Reason) {
    assert_eq!(report.verdict, Verdict::Unscannable, "{report:#?}");
    assert!(
        report.problems.iter().any(|p| p.reason == reason),
        "{:?}",
        report.problems
    );
    assert!(report.error_message().is_some_and(|m| !m.is_empty()));
}

#[tokio::test]
async fn truncated_and_garbled_archives_are_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let text = b"some text that compresses ".repeat(5000);
    let zip = testing::zip(&[("a.txt", &text)]);
    let tar = testing::tar(&[("a.txt", &text)]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("cut.zip", zip[..zip.len() / 2].to_vec()),
        (
            "magic-only.zip",
            b"PK\x03\x04 not really a zip at all".to_vec(),
        ),
        ("cut.gz", {
            let gz = testing::gzip(&text);
            gz[..gz.len() / 2].to_vec()
        }),
        ("cut.xz", {
            let xz = testing::xz(&text);
            xz[..xz.len() / 2].to_vec()
        }),
        ("cut.bz2", {
            let bz = testing::bzip2(&text);
            bz[..bz.len() / 2].to_vec()
        }),
        ("cut.zst", {
            let z = testing::zstd(&text);
            z[..z.len() / 2].to_vec()
        }),
        ("cut.7z", {
            let s = testing::sevenz(&[("a.txt", &text)], None);
            s[..s.len() / 2].to_vec()
        }),
        ("cut.tar", tar[..700].to_vec()),
        ("flipped.zip", {
            let mut z = zip.clone();
            let mid = z.len() / 3;
            z[mid] ^= 0xff;
            z[mid + 1] ^= 0xff;
            z
        }),
    ];
    for (name, bytes) in cases {
        let report = scan(&scanner, name, bytes).await;
        assert_reason(&report, Reason::Corrupt);
    }
    assert_no_spool_files(dir.path());
}

#[tokio::test]
async fn a_truncated_stream_still_yields_what_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let mut payload = eicar();
    payload.extend(b"padding that will be cut off ".repeat(4000));
    let gz = testing::gzip(&payload);
    let report = scan(
        &scanner(dir.path()),
        "cut.gz",
        gz[..gz.len() - 200].to_vec(),
    )
    .await;
    assert_eq!(report.verdict, Verdict::Infected, "{report:#?}");
    assert_eq!(paths(&report), ["cut.gz/cut"]);
    assert!(report.problems.iter().any(|p| p.reason == Reason::Corrupt));
}

#[tokio::test]
async fn encrypted_zip_and_7z_members_are_not_clean() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let zip = testing::zip_encrypted(&[("secret.txt", b"eyes only")], "hunter2");
    let report = scan(&scanner, "secret.zip", zip).await;
    assert_reason(&report, Reason::Encrypted);
    assert_eq!(report.problems[0].path, "secret.zip/secret.txt");

    let sevenz = testing::sevenz(&[("secret.txt", b"eyes only")], Some("hunter2"));
    let report = scan(&scanner, "secret.7z", sevenz).await;
    assert_reason(&report, Reason::Encrypted);
}

#[tokio::test]
async fn an_encrypted_member_beside_a_detection_is_infected() {
    let dir = tempfile::tempdir().unwrap();
    let secret = testing::zip_encrypted(&[("secret.txt", b"eyes only")], "pw");
    let outer = testing::zip(&[("secret.zip", &secret), ("eicar.com", &eicar())]);
    let report = scan(&scanner(dir.path()), "mixed.zip", outer).await;
    assert_eq!(report.verdict, Verdict::Infected);
    assert_eq!(paths(&report), ["mixed.zip/eicar.com"]);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.reason == Reason::Encrypted)
    );
}

#[tokio::test]
async fn recognised_but_unsupported_archives_are_not_clean() {
    let dir = tempfile::tempdir().unwrap();
    let mut rar = b"Rar!\x1a\x07\x01\x00".to_vec();
    rar.extend_from_slice(&[0u8; 64]);
    let report = scan(&scanner(dir.path()), "x.rar", rar).await;
    if cfg!(feature = "rar") {
        // Opened, so a RAR signature before nothing that holds together is damage.
        assert_reason(&report, Reason::Corrupt);
    } else {
        assert_reason(&report, Reason::Unsupported);
        assert!(
            report
                .error_message()
                .unwrap()
                .contains("rar archives are not unpacked")
        );
    }
}

#[tokio::test]
async fn other_recognised_containers_are_unsupported_not_clean() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![(
        "old.cpio",
        b"070707000000000000000000".to_vec(),
        "cpio (old ASCII format)",
    )];
    for (name, bytes, format) in cases {
        let report = scan(&scanner, name, bytes).await;
        assert_eq!(report.verdict, Verdict::Unscannable, "{name}");
        assert_reason(&report, Reason::Unsupported);
        let message = report.error_message().unwrap();
        assert!(
            message.contains(&format!("{format} archives are not unpacked")),
            "{name}: {message}"
        );
    }
    // Opened now, so what does not hold together is damaged.
    let report = scan(
        &scanner,
        "pkg.rpm",
        b"\xed\xab\xee\xdb\x03\x00rest".to_vec(),
    )
    .await;
    assert_reason(&report, Reason::Corrupt);
}

#[tokio::test]
async fn damaged_ar_cpio_ole_and_lz4_are_corrupt_not_clean() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let e = eicar();
    let payload = vec![b'x'; 4096];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a.ar", testing::ar(&[("one", &payload), ("two", &payload)])),
        (
            "a.cpio",
            testing::cpio(&[("one", &payload), ("two", &payload)]),
        ),
        (
            "a.doc",
            testing::ole(&[("One", &payload), ("Two", &payload)]),
        ),
        ("a.lz4", testing::lz4(&payload)),
    ];
    for (name, whole) in cases {
        let cut = whole[..whole.len() * 2 / 3].to_vec();
        let report = scan(&scanner, name, cut).await;
        assert_ne!(report.verdict, Verdict::Clean, "{name} cut short");
        assert_reason(&report, Reason::Corrupt);
    }
    // What was decoded before the damage is still scanned.
    let mut with_eicar = testing::cpio(&[("eicar.com", &e), ("big", &payload)]);
    with_eicar.truncate(with_eicar.len() - 2048);
    let report = scan(&scanner, "cut.cpio", with_eicar).await;
    assert_eq!(report.verdict, Verdict::Infected);
}

#[tokio::test]
async fn a_directory_entry_that_carries_bytes_is_still_scanned() {
    let dir = tempfile::tempdir().unwrap();
    let report = scan(
        &scanner(dir.path()),
        "hide.zip",
        testing::zip_raw_entry("hidden/", &eicar()),
    )
    .await;
    assert_eq!(report.verdict, Verdict::Infected, "{report:#?}");
    assert_eq!(paths(&report), ["hide.zip/hidden"]);
}

#[tokio::test]
async fn ole_headers_with_absurd_counts_never_panic_the_walk() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let good = testing::ole(&[("One", &[b'x'; 8192]), ("Two", b"short")]);
    // Sector counts and starts in the header: FAT sectors, first directory sector, first
    // mini-FAT sector, mini-FAT sectors, first DIFAT sector, DIFAT sectors, and the sector shift.
    for offset in [0x2C, 0x30, 0x3C, 0x40, 0x44, 0x48, 0x1E] {
        for value in [0xFFFF_FFF0u32, 0x7FFF_FFFF, 0x0000_FFFF] {
            let mut bad = good.clone();
            bad[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
            let report = scan(&scanner, "bad.doc", bad).await;
            // A panic in the walk would come back as Error (and an allocation failure would
            // abort this test): either way the parser did not cope.
            assert_ne!(
                report.verdict,
                Verdict::Error,
                "offset {offset:#x} = {value:#x}: {:?}",
                report.problems
            );
        }
    }
}

/// A deflated member whose headers (local and central alike) lie about its CRC or its size:
/// the whole-member decoder refuses it and the streaming reader reads it instead, which finds
/// a wrong CRC after the member (still scanned) and a stream longer than its size (damaged),
/// never clean. A size larger than the stream hides nothing: the stream is decoded to its end.
#[tokio::test]
async fn zip_members_whose_headers_lie_about_crc_or_size_are_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let mut payload = eicar();
    payload.extend(b"padding so the member is deflated ".repeat(50));
    let zip = testing::zip(&[("payload.com", &payload)]);
    assert_eq!(&zip[8..10], &[8, 0], "the member is deflated");
    let central = zip
        .windows(4)
        .position(|w| w == b"PK\x01\x02")
        .expect("a central header");
    let read = |at: usize| u32::from_le_bytes(zip[at..at + 4].try_into().unwrap());
    // The local header holds the CRC at 14 and the size at 22; the central one at 16 and 24.
    let found = ["lie.zip/payload.com"].as_slice();
    for (what, local, lie, verdict, detections, damaged) in [
        ("crc", 14, read(14) ^ 1, Verdict::Infected, found, true),
        (
            "smaller size",
            22,
            read(22) - 1,
            Verdict::Unscannable,
            &[],
            true,
        ),
        (
            "larger size",
            22,
            read(22) + 1000,
            Verdict::Infected,
            found,
            false,
        ),
    ] {
        let mut lying = zip.clone();
        lying[local..local + 4].copy_from_slice(&lie.to_le_bytes());
        let in_central = central + local + 2;
        lying[in_central..in_central + 4].copy_from_slice(&lie.to_le_bytes());
        let report = scan(&scanner, "lie.zip", lying).await;
        assert_eq!(report.verdict, verdict, "{what}: {report:#?}");
        assert_eq!(paths(&report), detections, "{what}");
        let corrupt = report
            .problems
            .iter()
            .any(|p| p.reason == Reason::Corrupt && p.path == "lie.zip/payload.com");
        assert_eq!(corrupt, damaged, "{what}: {:?}", report.problems);
    }
    // The honest archive is read whole, with nothing to report.
    let report = scan(&scanner, "honest.zip", zip).await;
    assert_eq!(paths(&report), ["honest.zip/payload.com"]);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}
