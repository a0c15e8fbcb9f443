//! Installers and old archive formats: written by the real tools where Debian has them (GNU
//! cpio), by hand from the format's description where it does not, each holding the test file
//! at a named path.

use std::io::Write;
use std::process::{Command, Stdio};

use scan_core::testing::{self, eicar};
use scan_core::{Limit, Reason, Verdict};

use crate::testutil::{
    Whole, assert_limit, assert_stopped_early, paths, scan, scanner, scanner_of,
};

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

/// Writes `files` into a fresh folder, runs `program` there with `args`, and returns the file
/// `output` it wrote. Every program used here is installed by scripts/services.sh.
pub(crate) fn tool_output(
    files: &[(&str, &[u8])],
    program: &str,
    args: &[&str],
    output: &str,
) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    for (name, data) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
    let status = Command::new(program)
        .args(args)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("{program} runs (scripts/services.sh installs it): {e}"));
    assert!(status.success(), "{program} {args:?} failed");
    std::fs::read(dir.path().join(output)).unwrap()
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

#[tokio::test]
async fn ms_compress_files_expand_to_the_file_they_hold() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    // SZDD, written by mscompress (the tool appends `_` to the name).
    let mut payload = eicar();
    payload.extend_from_slice(&b"padding that repeats, padding that repeats ".repeat(40));
    let szdd = szdd(&payload);
    assert!(szdd.len() < payload.len(), "the repeats were compressed");
    let report = scan(&scanner, "setup.exe_", szdd.clone()).await;
    assert_eq!(paths(&report), ["setup.exe_/setup.exe"], "{report:#?}");
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    // A declared size of 4 GiB is refused from the header, before anything is expanded.
    let mut huge = szdd.clone();
    huge[10..14].copy_from_slice(&u32::MAX.to_le_bytes());
    let report = scan(&scanner, "huge.ex_", huge).await;
    assert_limit(&report, Limit::MaxFileSize);
    assert_eq!(report.bytes_expanded, 0);

    // Cut short of its declared size: corrupt.
    let report = scan(&scanner, "cut.ex_", szdd[..szdd.len() - 20].to_vec()).await;
    assert_eq!(report.verdict, Verdict::Unscannable, "{report:#?}");
    assert!(report.problems.iter().any(|p| p.reason == Reason::Corrupt));

    // KWAJ, hand-built: stored, XOR and LZSS (literals only) with a name header; the Huffman
    // method is recognised but not supported.
    for (method, body) in [
        (0u16, payload.clone()),
        (1, payload.iter().map(|b| b ^ 0xFF).collect()),
        (2, lzss_literals(&payload)),
    ] {
        let report = scan(&scanner, "setup.ex_", kwaj(method, &body)).await;
        assert_eq!(
            paths(&report),
            ["setup.ex_/payload.exe"],
            "method {method}: {report:#?}"
        );
    }
    let report = scan(&scanner, "setup.ex_", kwaj(3, b"huffman bits")).await;
    assert_eq!(report.verdict, Verdict::Unscannable);
    assert_eq!(report.problems[0].reason, Reason::Unsupported);
}

/// `data` compressed to SZDD by mscompress (which appends `_` to the name).
pub(crate) fn szdd(data: &[u8]) -> Vec<u8> {
    tool_output(
        &[("setup.exe", data)],
        "mscompress",
        &["setup.exe"],
        "setup.exe_",
    )
}

fn lzss_literals(data: &[u8]) -> Vec<u8> {
    data.chunks(8)
        .flat_map(|group| std::iter::once(0xFF).chain(group.iter().copied()))
        .collect()
}

/// A KWAJ file: magic, method, data offset, flags (file name and extension present).
fn kwaj(method: u16, body: &[u8]) -> Vec<u8> {
    let mut header = b"KWAJ\x88\xF0\x27\xD1".to_vec();
    header.extend_from_slice(&method.to_le_bytes());
    let names = b"payload\0exe\0";
    header.extend_from_slice(&((14 + names.len()) as u16).to_le_bytes());
    header.extend_from_slice(&(8u16 | 16).to_le_bytes());
    header.extend_from_slice(names);
    header.extend_from_slice(body);
    header
}

/// A cabinet written by gcab, MSZIP-compressed when `compress`.
pub(crate) fn gcab(compress: bool, files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut args = vec!["-c"];
    if compress {
        args.push("-z");
    }
    args.push("out.cab");
    args.extend(files.iter().map(|(name, _)| *name));
    tool_output(files, "gcab", &args, "out.cab")
}

#[tokio::test]
async fn cabinets_stored_and_mszip_are_opened_in_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    // Enough text before the payload that MSZIP spans many blocks sharing their history.
    let text = b"setup copies these files to the program folder ".repeat(20_000);
    let files: &[(&str, &[u8])] = &[("readme.txt", &text), ("payload.exe", &eicar())];
    for compress in [false, true] {
        let cab = gcab(compress, files);
        let report = scan(&scanner, "setup.cab", cab).await;
        assert_eq!(paths(&report), ["setup.cab/payload.exe"], "{report:#?}");
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.objects, 3);
    }
}

