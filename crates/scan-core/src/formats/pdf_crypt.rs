//! PDF's standard security handler (ISO 32000-2 §7.6.4): the file key a reader derives from
//! the empty user password (the one it tries before asking anyone), and each object's strings
//! and streams decrypted with that key. Most encrypted PDFs in mail carry only an owner
//! password, so they open in every reader without a prompt; a scanner must open them too.

use std::io::{self, Read};

use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use md5::Md5;
use sha2::{Digest, Sha256, Sha384, Sha512};

/// Passwords are padded (or, when empty, replaced) with these bytes (Algorithm 2, step a).
const PAD: [u8; 32] = [
    0x28, 0xBF, 0x4E, 0x5E, 0x4E, 0x75, 0x8A, 0x41, 0x64, 0x00, 0x4E, 0x56, 0xFF, 0xFA, 0x01, 0x08,
    0x2E, 0x2E, 0x00, 0xB6, 0xD0, 0x68, 0x3E, 0x80, 0x2F, 0x0C, 0xA9, 0xFE, 0x64, 0x53, 0x69, 0x7A,
];

/// How a class of data (streams, strings) is encrypted: a crypt filter's `/CFM`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Method {
    Identity,
    Rc4,
    Aes128,
    Aes256,
}

impl Method {
    /// The method a crypt filter method name (`/CFM`) stands for.
    pub(super) fn named(cfm: &str) -> Option<Self> {
        match cfm {
            "None" => Some(Self::Identity),
            "V2" => Some(Self::Rc4),
            "AESV2" => Some(Self::Aes128),
            "AESV3" => Some(Self::Aes256),
            _ => None,
        }
    }
}

/// What an encryption dictionary declares, as the PDF reader parsed it.
pub(super) struct Params {
    /// `/R`: the standard handler's revision.
    pub(super) revision: u64,
    /// The file key's length in bits (`/Length`, or the crypt filter's).
    pub(super) key_bits: u64,
    /// `/O` and `/U`: the password check values.
    pub(super) owner: Vec<u8>,
    pub(super) user: Vec<u8>,
    /// `/UE`: the file key, encrypted with the user password (revisions 5 and 6).
    pub(super) user_key: Vec<u8>,
    /// `/P`: the permission flags, a signed 32-bit integer.
    pub(super) permissions: i32,
    pub(super) encrypt_metadata: bool,
    /// The first string of the trailer's `/ID`.
    pub(super) id: Vec<u8>,
    pub(super) streams: Method,
    pub(super) strings: Method,
}

/// Why the file key could not be had.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Locked {
    /// The user password is not empty: only someone who knows it can read the file.
    Password,
    /// An algorithm or revision this reader does not implement.
    Unsupported(String),
    /// Check values of the wrong size, and the like.
    Damaged(String),
}

/// The file key and how each class of data is encrypted with it.
pub(super) struct Crypt {
    key: Vec<u8>,
    streams: Method,
    strings: Method,
    encrypt_metadata: bool,
}

impl Crypt {
    /// Derives the file key from the empty user password and checks it against `/U`.
    pub(super) fn open(params: &Params) -> Result<Self, Locked> {
        let key = match params.revision {
            2..=4 => legacy_key(params)?,
            5 | 6 => aes256_key(params)?,
            other => {
                return Err(Locked::Unsupported(format!(
                    "revision {other} of the standard security handler"
                )));
            }
        };
        Ok(Self {
            key,
            streams: params.streams,
            strings: params.strings,
            encrypt_metadata: params.encrypt_metadata,
        })
    }

    /// Whether streams are encrypted at all (a `/StmF /Identity` file leaves them plain).
    pub(super) fn encrypts_streams(&self) -> bool {
        self.streams != Method::Identity
    }

    /// Whether metadata streams are encrypted (`/EncryptMetadata`, true unless it says false).
    pub(super) fn encrypts_metadata(&self) -> bool {
        self.encrypt_metadata
    }

