//! E-mail: RFC 5322 messages with MIME bodies, and mbox files of several messages. Multipart
//! bodies are split at any depth (bounded by the scan's depth limit), `message/rfc822` parts
//! entered, and every leaf part yielded decoded (base64, quoted-printable, uuencode) under its
//! attachment file name. Uuencoded blocks inside plain bodies are yielded too.
//!
//! Parsing is tolerant, as mail clients are: a missing closing boundary or stray characters in
//! base64 are not damage. What a client would show is what gets scanned.

use memchr::memmem;

use super::Format;
use super::text::{Decoder, QuotedPrintable, SixBits, Uuencode};
use crate::formats::members::{Declared, Members};
use crate::limits::Limit;

pub(super) const FORMAT: Format = Format {
    name: "email",
    identify,
    expand,
};

/// How much of the start of an object identification reads for a header block.
const HEADER_WINDOW: usize = 64 << 10;

fn identify(data: &[u8]) -> bool {
    let data = &data[..data.len().min(HEADER_WINDOW)];
    let headers = match mbox_from_line(data) {
        Some(after) => &data[after..],
        None => data,
    };
    let Some(fields) = header_fields(headers) else {
        return false;
    };
    // Mail software writes field names capitalised ("From", "Mime-Version"); configuration
    // files that happen to have `from:` and `to:` keys do not.
    let has = |name: &str| {
        fields.iter().any(|(n, _)| {
            n.eq_ignore_ascii_case(name) && n.starts_with(|c: char| c.is_ascii_uppercase())
        })
    };
    let addressing = [
        "From",
        "To",
        "Cc",
        "Subject",
        "Date",
        "Received",
        "Message-ID",
        "Return-Path",
        "Reply-To",
        "Delivered-To",
    ]
    .iter()
    .filter(|name| has(name))
    .count();
    has("MIME-Version")
        || has("Content-Transfer-Encoding")
        || has("Content-Disposition")
        || (has("Content-Type") && addressing >= 1)
        || addressing >= 2
}

/// The offset after an mbox `From ` separator line at the start of `data`.
fn mbox_from_line(data: &[u8]) -> Option<usize> {
    if !data.starts_with(b"From ") {
        return None;
    }
    memchr::memchr(b'\n', data).map(|end| end + 1)
}

