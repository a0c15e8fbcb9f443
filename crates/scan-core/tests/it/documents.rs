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

    let mut bin = b"{\\rtf1{\\object{\\*\\objdata \\bin68 ".to_vec();
    let at = bin.len() - 7;
    bin.extend_from_slice(&eicar());
    bin.extend_from_slice(b"}}}");
    assert_found(
        &scan(&scanner, "bin.rtf", bin).await,
        &format!("bin.rtf/bin@{at}"),
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