    /// Decrypts a string of object `number` (generation `generation`).
    pub(super) fn string(&self, number: u64, generation: u16, data: &[u8]) -> Vec<u8> {
        let key = self.object_key(self.strings, number, generation);
        match self.strings {
            Method::Identity => data.to_vec(),
            Method::Rc4 => {
                let mut out = data.to_vec();
                Rc4::new(&key).apply(&mut out);
                out
            }
            Method::Aes128 | Method::Aes256 => {
                let mut out = Vec::new();
                match Decrypting::aes(data, &key).read_to_end(&mut out) {
                    Ok(_) => out,
                    // A string that does not decrypt is kept as it is: its bytes are still
                    // searched, and nothing is hidden by dropping them.
                    Err(_) => data.to_vec(),
                }
            }
        }
    }

    /// Wraps the raw bytes of a stream of object `number` so they read decrypted.
    pub(super) fn stream<'a>(
        &self,
        number: u64,
        generation: u16,
        raw: Box<dyn Read + 'a>,
    ) -> Box<dyn Read + 'a> {
        let key = self.object_key(self.streams, number, generation);
        match self.streams {
            Method::Identity => raw,
            Method::Rc4 => Box::new(Decrypting::rc4(raw, &key)),
            Method::Aes128 | Method::Aes256 => Box::new(Decrypting::aes(raw, &key)),
        }
    }

    /// The key for one object's data (Algorithm 1): revisions before 5 mix the object's
    /// number and generation into the file key; AES-256 uses the file key itself.
    fn object_key(&self, method: Method, number: u64, generation: u16) -> Vec<u8> {
        if method == Method::Aes256 {
            return self.key.clone();
        }
        let mut hash = Md5::new();
        hash.update(&self.key);
        hash.update(&number.to_le_bytes()[..3]);
        hash.update(generation.to_le_bytes());
        if method == Method::Aes128 {
            hash.update(b"sAlT");
        }
        let digest = hash.finalize();
        digest[..(self.key.len() + 5).min(16)].to_vec()
    }
}

/// Algorithm 2 (the file key) checked by Algorithm 4 or 5 (the user password), for RC4 and
/// AES-128 files.
fn legacy_key(params: &Params) -> Result<Vec<u8>, Locked> {
    if params.owner.len() < 32 || params.user.len() < 32 {
        return Err(Locked::Damaged(
            "its /O or /U check value is shorter than 32 bytes".into(),
        ));
    }
    let len = if params.revision == 2 {
        5
    } else {
        usize::try_from(params.key_bits / 8).map_or(16, |n| n.clamp(5, 16))
    };
    let mut hash = Md5::new();
    hash.update(PAD);
    hash.update(&params.owner[..32]);
    hash.update(params.permissions.to_le_bytes());
    hash.update(&params.id);
    if params.revision >= 4 && !params.encrypt_metadata {
        hash.update([0xFF; 4]);
    }
    let mut digest = hash.finalize();
    if params.revision >= 3 {
        for _ in 0..50 {
            digest = Md5::digest(&digest[..len]);
        }
    }
    let key = digest[..len].to_vec();
    let matches = if params.revision == 2 {
        let mut check = PAD;
        Rc4::new(&key).apply(&mut check);
        check[..] == params.user[..32]
    } else {
        let mut hash = Md5::new();
        hash.update(PAD);
        hash.update(&params.id);
        let mut check = hash.finalize().to_vec();
        for round in 0..20u8 {
            let round_key: Vec<u8> = key.iter().map(|b| b ^ round).collect();
            Rc4::new(&round_key).apply(&mut check);
        }
        check[..] == params.user[..16]
    };
    if matches {
        Ok(key)
    } else {
        Err(Locked::Password)
    }
}

