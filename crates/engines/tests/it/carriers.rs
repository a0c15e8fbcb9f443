//! The embedded engines see inside documents and mail: ClamAV's own test carriers, found with a
//! hash signature of `clam.exe` computed here, and carriers built here holding a generated
//! payload that both a hash signature and a YARA rule know.

use std::path::PathBuf;
use std::sync::Arc;

use engines::{HashEngine, YaraEngine};
use md5::{Digest, Md5};
use scan_core::testing::{self, PdfFilter, PdfObject};
use scan_core::{Engine, Verdict};

use crate::testutil::{scan, scanner, service};

/// ClamAV's shipped carriers of `clam.exe` that are opened (messages, documents, installers
/// and old archives), and the path through each at which the payload must be found.
const DOCUMENTS: &[(&str, &str)] = &[
    ("clam.mail", "clam.mail/clam.exe"),
    ("clam.exe.mbox.base64", "clam.exe.mbox.base64/clam.exe"),
    ("clam.exe.mbox.uu", "clam.exe.mbox.uu/clam.exe"),
    ("clam.exe.binhex", "clam.exe.binhex/clam.exe"),
    ("clam.exe.html", "clam.exe.html/data@9"),
    ("clam.pdf", "clam.pdf/embedded/clam.exe"),
    ("clam.exe.rtf", "clam.exe.rtf/objdata-1/clam.exe"),
    ("clam.tnef", "clam.tnef/clam.exe"),
    (
        "clam.ole.doc",
        "clam.ole.doc/ObjectPool/_1279313719/?Ole10Native/clam.exe",
    ),
    (
        "clam.ppt",
        "clam.ppt/PowerPoint Document/ExOleObjStg@4422/?Ole10Native/clam.exe",
    ),
    // Installers and old archives (issue 10 so far).
    ("clam.odc.cpio", "clam.odc.cpio/clam.exe"),
    ("clam.bin-le.cpio", "clam.bin-le.cpio/clam.exe"),
    ("clam.bin-be.cpio", "clam.bin-be.cpio/clam.exe"),
    ("clam.exe.szdd", "clam.exe.szdd/clam.exe.szdd.expanded"),
    ("clam.cab", "clam.cab/clam.exe"),
    ("clam_IScab_ext.exe", "clam_IScab_ext.exe@115236"),
    ("clam.chm", "clam.chm/clam.exe.txt"),
    ("clam.arj", "clam.arj/clam.exe"),
    ("clam.impl.zip", "clam.impl.zip/CLAM.EXE"),
    ("clam-nsis.exe", "clam-nsis.exe@46080/block-1"),
    ("clam.sis", "clam.sis/clam.exe"),
    // Archives and compressed files.
    ("clam.exe", "clam.exe"),
    ("clam.7z", "clam.7z/clam.exe"),
    ("clam.zip", "clam.zip/clam.exe"),
    ("clam.bz2.zip", "clam.bz2.zip/clam.exe"),
    ("clam.d64.zip", "clam.d64.zip/clam.exe"),
    ("clam.exe.bz2", "clam.exe.bz2/clam.exe"),
    ("clam.tar.gz", "clam.tar.gz/clam.tar/clam.exe"),
    ("clam.newc.cpio", "clam.newc.cpio/clam.exe"),
];

/// Executables of ClamAV's test set packed by packers that are not unpacked (exotic ones, and
/// yoda's crypter over UPX): scanned as they are, which finds nothing here, and never taken
/// for damaged or unscannable.
const PACKED: &[&str] = &[
    "clam-aspack.exe",
    "clam-fsg.exe",
    "clam-mew.exe",
    "clam-pespin.exe",
    "clam-petite.exe",
    "clam-upack.exe",
    "clam-wwpack.exe",
    "clam-yc.exe",
];

#[tokio::test]
async fn clamav_test_carriers_are_found_by_a_hash_signature() {
    test_support::service_or_skip!("VERDICT_TEST_CLAMAV_TESTFILES");
    let dir = PathBuf::from(service("VERDICT_TEST_CLAMAV_TESTFILES"));
    let clam = std::fs::read(dir.join("clam.exe")).expect("clamav-testfiles is installed");
    let mut hashes = HashEngine::new();
    hashes
        .add_list(
            "test.hdb",
            &format!(
                "{}:{}:Test.ClamExe\n",
                hex::encode(Md5::digest(&clam)),
                clam.len()
            ),
        )
        .unwrap();
    let scanner = scanner(vec![Arc::new(hashes) as Arc<dyn Engine>]);
    for (file, expected) in DOCUMENTS {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let report = scan(&scanner, file, bytes).await;
        assert_eq!(report.verdict, Verdict::Infected, "{file}: {report:#?}");
        let paths: Vec<&str> = report.detections.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, [*expected], "{file}");
        // The InstallShield setup also carries InstallShield cabinets, which are not opened.
        if !file.starts_with("clam_IScab") {
            assert!(report.problems.is_empty(), "{file}: {:?}", report.problems);
        }
    }
    for file in PACKED {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let report = scan(&scanner, file, bytes).await;
        assert_eq!(report.verdict, Verdict::Clean, "{file}: {report:#?}");
    }
    // Seventeen levels of tar.gz: found, and the level past the depth limit is reported.
    let nested = std::fs::read(dir.join("clam_cache_emax.tgz")).unwrap();
    let report = scan(&scanner, "clam_cache_emax.tgz", nested).await;
    assert_eq!(report.verdict, Verdict::Infected, "{report:#?}");
    assert!(
        report
            .limits_hit()
            .contains(&scan_core::Limit::MaxRecursion),
        "{report:#?}"
    );
    // Setups whose payload is in a form not unpacked (InstallShield cabinets and encoded
    // streams, AutoIt's encrypted scripts) are recognised and reported, never clean.
    for file in [
        "clam_IScab_int.exe",
        "clam_ISmsi_ext.exe",
        "clam_ISmsi_int.exe",
        "clam.ea05.exe",
        "clam.ea06.exe",
    ] {
        let setup = std::fs::read(dir.join(file)).unwrap();
        let report = scan(&scanner, file, setup).await;
        assert_eq!(report.verdict, Verdict::Unscannable, "{file}: {report:#?}");
        assert!(
            report
                .problems
                .iter()
                .all(|p| p.reason == scan_core::Reason::Unsupported),
            "{file}: {:?}",
            report.problems
        );
    }
}

