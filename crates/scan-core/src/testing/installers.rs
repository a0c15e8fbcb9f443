//! Builders for installer and help-file carriers that no Debian tool writes, made by hand from
//! their formats' descriptions.

/// A CHM help file (ITSF version 3) with `stored` files in the uncompressed section and
/// `compressed` files in the LZX section. The LZX stream is made of uncompressed blocks, one
/// per 32 KiB frame, with the decoder reset at every frame, so the reset table and the frame
/// alignment are exercised as a real help compiler lays them out.
pub fn chm(stored: &[(&str, &[u8])], compressed: &[(&str, &[u8])]) -> Vec<u8> {
    const FRAME: usize = 0x8000;
    let section1: Vec<u8> = compressed
        .iter()
        .flat_map(|(_, d)| d.iter().copied())
        .collect();
    let mut lzx = Vec::new();
    let mut frames = Vec::new();
    for frame in section1.chunks(FRAME) {
        frames.push(lzx.len() as u64);
        // No E8 translation (1 bit), block type 3 (uncompressed), its 24-bit size, then
        // padding to the 16-bit boundary, in 16-bit little-endian words read from the top.
        let bits = (3u32 << 28) | ((frame.len() as u32) << 4);
        lzx.extend_from_slice(&((bits >> 16) as u16).to_le_bytes());
        lzx.extend_from_slice(&(bits as u16).to_le_bytes());
        for _ in 0..3 {
            lzx.extend_from_slice(&1u32.to_le_bytes()); // R0, R1, R2
        }
        lzx.extend_from_slice(frame);
        if frame.len() % 2 == 1 {
            lzx.push(0);
        }
    }
    let mut control = Vec::new();
    for word in [6u32, u32::from_le_bytes(*b"LZXC"), 2, 1, 2, 1, 0] {
        control.extend_from_slice(&word.to_le_bytes());
    }
    let mut table = Vec::new();
    for word in [2u32, frames.len() as u32, 8, 0x28] {
        table.extend_from_slice(&word.to_le_bytes());
    }
    for value in [section1.len() as u64, lzx.len() as u64, FRAME as u64] {
        table.extend_from_slice(&value.to_le_bytes());
    }
    for offset in &frames {
        table.extend_from_slice(&offset.to_le_bytes());
    }

    // Section 0 holds the stored files, then the LZX section's own three entries.
    let mut content = Vec::new();
    let mut entries: Vec<(String, u64, u64, u64)> = Vec::new();
    let reset_table = "::DataSpace/Storage/MSCompressed/Transform/\
        {7FC28940-9D31-11D0-9B27-00A0C91E9C7C}/InstanceData/ResetTable";
    let internal: [(&str, &[u8]); 3] = [
        ("::DataSpace/Storage/MSCompressed/ControlData", &control),
        (reset_table, &table),
        ("::DataSpace/Storage/MSCompressed/Content", &lzx),
    ];
    for (name, data) in stored.iter().chain(internal.iter()) {
        entries.push((name.to_string(), 0, content.len() as u64, data.len() as u64));
        content.extend_from_slice(data);
    }
    let mut offset = 0u64;
    for (name, data) in compressed {
        entries.push((format!("/{name}"), 1, offset, data.len() as u64));
        offset += data.len() as u64;
    }
    entries.push(("/".into(), 0, 0, 0));

    const CHUNK: usize = 0x1000;
    let mut listing = Vec::new();
    for (name, section, offset, length) in &entries {
        listing.extend(encint(name.len() as u64));
        listing.extend_from_slice(name.as_bytes());
        for value in [*section, *offset, *length] {
            listing.extend(encint(value));
        }
    }
    assert!(
        listing.len() + 20 <= CHUNK,
        "one listing chunk is enough for tests"
    );
    let mut chunk = b"PMGL".to_vec();
    chunk.extend_from_slice(&((CHUNK - 20 - listing.len()) as u32).to_le_bytes());
    chunk.extend_from_slice(&0u32.to_le_bytes());
    chunk.extend_from_slice(&(-1i32).to_le_bytes());
    chunk.extend_from_slice(&(-1i32).to_le_bytes());
    chunk.extend_from_slice(&listing);
    chunk.resize(CHUNK, 0);

    let mut directory = b"ITSP".to_vec();
    for word in [
        1u32,
        0x54,
        0x0A,
        CHUNK as u32,
        2,
        1,
        u32::MAX,
        0,
        0,
        u32::MAX,
        1,
        0x409,
    ] {
        directory.extend_from_slice(&word.to_le_bytes());
    }
    directory.extend_from_slice(&[0; 16]);
    for word in [0x54u32, u32::MAX, u32::MAX, u32::MAX] {
        directory.extend_from_slice(&word.to_le_bytes());
    }
    directory.extend_from_slice(&chunk);

    let header_len = 0x60u64;
    let section0_len = 0x18u64;
    let dir_at = header_len + section0_len;
    let content_at = dir_at + directory.len() as u64;
    let mut out = b"ITSF".to_vec();
    for word in [3u32, header_len as u32, 1, 0, 0x409] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    out.extend_from_slice(&[0; 32]);
    for value in [
        header_len,
        section0_len,
        dir_at,
        directory.len() as u64,
        content_at,
    ] {
        out.extend_from_slice(&value.to_le_bytes());
    }
    out.resize(header_len as usize, 0);
    let mut section0 = vec![0xFE, 0x01, 0, 0, 0, 0, 0, 0];
    section0.extend_from_slice(&(content_at + content.len() as u64).to_le_bytes());
    section0.resize(section0_len as usize, 0);
    out.extend_from_slice(&section0);
    out.extend_from_slice(&directory);
    out.extend_from_slice(&content);
    out
}

