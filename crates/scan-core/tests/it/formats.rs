//! Every supported format, clean and carrying the test file, found by content and reported by
//! its path through the tree.

use scan_core::testing::{self, PdfFilter, PdfObject, eicar};
use scan_core::{Verdict, filetype};
use zip::CompressionMethod;

use crate::testutil::{assert_no_spool_files, paths, scan, scanner};

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test]
async fn eicar_alone_is_infected_at_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let report = scan(&scanner(dir.path()), "eicar.com", eicar()).await;
    assert_eq!(report.verdict, Verdict::Infected);
    assert_eq!(paths(&report), ["eicar.com"]);
    assert_eq!(report.detections[0].name, "EICAR-Test");
    assert_eq!(report.detections[0].engine, "needle");
    assert_eq!(report.size, 68);
    assert_eq!(
        report.sha256,
        "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
    );
}

#[tokio::test]
async fn demo_files_report_exactly_the_four_detection_paths() {
    let dir = tempfile::tempdir().unwrap();
    let report = scan(&scanner(dir.path()), "DemoFiles", testing::demo_files()).await;
    assert_eq!(report.verdict, Verdict::Infected);
    assert_eq!(
        paths(&report),
        [
            "DemoFiles/eicar.com",
            "DemoFiles/eicar.com.txt",
            "DemoFiles/eicar_com.zip/eicar.com",
            "DemoFiles/eicarcom2.zip/eicar_com.zip/eicar.com",
        ]
    );
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    // 1 root + 5 members + 1 in eicar_com.zip + 2 in eicarcom2.zip
    assert_eq!(report.objects, 9);
    // What the servers' wire bodies are built from (their own tests check the bodies).
    assert_eq!(report.verdict, Verdict::Infected);
    assert_eq!(report.error_message(), None);
    assert_eq!(report.file_type, "zip");
    assert_eq!(report.detections.len(), 4);
    assert!(report.detections.iter().all(|d| d.name == "EICAR-Test"));
    assert!(report.scanned_at <= time::OffsetDateTime::now_utc());
}

#[tokio::test]
async fn every_format_is_unpacked_by_content_not_name() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let e = eicar();
    let tar = testing::tar(&[("docs/readme.txt", b"hello"), ("bin/eicar.com", &e)]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "a.zip",
            testing::zip(&[("eicar.com", &e)]),
            "a.zip/eicar.com",
        ),
        (
            "stored.zip",
            testing::zip_with(&[("eicar.com", &e)], CompressionMethod::Stored),
            "stored.zip/eicar.com",
        ),
        (
            "bz.zip",
            testing::zip_with(&[("eicar.com", &e)], CompressionMethod::Bzip2),
            "bz.zip/eicar.com",
        ),
        (
            "zst.zip",
            testing::zip_with(&[("eicar.com", &e)], CompressionMethod::Zstd),
            "zst.zip/eicar.com",
        ),
        (
            "xz.zip",
            testing::zip_with(&[("eicar.com", &e)], CompressionMethod::Xz),
            "xz.zip/eicar.com",
        ),
        ("t.tar", tar.clone(), "t.tar/bin/eicar.com"),
        (
            "t.tar.gz",
            testing::gzip(&tar),
            "t.tar.gz/t.tar/bin/eicar.com",
        ),
        (
            "t.tar.bz2",
            testing::bzip2(&tar),
            "t.tar.bz2/t.tar/bin/eicar.com",
        ),
        ("t.txz", testing::xz(&tar), "t.txz/t.tar/bin/eicar.com"),
        (
            "t.tar.zst",
            testing::zstd(&tar),
            "t.tar.zst/t.tar/bin/eicar.com",
        ),
        (
            "e.7z",
            testing::sevenz(&[("x/eicar.com", &e)], None),
            "e.7z/x/eicar.com",
        ),
        (
            "t.tar.lz4",
            testing::lz4(&tar),
            "t.tar.lz4/t.tar/bin/eicar.com",
        ),
        (
            "pkg.deb",
            testing::ar(&[
                ("debian-binary", b"2.0\n"),
                ("data.tar.gz", &testing::gzip(&tar)),
            ]),
            "pkg.deb/data.tar.gz/data.tar/bin/eicar.com",
        ),
        (
            "initrd.img",
            testing::cpio(&[("etc/motd", b"welcome"), ("bin/eicar.com", &e)]),
            "initrd.img/bin/eicar.com",
        ),
        (
            "report.doc",
            testing::ole(&[
                ("WordDocument", b"plain text of the document"),
                ("Macros/VBA/Module1", &e),
            ]),
            "report.doc/Macros/VBA/Module1",
        ),
        // Misleading names: content decides.
        (
            "photo.jpg",
            testing::zip(&[("eicar.com", &e)]),
            "photo.jpg/eicar.com",
        ),
        ("blob", testing::xz(&e), "blob/blob.xz-decoded"),
    ];
    for (name, bytes, expected) in cases {
        let report = scan(&scanner, name, bytes).await;
        assert_eq!(report.verdict, Verdict::Infected, "{name}: {report:#?}");
        assert_eq!(paths(&report), [expected], "{name}");
        assert!(report.problems.is_empty(), "{name}: {:?}", report.problems);
    }
    assert_no_spool_files(dir.path());
}

