//! `HashEngine`: whole-object hash signatures (MD5, SHA-1, SHA-256), in ClamAV's `.hdb`/`.hsb`
//! line formats (`HASH:SIZE:Name`) or plain lists of hashes (`HASH [Name]`), the form public
//! malware-hash feeds publish.
//!
//! Feeds run to tens of millions of lines, so the tables are compact: a bare hash (no name, no
//! size: the feed's usual line) is its digest's bytes and nothing else, in one sorted vector per
//! algorithm with an index on the first two bytes, so a lookup costs one index read and a search
//! of a few entries at any list size. Named or sized signatures (ClamAV's) sit in a second sorted
//! table whose names share one string buffer. Loading allocates nothing per line.
//!
//! An object is hashed with an algorithm only when some signature of that algorithm has the
//! object's size (or no size). MD5 is the slowest hash by far; most objects are never
//! MD5-hashed at all.

use std::collections::HashSet;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use md5::Md5;
use scan_core::{Detection, Engine, EngineError, ScanObject, Signatures};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// A hash signature list could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HashListError {
    /// The file could not be read.
    #[error("cannot read hash signatures from {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A line is not a signature.
    #[error("{origin}:{line}: {message}")]
    Parse {
        /// The file (or source name).
        origin: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Signatures of one digest width `N` (16: MD5, 20: SHA-1, 32: SHA-256).
#[derive(Debug, Default)]
struct Table<const N: usize> {
    /// Digests matching any size, named after themselves; sorted and unique once sealed.
    bare: Vec<[u8; N]>,
    /// `index[p]..index[p + 1]` is where digests starting with the two bytes `p` lie in `bare`.
    index: Vec<u32>,
    /// Signatures with a name or a size, sorted by digest once sealed.
    rich: Vec<Rich<N>>,
    /// The sizes some rich signature is limited to; `any_size` when one is not.
    sizes: HashSet<u64>,
    any_size: bool,
}

/// A signature with a name (in [`HashEngine::names`]) or a size.
#[derive(Debug, Clone, Copy)]
struct Rich<const N: usize> {
    digest: [u8; N],
    /// `u64::MAX`: any size.
    size: u64,
    name_start: u32,
    name_len: u32,
}

const ANY_SIZE: u64 = u64::MAX;

impl<const N: usize> Table<N> {
    fn len(&self) -> usize {
        self.bare.len() + self.rich.len()
    }

    fn wants(&self, size: u64) -> bool {
        self.any_size || !self.bare.is_empty() || self.sizes.contains(&size)
    }

    fn add(&mut self, digest: [u8; N], size: Option<u64>, name: Option<(u32, u32)>) {
        match (size, name) {
            (None, None) => self.bare.push(digest),
            (size, name) => {
                let (name_start, name_len) = name.unwrap_or((u32::MAX, 0));
                match size {
                    Some(size) => {
                        self.sizes.insert(size);
                    }
                    None => self.any_size = true,
                }
                self.rich.push(Rich {
                    digest,
                    size: size.unwrap_or(ANY_SIZE),
                    name_start,
                    name_len,
                });
            }
        }
    }

    /// Sorts, drops repeats and indexes; done once after each file.
    fn seal(&mut self) {
        sort_digests(&mut self.bare);
        self.bare.dedup();
        self.bare.shrink_to_fit();
        self.rich.sort_unstable_by_key(|r| r.digest);
        self.rich.shrink_to_fit();
        self.index.clear();
        self.index.reserve_exact(65537);
        let mut at = 0usize;
        for prefix in 0..=65536usize {
            while at < self.bare.len() && prefix_of(&self.bare[at]) < prefix {
                at += 1;
            }
            // Lists stay under 4 G entries: they live in memory at 16 bytes and more each.
            self.index.push(u32::try_from(at).unwrap_or(u32::MAX));
        }
    }

    fn contains_bare(&self, digest: &[u8; N]) -> bool {
        let prefix = prefix_of(digest);
        let (Some(&from), Some(&to)) = (self.index.get(prefix), self.index.get(prefix + 1)) else {
            return false;
        };
        self.bare
            .get(from as usize..to as usize)
            .is_some_and(|bucket| bucket.binary_search(digest).is_ok())
    }

    fn rich_matches<'a>(
        &'a self,
        digest: &'a [u8; N],
        size: u64,
    ) -> impl Iterator<Item = &'a Rich<N>> + 'a {
        let from = self.rich.partition_point(|r| r.digest < *digest);
        self.rich[from..]
            .iter()
            .take_while(move |r| r.digest == *digest)
            .filter(move |r| r.size == ANY_SIZE || r.size == size)
    }

    fn hash_into(&self, hash: &mut Sha256) {
        for digest in &self.bare {
            hash.update(digest);
        }
        hash.update([0xff]);
        for rich in &self.rich {
            hash.update(rich.digest);
            hash.update(rich.size.to_le_bytes());
        }
    }
}