/// The AES-256 file key (revision 6's Algorithm 2.A, or revision 5's SHA-256 form): the user
/// password's hash checked against `/U`, then `/UE` decrypted with a second hash.
fn aes256_key(params: &Params) -> Result<Vec<u8>, Locked> {
    if params.user.len() < 48 || params.user_key.len() < 32 {
        return Err(Locked::Damaged(
            "its /U or /UE value is too short for AES-256".into(),
        ));
    }
    let validation_salt = &params.user[32..40];
    let key_salt = &params.user[40..48];
    let (check, intermediate) = if params.revision == 5 {
        (
            Sha256::digest(validation_salt).to_vec(),
            Sha256::digest(key_salt).to_vec(),
        )
    } else {
        (hardened_hash(validation_salt), hardened_hash(key_salt))
    };
    if check[..] != params.user[..32] {
        return Err(Locked::Password);
    }
    let mut key = params.user_key[..32].to_vec();
    let decryptor = cbc::Decryptor::<aes::Aes256>::new_from_slices(&intermediate, &[0; 16])
        .map_err(|_| Locked::Damaged("its AES-256 key could not be set up".into()))?;
    decryptor
        .decrypt_padded::<NoPadding>(&mut key)
        .map_err(|_| Locked::Damaged("its /UE value does not decrypt".into()))?;
    Ok(key)
}

/// Algorithm 2.B for the empty password and no user data: SHA-256, then rounds of AES-128
/// and a SHA-2 hash chosen by the data, at least 64 of them.
fn hardened_hash(salt: &[u8]) -> Vec<u8> {
    let mut k = Sha256::digest(salt).to_vec();
    let mut round = 0u32;
    loop {
        let mut block = k.repeat(64);
        let len = block.len();
        if let Ok(encryptor) = cbc::Encryptor::<aes::Aes128>::new_from_slices(&k[..16], &k[16..32])
        {
            // `block` is 64 copies of a 32-, 48- or 64-byte hash: whole blocks, no padding.
            let _ = encryptor.encrypt_padded::<NoPadding>(&mut block, len);
        }
        let sum: u32 = block[..16].iter().map(|&b| u32::from(b)).sum();
        k = match sum % 3 {
            0 => Sha256::digest(&block).to_vec(),
            1 => Sha384::digest(&block).to_vec(),
            _ => Sha512::digest(&block).to_vec(),
        };
        round += 1;
        let last = block.last().copied().unwrap_or(0);
        if round >= 64 && u32::from(last) + 32 <= round {
            break;
        }
    }
    k.truncate(32);
    k
}

/// RC4, written here because the `rc4` crate fixes the key length in the type, while a PDF's
/// object keys are 5 to 16 bytes long at run time.
struct Rc4 {
    state: [u8; 256],
    i: u8,
    j: u8,
}

impl Rc4 {
    fn new(key: &[u8]) -> Self {
        let mut state = [0u8; 256];
        for (i, s) in state.iter_mut().enumerate() {
            *s = i as u8;
        }
        let mut j = 0u8;
        for i in 0..256 {
            j = j
                .wrapping_add(state[i])
                .wrapping_add(key[i % key.len().max(1)]);
            state.swap(i, usize::from(j));
        }
        Self { state, i: 0, j: 0 }
    }

    fn apply(&mut self, data: &mut [u8]) {
        for byte in data {
            self.i = self.i.wrapping_add(1);
            self.j = self.j.wrapping_add(self.state[usize::from(self.i)]);
            self.state.swap(usize::from(self.i), usize::from(self.j));
            let k = self.state[usize::from(
                self.state[usize::from(self.i)].wrapping_add(self.state[usize::from(self.j)]),
            )];
            *byte ^= k;
        }
    }
}

/// AES-CBC with its key length chosen at run time.
enum Cbc {
    Aes128(cbc::Decryptor<aes::Aes128>),
    Aes256(cbc::Decryptor<aes::Aes256>),
}

impl Cbc {
    fn new(key: &[u8], iv: &[u8]) -> Option<Self> {
        match key.len() {
            16 => cbc::Decryptor::new_from_slices(key, iv)
                .ok()
                .map(Self::Aes128),
            32 => cbc::Decryptor::new_from_slices(key, iv)
                .ok()
                .map(Self::Aes256),
            _ => None,
        }
    }

