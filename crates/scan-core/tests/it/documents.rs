//! Documents and the objects they carry: PDF (every filter, embedded files, scripts, object
//! streams), RTF objects, TNEF, BinHex, data URIs, and Office's packages, VBA macros,
//! PowerPoint objects and Outlook attachments. Each carrier is built here, holds the test file,
//! and the report names the path through it.

use scan_core::testing::{self, PdfFilter, PdfObject, eicar};
use scan_core::{Reason, Report, Verdict};

use crate::testutil::{paths, scan, scanner};

fn ole(streams: &[(String, Vec<u8>)]) -> Vec<u8> {
    let borrowed: Vec<(&str, &[u8])> = streams
        .iter()
        .map(|(name, data)| (name.as_str(), data.as_slice()))
        .collect();
    testing::ole(&borrowed)
}

/// EICAR as the body of a PDF literal string: its backslash and parentheses escaped.
fn pdf_literal(data: &[u8]) -> String {
    let mut out = String::new();
    for &b in data {
        if matches!(b, b'\\' | b'(' | b')') {
            out.push('\\');
        }
        out.push(char::from(b));
    }
    out
}

fn assert_found(report: &Report, expected: &str) {
    assert_eq!(report.verdict, Verdict::Infected, "{expected}: {report:#?}");
    assert_eq!(paths(report), [expected], "{report:#?}");
}

#[tokio::test]
async fn pdf_streams_are_decoded_through_every_filter_and_chain() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    use PdfFilter::*;
    let chains: [&[PdfFilter]; 9] = [
        &[],
        &[Flate],
        &[Lzw],
        &[RunLength],
        &[AsciiHex],
        &[Ascii85],
        &[Ascii85, Flate],
        &[AsciiHex, Lzw],
        &[Flate, RunLength],
    ];
    for chain in chains {
        let pdf = testing::pdf(&[
            PdfObject::dict("/Type /Catalog"),
            PdfObject::stream("", &eicar(), chain),
        ]);
        let report = scan(&scanner, "doc.pdf", pdf).await;
        assert_found(&report, "doc.pdf/obj-2");
        assert!(
            report.problems.is_empty(),
            "{chain:?}: {:?}",
            report.problems
        );
    }
}

#[tokio::test]
async fn pdf_attachments_go_by_their_file_names() {
    let dir = tempfile::tempdir().unwrap();
    let report = scan(
        &scanner(dir.path()),
        "invoice.pdf",
        testing::pdf_with_attachment("payload.exe", &eicar()),
    )
    .await;
    assert_found(&report, "invoice.pdf/embedded/payload.exe");
    assert_eq!(report.file_type, "pdf");
}

#[tokio::test]
async fn pdf_scripts_in_strings_streams_and_object_streams() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let literal = testing::pdf(&[
        PdfObject::dict("/Type /Catalog /OpenAction 2 0 R"),
        PdfObject::dict(&format!("/S /JavaScript /JS ({})", pdf_literal(&eicar()))),
    ]);
    assert_found(&scan(&scanner, "a.pdf", literal).await, "a.pdf/js-2");

    let hex = testing::pdf(&[
        PdfObject::dict("/Type /Catalog /OpenAction 2 0 R"),
        PdfObject::dict(&format!("/S /JavaScript /JS <{}>", hex::encode(eicar()))),
    ]);
    assert_found(&scan(&scanner, "h.pdf", hex).await, "h.pdf/js-2");

    let stream = testing::pdf(&[
        PdfObject::dict("/Type /Catalog /OpenAction 2 0 R"),
        PdfObject::dict("/S /JavaScript /JS 3 0 R"),
        PdfObject::stream("", &eicar(), &[PdfFilter::Flate]),
    ]);
    assert_found(&scan(&scanner, "s.pdf", stream).await, "s.pdf/js-3");

    // An object stream hides object 3 (the action with its script) inside deflated data.
    let inner = format!("<< /S /JavaScript /JS ({}) >>", pdf_literal(&eicar()));
    let header = "3 0 ";
    let objects = format!("{header}{inner}");
    let objstm = testing::pdf(&[
        PdfObject::dict("/Type /Catalog /OpenAction 3 0 R"),
        PdfObject::stream(
            &format!("/Type /ObjStm /N 1 /First {}", header.len()),
            objects.as_bytes(),
            &[PdfFilter::Flate],
        ),
    ]);
    assert_found(&scan(&scanner, "o.pdf", objstm).await, "o.pdf/obj-2/js");
}

