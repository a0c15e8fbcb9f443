//! Builders for document and message carriers: PDF, RTF, TNEF, BinHex, data URIs, and the
//! objects Office hides in OLE files (packages, VBA projects, PowerPoint objects, `.msg`
//! attachments). Hand-built from the formats' specifications where no tool writes them.

use std::io::Write;

/// A PDF stream filter the builders can encode with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PdfFilter {
    /// `/FlateDecode` (zlib).
    Flate,
    /// `/LZWDecode` (early change).
    Lzw,
    /// `/RunLengthDecode`.
    RunLength,
    /// `/ASCIIHexDecode`.
    AsciiHex,
    /// `/ASCII85Decode`.
    Ascii85,
}

impl PdfFilter {
    fn name(self) -> &'static str {
        match self {
            PdfFilter::Flate => "/FlateDecode",
            PdfFilter::Lzw => "/LZWDecode",
            PdfFilter::RunLength => "/RunLengthDecode",
            PdfFilter::AsciiHex => "/ASCIIHexDecode",
            PdfFilter::Ascii85 => "/ASCII85Decode",
        }
    }

    fn encode(self, data: &[u8]) -> Vec<u8> {
        match self {
            PdfFilter::Flate => {
                let mut enc =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                enc.write_all(data).unwrap();
                enc.finish().unwrap()
            }
            PdfFilter::Lzw => {
                weezl::encode::Encoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8)
                    .encode(data)
                    .unwrap()
            }
            PdfFilter::RunLength => {
                let mut out = Vec::new();
                for chunk in data.chunks(128) {
                    out.push((chunk.len() - 1) as u8);
                    out.extend_from_slice(chunk);
                }
                out.push(128);
                out
            }
            PdfFilter::AsciiHex => {
                let mut out = hex::encode(data).into_bytes();
                out.push(b'>');
                out
            }
            PdfFilter::Ascii85 => {
                let mut out = Vec::new();
                for chunk in data.chunks(4) {
                    let mut word = [0u8; 4];
                    word[..chunk.len()].copy_from_slice(chunk);
                    let mut value = u32::from_be_bytes(word);
                    let mut digits = [0u8; 5];
                    for d in digits.iter_mut().rev() {
                        *d = (value % 85) as u8 + b'!';
                        value /= 85;
                    }
                    out.extend_from_slice(&digits[..chunk.len() + 1]);
                }
                out.extend_from_slice(b"~>");
                out
            }
        }
    }
}

/// One PDF object: its dictionary (without the stream's `/Length` and `/Filter`, which are
/// added) and, for a stream, its data and the filters to encode it with, in decoding order.
#[derive(Debug, Clone)]
pub struct PdfObject {
    /// The dictionary's entries, e.g. `/Type /EmbeddedFile`.
    pub dict: String,
    /// Stream data, encoded at build time.
    pub stream: Option<(Vec<u8>, Vec<PdfFilter>)>,
}

impl PdfObject {
    /// An object with no stream.
    pub fn dict(dict: &str) -> Self {
        PdfObject {
            dict: dict.to_owned(),
            stream: None,
        }
    }

    /// A stream object.
    pub fn stream(dict: &str, data: &[u8], filters: &[PdfFilter]) -> Self {
        PdfObject {
            dict: dict.to_owned(),
            stream: Some((data.to_vec(), filters.to_vec())),
        }
    }
}

/// A PDF of `objects`, numbered from 1, with a cross-reference table and trailer pointing at
/// object 1 as the root.
pub fn pdf(objects: &[PdfObject]) -> Vec<u8> {
    let mut out = b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        write!(out, "{} 0 obj\n<< {}", i + 1, object.dict).unwrap();
        match &object.stream {
            None => out.extend_from_slice(b" >>\nendobj\n"),
            Some((data, filters)) => {
                let mut encoded = data.clone();
                for filter in filters.iter().rev() {
                    encoded = filter.encode(&encoded);
                }
                if !filters.is_empty() {
                    let names: Vec<&str> = filters.iter().map(|f| f.name()).collect();
                    write!(out, " /Filter [{}]", names.join(" ")).unwrap();
                }
                write!(out, " /Length {} >>\nstream\n", encoded.len()).unwrap();
                out.extend_from_slice(&encoded);
                out.extend_from_slice(b"\nendstream\nendobj\n");
            }
        }
    }
    let xref = out.len();
    write!(out, "xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).unwrap();
    for offset in offsets {
        writeln!(out, "{offset:010} 00000 n ").unwrap();
    }
    write!(
        out,
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    )
    .unwrap();
    out
}

