//! PDF: every stream decoded through its filter chain (FlateDecode, LZWDecode, ASCIIHexDecode,
//! ASCII85Decode, RunLengthDecode; image codecs left as they are), embedded files yielded under
//! their names, and JavaScript (`/JS` strings and streams) yielded so rules see the decoded
//! script. Objects are found by a linear scan for `N G obj`, not through the xref table, so a
//! broken or missing xref (common in the wild, and in malicious files on purpose) hides
//! nothing; object streams are decoded and searched the same way. Files encrypted by the
//! standard security handler with an empty user password (they open without a prompt) are
//! decrypted first, by [`super::pdf_crypt`].

use std::collections::{HashMap, HashSet};
use std::io::{Cursor, Read};
use std::ops::Range;
use std::sync::LazyLock;

use memchr::memmem;

use super::Format;
use super::pdf_crypt::{Crypt, Locked, Method, Params};
use super::text::{Ascii85, Decoder, Hex};
use crate::decompress::{Codec, Counting, stream_decoder};
use crate::formats::members::{Declared, Members, Taken};
use crate::verdict::Reason;

pub(super) const FORMAT: Format = Format {
    name: "pdf",
    identify: |data| MAGIC.find(&data[..data.len().min(1024)]).is_some(),
    expand,
};

/// Built once: identification runs on every object of every scan.
static MAGIC: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(b"%PDF-"));

/// A dictionary longer than this is not a dictionary a writer produced; scanning stops there.
const MAX_DICT: usize = 1 << 20;
/// Object streams are searched in memory for scripts and file names up to this size.
const MAX_OBJECT_STREAM: u64 = 64 << 20;

/// How many `/Encrypt` entries, from the end, may name the encryption dictionary: one per
/// incremental update is what writers leave.
const MAX_ENCRYPT_ENTRIES: usize = 16;

/// One indirect object found in the file.
struct Object {
    number: u64,
    generation: u16,
    dict: Range<usize>,
    stream: Option<Range<usize>>,
}

fn expand(members: &mut Members<'_>, data: &[u8]) {
    let (mut objects, truncated) = find_objects(data);
    resolve_indirect_lengths(data, &mut objects);
    if objects.is_empty() {
        return members.corrupt("PDF", "no object could be found in it");
    }
    if truncated {
        members.corrupt("PDF", "a stream has no end (the file is cut short)");
    } else if memmem::rfind(data, b"%%EOF").is_none() {
        members.corrupt(
            "PDF",
            "it has no end-of-file marker (the file is cut short)",
        );
    }
    let crypt = match security(data, &objects) {
        Security::Plain => None,
        Security::Open(crypt) => Some(crypt),
        Security::Locked(why) => {
            members.problem(
                Reason::Encrypted,
                format!(
                    "the PDF is encrypted {why}, so its streams could not be decoded and examined"
                ),
            );
            None
        }
    };
    let mut names = Names::default();
    for object in &objects {
        names.learn(
            &data[object.dict.clone()],
            Strings::of(crypt.as_ref(), object),
        );
    }
    // Object streams go first: the file specifications packed in them name the attachments
    // (streams themselves are never packed).
    let packed = |o: &&Object| o.stream.is_some() && is_object_stream(&data[o.dict.clone()]);
    let order = objects
        .iter()
        .filter(packed)
        .chain(objects.iter().filter(|o| !packed(o)));
    for object in order {
        if members.stopped() {
            return;
        }
        let dict = &data[object.dict.clone()];
        let strings = Strings::of(crypt.as_ref(), object);
        scripts(members, dict, &format!("js-{}", object.number), strings);
        let Some(stream) = &object.stream else {
            continue;
        };
        let name = names.name(object.number);
        let raw = &data[stream.clone()];
        stream_member(members, &name, dict, raw, strings, &mut names);
    }
}

/// A deflated stream decoded in one call from the file's bytes into a buffer that grows as it
/// fills (no zeroing, no intermediate copies), the way the streaming decoder would read it:
/// with the zlib header and checksum when the stream has one, raw deflate when it does not.
/// Only a stream that ends cleanly within `room` bytes is taken; anything else is `None`, and
/// the streaming reader, which enforces the ratio as it goes and says what is wrong, reads it
/// instead. So a bomb costs at most `room` bytes here before it meets the limits.
fn inflate_whole(raw: &[u8], zlib: bool, room: u64) -> Option<Vec<u8>> {
    let room = usize::try_from(room).ok()?;
    let mut decoded = Vec::new();
    decoded
        .try_reserve_exact(raw.len().saturating_mul(4).max(4 << 10).min(room.max(1)))
        .ok()?;
    let mut inflater = flate2::Decompress::new(zlib);
    loop {
        let read = usize::try_from(inflater.total_in()).ok()?;
        let status = inflater
            .decompress_vec(&raw[read..], &mut decoded, flate2::FlushDecompress::Finish)
            .ok()?;
        match status {
            flate2::Status::StreamEnd => return Some(decoded),
            _ if decoded.len() < decoded.capacity() => return None,
            _ if decoded.len() >= room => return None,
            _ => {
                let more = decoded.len().min(room - decoded.len()).max(1);
                decoded.try_reserve_exact(more).ok()?;
            }
        }
    }
}