/// The header fields at the start of `data`, if it starts with a well-formed header block
/// ending in an empty line: every line a `Name: value` field or the continuation of one.
fn header_fields(data: &[u8]) -> Option<Vec<(&str, &[u8])>> {
    // Line by line from the top, so text that is not mail is turned down at its first line.
    let mut fields: Vec<(&str, &[u8])> = Vec::new();
    let mut at = 0;
    loop {
        let end = at + memchr::memchr(b'\n', &data[at..])?;
        let line = &data[at..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        at = end + 1;
        if line.is_empty() {
            return (!fields.is_empty()).then_some(fields);
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if fields.is_empty() {
                return None;
            }
            continue;
        }
        let colon = memchr::memchr(b':', line)?;
        let name = std::str::from_utf8(&line[..colon]).ok()?;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        fields.push((name, &line[colon + 1..]));
    }
}

/// Where the header block ends: (end of the headers, start of the body). One pass to the first
/// empty line, LF or CRLF, so checking many candidate header blocks stays linear.
fn header_end(data: &[u8]) -> Option<(usize, usize)> {
    if data.starts_with(b"\r\n") {
        return Some((0, 2));
    }
    if data.starts_with(b"\n") {
        return Some((0, 1));
    }
    memchr::memchr_iter(b'\n', data).find_map(|at| match &data[at + 1..] {
        [b'\n', ..] => Some((at + 1, at + 2)),
        [b'\r', b'\n', ..] => Some((at + 1, at + 3)),
        _ => None,
    })
}

fn expand(members: &mut Members<'_>, data: &[u8]) {
    let messages = mbox_messages(data);
    if messages.len() > 1 {
        // Several messages: each is a member of its own, an e-mail again.
        for (index, range) in messages.into_iter().enumerate() {
            if members.stopped() {
                return;
            }
            members.bytes(&format!("message-{}.eml", index + 1), &data[range]);
        }
        return;
    }
    let start = mbox_from_line(data).unwrap_or(0);
    let mut parts = Parts { leaves: 0 };
    parts.entity(members, &data[start..], 0);
}

/// The messages of an mbox: each starts at a `From ` line at the start of the file or after an
/// empty line. A plain message is one message.
fn mbox_messages(data: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut starts = vec![0];
    if data.starts_with(b"From ") {
        for separator in [&b"\n\nFrom "[..], b"\n\r\nFrom "] {
            for at in memmem::find_iter(data, separator) {
                // A body line that merely begins with "From " is not followed by headers.
                let start = at + separator.len() - 5;
                let next_line = memchr::memchr(b'\n', &data[start..]).map(|e| start + e + 1);
                if next_line.is_some_and(|line| header_fields(&data[line..]).is_some()) {
                    starts.push(start);
                }
            }
        }
    }
    starts.sort_unstable();
    starts.dedup();
    starts
        .iter()
        .enumerate()
        .map(|(i, &s)| s..starts.get(i + 1).copied().unwrap_or(data.len()))
        .collect()
}

/// The headers of one MIME entity that matter here.
#[derive(Default)]
struct Entity {
    content_type: String,
    boundary: Option<String>,
    encoding: String,
    file_name: Option<String>,
}

struct Parts {
    /// Leaf parts yielded so far, to name the unnamed ones.
    leaves: usize,
}

impl Parts {
    fn entity(&mut self, members: &mut Members<'_>, data: &[u8], nesting: u32) {
        if members.stopped() {
            return;
        }
        if nesting > members.limits().max_depth {
            return members.limit(Limit::MaxRecursion);
        }
        let (headers, body) = match header_end(data) {
            Some((end, body)) if end == 0 || header_fields(data).is_some() => {
                (&data[..end], &data[body..])
            }
            // A part that does not start with header fields is all body.
            _ => (&data[..0], data),
        };
        let entity = parse_headers(headers);
        if entity.content_type.starts_with("multipart/")
            && let Some(boundary) = &entity.boundary
        {
            for part in split_multipart(body, boundary.as_bytes()) {
                if members.stopped() {
                    return;
                }
                self.entity(members, part, nesting + 1);
            }
            return;
        }
        if entity.content_type == "message/rfc822" && entity.encoding_is_identity() {
            return self.entity(members, body, nesting + 1);
        }
        self.leaf(members, &entity, body);
    }

    fn leaf(&mut self, members: &mut Members<'_>, entity: &Entity, body: &[u8]) {
        if body.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        self.leaves += 1;
        let name = entity
            .file_name
            .clone()
            .unwrap_or_else(|| format!("part-{}", self.leaves));
        // Declared sizes bound what the decoded body can be: no transfer encoding expands.
        let declared = Declared::size(body.len() as u64);
        match entity.encoding.as_str() {
            "base64" => {
                let mut decoder = Decoder::new(body, SixBits::base64());
                members.member(&name, declared, &mut decoder, None);
            }
            "quoted-printable" => {
                let mut decoder = Decoder::new(body, QuotedPrintable);
                members.member(&name, declared, &mut decoder, None);
            }
            "x-uuencode" | "uuencode" | "x-uue" => {
                if !uuencoded_blocks(members, body) {
                    members.bytes(&name, body);
                }
            }
            _ => {
                members.bytes(&name, body);
                uuencoded_blocks(members, body);
            }
        }
    }
}

impl Entity {
    fn encoding_is_identity(&self) -> bool {
        matches!(self.encoding.as_str(), "" | "7bit" | "8bit" | "binary")
    }
}

fn parse_headers(headers: &[u8]) -> Entity {
    let mut entity = Entity {
        content_type: "text/plain".to_owned(),
        ..Entity::default()
    };
    let mut name_from_type = None;
    for (name, value) in unfolded_fields(headers) {
        if name.eq_ignore_ascii_case("Content-Type") {
            let (kind, params) = split_value(&value);
            entity.content_type = kind.to_ascii_lowercase();
            entity.boundary = param(&params, "boundary");
            name_from_type = param(&params, "name");
        } else if name.eq_ignore_ascii_case("Content-Transfer-Encoding") {
            entity.encoding = value.trim().to_ascii_lowercase();
        } else if name.eq_ignore_ascii_case("Content-Disposition") {
            let (_, params) = split_value(&value);
            entity.file_name = param(&params, "filename");
        }
    }
    entity.file_name = entity
        .file_name
        .or(name_from_type)
        .map(|n| decode_words(&n))
        .map(|n| n.rsplit(['/', '\\']).next().unwrap_or("").to_owned())
        .filter(|n| !n.is_empty());
    entity
}

/// Header fields with continuation lines joined, values as (lossy) text.
fn unfolded_fields(headers: &[u8]) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in headers.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = String::from_utf8_lossy(line);
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(text.trim());
            }
        } else if let Some((name, value)) = text.split_once(':') {
            fields.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    fields
}