/// A PDF carrying `data` as an attached file named `name` (a file specification whose `/EF`
/// points at a deflated `/EmbeddedFile` stream), the way "attach file" in a PDF writer does.
pub fn pdf_with_attachment(name: &str, data: &[u8]) -> Vec<u8> {
    pdf(&[
        PdfObject::dict("/Type /Catalog /Pages 2 0 R /Names << /EmbeddedFiles 3 0 R >>"),
        PdfObject::dict("/Type /Pages /Kids [] /Count 0"),
        PdfObject::dict("/Names [(attachment) 4 0 R]"),
        PdfObject::dict(&format!(
            "/Type /Filespec /F ({name}) /UF ({name}) /EF << /F 5 0 R >>"
        )),
        PdfObject::stream("/Type /EmbeddedFile", data, &[PdfFilter::Flate]),
    ])
}

/// The native data of an OLE "Package" object (what Packager writes for a file dropped into a
/// document): signature, label, original path, temporary path, then the file.
pub fn package_native(name: &str, data: &[u8]) -> Vec<u8> {
    let mut out = vec![2, 0];
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.extend_from_slice(format!("C:\\Users\\test\\{name}").as_bytes());
    out.push(0);
    out.extend_from_slice(&[0, 0, 3, 0]);
    let temp = format!("C:\\Temp\\{name}\0");
    out.extend_from_slice(&(temp.len() as u32).to_le_bytes());
    out.extend_from_slice(temp.as_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    out
}

/// An `\x01Ole10Native` stream: the package's native data behind its 4-byte size.
pub fn ole10native(name: &str, data: &[u8]) -> Vec<u8> {
    let native = package_native(name, data);
    let mut out = (native.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&native);
    out
}

/// An OLE1 embedded object (MS-OLEDS 2.2.4) of class `class` with `native` data.
pub fn ole1_object(class: &str, native: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0x0501u32.to_le_bytes());
    out.extend_from_slice(&2u32.to_le_bytes());
    for field in [class, "", ""] {
        let mut value = field.as_bytes().to_vec();
        value.push(0);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(&value);
    }
    out.extend_from_slice(&(native.len() as u32).to_le_bytes());
    out.extend_from_slice(native);
    out
}

