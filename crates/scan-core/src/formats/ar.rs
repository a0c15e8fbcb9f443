//! Unix `ar` archives: `.deb` packages and static libraries.

use std::io::Cursor;

use super::Format;
use crate::formats::members::{Declared, Exact, Members, Taken};

pub(super) const FORMAT: Format = Format {
    name: "ar",
    identify: |data| data.starts_with(b"!<arch>\n"),
    expand,
};

fn expand(members: &mut Members<'_>, data: &[u8]) {
    let mut archive = ar::Archive::new(Cursor::new(data));
    while let Some(entry) = archive.next_entry() {
        if members.stopped() {
            return;
        }
        let mut entry = match entry {
            Ok(entry) => entry,
            Err(e) => return members.corrupt("ar archive", e),
        };
        let name = String::from_utf8_lossy(entry.header().identifier()).into_owned();
        let size = entry.header().size();
        let child = members.child(&name);
        if !members.admit(&child, Declared::size(size)) {
            continue;
        }
        if members.read(&child, &mut Exact::new(&mut entry, size), None) == Taken::Broken {
            return;
        }
    }
}