#[tokio::test]
async fn nested_three_deep_and_large_spooled_members_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let inner = testing::zip(&[("eicar.com", &eicar())]);
    let middle = testing::zip(&[("inner.zip", &inner)]);
    let outer = testing::zip(&[("middle.zip", &middle)]);
    let report = scan(&scanner, "outer.zip", outer).await;
    assert_eq!(paths(&report), ["outer.zip/middle.zip/inner.zip/eicar.com"]);

    // A member far over the memory threshold goes through a spool file and is still seen whole.
    let mut big = eicar();
    big.extend_from_slice(&random_bytes(4 << 20, 7));
    let report = scan(
        &scanner,
        "big.tar.gz",
        testing::gzip(&testing::tar(&[("big.bin", &big)])),
    )
    .await;
    assert_eq!(paths(&report), ["big.tar.gz/big.tar/big.bin"]);
    assert_no_spool_files(dir.path());
}

#[tokio::test]
async fn clean_corpus_is_clean_with_nothing_left_unexamined() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let text = b"The quick brown fox jumps over the lazy dog.\n".repeat(2000);
    let random = random_bytes(200_000, 3);
    let tar = testing::tar(&[("a.txt", &text), ("b.bin", &random)]);
    let corpus: Vec<(&str, Vec<u8>, &str)> = vec![
        ("notes.txt", text.clone(), "text"),
        ("random.bin", random.clone(), "binary"),
        ("empty", Vec::new(), "empty"),
        (
            "doc.pdf",
            testing::pdf(&[
                PdfObject::dict("/Type /Catalog /Pages 2 0 R"),
                PdfObject::dict("/Type /Pages /Kids [3 0 R] /Count 1"),
                PdfObject::dict("/Type /Page /Parent 2 0 R /Contents 4 0 R"),
                PdfObject::stream("", b"BT /F1 12 Tf 72 712 Td (Hello) Tj ET", &[PdfFilter::Flate]),
            ]),
            "pdf",
        ),
        (
            "note.eml",
            b"From: a@example.com\r\nTo: b@example.com\r\nSubject: lunch\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nSee you at noon =E2=98=95\r\n".to_vec(),
            "email",
        ),
        ("letter.rtf", b"{\\rtf1\\ansi{\\fonttbl{\\f0 Times;}}\\f0 Dear reader,\\par}".to_vec(), "rtf"),
        (
            "page.html",
            format!(
                "<html><body><img src=\"data:image/png;base64,{}\"><p>data: none</p></body></html>",
                png_base64()
            )
            .into_bytes(),
            "html",
        ),
        (
            "style.css",
            format!("body {{ background: url(data:image/png;base64,{}) }}\n", png_base64()).into_bytes(),
            "text",
        ),
        ("data.json", b"{\"from\": \"a\", \"to\": \"b\", \"data\": \"data:,x\"}\n".to_vec(), "text"),
        ("table.csv", b"From,To,Subject\na,b,c\n".to_vec(), "text"),
        ("config.yaml", b"from: a\nto: b\nsubject: c\n\nbody: d\n".to_vec(), "text"),
        ("memo.txt", b"From the desk of the director:\n\nregards\n".to_vec(), "text"),
        ("image.png", png(), "png"),
        ("photo.jpg", jpeg(), "jpg"),
        ("tool.exe", testing::pe(), "exe"),
        ("true", std::fs::read("/bin/true").unwrap(), "elf"),
        (
            "docs.zip",
            testing::zip(&[("a.txt", &text), ("b.bin", &random)]),
            "zip",
        ),
        ("docs.tar.gz", testing::gzip(&tar), "gz"),
        ("docs.7z", testing::sevenz(&[("a.txt", &text)], None), "7z"),
        ("docs.xz", testing::xz(&text), "xz"),
        ("docs.zst", testing::zstd(&text), "zst"),
        ("docs.bz2", testing::bzip2(&text), "bz2"),
    ];
    for (name, bytes, file_type) in corpus {
        let report = scan(&scanner, name, bytes).await;
        assert_eq!(report.verdict, Verdict::Clean, "{name}: {report:#?}");
        assert!(
            report.detections.is_empty() && report.problems.is_empty(),
            "{name}"
        );
        assert_eq!(report.file_type, file_type, "{name}");
        assert_eq!(report.error_message(), None);
    }
    assert_eq!(filetype::describe(&testing::tar(&[("a", b"b")])), "tar");
}

