//! `data:` URIs in HTML, SVG and other text (HTML smuggling carries whole files in them): each
//! payload, base64 or percent-encoded, decoded as a member named by its offset.

use memchr::memmem;

use super::Format;
use super::text::{Decoder, Percent, SixBits};
use crate::expand::{Declared, Members};

pub(super) const FORMAT: Format = Format {
    name: "data-uri",
    identify: |data| is_text(data) && uris(data).next().is_some(),
    expand,
};

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

/// The data URIs of `data` with a payload worth decoding, in order. The search resumes after
/// each payload, so text made of nothing but `data:` prefixes is still read once.
fn uris(data: &[u8]) -> impl Iterator<Item = Uri> + '_ {
    let finder = memmem::Finder::new(b"data:");
    let mut from = 0;
    std::iter::from_fn(move || {
        loop {
            let at = from + finder.find(&data[from..])?;
            from = at + 5;
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

fn expand(members: &mut Members<'_, '_>, data: &[u8]) {
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
}