fn is_object_stream(dict: &[u8]) -> bool {
    memmem::find(dict, b"/ObjStm").is_some()
}

/// Whether (and how) the file is encrypted.
enum Security {
    Plain,
    Open(Crypt),
    /// Encrypted in a way that cannot be opened here; says how, to finish "encrypted …".
    Locked(String),
}

/// Finds the encryption dictionary the newest trailer names and derives the file key from the
/// empty user password.
fn security(data: &[u8], objects: &[Object]) -> Security {
    // Most files have no `/Encrypt` at all: one forward search (vectorised; the reverse search
    // below is not) answers them at a fraction of the cost.
    if memmem::find(data, b"/Encrypt").is_none() {
        return Security::Plain;
    }
    let Some(dict) = encryption_dictionary(data, objects) else {
        return if trailer_encrypts(data) {
            Security::Locked("(its encryption dictionary could not be found)".into())
        } else {
            Security::Plain
        };
    };
    let params = match encryption_params(dict, first_id(data)) {
        Ok(params) => params,
        Err(why) => return Security::Locked(why),
    };
    match Crypt::open(&params) {
        Ok(crypt) => Security::Open(crypt),
        Err(Locked::Password) => Security::Locked("with a user password".into()),
        Err(Locked::Unsupported(what)) => {
            Security::Locked(format!("with {what}, which is not supported"))
        }
        Err(Locked::Damaged(what)) => {
            Security::Locked(format!("but its encryption dictionary is damaged ({what})"))
        }
    }
}

/// The dictionary the last `/Encrypt` entry names: written inline or as a reference to an
/// object (its last definition, as an incremental update would leave it). Only the last
/// [`MAX_ENCRYPT_ENTRIES`] entries are tried, so a file repeating the key cannot make the
/// search quadratic; if none of them names a dictionary, the file stays locked.
fn encryption_dictionary<'a>(data: &'a [u8], objects: &[Object]) -> Option<&'a [u8]> {
    let mut last_definitions: Option<HashMap<u64, &Object>> = None;
    memmem::rfind_iter(data, b"/Encrypt")
        .take(MAX_ENCRYPT_ENTRIES)
        .find_map(|at| {
            let value = &data[at + 8..];
            if let Some(number) = reference_at(value) {
                let defined = last_definitions
                    .get_or_insert_with(|| objects.iter().map(|o| (o.number, o)).collect());
                let object = defined.get(&number)?;
                let dict = &data[object.dict.clone()];
                return dict.starts_with(b"<<").then_some(dict);
            }
            let value = skip_space(value);
            if !value.starts_with(b"<<") {
                return None;
            }
            dictionary_end(value).map(|end| &value[..end])
        })
}

/// The first string of the last `/ID [<…> <…>]` (a trailer's or a cross-reference stream's).
fn first_id(data: &[u8]) -> Vec<u8> {
    memmem::rfind_iter(data, b"/ID")
        .filter_map(|at| skip_space(&data[at + 3..]).strip_prefix(b"["))
        .take(MAX_ENCRYPT_ENTRIES)
        .find_map(|value| string_at(skip_space(value)))
        .unwrap_or_default()
}

/// What the encryption dictionary declares, or why it cannot be used.
fn encryption_params(dict: &[u8], id: Vec<u8>) -> Result<Params, String> {
    let handler = entry_name(dict, b"Filter").unwrap_or_default();
    if handler != "Standard" {
        return Err(format!(
            "by the {handler} security handler, which is not supported (only the standard one is)"
        ));
    }
    let version = entry_int(dict, b"V").unwrap_or(0);
    let revision = entry_int(dict, b"R").unwrap_or(0);
    let length = entry_int(dict, b"Length");
    let crypt_filter = |filter: &str| -> Result<(Method, Option<i64>), String> {
        if filter == "Identity" {
            return Ok((Method::Identity, None));
        }
        let filters = entry(dict, b"CF").ok_or("it names crypt filters but has no /CF")?;
        let filter = entry(filters, filter.as_bytes())
            .ok_or_else(|| format!("its crypt filter {filter} is not defined"))?;
        let cfm = entry_name(filter, b"CFM").unwrap_or_else(|| "None".into());
        let method = Method::named(&cfm)
            .ok_or_else(|| format!("its crypt filter method {cfm} is not supported"))?;
        Ok((method, entry_int(filter, b"Length")))
    };
    let (streams, strings, key_bits) = match version {
        1 => (Method::Rc4, Method::Rc4, 40),
        2 => (Method::Rc4, Method::Rc4, length.unwrap_or(40)),
        4 | 5 => {
            let stm = entry_name(dict, b"StmF").unwrap_or_else(|| "Identity".into());
            let str_ = entry_name(dict, b"StrF").unwrap_or_else(|| "Identity".into());
            let (streams, stream_len) = crypt_filter(&stm).map_err(damaged)?;
            let (strings, _) = crypt_filter(&str_).map_err(damaged)?;
            // Writers give a crypt filter's length in bytes or in bits.
            let bits = length
                .or(stream_len.map(|l| if l < 40 { l * 8 } else { l }))
                .unwrap_or(128);
            (streams, strings, if version == 5 { 256 } else { bits })
        }
        other => return Err(format!("with algorithm /V {other}, which is not supported")),
    };
    Ok(Params {
        revision: revision.unsigned_abs(),
        key_bits: key_bits.unsigned_abs(),
        owner: entry_string(dict, b"O").unwrap_or_default(),
        user: entry_string(dict, b"U").unwrap_or_default(),
        user_key: entry_string(dict, b"UE").unwrap_or_default(),
        // `/P` is a 32-bit field written as a signed (or, by some, unsigned) integer.
        permissions: entry_int(dict, b"P").unwrap_or(-1) as i32,
        encrypt_metadata: !matches!(entry(dict, b"EncryptMetadata"), Some(v) if v.starts_with(b"false")),
        id,
        streams,
        strings,
    })
}