#[tokio::test]
async fn reading_from_a_stream_spools_and_hashes_once() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let mut body = eicar();
    body.extend_from_slice(&random_bytes(1 << 20, 11));
    let expected_sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&body))
    };
    let report = scanner
        .scan_reader("stream.bin", std::io::Cursor::new(body))
        .await
        .unwrap();
    assert_eq!(report.verdict, Verdict::Infected);
    assert_eq!(report.size, (1 << 20) + 68);
    assert_eq!(report.sha256, expected_sha);
    assert_no_spool_files(dir.path());
}

#[tokio::test]
async fn zip64_and_gnu_and_pax_tar_variants_are_read() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let e = eicar();

    // zip64: the writer's large-file mode puts zip64 extra fields in the headers.
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().large_file(true);
    w.start_file("eicar.com", opts).unwrap();
    w.write_all(&e).unwrap();
    let zip64 = w.finish().unwrap().into_inner();
    let report = scan(&scanner, "z64.zip", zip64).await;
    assert_eq!(
        paths(&report),
        ["z64.zip/eicar.com"],
        "{:?}",
        report.problems
    );

    // GNU tar with a long name (GNU long-name extension) and a pax tar with a pax path record.
    let long = format!("{}/eicar.com", "d".repeat(150));
    let mut gnu = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(e.len() as u64);
    header.set_mode(0o644);
    gnu.append_data(&mut header, &long, &e[..]).unwrap();
    let report = scan(&scanner, "gnu.tar", gnu.into_inner().unwrap()).await;
    assert_eq!(paths(&report), [format!("gnu.tar/{long}").as_str()]);

    let mut pax = tar::Builder::new(Vec::new());
    pax.append_pax_extensions([("path", "pax/named/eicar.com".as_bytes())])
        .unwrap();
    let mut header = tar::Header::new_ustar();
    header.set_size(e.len() as u64);
    header.set_mode(0o644);
    header.set_path("short").unwrap();
    header.set_cksum();
    pax.append(&header, &e[..]).unwrap();
    let report = scan(&scanner, "pax.tar", pax.into_inner().unwrap()).await;
    assert_eq!(paths(&report), ["pax.tar/pax/named/eicar.com"]);
}