#[tokio::test]
async fn cabinets_that_cannot_be_read_are_not_clean() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let text = b"setup copies these files to the program folder ".repeat(2_000);
    let cab = gcab(true, &[("readme.txt", &text)]);

    let cut = scan(&scanner, "cut.cab", cab[..cab.len() - 100].to_vec()).await;
    assert_eq!(cut.verdict, Verdict::Unscannable, "{cut:#?}");
    assert!(cut.problems.iter().any(|p| p.reason == Reason::Corrupt));

    // The folder's compression type (at 36 + 6) set to Quantum.
    let mut quantum = cab.clone();
    quantum[42] = 2;
    let report = scan(&scanner, "q.cab", quantum).await;
    assert_eq!(report.verdict, Verdict::Unscannable);
    assert_eq!(report.problems[0].reason, Reason::Unsupported);
    assert!(report.problems[0].message.contains("Quantum"));

    // A file entry (the first at the files offset) declaring 4 GiB: refused from the header.
    let files_at = u32::from_le_bytes(cab[16..20].try_into().unwrap()) as usize;
    let mut huge = cab.clone();
    huge[files_at..files_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let report = scan(&scanner, "huge.cab", huge).await;
    assert_limit(&report, Limit::MaxFileSize);
    assert_eq!(report.bytes_expanded, 0);
}

#[tokio::test]
async fn a_cabinet_of_zeros_stops_on_the_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let cab = gcab(true, &[("zeros.bin", &vec![0u8; 300 << 20])]);
    assert!(cab.len() < 8 << 20, "{}", cab.len());
    let report = scan(&scanner(dir.path()), "zeros.cab", cab).await;
    assert_limit(&report, Limit::MaxCompressionRatio);
    assert_stopped_early(&report);
}

#[tokio::test]
async fn raw_lzma_streams_are_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let lzma = lzma(&eicar());
    let report = scan(&scanner, "payload.exe.lzma", lzma.clone()).await;
    assert_eq!(
        paths(&report),
        ["payload.exe.lzma/payload.exe"],
        "{report:#?}"
    );
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    let cut = scan(&scanner, "cut.lzma", lzma[..lzma.len() - 8].to_vec()).await;
    assert_eq!(cut.verdict, Verdict::Unscannable, "{cut:#?}");

    // A 1 GiB dictionary is refused before it is allocated.
    let mut greedy = lzma.clone();
    greedy[1..5].copy_from_slice(&(1u32 << 30).to_le_bytes());
    let report = scan(&scanner, "greedy.lzma", greedy).await;
    assert_eq!(report.verdict, Verdict::Unscannable, "{report:#?}");
    assert_eq!(report.problems[0].reason, Reason::Unsupported);
}

/// `data` as a raw LZMA stream, written by xz.
pub(crate) fn lzma(data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("xz")
        .args(["--format=lzma", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("xz runs");
    child.stdin.take().unwrap().write_all(data).unwrap();
    child.wait_with_output().unwrap().stdout
}

/// A disk image written by genisoimage from `files`, with Joliet names when `joliet`.
pub(crate) fn iso(joliet: bool, files: &[(&str, &[u8])]) -> Vec<u8> {
    let names: Vec<String> = files
        .iter()
        .map(|(name, _)| format!("root/{name}"))
        .collect();
    let rooted: Vec<(&str, &[u8])> = names
        .iter()
        .zip(files)
        .map(|(name, (_, data))| (name.as_str(), *data))
        .collect();
    let mut args = vec!["-quiet", "-o", "out.iso"];
    if joliet {
        args.push("-J");
    }
    args.push("root");
    tool_output(&rooted, "genisoimage", &args, "out.iso")
}

#[tokio::test]
async fn disk_images_yield_their_files_by_path() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let files: &[(&str, &[u8])] = &[
        ("README.TXT", b"read me"),
        ("setup/Invoice 2024 payment.exe", &eicar()),
    ];
    let joliet = iso(true, files);
    let report = scan(&scanner, "invoice.iso", joliet.clone()).await;
    assert_eq!(report.file_type, "iso9660");
    assert_eq!(
        paths(&report),
        ["invoice.iso/setup/Invoice 2024 payment.exe"],
        "{report:#?}"
    );
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    // Without Joliet, the primary volume's 8.3 names.
    let plain = iso(false, files);
    let report = scan(&scanner, "plain.iso", plain).await;
    assert_eq!(report.verdict, Verdict::Infected, "{report:#?}");
    assert!(
        paths(&report)[0].starts_with("plain.iso/SETUP/"),
        "{:?}",
        paths(&report)
    );

    // Cut inside the file's data: corrupt, never clean.
    let at = joliet.windows(8).position(|w| w == &eicar()[..8]).unwrap();
    let cut = scan(&scanner, "cut.iso", joliet[..at + 10].to_vec()).await;
    assert_eq!(cut.verdict, Verdict::Unscannable, "{cut:#?}");
    assert!(cut.problems.iter().any(|p| p.reason == Reason::Corrupt));

    // A volume descriptor and nothing else.
    let mut empty = vec![0u8; 0x8800];
    empty[0x8000] = 1;
    empty[0x8001..0x8006].copy_from_slice(b"CD001");
    let report = scan(&scanner, "empty.iso", empty).await;
    assert_eq!(report.verdict, Verdict::Unscannable);
    assert_eq!(report.problems[0].reason, Reason::Corrupt);
}

#[tokio::test]
async fn carriers_inside_executables_and_after_images_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let zip = testing::zip(&[("payload.exe", &eicar())]);
    let cab = gcab(true, &[("payload.exe", &eicar())]);
    for (name, carrier) in [("zip", &zip), ("cab", &cab)] {
        let mut sfx = testing::pe();
        sfx.extend_from_slice(&carrier[..]);
        // Trailing data (a signature block, say) after the archive.
        sfx.extend_from_slice(&[0x30; 300]);
        let report = scan(&scanner, "setup.exe", sfx).await;
        assert_eq!(
            paths(&report),
            ["setup.exe@1024/payload.exe"],
            "{name}: {report:#?}"
        );
        assert!(report.problems.is_empty(), "{name}: {:?}", report.problems);
    }

    // InstallShield appends files behind name, path, version and size strings.
    let mut installer = testing::pe();
    let inner = eicar();
    installer.extend_from_slice(b"readme.txt\0Disk1\\readme.txt\x001.0.0.0\x005\x00hello");
    let at = installer.len()
        + b"tool.exe\0Disk1\\tool.exe\x001.0.0.0\0".len()
        + format!("{}\0", inner.len()).len();
    installer.extend_from_slice(
        format!("tool.exe\0Disk1\\tool.exe\x001.0.0.0\0{}\0", inner.len()).as_bytes(),
    );
    installer.extend_from_slice(&inner);
    let report = scan(&scanner, "setup.exe", installer).await;
    assert_eq!(report.verdict, Verdict::Infected, "{report:#?}");
    assert_eq!(paths(&report), [format!("setup.exe@{at}").as_str()]);

    // A zip appended to an image.
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend_from_slice(&[0x55; 500]);
    let start = png.len();
    png.extend_from_slice(&zip);
    let report = scan(&scanner, "cat.png", png).await;
    assert_eq!(
        paths(&report),
        [format!("cat.png@{start}/payload.exe").as_str()],
        "{report:#?}"
    );

    // An executable with nothing inside is just an executable.
    let report = scan(&scanner, "plain.exe", testing::pe()).await;
    assert_eq!(report.verdict, Verdict::Clean, "{report:#?}");
    assert_eq!(report.objects, 1);
}

