//! `HashEngine`: whole-object hash signatures (MD5, SHA-1, SHA-256), in ClamAV's `.hdb`/`.hsb`
//! line formats (`HASH:SIZE:Name`) or plain `HASH [Name]` lists.
//!
//! Signatures are indexed by size, and an object is hashed with an algorithm only when some
//! signature of that algorithm has the object's size (or no size). MD5 is the slowest hash by
//! far; most objects are never MD5-hashed at all.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use md5::Md5;
use scan_core::{Detection, Engine, EngineError, ScanObject};
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Algorithm {
    Md5,
    Sha1,
    Sha256,
}

impl Algorithm {
    fn from_hex_len(len: usize) -> Option<Self> {
        match len {
            32 => Some(Algorithm::Md5),
            40 => Some(Algorithm::Sha1),
            64 => Some(Algorithm::Sha256),
            _ => None,
        }
    }
}

/// Signatures of one algorithm, keyed by size (`None`: any size).
#[derive(Debug, Default)]
struct Table {
    by_size: HashMap<Option<u64>, HashMap<Vec<u8>, String>>,
}

impl Table {
    fn wants(&self, size: u64) -> bool {
        self.by_size.contains_key(&Some(size)) || self.by_size.contains_key(&None)
    }

    fn lookup(&self, size: u64, digest: &[u8]) -> impl Iterator<Item = &String> {
        [Some(size), None]
            .into_iter()
            .filter_map(|key| self.by_size.get(&key).and_then(|sigs| sigs.get(digest)))
    }
}

/// Hash signatures, loaded from files or strings.
#[derive(Debug, Default)]
pub struct HashEngine {
    tables: HashMap<Algorithm, Table>,
    count: usize,
}

impl HashEngine {
    /// An engine with no signatures; add some with [`HashEngine::add_file`] or
    /// [`HashEngine::add_list`].
    pub fn new() -> Self {
        Self::default()
    }

    /// How many signatures are loaded.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no signature is loaded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Loads a signature file (`.hdb`, `.hsb`, `.hdu`, `.hsu` or a plain list).
    pub fn add_file(&mut self, path: &Path) -> Result<(), HashListError> {
        let text = std::fs::read_to_string(path).map_err(|source| HashListError::Read {
            path: path.to_owned(),
            source,
        })?;
        self.add_list(&path.display().to_string(), &text)
    }

    /// Loads signatures from text, one per line. Blank lines and `#` comments are skipped.
    /// Accepted lines: `HASH:SIZE:Name[:flevel...]` (SIZE may be `*`), or `HASH [Name]`.
    pub fn add_list(&mut self, origin: &str, text: &str) -> Result<(), HashListError> {
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |message: String| HashListError::Parse {
                origin: origin.to_owned(),
                line: i + 1,
                message,
            };
            let (hash, size, name) = parse_line(line).map_err(err)?;
            let algorithm = Algorithm::from_hex_len(hash.len()).ok_or_else(|| {
                err(format!(
                    "{} hex digits is not an MD5, SHA-1 or SHA-256",
                    hash.len()
                ))
            })?;
            let digest = hex::decode(hash).map_err(|e| err(format!("bad hex: {e}")))?;
            let table = self.tables.entry(algorithm).or_default();
            table.by_size.entry(size).or_default().insert(digest, name);
            self.count += 1;
        }
        Ok(())
    }

    fn scan_bytes(&self, data: &[u8], known_sha256: Option<&[u8; 32]>) -> Vec<Detection> {
        let size = data.len() as u64;
        let mut found: Vec<Detection> = Vec::new();
        let mut seen = HashSet::new();
        for (algorithm, table) in &self.tables {
            if !table.wants(size) {
                continue;
            }
            let digest: Vec<u8> = match algorithm {
                Algorithm::Md5 => Md5::digest(data).to_vec(),
                Algorithm::Sha1 => Sha1::digest(data).to_vec(),
                Algorithm::Sha256 => match known_sha256 {
                    Some(known) => known.to_vec(),
                    None => Sha256::digest(data).to_vec(),
                },
            };
            for name in table.lookup(size, &digest) {
                if seen.insert(name.clone()) {
                    found.push(Detection::named(name.clone()));
                }
            }
        }
        found
    }
}

fn parse_line(line: &str) -> Result<(&str, Option<u64>, String), String> {
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
        Ok((hash, size, name.to_owned()))
    } else {
        let mut fields = line.split_whitespace();
        let hash = fields.next().unwrap_or_default();
        let rest: Vec<&str> = fields.collect();
        let name = if rest.is_empty() {
            format!("Hash.{hash}")
        } else {
            rest.join(" ")
        };
        Ok((hash, None, name))
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
        Ok(format!("{} hash signatures", self.count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