/// A CHM variable-length integer: seven bits a byte, most significant first.
fn encint(mut value: u64) -> Vec<u8> {
    let mut bytes = vec![(value & 0x7F) as u8];
    value >>= 7;
    while value > 0 {
        bytes.push((value & 0x7F) as u8 | 0x80);
        value >>= 7;
    }
    bytes.reverse();
    bytes
}

/// A Symbian installation file (SIS, EPOC release 6) installing `files` to `!:\<name>`, each
/// deflated with zlib unless `stored`, one language.
pub fn sis(files: &[(&str, &[u8])], stored: bool) -> Vec<u8> {
    use std::io::Write;
    let names: Vec<Vec<u8>> = files
        .iter()
        .map(|(name, _)| {
            format!("!:\\{name}")
                .encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect()
        })
        .collect();
    let bodies: Vec<Vec<u8>> = files
        .iter()
        .map(|(_, data)| {
            if stored {
                return data.to_vec();
            }
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
            z.write_all(data).unwrap();
            z.finish().unwrap()
        })
        .collect();
    const HEADER: usize = 0x64;
    let languages_at = HEADER;
    let records_at = languages_at + 2;
    let record_len = 4 * 12;
    let mut strings_at = records_at + record_len * files.len();
    let mut header = vec![0u8; HEADER];
    for (at, word) in [(0, 0x1000_0001u32), (4, 0x1000_3A12), (8, 0x1000_0419)] {
        header[at..at + 4].copy_from_slice(&word.to_le_bytes());
    }
    header[18..20].copy_from_slice(&1u16.to_le_bytes());
    header[20..22].copy_from_slice(&(files.len() as u16).to_le_bytes());
    header[32..36].copy_from_slice(&200u32.to_le_bytes());
    let options: u16 = if stored { 0x0001 | 0x0008 } else { 0x0001 };
    header[36..38].copy_from_slice(&options.to_le_bytes());
    header[48..52].copy_from_slice(&(languages_at as u32).to_le_bytes());
    header[52..56].copy_from_slice(&(records_at as u32).to_le_bytes());
    let mut out = header;
    out.extend_from_slice(&1u16.to_le_bytes()); // English
    let mut strings = Vec::new();
    let mut data_at = strings_at + names.iter().map(Vec::len).sum::<usize>();
    for ((name, body), (_, original)) in names.iter().zip(&bodies).zip(files) {
        let words = [
            0u32, // a simple file record
            0,    // a standard file
            0,    // no details
            0,    // no source name
            0,
            name.len() as u32,
            strings_at as u32,
            body.len() as u32,
            data_at as u32,
            original.len() as u32,
            0, // no MIME type
            0,
        ];
        for word in words {
            out.extend_from_slice(&word.to_le_bytes());
        }
        strings.extend_from_slice(name);
        strings_at += name.len();
        data_at += body.len();
    }
    out.extend_from_slice(&strings);
    for body in &bodies {
        out.extend_from_slice(body);
    }
    out
}

