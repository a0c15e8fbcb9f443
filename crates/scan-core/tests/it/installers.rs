//! Installers and old archive formats: written by the real tools where Debian has them (GNU
//! cpio), by hand from the format's description where it does not, each holding the test file
//! at a named path.

use std::io::Write;
use std::process::{Command, Stdio};

use scan_core::testing::eicar;
use scan_core::{Reason, Verdict};

use crate::testutil::{paths, scan, scanner};

/// Runs GNU cpio in output mode over files written to a temporary folder.
pub(crate) fn gnu_cpio(format: &str, files: &[(&str, &[u8])]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    for (name, data) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
    let mut child = Command::new("cpio")
        .args(["--quiet", "-o", "-H", format])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("GNU cpio runs (scripts/services.sh installs it)");
    let list: String = files.iter().map(|(name, _)| format!("{name}\n")).collect();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(list.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    out.stdout
}

/// The binary cpio format in the other byte order: every 16-bit header word swapped.
fn byte_swapped_binary_cpio(archive: &[u8]) -> Vec<u8> {
    let mut out = archive.to_vec();
    let mut at = 0;
    while at + 26 <= out.len() {
        let word = |i: usize| u16::from_le_bytes([out[at + 2 * i], out[at + 2 * i + 1]]) as usize;
        let (names, size) = (word(10), word(11) << 16 | word(12));
        let trailer = out[at + 26..].starts_with(b"TRAILER!!!");
        for i in 0..13 {
            out.swap(at + 2 * i, at + 2 * i + 1);
        }
        if trailer {
            break;
        }
        let data = at + 26 + names + names % 2;
        at = data + size + size % 2;
    }
    out
}

#[tokio::test]
async fn old_cpio_formats_written_by_gnu_cpio_are_opened() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let files: &[(&str, &[u8])] = &[("docs/readme.txt", b"hello"), ("bin/payload.exe", &eicar())];
    let odc = gnu_cpio("odc", files);
    let binary = gnu_cpio("bin", files);
    let swapped = byte_swapped_binary_cpio(&binary);
    assert_ne!(binary[..2], swapped[..2]);
    for (name, archive) in [
        ("a.odc.cpio", odc),
        ("a.bin.cpio", binary),
        ("a.be.cpio", swapped),
    ] {
        let report = scan(&scanner, name, archive).await;
        assert_eq!(report.verdict, Verdict::Infected, "{name}: {report:#?}");
        assert_eq!(paths(&report), [format!("{name}/bin/payload.exe").as_str()]);
        assert!(report.problems.is_empty(), "{name}: {:?}", report.problems);
        assert_eq!(report.objects, 3, "{name}");
    }
}

#[tokio::test]
async fn a_cut_old_cpio_archive_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let files: &[(&str, &[u8])] = &[("notes.txt", &b"words ".repeat(100))];
    for format in ["odc", "bin"] {
        let archive = gnu_cpio(format, files);
        let report = scan(&scanner, "cut.cpio", archive[..archive.len() / 2].to_vec()).await;
        assert_eq!(
            report.verdict,
            Verdict::Unscannable,
            "{format}: {report:#?}"
        );
        assert!(
            report.problems.iter().any(|p| p.reason == Reason::Corrupt),
            "{format}"
        );
    }
}