    /// Decrypts whole blocks in place; `data` is a multiple of 16 bytes long.
    fn decrypt(&mut self, data: &mut [u8]) {
        for chunk in data.chunks_exact_mut(16) {
            let Ok(block) = chunk.try_into() else {
                continue;
            };
            match self {
                Self::Aes128(d) => d.decrypt_block(block),
                Self::Aes256(d) => d.decrypt_block(block),
            }
        }
    }
}

/// Both boxed: RC4's state and the AES key schedule are large, and of different sizes.
enum Cipher {
    Rc4(Box<Rc4>),
    /// AES-CBC: the key until the IV (the data's first 16 bytes) has been read.
    Aes {
        key: Vec<u8>,
        cbc: Option<Box<Cbc>>,
    },
}

/// A stream decrypted as it is read, so a large stream is never held whole.
struct Decrypting<R> {
    inner: R,
    cipher: Cipher,
    /// Bytes read from `inner`: plain ones ready to hand out; then (AES) the last plain block,
    /// held back until the end shows whether it carries padding, and encrypted bytes that do
    /// not yet make a whole block.
    buffer: Vec<u8>,
    /// What each read from `inner` lands in, allocated once.
    scratch: Vec<u8>,
    /// Where handing out has got to, within the plain bytes.
    at: usize,
    /// How many bytes at the start of `buffer` may be handed out.
    ready: usize,
    /// How many bytes at the start of `buffer` are plain.
    decrypted: usize,
    ended: bool,
}

/// How much is read from the raw stream at a time.
const CHUNK: usize = 64 << 10;

impl<R: Read> Decrypting<R> {
    fn rc4(inner: R, key: &[u8]) -> Self {
        Self::new(inner, Cipher::Rc4(Box::new(Rc4::new(key))))
    }

    fn aes(inner: R, key: &[u8]) -> Self {
        Self::new(
            inner,
            Cipher::Aes {
                key: key.to_vec(),
                cbc: None,
            },
        )
    }

    fn new(inner: R, cipher: Cipher) -> Self {
        Self {
            inner,
            cipher,
            buffer: Vec::new(),
            scratch: vec![0; CHUNK],
            at: 0,
            ready: 0,
            decrypted: 0,
            ended: false,
        }
    }