/// A 1x1 PNG: signature, IHDR, one deflated IDAT, IEND (CRCs zero: nothing here checks them).
fn png() -> Vec<u8> {
    use std::io::Write;
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&[0; 4]);
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0]);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&[0, 255, 0, 0]).unwrap();
    chunk(&mut out, b"IDAT", &z.finish().unwrap());
    chunk(&mut out, b"IEND", &[]);
    out
}

fn png_base64() -> String {
    png()
        .chunks(3)
        .map(|c| {
            const A: &[u8; 64] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let mut w = [0u8; 3];
            w[..c.len()].copy_from_slice(c);
            let v = u32::from(w[0]) << 16 | u32::from(w[1]) << 8 | u32::from(w[2]);
            (0..4)
                .map(|k| {
                    if k <= c.len() {
                        char::from(A[(v >> (18 - 6 * k) & 63) as usize])
                    } else {
                        '='
                    }
                })
                .collect::<String>()
        })
        .collect()
}

/// A JPEG/JFIF header, some entropy-coded bytes and the end marker.
fn jpeg() -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
    out.extend_from_slice(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
    out.extend_from_slice(&random_bytes(4000, 9));
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

/// The files of the RAR archive `path` as an independent extractor gives them (unar, else
/// bsdtar): their paths inside the archive and their bytes.
fn extracted(path: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    for (program, args) in [
        ("unar", vec!["-q", "-f", "-D", "-o"]),
        ("bsdtar", vec!["-x", "-C"]),
    ] {
        let out = tempfile::tempdir().unwrap();
        let mut command = std::process::Command::new(program);
        if program == "unar" {
            command.args(&args).arg(out.path()).arg(path);
        } else {
            command.arg("-f").arg(path).args(&args).arg(out.path());
        }
        let ok = command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            continue;
        }
        let files: Vec<(String, Vec<u8>)> = walkdir::WalkDir::new(out.path())
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .map(|e| {
                let name = e
                    .path()
                    .strip_prefix(out.path())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                (name, std::fs::read(e.path()).unwrap())
            })
            .collect();
        if !files.is_empty() {
            return files;
        }
    }
    panic!("neither unar nor bsdtar extracts {}", path.display());
}

/// A scanner that knows each of `files` (name, bytes) by its SHA-256, as `file`.
fn knowing(spool: &std::path::Path, files: &[(String, Vec<u8>)]) -> scan_core::Scanner {
    use sha2::Digest;
    let digests = files
        .iter()
        .map(|(_, bytes)| sha2::Sha256::digest(bytes).into())
        .collect();
    crate::testutil::scanner_of(spool, crate::testutil::Whole::any_of(digests, "file"))
}

