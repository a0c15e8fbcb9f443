//! Encrypted Office documents: recognised, never reported clean, and opened where Office itself
//! opens them without asking.
//!
//! - OOXML encrypted under ECMA-376 (MS-OFFCRYPTO) is an OLE file holding `EncryptionInfo` and
//!   `EncryptedPackage`. With Agile encryption the package is decrypted when its password is
//!   one Office tries by itself: `VelvetSweatshop` (Excel's "read-only recommended" files) or
//!   the empty password; the package is then walked like any OOXML, as the member
//!   `EncryptedPackage`. Any other password, and Standard and Extensible encryption, leave the
//!   document `encrypted`.
//! - Legacy binary documents encrypted in place (Word's FIB `fEncrypted`, Excel's BIFF
//!   `FILEPASS` record, PowerPoint's encrypted summary) are reported `encrypted`; their streams
//!   are still scanned as they are.

use std::io::{self, Read};

use base64::Engine as _;
use sha2::Digest;

use crate::formats::members::{Declared, Members};
use crate::verdict::Reason;

/// The passwords Office opens a document with without asking.
const DEFAULT_PASSWORDS: [&str; 2] = ["VelvetSweatshop", ""];
/// Largest `EncryptionInfo` stream read (real ones are about a kilobyte).
const MAX_INFO: u64 = 64 << 10;
/// Most hash rounds of a password key derivation tried: Office writes 100,000; a document
/// asking for more would make each scan spend its CPU on hashing (it stays `encrypted`).
const MAX_SPIN_COUNT: u32 = 200_000;
/// The package is encrypted in segments of this many bytes, each with its own IV.
const SEGMENT: usize = 4096;

type Compound<'d> = cfb::CompoundFile<io::Cursor<&'d [u8]>>;

/// Examines an OLE file for encryption. `true` when it is an ECMA-376 encrypted package,
/// which this module has dealt with (decrypted and walked, or reported `encrypted`): its other
/// streams are then of no interest. Legacy encryption is reported, and `false` returned so the
/// streams are scanned as they are.
pub(super) fn examine(members: &mut Members<'_>, file: &mut Compound<'_>) -> bool {
    if file.is_stream("/EncryptionInfo") && file.is_stream("/EncryptedPackage") {
        encrypted_package(members, file);
        return true;
    }
    if let Some(what) = legacy_encryption(file) {
        members.problem(
            Reason::Encrypted,
            format!("the document is encrypted ({what}); its content could not be examined"),
        );
    }
    false
}

fn encrypted_package(members: &mut Members<'_>, file: &mut Compound<'_>) {
    let info = match read_stream(file, "/EncryptionInfo", MAX_INFO) {
        Ok(info) => info,
        Err(e) => return members.corrupt("Office encryption header", e),
    };
    let agile = match Agile::parse(&info) {
        Ok(agile) => agile,
        Err(Unopened::Encrypted(what)) => {
            return members.problem(
                Reason::Encrypted,
                format!("the document is encrypted ({what}); its content could not be examined"),
            );
        }
        Err(Unopened::Damaged(what)) => return members.corrupt("Office encryption header", what),
    };
    let Some(key) = DEFAULT_PASSWORDS
        .iter()
        .find_map(|password| agile.key_for(password))
    else {
        return members.problem(
            Reason::Encrypted,
            "the document is encrypted with a password; its content could not be examined",
        );
    };
    let mut stream = match file.open_stream("/EncryptedPackage") {
        Ok(stream) => stream,
        Err(e) => return members.corrupt("Office encrypted package", e),
    };
    let mut size = [0u8; 8];
    if let Err(e) = stream.read_exact(&mut size) {
        return members.corrupt("Office encrypted package", e);
    }
    let size = u64::from_le_bytes(size);
    let child = members.child("EncryptedPackage");
    if !members.admit(&child, Declared::size(size)) {
        return;
    }
    let mut package = Decrypting {
        inner: stream,
        agile: &agile,
        key,
        segment: 0,
        left: size,
        plain: Vec::with_capacity(SEGMENT),
        at: 0,
    };
    members.read(&child, &mut package, None);
}

