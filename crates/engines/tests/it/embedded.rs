//! The embedded engines through the real Scanner: YARA rules, hash lists, errors.

use std::sync::Arc;

use engines::{EmbeddedConfig, HashEngine, YaraEngine, YaraError, embedded_engines};
use scan_core::testing::{self, eicar};
use scan_core::{Engine, ScanInput, Scanner, Verdict};

async fn scan(scanner: &Scanner, name: &str, bytes: Vec<u8>) -> scan_core::Report {
    scanner
        .scan_input(name, Arc::new(ScanInput::from_bytes(bytes)))
        .await
}

#[tokio::test]
async fn builtin_rules_find_eicar_and_only_eicar() {
    let scanner = Scanner::builder()
        .engine(YaraEngine::builtin().unwrap())
        .build()
        .unwrap();
    let report = scan(&scanner, "DemoFiles", testing::demo_files()).await;
    assert_eq!(report.verdict, Verdict::Infected);
    let mut paths: Vec<_> = report.detections.iter().map(|d| d.path.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "DemoFiles/eicar.com",
            "DemoFiles/eicar.com.txt",
            "DemoFiles/eicar_com.zip/eicar.com",
            "DemoFiles/eicarcom2.zip/eicar_com.zip/eicar.com",
        ]
    );
    assert!(
        report
            .detections
            .iter()
            .all(|d| d.name == "EICAR_Test_File" && d.engine == "yara")
    );

    // The EICAR definition: the string at offset 0, at most 128 bytes in all.
    let mut padded = vec![b' '; 10];
    padded.extend(eicar());
    assert_eq!(
        scan(&scanner, "shifted", padded).await.verdict,
        Verdict::Clean
    );
    let mut long = eicar();
    long.extend(vec![b' '; 100]);
    assert_eq!(scan(&scanner, "long", long).await.verdict, Verdict::Clean);
}

#[tokio::test]
async fn rule_folders_load_and_namespaced_names_are_qualified() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.yar"),
        "rule Alpha { strings: $a = \"alpha-marker\" condition: $a }",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("nested")).unwrap();
    std::fs::write(
        dir.path().join("nested/b.yara"),
        "rule Beta { strings: $b = \"beta-marker\" condition: $b }",
    )
    .unwrap();
    std::fs::write(dir.path().join("ignored.txt"), "not rules").unwrap();
    let engine = YaraEngine::builder()
        .add_path(dir.path())
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(
        engine.rule_count(),
        3,
        "two user rules plus the built-in one"
    );
    let names = |bytes: &[u8]| -> Vec<String> {
        engine
            .scan_bytes(bytes)
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect()
    };
    assert_eq!(names(b"xx alpha-marker beta-marker"), ["Alpha", "Beta"]);
    assert!(names(b"nothing here").is_empty());
}

#[test]
fn compile_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yar");
    std::fs::write(&path, "rule Broken { condition: undefined_thing }").unwrap();
    let err = YaraEngine::builder()
        .add_path(&path)
        .unwrap()
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, YaraError::Compile { origin, .. } if origin.ends_with("bad.yar")),
        "{err}"
    );
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        YaraEngine::builder().add_path(empty.path()),
        Err(YaraError::NoRules(_))
    ));
}

#[test]
fn each_thread_gets_its_own_scanner_over_shared_rules() {
    let engine = Arc::new(YaraEngine::builtin().unwrap());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let engine = Arc::clone(&engine);
            std::thread::spawn(move || {
                (0..50)
                    .filter(|_| !engine.scan_bytes(&eicar()).unwrap().is_empty())
                    .count()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 50);
    }
    // A second engine on the same thread keeps its own rules.
    let other = YaraEngine::builder()
        .add_source("x", "rule X { condition: true }")
        .build()
        .unwrap();
    assert_eq!(other.scan_bytes(b"anything").unwrap()[0].name, "X");
    assert!(engine.scan_bytes(b"anything").unwrap().is_empty());
}