/// A self-extracting archive: an executable with `carrier` and an installer entry appended.
pub(crate) fn sfx(carrier: &[u8]) -> Vec<u8> {
    let mut out = testing::pe();
    out.extend_from_slice(carrier);
    out.extend_from_slice(b"a.txt\0Disk1\\a.txt\x001.0\x005\x00hello");
    out
}

#[tokio::test]
async fn msi_packages_open_their_cabinets_under_readable_names() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let work = tempfile::tempdir().unwrap();
    let cab = gcab(true, &[("payload.exe", &eicar())]);
    std::fs::write(work.path().join("data.cab"), cab).unwrap();
    // msibuild writes an empty installer database and adds the cabinet as the stream
    // `Data1.cab`, which MSI stores under a packed name.
    let status = Command::new("msibuild")
        .args(["setup.msi", "-a", "Data1.cab", "data.cab"])
        .current_dir(work.path())
        .status()
        .expect("msibuild runs (scripts/services.sh installs msitools)");
    assert!(status.success());
    let msi = std::fs::read(work.path().join("setup.msi")).unwrap();
    let report = scan(&scanner, "setup.msi", msi).await;
    assert_eq!(
        paths(&report),
        ["setup.msi/Data1.cab/payload.exe"],
        "{report:#?}"
    );
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[tokio::test]
async fn zip_and_cabinet_constants_in_program_code_are_not_carriers() {
    let dir = tempfile::tempdir().unwrap();
    // Programs that read zips and cabinets hold their signatures as constants in their code.
    let mut program = testing::pe();
    let code = 0x200;
    program[code..code + 4].copy_from_slice(b"PK\x03\x04");
    program[code + 40..code + 44].copy_from_slice(b"PK\x05\x06");
    program[code + 80..code + 88].copy_from_slice(b"MSCF\0\0\0\0");
    let report = scan(&scanner(dir.path()), "unzip.exe", program).await;
    assert_eq!(report.verdict, Verdict::Clean, "{report:#?}");
    assert_eq!(report.objects, 1);
}

#[tokio::test]
async fn disk_images_with_huge_files_or_looping_directories_stay_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let image = iso(false, &[("SUB/A.TXT", b"hello")]);
    // The directory records of the primary volume, found by their length-prefixed names (the
    // path table holds the names too, but not prefixed so).
    let record_of = |name: &[u8]| {
        let mut prefixed = vec![name.len() as u8];
        prefixed.extend_from_slice(name);
        let at = image
            .windows(prefixed.len())
            .position(|w| w == prefixed)
            .unwrap();
        at - 32
    };
    // A.TXT declares 4 GiB: it lies past the end of the image.
    let mut huge = image.clone();
    let file = record_of(b"A.TXT;1");
    huge[file + 10..file + 14].copy_from_slice(&u32::MAX.to_le_bytes());
    let report = scan(&scanner, "huge.iso", huge).await;
    assert_eq!(report.verdict, Verdict::Unscannable, "{report:#?}");
    assert_eq!(report.problems[0].reason, Reason::Corrupt);
    assert_eq!(report.bytes_expanded, 0);

    // SUB points back at the root directory: walked once, not forever.
    let mut looping = image.clone();
    let root_extent = &image[0x8000 + 156 + 2..0x8000 + 156 + 6].to_vec();
    let sub = record_of(b"SUB");
    looping[sub + 2..sub + 6].copy_from_slice(root_extent);
    let report = scan(&scanner, "loop.iso", looping).await;
    assert_eq!(report.verdict, Verdict::Clean, "{report:#?}");
    assert_eq!(report.objects, 1);
}