#[tokio::test]
async fn pdf_without_xref_is_read_and_a_cut_one_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let whole = testing::pdf_with_attachment("payload.exe", &eicar());
    // No cross-reference table or trailer at all, but the end marker is there.
    let xref = whole.windows(4).rposition(|w| w == b"xref").unwrap();
    let mut no_xref = whole[..xref].to_vec();
    no_xref.extend_from_slice(b"%%EOF\n");
    let report = scan(&scanner, "noxref.pdf", no_xref).await;
    assert_found(&report, "noxref.pdf/embedded/payload.exe");
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    // Cut inside the embedded file's stream: corrupt, never clean.
    let clean = testing::pdf_with_attachment("notes.txt", &b"just words ".repeat(500));
    let stream = clean.windows(6).rposition(|w| w == b"stream").unwrap();
    let cut = scan(&scanner, "cut.pdf", clean[..stream + 40].to_vec()).await;
    assert_eq!(cut.verdict, Verdict::Unscannable, "{cut:#?}");
    assert!(cut.problems.iter().any(|p| p.reason == Reason::Corrupt));
}

#[tokio::test]
async fn pdf_that_cannot_be_decoded_is_not_clean() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let unknown = testing::pdf(&[
        PdfObject::dict("/Type /Catalog"),
        PdfObject::stream("/Filter /MadeUpDecode", b"opaque bytes here", &[]),
    ]);
    let report = scan(&scanner, "u.pdf", unknown).await;
    assert_eq!(report.verdict, Verdict::Unscannable);
    assert_eq!(report.problems[0].reason, Reason::Unsupported);
    assert!(report.problems[0].message.contains("MadeUpDecode"));

    let mut encrypted = testing::pdf(&[PdfObject::dict("/Type /Catalog")]);
    let trailer = encrypted.windows(7).rposition(|w| w == b"/Root 1").unwrap();
    encrypted.splice(
        trailer..trailer,
        b"/Encrypt << /Filter /Standard /V 2 >> ".iter().copied(),
    );
    let report = scan(&scanner, "e.pdf", encrypted).await;
    assert_eq!(report.verdict, Verdict::Unscannable);
    assert_eq!(report.problems[0].reason, Reason::Encrypted);

    let broken = testing::pdf(&[
        PdfObject::dict("/Type /Catalog"),
        PdfObject::stream("/Filter /FlateDecode", b"\x78\x9c this is not deflate", &[]),
    ]);
    let report = scan(&scanner, "b.pdf", broken).await;
    assert_eq!(report.verdict, Verdict::Unscannable);
    assert_eq!(report.problems[0].reason, Reason::Corrupt);
    assert_eq!(report.problems[0].path, "b.pdf/obj-2");
}

#[tokio::test]
async fn rtf_objects_packages_embedded_documents_and_bin_data() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let package = testing::rtf_object("Package", &testing::package_native("payload.exe", &eicar()));
    assert_found(
        &scan(&scanner, "doc.rtf", package).await,
        "doc.rtf/objdata-1/payload.exe",
    );

    // The same object with what exploit kits put between the hex digits: control words, empty
    // groups, line breaks. Word reads through them, and so must the scanner.
    let plain = testing::rtf_object("Package", &testing::package_native("payload.exe", &eicar()));
    let text = String::from_utf8(plain).unwrap();
    let (head, hex) = text.split_once("\\objdata\n").unwrap();
    let noisy: String = hex
        .char_indices()
        .map(|(i, c)| match i % 24 {
            7 => format!("{{\\*\\datastore}}{c}"),
            15 => format!("\\par \n{c}"),
            _ => c.to_string(),
        })
        .collect();
    let obfuscated = format!("{head}\\objdata\n{noisy}").into_bytes();
    assert_found(
        &scan(&scanner, "noisy.rtf", obfuscated).await,
        "noisy.rtf/objdata-1/payload.exe",
    );

    let word = ole(&[(
        "\u{1}Ole10Native".to_owned(),
        testing::ole10native("payload.exe", &eicar()),
    )]);
    let embedded = testing::rtf_object("Word.Document.8", &word);
    assert_found(
        &scan(&scanner, "doc.rtf", embedded).await,
        "doc.rtf/objdata-1.Word.Document.8/?Ole10Native/payload.exe",
    );

    // Raw \bin data outside an object (a picture's, say) is a member of its own.
    let mut bin = b"{\\rtf1{\\pict\\wmetafile8 \\bin68 ".to_vec();
    let at = bin.len() - 7;
    bin.extend_from_slice(&eicar());
    bin.extend_from_slice(b"}}");
    assert_found(
        &scan(&scanner, "bin.rtf", bin).await,
        &format!("bin.rtf/bin@{at}"),
    );

    // An object given as \binN raw bytes instead of hex (Word reads both): the OLE1 package
    // inside is opened as the hex one is.
    let object = testing::ole1_object("Package", &testing::package_native("payload.exe", &eicar()));
    let mut raw = format!(
        "{{\\rtf1{{\\object\\objemb{{\\*\\objclass Package}}{{\\*\\objdata \\bin{} ",
        object.len()
    )
    .into_bytes();
    raw.extend_from_slice(&object);
    raw.extend_from_slice(b"}}}");
    assert_found(
        &scan(&scanner, "raw.rtf", raw).await,
        "raw.rtf/objdata-1/payload.exe",
    );
}