/// Each ASCII byte's value as a hex digit, or 0x10 for anything else.
const HEX: [u8; 256] = {
    let mut table = [0x10u8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// `2 * N` hex digits as `N` bytes, or `None` when any is not a hex digit. One table read per
/// digit and no branch per byte: feeds of ten million lines are mostly this loop.
fn decode_hex<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    let mut bad = 0u8;
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let (high, low) = (HEX[usize::from(pair[0])], HEX[usize::from(pair[1])]);
        bad |= high | low;
        *byte = high << 4 | (low & 0x0f);
    }
    (bad & 0x10 == 0).then_some(out)
}

/// Sorts digests by their first eight bytes as one integer, then orders the rare runs that share
/// them in full: comparing a `u64` instead of 32 bytes makes ten million digests sort in a
/// fraction of the time, and the result is the same total order.
fn sort_digests<const N: usize>(digests: &mut [[u8; N]]) {
    let key = |d: &[u8; N]| {
        let mut head = [0u8; 8];
        let n = N.min(8);
        head[..n].copy_from_slice(&d[..n]);
        u64::from_be_bytes(head)
    };
    digests.sort_unstable_by_key(key);
    let mut start = 0;
    while start < digests.len() {
        let head = key(&digests[start]);
        let end = start
            + digests[start..]
                .iter()
                .take_while(|d| key(d) == head)
                .count();
        if end - start > 1 {
            digests[start..end].sort_unstable();
        }
        start = end;
    }
}

fn prefix_of<const N: usize>(digest: &[u8; N]) -> usize {
    usize::from(digest[0]) << 8 | usize::from(digest[1])
}

/// Hash signatures, loaded from files or strings.
#[derive(Debug, Default)]
pub struct HashEngine {
    md5: Table<16>,
    sha1: Table<20>,
    sha256: Table<32>,
    /// Every rich signature's name, end to end.
    names: String,
    /// A SHA-256 over every table and name, sealed with them.
    version: String,
    loaded_at: Option<time::OffsetDateTime>,
}

impl HashEngine {
    /// An engine with no signatures; add some with [`HashEngine::add_file`] or
    /// [`HashEngine::add_list`].
    pub fn new() -> Self {
        Self::default()
    }

    /// How many signatures are loaded (a hash listed twice counts once).
    pub fn len(&self) -> usize {
        self.md5.len() + self.sha1.len() + self.sha256.len()
    }

    /// Whether no signature is loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Loads a signature file (`.hdb`, `.hsb`, `.hdu`, `.hsu` or a plain list), reading it a
    /// buffer at a time: a list of any length costs its table, not its text.
    pub fn add_file(&mut self, path: &Path) -> Result<(), HashListError> {
        let read_err = |source| HashListError::Read {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_err)?;
        let reader = std::io::BufReader::with_capacity(1 << 20, file);
        let origin = path.display().to_string();
        self.add_lines(&origin, reader).map_err(|e| match e {
            LoadError::Io(source) => read_err(source),
            LoadError::List(e) => e,
        })
    }

    /// Loads signatures from text, one per line. Blank lines and `#` comments are skipped.
    /// Accepted lines: `HASH:SIZE:Name[:flevel...]` (SIZE may be `*`), or `HASH [Name]`.
    pub fn add_list(&mut self, origin: &str, text: &str) -> Result<(), HashListError> {
        self.add_lines(origin, text.as_bytes())
            .map_err(|e| match e {
                LoadError::Io(source) => HashListError::Read {
                    path: PathBuf::from(origin),
                    source,
                },
                LoadError::List(e) => e,
            })
    }