/// A 7z archive of `files` written by p7zip with the given method options (`-m0=...`).
fn p7zip(method: &str, files: &[(&str, &[u8])]) -> Vec<u8> {
    let method = format!("-m0={method}");
    let mut args = vec!["a", "-bd", "-bso0", method.as_str(), "out.7z"];
    args.extend(files.iter().map(|(name, _)| *name));
    tool_output(files, "7z", &args, "out.7z")
}

#[tokio::test]
async fn ppmd_7z_archives_are_opened() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let files: &[(&str, &[u8])] = &[
        ("readme.txt", b"hello hello hello"),
        ("payload.exe", &eicar()),
    ];
    let report = scan(&scanner, "a.7z", p7zip("PPMd", files)).await;
    assert_eq!(paths(&report), ["a.7z/payload.exe"], "{report:#?}");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[tokio::test]
async fn help_files_yield_stored_and_lzx_entries() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    // 40 KiB of pages first, so the payload sits in the second LZX frame, after a reset.
    let page = b"<html><body>help page</body></html>\n".repeat(1200);
    let chm = testing::chm(
        &[("/#SYSTEM", b"system data"), ("/stored.exe", &eicar())],
        &[("index.html", &page), ("tools/run.exe", &eicar())],
    );
    let report = scan(&scanner, "help.chm", chm.clone()).await;
    assert_eq!(report.file_type, "chm");
    assert_eq!(
        paths(&report),
        ["help.chm/stored.exe", "help.chm/tools/run.exe"],
        "{report:#?}"
    );
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.objects, 5);

    // Cut inside the LZX content: the last frame is damaged, and the first entry reaching into
    // it (the page) says so; the stored payload is still found.
    let cut = scan(&scanner, "cut.chm", chm[..chm.len() - 30].to_vec()).await;
    assert_eq!(paths(&cut), ["cut.chm/stored.exe"], "{cut:#?}");
    let damaged: Vec<(&str, Reason)> = cut
        .problems
        .iter()
        .map(|p| (p.path.as_str(), p.reason.clone()))
        .collect();
    assert_eq!(damaged, [("cut.chm/index.html", Reason::Corrupt)]);

    // The control data's signature damaged: the compressed section cannot be read.
    let mut damaged = chm.clone();
    let at = chm.windows(4).position(|w| w == b"LZXC").unwrap();
    damaged[at] = b'X';
    let report = scan(&scanner, "damaged.chm", damaged).await;
    assert_eq!(
        report.verdict,
        Verdict::Infected,
        "the stored payload is still found"
    );
    assert!(report.problems.iter().any(|p| p.reason == Reason::Corrupt));
}

#[tokio::test]
async fn a_help_file_declaring_a_huge_entry_is_refused_from_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let chm = testing::chm(&[], &[("big.html", b"small really")]);
    // The entry's record ends with section 1, offset 0 and length 12 (one byte each): widen
    // the length to a five-byte ENCINT of 2^32 - 1, taking the room from the chunk's free space.
    let name = b"/big.html";
    let at = chm.windows(name.len()).position(|w| w == name).unwrap() + name.len();
    assert_eq!(&chm[at..at + 3], &[1, 0, 12]);
    let mut huge = chm[..at].to_vec();
    huge.extend_from_slice(&[1, 0, 0x8F, 0xFF, 0xFF, 0xFF, 0x7F]);
    huge.extend_from_slice(&chm[at + 3..]);
    // The listing chunk keeps its size: drop four bytes of its free space (zeros at its end).
    let pmgl = huge.windows(4).position(|w| w == b"PMGL").unwrap();
    huge.drain(pmgl + 0x1000 - 4..pmgl + 0x1000);
    let free = u32::from_le_bytes(huge[pmgl + 4..pmgl + 8].try_into().unwrap()) - 4;
    huge[pmgl + 4..pmgl + 8].copy_from_slice(&free.to_le_bytes());
    let report = scan(&scanner(dir.path()), "huge.chm", huge).await;
    assert_limit(&report, Limit::MaxFileSize);
    assert_eq!(report.bytes_expanded, 0);
}

/// An ARJ archive of `files` written by the arj tool with method `-m<method>`.
pub(crate) fn arj(method: u8, files: &[(&str, &[u8])]) -> Vec<u8> {
    let method = format!("-m{method}");
    let mut args = vec!["a", "-y", method.as_str(), "out.arj"];
    args.extend(files.iter().map(|(name, _)| *name));
    tool_output(files, "arj", &args, "out.arj")
}

/// Text that repeats at every distance ARJ's windows reach, then noise, then the test file:
/// literals, short and long matches, and a member past the first.
fn arj_payload() -> Vec<u8> {
    let mut payload = eicar();
    let mut state = 0x2545_F491u32;
    for i in 0..40_000u32 {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let word = ["setup ", "copies ", "files ", "to ", "the ", "folder "][(state % 6) as usize];
        payload.extend_from_slice(word.as_bytes());
        if i % 97 == 0 {
            payload.extend_from_slice(&state.to_le_bytes());
        }
    }
    payload
}

