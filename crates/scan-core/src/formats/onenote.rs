//! OneNote sections (`.one`): files attached to a page are stored whole in
//! `FileDataStoreObject` structures (MS-ONESTORE 2.6.13), each taken at the length its own
//! header declares (not to the end of the section, nor to the next object) as a member named
//! `embedded-N`.

use memchr::memmem;

use super::Format;
use crate::formats::members::{Declared, Members};
use crate::verdict::Reason;

pub(super) const FORMAT: Format = Format {
    name: "onenote",
    identify: |data| data.starts_with(&SECTION),
    expand,
};

/// The file format GUID of a section, {7B5C52E4-D88C-4DA7-AEB1-5378D02996D3}, as stored.
const SECTION: [u8; 16] = [
    0xE4, 0x52, 0x5C, 0x7B, 0x8C, 0xD8, 0xA7, 0x4D, 0xAE, 0xB1, 0x53, 0x78, 0xD0, 0x29, 0x96, 0xD3,
];
/// A FileDataStoreObject's header GUID, {BDE316E7-2665-4511-A4C4-8D4D0B7A9EAC}, as stored.
const FILE_DATA_HEADER: [u8; 16] = [
    0xE7, 0x16, 0xE3, 0xBD, 0x65, 0x26, 0x11, 0x45, 0xA4, 0xC4, 0x8D, 0x4D, 0x0B, 0x7A, 0x9E, 0xAC,
];
/// The GUID, the 8-byte length, 4 unused and 8 reserved bytes: the file data starts here.
const DATA_AT: usize = 16 + 8 + 4 + 8;

fn expand(members: &mut Members<'_>, data: &[u8]) {
    for (index, at) in memmem::find_iter(data, &FILE_DATA_HEADER).enumerate() {
        if members.stopped() {
            return;
        }
        let name = format!("embedded-{}", index + 1);
        let Some(length) = data
            .get(at + 16..at + 24)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
        else {
            return members.corrupt("OneNote section", "a file object is cut short");
        };
        let start = at + DATA_AT;
        let end = usize::try_from(length)
            .ok()
            .and_then(|length| start.checked_add(length))
            .filter(|&end| end <= data.len());
        match end {
            Some(end) => {
                members.member(&name, Declared::size(length), &mut &data[start..end], None);
            }
            None => {
                let child = members.child(&name);
                members.member_problem(
                    &child,
                    Reason::Corrupt,
                    format!("the file object declares {length} bytes, more than the section holds"),
                );
            }
        }
    }
}
