//! Builders for test objects: the EICAR test file, archives and documents of every supported
//! format, and bombs. Everything is generated at run time; nothing live is ever stored in the repository.
//! Enabled by the `test-support` feature; panics on failure, as test helpers should.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::io::{Cursor, Write};

mod documents;
mod installers;
pub use documents::*;
pub use installers::*;

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

/// The 68-byte EICAR anti-virus test file, assembled from parts so that no source file contains
/// it whole.
pub fn eicar() -> Vec<u8> {
    let parts = [
        "X5O!P%@AP[4\\PZX54(P^)7CC)7}$",
        "EICAR-STANDARD-ANTIVIRUS-",
        "TEST-FILE!$H+H*",
    ];
    parts.concat().into_bytes()
}

/// A zip of `(name, bytes)` entries, deflated.
pub fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    zip_with(entries, CompressionMethod::Deflated)
}

/// A zip of `(name, bytes)` entries with the given method.
pub fn zip_with(entries: &[(&str, &[u8])], method: CompressionMethod) -> Vec<u8> {
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(method)
        .large_file(false);
    for (name, data) in entries {
        writer.start_file(*name, options).unwrap();
        writer.write_all(data).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// A zip whose entries are AES-256 encrypted with `password`.
pub fn zip_encrypted(entries: &[(&str, &[u8])], password: &str) -> Vec<u8> {
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .with_aes_encryption(zip::AesMode::Aes256, password);
    for (name, data) in entries {
        writer.start_file(*name, options).unwrap();
        writer.write_all(data).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// A ustar tar of `(name, bytes)` entries.
pub fn tar(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// A gzip stream of `data` (no stored name).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// A bzip2 stream of `data`.
pub fn bzip2(data: &[u8]) -> Vec<u8> {
    let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// An xz stream of `data`.
pub fn xz(data: &[u8]) -> Vec<u8> {
    let mut enc = lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::default()).unwrap();
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// An lz4 frame of `data`.
pub fn lz4(data: &[u8]) -> Vec<u8> {
    let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::new());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// An lz4 frame of `size` zero bytes, encoded in 1 MiB steps (never all in memory).
pub fn lz4_of_zeros(size: u64) -> Vec<u8> {
    let zeros = vec![0u8; 1 << 20];
    let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::new());
    let mut left = size;
    while left > 0 {
        let step = left.min(zeros.len() as u64) as usize;
        enc.write_all(&zeros[..step]).unwrap();
        left -= step as u64;
    }
    enc.finish().unwrap()
}

/// A Unix `ar` archive (the format of `.deb` packages) of `(name, bytes)` entries.
pub fn ar(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = ar::Builder::new(Vec::new());
    for (name, data) in entries {
        let header = ar::Header::new(name.as_bytes().to_vec(), data.len() as u64);
        builder.append(&header, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// A cpio archive in the newc format (initramfs, RPM payloads) of `(name, bytes)` files.
pub fn cpio(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (ino, (name, data)) in entries.iter().enumerate() {
        let mut writer = cpio::newc::Builder::new(name)
            .ino(ino as u32 + 1)
            .mode(0o100644)
            .nlink(1)
            .write(&mut out, data.len() as u32);
        writer.write_all(data).unwrap();
        writer.finish().unwrap();
    }
    cpio::newc::trailer(&mut out).unwrap();
    out
}

/// An OLE2 compound file (the container of `.doc`, `.xls`, `.msi`) holding `(path, bytes)`
/// streams; storages on the way are created.
pub fn ole(streams: &[(&str, &[u8])]) -> Vec<u8> {
    let mut file = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
    for (path, data) in streams {
        let path = std::path::Path::new(path);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            file.create_storage_all(parent).unwrap();
        }
        let mut stream = file.create_stream(path).unwrap();
        stream.write_all(data).unwrap();
    }
    file.flush().unwrap();
    file.into_inner().into_inner()
}

/// A zstd frame of `data`.
pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 3).unwrap()
}

/// A 7z archive of `(name, bytes)` entries (LZMA2), encrypted with AES-256 when a password is
/// given.
pub fn sevenz(entries: &[(&str, &[u8])], password: Option<&str>) -> Vec<u8> {
    let mut writer = sevenz_rust2::ArchiveWriter::new(Cursor::new(Vec::new())).unwrap();
    if let Some(password) = password {
        writer.set_content_methods(vec![
            sevenz_rust2::encoder_options::AesEncoderOptions::new(password.into()).into(),
            sevenz_rust2::EncoderMethod::LZMA2.into(),
        ]);
        writer.set_encrypt_header(true);
    }
    for (name, data) in entries {
        let entry = sevenz_rust2::ArchiveEntry::new_file(name);
        writer.push_archive_entry(entry, Some(*data)).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// The `DemoFiles` example archive: `eicar.com`, `eicar.com.txt`, `eicar_com.zip` (holding
/// `eicar.com`) and `eicarcom2.zip` (holding `eicar_com.zip`), plus a clean text file.
pub fn demo_files() -> Vec<u8> {
    let eicar = eicar();
    let eicar_com_zip = zip(&[("eicar.com", &eicar)]);
    let eicarcom2_zip = zip(&[("eicar_com.zip", &eicar_com_zip)]);
    zip(&[
        ("eicar.com", &eicar),
        ("eicar.com.txt", &eicar),
        ("eicar_com.zip", &eicar_com_zip),
        ("eicarcom2.zip", &eicarcom2_zip),
        ("readme.txt", b"nothing to see here\n"),
    ])
}

/// A nested zip bomb: `levels` levels, each a zip of `copies` copies of the level below; the
/// bottom is a zip of `copies` files of `leaf_size` zero bytes. Expands to
/// `copies^(levels) * leaf_size` bytes from a few kilobytes.
pub fn nested_zip_bomb(levels: u32, copies: usize, leaf_size: usize) -> Vec<u8> {
    let leaf = vec![0u8; leaf_size];
    let names: Vec<String> = (0..copies).map(|i| format!("{i}.bin")).collect();
    let mut level = zip(&names
        .iter()
        .map(|n| (n.as_str(), &leaf[..]))
        .collect::<Vec<_>>());
    for depth in 1..levels {
        let names: Vec<String> = (0..copies).map(|i| format!("l{depth}-{i}.zip")).collect();
        level = zip(&names
            .iter()
            .map(|n| (n.as_str(), &level[..]))
            .collect::<Vec<_>>());
    }
    level
}

/// A zip of `count` empty stored entries, written directly (the zip writer is too slow for
/// hundreds of thousands of entries in a debug build).
pub fn many_entries_zip(count: usize) -> Vec<u8> {
    let mut raw = RawZip::default();
    for i in 0..count {
        raw.add_file(&format!("f{i}"), &[], 0, 0);
    }
    raw.finish()
}

/// A zip with one stored entry under any name, even one the zip writer refuses or treats
/// specially, such as a "directory" name ending in `/` that still carries bytes.
pub fn zip_raw_entry(name: &str, data: &[u8]) -> Vec<u8> {
    let mut crc = flate2::Crc::new();
    crc.update(data);
    let mut raw = RawZip::default();
    raw.add_file(name, data, crc.sum(), data.len() as u32);
    raw.finish()
}

/// A zip with one entry whose data is `data` as it is, labelled with compression `method`
/// and an uncompressed `size` (for methods no writer here produces).
pub fn zip_raw_method(name: &str, data: &[u8], size: u32, method: u16) -> Vec<u8> {
    let mut raw = RawZip::default();
    raw.add_file_with(name, data, 0, size, method);
    raw.finish()
}

/// The overlapping-entry bomb: one deflated kernel of `kernel_size` zero bytes, listed `count`
/// times in the central directory under different names. Expands `count * kernel_size` bytes
/// from one kernel's worth of compressed data.
pub fn overlapping_zip(count: usize, kernel_size: usize) -> Vec<u8> {
    let zeros = vec![0u8; kernel_size];
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&zeros).unwrap();
    let compressed = enc.finish().unwrap();
    let mut crc = flate2::Crc::new();
    crc.update(&zeros);
    let mut raw = RawZip::default();
    let offset = raw.add_file_with("kernel", &compressed, crc.sum(), kernel_size as u32, 8);
    for i in 1..count {
        raw.add_central(
            &format!("copy{i}"),
            8,
            crc.sum(),
            compressed.len() as u32,
            kernel_size as u32,
            offset,
        );
    }
    raw.finish()
}

/// A gzip stream that decodes to `size` zero bytes, built in milliseconds around the same raw
/// deflate stream as `deflate_of_zeros`.
pub fn gzip_of_zeros(size: u64) -> Vec<u8> {
    let (deflate, crc, size) = deflate_of_zeros(size);
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    out.extend_from_slice(&deflate);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&(size as u32).to_le_bytes());
    out
}

/// A zlib stream (PDF's FlateDecode) that decodes to `size` zero bytes.
pub fn zlib_of_zeros(size: u64) -> Vec<u8> {
    let (deflate, _, size) = deflate_of_zeros(size);
    let mut out = vec![0x78, 0xDA];
    out.extend_from_slice(&deflate);
    // Adler-32 of n zeros: a stays 1, b adds 1 per byte.
    let b = (size % 65521) as u32;
    out.extend_from_slice(&(b << 16 | 1).to_be_bytes());
    out
}

/// A raw deflate stream of `size` zeros (rounded down to whole MiB), its CRC-32 and its size:
/// deflate of zeros, once the window is full of zeros, is the same byte-aligned block over and
/// over, so the block for 1 MiB is made once and repeated.
fn deflate_of_zeros(size: u64) -> (Vec<u8>, u32, u64) {
    const CHUNK: usize = 1 << 20;
    let chunks = (size / CHUNK as u64).max(1);
    let mut compress = flate2::Compress::new(flate2::Compression::best(), false);
    let zeros = vec![0u8; CHUNK];
    let mut first = Vec::with_capacity(CHUNK);
    compress
        .compress_vec(&zeros, &mut first, flate2::FlushCompress::Sync)
        .unwrap();
    let mut repeat = Vec::with_capacity(CHUNK);
    compress
        .compress_vec(&zeros, &mut repeat, flate2::FlushCompress::Sync)
        .unwrap();
    let mut out = first;
    for _ in 1..chunks {
        out.extend_from_slice(&repeat);
    }
    // A final empty stored block ends the deflate stream.
    out.extend_from_slice(&[0x01, 0x00, 0x00, 0xff, 0xff]);
    let mut crc = flate2::Crc::new();
    crc.update(&zeros);
    let mut one = flate2::Crc::new();
    one.update(&zeros);
    for _ in 1..chunks {
        crc.combine(&one);
    }
    (out, crc.sum(), chunks * CHUNK as u64)
}

/// A minimal zip writer for shapes the zip crate refuses to write (overlaps) or writes slowly.
#[derive(Default)]
struct RawZip {
    body: Vec<u8>,
    central: Vec<u8>,
    entries: u64,
}

impl RawZip {
    fn add_file(&mut self, name: &str, data: &[u8], crc: u32, size: u32) {
        self.add_file_with(name, data, crc, size, 0);
    }

    fn add_file_with(&mut self, name: &str, data: &[u8], crc: u32, size: u32, method: u16) -> u32 {
        let offset = self.body.len() as u32;
        let b = &mut self.body;
        b.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        b.extend_from_slice(&20u16.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&method.to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&crc.to_le_bytes());
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(&size.to_le_bytes());
        b.extend_from_slice(&(name.len() as u16).to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(name.as_bytes());
        b.extend_from_slice(data);
        self.add_central(name, method, crc, data.len() as u32, size, offset);
        offset
    }

    fn add_central(
        &mut self,
        name: &str,
        method: u16,
        crc: u32,
        csize: u32,
        size: u32,
        offset: u32,
    ) {
        let c = &mut self.central;
        c.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        c.extend_from_slice(&20u16.to_le_bytes());
        c.extend_from_slice(&20u16.to_le_bytes());
        c.extend_from_slice(&0u16.to_le_bytes());
        c.extend_from_slice(&method.to_le_bytes());
        c.extend_from_slice(&[0; 4]);
        c.extend_from_slice(&crc.to_le_bytes());
        c.extend_from_slice(&csize.to_le_bytes());
        c.extend_from_slice(&size.to_le_bytes());
        c.extend_from_slice(&(name.len() as u16).to_le_bytes());
        c.extend_from_slice(&[0; 8]); // extra len, comment len, disk, internal attributes
        c.extend_from_slice(&0u32.to_le_bytes());
        c.extend_from_slice(&offset.to_le_bytes());
        c.extend_from_slice(name.as_bytes());
        self.entries += 1;
    }

    fn finish(mut self) -> Vec<u8> {
        let cd_offset = self.body.len() as u32;
        let cd_size = self.central.len() as u32;
        self.body.extend_from_slice(&self.central);
        let b = &mut self.body;
        // More entries than the classic end record can count: add the zip64 end record and
        // its locator, and mark the classic counts as "see zip64".
        let classic_count = match u16::try_from(self.entries) {
            Ok(n) if n < u16::MAX => n,
            _ => {
                let zip64_end = b.len() as u64;
                b.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
                b.extend_from_slice(&44u64.to_le_bytes());
                b.extend_from_slice(&45u16.to_le_bytes());
                b.extend_from_slice(&45u16.to_le_bytes());
                b.extend_from_slice(&[0; 8]);
                b.extend_from_slice(&self.entries.to_le_bytes());
                b.extend_from_slice(&self.entries.to_le_bytes());
                b.extend_from_slice(&u64::from(cd_size).to_le_bytes());
                b.extend_from_slice(&u64::from(cd_offset).to_le_bytes());
                b.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
                b.extend_from_slice(&0u32.to_le_bytes());
                b.extend_from_slice(&zip64_end.to_le_bytes());
                b.extend_from_slice(&1u32.to_le_bytes());
                u16::MAX
            }
        };
        b.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&classic_count.to_le_bytes());
        b.extend_from_slice(&classic_count.to_le_bytes());
        b.extend_from_slice(&cd_size.to_le_bytes());
        b.extend_from_slice(&cd_offset.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        self.body
    }
}
