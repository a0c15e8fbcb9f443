//! RPM packages: a lead, a signature header and a header (skipped by their declared sizes),
//! then the payload, a compressed cpio archive, yielded as `payload.cpio.<gz|bz2|xz|zst>` and
//! opened in turn.

use super::Format;
use crate::formats::members::Members;
use crate::verdict::Reason;

pub(super) const FORMAT: Format = Format {
    name: "rpm",
    identify: |data| {
        data.starts_with(&[0xED, 0xAB, 0xEE, 0xDB]) && matches!(data.get(4), Some(3 | 4))
    },
    expand,
};

/// The lead is a fixed 96 bytes.
const LEAD: usize = 96;
/// A header's own magic: 8E AD E8, version 1, then four reserved bytes.
const HEADER_MAGIC: [u8; 4] = [0x8E, 0xAD, 0xE8, 0x01];

/// The length of the header at `at`: its 16-byte intro, 16 bytes per index entry, its data.
fn header_len(data: &[u8], at: usize) -> Option<usize> {
    let intro = data.get(at..at + 16)?;
    if intro[..4] != HEADER_MAGIC {
        return None;
    }
    let entries = u32::from_be_bytes(intro[8..12].try_into().ok()?) as usize;
    let store = u32::from_be_bytes(intro[12..16].try_into().ok()?) as usize;
    let len = 16usize
        .checked_add(entries.checked_mul(16)?)?
        .checked_add(store)?;
    (at.checked_add(len)? <= data.len()).then_some(len)
}

fn expand(members: &mut Members<'_>, data: &[u8]) {
    let Some(signature) = header_len(data, LEAD) else {
        return members.corrupt("RPM package", "the signature header does not hold together");
    };
    // The signature header is padded to a multiple of 8 bytes; the header is not.
    let header_at = (LEAD + signature).next_multiple_of(8);
    let Some(header) = header_len(data, header_at) else {
        return members.corrupt("RPM package", "the header does not hold together");
    };
    let payload = &data[header_at + header..];
    let suffix = if payload.starts_with(b"\x1F\x8B") {
        "gz"
    } else if payload.starts_with(b"BZh") {
        "bz2"
    } else if payload.starts_with(b"\xFD7zXZ\x00") {
        "xz"
    } else if payload.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]) {
        "zst"
    } else if payload.starts_with(b"070701") || payload.starts_with(b"070702") {
        ""
    } else {
        return members.problem(
            Reason::Unsupported,
            "the RPM payload is compressed in a way that is not decoded, so it was not examined",
        );
    };
    let name = if suffix.is_empty() {
        "payload.cpio".to_owned()
    } else {
        format!("payload.cpio.{suffix}")
    };
    members.bytes(&name, payload);
}