#[tokio::test]
async fn arj_archives_of_every_method_are_decoded_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let payload = arj_payload();
    let exact = scanner_of(dir.path(), Whole::of(&payload, "Test.Whole"));
    let files: &[(&str, &[u8])] = &[
        ("docs/readme.txt", b"read me first"),
        ("payload.exe", &payload),
    ];
    for method in 0..=4 {
        let archive = arj(method, files);
        if method > 0 {
            assert!(
                archive.len() < payload.len() / 2,
                "method {method} compressed"
            );
        }
        let report = scan(&exact, "a.arj", archive).await;
        assert_eq!(report.file_type, "arj");
        assert_eq!(
            paths(&report),
            ["a.arj/payload.exe"],
            "method {method}: {report:#?}"
        );
        assert!(
            report.problems.is_empty(),
            "method {method}: {:?}",
            report.problems
        );
        assert_eq!(report.objects, 3);
    }
}

#[tokio::test]
async fn arj_archives_that_cannot_be_read_are_not_clean() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let archive = arj(1, &[("payload.exe", &arj_payload())]);

    // Cut: damaged, and what was decoded before the cut (the test file) is still scanned.
    let cut = scan(&scanner, "cut.arj", archive[..archive.len() / 2].to_vec()).await;
    assert_eq!(cut.verdict, Verdict::Infected, "{cut:#?}");
    assert!(cut.problems.iter().any(|p| p.reason == Reason::Corrupt));

    // Garbled (encrypted) by the tool itself.
    let garbled = tool_output(
        &[("payload.exe", &eicar())],
        "arj",
        &["a", "-y", "-gsecret", "out.arj", "payload.exe"],
        "out.arj",
    );
    let report = scan(&scanner, "g.arj", garbled).await;
    assert_eq!(report.verdict, Verdict::Unscannable, "{report:#?}");
    assert_eq!(report.problems[0].reason, Reason::Encrypted);

    // A header byte changed: its CRC fails, and the archive is damaged, not skipped.
    let mut damaged = archive.clone();
    let second = damaged[4..]
        .windows(2)
        .position(|w| w == [0x60, 0xEA])
        .unwrap()
        + 4;
    damaged[second + 10] ^= 0xFF;
    let report = scan(&scanner, "d.arj", damaged).await;
    assert_eq!(report.verdict, Verdict::Unscannable, "{report:#?}");
    assert_eq!(report.problems[0].reason, Reason::Corrupt);

    // A main header that fails its CRC is still recognised as an ARJ it cannot open.
    let mut main = archive.clone();
    main[12] ^= 0xFF;
    let report = scan(&scanner, "m.arj", main).await;
    assert_eq!(report.verdict, Verdict::Unscannable, "{report:#?}");
    assert_eq!(report.problems[0].reason, Reason::Unsupported);
}

#[tokio::test]
async fn an_arj_member_declaring_4_gib_is_refused_from_its_header() {
    let dir = tempfile::tempdir().unwrap();
    let archive = arj(1, &[("zeros.bin", &vec![0u8; 1 << 20])]);
    let second = archive[4..]
        .windows(2)
        .position(|w| w == [0x60, 0xEA])
        .unwrap()
        + 4;
    let size = usize::from(u16::from_le_bytes([
        archive[second + 2],
        archive[second + 3],
    ]));
    let mut huge = archive.clone();
    huge[second + 4 + 16..second + 4 + 20].copy_from_slice(&u32::MAX.to_le_bytes());
    let crc = crc32(&huge[second + 4..second + 4 + size]);
    huge[second + 4 + size..second + 8 + size].copy_from_slice(&crc.to_le_bytes());
    let report = scan(&scanner(dir.path()), "huge.arj", huge).await;
    assert_limit(&report, Limit::MaxFileSize);
    assert_eq!(report.bytes_expanded, 0);
}

/// CRC-32 (IEEE), as ARJ guards its headers.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[tokio::test]
async fn zip_methods_that_are_not_decoded_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    // Method 97 (WavPack) has no decoder; an imploded member of 100 MiB is more than the
    // legacy decoders, which hold their whole output, are given.
    for (method, size, words) in [
        (97u16, 1000u32, "method 97"),
        (6, 100 << 20, "legacy method"),
    ] {
        let zip = testing::zip_raw_method("old.exe", &[0x55; 64], size, method);
        let report = scan(&scanner, "old.zip", zip).await;
        assert_eq!(report.verdict, Verdict::Unscannable, "{report:#?}");
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert_eq!(report.problems[0].reason, Reason::Unsupported);
        assert_eq!(report.problems[0].path, "old.zip/old.exe");
        assert!(
            report.problems[0].message.contains(words),
            "{}",
            report.problems[0].message
        );
        assert_eq!(report.bytes_expanded, 0);
    }
}

/// An NSIS installer of `files`, written by makensis with `compressor` (`lzma`, `/SOLID zlib`...).
pub(crate) fn nsis(compressor: &str, files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut script =
        format!("SetCompressor {compressor}\nOutFile \"setup.exe\"\nSection\nSetOutPath $TEMP\n");
    for (name, _) in files {
        script.push_str(&format!("File \"{name}\"\n"));
    }
    script.push_str("SectionEnd\n");
    let mut all: Vec<(&str, &[u8])> = files.to_vec();
    all.push(("setup.nsi", script.as_bytes()));
    tool_output(&all, "makensis", &["-V1", "setup.nsi"], "setup.exe")
}