fn damaged(what: String) -> String {
    format!("but its encryption dictionary is damaged ({what})")
}

/// How the strings of one object are read: decrypted with its key when the file is encrypted.
#[derive(Clone, Copy)]
struct Strings<'a> {
    crypt: Option<&'a Crypt>,
    number: u64,
    generation: u16,
}

impl<'a> Strings<'a> {
    /// Strings inside an object stream: the stream was decrypted whole, they are plain.
    const PLAIN: Strings<'static> = Strings {
        crypt: None,
        number: 0,
        generation: 0,
    };

    fn of(crypt: Option<&'a Crypt>, object: &Object) -> Self {
        Self {
            crypt,
            number: object.number,
            generation: object.generation,
        }
    }

    fn decode(self, raw: Vec<u8>) -> Vec<u8> {
        match self.crypt {
            Some(crypt) => crypt.string(self.number, self.generation, &raw),
            None => raw,
        }
    }
}

/// Names of streams worth more than `obj-N`: embedded files by their file names, scripts.
#[derive(Default)]
struct Names {
    files: HashMap<u64, String>,
    scripts: HashSet<u64>,
}

impl Names {
    /// Learns from a dictionary (a file specification's `/EF`, a `/JS` reference).
    fn learn(&mut self, dict: &[u8], strings: Strings<'_>) {
        if let Some(ef) = memmem::find(dict, b"/EF") {
            let file_name =
                string_value(dict, b"/UF", strings).or_else(|| string_value(dict, b"/F", strings));
            let refs = &dict[ef + 3..];
            // `/EF << /F 12 0 R /UF 12 0 R >>`: the references inside the next dictionary.
            let end = memmem::find(refs, b">>").unwrap_or(refs.len());
            for number in references(&refs[..end]) {
                let name = file_name
                    .clone()
                    .unwrap_or_else(|| format!("file-{number}"));
                self.files.insert(number, name);
            }
        }
        for at in memmem::find_iter(dict, b"/JS") {
            if let Some(number) = reference_at(&dict[at + 3..]) {
                self.scripts.insert(number);
            }
        }
    }

    /// Learns from each object packed in a decoded object stream (`/N` objects, their numbers
    /// and offsets from `/First` in the header).
    fn learn_packed(&mut self, dict: &[u8], bytes: &[u8]) {
        let (Some(count), Some(first)) = (int_value(dict, b"/N"), int_value(dict, b"/First"))
        else {
            return;
        };
        let Some(body) = usize::try_from(first).ok().and_then(|f| bytes.get(f..)) else {
            return;
        };
        let header = &bytes[..bytes.len() - body.len()];
        let offsets: Vec<usize> = header
            .split(|b| b.is_ascii_whitespace())
            .filter(|t| !t.is_empty())
            .skip(1)
            .step_by(2)
            .take(usize::try_from(count).unwrap_or(usize::MAX))
            .map_while(|t| std::str::from_utf8(t).ok()?.parse().ok())
            .collect();
        for (i, &start) in offsets.iter().enumerate() {
            let end = offsets.get(i + 1).copied().unwrap_or(body.len());
            if let Some(object) = body.get(start..end.max(start)) {
                self.learn(object, Strings::PLAIN);
            }
        }
    }

    fn name(&self, number: u64) -> String {
        if let Some(file) = self.files.get(&number) {
            format!("embedded/{file}")
        } else if self.scripts.contains(&number) {
            format!("js-{number}")
        } else {
            format!("obj-{number}")
        }
    }
}