#[tokio::test]
async fn tnef_binhex_and_data_uris_yield_named_files() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let tnef = testing::tnef(&[("readme.txt", b"hello"), ("payload.exe", &eicar())]);
    let report = scan(&scanner, "winmail.dat", tnef).await;
    assert_found(&report, "winmail.dat/payload.exe");
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    let binhex = testing::binhex("payload.exe", &[eicar(), vec![0; 300]].concat());
    let report = scan(&scanner, "file.hqx", binhex).await;
    assert_eq!(report.verdict, Verdict::Infected, "{report:#?}");
    assert_eq!(paths(&report), ["file.hqx/payload.exe"]);

    let html = testing::html_data_uri("payload.exe", &eicar());
    let at = html.windows(5).position(|w| w == b"data:").unwrap();
    assert_found(
        &scan(&scanner, "page.html", html).await,
        &format!("page.html/data@{at}"),
    );

    // SVG smuggling, with a percent-encoded payload this time.
    let percent: String = eicar().iter().map(|b| format!("%{b:02X}")).collect();
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\"><image href=\"data:application/x-msdownload,{percent}\"/></svg>"
    );
    let at = svg.find("data:").unwrap();
    assert_found(
        &scan(&scanner, "logo.svg", svg.into_bytes()).await,
        &format!("logo.svg/data@{at}"),
    );
}

#[tokio::test]
async fn office_packages_macros_slides_and_outlook_attachments() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let doc = ole(&[(
        "ObjectPool/_1279313719/\u{1}Ole10Native".to_owned(),
        testing::ole10native("payload.exe", &eicar()),
    )]);
    assert_found(
        &scan(&scanner, "doc.doc", doc).await,
        "doc.doc/ObjectPool/_1279313719/?Ole10Native/payload.exe",
    );

    let source = String::from_utf8(eicar()).unwrap();
    let macros = ole(&testing::vba_project("Macros/", &[("Module1", &source)]));
    assert_found(
        &scan(&scanner, "macro.doc", macros).await,
        "macro.doc/Macros/VBA/Module1.vba",
    );

    // OOXML: the zip holds vbaProject.bin, an OLE file, which holds the VBA project.
    let project = ole(&testing::vba_project(
        "",
        &[
            ("ThisDocument", "Sub A()\r\nEnd Sub\r\n"),
            ("Module1", &source),
        ],
    ));
    let docm = testing::zip(&[
        ("[Content_Types].xml", b"<Types/>"),
        ("word/document.xml", b"<w:document/>"),
        ("word/vbaProject.bin", &project),
    ]);
    assert_found(
        &scan(&scanner, "macro.docm", docm).await,
        "macro.docm/word/vbaProject.bin/VBA/Module1.vba",
    );

    let object = ole(&[(
        "\u{1}Ole10Native".to_owned(),
        testing::ole10native("payload.exe", &eicar()),
    )]);
    let ppt = ole(&[(
        "PowerPoint Document".to_owned(),
        testing::ppt_document_stream(&object),
    )]);
    assert_found(
        &scan(&scanner, "deck.ppt", ppt).await,
        "deck.ppt/PowerPoint Document/ExOleObjStg@20/?Ole10Native/payload.exe",
    );

    let msg = ole(&testing::msg_streams(&[
        ("notes.txt", b"hi"),
        ("invoice.exe", &eicar()),
    ]));
    assert_found(
        &scan(&scanner, "mail.msg", msg).await,
        "mail.msg/__attach_version1.0_#00000001/invoice.exe",
    );
}

#[tokio::test]
async fn damaged_tnef_and_binhex_are_corrupt_not_clean() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let tnef = testing::tnef(&[("notes.txt", &b"words ".repeat(100))]);
    let report = scan(&scanner, "winmail.dat", tnef[..tnef.len() - 200].to_vec()).await;
    assert_eq!(report.verdict, Verdict::Unscannable, "{report:#?}");
    assert!(report.problems.iter().any(|p| p.reason == Reason::Corrupt));

    let binhex = testing::binhex("notes.txt", &b"words ".repeat(100));
    let report = scan(&scanner, "notes.hqx", binhex[..binhex.len() / 2].to_vec()).await;
    assert_eq!(report.verdict, Verdict::Unscannable, "{report:#?}");
    assert!(report.problems.iter().any(|p| p.reason == Reason::Corrupt));
}