/// An RTF document with one embedded object of `class` whose native data is `native`, written
/// as `\objdata` hex the way Word does (64 hex digits a line).
pub fn rtf_object(class: &str, native: &[u8]) -> Vec<u8> {
    let object = ole1_object(class, native);
    let hex = hex::encode(object);
    let mut out =
        b"{\\rtf1\\ansi\\deff0{\\fonttbl{\\f0 Times;}}\n\\pard Invoice attached.\\par\n".to_vec();
    out.extend_from_slice(b"{\\object\\objemb{\\*\\objclass ");
    out.extend_from_slice(class.as_bytes());
    out.extend_from_slice(b"}\\objw1\\objh1{\\*\\objdata\n");
    for line in hex.as_bytes().chunks(64) {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.extend_from_slice(b"}}\n}");
    out
}

/// A TNEF stream (`winmail.dat`) with one attachment per `(name, bytes)`, the title written
/// after the data as Outlook does.
pub fn tnef(attachments: &[(&str, &[u8])]) -> Vec<u8> {
    fn record(out: &mut Vec<u8>, level: u8, id: u32, data: &[u8]) {
        out.push(level);
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        let sum = data.iter().fold(0u16, |s, &b| s.wrapping_add(u16::from(b)));
        out.extend_from_slice(&sum.to_le_bytes());
    }
    let mut out = 0x223E_9F78u32.to_le_bytes().to_vec();
    out.extend_from_slice(&0x0001u16.to_le_bytes());
    record(&mut out, 1, 0x0008_9006, &[0, 0, 1, 0]);
    record(&mut out, 1, 0x0001_8004, b"Invoice\0");
    for (name, data) in attachments {
        record(
            &mut out,
            2,
            0x0006_9002,
            &[1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0],
        );
        record(&mut out, 2, 0x0006_800F, data);
        let mut title = name.as_bytes().to_vec();
        title.push(0);
        record(&mut out, 2, 0x0001_8010, &title);
    }
    out.push(b'\n');
    out
}

/// A BinHex 4.0 file of `data` (the data fork) named `name`, with the run-length encoding
/// applied to runs as the format does. CRCs are zero: readers that scan need not check them.
pub fn binhex(name: &str, data: &[u8]) -> Vec<u8> {
    let mut raw = vec![name.len() as u8];
    raw.extend_from_slice(name.as_bytes());
    raw.push(0);
    raw.extend_from_slice(b"APPLMACS");
    raw.extend_from_slice(&[0, 0]);
    raw.extend_from_slice(&(data.len() as u32).to_be_bytes());
    raw.extend_from_slice(&0u32.to_be_bytes());
    raw.extend_from_slice(&[0, 0]);
    raw.extend_from_slice(data);
    raw.extend_from_slice(&[0, 0]);
    raw.extend_from_slice(&[0, 0]);
    // Run-length encoding: a run of 3 or more is byte, 0x90, count; 0x90 itself is 0x90 0x00.
    let mut rle = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let byte = raw[i];
        let run = raw[i..]
            .iter()
            .take(255)
            .take_while(|&&b| b == byte)
            .count();
        if byte == 0x90 {
            rle.extend_from_slice(&[0x90, 0x00]);
            i += 1;
        } else if run >= 3 {
            rle.extend_from_slice(&[byte, 0x90, run as u8]);
            i += run;
        } else {
            rle.push(byte);
            i += 1;
        }
    }
    const ALPHABET: &[u8; 64] =
        b"!\"#$%&'()*+,-012345689@ABCDEFGHIJKLMNPQRSTUVXYZ[`abcdefhijklmpqr";
    let mut text = Vec::new();
    for chunk in rle.chunks(3) {
        let mut word = [0u8; 3];
        word[..chunk.len()].copy_from_slice(chunk);
        let value = u32::from(word[0]) << 16 | u32::from(word[1]) << 8 | u32::from(word[2]);
        for k in 0..=chunk.len() {
            text.push(ALPHABET[(value >> (18 - 6 * k) & 0x3F) as usize]);
        }
    }
    let mut out = b"(This file must be converted with BinHex 4.0)\r\n:".to_vec();
    for (n, line) in text.chunks(64).enumerate() {
        if n > 0 {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(line);
    }
    out.extend_from_slice(b":\r\n");
    out
}

/// An HTML page that smuggles `data` in a base64 `data:` URI of a download link.
pub fn html_data_uri(name: &str, data: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    format!(
        "<!DOCTYPE html><html><body><p>Your invoice:</p>\n<a download=\"{name}\" href=\"data:application/octet-stream;base64,{encoded}\">download</a></body></html>\n"
    )
    .into_bytes()
}

/// MS-OVBA "compression" with literal tokens only, enough to build VBA projects for tests.
/// Chunks carry 3,584 bytes (Office fills them to 4,096 with back-references; a chunk of 4,096
/// literals would not fit the 12-bit chunk size).
pub fn ovba_literal(data: &[u8]) -> Vec<u8> {
    let mut out = vec![1u8];
    for chunk in data.chunks(3584) {
        let mut body = Vec::new();
        for group in chunk.chunks(8) {
            body.push(0);
            body.extend_from_slice(group);
        }
        let header = 0xB000u16 | (body.len() as u16 + 2 - 3);
        out.extend_from_slice(&header.to_le_bytes());
        out.extend_from_slice(&body);
    }
    out
}

/// A VBA project storage (what `vbaProject.bin` holds and `.doc`/`.xls` carry under `Macros`)
/// with one module per `(name, source)`, at `prefix` in an OLE file: `VBA/dir` (the compressed
/// module directory), `VBA/_VBA_PROJECT`, and each module stream (a performance cache of 16
/// bytes, then the compressed source).
pub fn vba_project(prefix: &str, modules: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    fn record(out: &mut Vec<u8>, id: u16, data: &[u8]) {
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
    }
    let mut dir = Vec::new();
    record(&mut dir, 0x0001, &1u32.to_le_bytes()); // PROJECTSYSKIND: Win32
    record(&mut dir, 0x0002, &0x0409u32.to_le_bytes()); // PROJECTLCID
    record(&mut dir, 0x0004, b"VBAProject"); // PROJECTNAME
    // PROJECTVERSION: the size field says 4, six bytes follow.
    dir.extend_from_slice(&0x0009u16.to_le_bytes());
    dir.extend_from_slice(&4u32.to_le_bytes());
    dir.extend_from_slice(&[1, 0, 0, 0, 0, 0]);
    record(&mut dir, 0x000F, &(modules.len() as u16).to_le_bytes()); // PROJECTMODULES
    record(&mut dir, 0x0013, &0xFFFFu16.to_le_bytes()); // PROJECTCOOKIE
    let mut streams = Vec::new();
    for (name, source) in modules {
        record(&mut dir, 0x0019, name.as_bytes()); // MODULENAME
        record(&mut dir, 0x001A, name.as_bytes()); // MODULESTREAMNAME
        let unicode: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
        record(&mut dir, 0x0032, &unicode);
        record(&mut dir, 0x0031, &16u32.to_le_bytes()); // MODULEOFFSET
        record(&mut dir, 0x0021, &[]); // MODULETYPE procedural
        record(&mut dir, 0x002B, &[]); // terminator
        let mut stream = vec![0u8; 16];
        stream.extend_from_slice(&ovba_literal(source.as_bytes()));
        streams.push((format!("{prefix}VBA/{name}"), stream));
    }
    record(&mut dir, 0x0010, &[]);
    let mut out = vec![
        (format!("{prefix}VBA/dir"), ovba_literal(&dir)),
        (
            format!("{prefix}VBA/_VBA_PROJECT"),
            vec![0xCC, 0x61, 0xFF, 0xFF, 0],
        ),
        (
            format!("{prefix}PROJECT"),
            b"ID=\"{00000000-0000-0000-0000-000000000000}\"\r\n".to_vec(),
        ),
    ];
    out.extend(streams);
    out
}

/// A PowerPoint 97-2003 `PowerPoint Document` stream holding `object` (an OLE file) as a
/// compressed `ExOleObjStg` record inside a container record, as PowerPoint embeds objects.
pub fn ppt_document_stream(object: &[u8]) -> Vec<u8> {
    let mut compressed = (object.len() as u32).to_le_bytes().to_vec();
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(object).unwrap();
    compressed.extend_from_slice(&enc.finish().unwrap());
    let mut atom = Vec::new();
    atom.extend_from_slice(&0x0010u16.to_le_bytes()); // version 0, instance 1: compressed
    atom.extend_from_slice(&0x1011u16.to_le_bytes());
    atom.extend_from_slice(&(compressed.len() as u32).to_le_bytes());
    atom.extend_from_slice(&compressed);
    let mut other = Vec::new();
    other.extend_from_slice(&0x0000u16.to_le_bytes());
    other.extend_from_slice(&0x0FBAu16.to_le_bytes()); // a CString atom
    other.extend_from_slice(&4u32.to_le_bytes());
    other.extend_from_slice(b"T\0i\0");
    let mut stream = Vec::new();
    stream.extend_from_slice(&0x000Fu16.to_le_bytes()); // a container
    stream.extend_from_slice(&0x03E8u16.to_le_bytes()); // DocumentContainer
    stream.extend_from_slice(&((other.len() + atom.len()) as u32).to_le_bytes());
    stream.extend_from_slice(&other);
    stream.extend_from_slice(&atom);
    stream
}

/// The streams of an Outlook `.msg` message with one attachment per `(name, bytes)`.
pub fn msg_streams(attachments: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
    let utf16 = |text: &str| -> Vec<u8> {
        text.encode_utf16()
            .chain([0])
            .flat_map(u16::to_le_bytes)
            .collect()
    };
    let mut streams = vec![
        ("__substg1.0_0037001F".to_owned(), utf16("Invoice")),
        ("__properties_version1.0".to_owned(), vec![0; 32]),
    ];
    for (i, (name, data)) in attachments.iter().enumerate() {
        let storage = format!("__attach_version1.0_#{i:08X}");
        streams.push((
            format!("{storage}/__substg1.0_3704001F"),
            utf16("SHORT~1.EXE"),
        ));
        streams.push((format!("{storage}/__substg1.0_3707001F"), utf16(name)));
        streams.push((format!("{storage}/__substg1.0_37010102"), data.to_vec()));
    }
    streams
}

/// A minimal Windows executable: DOS header pointing at a PE header with one 512-byte section
/// at 0x200, so its image ends at 0x400 and anything after is its overlay.
pub fn pe() -> Vec<u8> {
    let mut out = vec![0u8; 0x400];
    out[..2].copy_from_slice(b"MZ");
    out[0x3C..0x40].copy_from_slice(&0x80u32.to_le_bytes());
    out[0x80..0x84].copy_from_slice(b"PE\0\0");
    out[0x84..0x86].copy_from_slice(&0x14Cu16.to_le_bytes());
    out[0x86..0x88].copy_from_slice(&1u16.to_le_bytes());
    out[0x94..0x96].copy_from_slice(&0xE0u16.to_le_bytes());
    out[0x98..0x9A].copy_from_slice(&0x10Bu16.to_le_bytes());
    out[0x98 + 60..0x98 + 64].copy_from_slice(&0x200u32.to_le_bytes());
    let section = 0x98 + 0xE0;
    out[section..section + 5].copy_from_slice(b".text");
    out[section + 16..section + 20].copy_from_slice(&0x200u32.to_le_bytes());
    out[section + 20..section + 24].copy_from_slice(&0x200u32.to_le_bytes());
    out
}