    /// Reads more of the raw stream and makes as much of it plain as can be.
    fn fill(&mut self) -> io::Result<()> {
        self.buffer.drain(..self.ready);
        self.decrypted -= self.ready;
        self.at = 0;
        self.ready = 0;
        let filled = self.buffer.len();
        let n = loop {
            match self.inner.read(&mut self.scratch) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        self.buffer.extend_from_slice(&self.scratch[..n]);
        self.ended = n == 0;
        match &mut self.cipher {
            Cipher::Rc4(rc4) => {
                rc4.apply(&mut self.buffer[filled..]);
                self.decrypted = self.buffer.len();
                self.ready = self.buffer.len();
            }
            Cipher::Aes { key, cbc } => {
                if cbc.is_none() {
                    if self.buffer.len() < 16 {
                        if self.ended {
                            // Too short to hold an IV: an empty string or stream.
                            self.buffer.clear();
                        }
                        return Ok(());
                    }
                    let ready = Cbc::new(key, &self.buffer[..16]).ok_or_else(|| {
                        io::Error::new(io::ErrorKind::InvalidData, "the AES key is not usable")
                    })?;
                    *cbc = Some(Box::new(ready));
                    self.buffer.drain(..16);
                }
                let Some(cbc) = cbc else {
                    return Ok(());
                };
                let whole = self.decrypted + (self.buffer.len() - self.decrypted) / 16 * 16;
                cbc.decrypt(&mut self.buffer[self.decrypted..whole]);
                self.decrypted = whole;
                if self.ended {
                    // Bytes past the last whole block cannot be decrypted: readers drop them.
                    self.buffer.truncate(whole);
                    self.ready = whole - padding(&self.buffer);
                    self.buffer.truncate(self.ready);
                    self.decrypted = self.ready;
                } else {
                    // The last whole block may be the padded one: it waits for the next read.
                    self.ready = whole.saturating_sub(16);
                }
            }
        }
        Ok(())
    }
}

/// How many padding bytes (PKCS#7) end the decrypted data; none when they are not valid
/// padding, as readers accept.
fn padding(plain: &[u8]) -> usize {
    let Some(&last) = plain.last() else {
        return 0;
    };
    let n = usize::from(last);
    if (1..=16).contains(&n)
        && plain.len() >= n
        && plain[plain.len() - n..].iter().all(|&b| b == last)
    {
        n
    } else {
        0
    }
}

impl<R: Read> Read for Decrypting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.ready {
            if self.ended {
                return Ok(0);
            }
            self.fill()?;
        }
        let n = buf.len().min(self.ready - self.at);
        buf[..n].copy_from_slice(&self.buffer[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out one byte per read, as a slow source may.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(1);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn aes_encrypted(key: &[u8], plain: &[u8]) -> Vec<u8> {
        use cbc::cipher::block_padding::Pkcs7;
        let iv = [7u8; 16];
        let mut out = iv.to_vec();
        let mut buf = plain.to_vec();
        buf.resize(plain.len() + 16, 0);
        let encrypted = cbc::Encryptor::<aes::Aes128>::new_from_slices(key, &iv)
            .unwrap()
            .encrypt_padded::<Pkcs7>(&mut buf, plain.len())
            .unwrap();
        out.extend_from_slice(encrypted);
        out
    }

    #[test]
    fn rc4_matches_the_published_vectors() {
        let mut data = *b"Plaintext";
        Rc4::new(b"Key").apply(&mut data);
        assert_eq!(data, [0xBB, 0xF3, 0x16, 0xE8, 0xD9, 0x40, 0xAF, 0x0A, 0xD3]);
        let mut data = *b"Attack at dawn";
        Rc4::new(b"Secret").apply(&mut data);
        assert_eq!(hex::encode(data), "45a01f645fc35b383552544b9bf5");
    }

    #[test]
    fn aes_streams_decrypt_across_reads_and_lose_only_their_padding() {
        let key = [3u8; 16];
        // Lengths around the block size and the read chunk, where a held-back block matters.
        for len in [
            0,
            1,
            15,
            16,
            17,
            31,
            32,
            CHUNK - 1,
            CHUNK,
            CHUNK + 17,
            3 * CHUNK + 5,
        ] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let encrypted = aes_encrypted(&key, &plain);
            let mut whole = Vec::new();
            Decrypting::aes(encrypted.as_slice(), &key)
                .read_to_end(&mut whole)
                .unwrap();
            assert_eq!(whole, plain, "{len} bytes read in chunks");
            if len <= CHUNK + 17 {
                let mut trickled = Vec::new();
                Decrypting::aes(Trickle(&encrypted), &key)
                    .read_to_end(&mut trickled)
                    .unwrap();
                assert_eq!(trickled, plain, "{len} bytes read a byte at a time");
            }
        }
        // Bytes past the last whole block cannot be decrypted and are dropped, as readers do.
        let mut cut = aes_encrypted(&key, b"sixteen bytes ok");
        cut.extend_from_slice(b"junk");
        let mut out = Vec::new();
        Decrypting::aes(cut.as_slice(), &key)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"sixteen bytes ok");
    }

    #[test]
    fn object_keys_mix_in_the_object_and_the_aes_salt() {
        let crypt = |streams| Crypt {
            key: vec![1, 2, 3, 4, 5],
            streams,
            strings: streams,
            encrypt_metadata: true,
        };
        let rc4 = crypt(Method::Rc4);
        assert_eq!(rc4.object_key(Method::Rc4, 7, 0).len(), 10);
        assert_ne!(
            rc4.object_key(Method::Rc4, 7, 0),
            rc4.object_key(Method::Rc4, 8, 0)
        );
        assert_ne!(
            rc4.object_key(Method::Rc4, 7, 0),
            rc4.object_key(Method::Aes128, 7, 0)
        );
        let aes256 = crypt(Method::Aes256);
        assert_eq!(aes256.object_key(Method::Aes256, 7, 0), [1, 2, 3, 4, 5]);
    }
}