/// A payload no engine knows except through the test signatures below.
fn payload() -> Vec<u8> {
    let mut payload = b"MZ generated by the carriers test ".to_vec();
    payload.extend_from_slice(b"VERDICT-CARRIER-TEST-MARKER");
    payload.extend((0..2000u32).map(|i| (i * 7 % 251) as u8));
    payload
}

#[tokio::test]
async fn yara_and_hash_signatures_both_see_the_decoded_payload() {
    let payload = payload();
    let mut hashes = HashEngine::new();
    hashes
        .add_list(
            "test.hsb",
            &format!(
                "{}:{}:Test.Payload.Hash\n",
                hex::encode(sha2::Sha256::digest(&payload)),
                payload.len()
            ),
        )
        .unwrap();
    let yara = YaraEngine::builder()
        .add_source("test.yar", "rule Test_Payload_Rule { strings: $m = \"VERDICT-CARRIER-TEST-MARKER\" condition: $m at 34 }")
        .build()
        .unwrap();
    let scanner = scanner(vec![Arc::new(hashes) as Arc<dyn Engine>, Arc::new(yara)]);
    let docm = testing::zip(&[(
        "word/vbaProject.bin",
        &testing::ole(&[(
            "ObjectPool/_1/\u{1}Ole10Native",
            &testing::ole10native("payload.exe", &payload),
        )]),
    )]);
    let html = testing::html_data_uri("payload.exe", &payload);
    let html_path = format!(
        "page.html/data@{}",
        html.windows(5).position(|w| w == b"data:").unwrap()
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "doc.pdf",
            testing::pdf_with_attachment("payload.exe", &payload),
            "doc.pdf/embedded/payload.exe",
        ),
        (
            "chain.pdf",
            testing::pdf(&[
                PdfObject::dict("/Type /Catalog"),
                PdfObject::stream("", &payload, &[PdfFilter::Ascii85, PdfFilter::Lzw]),
            ]),
            "chain.pdf/obj-2",
        ),
        (
            "doc.rtf",
            testing::rtf_object("Package", &testing::package_native("payload.exe", &payload)),
            "doc.rtf/objdata-1/payload.exe",
        ),
        (
            "winmail.dat",
            testing::tnef(&[("payload.exe", &payload)]),
            "winmail.dat/payload.exe",
        ),
        ("page.html", html.clone(), &html_path),
        (
            "doc.docm",
            docm,
            "doc.docm/word/vbaProject.bin/ObjectPool/_1/?Ole10Native/payload.exe",
        ),
    ];
    for (name, bytes, expected) in cases {
        let report = scan(&scanner, name, bytes).await;
        assert_eq!(report.verdict, Verdict::Infected, "{name}: {report:#?}");
        let mut found: Vec<(&str, &str)> = report
            .detections
            .iter()
            .map(|d| (d.path.as_str(), d.engine.as_str()))
            .collect();
        found.sort_unstable();
        assert_eq!(found, [(expected, "hashes"), (expected, "yara")], "{name}");
    }
}

#[tokio::test]
async fn a_upx_packed_executable_is_unpacked_for_the_engines() {
    test_support::service_or_skip!("VERDICT_TEST_CLAMAV_TESTFILES");
    let dir = PathBuf::from(service("VERDICT_TEST_CLAMAV_TESTFILES"));
    let packed = std::fs::read(dir.join("clam-upx.exe")).unwrap();
    // A sentence of the test program that UPX's compression hides in the packed file.
    let sentence = "This is a ClamAV test file with the embedded clam.exe";
    assert!(
        !packed
            .windows(sentence.len())
            .any(|w| w == sentence.as_bytes())
    );
    let yara = YaraEngine::builder()
        .add_source(
            "test.yar",
            &format!("rule Test_Unpacked {{ strings: $m = \"{sentence}\" condition: $m }}"),
        )
        .build()
        .unwrap();
    let scanner = scanner(vec![Arc::new(yara) as Arc<dyn Engine>]);
    let report = scan(&scanner, "clam-upx.exe", packed).await;
    let paths: Vec<&str> = report.detections.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(paths, ["clam-upx.exe/upx-unpacked"], "{report:#?}");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}