#[tokio::test]
async fn an_object_without_endobj_does_not_hide_the_objects_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut pdf =
        b"%PDF-1.7\n1 0 obj\n[ (an array that never ends)\n2 0 obj\n<< /Length 68 >>\nstream\n"
            .to_vec();
    pdf.extend_from_slice(&eicar());
    pdf.extend_from_slice(b"\nendstream\n%%EOF\n");
    let report = scan(&scanner(dir.path()), "hidden.pdf", pdf).await;
    assert_found(&report, "hidden.pdf/obj-2");
}

#[tokio::test]
async fn an_indirect_length_keeps_a_line_break_that_is_data() {
    let dir = tempfile::tempdir().unwrap();
    // The stream's data ends in CR; only the LF before `endstream` is the separator, which the
    // length in object 3 tells (cutting CR LF would lose a byte of data).
    let mut data = eicar();
    data.push(b'\r');
    let mut pdf =
        b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n2 0 obj\n<< /Length 3 0 R >>\nstream\n"
            .to_vec();
    pdf.extend_from_slice(&data);
    pdf.extend_from_slice(
        format!(
            "\nendstream\nendobj\n3 0 obj\n{}\nendobj\n%%EOF\n",
            data.len()
        )
        .as_bytes(),
    );
    let report = scan(&scanner(dir.path()), "len.pdf", pdf).await;
    assert_found(&report, "len.pdf/obj-2");
    assert_eq!(report.bytes_expanded, data.len() as u64);
}

/// `document` encrypted as Office does, with `password`, by msoffcrypto-tool (ECMA-376 Agile),
/// through its Python API (its command line cannot take an empty password).
pub(crate) fn office_encrypted(tool: &str, document: &[u8], password: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.xlsx");
    let encrypted = dir.path().join("encrypted.xlsx");
    std::fs::write(&plain, document).unwrap();
    let python = std::path::Path::new(tool).with_file_name("python");
    let run = std::process::Command::new(python)
        .arg("-c")
        .arg("import sys; from msoffcrypto.format.ooxml import OOXMLFile; OOXMLFile(open(sys.argv[1], 'rb')).encrypt(sys.argv[3], open(sys.argv[2], 'wb'))")
        .arg(&plain)
        .arg(&encrypted)
        .arg(password)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    std::fs::read(&encrypted).unwrap()
}

/// A small workbook holding EICAR as an embedded object, and the same without it; each large
/// enough for msoffcrypto-tool to encrypt.
pub(crate) fn workbooks() -> (Vec<u8>, Vec<u8>) {
    // msoffcrypto-tool writes packages under 4 KiB into a broken OLE mini stream (it cannot
    // read them back itself), and real workbooks are larger: an image of noise makes them so.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<u8> = (0..8192)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect();
    let types = br#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/></Types>"#;
    let workbook = testing::zip(&[
        ("[Content_Types].xml", types.as_slice()),
        ("xl/workbook.xml", b"<workbook/>"),
        ("xl/media/image1.bin", &noise),
        ("xl/embeddings/oleObject1.bin", &eicar()),
    ]);
    let clean_book = testing::zip(&[
        ("[Content_Types].xml", types.as_slice()),
        ("xl/workbook.xml", b"<workbook/>"),
        ("xl/media/image1.bin", &noise),
    ]);
    (workbook, clean_book)
}

#[tokio::test]
async fn encrypted_office_opens_with_the_passwords_office_tries_and_is_never_clean_otherwise() {
    let tool = test_support::service_or_skip!("VERDICT_TEST_MSOFFCRYPTO");
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let (workbook, clean_book) = workbooks();

    // Excel's "read-only recommended" password, which Excel opens with by itself.
    let velvet = office_encrypted(&tool, &workbook, "VelvetSweatshop");
    assert!(
        velvet.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]),
        "an OLE wrapper"
    );
    assert_found(
        &scan(&scanner, "invoice.xlsx", velvet).await,
        "invoice.xlsx/EncryptedPackage/xl/embeddings/oleObject1.bin",
    );
    // And the empty password, which Office tries too.
    let empty = office_encrypted(&tool, &workbook, "");
    assert_found(
        &scan(&scanner, "empty.xlsx", empty).await,
        "empty.xlsx/EncryptedPackage/xl/embeddings/oleObject1.bin",
    );
    let velvet_clean = office_encrypted(&tool, &clean_book, "VelvetSweatshop");
    let report = scan(&scanner, "fine.xlsx", velvet_clean).await;
    assert_eq!(report.verdict, Verdict::Clean, "{report:#?}");
    assert!(
        report.objects >= 4,
        "the package was opened and walked: {report:#?}"
    );

    // A real password: reported encrypted, never clean, whatever is inside.
    for (name, book) in [
        ("secret.xlsx", &workbook),
        ("secret-clean.xlsx", &clean_book),
    ] {
        let locked = office_encrypted(&tool, book, "a real password 42");
        let report = scan(&scanner, name, locked).await;
        assert_eq!(report.verdict, Verdict::Unscannable, "{name}: {report:#?}");
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.reason == Reason::Encrypted && p.path == name),
            "{report:#?}"
        );
    }
}

