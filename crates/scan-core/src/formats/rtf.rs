//! RTF documents: embedded objects (`\objdata`, hex-encoded OLE1 objects) decoded to what they
//! carry (a packaged file, or an OLE2 document that is then opened in turn), and raw `\binN`
//! data.

use memchr::memmem;

use super::Format;
use super::ole::package;
use super::text::{Decoder, Hex};
use crate::expand::{Declared, Members};

pub(super) const FORMAT: Format = Format {
    name: "rtf",
    // Word opens anything that starts `{\rt`, and so do exploits; so must identification.
    identify: |data| data.starts_with(b"{\\rt"),
    expand,
};

fn expand(members: &mut Members<'_, '_>, data: &[u8]) {
    for (index, at) in memmem::find_iter(data, b"\\objdata").enumerate() {
        if members.stopped() {
            return;
        }
        let hex = &data[at + 8..];
        let child = members.child(&format!("objdata-{}", index + 1));
        if !members.admit(&child, Declared::size(hex.len() as u64 / 2 + 1)) {
            continue;
        }
        let Ok(decoded) = members.spool(&child, &mut Decoder::new(hex, Hex::default()), None)
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
    for at in memmem::find_iter(data, b"\\bin") {
        if members.stopped() {
            return;
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
