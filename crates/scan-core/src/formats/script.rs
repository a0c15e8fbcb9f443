//! Payloads carried in script string literals: HTML and HTA smuggling, SVG, JavaScript,
//! VBScript and PowerShell rebuild files from long base64 (or hex) strings (`atob("TVqQ...")`
//! into a Blob, `FromBase64String('...')`), often cut into pieces joined with `+`, `&` or `,`
//! across lines. Each such string, its pieces joined, is decoded as a member named
//! `script@<offset>`.
//!
//! Bounded: a literal counts from 64 characters of base64 (hex: 128), at most 256 payloads per
//! object, and one pass over the text (a literal ends at the first character that cannot be in
//! it, so no byte is looked at twice for the same quote).

use std::io::{self, Read};
use std::ops::Range;

use super::Format;
use super::text::{Decoder, Hex, SixBits};
use crate::formats::members::{Declared, Members};

pub(super) const FORMAT: Format = Format {
    name: "script",
    identify,
    expand,
};

/// Base64 shorter than this (48 bytes) is an id or a hash, not a file.
const MIN_BASE64: usize = 64;
/// Hex shorter than this (64 bytes) is a colour or a hash.
const MIN_HEX: usize = 128;
/// Payloads taken from one object at most.
const MAX_PAYLOADS: usize = 256;
/// Pieces joined into one payload at most.
const MAX_PIECES: usize = 100_000;

/// Text (no NUL in its first 8 KiB) holding at least one payload literal.
fn identify(data: &[u8]) -> bool {
    !data[..data.len().min(8192)].contains(&0) && payloads(data).next().is_some()
}

fn expand(members: &mut Members<'_>, data: &[u8]) {
    take(members, data);
}

/// Decodes every payload literal of `data` as a member: for this format, and for the text
/// formats that hold scripts besides what they carry themselves (HTML with data URIs).
pub(super) fn take(members: &mut Members<'_>, data: &[u8]) {
    for payload in payloads(data).take(MAX_PAYLOADS) {
        if members.stopped() {
            return;
        }
        let name = format!("script@{}", payload.at);
        let length: usize = payload.pieces.iter().map(Range::len).sum();
        let declared = Declared::size(length as u64);
        let pieces = Pieces {
            data,
            pieces: &payload.pieces,
            next: 0,
            at: 0,
        };
        if payload.hex {
            members.member(
                &name,
                declared,
                &mut Decoder::new(pieces, Hex::default()),
                None,
            );
        } else {
            members.member(
                &name,
                declared,
                &mut Decoder::new(pieces, SixBits::base64()),
                None,
            );
        }
    }
}

/// One payload: where its first literal starts, its pieces, and how it is encoded.
struct Payload {
    at: usize,
    pieces: Vec<Range<usize>>,
    hex: bool,
}

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='
}

/// The literal opened by the quote at `q`: the run of base64 characters after it, if the same
/// quote closes it.
fn literal_at(data: &[u8], q: usize) -> Option<Range<usize>> {
    let quote = data[q];
    let start = q + 1;
    let run = data[start..].iter().position(|&b| !is_base64(b))?;
    (run > 0 && data[start + run] == quote).then_some(start..start + run)
}

/// Where the next piece of a joined string starts after a literal ending at `end` (its
/// closing quote): past white space, one joining operator (`+`, `&`, `,`, `.`) and a
/// VBScript line continuation (`_`), if a quote follows.
fn joined_at(data: &[u8], end: usize) -> Option<usize> {
    let mut at = end + 1;
    let skip_space = |at: &mut usize| {
        while *at < data.len() && data[*at].is_ascii_whitespace() {
            *at += 1;
        }
    };
    skip_space(&mut at);
    if at < data.len() && b"+&,.".contains(&data[at]) {
        at += 1;
        skip_space(&mut at);
        if at < data.len() && data[at] == b'_' {
            at += 1;
            skip_space(&mut at);
        }
    } else {
        return None;
    }
    (at < data.len() && matches!(data[at], b'"' | b'\'' | b'`')).then_some(at)
}

/// The payloads of `data`, in order (see the module docs).
fn payloads(data: &[u8]) -> impl Iterator<Item = Payload> + '_ {
    let mut from = 0;
    std::iter::from_fn(move || {
        while from < data.len() {
            let q = from + memchr::memchr3(b'"', b'\'', b'`', &data[from..])?;
            let Some(first) = literal_at(data, q) else {
                from = q + 1;
                continue;
            };
            let mut pieces = vec![first.clone()];
            let mut end = first.end;
            while pieces.len() < MAX_PIECES
                && let Some(next) = joined_at(data, end)
                && let Some(piece) = literal_at(data, next)
            {
                end = piece.end;
                pieces.push(piece);
            }
            from = end + 1;
            let length: usize = pieces.iter().map(Range::len).sum();
            let hex = pieces
                .iter()
                .all(|p| data[p.clone()].iter().all(u8::is_ascii_hexdigit));
            if (hex && length >= MIN_HEX && length.is_multiple_of(2))
                || (!hex && length >= MIN_BASE64)
            {
                return Some(Payload { at: q, pieces, hex });
            }
        }
        None
    })
}

/// The pieces of one payload read one after another, without copying them together.
struct Pieces<'a> {
    data: &'a [u8],
    pieces: &'a [Range<usize>],
    next: usize,
    at: usize,
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while let Some(piece) = self.pieces.get(self.next) {
            let rest = &self.data[piece.start + self.at..piece.end];
            if rest.is_empty() {
                self.next += 1;
                self.at = 0;
                continue;
            }
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            self.at += n;
            return Ok(n);
        }
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(usize, String, bool)> {
        payloads(text.as_bytes())
            .map(|p| {
                let joined: String = p.pieces.iter().map(|r| &text[r.clone()]).collect();
                (p.at, joined, p.hex)
            })
            .collect()
    }

    #[test]
    fn long_literals_and_their_joined_pieces_are_found_short_and_prose_ones_are_not() {
        let b64 = "QUJD".repeat(20);
        let js = format!("var a = atob(\"{}\" +\n  '{}');", &b64[..40], &b64[40..]);
        assert_eq!(found(&js), [(13, b64.clone(), false)]);
        let vbs = format!("s = \"{}\" & _\r\n    \"{}\"", &b64[..30], &b64[30..]);
        assert_eq!(found(&vbs), [(4, b64.clone(), false)]);
        let array = format!("[\"{}\", \"{}\"].join('')", &b64[..50], &b64[50..]);
        assert_eq!(found(&array)[0].1, b64);
        let hex = "4d5a".repeat(40);
        assert_eq!(found(&format!("x='{hex}'")), [(2, hex, true)]);
        assert!(found("id = \"abc123\"; it's a 'short one'").is_empty());
        assert!(
            found(&format!("it's not \"{} {}\"", b64, b64)).is_empty(),
            "spaces are not base64"
        );
        // A quote inside prose does not hide a literal that follows it.
        assert_eq!(found(&format!("don't \"{b64}\"")).len(), 1);
    }
}