/// Decodes a stream (decrypted first when the file is encrypted) through its filters and
/// yields it; object streams are also searched for the scripts they hold.
fn stream_member(
    members: &mut Members<'_>,
    name: &str,
    dict: &[u8],
    raw: &[u8],
    strings: Strings<'_>,
    names: &mut Names,
) {
    if raw.is_empty() {
        return;
    }
    let mut filters = filters(dict);
    // A stream may name its own crypt filter first: without a name (or `/Identity`) it is
    // stored plain in an encrypted file.
    let own_crypt_filter = filters.first().is_some_and(|f| f == "Crypt");
    let plain_by_its_filter = own_crypt_filter
        && entry(dict, b"DecodeParms")
            .and_then(|parms| entry_name(parms, b"Name"))
            .is_none_or(|name| name == "Identity");
    if own_crypt_filter {
        filters.remove(0);
    }
    let crypt = strings.crypt.filter(|crypt| {
        crypt.encrypts_streams() && !plain_by_its_filter && !stored_plain(dict, crypt)
    });
    let mut zlib = zlib_header(raw);
    // The common case, a plain stream deflated once with no predictor, is decoded straight
    // from the file's bytes when it fits in memory.
    if crypt.is_none()
        && matches!(filters.as_slice(), [f] if f == "FlateDecode" || f == "Fl")
        && int_value(dict, b"/Predictor").is_none_or(|p| p < 2)
        && !is_object_stream(dict)
        && let Some(decoded) = inflate_whole(raw, zlib, members.memory_room())
    {
        let declared = Declared {
            size: None,
            compressed: Some(raw.len() as u64),
        };
        let child = members.child(name);
        if members.admit(&child, declared) {
            members.decoded(&child, decoded, raw.len() as u64);
        }
        return;
    }
    let (counting, consumed) = Counting::new(Cursor::new(raw));
    let mut reader: Box<dyn Read + '_> = Box::new(counting);
    if let Some(crypt) = crypt {
        let decrypted = crypt.stream(strings.number, strings.generation, reader);
        let mut buffered = std::io::BufReader::with_capacity(64 << 10, decrypted);
        zlib = match std::io::BufRead::fill_buf(&mut buffered) {
            Ok(head) => zlib_header(head),
            Err(e) => return members.corrupt("PDF stream", e),
        };
        reader = Box::new(buffered);
    }
    let early_change = !matches!(int_value(dict, b"/EarlyChange"), Some(0));
    let mut compressed = false;
    let mut image = false;
    for (index, filter) in filters.iter().enumerate() {
        reader = match filter.as_str() {
            "FlateDecode" | "Fl" => {
                compressed = true;
                // Some writers store raw deflate without the zlib header; readers accept it.
                let codec = if index == 0 && !zlib {
                    Codec::Deflate
                } else {
                    Codec::Zlib
                };
                match stream_decoder(codec, reader) {
                    Ok(r) => r,
                    Err(e) => return members.corrupt("PDF stream", e),
                }
            }
            "LZWDecode" | "LZW" => {
                compressed = true;
                match stream_decoder(Codec::Lzw { early_change }, reader) {
                    Ok(r) => r,
                    Err(e) => return members.corrupt("PDF stream", e),
                }
            }
            "RunLengthDecode" | "RL" => {
                compressed = true;
                match stream_decoder(Codec::RunLength, reader) {
                    Ok(r) => r,
                    Err(e) => return members.corrupt("PDF stream", e),
                }
            }
            "ASCIIHexDecode" | "AHx" => Box::new(Decoder::new(reader, Hex::default())),
            "ASCII85Decode" | "A85" => Box::new(Decoder::new(reader, Ascii85::default())),
            // Image codecs: the data stays as it is (a JPEG is scanned as a JPEG).
            "DCTDecode" | "DCT" | "JPXDecode" | "CCITTFaxDecode" | "CCF" | "JBIG2Decode" => {
                image = true;
                break;
            }
            other => {
                let child = members.child(name);
                let message = format!(
                    "the PDF stream uses the {other} filter, which is not supported, so it was not examined"
                );
                return members.member_problem(&child, Reason::Unsupported, message);
            }
        };
    }
    // Predictors (PNG rows, TIFF differencing) are undone after the filters; any stream may
    // have one, not only images.
    if let Some(predictor) = int_value(dict, b"/Predictor").filter(|&p| p >= 2 && !image) {
        let prediction = crate::decompress::Prediction {
            predictor: u32::try_from(predictor).unwrap_or(u32::MAX),
            colors: int_value(dict, b"/Colors").map_or(1, |v| u32::try_from(v).unwrap_or(0)),
            bits: int_value(dict, b"/BitsPerComponent")
                .map_or(8, |v| u32::try_from(v).unwrap_or(0)),
            columns: int_value(dict, b"/Columns").map_or(1, |v| u32::try_from(v).unwrap_or(0)),
        };
        reader = match crate::decompress::Predicted::new(reader, prediction) {
            Ok(predicted) => Box::new(predicted),
            Err(e) => return members.corrupt("PDF stream", e),
        };
    }
    let declared = Declared {
        size: None,
        compressed: compressed.then_some(raw.len() as u64),
    };
    let child = members.child(name);
    if !members.admit(&child, declared) {
        return;
    }
    let consumed = compressed.then_some(consumed);
    if !is_object_stream(dict) {
        members.read(&child, &mut reader, consumed);
        return;
    }
    let Ok(decoded) = members.spool(&child, &mut reader, consumed) else {
        return;
    };
    members.walk(&child, &decoded);
    let bytes = decoded.as_slice();
    if (bytes.len() as u64) <= MAX_OBJECT_STREAM {
        // Objects inside an object stream have no `obj` keywords; their scripts are what the
        // stream may hide.
        scripts(members, bytes, &format!("{name}/js"), Strings::PLAIN);
        names.learn_packed(dict, bytes);
    }
}

/// Whether an encrypted file keeps this stream plain: cross-reference streams always, and
/// metadata when the dictionary says `/EncryptMetadata false`.
fn stored_plain(dict: &[u8], crypt: &Crypt) -> bool {
    match entry_name(dict, b"Type").as_deref() {
        Some("XRef") => true,
        Some("Metadata") => !crypt.encrypts_metadata(),
        _ => false,
    }
}

