//! RTF documents: embedded objects (`\objdata`, hex-encoded OLE1 objects) decoded to what they
//! carry (a packaged file, or an OLE2 document that is then opened in turn), and raw `\binN`
//! data.

use memchr::memmem;

use super::Format;
use super::ole::package;
use super::text::{Decoder, Transfer, hex_value};
use crate::formats::members::{Declared, Members};

pub(super) const FORMAT: Format = Format {
    name: "rtf",
    // Word opens anything that starts `{\rt`, and so do exploits; so must identification.
    identify: |data| data.starts_with(b"{\\rt"),
    expand,
};

fn expand(members: &mut Members<'_>, data: &[u8]) {
    for (index, at) in memmem::find_iter(data, b"\\objdata").enumerate() {
        if members.stopped() {
            return;
        }
        let hex = &data[at + 8..];
        let child = members.child(&format!("objdata-{}", index + 1));
        if !members.admit(&child, Declared::size(hex.len() as u64 / 2 + 1)) {
            continue;
        }
        let Ok(decoded) = members.spool(&child, &mut Decoder::new(hex, ObjectHex::default()), None)
        else {
            continue;
        };
        match ole1_native(decoded.as_slice()) {
            Some((class, native)) if class.eq_ignore_ascii_case("Package") => {
                let prefix = format!("objdata-{}", index + 1);
                package(members, &mut &native[..], &prefix);
            }
            Some((class, native)) => {
                let class: String = class.chars().filter(|c| c.is_ascii_graphic()).collect();
                members.bytes(&format!("objdata-{}.{class}", index + 1), native);
            }
            None => members.walk(&child, &decoded),
        }
    }
    let objects: Vec<usize> = memmem::find_iter(data, b"\\objdata").collect();
    for at in memmem::find_iter(data, b"\\bin") {
        if members.stopped() {
            return;
        }
        // Raw data of an object's group was read with the object above.
        let in_object = objects
            .iter()
            .rev()
            .find(|&&o| o < at)
            .is_some_and(|&o| !data[o..at].contains(&b'}'));
        if in_object {
            continue;
        }
        let rest = &data[at + 4..];
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let Ok(len) = std::str::from_utf8(&rest[..digits])
            .unwrap_or("")
            .parse::<usize>()
        else {
            continue;
        };
        // One space may delimit the control word; the data follows.
        let start = digits + usize::from(rest.get(digits) == Some(&b' '));
        let end = start.saturating_add(len).min(rest.len());
        if start < end {
            members.bytes(&format!("bin@{at}"), &rest[start..end]);
        }
    }
}

/// The hex digits of an `\objdata` group, read as Word reads them: white space, control words
/// (`\foo`, `\foo-12 `), control symbols and nested groups between the digits are skipped, which
/// is how exploit documents hide their objects from simpler readers; `\binN` is followed by N
/// bytes of the object as they are (not hex), as Word takes them; the `}` closing the group
/// ends the data.
#[derive(Default)]
struct ObjectHex {
    high: Option<u8>,
    depth: usize,
    state: Skip,
    /// The control word being read, when it may still be `bin`.
    word: Vec<u8>,
    /// Its numeric parameter so far.
    parameter: u64,
    /// Raw bytes of a `\binN` still to copy.
    raw: u64,
}

/// What the reader is in the middle of skipping.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Skip {
    #[default]
    Nothing,
    /// Just after a backslash.
    Backslash,
    /// The letters of a control word.
    Word,
    /// Its numeric parameter.
    Parameter,
    /// The two hex digits of `\'hh`.
    Escaped(u8),
}

impl ObjectHex {
    /// A control word just ended: a `\binN` starts N raw bytes (kept when they are the
    /// object's own, skipped inside a nested group, but never read as braces or hex).
    fn word_ended(&mut self) {
        if self.word == b"bin" {
            self.raw = self.parameter;
        }
        self.word.clear();
        self.parameter = 0;
    }
}