#[tokio::test]
async fn legacy_office_encryption_is_reported_encrypted() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    // Built by hand as the formats lay them out (no free tool writes these): Word's FIB with
    // fEncrypted (MS-DOC 2.5.2), Excel's BOF then FILEPASS (MS-XLS 2.4.117), and PowerPoint's
    // encrypted summary stream (MS-PPT 2.1.3).
    let mut fib = vec![0u8; 64];
    fib[0..2].copy_from_slice(&0xA5ECu16.to_le_bytes());
    fib[10..12].copy_from_slice(&0x0100u16.to_le_bytes());
    let record = |kind: u16, body: &[u8]| {
        let mut r = kind.to_le_bytes().to_vec();
        r.extend_from_slice(&(body.len() as u16).to_le_bytes());
        r.extend_from_slice(body);
        r
    };
    let mut workbook = record(0x0809, &[0; 16]);
    workbook.extend(record(0x002F, &[1, 0, 1, 0, 2, 0]));
    for (name, streams) in [
        ("locked.doc", vec![("WordDocument".to_owned(), fib.clone())]),
        (
            "locked.xls",
            vec![("Workbook".to_owned(), workbook.clone())],
        ),
        (
            "locked.ppt",
            vec![
                ("PowerPoint Document".to_owned(), vec![0; 64]),
                ("EncryptedSummary".to_owned(), vec![0; 64]),
            ],
        ),
    ] {
        let report = scan(&scanner, name, ole(&streams)).await;
        assert_eq!(report.verdict, Verdict::Unscannable, "{name}: {report:#?}");
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.reason == Reason::Encrypted),
            "{name}: {report:#?}"
        );
    }
    // The same documents unencrypted are clean.
    fib[11] = 0;
    let report = scan(
        &scanner,
        "open.doc",
        ole(&[("WordDocument".to_owned(), fib)]),
    )
    .await;
    assert_eq!(report.verdict, Verdict::Clean, "{report:#?}");
}

fn base64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[tokio::test]
async fn scripts_that_rebuild_files_from_strings_are_opened() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let encoded = base64(&eicar());
    let (a, b) = encoded.split_at(50);

    // HTML smuggling: atob into a Blob, no data: URI anywhere.
    let html = format!(
        "<html><body><script>\nconst bytes = atob(\"{a}\" +\n  \"{b}\");\nconst blob = new Blob([Uint8Array.from(bytes, c => c.charCodeAt(0))]);\nlocation.href = URL.createObjectURL(blob);\n</script></body></html>"
    );
    let at = html.find(&format!("\"{a}")).unwrap();
    assert_found(
        &scan(&scanner, "invoice.html", html.into_bytes()).await,
        &format!("invoice.html/script@{at}"),
    );

    // An HTA in VBScript, the string cut over lines with & _.
    let hta = format!(
        "<html><head><hta:application id=\"x\"/>\n<script language=\"VBScript\">\nDim s : s = \"{a}\" & _\r\n    \"{b}\"\r\nSet x = CreateObject(\"Msxml2.DOMDocument\")\r\n</script></head></html>"
    );
    let at = hta.find(&format!("\"{a}")).unwrap();
    assert_found(
        &scan(&scanner, "update.hta", hta.into_bytes()).await,
        &format!("update.hta/script@{at}"),
    );

    // PowerShell, hex this time.
    let hex: String = eicar().iter().map(|b| format!("{b:02x}")).collect();
    let ps1 = format!(
        "$b = [byte[]] -split ('{hex}' -replace '..', '0x$& ')\n[IO.File]::WriteAllBytes('x.exe', $b)\n"
    );
    let at = ps1.find('\'').unwrap();
    assert_found(
        &scan(&scanner, "run.ps1", ps1.into_bytes()).await,
        &format!("run.ps1/script@{at}"),
    );

    // A data URI and a script string in one page: both are opened.
    let both = format!(
        "<html><a href=\"data:application/octet-stream;base64,{encoded}\">x</a><script>var p = '{encoded}';</script></html>"
    );
    let report = scan(&scanner, "both.html", both.into_bytes()).await;
    assert_eq!(report.detections.len(), 2, "{report:#?}");

    // Ordinary script strings (ids, short tokens, prose) are no payloads, and a page of them
    // is clean.
    let page =
        b"<script>var id = 'a1b2c3'; alert(\"it's fine\"); var t = 'short';</script>".to_vec();
    let report = scan(&scanner, "page.html", page).await;
    assert_eq!(report.verdict, Verdict::Clean, "{report:#?}");
    assert_eq!(report.objects, 1, "nothing taken from it: {report:#?}");
}