    fn add_lines(&mut self, origin: &str, mut reader: impl BufRead) -> Result<(), LoadError> {
        let mut line = Vec::with_capacity(256);
        let mut number = 0usize;
        let outcome = loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => break Ok(()),
                Ok(_) => {}
                Err(e) => break Err(LoadError::Io(e)),
            }
            number += 1;
            if let Err(message) = self.add_line(&line) {
                break Err(LoadError::List(HashListError::Parse {
                    origin: origin.to_owned(),
                    line: number,
                    message,
                }));
            }
        };
        // Whatever was read stays usable and sorted, even when a line was refused: the caller
        // drops the engine on an error, but a half-sorted table must never be searched.
        self.seal();
        outcome
    }

    fn add_line(&mut self, raw: &[u8]) -> Result<(), String> {
        let line = std::str::from_utf8(raw)
            .map_err(|_| "not UTF-8 text".to_owned())?
            .trim();
        if line.is_empty() || line.starts_with('#') {
            return Ok(());
        }
        // A feed's usual line, a SHA-256 alone, goes straight to its table; anything else (a
        // name, a size, another length) takes the parser below.
        if line.len() == 64
            && let Some(digest) = decode_hex::<32>(line.as_bytes())
        {
            self.sha256.bare.push(digest);
            return Ok(());
        }
        let (hash, size, name) = parse_line(line)?;
        let name = match name {
            Some(name) => {
                let start = u32::try_from(self.names.len())
                    .map_err(|_| "signature names pass 4 GiB".to_owned())?;
                let len = u32::try_from(name.len()).map_err(|_| "name too long".to_owned())?;
                self.names.push_str(name);
                Some((start, len))
            }
            None => None,
        };
        let bad_hex = || format!("{hash:?} is not a hexadecimal hash");
        match hash.len() {
            32 => {
                let digest = decode_hex::<16>(hash.as_bytes()).ok_or_else(bad_hex)?;
                self.md5.add(digest, size, name);
            }
            40 => {
                let digest = decode_hex::<20>(hash.as_bytes()).ok_or_else(bad_hex)?;
                self.sha1.add(digest, size, name);
            }
            64 => {
                let digest = decode_hex::<32>(hash.as_bytes()).ok_or_else(bad_hex)?;
                self.sha256.add(digest, size, name);
            }
            n => return Err(format!("{n} hex digits is not an MD5, SHA-1 or SHA-256")),
        }
        Ok(())
    }

    fn seal(&mut self) {
        self.md5.seal();
        self.sha1.seal();
        self.sha256.seal();
        let mut hash = Sha256::new();
        self.md5.hash_into(&mut hash);
        self.sha1.hash_into(&mut hash);
        self.sha256.hash_into(&mut hash);
        hash.update(self.names.as_bytes());
        self.version = hex::encode(&hash.finalize()[..8]);
        self.loaded_at = Some(time::OffsetDateTime::now_utc());
    }

    fn name_of<const N: usize>(&self, rich: &Rich<N>) -> String {
        if rich.name_start == u32::MAX {
            return format!("Hash.{}", hex::encode(rich.digest));
        }
        let start = rich.name_start as usize;
        self.names
            .get(start..start + rich.name_len as usize)
            .unwrap_or_default()
            .to_owned()
    }

    fn matches_of<const N: usize>(
        &self,
        table: &Table<N>,
        digest: &[u8; N],
        size: u64,
        found: &mut Vec<Detection>,
    ) {
        if table.contains_bare(digest) {
            found.push(Detection::named(format!("Hash.{}", hex::encode(digest))));
        }
        for rich in table.rich_matches(digest, size) {
            found.push(Detection::named(self.name_of(rich)));
        }
    }

    fn scan_bytes(&self, data: &[u8], known_sha256: Option<&[u8; 32]>) -> Vec<Detection> {
        let size = data.len() as u64;
        let mut found: Vec<Detection> = Vec::new();
        if self.md5.wants(size) {
            let digest: [u8; 16] = Md5::digest(data).into();
            self.matches_of(&self.md5, &digest, size, &mut found);
        }
        if self.sha1.wants(size) {
            let digest: [u8; 20] = Sha1::digest(data).into();
            self.matches_of(&self.sha1, &digest, size, &mut found);
        }
        if self.sha256.wants(size) {
            let digest: [u8; 32] = match known_sha256 {
                Some(known) => *known,
                None => Sha256::digest(data).into(),
            };
            self.matches_of(&self.sha256, &digest, size, &mut found);
        }
        let mut seen = HashSet::new();
        found.retain(|d| seen.insert(d.name.clone()));
        found
    }
}