/// Yields the literal or hex strings of `/JS` entries in `dict` as members named `name`.
fn scripts(members: &mut Members<'_>, dict: &[u8], name: &str, strings: Strings<'_>) {
    let finder = memmem::Finder::new(b"/JS");
    let mut from = 0;
    while let Some(found) = finder.find(&dict[from..]) {
        let at = from + found + 3;
        let value = skip_space(&dict[at..]);
        let value_at = dict.len() - value.len();
        // Each value is read once and the search goes on after it, so the walk stays linear
        // however many `/JS` keys a hostile dictionary repeats.
        let (script, used) = match value.first() {
            Some(b'(') => (literal_string(&value[1..]), 1 + literal_len(&value[1..])),
            Some(b'<') if value.get(1) != Some(&b'<') => {
                let end = memchr::memchr(b'>', value).map_or(value.len(), |e| e + 1);
                let mut out = Vec::new();
                let _ = Decoder::new(&value[1..end], Hex::default()).read_to_end(&mut out);
                (out, end)
            }
            _ => {
                from = at;
                continue;
            }
        };
        from = value_at + used.max(1);
        if members.stopped() {
            return;
        }
        let script = strings.decode(script);
        if !script.is_empty() && members.bytes(name, &script) == Taken::Broken {
            return;
        }
    }
}

/// Whether `data` starts with a valid zlib header (RFC 1950: deflate, and a check sum).
fn zlib_header(data: &[u8]) -> bool {
    match data {
        [cmf, flg, ..] => cmf & 0x0F == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0,
        _ => false,
    }
}

/// The filter names of a stream dictionary, in the order they apply.
fn filters(dict: &[u8]) -> Vec<String> {
    let Some(at) = memmem::find(dict, b"/Filter") else {
        return Vec::new();
    };
    let value = skip_space(&dict[at + 7..]);
    let names: &[u8] = if value.first() == Some(&b'[') {
        let end = memchr::memchr(b']', value).unwrap_or(value.len());
        &value[1..end]
    } else {
        let end = value
            .iter()
            .skip(1)
            .position(|&b| is_delimiter(b) || b.is_ascii_whitespace())
            .map_or(value.len(), |p| p + 1);
        &value[..end]
    };
    names
        .split(|&b| b == b'/')
        .map(|n| String::from_utf8_lossy(n).trim().to_owned())
        .filter(|n| !n.is_empty())
        .collect()
}

/// Finds every `N G obj` in order, with its dictionary and stream. Stream data is skipped, not
/// searched, so an object hidden in binary data is not invented. Returns whether a stream ran
/// off the end of the file.
fn find_objects(data: &[u8]) -> (Vec<Object>, bool) {
    let finder = memmem::Finder::new(b"obj");
    let mut objects = Vec::new();
    let mut at = 0;
    let mut truncated = false;
    while let Some(found) = finder.find(&data[at..]) {
        let keyword = at + found;
        at = keyword + 3;
        let Some((number, generation)) = object_id(data, keyword) else {
            continue;
        };
        if data
            .get(keyword + 3)
            .is_some_and(|&b| !is_delimiter(b) && !b.is_ascii_whitespace())
        {
            continue;
        }
        let body = keyword + 3;
        let start = body + (data.len() - body - skip_space(&data[body..]).len());
        let dict = if data[start..].starts_with(b"<<") {
            match dictionary_end(&data[start..]) {
                Some(end) => start..start + end,
                None => {
                    // Unterminated: keep what follows searchable rather than skip it.
                    objects.push(Object {
                        number,
                        generation,
                        dict: start..start + 2,
                        stream: None,
                    });
                    continue;
                }
            }
        } else {
            // Not a dictionary (a number, a string, an array): its value runs to `endobj`, but
            // the search for objects goes on from here, so an object with no `endobj` cannot
            // swallow the ones after it.
            let limit = data.len().min(start.saturating_add(MAX_DICT));
            // Up to the next `obj`: this one's `endobj`, or the next object's keyword.
            let end = finder.find(&data[start..limit]).map_or(limit, |e| {
                let end = start + e;
                if data[..end].ends_with(b"end") {
                    end - 3
                } else {
                    end
                }
            });
            objects.push(Object {
                number,
                generation,
                dict: start..end,
                stream: None,
            });
            continue;
        };
        at = at.max(dict.end);
        let after = skip_space(&data[dict.end..]);
        let mut stream = None;
        if after.starts_with(b"stream") {
            let mut begin = data.len() - after.len() + 6;
            if data[begin..].starts_with(b"\r\n") {
                begin += 2;
            } else if data[begin..].starts_with(b"\n") || data[begin..].starts_with(b"\r") {
                begin += 1;
            }
            let declared = int_value(&data[dict.clone()], b"/Length")
                .filter(|_| !length_is_reference(&data[dict.clone()]))
                .and_then(|len| usize::try_from(len).ok())
                .and_then(|len| begin.checked_add(len))
                .filter(|&end| {
                    end <= data.len() && skip_space(&data[end..]).starts_with(b"endstream")
                });
            let end = declared.or_else(|| {
                memmem::find(&data[begin..], b"endstream").map(|e| {
                    let mut end = begin + e;
                    if data[..end].ends_with(b"\r\n") {
                        end -= 2;
                    } else if data[..end].ends_with(b"\n") || data[..end].ends_with(b"\r") {
                        end -= 1;
                    }
                    end.max(begin)
                })
            });
            match end {
                Some(end) => {
                    stream = Some(begin..end);
                    at = at.max(end);
                }
                None => {
                    truncated = true;
                    stream = Some(begin..data.len());
                    at = data.len();
                }
            }
        }
        objects.push(Object {
            number,
            generation,
            dict,
            stream,
        });
    }
    (objects, truncated)
}