impl Transfer for ObjectHex {
    fn decode(&mut self, input: &[u8], _last: bool, out: &mut Vec<u8>) -> (usize, bool) {
        let mut i = 0;
        while i < input.len() {
            if self.raw > 0 {
                let n = (self.raw.min((input.len() - i) as u64)) as usize;
                if self.depth == 0 {
                    out.extend_from_slice(&input[i..i + n]);
                }
                self.raw -= n as u64;
                i += n;
                continue;
            }
            let c = input[i];
            i += 1;
            match self.state {
                Skip::Backslash => {
                    self.state = match c {
                        b'a'..=b'z' | b'A'..=b'Z' => {
                            self.word.clear();
                            self.word.push(c);
                            Skip::Word
                        }
                        b'\'' => Skip::Escaped(2),
                        _ => Skip::Nothing,
                    };
                    continue;
                }
                Skip::Word if c.is_ascii_alphabetic() => {
                    if self.word.len() < 8 {
                        self.word.push(c);
                    }
                    continue;
                }
                Skip::Word | Skip::Parameter
                    if c.is_ascii_digit() || (c == b'-' && self.state == Skip::Word) =>
                {
                    if c.is_ascii_digit() {
                        self.parameter = self
                            .parameter
                            .saturating_mul(10)
                            .saturating_add(u64::from(c - b'0'));
                    }
                    self.state = Skip::Parameter;
                    continue;
                }
                Skip::Word | Skip::Parameter => {
                    self.state = Skip::Nothing;
                    self.word_ended();
                    // One space delimits a control word and belongs to it.
                    if c == b' ' {
                        continue;
                    }
                    if self.raw > 0 {
                        // The raw bytes start right here: this one is the first of them.
                        i -= 1;
                        continue;
                    }
                }
                Skip::Escaped(left) => {
                    self.state = if left > 1 {
                        Skip::Escaped(left - 1)
                    } else {
                        Skip::Nothing
                    };
                    continue;
                }
                Skip::Nothing => {}
            }
            match c {
                b'\\' => self.state = Skip::Backslash,
                b'{' => self.depth += 1,
                b'}' if self.depth == 0 => return (i, true),
                b'}' => self.depth -= 1,
                _ if self.depth > 0 => {}
                _ => {
                    if let Some(value) = hex_value(c) {
                        match self.high.take() {
                            Some(high) => out.push(high << 4 | value),
                            None => self.high = Some(value),
                        }
                    }
                }
            }
        }
        (input.len(), false)
    }
}

/// An OLE1 embedded object (MS-OLEDS 2.2.4): version, format id 2, then the class, topic and
/// item names with their lengths, then the native data with its size. Returns the class and
/// the native data.
fn ole1_native(data: &[u8]) -> Option<(String, &[u8])> {
    let mut at = 8;
    let format_id = u32::from_le_bytes(data.get(4..8)?.try_into().ok()?);
    if format_id != 2 {
        return None;
    }
    let mut class = String::new();
    for field in 0..3 {
        let len = u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?) as usize;
        let value = data.get(at + 4..(at + 4).checked_add(len)?)?;
        if field == 0 {
            class = value
                .iter()
                .take_while(|b| **b != 0)
                .map(|&b| char::from(b))
                .collect();
        }
        at += 4 + len;
    }
    let size = u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?) as usize;
    let native = data.get(at + 4..)?;
    Some((class, &native[..size.min(native.len())]))
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn decode(text: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Decoder::new(text, ObjectHex::default())
            .read_to_end(&mut out)
            .expect("decodes");
        out
    }

    #[test]
    fn objdata_hex_skips_what_word_skips() {
        assert_eq!(decode(b" 01 05\n00 00}rest"), [1, 5, 0, 0]);
        // Control words (digits right after one are its parameter, so a space must end it),
        // a control symbol, an escaped byte and a nested group.
        assert_eq!(
            decode(b"01\\par 05\\li-120 00{\\*\\junk ff}00\\~\\'41ab}"),
            [1, 5, 0, 0, 0xab]
        );
        // \binN: N raw bytes (here a brace and a backslash among them), then hex again.
        assert_eq!(
            decode(b"01\\bin4 }\\\xff\x00 02}"),
            [1, b'}', b'\\', 0xff, 0, 2]
        );
        assert_eq!(
            decode(b"\\bin2\x10\x20}"),
            [0x10, 0x20],
            "no space: the bytes follow the digits"
        );
    }
}