fn read_stream(file: &mut Compound<'_>, path: &str, max: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.open_stream(path)?.take(max).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Why an encrypted package is not opened.
enum Unopened {
    /// A kind of encryption that is not decrypted here.
    Encrypted(String),
    /// The header does not hold together.
    Damaged(String),
}

/// The hash functions ECMA-376 Agile encryption names.
#[derive(Debug, Clone, Copy)]
enum Hash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn named(name: &str) -> Option<Self> {
        match name {
            "SHA1" => Some(Hash::Sha1),
            "SHA256" => Some(Hash::Sha256),
            "SHA384" => Some(Hash::Sha384),
            "SHA512" => Some(Hash::Sha512),
            _ => None,
        }
    }

    fn of(self, parts: &[&[u8]]) -> Vec<u8> {
        fn digest<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut hash = D::new();
            for part in parts {
                hash.update(part);
            }
            hash.finalize().to_vec()
        }
        match self {
            Hash::Sha1 => digest::<sha1::Sha1>(parts),
            Hash::Sha256 => digest::<sha2::Sha256>(parts),
            Hash::Sha384 => digest::<sha2::Sha384>(parts),
            Hash::Sha512 => digest::<sha2::Sha512>(parts),
        }
    }
}

/// One `keyData` or password `encryptedKey` element: how a key is made and used.
#[derive(Debug, Clone)]
struct Cipher {
    salt: Vec<u8>,
    key_bytes: usize,
    block: usize,
    hash: Hash,
}

/// What an Agile `EncryptionInfo` says.
#[derive(Debug, Clone)]
struct Agile {
    /// How the package itself is encrypted.
    data: Cipher,
    /// How the password's key is made.
    password: Cipher,
    spin_count: u32,
    verifier_input: Vec<u8>,
    verifier_hash: Vec<u8>,
    key_value: Vec<u8>,
}

/// The block keys of MS-OFFCRYPTO 2.3.4.13, one per value the password key decrypts.
const VERIFIER_INPUT_BLOCK: [u8; 8] = [0xfe, 0xa7, 0xd2, 0x76, 0x3b, 0x4b, 0x9e, 0x79];
const VERIFIER_HASH_BLOCK: [u8; 8] = [0xd7, 0xaa, 0x0f, 0x6d, 0x30, 0x61, 0x34, 0x4e];
const KEY_VALUE_BLOCK: [u8; 8] = [0x14, 0x6e, 0x0b, 0xe7, 0xab, 0xac, 0xd0, 0xd6];