/// Streams whose `/Length` is a reference (`/Length 12 0 R`, as writers that stream their
/// output do) were cut at `endstream` less the line break before it; but a line break may be
/// the data's own last byte. Where the referenced object holds a length that ends the data
/// right before (space and) `endstream`, that length wins.
fn resolve_indirect_lengths(data: &[u8], objects: &mut [Object]) {
    let values: HashMap<u64, usize> = objects
        .iter()
        .filter(|o| o.stream.is_none())
        .filter_map(|o| {
            let value = skip_space(&data[o.dict.clone()]);
            let digits = value.iter().take_while(|b| b.is_ascii_digit()).count();
            let number = std::str::from_utf8(&value[..digits]).ok()?.parse().ok()?;
            Some((o.number, number))
        })
        .collect();
    for object in objects.iter_mut() {
        let Some(stream) = &object.stream else {
            continue;
        };
        let dict = &data[object.dict.clone()];
        let Some(at) = memmem::find(dict, b"/Length") else {
            continue;
        };
        let Some(len) = reference_at(&dict[at + 7..]).and_then(|n| values.get(&n)) else {
            continue;
        };
        let end = stream.start.saturating_add(*len);
        if end <= data.len() && skip_space(&data[end..]).starts_with(b"endstream") {
            object.stream = Some(stream.start..end);
        }
    }
}

/// The object number and generation of `N G obj` when `obj` at `keyword` is preceded by two
/// integers, each after white space.
fn object_id(data: &[u8], keyword: usize) -> Option<(u64, u16)> {
    let before = &data[..keyword];
    if !before.last().is_some_and(u8::is_ascii_whitespace) {
        return None;
    }
    let (generation, rest) = trailing_integer(before, 5)?;
    if !rest.last().is_some_and(u8::is_ascii_whitespace) {
        return None;
    }
    let generation = u16::try_from(generation).unwrap_or(u16::MAX);
    trailing_integer(rest, 10).map(|(number, _)| (number, generation))
}

/// The integer of at most `max_digits` digits that ends `data` (white space after it
/// allowed), and what comes before it.
fn trailing_integer(data: &[u8], max_digits: usize) -> Option<(u64, &[u8])> {
    let data = data.trim_ascii_end();
    let digits = data.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > max_digits {
        return None;
    }
    let (rest, number) = data.split_at(data.len() - digits);
    Some((std::str::from_utf8(number).ok()?.parse().ok()?, rest))
}

/// The length of the dictionary at the start of `data` (`<<` ... `>>`, nested, strings and
/// comments skipped), if it ends within [`MAX_DICT`].
fn dictionary_end(data: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = 0;
    let limit = data.len().min(MAX_DICT);
    while i < limit {
        match data[i] {
            b'<' if data.get(i + 1) == Some(&b'<') => {
                depth += 1;
                i += 2;
            }
            b'>' if data.get(i + 1) == Some(&b'>') => {
                depth = depth.saturating_sub(1);
                i += 2;
                if depth == 0 {
                    return Some(i);
                }
            }
            b'(' => i += 1 + literal_len(&data[i + 1..]),
            b'<' => i += memchr::memchr(b'>', &data[i..]).map_or(limit, |e| e + 1),
            b'%' => i += memchr::memchr2(b'\n', b'\r', &data[i..]).unwrap_or(limit),
            _ => i += 1,
        }
    }
    None
}

/// How many bytes a literal string's body takes, its closing parenthesis included.
fn literal_len(data: &[u8]) -> usize {
    let mut depth = 1usize;
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            b'\\' => i += 1,
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    data.len()
}

