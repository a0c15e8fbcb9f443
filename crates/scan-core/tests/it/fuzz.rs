//! Bounded mutation fuzzing of every carrier parser, run by the test command: a valid sample of
//! each format is mutated (bytes flipped, cut, spliced, sizes overwritten, format keywords
//! inserted) and scanned. A decoder panic becomes a `Failed` problem ("internal error") in the
//! report, so the assertion is that none appears; a hang, a stack overflow or an allocation
//! failure fails the run, and the input that did it is left in the temp dir.
//! `VERDICT_FUZZ_ITERATIONS` raises the count for a longer local run.

use std::time::Duration;

use scan_core::testing::{self, PdfFilter, PdfObject, eicar};
use scan_core::{Limits, Reason};

use crate::installers::{arj, gcab, gnu_cpio, iso, lzma, nsis, rpm, sfx, szdd, tool_output};
use crate::testutil::{scan, scanner_with};

/// Base64 of `data`: payloads are encoded here, at run time, never written into the source.
fn base64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Words that steer parsers into their less-travelled paths.
const TOKENS: &[&[u8]] = &[
    b"obj",
    b"endobj",
    b"stream\n",
    b"endstream",
    b"<<",
    b">>",
    b"/Filter /FlateDecode",
    b"/Filter [/ASCII85Decode /LZWDecode]",
    b"/Length 99999999",
    b"/JS (",
    b"/EF << /F 1 0 R >>",
    b"/Type /ObjStm",
    b"\n--b\n",
    b"\r\n\r\n",
    b"Content-Type: multipart/mixed; boundary=b\n",
    b"Content-Transfer-Encoding: base64\n",
    b"=\r\n",
    b"=4",
    b"begin 644 x\n",
    b"\nend\n",
    b"\\objdata ",
    b"\\bin99999 ",
    b"{\\rt",
    b"data:;base64,",
    b"%4",
    b":",
    b"\x90",
    b"\x90\x00",
    b"\xff\xff\xff\xff",
    b"\x00\x00\x00\x80",
    b"\x01Ole10Native",
    b"\x0f\x00\x11\x10",
];

fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = data.len().max(1);
        match rng.below(6) {
            0 => {
                let at = rng.below(len);
                if let Some(b) = data.get_mut(at) {
                    *b ^= 1 << rng.below(8);
                }
            }
            1 => data.truncate(rng.below(len)),
            2 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                let at = rng.below(data.len() + 1);
                data.splice(at..at, token.iter().copied());
            }
            3 => {
                let from = rng.below(len);
                let to = (from + rng.below(256)).min(data.len());
                let copy = data[from.min(data.len())..to].to_vec();
                let at = rng.below(data.len() + 1);
                data.splice(at..at, copy);
            }
            4 => {
                let at = rng.below(len);
                let values = [0u32, u32::MAX, 0x7FFF_FFFF, 0x8000_0000, 1, 4096];
                let value = values[rng.below(values.len())].to_le_bytes();
                for (i, b) in value.iter().enumerate() {
                    if let Some(slot) = data.get_mut(at + i) {
                        *slot = *b;
                    }
                }
            }
            _ => {
                let at = rng.below(len);
                let end = (at + rng.below(64)).min(data.len());
                if at < end {
                    data.drain(at..end);
                }
            }
        }
    }
    data
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let e = eicar();
    let ole = |streams: Vec<(String, Vec<u8>)>| {
        let borrowed: Vec<(&str, &[u8])> = streams
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice()))
            .collect();
        testing::ole(&borrowed)
    };
    let object = ole(vec![(
        "\u{1}Ole10Native".into(),
        testing::ole10native("p.exe", &e),
    )]);
    let mut office = testing::vba_project("Macros/", &[("Module1", "Sub A()\r\nEnd Sub\r\n")]);
    office.push((
        "PowerPoint Document".into(),
        testing::ppt_document_stream(&object),
    ));
    office.extend(testing::msg_streams(&[("a.exe", &e)]));
    let mail = format!("From: a@b\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\nhi=3D=\n there\n--b\nContent-Type: application/octet-stream; name=a.exe\nContent-Transfer-Encoding: base64\n\n{eicar64}\n--b\nContent-Type: message/rfc822\n\nFrom: c@d\nContent-Type: text/plain\n\nbegin 644 x.txt\n#0V%T\n`\nend\n--b--\n", eicar64 = base64(&e)).into_bytes();
    vec![
        ("mail.eml", mail),
        (
            "doc.pdf",
            testing::pdf(&[
                PdfObject::dict("/Type /Catalog /OpenAction 2 0 R"),
                PdfObject::dict("/S /JavaScript /JS (app.alert\\(1\\)) /Next 3 0 R"),
                PdfObject::stream("", b"hello", &[PdfFilter::Ascii85, PdfFilter::Flate]),
                PdfObject::stream(
                    "",
                    b"world world world",
                    &[PdfFilter::AsciiHex, PdfFilter::Lzw],
                ),
                PdfObject::stream("", b"aaaaaaaaaabbbbbbbbbb", &[PdfFilter::RunLength]),
                PdfObject::stream(
                    "/Type /ObjStm /N 1 /First 4",
                    b"6 0 << /JS (x) >>",
                    &[PdfFilter::Flate],
                ),
                PdfObject::dict("/Type /Filespec /F (a.exe) /EF << /F 8 0 R >>"),
                PdfObject::stream("/Type /EmbeddedFile", &e, &[PdfFilter::Flate]),
            ]),
        ),
        (
            "doc.rtf",
            testing::rtf_object("Package", &testing::package_native("a.exe", &e)),
        ),
        (
            "winmail.dat",
            testing::tnef(&[("a.exe", &e), ("b.txt", b"hello")]),
        ),
        (
            "file.hqx",
            testing::binhex("a.exe", &[e.clone(), vec![0; 40]].concat()),
        ),
        ("page.html", testing::html_data_uri("a.exe", &e)),
        ("a.rpm", rpm(&e, "w6.xzdio")),
        ("note.one", crate::documents::onenote(&[b"note", &e])),
        (
            "aes-256.pdf",
            crate::documents::qpdf_encrypted(
                &crate::documents::pdf_with_attachment_and_script(&e),
                &["--object-streams=generate"],
                &["", "owner", "256"],
            ),
        ),
        (
            "rc4-128.pdf",
            crate::documents::qpdf_encrypted(
                &crate::documents::pdf_with_attachment_and_script(&e),
                &[],
                &["", "owner", "128", "--use-aes=n"],
            ),
        ),
        (
            "a.tar.lz",
            tool_output(&[("a.tar", &testing::tar(&[("a.exe", &e)]))], "lzip", &["-k", "a.tar"], "a.tar.lz"),
        ),
        (
            "a.tar.Z",
            tool_output(&[("a.tar", &testing::tar(&[("a.exe", &e)]))], "compress", &["-f", "a.tar"], "a.tar.Z"),
        ),
        (
            "predicted.pdf",
            testing::pdf(&[
                PdfObject::dict("/Type /Catalog"),
                PdfObject::stream(
                    "/DecodeParms << /Predictor 12 /Columns 4 /Colors 1 /BitsPerComponent 8 >>",
                    &e.chunks(4).flat_map(|row| [&[2u8][..], row].concat()).collect::<Vec<u8>>(),
                    &[PdfFilter::Flate],
                ),
            ]),
        ),
        (
            "raw-object.rtf",
            [
                b"{\\rtf1{\\object{\\*\\objdata \\bin80 ".as_slice(),
                &testing::ole1_object("Package", &testing::package_native("a.exe", &e))[..80],
                b" 0102}}}",
            ]
            .concat(),
        ),
        (
            "smuggle.js",
            format!(
                "var a = atob('{}' +\n '{}');\nvar h = \"{}\";",
                &base64(&e)[..56],
                &base64(&e)[56..],
                "4d5a90000300000004000000ffff0000b800000000000000400000000000000000000000000000000000000000000000000000000000000000000000"
            )
            .into_bytes(),
        ),
        ("office.doc", ole(office)),
        (
            "a.zip",
            testing::zip(&[("a.exe", &e), ("b/c.txt", b"hello")]),
        ),
        ("a.tar.gz", testing::gzip(&testing::tar(&[("a.exe", &e)]))),
        ("a.7z", testing::sevenz(&[("a.exe", &e)], None)),
        (
            "odc.cpio",
            gnu_cpio("odc", &[("a.exe", &e), ("b.txt", b"hello")]),
        ),
        (
            "bin.cpio",
            gnu_cpio("bin", &[("a.exe", &e), ("b.txt", b"hello")]),
        ),
        (
            "a.ex_",
            szdd(&[e.clone(), b"abcabcabc".repeat(20)].concat()),
        ),
        (
            "a.lzma",
            lzma(&[e.clone(), b"abcabcabc".repeat(20)].concat()),
        ),
        ("a.iso", iso(true, &[("a.exe", &e), ("d/b.txt", b"hello")])),
        ("setup.exe", sfx(&testing::zip(&[("a.exe", &e)]))),
        (
            "z.cab",
            gcab(true, &[("a.txt", &b"abcabc".repeat(9000)), ("b.exe", &e)]),
        ),
        (
            "a1.arj",
            arj(1, &[("a.exe", &e), ("b.txt", &b"abcabc".repeat(900))]),
        ),
        (
            "a4.arj",
            arj(4, &[("a.exe", &e), ("b.txt", &b"abcabc".repeat(900))]),
        ),
        ("lzma.nsis", nsis_data("lzma", &e)),
        (
            "app.sis",
            testing::sis(&[("a.exe", &e), ("b.txt", b"hello")], false),
        ),
        ("solid.nsis", nsis_data("/SOLID zlib", &e)),
        (
            "packed.exe",
            testing::upx(&[e.clone(), vec![0x90; 3000]].concat()),
        ),
        (
            "blob.bin",
            [
                vec![7u8; 300],
                sfx(&testing::zip(&[("a.exe", &e)])),
                vec![9u8; 300],
            ]
            .concat(),
        ),
        (
            "help.chm",
            testing::chm(
                &[("/#SYSTEM", b"system")],
                &[("a.html", &b"<p>page</p>".repeat(4000)), ("b.exe", &e)],
            ),
        ),
    ]
}

