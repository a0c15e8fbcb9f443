//! Text transfer encodings that carriers wrap binary data in: base64, quoted-printable,
//! uuencode (mail), hex (RTF, PDF's ASCIIHexDecode), ASCII85 (PDF) and percent-encoding (data
//! URIs). Each decodes tolerantly, as mail clients and viewers do (stray characters skipped, a
//! missing end accepted), and streams: output is produced a few kilobytes at a time, so a large
//! attachment reaches the spool without being held whole. None of them expands its input, so
//! they need no ratio check; their output still goes through the caps.

use std::io::{self, Read};

/// One encoding: decodes as much of `input` as it can into `out` and says how much input it
/// used. It may leave a tail it cannot decode yet (half a quoted-printable escape, a partial
/// line) unless `last` says no more input follows.
pub(crate) trait Transfer {
    /// Decodes from `input` into `out`; returns the input consumed and whether the encoded data
    /// ended (an end marker was seen).
    fn decode(&mut self, input: &[u8], last: bool, out: &mut Vec<u8>) -> (usize, bool);
}

/// A streaming reader of `input` in transfer encoding `T`.
pub(crate) struct Decoder<R, T> {
    input: R,
    /// Encoded bytes read but not decoded yet.
    pending: Vec<u8>,
    input_ended: bool,
    transfer: T,
    out: Vec<u8>,
    served: usize,
    done: bool,
}

/// Input handed to a transfer per step: output stays near this size.
const STEP: usize = 16 << 10;

impl<R: Read, T: Transfer> Decoder<R, T> {
    pub(crate) fn new(input: R, transfer: T) -> Self {
        Decoder {
            input,
            pending: Vec::with_capacity(STEP),
            input_ended: false,
            transfer,
            out: Vec::with_capacity(STEP),
            served: 0,
            done: false,
        }
    }

    /// Tops `pending` up to a step's worth of input.
    fn fill(&mut self) -> io::Result<()> {
        while !self.input_ended && self.pending.len() < STEP {
            let have = self.pending.len();
            self.pending.resize(STEP, 0);
            let n = self.input.read(&mut self.pending[have..])?;
            self.pending.truncate(have + n);
            self.input_ended = n == 0;
        }
        Ok(())
    }
}

impl<R: Read, T: Transfer> Read for Decoder<R, T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.served == self.out.len() {
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            self.fill()?;
            self.out.clear();
            self.served = 0;
            let last = self.input_ended;
            let (used, ended) = self.transfer.decode(&self.pending, last, &mut self.out);
            // A transfer that can make no progress on a full step has met data it will never
            // decode; drop it rather than loop.
            let used = if used == 0 && !last {
                self.pending.len()
            } else {
                used
            };
            self.pending.drain(..used.min(self.pending.len()));
            self.done = ended || (last && self.pending.is_empty()) || (last && used == 0);
        }
        let n = buf.len().min(self.out.len() - self.served);
        buf[..n].copy_from_slice(&self.out[self.served..self.served + n]);
        self.served += n;
        Ok(n)
    }
}

/// Text that carries six bits a character (base64, BinHex): characters outside the alphabet
/// are skipped, as RFC 2045 asks of base64; the `end` character ends the data.
pub(crate) struct SixBits {
    values: &'static [u8; 256],
    end: u8,
    acc: u32,
    bits: u32,
}

/// A character outside a six-bit alphabet.
const NOT_IN_ALPHABET: u8 = 0xFF;