#[tokio::test]
async fn rar_archives_of_every_version_yield_their_files_and_what_cannot_be_read_is_said() {
    let samples =
        std::path::PathBuf::from(test_support::service_or_skip!("VERDICT_TEST_RAR_SAMPLES"));
    let dir = tempfile::tempdir().unwrap();
    // RAR 3/4 and 5: compressed, solid RAR 5, subfolders and Unicode names, several versions of
    // one file, both checksums.
    for name in [
        "rar3-subdirs.rar",
        "rar3-readonly-unix.rar",
        "rar3-versions.rar",
        "rar5-subdirs.rar",
        "rar5-solid.rar",
        "rar5-blake.rar",
        "rar5-crc.rar",
    ] {
        let path = samples.join(name);
        let files = extracted(&path);
        let scanner = knowing(dir.path(), &files);
        let report = crate::testutil::scan(&scanner, name, std::fs::read(&path).unwrap()).await;
        let mut found: Vec<&str> = report
            .detections
            .iter()
            .map(|d| d.path.as_str())
            .filter(|p| p.contains('/'))
            .collect();
        found.sort_unstable();
        found.dedup();
        let mut expected: Vec<String> = files.iter().map(|(f, _)| format!("{name}/{f}")).collect();
        expected.sort_unstable();
        assert_eq!(found, expected, "{name}: {report:#?}");
        assert!(report.problems.is_empty(), "{name}: {report:#?}");
        assert_eq!(report.file_type, "rar", "{name}");
    }

    // A self-extracting RAR: the archive inside the executable is found and opened.
    let files = extracted(&samples.join("rar5-crc.rar"));
    let scanner = knowing(dir.path(), &files);
    let sfx = std::fs::read(samples.join("rar5-crc.sfx")).unwrap();
    let report = crate::testutil::scan(&scanner, "setup.exe", sfx).await;
    for (file, _) in &files {
        assert!(
            report
                .detections
                .iter()
                .any(|d| d.path.starts_with("setup.exe@") && d.path.ends_with(&format!("/{file}"))),
            "{file}: {report:#?}"
        );
    }

    // RAR 4 and 5 inside other data (a dropper's blob): found where they start, once their
    // first header's checksum holds.
    for name in ["rar3-subdirs.rar", "rar5-crc.rar"] {
        let files = extracted(&samples.join(name));
        let scanner = knowing(dir.path(), &files);
        let mut blob: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        blob.extend(std::fs::read(samples.join(name)).unwrap());
        let report = crate::testutil::scan(&scanner, "blob.bin", blob).await;
        for (file, _) in &files {
            let path = format!("blob.bin@4096/{file}");
            assert!(
                report.detections.iter().any(|d| d.path == path),
                "{path}: {report:#?}"
            );
        }
    }

    let scanner = crate::testutil::scanner(dir.path());
    // Encrypted (data, or headers too), volume sets, what this libarchive does not read (RAR 1.5
    // and 2 archives, RAR 4 solid ones past their first file): never clean.
    for name in [
        "rar15-comment.rar",
        "rar202-comment-nopsw.rar",
        "rar5-psw.rar",
        "rar5-hpsw.rar",
        "rar3-comment-psw.rar",
        "rar3-comment-hpsw.rar",
        "rar3-vols.part1.rar",
        "rar3-solid.rar",
    ] {
        let report =
            crate::testutil::scan(&scanner, name, std::fs::read(samples.join(name)).unwrap()).await;
        assert_eq!(
            report.verdict,
            scan_core::Verdict::Unscannable,
            "{name}: {report:#?}"
        );
    }
    let report = crate::testutil::scan(
        &scanner,
        "hpsw.rar",
        std::fs::read(samples.join("rar5-hpsw.rar")).unwrap(),
    )
    .await;
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.reason == scan_core::Reason::Encrypted),
        "{report:#?}"
    );
}

#[tokio::test]
async fn a_rar_member_declaring_a_huge_size_is_refused_before_it_is_read() {
    let samples =
        std::path::PathBuf::from(test_support::service_or_skip!("VERDICT_TEST_RAR_SAMPLES"));
    let dir = tempfile::tempdir().unwrap();
    let mut archive = std::fs::read(samples.join("rar3-readonly-unix.rar")).unwrap();
    // RAR 3 blocks after the 7-byte signature: CRC16, type, flags, size, then for a file
    // header (type 0x74) its packed and unpacked sizes. The first file's unpacked size becomes
    // 4 GiB - 1 and its header CRC (the low half of a CRC-32) is made to hold again.
    let mut at = 7;
    loop {
        let size = usize::from(u16::from_le_bytes([archive[at + 5], archive[at + 6]]));
        if archive[at + 2] == 0x74 {
            archive[at + 11..at + 15].copy_from_slice(&u32::MAX.to_le_bytes());
            let crc = crc32fast::hash(&archive[at + 2..at + size]) as u16;
            archive[at..at + 2].copy_from_slice(&crc.to_le_bytes());
            break;
        }
        at += size;
    }
    let report =
        crate::testutil::scan(&crate::testutil::scanner(dir.path()), "huge.rar", archive).await;
    crate::testutil::assert_limit(&report, scan_core::Limit::MaxFileSize);
}