impl Agile {
    /// Reads an `EncryptionInfo` stream: version 4.4 and its XML descriptor are Agile; versions
    /// 2-4 with minor version 2 are Standard, 3-4.3 Extensible.
    fn parse(info: &[u8]) -> Result<Self, Unopened> {
        let damaged = |what: &str| Unopened::Damaged(what.to_owned());
        let (Some(major), Some(minor)) = (le16(info, 0), le16(info, 2)) else {
            return Err(damaged("the header is too short"));
        };
        match (major, minor) {
            (4, 4) => {}
            (2..=4, 2) => {
                return Err(Unopened::Encrypted(
                    "ECMA-376 Standard encryption".to_owned(),
                ));
            }
            (3 | 4, 3) => {
                return Err(Unopened::Encrypted(
                    "ECMA-376 Extensible encryption".to_owned(),
                ));
            }
            _ => {
                return Err(Unopened::Encrypted(format!(
                    "an Office encryption of version {major}.{minor}"
                )));
            }
        }
        let xml = info
            .get(8..)
            .and_then(|xml| std::str::from_utf8(xml).ok())
            .ok_or_else(|| damaged("the descriptor is not UTF-8 text"))?;
        let doc = roxmltree::Document::parse(xml.trim_end_matches('\0'))
            .map_err(|e| Unopened::Damaged(format!("the descriptor is not XML: {e}")))?;
        let key_data = doc
            .descendants()
            .find(|n| n.has_tag_name("keyData"))
            .ok_or_else(|| damaged("no keyData"))?;
        let encrypted_key = doc
            .descendants()
            .find(|n| n.has_tag_name("encryptedKey") && n.attribute("spinCount").is_some())
            .ok_or_else(|| {
                Unopened::Encrypted("a key encrypted for a certificate, not a password".to_owned())
            })?;
        let bytes = |node: roxmltree::Node<'_, '_>, name: &str| -> Result<Vec<u8>, Unopened> {
            let text = node
                .attribute(name)
                .ok_or_else(|| Unopened::Damaged(format!("no {name}")))?;
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| Unopened::Damaged(format!("{name} is not base64")))
        };
        let cipher = |node: roxmltree::Node<'_, '_>| -> Result<Cipher, Unopened> {
            let attribute = |name: &str| node.attribute(name).unwrap_or_default();
            if attribute("cipherAlgorithm") != "AES"
                || attribute("cipherChaining") != "ChainingModeCBC"
            {
                return Err(Unopened::Encrypted(format!(
                    "the cipher {} {} is not decrypted here",
                    attribute("cipherAlgorithm"),
                    attribute("cipherChaining")
                )));
            }
            let hash = Hash::named(attribute("hashAlgorithm")).ok_or_else(|| {
                Unopened::Encrypted(format!(
                    "the hash {} is not used here",
                    attribute("hashAlgorithm")
                ))
            })?;
            let key_bits: usize = attribute("keyBits").parse().unwrap_or(0);
            let block: usize = attribute("blockSize").parse().unwrap_or(0);
            if !matches!(key_bits, 128 | 192 | 256) || block != 16 {
                return Err(Unopened::Damaged(format!(
                    "an AES key of {key_bits} bits in blocks of {block} bytes"
                )));
            }
            Ok(Cipher {
                salt: bytes(node, "saltValue")?,
                key_bytes: key_bits / 8,
                block,
                hash,
            })
        };
        let spin_count: u32 = encrypted_key
            .attribute("spinCount")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| damaged("no spinCount"))?;
        if spin_count > MAX_SPIN_COUNT {
            return Err(Unopened::Encrypted(format!(
                "a password key derived in {spin_count} rounds"
            )));
        }
        Ok(Agile {
            data: cipher(key_data)?,
            password: cipher(encrypted_key)?,
            spin_count,
            verifier_input: bytes(encrypted_key, "encryptedVerifierHashInput")?,
            verifier_hash: bytes(encrypted_key, "encryptedVerifierHashValue")?,
            key_value: bytes(encrypted_key, "encryptedKeyValue")?,
        })
    }

    /// The package's key, when `password` is the document's (its verifier checks out).
    fn key_for(&self, password: &str) -> Option<Vec<u8>> {
        let cipher = &self.password;
        let utf16: Vec<u8> = password.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let mut hash = cipher.hash.of(&[&cipher.salt, &utf16]);
        for round in 0..self.spin_count {
            hash = cipher.hash.of(&[&round.to_le_bytes(), &hash]);
        }
        let decrypt = |block: &[u8; 8], value: &[u8]| -> Option<Vec<u8>> {
            let mut key = cipher.hash.of(&[&hash, block]);
            key.resize(cipher.key_bytes, 0x36);
            let iv = padded(&cipher.salt, cipher.block);
            let mut plain = value.to_vec();
            aes_cbc_decrypt(&key, &iv, &mut plain)?;
            Some(plain)
        };
        let input = decrypt(&VERIFIER_INPUT_BLOCK, &self.verifier_input)?;
        let expected = decrypt(&VERIFIER_HASH_BLOCK, &self.verifier_hash)?;
        let salt_size = cipher.salt.len().min(input.len());
        let actual = cipher.hash.of(&[&input[..salt_size]]);
        if expected.get(..actual.len()) != Some(&actual[..]) {
            return None;
        }
        let mut key = decrypt(&KEY_VALUE_BLOCK, &self.key_value)?;
        if key.len() < self.data.key_bytes {
            return None;
        }
        key.truncate(self.data.key_bytes);
        Some(key)
    }

    /// The IV of package segment `index`.
    fn segment_iv(&self, index: u32) -> Vec<u8> {
        let hash = self.data.hash.of(&[&self.data.salt, &index.to_le_bytes()]);
        padded(&hash, self.data.block)
    }
}

/// `bytes` cut or padded (with 0x36, as MS-OFFCRYPTO says) to `len`.
fn padded(bytes: &[u8], len: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out.resize(len, 0x36);
    out
}

fn le16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

/// AES-CBC decryption in place, without padding; `None` when the key, IV or length is wrong.
fn aes_cbc_decrypt(key: &[u8], iv: &[u8], data: &mut [u8]) -> Option<()> {
    use cbc::cipher::block_padding::NoPadding;
    use cbc::cipher::{BlockModeDecrypt, KeyIvInit};
    if !data.len().is_multiple_of(16) {
        return None;
    }
    match key.len() {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv)
            .ok()?
            .decrypt_padded::<NoPadding>(data)
            .ok()?,
        24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(key, iv)
            .ok()?
            .decrypt_padded::<NoPadding>(data)
            .ok()?,
        32 => cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv)
            .ok()?
            .decrypt_padded::<NoPadding>(data)
            .ok()?,
        _ => return None,
    };
    Some(())
}

/// The package decrypted segment by segment as it is read, so it is never held whole.
struct Decrypting<'a, R> {
    inner: R,
    agile: &'a Agile,
    key: Vec<u8>,
    segment: u32,
    /// Plain bytes of the package not yet handed out (decrypted or not).
    left: u64,
    plain: Vec<u8>,
    at: usize,
}