#[tokio::test]
async fn nsis_installers_yield_their_files_in_every_compressor() {
    let dir = tempfile::tempdir().unwrap();
    let payload = arj_payload();
    let exact = scanner_of(dir.path(), Whole::of(&payload, "Test.Whole"));
    let files: &[(&str, &[u8])] = &[("readme.txt", b"read me first"), ("payload.exe", &payload)];
    for compressor in ["lzma", "/SOLID lzma", "zlib", "/SOLID zlib"] {
        let setup = nsis(compressor, files);
        let data = setup
            .windows(16)
            .position(|w| w == b"\xEF\xBE\xAD\xDENullsoftInst")
            .unwrap()
            - 4;
        let report = scan(&exact, "setup.exe", setup).await;
        assert_eq!(
            paths(&report),
            [format!("setup.exe@{data}/block-2").as_str()],
            "{compressor}: {report:#?}"
        );
        assert!(
            report.problems.is_empty(),
            "{compressor}: {:?}",
            report.problems
        );
        // The executable, the installer data, its header and the two files.
        assert_eq!(report.objects, 5, "{compressor}");
    }
    // NSIS's own bzip2 is recognised, not decoded.
    let report = scan(&exact, "setup.exe", nsis("bzip2", files)).await;
    assert_eq!(report.verdict, Verdict::Unscannable, "{report:#?}");
    assert!(
        report
            .problems
            .iter()
            .all(|p| p.reason == Reason::Unsupported)
    );

    // Cut inside its data: damaged, never clean.
    let setup = nsis("/SOLID lzma", files);
    let report = scan(&exact, "cut.exe", setup[..setup.len() - 200].to_vec()).await;
    assert_eq!(report.verdict, Verdict::Unscannable, "{report:#?}");
    assert!(report.problems.iter().any(|p| p.reason == Reason::Corrupt));
}

#[tokio::test]
async fn setups_whose_contents_are_encoded_are_not_clean() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    // A compiled AutoIt script: AutoIt's 16-byte signature, then `AU3!EA06` and the script.
    let mut autoit = testing::pe();
    autoit.extend_from_slice(
        b"\xA3\x48\x4B\xBE\x98\x6C\x4A\xA9\x99\x4C\x53\x0A\x86\xD6\x48\x7DAU3!EA06",
    );
    autoit.extend_from_slice(&[0x5A; 400]);
    // InstallShield's encoded streams, named at the head of the overlay.
    let mut installshield = testing::pe();
    installshield.extend_from_slice(b"InstallShield\0\x05\0\0\0");
    installshield.extend_from_slice(&[0x33; 400]);
    for (name, setup) in [("autoit.exe", autoit), ("installshield.exe", installshield)] {
        let report = scan(&scanner, name, setup).await;
        assert_eq!(report.verdict, Verdict::Unscannable, "{name}: {report:#?}");
        assert_eq!(report.problems.len(), 1, "{name}");
        assert_eq!(report.problems[0].reason, Reason::Unsupported, "{name}");
        assert_eq!(report.problems[0].path, name);
    }
    // The InstallShield name inside the program's own image (a string in its code) is not a setup.
    let mut program = testing::pe();
    program[0x300..0x30E].copy_from_slice(b"InstallShield\0");
    let report = scan(&scanner, "program.exe", program).await;
    assert_eq!(report.verdict, Verdict::Clean, "{report:#?}");
}

#[tokio::test]
async fn symbian_installers_yield_their_files_by_destination() {
    let dir = tempfile::tempdir().unwrap();
    let payload = arj_payload();
    let exact = scanner_of(dir.path(), Whole::of(&payload, "Test.Whole"));
    let files: &[(&str, &[u8])] = &[("readme.txt", b"read me"), ("sys\\bin\\app.exe", &payload)];
    for stored in [false, true] {
        let report = scan(&exact, "app.sis", testing::sis(files, stored)).await;
        assert_eq!(report.file_type, "sis");
        assert_eq!(
            paths(&report),
            ["app.sis/sys/bin/app.exe"],
            "stored {stored}: {report:#?}"
        );
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.objects, 3);
    }
    let sis = testing::sis(files, false);
    let cut = scan(&exact, "cut.sis", sis[..sis.len() - 100].to_vec()).await;
    assert_eq!(cut.verdict, Verdict::Unscannable, "{cut:#?}");
    assert!(cut.problems.iter().all(|p| p.reason == Reason::Corrupt));

    // The second record's original length (its tenth word) says 4 GiB: refused from the record.
    let mut huge = sis.clone();
    let word = 0x66 + 48 + 4 * 9;
    huge[word..word + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let report = scan(&scanner(dir.path()), "huge.sis", huge).await;
    assert_limit(&report, Limit::MaxFileSize);
}