/// The data block of an NSIS installer holding `payload`, without the executable stub, so
/// every mutation lands in what the NSIS reader parses.
fn nsis_data(compressor: &str, payload: &[u8]) -> Vec<u8> {
    let setup = nsis(
        compressor,
        &[("a.exe", payload), ("b.txt", &b"abcabc".repeat(900))],
    );
    let at = setup
        .windows(16)
        .position(|w| w == b"\xEF\xBE\xAD\xDENullsoftInst")
        .unwrap();
    setup[at - 4..].to_vec()
}

#[tokio::test]
async fn mutated_carriers_never_panic_a_decoder() {
    let iterations: usize = std::env::var("VERDICT_FUZZ_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000);
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_files: 2_000,
        max_scan_size: 256 << 20,
        max_scan_time: Duration::from_secs(10),
        ..Limits::default()
    };
    let scanner = scanner_with(dir.path(), limits);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut scanned = 0;
    for (name, seed) in seeds() {
        // Each input is written before it is scanned, so one that aborts the process (an
        // allocation failure is not a panic) is kept too.
        let kept = std::env::temp_dir().join(format!("verdict-fuzz-{name}"));
        for _ in 0..iterations {
            let input = mutate(&seed, &mut rng);
            std::fs::write(&kept, &input).unwrap();
            let report = scan(&scanner, name, input).await;
            let panicked = report.problems.iter().any(|p| p.reason == Reason::Failed);
            if panicked {
                panic!(
                    "{name}: a decoder failed on a mutated input (kept in {}): {:?}",
                    kept.display(),
                    report.problems
                );
            }
            scanned += 1;
        }
        std::fs::remove_file(&kept).unwrap();
    }
    assert_eq!(scanned, iterations * seeds().len());
}