/// Large scripts are spooled to a file, and the spool's writer learns on its own thread whether
/// they hold a payload literal, so identification does not read them again. A literal cut by
/// the writer's chunks (1 MiB), or a joined one whose pieces lie in different chunks, is still
/// found, in a member and in a root object alike; a large script without one stays one object.
#[tokio::test]
async fn payload_literals_in_large_spooled_scripts_are_found_across_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let encoded = base64(&eicar());
    let (a, b) = encoded.split_at(40);
    let filler = |len: usize| -> String {
        "var total = 0; // it's counted \"here\" and 'there'\n"
            .repeat(len / 48 + 1)
            .chars()
            .take(len)
            .collect()
    };
    let mut cases = Vec::new();
    for cut in [1 << 20, 2 << 20] {
        // The literal's first quote a few bytes before a chunk's end; then the joining
        // operator right at it.
        let head = filler(cut - 7);
        let at = head.len() + "x = ".len();
        let text = format!("{head}x = \"{encoded}\";\n{}", filler(300_000));
        cases.push((text, at));
        let head = filler(cut - a.len() - 3);
        let at = head.len() + "y(".len();
        let text = format!("{head}y(\"{a}\" +\n  '{b}');\n{}", filler(300_000));
        cases.push((text, at));
    }
    for (text, at) in cases {
        let bytes = text.into_bytes();
        let report = scan(&scanner, "big.zip", testing::zip(&[("big.js", &bytes)])).await;
        assert_found(&report, &format!("big.zip/big.js/script@{at}"));
        let policy = scanner.spool_policy().clone();
        let root = scan_core::ScanInput::from_reader(&bytes[..], &policy).unwrap();
        assert!(root.data().is_file_backed());
        let report = scanner
            .scan_input("big.js", std::sync::Arc::new(root))
            .await;
        assert_found(&report, &format!("big.js/script@{at}"));
    }
    let plain = filler(3 << 20).into_bytes();
    let report = scan(&scanner, "big.zip", testing::zip(&[("big.js", &plain)])).await;
    assert_eq!(report.verdict, Verdict::Clean, "{report:#?}");
    assert_eq!(report.objects, 2, "{report:#?}");
}

/// `data` PNG-predicted in rows of `columns` bytes, each row with filter `kind` (0 none, 1 sub,
/// 2 up, 3 average, 4 Paeth), as a PDF writer with `/Predictor 10+` stores it before deflating.
fn png_predicted(data: &[u8], columns: usize, kinds: &[u8]) -> Vec<u8> {
    fn paeth(a: u8, b: u8, c: u8) -> u8 {
        let p = i16::from(a) + i16::from(b) - i16::from(c);
        let (pa, pb, pc) = (
            (p - i16::from(a)).abs(),
            (p - i16::from(b)).abs(),
            (p - i16::from(c)).abs(),
        );
        if pa <= pb && pa <= pc {
            a
        } else if pb <= pc {
            b
        } else {
            c
        }
    }
    let mut out = Vec::new();
    let mut prior = vec![0u8; columns];
    for (n, chunk) in data.chunks(columns).enumerate() {
        let mut row = chunk.to_vec();
        row.resize(columns, 0);
        let kind = kinds[n % kinds.len()];
        out.push(kind);
        for i in 0..columns {
            let left = if i > 0 { row[i - 1] } else { 0 };
            let up_left = if i > 0 { prior[i - 1] } else { 0 };
            let predicted = match kind {
                0 => 0,
                1 => left,
                2 => prior[i],
                3 => ((u16::from(left) + u16::from(prior[i])) / 2) as u8,
                _ => paeth(left, prior[i], up_left),
            };
            out.push(row[i].wrapping_sub(predicted));
        }
        prior = row;
    }
    out
}