#[tokio::test]
async fn executables_inside_other_data_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    // An executable whose overlay holds a zip with the test file, inside an image and inside
    // a blob of noise.
    let dropper = sfx(&testing::zip(&[("payload.exe", &eicar())]));
    let mut noise: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let start = noise.len() / 2;
    noise.splice(start..start, dropper.iter().copied());
    let mut image = b"\xFF\xD8\xFF\xE0\0\x10JFIF\0".to_vec();
    image.extend_from_slice(&[0x41; 3000]);
    let image_start = image.len();
    image.extend_from_slice(&dropper);
    for (name, data, at) in [
        ("blob.bin", noise, start),
        ("photo.jpg", image, image_start),
    ] {
        let report = scan(&scanner, name, data).await;
        // The executable (its image) and, in what follows it, the zip its overlay carries.
        assert_eq!(
            paths(&report),
            [format!("{name}@{}/payload.exe", at + 1024).as_str()],
            "{report:#?}"
        );
        assert_eq!(report.objects, 4, "{name}");
    }
    // Text is spared the search only when both its ends read as text: an executable appended
    // to 20 KiB of prose, or put before it, is still found.
    let prose = b"words of an ordinary letter, line after line.\n".repeat(440);
    for (name, data) in [
        ("appended.txt", [prose.clone(), dropper.clone()].concat()),
        (
            "prefixed.txt",
            [b"x".to_vec(), dropper.clone(), prose.clone()].concat(),
        ),
    ] {
        let report = scan(&scanner, name, data).await;
        assert_eq!(report.verdict, Verdict::Infected, "{name}: {report:#?}");
    }
    // An executable in other data is taken at its image's length, so its hash is its own.
    let program = testing::pe();
    let mut blob = vec![0x11u8; 5000];
    blob.extend_from_slice(&program);
    blob.extend_from_slice(&[0x22; 5000]);
    let exact = scanner_of(dir.path(), Whole::of(&program, "Test.Whole"));
    let report = scan(&exact, "blob.bin", blob).await;
    assert_eq!(paths(&report), ["blob.bin@5000"], "{report:#?}");
    // `MZ` in data, with or without a pointer that leads nowhere, is just data.
    let mut decoy = vec![0x20u8; 4096];
    decoy[100..102].copy_from_slice(b"MZ");
    decoy[1000..1002].copy_from_slice(b"MZ");
    decoy[1000 + 0x3C..1000 + 0x40].copy_from_slice(&0x80u32.to_le_bytes());
    let report = scan(&scanner, "decoy.bin", decoy).await;
    assert_eq!(report.verdict, Verdict::Clean, "{report:#?}");
    assert_eq!(report.objects, 1);
}

#[tokio::test]
async fn a_udf_recognition_sequence_without_a_volume_is_damaged_and_a_bridge_reads_iso9660() {
    let dir = tempfile::tempdir().unwrap();
    // UDF's volume recognition sequence: BEA01, NSR02 and TEA01 in the sectors after 32 KiB.
    let mut image = vec![0u8; 0xA000];
    for (sector, id) in [(0x8000, b"BEA01"), (0x8800, b"NSR02"), (0x9000, b"TEA01")] {
        image[sector + 1..sector + 6].copy_from_slice(id);
    }
    let report = scan(&scanner(dir.path()), "disc.iso", image.clone()).await;
    assert_eq!(report.verdict, Verdict::Unscannable, "{report:#?}");
    assert_eq!(report.problems[0].reason, Reason::Corrupt);
    assert!(report.problems[0].message.contains("UDF"), "{report:#?}");
    // A UDF bridge image (genisoimage -udf) also has ISO 9660, whose files are read.
    let bridge = tool_output(
        &[("root/payload.exe", &eicar())],
        "genisoimage",
        &["-quiet", "-udf", "-o", "out.iso", "root"],
        "out.iso",
    );
    let report = scan(&scanner(dir.path()), "bridge.iso", bridge).await;
    assert_eq!(paths(&report), ["bridge.iso/PAYLOAD.EXE"], "{report:#?}");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[tokio::test]
async fn upx_packed_executables_are_unpacked() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let mut image = eicar();
    image.extend_from_slice(&[0x90; 5000]);
    let packed = testing::upx(&image);
    // The flag words between the literals break the test file up in the packed executable.
    assert!(!packed.windows(image.len()).any(|w| w == image));
    let report = scan(&scanner, "packed.exe", packed.clone()).await;
    assert_eq!(paths(&report), ["packed.exe/upx-unpacked"], "{report:#?}");
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    // A stream that does not decode (cut short, or encrypted by a packer stacked on UPX)
    // leaves the executable scanned as it is, as any packed executable.
    let cut = scan(&scanner, "cut.exe", packed[..packed.len() - 100].to_vec()).await;
    assert_eq!(cut.verdict, Verdict::Clean, "{cut:#?}");
    assert_eq!(cut.objects, 1);
    // A header declaring less than the stream holds: not unpacked either.
    let mut wrong = packed.clone();
    let header = packed.windows(4).position(|w| w == b"UPX!").unwrap();
    wrong[header + 16..header + 20].copy_from_slice(&10u32.to_le_bytes());
    let report = scan(&scanner, "wrong.exe", wrong).await;
    assert_eq!(report.objects, 1, "{report:#?}");
}

#[tokio::test]
async fn a_self_extractor_with_adjusted_offsets_is_one_zip() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    // `zip -A` adjusts a zip's offsets to the file, as self-extractors have them: every local
    // header then looks like the start of a zip, but only the first is one.
    let mut sfx = testing::pe();
    sfx.extend_from_slice(&testing::zip(&[
        ("a.txt", &b"first ".repeat(100)),
        ("b.txt", &b"second ".repeat(100)),
        ("payload.exe", &eicar()),
    ]));
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("setup.exe");
    std::fs::write(&path, &sfx).unwrap();
    let status = Command::new("zip")
        .args(["-q", "-A"])
        .arg(&path)
        .status()
        .expect("zip runs (scripts/services.sh installs it)");
    assert!(status.success());
    let adjusted = std::fs::read(&path).unwrap();
    assert_ne!(adjusted, sfx, "zip -A changed the offsets");
    let report = scan(&scanner, "setup.exe", adjusted).await;
    assert_eq!(
        paths(&report),
        ["setup.exe@1024/payload.exe"],
        "{report:#?}"
    );
    assert_eq!(report.objects, 5);
}