/// An executable packed the way UPX packs one: `UPX0` and `UPX1` sections, UPX's pack header
/// at the end of the headers, then `image` as an NRV2B (LE32) stream. The stream is written
/// with literals only (each a flag bit and its byte) and the end marker, which is all a
/// decoder needs to reproduce the image.
pub fn upx(image: &[u8]) -> Vec<u8> {
    let stream = nrv2b_literals(image);
    let mut out = super::pe();
    out.truncate(0x3E0);
    let section = 0x98 + 0xE0;
    out[0x86..0x88].copy_from_slice(&2u16.to_le_bytes());
    out[section..section + 8].copy_from_slice(b"UPX0\0\0\0\0");
    out[section + 16..section + 24].copy_from_slice(&[0; 8]);
    let second = section + 40;
    out[second..second + 8].copy_from_slice(b"UPX1\0\0\0\0");
    out[second + 16..second + 20].copy_from_slice(&(stream.len() as u32).to_le_bytes());
    out[second + 20..second + 24].copy_from_slice(&0x400u32.to_le_bytes());
    let mut header = b"UPX!".to_vec();
    header.extend_from_slice(&[13, 9, 2, 8]); // version, win32/pe, NRV2B_LE32, level
    header.extend_from_slice(&[0; 8]); // checksums
    header.extend_from_slice(&(image.len() as u32).to_le_bytes());
    header.extend_from_slice(&(stream.len() as u32).to_le_bytes());
    header.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&header);
    out.extend_from_slice(&stream);
    out
}

/// `data` as NRV2B LE32 literals and the end marker: flag bits go into 32-bit little-endian
/// words, each placed where the decoder will want its next word, between the bytes.
fn nrv2b_literals(data: &[u8]) -> Vec<u8> {
    struct Writer {
        out: Vec<u8>,
        word_at: usize,
        word: u32,
        used: u32,
    }
    impl Writer {
        fn bit(&mut self, bit: u32) {
            if self.used == 32 {
                self.flush();
                self.word_at = self.out.len();
                self.out.extend_from_slice(&[0; 4]);
                self.used = 0;
            }
            self.word |= bit << (31 - self.used);
            self.used += 1;
        }
        fn flush(&mut self) {
            if let Some(slot) = self.out.get_mut(self.word_at..self.word_at + 4) {
                slot.copy_from_slice(&self.word.to_le_bytes());
            }
            self.word = 0;
        }
    }
    let mut w = Writer {
        out: Vec::new(),
        word_at: 0,
        word: 0,
        used: 32,
    };
    for &byte in data {
        w.bit(1);
        w.out.push(byte);
    }
    w.bit(0);
    // The end: an offset code of 0x1000002 (its bits after the leading one, each followed by
    // a stop bit), then the byte 0xFF.
    let code = 0x100_0002u32;
    let bits = 32 - code.leading_zeros();
    for i in (0..bits - 1).rev() {
        w.bit((code >> i) & 1);
        w.bit(u32::from(i == 0));
    }
    w.out.push(0xFF);
    w.flush();
    w.out
}