#[tokio::test]
async fn pdf_streams_with_predictors_are_decoded_to_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    // EICAR is 68 bytes: 17 rows of 4, every row filter in turn.
    let predicted = png_predicted(&eicar(), 4, &[0, 1, 2, 3, 4]);
    let pdf = testing::pdf(&[
        PdfObject::dict("/Type /Catalog /Pages 2 0 R /Names << /EmbeddedFiles 3 0 R >>"),
        PdfObject::dict("/Type /Pages /Kids [] /Count 0"),
        PdfObject::dict("/Names [(attachment) 4 0 R]"),
        PdfObject::dict("/Type /Filespec /F (payload.exe) /EF << /F 5 0 R >>"),
        PdfObject::stream(
            "/Type /EmbeddedFile /DecodeParms << /Predictor 12 /Columns 4 >>",
            &predicted,
            &[PdfFilter::Flate],
        ),
    ]);
    assert_found(
        &scan(&scanner, "predicted.pdf", pdf).await,
        "predicted.pdf/embedded/payload.exe",
    );

    // TIFF predictor 2: each byte stored as its difference from the one before in its row.
    let mut tiff = eicar();
    for row in tiff.chunks_mut(17) {
        for i in (1..row.len()).rev() {
            row[i] = row[i].wrapping_sub(row[i - 1]);
        }
    }
    let pdf = testing::pdf(&[
        PdfObject::dict("/Type /Catalog"),
        PdfObject::stream(
            "/DecodeParms << /Predictor 2 /Columns 17 >>",
            &tiff,
            &[PdfFilter::Flate],
        ),
    ]);
    let report = scan(&scanner, "tiff.pdf", pdf).await;
    assert_eq!(report.verdict, Verdict::Infected, "{report:#?}");

    // Parameters no real stream has are damage, never a silent pass.
    let pdf = testing::pdf(&[
        PdfObject::dict("/Type /Catalog"),
        PdfObject::stream(
            "/DecodeParms << /Predictor 12 /Columns 0 >>",
            b"anything",
            &[PdfFilter::Flate],
        ),
    ]);
    let report = scan(&scanner, "bad.pdf", pdf).await;
    assert_eq!(report.verdict, Verdict::Unscannable, "{report:#?}");
}

/// A OneNote section laid out as MS-ONESTORE describes it (no free tool writes one): the
/// section GUID, other structures, then one FileDataStoreObject per file (header GUID, length,
/// reserved fields, the file, padding to 8 bytes, footer GUID), then more structures.
pub(crate) fn onenote(files: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![
        0xE4, 0x52, 0x5C, 0x7B, 0x8C, 0xD8, 0xA7, 0x4D, 0xAE, 0xB1, 0x53, 0x78, 0xD0, 0x29, 0x96,
        0xD3,
    ];
    out.extend(std::iter::repeat_n(0x11u8, 1000));
    for file in files {
        out.extend_from_slice(&[
            0xE7, 0x16, 0xE3, 0xBD, 0x65, 0x26, 0x11, 0x45, 0xA4, 0xC4, 0x8D, 0x4D, 0x0B, 0x7A,
            0x9E, 0xAC,
        ]);
        out.extend_from_slice(&(file.len() as u64).to_le_bytes());
        out.extend_from_slice(&[0; 12]);
        out.extend_from_slice(file);
        out.resize(out.len().next_multiple_of(8), 0);
        out.extend_from_slice(&[
            0x22, 0xA7, 0xFB, 0x71, 0x79, 0x0F, 0x0B, 0x4A, 0xBB, 0x13, 0x89, 0x92, 0x56, 0x42,
            0x6B, 0x24,
        ]);
        out.extend(std::iter::repeat_n(0x22u8, 300));
    }
    out
}

#[tokio::test]
async fn onenote_attachments_are_taken_at_their_declared_length() {
    let dir = tempfile::tempdir().unwrap();
    // The whole-file hash engine: a member one byte too long would not match.
    let scanner = crate::testutil::scanner_of(
        dir.path(),
        crate::testutil::Whole::of(&eicar(), "EICAR-Whole"),
    );
    let section = onenote(&[b"a harmless note", &eicar()]);
    let report = scan(&scanner, "meeting.one", section.clone()).await;
    assert_eq!(paths(&report), ["meeting.one/embedded-2"], "{report:#?}");
    assert!(report.problems.is_empty(), "{report:#?}");
    // A length past the end of the section is damage, not a shorter file.
    let mut cut = section;
    let at = cut
        .windows(4)
        .rposition(|w| w == [0xE7, 0x16, 0xE3, 0xBD])
        .unwrap();
    cut[at + 16..at + 24].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let report = scan(&scanner, "cut.one", cut).await;
    assert_eq!(report.verdict, Verdict::Unscannable, "{report:#?}");
}