/// Decodes a literal string's body (after its `(`): escapes, octal codes, line continuations.
fn literal_string(data: &[u8]) -> Vec<u8> {
    let body = &data[..literal_len(data).saturating_sub(1).min(data.len())];
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let Some(&e) = body.get(i) else { break };
        i += 1;
        match e {
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'\r' => {
                if body.get(i) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'\n' => {}
            b'0'..=b'7' => {
                let mut value = u32::from(e - b'0');
                for _ in 0..2 {
                    match body.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(value as u8);
            }
            other => out.push(other),
        }
    }
    out
}

/// The string value of `key` in `dict`, literal or hex, as text.
fn string_value(dict: &[u8], key: &[u8], strings: Strings<'_>) -> Option<String> {
    let mut from = 0;
    while let Some(found) = memmem::find(&dict[from..], key) {
        let at = from + found + key.len();
        from = at;
        // `/F` must not match `/Filter` or `/FontFile`.
        if dict
            .get(at)
            .is_some_and(|&b| !is_delimiter(b) && !b.is_ascii_whitespace())
        {
            continue;
        }
        let Some(bytes) = string_at(skip_space(&dict[at..])) else {
            continue;
        };
        let bytes = strings.decode(bytes);
        // The first string value decides: one parse per dictionary, never one per repeat.
        let text = if bytes.starts_with(&[0xFE, 0xFF]) {
            let units: Vec<u16> = bytes[2..]
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        } else {
            bytes.iter().map(|&b| char::from(b)).collect()
        };
        let base = text
            .rsplit(['/', '\\'])
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        if !base.is_empty() {
            return Some(base);
        }
    }
    None
}

/// The bytes of the literal or hex string `value` starts with.
fn string_at(value: &[u8]) -> Option<Vec<u8>> {
    match value.first() {
        Some(b'(') => Some(literal_string(&value[1..])),
        Some(b'<') if value.get(1) != Some(&b'<') => {
            let end = memchr::memchr(b'>', value).unwrap_or(value.len());
            let mut out = Vec::new();
            let _ = Decoder::new(&value[1..end], Hex::default()).read_to_end(&mut out);
            Some(out)
        }
        _ => None,
    }
}

/// The value of `key` (given without its slash) among the top-level entries of the
/// dictionary `dict` starts with: what follows the key, from the value on. Unlike a search for
/// the key, a nested dictionary's entry of the same name is not taken for it.
fn entry<'a>(dict: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut rest = skip_space(dict).strip_prefix(b"<<")?;
    loop {
        rest = skip_space_and_comments(rest);
        let name = rest.strip_prefix(b"/")?;
        let len = name
            .iter()
            .position(|&b| is_delimiter(b) || b.is_ascii_whitespace())
            .unwrap_or(name.len());
        let value = skip_space_and_comments(&name[len..]);
        if &name[..len] == key {
            return Some(value);
        }
        let used = value_len(value)?;
        rest = &value[used..];
    }
}

/// How many bytes the object `value` starts with takes.
fn value_len(value: &[u8]) -> Option<usize> {
    match value.first()? {
        b'<' if value.get(1) == Some(&b'<') => dictionary_end(value),
        b'<' => memchr::memchr(b'>', value).map(|e| e + 1),
        b'(' => Some(1 + literal_len(&value[1..])),
        b'[' => array_end(value),
        b'>' | b']' | b')' | b'{' | b'}' => None,
        _ if reference_follows(value) => memchr::memchr(b'R', value).map(|r| r + 1),
        _ => Some(
            1 + value[1..]
                .iter()
                .position(|&b| is_delimiter(b) || b.is_ascii_whitespace())
                .unwrap_or(value.len() - 1),
        ),
    }
}

/// The length of the array at the start of `data`, nested arrays, dictionaries and strings
/// skipped, if it ends within [`MAX_DICT`].
fn array_end(data: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = 0;
    let limit = data.len().min(MAX_DICT);
    while i < limit {
        match data[i] {
            b'[' => {
                depth += 1;
                i += 1;
            }
            b']' => {
                depth = depth.saturating_sub(1);
                i += 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            b'<' if data.get(i + 1) == Some(&b'<') => i += dictionary_end(&data[i..])?,
            b'(' => i += 1 + literal_len(&data[i + 1..]),
            b'<' => i += memchr::memchr(b'>', &data[i..]).map_or(limit, |e| e + 1),
            b'%' => i += memchr::memchr2(b'\n', b'\r', &data[i..]).unwrap_or(limit),
            _ => i += 1,
        }
    }
    None
}

/// The name value of a top-level entry, without its slash.
fn entry_name(dict: &[u8], key: &[u8]) -> Option<String> {
    let name = entry(dict, key)?.strip_prefix(b"/")?;
    let len = name
        .iter()
        .position(|&b| is_delimiter(b) || b.is_ascii_whitespace())
        .unwrap_or(name.len());
    Some(String::from_utf8_lossy(&name[..len]).into_owned())
}

/// The (signed) integer value of a top-level entry.
fn entry_int(dict: &[u8], key: &[u8]) -> Option<i64> {
    let value = entry(dict, key)?;
    let (negative, digits) = match value.first() {
        Some(b'-') => (true, &value[1..]),
        Some(b'+') => (false, &value[1..]),
        _ => (false, value),
    };
    let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    let magnitude: i64 = std::str::from_utf8(&digits[..len]).ok()?.parse().ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

/// The bytes of a top-level string entry, literal or hex.
fn entry_string(dict: &[u8], key: &[u8]) -> Option<Vec<u8>> {
    string_at(entry(dict, key)?)
}

fn skip_space_and_comments(mut data: &[u8]) -> &[u8] {
    loop {
        data = skip_space(data);
        if data.first() != Some(&b'%') {
            return data;
        }
        data = &data[memchr::memchr2(b'\n', b'\r', data).unwrap_or(data.len())..];
    }
}

/// The integer value of `key` in `dict`.
fn int_value(dict: &[u8], key: &[u8]) -> Option<u64> {
    let at = memmem::find(dict, key)? + key.len();
    let value = skip_space(&dict[at..]);
    let digits = value.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&value[..digits]).ok()?.parse().ok()
}

fn length_is_reference(dict: &[u8]) -> bool {
    memmem::find(dict, b"/Length").is_some_and(|at| reference_follows(&dict[at + 7..]))
}

/// The object number of the `N G R` reference `data` starts with (after space).
fn reference_at(data: &[u8]) -> Option<u64> {
    if !reference_follows(data) {
        return None;
    }
    let value = skip_space(data);
    let digits = value.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&value[..digits]).ok()?.parse().ok()
}