#[tokio::test]
async fn mutated_rar_archives_never_fail_the_scan() {
    let samples =
        std::path::PathBuf::from(test_support::service_or_skip!("VERDICT_TEST_RAR_SAMPLES"));
    let iterations: usize = std::env::var("VERDICT_FUZZ_ITERATIONS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .map_or(300, |n| n / 3);
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner_with(dir.path(), Limits::default());
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    for name in ["rar3-subdirs.rar", "rar5-solid.rar", "rar5-psw.rar"] {
        let seed = std::fs::read(samples.join(name)).unwrap();
        for _ in 0..iterations {
            let input = mutate(&seed, &mut rng);
            let report = scan(&scanner, name, input.clone()).await;
            if report.problems.iter().any(|p| p.reason == Reason::Failed) {
                let kept = std::env::temp_dir().join(format!("verdict-fuzz-{name}"));
                std::fs::write(&kept, &input).unwrap();
                panic!(
                    "{name}: the scan failed (kept in {}): {:?}",
                    kept.display(),
                    report.problems
                );
            }
        }
    }
}

#[tokio::test]
async fn mutated_encrypted_office_documents_never_panic_a_decoder() {
    let tool = test_support::service_or_skip!("VERDICT_TEST_MSOFFCRYPTO");
    // Each intact descriptor costs two key derivations of 100,000 hashes: fewer rounds here.
    let iterations: usize = std::env::var("VERDICT_FUZZ_ITERATIONS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .map_or(60, |n| n / 10);
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner_with(dir.path(), Limits::default());
    let (workbook, _) = crate::documents::workbooks();
    let mut word = vec![0u8; 64];
    word[0..2].copy_from_slice(&0xA5ECu16.to_le_bytes());
    word[11] = 0x01;
    let seeds = [
        (
            "velvet.xlsx",
            crate::documents::office_encrypted(&tool, &workbook, "VelvetSweatshop"),
        ),
        (
            "locked.doc",
            testing::ole(&[("WordDocument", word.as_slice())]),
        ),
    ];
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for (name, seed) in seeds {
        for _ in 0..iterations {
            let input = mutate(&seed, &mut rng);
            let report = scan(&scanner, name, input.clone()).await;
            if report.problems.iter().any(|p| p.reason == Reason::Failed) {
                let kept = std::env::temp_dir().join(format!("verdict-fuzz-{name}"));
                std::fs::write(&kept, &input).unwrap();
                panic!(
                    "{name}: a decoder failed (kept in {}): {:?}",
                    kept.display(),
                    report.problems
                );
            }
        }
    }
}

/// Mutates a disk image where its structures are: most changes land in its first 64 KiB (boot
/// sector, tables, headers, root directory), the rest anywhere, so the parsers' paths are
/// walked rather than the file data.
fn mutate_image(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut data = seed.to_vec();
    if rng.below(8) == 0 {
        data.truncate(rng.below(data.len()));
        return data;
    }
    for _ in 0..1 + rng.below(4) {
        let span = if rng.below(2) == 0 {
            data.len().min(64 << 10)
        } else {
            data.len()
        };
        let at = rng.below(span);
        if rng.below(2) == 0 {
            if let Some(b) = data.get_mut(at) {
                *b ^= 1 << rng.below(8);
            }
        } else {
            let values = [0u32, u32::MAX, 0x7FFF_FFFF, 0x8000_0000, 1, 2, 0x0FFF_FFF8];
            let value = values[rng.below(values.len())].to_le_bytes();
            for (i, b) in value.iter().enumerate() {
                if let Some(slot) = data.get_mut(at + i) {
                    *slot = *b;
                }
            }
        }
    }
    data
}

/// A UDF disc mutated where its structures are: UDF tags checksum only their own 16 bytes, so a
/// descriptor's body (extents, lengths, identifiers) changed this way still passes the tag
/// check and reaches the reader's own checks.
fn mutate_udf(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut data = seed.to_vec();
    let descriptors: Vec<usize> = data
        .chunks_exact(2048)
        .enumerate()
        .filter(|(_, block)| {
            let id = u16::from_le_bytes([block[0], block[1]]);
            (1..=9).contains(&id) || (256..=266).contains(&id)
        })
        .map(|(index, _)| index * 2048)
        .collect();
    for _ in 0..1 + rng.below(3) {
        let at = descriptors[rng.below(descriptors.len())] + 16 + rng.below(2048 - 20);
        let values = [0u32, u32::MAX, 0x7FFF_FFFF, 0x8000_0000, 1, 2, 0xC000_0800];
        if rng.below(2) == 0 {
            data[at] ^= 1 << rng.below(8);
        } else {
            data[at..at + 4].copy_from_slice(&values[rng.below(values.len())].to_le_bytes());
        }
    }
    data
}

#[tokio::test]
async fn mutated_disk_images_never_panic_a_decoder() {
    let iterations: usize = std::env::var("VERDICT_FUZZ_ITERATIONS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .map_or(150, |n| n / 9);
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_files: 2_000,
        max_scan_size: 256 << 20,
        max_scan_time: Duration::from_secs(10),
        ..Limits::default()
    };
    let scanner = scanner_with(dir.path(), limits);
    let floppy = "mkfs.fat -C floppy.img 1440 >/dev/null
        mmd -i floppy.img ::/Invoice
        mcopy -i floppy.img notes.txt '::/Invoice/a long name.txt'
        mcopy -i floppy.img payload.exe ::/a.exe";
    let seeds = [
        ("floppy.img", crate::images::built(floppy, "floppy.img")),
        (
            "gpt.img",
            crate::images::built(
                "truncate -s 2M gpt.img
                sgdisk -o -n 1:2048:0 -t 1:0700 gpt.img >/dev/null
                mkfs.fat --offset 2048 gpt.img 960 >/dev/null 2>&1
                mcopy -i gpt.img@@1M payload.exe ::/a.exe",
                "gpt.img",
            ),
        ),
        (
            "d.vhd",
            crate::images::built(
                &format!(
                    "{floppy}\nqemu-img convert -q -f raw -O vpc -o subformat=dynamic floppy.img d.vhd"
                ),
                "d.vhd",
            ),
        ),
        (
            "d.vhdx",
            crate::images::built(
                &format!(
                    "{floppy}\nqemu-img convert -q -f raw -O vhdx -o block_size=1M floppy.img d.vhdx"
                ),
                "d.vhdx",
            ),
        ),
        (
            "ntfs.img",
            crate::images::built(
                "truncate -s 2M ntfs.img
                mkntfs -F -Q ntfs.img >/dev/null 2>&1
                mkdir m
                fuse_mount m ntfs-3g -o no_detach,streams_interface=windows ntfs.img m
                trap 'fuse_unmount m' EXIT
                mkdir m/d
                cp payload.exe m/d/a.exe
                cp notes.txt 'm/d/a.exe:s'",
                "ntfs.img",
            ),
        ),
        (
            "exfat.img",
            crate::images::built(
                "truncate -s 2M exfat.img
                mkfs.exfat -b 32768 exfat.img >/dev/null
                mkdir m
                dev=$(losetup -f --show exfat.img)
                fuse_mount m mount.exfat-fuse -d \"$dev\" m
                trap 'fuse_unmount m; losetup -d \"$dev\"' EXIT
                mkdir m/d
                cp payload.exe 'm/d/a long name for a file.exe'
                cp notes.txt m/b",
                "exfat.img",
            ),
        ),
        ("disc.udf", crate::images::udf_only_disc()),
        (
            "lzo.sqfs",
            crate::images::built(
                "mkdir -p r/d && seq 1 9000 | sed 's/$/ compressible/' > r/d/a && cp notes.txt r/b
                mksquashfs r lzo.sqfs -comp lzo -noappend -quiet >/dev/null",
                "lzo.sqfs",
            ),
        ),
        (
            "fs.sqfs",
            crate::images::built(
                "mkdir -p r/d && cp payload.exe r/d/a && cp notes.txt r/b
                mksquashfs r fs.sqfs -comp xz -noappend -quiet >/dev/null",
                "fs.sqfs",
            ),
        ),
    ];
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for (name, seed) in seeds {
        let kept = std::env::temp_dir().join(format!("verdict-fuzz-{name}"));
        for _ in 0..iterations {
            let input = if name.ends_with(".udf") {
                mutate_udf(&seed, &mut rng)
            } else {
                mutate_image(&seed, &mut rng)
            };
            std::fs::write(&kept, &input).unwrap();
            let report = scan(&scanner, name, input).await;
            if report.problems.iter().any(|p| p.reason == Reason::Failed) {
                panic!(
                    "{name}: a decoder failed on a mutated input (kept in {}): {:?}",
                    kept.display(),
                    report.problems
                );
            }
        }
        std::fs::remove_file(&kept).unwrap();
    }
}
