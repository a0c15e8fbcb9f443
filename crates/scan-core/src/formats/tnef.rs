//! TNEF (`winmail.dat`, Outlook's rich-text wrapper): attachments are `attAttachData` records,
//! named by the `attAttachTitle` record of the same attachment.

use super::Format;
use crate::formats::members::Members;

pub(super) const FORMAT: Format = Format {
    name: "tnef",
    identify: |data| data.starts_with(&SIGNATURE.to_le_bytes()),
    expand,
};

const SIGNATURE: u32 = 0x223E_9F78;
const LEVEL_ATTACHMENT: u8 = 2;
const ATT_ATTACH_RENDDATA: u32 = 0x0006_9002;
const ATT_ATTACH_TITLE: u32 = 0x0001_8010;
const ATT_ATTACH_DATA: u32 = 0x0006_800F;

fn expand(members: &mut Members<'_>, data: &[u8]) {
    // Signature (4) and key (2), then records: level (1), id (4), length (4), data, checksum (2).
    // An attachment's title may come before or after its data, so the data is yielded when
    // the attachment ends (at the next one, or the end of the file).
    let mut at = 6;
    let mut attachment = Attachment::default();
    let mut count = 0;
    while at < data.len() {
        if members.stopped() {
            return;
        }
        let Some(header) = data.get(at..at + 9) else {
            // Mail gateways leave a line break or padding after the last record.
            if !data[at..]
                .iter()
                .all(|b| b.is_ascii_whitespace() || *b == 0)
            {
                members.corrupt("TNEF", "a record header is cut short");
            }
            break;
        };
        let level = header[0];
        let id = u32::from_le_bytes([header[1], header[2], header[3], header[4]]);
        let len = u32::from_le_bytes([header[5], header[6], header[7], header[8]]) as usize;
        let body_start = at + 9;
        let body_end = body_start.saturating_add(len);
        let body = body_start..body_end.min(data.len());
        if level == LEVEL_ATTACHMENT {
            match id {
                ATT_ATTACH_RENDDATA => attachment.finish(members, data, &mut count),
                ATT_ATTACH_TITLE => {
                    let name: String = data[body]
                        .iter()
                        .take_while(|b| **b != 0)
                        .map(|&b| char::from(b))
                        .collect();
                    let base = name.rsplit(['/', '\\']).next().unwrap_or("").to_owned();
                    attachment.title = (!base.is_empty()).then_some(base);
                }
                ATT_ATTACH_DATA => attachment.data = Some(body),
                _ => {}
            }
        }
        if body_end > data.len() {
            members.corrupt("TNEF", "a record runs past the end of the data");
            break;
        }
        at = body_end + 2;
    }
    attachment.finish(members, data, &mut count);
}

#[derive(Default)]
struct Attachment {
    title: Option<String>,
    data: Option<std::ops::Range<usize>>,
}

impl Attachment {
    /// Yields the attachment's data, if it had any, and starts the next one.
    fn finish(&mut self, members: &mut Members<'_>, data: &[u8], count: &mut usize) {
        let done = std::mem::take(self);
        if let Some(range) = done.data {
            *count += 1;
            let name = done.title.unwrap_or_else(|| format!("attachment-{count}"));
            members.bytes(&name, &data[range]);
        }
    }
}