#[tokio::test]
async fn hash_lists_match_members_and_report_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let payload = b"generated payload for the hash engine test".to_vec();
    let sha256 = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&payload))
    };
    let hsb = dir.path().join("t.hsb");
    std::fs::write(
        &hsb,
        format!("{sha256}:{}:Test.Payload.SHA256\n", payload.len()),
    )
    .unwrap();
    let engines = embedded_engines(&EmbeddedConfig {
        rules: vec![],
        hashes: vec![hsb],
    })
    .unwrap();
    assert_eq!(
        engines.iter().map(|e| e.name()).collect::<Vec<_>>(),
        ["yara", "hashes"]
    );
    let mut builder = Scanner::builder();
    for engine in engines {
        builder = builder.shared_engine(engine);
    }
    let scanner = builder.build().unwrap();
    let report = scan(
        &scanner,
        "p.tar.gz",
        testing::gzip(&testing::tar(&[("p.bin", &payload)])),
    )
    .await;
    assert_eq!(report.verdict, Verdict::Infected);
    assert_eq!(report.detections.len(), 1);
    assert_eq!(report.detections[0].path, "p.tar.gz/p.tar/p.bin");
    assert_eq!(report.detections[0].name, "Test.Payload.SHA256");
    assert_eq!(report.detections[0].engine, "hashes");
    let hashes = HashEngine::new();
    assert!(hashes.is_empty());
    assert_eq!(hashes.health().await.unwrap(), "0 hash signatures");
}

/// A blob holding an executable and a 7z archive, scanned with string rules (so YARA reports
/// the landmarks and the scanner searches from them) and with the built-in rule alone (so the
/// scanner searches on its own): both find the same carriers at the same offsets.
#[tokio::test]
async fn carriers_in_a_blob_are_found_with_and_without_landmarks_from_yara() {
    // The marker in the executable's one section, which its image (what is taken) holds.
    let mut pe = testing::pe();
    let marker = b"VERDICT-LANDMARK-PE-MARKER";
    pe[0x200..0x200 + marker.len()].copy_from_slice(marker);
    let payload = b"VERDICT-LANDMARK-7Z-MARKER and the rest of the payload".to_vec();
    let noise = |len: usize, seed: u32| -> Vec<u8> {
        (0..len as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8)
            .collect()
    };
    // The archive first: what follows an executable is searched as its overlay, whatever the
    // landmarks say.
    let mut blob = noise(30_000, 1);
    let sevenz_at = blob.len();
    blob.extend(testing::sevenz(&[("payload.bin", &payload)], None));
    blob.extend(noise(10_000, 2));
    let pe_at = blob.len();
    blob.extend_from_slice(&pe);
    blob.extend(noise(5_000, 3));

    let with_strings = YaraEngine::builder()
        .add_source(
            "markers.yar",
            r#"rule Pe_Marker { strings: $m = "VERDICT-LANDMARK-PE-MARKER" condition: uint16(0) == 0x5A4D and $m }
               rule Sevenz_Marker { strings: $m = "VERDICT-LANDMARK-7Z-MARKER" condition: $m at 0 }"#,
        )
        .build()
        .unwrap();
    let scanner = Scanner::builder().engine(with_strings).build().unwrap();
    let report = scan(&scanner, "blob.bin", blob.clone()).await;
    assert_eq!(report.verdict, Verdict::Infected, "{report:#?}");
    let mut found: Vec<(&str, &str)> = report
        .detections
        .iter()
        .map(|d| (d.path.as_str(), d.name.as_str()))
        .collect();
    found.sort_unstable();
    let pe_path = format!("blob.bin@{pe_at}");
    let sevenz_path = format!("blob.bin@{sevenz_at}/payload.bin");
    assert_eq!(
        found,
        [
            (sevenz_path.as_str(), "Sevenz_Marker"),
            (pe_path.as_str(), "Pe_Marker"),
        ]
    );

    // The scanner's own search, with the hash of each carrier as the signature.
    let sha256 = |data: &[u8]| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(data))
    };
    let mut hashes = HashEngine::new();
    hashes
        .add_list(
            "carriers.hsb",
            &format!(
                "{}:{}:Test.Pe\n{}:{}:Test.Payload\n",
                sha256(&pe),
                pe.len(),
                sha256(&payload),
                payload.len()
            ),
        )
        .unwrap();
    let scanner = Scanner::builder()
        .engine(YaraEngine::builtin().unwrap())
        .engine(hashes)
        .build()
        .unwrap();
    let report = scan(&scanner, "blob.bin", blob).await;
    let mut found: Vec<&str> = report.detections.iter().map(|d| d.path.as_str()).collect();
    found.sort_unstable();
    assert_eq!(
        found,
        [sevenz_path.as_str(), pe_path.as_str()],
        "{report:#?}"
    );
}
