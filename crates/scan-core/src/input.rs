//! The input pipeline: bytes in once, counted and hashed on the way into a spool
//! ([`crate::spool`]), then handed to the scanner as one [`ScanInput`].

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use tokio::io::AsyncRead;

use crate::error::InputError;
use crate::spool::{ObjectData, Spool, SpoolError, SpoolPolicy};

/// A root object ready to scan: its bytes, size and SHA-256, read exactly once. Inputs that are
/// streamed in are hashed on the way; a file opened in place is hashed when first asked.
#[derive(Debug)]
pub struct ScanInput {
    data: ObjectData,
    sha256: OnceLock<[u8; 32]>,
}

impl ScanInput {
    /// The bytes.
    pub fn data(&self) -> &ObjectData {
        &self.data
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.data.len()
    }

    /// SHA-256 of the bytes (computed here the first time for a file opened in place).
    pub fn sha256(&self) -> &[u8; 32] {
        self.sha256
            .get_or_init(|| Sha256::digest(self.data.as_slice()).into())
    }

    /// SHA-256 if it is known already, without computing it.
    pub fn sha256_if_known(&self) -> Option<&[u8; 32]> {
        self.sha256.get()
    }

    /// SHA-256 as lower-case hex.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256())
    }

    fn hashed(data: ObjectData, sha256: [u8; 32]) -> Self {
        ScanInput {
            data,
            sha256: OnceLock::from(sha256),
        }
    }

    /// Takes the bytes out, e.g. to store a clean upload.
    pub fn into_data(self) -> ObjectData {
        self.data
    }

    /// Reads everything from a blocking reader: counted, hashed and spooled in one pass.
    pub fn from_reader(reader: impl Read, config: &SpoolPolicy) -> Result<Self, InputError> {
        let mut hasher = Sha256::new();
        let mut spool = Spool::new(config, config.max_input_size);
        let mut reader = reader;
        loop {
            match spool.read_from(&mut reader, &mut |chunk| hasher.update(chunk)) {
                Ok(0) => break,
                Ok(_) => {}
                Err(SpoolError::Read(e)) => return Err(InputError::Read(e)),
                Err(SpoolError::Write(e)) => return Err(InputError::Spool(e)),
                Err(SpoolError::TooLarge(limit)) => return Err(InputError::TooLarge { limit }),
            }
        }
        let data = spool.finish().map_err(InputError::Spool)?;
        Ok(ScanInput::hashed(data, hasher.finalize().into()))
    }

    /// Reads everything from an async reader. The hashing and spooling run on a blocking thread;
    /// the reactor only moves bytes.
    pub async fn from_async_reader<R>(reader: R, config: &SpoolPolicy) -> Result<Self, InputError>
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let config = config.clone();
        let bridge = tokio_util::io::SyncIoBridge::new(reader);
        tokio::task::spawn_blocking(move || Self::from_reader(bridge, &config))
            .await
            .map_err(|e| InputError::Read(io::Error::other(e)))?
    }

    /// Opens a file in place: small files are read into memory, larger ones memory-mapped (no
    /// copy to a spool file). Blocking; see [`ScanInput::from_path_async`].
    pub fn from_path(path: &Path, config: &SpoolPolicy) -> Result<Self, InputError> {
        let open_err = |e| InputError::Open {
            path: path.to_owned(),
            source: e,
        };
        let mut file = File::open(path).map_err(open_err)?;
        let meta = file.metadata().map_err(open_err)?;
        if !meta.is_file() {
            return Err(InputError::NotAFile(path.to_owned()));
        }
        if let Some(max) = config.max_input_size
            && meta.len() > max
        {
            return Err(InputError::TooLarge { limit: max });
        }
        let data = if meta.len() <= config.memory_threshold as u64 {
            let mut bytes = crate::spool::buffers::take(meta.len() as usize);
            file.read_to_end(&mut bytes).map_err(open_err)?;
            ObjectData::from_vec(bytes)
        } else {
            ObjectData::map_file(file).map_err(open_err)?
        };
        Ok(ScanInput {
            data,
            sha256: OnceLock::new(),
        })
    }

    /// [`ScanInput::from_path`] on a blocking thread.
    pub async fn from_path_async(path: &Path, config: &SpoolPolicy) -> Result<Self, InputError> {
        let (path, config) = (path.to_owned(), config.clone());
        tokio::task::spawn_blocking(move || Self::from_path(&path, &config))
            .await
            .map_err(|e| InputError::Read(io::Error::other(e)))?
    }

    /// Wraps bytes already in memory (they are hashed here).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        let sha256 = Sha256::digest(&bytes).into();
        ScanInput::hashed(ObjectData::from_vec(bytes), sha256)
    }
}

/// Builds a [`ScanInput`] from chunks that arrive already in memory, such as an HTTP request
/// body: each chunk is hashed, and past the memory threshold handed to the spool writer as it
/// is. `push` may block while the writer catches up, so call it from a blocking thread.
pub struct InputBuilder<'c> {
    hasher: Sha256,
    spool: Spool<'c>,
}

impl<'c> InputBuilder<'c> {
    /// An empty input spooled per `config` (its `max_input_size` applies).
    pub fn new(config: &'c SpoolPolicy) -> Self {
        InputBuilder {
            hasher: Sha256::new(),
            spool: Spool::new(config, config.max_input_size),
        }
    }

    /// Adds the next chunk.
    pub fn push(&mut self, chunk: bytes::Bytes) -> Result<(), InputError> {
        self.hasher.update(&chunk);
        self.spool.push(chunk).map_err(|e| match e {
            SpoolError::TooLarge(limit) => InputError::TooLarge { limit },
            SpoolError::Write(e) | SpoolError::Read(e) => InputError::Spool(e),
        })
    }

    /// The finished input.
    pub fn finish(self) -> Result<ScanInput, InputError> {
        let data = self.spool.finish().map_err(InputError::Spool)?;
        Ok(ScanInput::hashed(data, self.hasher.finalize().into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(threshold: usize, dir: &Path) -> SpoolPolicy {
        SpoolPolicy {
            memory_threshold: threshold,
            temp_dir: Some(dir.to_owned()),
            max_input_size: None,
            reuse_files: true,
        }
    }

    #[test]
    fn small_input_stays_in_memory_and_is_hashed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = ScanInput::from_reader(&b"abc"[..], &config(16, dir.path())).expect("spool");
        assert!(!input.data().is_file_backed());
        assert_eq!(
            input.sha256_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn large_input_goes_to_an_unnamed_file_with_the_same_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bytes: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let input = ScanInput::from_reader(&bytes[..], &config(1024, dir.path())).expect("spool");
        assert!(input.data().is_file_backed());
        assert_eq!(input.data().as_slice(), &bytes[..]);
        assert_eq!(input.sha256(), &<[u8; 32]>::from(Sha256::digest(&bytes)));
        // Unnamed: nothing is visible in the spool directory even while the data is alive.
        assert_eq!(std::fs::read_dir(dir.path()).expect("read_dir").count(), 0);
    }

    #[test]
    fn input_over_the_maximum_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = config(4, dir.path());
        cfg.max_input_size = Some(10);
        let err = ScanInput::from_reader(&[0u8; 11][..], &cfg).expect_err("must refuse");
        assert!(matches!(err, InputError::TooLarge { limit: 10 }), "{err}");
    }
}