/// A PDF carrying `data` twice: as an attachment named payload.exe and as the script its
/// catalog runs on opening.
pub(crate) fn pdf_with_attachment_and_script(data: &[u8]) -> Vec<u8> {
    testing::pdf(&[
        PdfObject::dict(
            "/Type /Catalog /Pages 2 0 R /Names << /EmbeddedFiles 3 0 R >> /OpenAction 6 0 R",
        ),
        PdfObject::dict("/Type /Pages /Kids [] /Count 0"),
        PdfObject::dict("/Names [(attachment) 4 0 R]"),
        PdfObject::dict("/Type /Filespec /F (payload.exe) /UF (payload.exe) /EF << /F 5 0 R >>"),
        PdfObject::stream("/Type /EmbeddedFile", data, &[PdfFilter::Flate]),
        PdfObject::dict(&format!("/S /JavaScript /JS ({})", pdf_literal(data))),
    ])
}

/// `pdf` encrypted by qpdf: `encrypt` are the arguments of its `--encrypt` (user password,
/// owner password, key length, options), `general` the options before them.
pub(crate) fn qpdf_encrypted(pdf: &[u8], general: &[&str], encrypt: &[&str]) -> Vec<u8> {
    let mut args = vec!["--allow-weak-crypto"];
    args.extend_from_slice(general);
    args.push("--encrypt");
    args.extend_from_slice(encrypt);
    args.extend_from_slice(&["--", "plain.pdf", "encrypted.pdf"]);
    let encrypted =
        crate::installers::tool_output(&[("plain.pdf", pdf)], "qpdf", &args, "encrypted.pdf");
    // The test means something only if the names and scripts are no longer readable.
    assert!(encrypted.windows(8).any(|w| w == b"/Encrypt"));
    assert!(!encrypted.windows(11).any(|w| w == b"payload.exe"));
    encrypted
}

#[tokio::test]
async fn pdfs_encrypted_without_a_user_password_are_decrypted_and_examined() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let infected = pdf_with_attachment_and_script(&eicar());
    let clean = pdf_with_attachment_and_script(&b"app.alert('hello');".repeat(40));
    // Every revision of the standard handler qpdf writes: RC4 40 (R2) and 128 (R3), AES-128
    // (R4), AES-256 (R6, and Acrobat 9's R5), and AES-128 with the objects packed into object
    // streams (whose strings are not encrypted separately).
    let variants: [(&str, &[&str], &[&str]); 7] = [
        ("rc4-40", &[], &["", "owner", "40"]),
        ("rc4-128", &[], &["", "owner", "128", "--use-aes=n"]),
        ("aes-128", &[], &["", "owner", "128", "--use-aes=y"]),
        (
            "aes-128-objstm",
            &["--object-streams=generate"],
            &["", "owner", "128", "--use-aes=y"],
        ),
        (
            "aes-128-plain-metadata",
            &[],
            &["", "owner", "128", "--use-aes=y", "--cleartext-metadata"],
        ),
        ("aes-256", &[], &["", "owner", "256"]),
        ("aes-256-r5", &[], &["", "owner", "256", "--force-R5"]),
    ];
    for (label, general, encrypt) in variants {
        let name = format!("{label}.pdf");
        let report = scan(&scanner, &name, qpdf_encrypted(&infected, general, encrypt)).await;
        assert_eq!(report.verdict, Verdict::Infected, "{label}: {report:#?}");
        assert!(report.problems.is_empty(), "{label}: {report:#?}");
        let found = paths(&report);
        assert!(
            found.contains(&format!("{name}/embedded/payload.exe").as_str()),
            "{label}: the attachment, by its decrypted name: {found:?}"
        );
        assert!(
            found.iter().any(|p| p.contains("/js")),
            "{label}: the decrypted script: {found:?}"
        );

        let report = scan(&scanner, &name, qpdf_encrypted(&clean, general, encrypt)).await;
        assert_eq!(report.verdict, Verdict::Clean, "{label}: {report:#?}");
    }

    // A user password keeps the content out of reach: never clean.
    for bits in ["128", "256"] {
        let locked = qpdf_encrypted(&clean, &[], &["secret", "owner", bits]);
        let report = scan(&scanner, "locked.pdf", locked).await;
        assert_eq!(report.verdict, Verdict::Unscannable, "{bits}: {report:#?}");
        assert_eq!(report.problems[0].reason, Reason::Encrypted);
        assert!(
            report.problems[0].message.contains("user password"),
            "{}",
            report.problems[0].message
        );
    }
}