/// The value of each character in `alphabet`; `also` adds characters with the values of others
/// (URL-safe base64's `-` and `_`).
pub(crate) const fn six_bit_values(alphabet: &[u8; 64], also: &[(u8, u8)]) -> [u8; 256] {
    let mut values = [NOT_IN_ALPHABET; 256];
    let mut i = 0;
    while i < 64 {
        values[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    let mut j = 0;
    while j < also.len() {
        values[also[j].0 as usize] = also[j].1;
        j += 1;
    }
    values
}

static BASE64: [u8; 256] = six_bit_values(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    &[(b'-', 62), (b'_', 63)],
);

impl SixBits {
    pub(crate) fn new(values: &'static [u8; 256], end: u8) -> Self {
        SixBits {
            values,
            end,
            acc: 0,
            bits: 0,
        }
    }

    /// Base64, standard or URL-safe; `=` ends it.
    pub(crate) fn base64() -> Self {
        SixBits::new(&BASE64, b'=')
    }
}

impl SixBits {
    /// Decodes whole groups of four alphabet characters, three bytes a group, from the start of
    /// `input` while the accumulator is empty; returns how much input it used. Mail wraps base64
    /// in lines of whole groups, so this takes nearly all of it, and the careful path one
    /// character at a time is left for line breaks, stray characters and the end.
    fn decode_groups(&self, input: &[u8], out: &mut Vec<u8>) -> usize {
        let values = self.values;
        let group = |chars: &[u8]| -> Option<[u8; 3]> {
            let [a, b, c, d] =
                [chars[0], chars[1], chars[2], chars[3]].map(|c| values[usize::from(c)]);
            // Values in the alphabet are below 64; NOT_IN_ALPHABET has the top bits set.
            if (a | b | c | d) & 0xC0 != 0 {
                return None;
            }
            let n = u32::from(a) << 18 | u32::from(b) << 12 | u32::from(c) << 6 | u32::from(d);
            Some([(n >> 16) as u8, (n >> 8) as u8, n as u8])
        };
        let mut used = 0;
        // Sixteen groups (a 76-character mail line holds nineteen) go out in one copy.
        let mut block = [0u8; 48];
        'blocks: for chars in input.chunks_exact(64) {
            for (i, four) in chars.chunks_exact(4).enumerate() {
                let Some(bytes) = group(four) else {
                    out.extend_from_slice(&block[..i * 3]);
                    used += i * 4;
                    break 'blocks;
                };
                block[i * 3..i * 3 + 3].copy_from_slice(&bytes);
            }
            out.extend_from_slice(&block);
            used += 64;
        }
        for four in input[used..].chunks_exact(4) {
            let Some(bytes) = group(four) else { break };
            out.extend_from_slice(&bytes);
            used += 4;
        }
        used
    }
}

impl Transfer for SixBits {
    fn decode(&mut self, input: &[u8], _last: bool, out: &mut Vec<u8>) -> (usize, bool) {
        out.reserve(input.len() / 4 * 3 + 3);
        let mut i = 0;
        while i < input.len() {
            // The end character is outside the alphabet, so whole groups never pass over it.
            if self.bits == 0 {
                i += self.decode_groups(&input[i..], out);
                if i == input.len() {
                    break;
                }
            }
            let c = input[i];
            i += 1;
            if c == self.end {
                return (i, true);
            }
            let value = self.values[usize::from(c)];
            if value == NOT_IN_ALPHABET {
                continue;
            }
            self.acc = (self.acc << 6) | u32::from(value);
            self.bits += 6;
            if self.bits >= 8 {
                self.bits -= 8;
                out.push((self.acc >> self.bits) as u8);
                self.acc &= (1 << self.bits) - 1;
            }
        }
        (input.len(), false)
    }
}

/// Quoted-printable (RFC 2045): `=XX` escapes and `=` soft line breaks; anything else, including
/// malformed escapes, passes through as it is.
#[derive(Default)]
pub(crate) struct QuotedPrintable;

impl Transfer for QuotedPrintable {
    fn decode(&mut self, input: &[u8], last: bool, out: &mut Vec<u8>) -> (usize, bool) {
        let mut i = 0;
        while i < input.len() {
            // Runs of plain characters are copied whole.
            let plain = memchr::memchr(b'=', &input[i..]).unwrap_or(input.len() - i);
            out.extend_from_slice(&input[i..i + plain]);
            i += plain;
            if i == input.len() {
                break;
            }
            let c = input[i];
            if input.len() - i < 3 && !last {
                return (i, false);
            }
            match (input.get(i + 1), input.get(i + 2)) {
                (Some(b'\r'), Some(b'\n')) => i += 3,
                (Some(b'\n'), _) => i += 2,
                (Some(&h), Some(&l)) if hex_value(h).is_some() && hex_value(l).is_some() => {
                    out.push(hex_value(h).unwrap_or(0) << 4 | hex_value(l).unwrap_or(0));
                    i += 3;
                }
                _ => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        (i, false)
    }
}

/// The body of a uuencoded file, after its `begin` line: each line's first character gives its
/// byte count, then four characters carry three bytes; `end` (or a zero-length line) ends it.
#[derive(Default)]
pub(crate) struct Uuencode;

impl Transfer for Uuencode {
    fn decode(&mut self, input: &[u8], last: bool, out: &mut Vec<u8>) -> (usize, bool) {
        let mut at = 0;
        loop {
            let rest = &input[at..];
            let (line, next) = match memchr::memchr(b'\n', rest) {
                Some(end) => (&rest[..end], at + end + 1),
                None if last && !rest.is_empty() => (rest, input.len()),
                None => return (at, false),
            };
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.starts_with(b"end") {
                return (next, true);
            }
            let Some((&count, chars)) = line.split_first() else {
                at = next;
                continue;
            };
            let count = usize::from(count.wrapping_sub(b' ') & 0x3F);
            if count == 0 {
                return (next, true);
            }
            let start = out.len();
            for group in chars.chunks(4) {
                let mut sextets = [0u8; 4];
                for (s, &c) in sextets.iter_mut().zip(group) {
                    *s = c.wrapping_sub(b' ') & 0x3F;
                }
                out.push(sextets[0] << 2 | sextets[1] >> 4);
                out.push(sextets[1] << 4 | sextets[2] >> 2);
                out.push(sextets[2] << 6 | sextets[3]);
            }
            out.truncate(start + count.min(out.len() - start));
            at = next;
            if at >= input.len() {
                return (at, false);
            }
        }
    }
}

/// Hex digit pairs, white space between them skipped; any other character ends the data (`>`
/// in PDF, `}` in RTF). An odd last digit counts as if followed by 0.
#[derive(Default)]
pub(crate) struct Hex {
    high: Option<u8>,
}

impl Transfer for Hex {
    fn decode(&mut self, input: &[u8], last: bool, out: &mut Vec<u8>) -> (usize, bool) {
        for (i, &c) in input.iter().enumerate() {
            if c.is_ascii_whitespace() {
                continue;
            }
            let Some(value) = hex_value(c) else {
                self.flush(out);
                return (i + 1, true);
            };
            match self.high.take() {
                Some(high) => out.push(high << 4 | value),
                None => self.high = Some(value),
            }
        }
        if last {
            self.flush(out);
        }
        (input.len(), false)
    }
}

impl Hex {
    fn flush(&mut self, out: &mut Vec<u8>) {
        if let Some(high) = self.high.take() {
            out.push(high << 4);
        }
    }
}

/// ASCII85 as PDF's ASCII85Decode uses it: groups of five characters `!`..`u` for four bytes,
/// `z` for four zero bytes, `~>` at the end.
#[derive(Default)]
pub(crate) struct Ascii85 {
    group: [u8; 5],
    len: usize,
}

impl Transfer for Ascii85 {
    fn decode(&mut self, input: &[u8], last: bool, out: &mut Vec<u8>) -> (usize, bool) {
        for (i, &c) in input.iter().enumerate() {
            match c {
                b'!'..=b'u' => {
                    self.group[self.len] = c - b'!';
                    self.len += 1;
                    if self.len == 5 {
                        self.emit(out);
                    }
                }
                b'z' if self.len == 0 => out.extend_from_slice(&[0; 4]),
                b'~' => {
                    self.emit(out);
                    return (i + 1, true);
                }
                c if c.is_ascii_whitespace() => {}
                _ => {
                    self.emit(out);
                    return (i + 1, true);
                }
            }
        }
        if last {
            self.emit(out);
        }
        (input.len(), false)
    }
}

impl Ascii85 {
    /// Writes the current group; a partial group of n characters is padded with `u` and gives
    /// n - 1 bytes.
    fn emit(&mut self, out: &mut Vec<u8>) {
        if self.len < 2 {
            self.len = 0;
            return;
        }
        let mut value: u32 = 0;
        for i in 0..5 {
            let digit = if i < self.len { self.group[i] } else { 84 };
            value = value.wrapping_mul(85).wrapping_add(u32::from(digit));
        }
        out.extend_from_slice(&value.to_be_bytes()[..self.len - 1]);
        self.len = 0;
    }
}

/// Percent-encoding (`%XX`), as in a data URI without `;base64`; other bytes are themselves.
#[derive(Default)]
pub(crate) struct Percent;

impl Transfer for Percent {
    fn decode(&mut self, input: &[u8], last: bool, out: &mut Vec<u8>) -> (usize, bool) {
        let mut i = 0;
        while i < input.len() {
            if input[i] != b'%' {
                out.push(input[i]);
                i += 1;
                continue;
            }
            if input.len() - i < 3 && !last {
                return (i, false);
            }
            match (
                input.get(i + 1).and_then(|&c| hex_value(c)),
                input.get(i + 2).and_then(|&c| hex_value(c)),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            }
        }
        (i, false)
    }
}

pub(crate) fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode<T: Transfer>(input: &[u8], transfer: T) -> Vec<u8> {
        let mut out = Vec::new();
        Decoder::new(input, transfer)
            .read_to_end(&mut out)
            .expect("decodes");
        out
    }

    #[test]
    fn base64_skips_line_breaks_and_stops_at_padding() {
        assert_eq!(
            decode(b"aGVs\r\nbG8g\nd29y bGQ=trailing", SixBits::base64()),
            b"hello world"
        );
        assert_eq!(decode(b"aGk", SixBits::base64()), b"hi");
    }

    #[test]
    fn base64_across_step_boundaries() {
        let text: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let encoded = base64_encode(&text);
        assert_eq!(decode(&encoded, SixBits::base64()), text);
    }

    /// Base64 with stray characters anywhere (inside groups too, so the group path must hand
    /// over mid-group) decodes as a character-at-a-time decoder that skips them would.
    #[test]
    fn base64_groups_and_stray_characters_agree_with_one_at_a_time() {
        let data: Vec<u8> = (0..50_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let clean = base64_encode(&data);
        let mut noisy = Vec::new();
        for (i, &c) in clean.iter().enumerate() {
            noisy.push(c);
            match i % 97 {
                5 => noisy.push(b' '),
                41 => noisy.extend_from_slice(b"\t!"),
                _ => {}
            }
        }
        // URL-safe characters mixed in: both alphabets are read.
        let noisy: Vec<u8> = noisy
            .iter()
            .map(|&c| match c {
                b'+' => b'-',
                other => other,
            })
            .collect();
        assert_eq!(decode(&noisy, SixBits::base64()), data);

        let mut reference = Vec::new();
        let (mut acc, mut bits) = (0u32, 0u32);
        for &c in &noisy {
            let value = BASE64[usize::from(c)];
            if value == NOT_IN_ALPHABET {
                continue;
            }
            acc = (acc << 6) | u32::from(value);
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                reference.push((acc >> bits) as u8);
                acc &= (1 << bits) - 1;
            }
        }
        assert_eq!(reference, data);
    }

    #[test]
    fn quoted_printable_long_runs_across_steps() {
        let mut encoded = Vec::new();
        let mut expected = Vec::new();
        for i in 0..5_000 {
            encoded.extend_from_slice(b"plain text of a line ");
            expected.extend_from_slice(b"plain text of a line ");
            if i % 3 == 0 {
                encoded.extend_from_slice(b"=3D=\r\n");
                expected.push(b'=');
            }
        }
        assert_eq!(decode(&encoded, QuotedPrintable), expected);
    }

    fn base64_encode(data: &[u8]) -> Vec<u8> {
        use base64::Engine;
        let line = base64::engine::general_purpose::STANDARD.encode(data);
        line.as_bytes()
            .chunks(76)
            .flat_map(|l| l.iter().copied().chain(*b"\r\n"))
            .collect()
    }

    #[test]
    fn quoted_printable_escapes_and_soft_breaks() {
        assert_eq!(
            decode(b"a=3Db=\r\nc=\nd =XY=4", QuotedPrintable),
            b"a=bcd =XY=4"
        );
    }

    #[test]
    fn uuencode_lines_and_end() {
        // "Cat" uuencoded.
        assert_eq!(decode(b"#0V%T\n`\nend\n", Uuencode), b"Cat");
    }

    #[test]
    fn hex_skips_space_and_stops_at_other_characters() {
        assert_eq!(decode(b"48 65\n6c6C6f}rest", Hex::default()), b"Hello");
        assert_eq!(decode(b"4>", Hex::default()), b"\x40");
    }

    #[test]
    fn ascii85_groups_z_and_end() {
        assert_eq!(
            decode(b"87cURD]i,\"Ebo80~>", Ascii85::default()),
            b"Hello World!"
        );
        assert_eq!(decode(b"z~>", Ascii85::default()), [0u8; 4]);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(decode(b"a%20b%zz%4", Percent), b"a b%zz%4");
    }
}