/// The test file followed by something compressible, so compressors have work to do (and
/// pass their own code-width changes and table resets).
fn padded_payload(len: usize) -> Vec<u8> {
    let mut text = eicar();
    text.extend((0..len).map(|i| {
        b"the quick brown fox jumps over the lazy dog "[i % 44] ^ (((i / 997) % 3) as u8)
    }));
    text
}

#[tokio::test]
async fn lzip_and_compress_streams_written_by_their_tools_are_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let payload = padded_payload(300_000);
    let tar = testing::tar(&[("docs/readme.txt", b"hello"), ("bin/payload.exe", &payload)]);

    let lz = tool_output(&[("a.tar", &tar)], "lzip", &["-k", "a.tar"], "a.tar.lz");
    let report = scan(&scanner, "a.tar.lz", lz).await;
    assert_eq!(
        paths(&report),
        ["a.tar.lz/a.tar/bin/payload.exe"],
        "{report:#?}"
    );
    // Several members (lzip -b closes one at every 100 kB it writes), read one after another:
    // noise that does not compress makes several.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let noise: Vec<u8> = (0..400_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let tar = testing::tar(&[("noise.bin", &noise), ("bin/payload.exe", &payload)]);
    let members = tool_output(
        &[("a.tar", &tar)],
        "lzip",
        &["-k", "-b", "100000", "a.tar"],
        "a.tar.lz",
    );
    assert!(members.windows(5).filter(|w| w == b"LZIP\x01").count() > 2);
    let report = scan(&scanner, "multi.tar.lz", members).await;
    assert_eq!(
        paths(&report),
        ["multi.tar.lz/multi.tar/bin/payload.exe"],
        "{report:#?}"
    );

    // compress: 16-bit codes (the default), then 10-bit ones, whose table fills and resets
    // (ncompress's own -b 9 output is unreadable, by itself and by gzip alike).
    for bits in ["16", "12", "10"] {
        let z = tool_output(
            &[("a.tar", &tar)],
            "compress",
            &["-f", "-b", bits, "a.tar"],
            "a.tar.Z",
        );
        let report = scan(&scanner, "a.tar.Z", z).await;
        assert_eq!(
            paths(&report),
            ["a.tar.Z/a.tar/bin/payload.exe"],
            "-b {bits}: {report:#?}"
        );
        assert!(report.problems.is_empty(), "-b {bits}: {report:#?}");
    }

    // Cut short: damaged, not clean (lzip has sizes to tell by; compress has no end marker,
    // so a cut .Z is a shorter one, for its own tools as for us).
    let lz = tool_output(
        &[("a.bin", b"some words ".repeat(10_000).as_slice())],
        "lzip",
        &["-k", "a.bin"],
        "a.bin.lz",
    );
    let report = scan(&scanner, "cut.lz", lz[..lz.len() - 30].to_vec()).await;
    assert_ne!(report.verdict, Verdict::Clean, "{report:#?}");
}

/// An RPM package holding `file` at /usr/share/payload/eicar.com, built by rpmbuild with the
/// payload compressed as `payload` says (`w9.gzdio`, `w6.xzdio`, `w19.zstdio`, `w9.bzdio`).
pub(crate) fn rpm(file: &[u8], payload: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("SOURCES")).unwrap();
    std::fs::write(dir.path().join("SOURCES/eicar.com"), file).unwrap();
    std::fs::write(
        dir.path().join("t.spec"),
        "Name: payload\nVersion: 1\nRelease: 1\nSummary: test\nLicense: none\nBuildArch: noarch\n%description\ntest\n%install\nmkdir -p %{buildroot}/usr/share/payload\ncp %{_sourcedir}/eicar.com %{buildroot}/usr/share/payload/\n%files\n/usr/share/payload/eicar.com\n",
    )
    .unwrap();
    let status = Command::new("rpmbuild")
        .arg("--quiet")
        .arg("--define")
        .arg(format!("_topdir {}", dir.path().display()))
        .arg("--define")
        .arg(format!("_binary_payload {payload}"))
        .args(["-bb", "t.spec"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("rpmbuild runs (scripts/services.sh installs rpm)");
    assert!(status.success(), "rpmbuild {payload}");
    std::fs::read(dir.path().join("RPMS/noarch/payload-1-1.noarch.rpm")).unwrap()
}

#[tokio::test]
async fn rpm_packages_are_opened_through_their_payload_whatever_compresses_it() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    for (payload, suffix) in [
        ("w9.gzdio", "gz"),
        ("w6.xzdio", "xz"),
        ("w19.zstdio", "zst"),
        ("w9.bzdio", "bz2"),
    ] {
        let report = scan(&scanner, "payload.rpm", rpm(&eicar(), payload)).await;
        assert_eq!(
            paths(&report),
            [format!(
                "payload.rpm/payload.cpio.{suffix}/payload.cpio/usr/share/payload/eicar.com"
            )],
            "{payload}: {report:#?}"
        );
    }
    let mut broken = rpm(&eicar(), "w9.gzdio");
    broken[96 + 8..96 + 12].copy_from_slice(&u32::MAX.to_be_bytes());
    let report = scan(&scanner, "broken.rpm", broken).await;
    assert_eq!(report.verdict, Verdict::Unscannable, "{report:#?}");
}