/// Decodes RFC 2047 encoded words (`=?charset?B?...?=`, `=?charset?Q?...?=`), which mail
/// clients use for non-ASCII file names although RFC 2231 is the standard for parameters. The
/// text is taken as UTF-8 (lossily) whatever the charset: it only names a member.
fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut after_word = false;
    while let Some(start) = rest.find("=?") {
        let word = &rest[start + 2..];
        let mut fields = word.splitn(3, '?');
        let (Some(_charset), Some(encoding), Some(tail)) =
            (fields.next(), fields.next(), fields.next())
        else {
            break;
        };
        let Some(end) = tail.find("?=") else { break };
        let text = &tail[..end];
        let mut bytes = Vec::new();
        let decoded = match encoding {
            "B" | "b" => std::io::Read::read_to_end(
                &mut Decoder::new(text.as_bytes(), SixBits::base64()),
                &mut bytes,
            ),
            "Q" | "q" => {
                let text = text.replace('_', " ");
                std::io::Read::read_to_end(
                    &mut Decoder::new(text.as_bytes(), QuotedPrintable),
                    &mut bytes,
                )
            }
            _ => break,
        };
        if decoded.is_err() {
            break;
        }
        // White space between two encoded words is not part of the text.
        let before = &rest[..start];
        if !(after_word && before.trim().is_empty()) {
            out.push_str(before);
        }
        out.push_str(&String::from_utf8_lossy(&bytes));
        after_word = true;
        rest = &tail[end + 2..];
    }
    out.push_str(rest);
    out
}

/// Splits `type/subtype; a=b; c="d"` into the type and its parameters (names lower-cased).
fn split_value(value: &str) -> (&str, Vec<(String, String)>) {
    let mut params = Vec::new();
    let (kind, mut rest) = value.split_once(';').unwrap_or((value, ""));
    while !rest.is_empty() {
        let Some((name, after)) = rest.split_once('=') else {
            break;
        };
        let name = name
            .trim()
            .trim_start_matches(';')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            (
                quoted[..end].to_owned(),
                quoted.get(end + 1..).unwrap_or(""),
            )
        } else {
            let end = after.find(';').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        params.push((name, value));
        rest = next.trim_start().trim_start_matches(';');
    }
    (kind.trim(), params)
}

/// A parameter's value: plain, or RFC 2231 (`name*=charset'lang'percent-encoded`, and
/// `name*0`, `name*1`... continuations).
fn param(params: &[(String, String)], name: &str) -> Option<String> {
    if let Some((_, v)) = params.iter().find(|(n, _)| n == name) {
        return Some(v.clone());
    }
    if let Some((_, v)) = params
        .iter()
        .find(|(n, _)| n.strip_prefix(name) == Some("*"))
    {
        return Some(rfc2231_value(v, true));
    }
    let mut joined = String::new();
    for index in 0..64 {
        let plain = format!("{name}*{index}");
        let encoded = format!("{name}*{index}*");
        match params.iter().find(|(n, _)| *n == plain || *n == encoded) {
            Some((n, v)) => joined.push_str(&rfc2231_value(
                v,
                n.ends_with('*') && index == 0 || n == &encoded,
            )),
            None => break,
        }
    }
    (!joined.is_empty()).then_some(joined)
}

fn rfc2231_value(value: &str, encoded: bool) -> String {
    if !encoded {
        return value.to_owned();
    }
    // charset'language'text: the text is what matters; decode it as UTF-8, lossily.
    let text = value.splitn(3, '\'').nth(2).unwrap_or(value);
    let mut bytes = Vec::new();
    let mut decoder = super::text::Decoder::new(text.as_bytes(), super::text::Percent);
    let _ = std::io::Read::read_to_end(&mut decoder, &mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The parts of a multipart body: what lies between `--boundary` lines, up to `--boundary--`
/// or the end of the data (a missing closing boundary is common and harmless).
fn split_multipart<'d>(body: &'d [u8], boundary: &[u8]) -> Vec<&'d [u8]> {
    let mut delimiter = b"\n--".to_vec();
    delimiter.extend_from_slice(boundary);
    let finder = memmem::Finder::new(&delimiter);
    // A delimiter at the very start of the body has no line break before it.
    let mut starts: Vec<usize> = Vec::new();
    if body.starts_with(&delimiter[1..]) {
        starts.push(0);
    }
    starts.extend(finder.find_iter(body).map(|at| at + 1));
    let mut parts = Vec::new();
    for (i, &at) in starts.iter().enumerate() {
        let after = at + delimiter.len() - 1;
        if body[after..].starts_with(b"--") {
            break;
        }
        // The part starts after the rest of the delimiter line.
        let Some(line_end) = memchr::memchr(b'\n', &body[after..]) else {
            break;
        };
        let start = after + line_end + 1;
        let end = starts.get(i + 1).map_or(body.len(), |&next| {
            // The line break before the next delimiter belongs to it.
            let end = next.saturating_sub(1);
            if end > 0 && body[end - 1] == b'\r' {
                end - 1
            } else {
                end
            }
        });
        if start <= end {
            parts.push(&body[start..end]);
        }
    }
    parts
}