enum LoadError {
    Io(std::io::Error),
    List(HashListError),
}

/// `(hash, size, name)` of one signature line.
fn parse_line(line: &str) -> Result<(&str, Option<u64>, Option<&str>), String> {
    if line.contains(':') {
        let mut fields = line.splitn(4, ':');
        let hash = fields.next().unwrap_or_default().trim();
        let size = fields.next().ok_or("missing size field")?.trim();
        let name = fields.next().ok_or("missing name field")?.trim();
        if name.is_empty() {
            return Err("empty signature name".to_owned());
        }
        let size = match size {
            "*" => None,
            digits => Some(
                digits
                    .parse::<u64>()
                    .map_err(|_| format!("bad size {digits:?}"))?,
            ),
        };
        Ok((hash, size, Some(name)))
    } else {
        match line.split_once(char::is_whitespace) {
            Some((hash, name)) if !name.trim().is_empty() => Ok((hash, None, Some(name.trim()))),
            _ => Ok((line, None, None)),
        }
    }
}

#[async_trait]
impl Engine for HashEngine {
    fn name(&self) -> &str {
        "hashes"
    }

    async fn scan(&self, object: &ScanObject<'_>) -> Result<Vec<Detection>, EngineError> {
        Ok(self.scan_bytes(object.data, object.sha256))
    }

    async fn health(&self) -> Result<String, EngineError> {
        Ok(format!("{} hash signatures", self.len()))
    }

    fn signatures(&self) -> Signatures {
        Signatures::new(
            Some(self.len() as u64),
            self.version.clone(),
            self.loaded_at,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_digits_decode_in_either_case_and_anything_else_is_refused() {
        assert_eq!(decode_hex::<2>(b"0aFf"), Some([0x0a, 0xff]));
        assert_eq!(decode_hex::<2>(b"0aFg"), None);
        assert_eq!(decode_hex::<2>(b"0a:f"), None);
        assert_eq!(decode_hex::<2>(b"0aF"), None);
        let all: Vec<u8> = (0..=255u8).collect();
        assert_eq!(
            decode_hex::<256>(hex::encode(&all).as_bytes()).map(|d| d.to_vec()),
            Some(all)
        );
    }

    #[test]
    fn digests_that_share_their_first_eight_bytes_still_sort_in_full() {
        let mut digests: Vec<[u8; 32]> = (0..200u8)
            .map(|i| {
                let mut d = [7u8; 32];
                d[31] = 200 - i;
                d[9] = i % 3;
                d
            })
            .chain((0..50u8).map(|i| [i; 32]))
            .collect();
        let mut expected = digests.clone();
        expected.sort_unstable();
        sort_digests(&mut digests);
        assert_eq!(digests, expected);
    }

    #[test]
    fn clamav_and_plain_lines_parse() {
        let mut engine = HashEngine::new();
        let list = "# comment\n\
            d41d8cd98f00b204e9800998ecf8427e:0:Empty.MD5\n\
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855:*:Empty.SHA256:73\n\
            da39a3ee5e6b4b0d3255bfef95601890afd80709 Empty SHA1\n";
        engine.add_list("test", list).expect("parse");
        assert_eq!(engine.len(), 3);
        let mut names: Vec<String> = engine
            .scan_bytes(b"", None)
            .into_iter()
            .map(|f| f.name)
            .collect();
        names.sort();
        assert_eq!(names, ["Empty SHA1", "Empty.MD5", "Empty.SHA256"]);
    }

    #[test]
    fn size_must_match_when_given() {
        let mut engine = HashEngine::new();
        // MD5 of the empty string, but declared with size 5: it cannot match an empty object.
        engine
            .add_list("t", "d41d8cd98f00b204e9800998ecf8427e:5:Wrong.Size")
            .expect("parse");
        assert!(engine.scan_bytes(b"", None).is_empty());
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let mut engine = HashEngine::new();
        let err = engine
            .add_list("sigs.hdb", "\nabc:1:Short")
            .expect_err("bad hash");
        assert_eq!(
            err.to_string(),
            "sigs.hdb:2: 3 hex digits is not an MD5, SHA-1 or SHA-256"
        );
    }
}
