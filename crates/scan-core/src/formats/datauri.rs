//! `data:` URIs in HTML, SVG and other text (HTML smuggling carries whole files in them): each
//! payload, base64 or percent-encoded, decoded as a member named by its offset; the script
//! string payloads of the same text too (see [`super::script`]).

use super::Format;
use super::text::{Decoder, Percent, SixBits};
use crate::formats::members::{Declared, Members};

pub(super) const FORMAT: Format = Format {
    name: "data-uri",
    identify,
    expand,
};

/// How much of the start of a text shows whether it is markup.
const HEAD: usize = 64 << 10;

/// Text whose start shows markup (`<`, as HTML and SVG must have to make a link or an image of
/// a data URI) or a data URI itself (CSS, scripts), and that holds a data URI somewhere. Plain
/// prose is turned down from its first 64 KiB, so documents are not read a second time in full
/// for URIs that could not be followed.
fn identify(data: &[u8]) -> bool {
    let head = &data[..data.len().min(HEAD)];
    is_text(head) && shows_markup(head) && uris(data).next().is_some()
}

/// Payloads shorter than this are icons and spacers, not files worth a member.
const MIN_PAYLOAD: usize = 16;

/// Text, not binary: no NUL in the first 8 KiB (HTML in legacy encodings is not UTF-8).
fn is_text(data: &[u8]) -> bool {
    !data[..data.len().min(8192)].contains(&0)
}

struct Uri {
    at: usize,
    base64: bool,
    payload: std::ops::Range<usize>,
}

/// Whether `head` has a `<` or a `data:` in it, in one pass over its `<` and `:` characters.
fn shows_markup(head: &[u8]) -> bool {
    memchr::memchr2_iter(b'<', b':', head)
        .any(|at| head[at] == b'<' || at >= 4 && head[at - 4..at].eq_ignore_ascii_case(b"data"))
}

/// The data URIs of `data` with a payload worth decoding, in order. Candidates are found by
/// their colon (rare in prose, so the search runs at memchr's speed) with `data` before it in
/// any case, as browsers accept it; the search resumes after each payload, so text made of
/// nothing but `data:` prefixes is still read once.
fn uris(data: &[u8]) -> impl Iterator<Item = Uri> + '_ {
    let mut from = 0;
    std::iter::from_fn(move || {
        loop {
            let colon = from + memchr::memchr(b':', &data[from..])?;
            from = colon + 1;
            let Some(at) = colon.checked_sub(4) else {
                continue;
            };
            if !data[at..colon].eq_ignore_ascii_case(b"data") {
                continue;
            }
            let Some(uri) = uri_at(data, at) else {
                continue;
            };
            from = uri.payload.end.max(from);
            if uri.payload.len() >= MIN_PAYLOAD {
                return Some(uri);
            }
        }
    })
}

/// The data URI starting at `at` (its `data:`), if a media type and a comma follow.
fn uri_at(data: &[u8], at: usize) -> Option<Uri> {
    let rest = &data[at + 5..];
    // The media type and its parameters: `type/subtype;charset=x;base64`.
    let header_len = rest
        .iter()
        .take(256)
        .position(|&b| b == b',')
        .filter(|&len| {
            rest[..len]
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"/;=+-._!#$&^ ".contains(&b))
        })?;
    let header = &rest[..header_len];
    let base64 = header.len() >= 7 && header[header.len() - 7..].eq_ignore_ascii_case(b";base64");
    let start = at + 5 + header_len + 1;
    let len = data[start..]
        .iter()
        .position(|&b| match b {
            b'"' | b'\'' | b')' | b'<' | b'>' | b'`' => true,
            // Base64 in markup is often wrapped; percent-encoded text ends at a space.
            b' ' | b'\t' | b'\r' | b'\n' => !base64,
            _ => false,
        })
        .unwrap_or(data.len() - start);
    Some(Uri {
        at,
        base64,
        payload: start..start + len,
    })
}

fn expand(members: &mut Members<'_>, data: &[u8]) {
    for uri in uris(data) {
        if members.stopped() {
            return;
        }
        let payload = &data[uri.payload];
        let name = format!("data@{}", uri.at);
        let declared = Declared::size(payload.len() as u64);
        if uri.base64 {
            members.member(
                &name,
                declared,
                &mut Decoder::new(payload, SixBits::base64()),
                None,
            );
        } else {
            members.member(&name, declared, &mut Decoder::new(payload, Percent), None);
        }
    }
    // The same page may rebuild files from script strings too.
    super::script::take(members, data);
}