/// Yields every `begin NNN name` ... `end` block of `body` as a member named after the file;
/// false when there was none.
fn uuencoded_blocks(members: &mut Members<'_>, body: &[u8]) -> bool {
    let mut found = false;
    let mut at = 0;
    while let Some(offset) = find_begin_line(&body[at..]) {
        if members.stopped() {
            return found;
        }
        let start = at + offset;
        let line_end = memchr::memchr(b'\n', &body[start..]).map_or(body.len(), |e| start + e + 1);
        let line = String::from_utf8_lossy(&body[start..line_end]);
        let name = line
            .split_whitespace()
            .nth(2)
            .unwrap_or("uuencoded")
            .to_owned();
        let block = &body[line_end..];
        let end = memmem::find(block, b"\nend").map_or(block.len(), |e| e + 4);
        let mut decoder = Decoder::new(&block[..end], Uuencode);
        members.member(&name, Declared::size(end as u64), &mut decoder, None);
        found = true;
        at = line_end + end;
    }
    found
}

/// Finds a line `begin <octal mode> <name>`.
fn find_begin_line(data: &[u8]) -> Option<usize> {
    let mut from = 0;
    loop {
        let at = from + memmem::find(&data[from..], b"begin ")?;
        let at_line_start = at == 0 || data[at - 1] == b'\n';
        let mode = &data[at + 6..];
        let digits = mode
            .iter()
            .take_while(|b| (b'0'..=b'7').contains(*b))
            .count();
        if at_line_start && (3..=4).contains(&digits) && mode.get(digits) == Some(&b' ') {
            return Some(at);
        }
        from = at + 6;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifies_messages_not_other_text() {
        assert!(identify(b"From: a@b\r\nTo: c@d\r\nSubject: x\r\n\r\nbody"));
        assert!(identify(
            b"From a@b Thu Jul 31 13:49:50 2008\nMIME-Version: 1.0\n\nbody"
        ));
        assert!(identify(
            b"Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\naGk="
        ));
        assert!(!identify(b"name: value\nother: thing\n\nbody"));
        assert!(!identify(b"Subject: only one field and no blank line"));
        assert!(!identify(b"{\"json\": true}\n\n"));
        assert!(!identify(b"a,b,c\n1,2,3\n\n"));
    }

    #[test]
    fn multipart_parts_with_and_without_closing_boundary() {
        let body =
            b"preamble\r\n--xyz\r\nA: 1\r\n\r\none\r\n--xyz\r\n\r\ntwo\r\n--xyz--\r\nepilogue";
        assert_eq!(
            split_multipart(body, b"xyz"),
            [&b"A: 1\r\n\r\none"[..], b"\r\ntwo"]
        );
        let open = b"--b\nX: y\n\nfirst\n--b\n\nlast part";
        assert_eq!(
            split_multipart(open, b"b"),
            [&b"X: y\n\nfirst"[..], b"\nlast part"]
        );
    }

    #[test]
    fn parameters_plain_quoted_and_rfc2231() {
        let entity = parse_headers(
            b"Content-Type: application/octet-stream; name=\"a b.exe\"\nContent-Transfer-Encoding: BASE64\n",
        );
        assert_eq!(entity.file_name.as_deref(), Some("a b.exe"));
        assert_eq!(entity.encoding, "base64");
        let entity = parse_headers(
            b"Content-Type: multipart/mixed;\n boundary=\"==x==\"\nContent-Disposition: attachment;\n filename*=UTF-8''na%C3%AFve.zip\n",
        );
        assert_eq!(entity.boundary.as_deref(), Some("==x=="));
        assert_eq!(entity.file_name.as_deref(), Some("na\u{ef}ve.zip"));
        let entity = parse_headers(
            b"Content-Disposition: attachment; filename*0=\"long\"; filename*1=\"name.txt\"\n",
        );
        assert_eq!(entity.file_name.as_deref(), Some("longname.txt"));
        let entity = parse_headers(
            b"Content-Type: application/pdf; name=\"=?UTF-8?B?UmVjaG51bmc=?= =?utf-8?q?_M=C3=A4rz.pdf?=\"\n",
        );
        assert_eq!(entity.file_name.as_deref(), Some("Rechnung M\u{e4}rz.pdf"));
    }

    #[test]
    fn mbox_splits_on_from_lines_after_empty_lines() {
        let mbox = b"From a Mon\nSubject: 1\n\nbody\n\nFrom b Tue\nSubject: 2\n\nFrom here on\n";
        let messages = mbox_messages(mbox);
        assert_eq!(messages.len(), 2);
        assert!(mbox[messages[1].clone()].starts_with(b"From b"));
    }
}