/// Whether `data` starts (after space) with `N G R`.
fn reference_follows(data: &[u8]) -> bool {
    let mut rest = skip_space(data);
    for _ in 0..2 {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return false;
        }
        rest = skip_space(&rest[digits..]);
    }
    rest.first() == Some(&b'R')
}

/// The object numbers of the `N G R` references in `data`, in order.
fn references(data: &[u8]) -> Vec<u64> {
    memchr::memchr_iter(b'R', data)
        .filter_map(|at| {
            let (_, rest) = trailing_integer(&data[..at], 5)?;
            trailing_integer(rest, 10).map(|(number, _)| number)
        })
        .collect()
}

/// Whether a trailer (or cross-reference stream) names an `/Encrypt` dictionary.
fn trailer_encrypts(data: &[u8]) -> bool {
    memmem::find_iter(data, b"/Encrypt").any(|at| {
        reference_follows(&data[at + 8..]) || skip_space(&data[at + 8..]).starts_with(b"<<")
    })
}

fn skip_space(data: &[u8]) -> &[u8] {
    let n = data
        .iter()
        .take_while(|b| b.is_ascii_whitespace() || **b == 0)
        .count();
    &data[n..]
}

fn is_delimiter(b: u8) -> bool {
    matches!(
        b,
        b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-call inflate takes only what it can finish within its room, at any room
    /// (smaller than its first reservation too), and leaves the rest to the streaming reader.
    #[test]
    fn one_call_inflate_takes_only_whole_streams_within_its_room() {
        use std::io::Write;
        let text = b"a stream of words and more words ".repeat(1000);
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zlib.write_all(&text).unwrap();
        let zlib = zlib.finish().unwrap();
        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(&text).unwrap();
        let raw = raw.finish().unwrap();

        assert_eq!(
            inflate_whole(&zlib, true, 1 << 20).as_deref(),
            Some(&text[..])
        );
        assert_eq!(
            inflate_whole(&raw, false, 1 << 20).as_deref(),
            Some(&text[..])
        );
        // Bytes after the end (the line break before `endstream`) are left alone.
        let mut padded = zlib.clone();
        padded.extend_from_slice(b"\r\n");
        assert_eq!(
            inflate_whole(&padded, true, 1 << 20).as_deref(),
            Some(&text[..])
        );
        // Larger than the room, cut short, or damaged: not taken here.
        assert_eq!(inflate_whole(&zlib, true, 1000), None);
        assert_eq!(inflate_whole(&zlib, true, text.len() as u64 - 1), None);
        assert_eq!(inflate_whole(&zlib[..zlib.len() / 2], true, 1 << 20), None);
        let mut bad_checksum = zlib.clone();
        *bad_checksum.last_mut().unwrap() ^= 1;
        assert_eq!(inflate_whole(&bad_checksum, true, 1 << 20), None);
    }

    #[test]
    fn objects_are_found_without_an_xref() {
        let pdf = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n12 0 obj <</Length 5>>stream\r\nhello\r\nendstream endobj\n13 0 obj<</Length 99 0 R>>\nstream\nobj inside\nendstream\nendobj";
        let (objects, truncated) = find_objects(pdf);
        assert!(!truncated);
        let numbers: Vec<u64> = objects.iter().map(|o| o.number).collect();
        assert_eq!(numbers, [1, 12, 13]);
        assert_eq!(&pdf[objects[1].stream.clone().unwrap()], b"hello");
        assert_eq!(&pdf[objects[2].stream.clone().unwrap()], b"obj inside");
    }

    #[test]
    fn literal_strings_unescape() {
        assert_eq!(
            literal_string(b"a\\(b\\) (c) \\101\\n\\\nd) tail"),
            b"a(b) (c) A\nd"
        );
    }

    #[test]
    fn filter_chains_and_file_names() {
        assert_eq!(
            filters(b"<< /Filter [/ASCII85Decode /FlateDecode] >>"),
            ["ASCII85Decode", "FlateDecode"]
        );
        assert_eq!(
            filters(b"<</Filter/FlateDecode/Length 3>>"),
            ["FlateDecode"]
        );
        assert_eq!(
            string_value(
                b"<< /Type /Filespec /F (C:\\\\x\\\\invoice.exe) /EF << /F 7 0 R >> >>",
                b"/F",
                Strings::PLAIN
            ),
            Some("invoice.exe".to_owned())
        );
        let mut names = Names::default();
        names.learn(
            b"<< /Type /Filespec /UF <FEFF0061002E006500780065> /EF << /F 7 0 R >> >>",
            Strings::PLAIN,
        );
        names.learn(b"<< /S /JavaScript /JS 9 0 R >>", Strings::PLAIN);
        assert_eq!(names.name(7), "embedded/a.exe");
        assert_eq!(names.name(9), "js-9");
        assert_eq!(names.name(3), "obj-3");
    }
}
