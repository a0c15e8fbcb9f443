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
use super::literals::{MAX_PIECES, MIN_BASE64, MIN_HEX, TEXT_PREFIX, is_base64};
use super::text::{Decoder, Hex, SixBits};
use crate::formats::members::{Declared, Members};

pub(super) const FORMAT: Format = Format {
    name: "script",
    identify,
    expand,
};

/// Payloads taken from one object at most.
const MAX_PAYLOADS: usize = 256;

/// Text (no NUL in its first [`TEXT_PREFIX`] bytes) holding at least one payload literal.
fn identify(data: &[u8]) -> bool {
    !data[..data.len().min(TEXT_PREFIX)].contains(&0) && payloads(data).next().is_some()
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
    use crate::formats::literals::PayloadWatch;

    fn found(text: &str) -> Vec<(usize, String, bool)> {
        payloads(text.as_bytes())
            .map(|p| {
                let joined: String = p.pieces.iter().map(|r| &text[r.clone()]).collect();
                (p.at, joined, p.hex)
            })
            .collect()
    }

    /// `PayloadWatch` over `data` cut into chunks at `cuts`.
    fn watched(data: &[u8], cuts: &[usize]) -> bool {
        let mut watch = PayloadWatch::default();
        let mut from = 0;
        for &cut in cuts.iter().chain(std::iter::once(&data.len())) {
            let cut = cut.clamp(from, data.len());
            watch.feed(&data[from..cut]);
            from = cut;
        }
        watch.finish()
    }

    #[test]
    fn the_watch_over_chunks_decides_as_identification_over_the_whole_does() {
        // Texts made of the grammar's own pieces (quotes, base64 and hex runs of lengths
        // around the thresholds, white space, operators, line continuations, other bytes), so
        // that near misses of every kind are common, each read whole and in random chunks.
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n) as usize
        };
        let (mut found, mut missed) = (0, 0);
        for _ in 0..20_000 {
            let mut text = Vec::new();
            for _ in 0..next(24) {
                let quote = b"\"'`"[next(3)];
                match next(10) {
                    0..=1 => text.push(quote),
                    2..=3 | 9 => {
                        let alphabet: &[u8] = if next(2) == 0 {
                            b"0123456789abcdefABCDEF"
                        } else {
                            b"QUJDqz09+/=f"
                        };
                        let run = [1, 31, 32, 63, 64, 65, 127, 128, 129][next(9)] + next(3);
                        let closed = next(10) == 9;
                        if closed {
                            text.push(quote);
                        }
                        text.extend((0..run).map(|_| alphabet[next(alphabet.len() as u64)]));
                        if closed {
                            text.push(quote);
                        }
                    }
                    4 => text.extend_from_slice([&b" "[..], b"\r\n", b"\t"][next(3)]),
                    5 => text.push(b"+&,."[next(4)]),
                    6 => text.push(b'_'),
                    7 => text.push(b"x(;<-\0"[next(6)]),
                    _ => text.extend_from_slice(
                        [
                            &b"\" + \""[..],
                            b"' & _\r\n '",
                            b"` , _ _ `",
                            b"\".\"",
                            b"' +",
                        ][next(5)],
                    ),
                }
            }
            let whole = identify(&text);
            if whole {
                found += 1;
            } else {
                missed += 1;
            }
            let cuts: Vec<usize> = (0..next(6)).map(|_| next(text.len() as u64 + 1)).collect();
            let mut cuts = cuts;
            cuts.sort_unstable();
            assert_eq!(
                watched(&text, &[]),
                whole,
                "{:?}",
                String::from_utf8_lossy(&text)
            );
            assert_eq!(
                watched(&text, &cuts),
                whole,
                "cut at {cuts:?}: {:?}",
                String::from_utf8_lossy(&text)
            );
            let bytewise: Vec<usize> = (1..text.len()).collect();
            assert_eq!(watched(&text, &bytewise), whole);
        }
        // Both answers were common, so neither side was tested only on the easy one.
        assert!(
            found > 2_000 && missed > 2_000,
            "{found} found, {missed} not"
        );
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