impl<R: Read> Read for Decrypting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.plain.len() {
            if self.left == 0 {
                return Ok(0);
            }
            // Each segment is whole blocks: the last one is padded to the block size.
            let want = (self.left.min(SEGMENT as u64) as usize).next_multiple_of(16);
            self.plain.resize(want, 0);
            self.inner.read_exact(&mut self.plain).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the encrypted package ends early: {e}"),
                )
            })?;
            let iv = self.agile.segment_iv(self.segment);
            aes_cbc_decrypt(&self.key, &iv, &mut self.plain).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a package segment does not decrypt",
                )
            })?;
            let keep = self.left.min(want as u64) as usize;
            self.plain.truncate(keep);
            self.left -= keep as u64;
            self.segment = self.segment.wrapping_add(1);
            self.at = 0;
        }
        let n = buf.len().min(self.plain.len() - self.at);
        buf[..n].copy_from_slice(&self.plain[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Which legacy encryption a binary Office document declares, if any.
fn legacy_encryption(file: &mut Compound<'_>) -> Option<&'static str> {
    // Word: the FIB at the start of WordDocument, wIdent 0xA5EC, fEncrypted is bit 8 of the
    // flags at offset 10.
    if file.is_stream("/WordDocument")
        && let Ok(fib) = read_stream(file, "/WordDocument", 12)
        && le16(&fib, 0) == Some(0xA5EC)
        && le16(&fib, 10).is_some_and(|flags| flags & 0x0100 != 0)
    {
        return Some("Word's own encryption");
    }
    // Excel: a FILEPASS record (0x002F) among the records after the workbook's BOF.
    for workbook in ["/Workbook", "/Book"] {
        if file.is_stream(workbook)
            && let Ok(records) = read_stream(file, workbook, 64 << 10)
            && has_filepass(&records)
        {
            return Some("Excel's own encryption");
        }
    }
    // PowerPoint: an encrypted document keeps its summary in a stream of that name.
    if file.is_stream("/EncryptedSummary")
        || (file.is_stream("/PowerPoint Document") && file.is_stream("/EncryptedStream"))
    {
        return Some("PowerPoint's own encryption");
    }
    None
}

/// Whether the BIFF records at the start of a workbook stream include FILEPASS, which comes
/// right after the first BOF when the workbook is encrypted.
fn has_filepass(records: &[u8]) -> bool {
    let mut at = 0;
    for _ in 0..64 {
        let (Some(kind), Some(len)) = (le16(records, at), le16(records, at + 2)) else {
            return false;
        };
        match kind {
            0x002F => return true,
            // Past the first sheet's records nothing more is of use.
            0x000A => return false,
            _ => at += 4 + usize::from(len),
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filepass_is_found_among_the_first_records_only() {
        let record = |kind: u16, body: &[u8]| {
            let mut r = kind.to_le_bytes().to_vec();
            r.extend_from_slice(&(body.len() as u16).to_le_bytes());
            r.extend_from_slice(body);
            r
        };
        let bof = record(0x0809, &[0; 16]);
        let mut encrypted = bof.clone();
        encrypted.extend(record(0x002F, &[1, 0, 1, 0]));
        assert!(has_filepass(&encrypted));
        let mut plain = bof;
        plain.extend(record(0x0042, &[0xE4, 0x04]));
        plain.extend(record(0x000A, &[]));
        plain.extend(record(0x002F, &[]));
        assert!(!has_filepass(&plain), "after EOF it is not the workbook's");
        assert!(!has_filepass(&[0x09]));
    }

    #[test]
    fn standard_and_extensible_encryption_stay_encrypted_and_junk_is_damaged() {
        let header = |major: u16, minor: u16| {
            let mut h = major.to_le_bytes().to_vec();
            h.extend_from_slice(&minor.to_le_bytes());
            h.extend_from_slice(&[0; 8]);
            h
        };
        assert!(
            matches!(Agile::parse(&header(4, 2)), Err(Unopened::Encrypted(w)) if w.contains("Standard"))
        );
        assert!(
            matches!(Agile::parse(&header(3, 3)), Err(Unopened::Encrypted(w)) if w.contains("Extensible"))
        );
        assert!(matches!(
            Agile::parse(&header(4, 4)),
            Err(Unopened::Damaged(_))
        ));
        assert!(matches!(Agile::parse(&[4]), Err(Unopened::Damaged(_))));
    }
}
