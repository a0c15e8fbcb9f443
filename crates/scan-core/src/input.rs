//! The input pipeline: bytes in once, counted and hashed on the way, held in memory up to a
//! threshold and in an unnamed temp file past it, then seen by everything else as one `&[u8]`.
//!
//! Spool files are created with `O_TMPFILE` semantics (`tempfile::tempfile_in`): they have no
//! name, so they vanish when the last handle closes, on success, error, panic or crash alike.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::AsyncRead;

use crate::error::InputError;

/// Where and how inputs and expanded members are spooled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    /// Objects up to this many bytes stay in memory; larger ones go to a temp file.
    pub memory_threshold: usize,
    /// Directory for spool files; the system temp directory when `None`.
    pub temp_dir: Option<PathBuf>,
    /// Largest root input accepted, if any. Past it, reading stops with [`InputError::TooLarge`].
    pub max_input_size: Option<u64>,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            memory_threshold: 8 << 20,
            temp_dir: None,
            max_input_size: None,
        }
    }
}

impl SpoolConfig {
    fn temp_file(&self) -> io::Result<File> {
        match &self.temp_dir {
            Some(dir) => tempfile::tempfile_in(dir),
            None => tempfile::tempfile(),
        }
    }
}

/// The bytes of one object, in memory or memory-mapped from a spool or source file.
#[derive(Debug)]
pub struct ObjectData {
    repr: Repr,
}

#[derive(Debug)]
enum Repr {
    Memory(Vec<u8>),
    Mapped {
        map: memmap2::Mmap,
        /// Keeps the file (and so an unnamed spool file's blocks) alive as long as the map.
        file: File,
    },
}

impl ObjectData {
    /// Wraps bytes already in memory.
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        ObjectData {
            repr: Repr::Memory(bytes),
        }
    }

    /// Memory-maps a whole file. An empty file becomes an empty in-memory object (an empty
    /// mapping is an error on Linux).
    pub fn map_file(file: File) -> io::Result<Self> {
        if file.metadata()?.len() == 0 {
            return Ok(Self::from_vec(Vec::new()));
        }
        Ok(ObjectData {
            repr: Repr::Mapped {
                map: map(&file)?,
                file,
            },
        })
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match &self.repr {
            Repr::Memory(v) => v,
            Repr::Mapped { map, .. } => map,
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.as_slice().len() as u64
    }

    /// Whether the object is empty.
    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// The backing file when the data is file-backed, e.g. to upload a spooled object without
    /// copying it through memory.
    pub fn file(&self) -> Option<&File> {
        match &self.repr {
            Repr::Memory(_) => None,
            Repr::Mapped { file, .. } => Some(file),
        }
    }
}

#[allow(unsafe_code)]
fn map(file: &File) -> io::Result<memmap2::Mmap> {
    // SAFETY: a mapping is undefined behaviour only if the file changes underneath it. Spool
    // files are unnamed and owned by this process alone. Files scanned in place by path are the
    // caller's; a caller that truncates a file while it is being scanned can crash the process
    // (SIGBUS), the same trade ripgrep and yara make for mapped scanning.
    unsafe { memmap2::MmapOptions::new().map(file) }
}

/// A root object ready to scan: its bytes, size and SHA-256, read exactly once.
#[derive(Debug)]
pub struct ScanInput {
    data: ObjectData,
    sha256: [u8; 32],
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

    /// SHA-256 of the bytes.
    pub fn sha256(&self) -> &[u8; 32] {
        &self.sha256
    }

    /// SHA-256 as lower-case hex.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }

    /// Takes the bytes out, e.g. to store a clean upload.
    pub fn into_data(self) -> ObjectData {
        self.data
    }

    /// Reads everything from a blocking reader: counted, hashed and spooled in one pass.
    pub fn from_reader(reader: impl Read, config: &SpoolConfig) -> Result<Self, InputError> {
        let mut hasher = Sha256::new();
        let mut spool = Spool::new(config, config.max_input_size);
        let mut buf = vec![0u8; 256 * 1024];
        let mut reader = reader;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(InputError::Read(e)),
            };
            hasher.update(&buf[..n]);
            spool.write_chunk(&buf[..n])?;
        }
        Ok(ScanInput {
            data: spool.finish()?,
            sha256: hasher.finalize().into(),
        })
    }

    /// Reads everything from an async reader. The hashing and spooling run on a blocking thread;
    /// the reactor only moves bytes.
    pub async fn from_async_reader<R>(reader: R, config: &SpoolConfig) -> Result<Self, InputError>
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
    pub fn from_path(path: &Path, config: &SpoolConfig) -> Result<Self, InputError> {
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
            let mut bytes = Vec::with_capacity(meta.len() as usize);
            file.read_to_end(&mut bytes).map_err(open_err)?;
            ObjectData::from_vec(bytes)
        } else {
            ObjectData::map_file(file).map_err(open_err)?
        };
        let sha256 = Sha256::digest(data.as_slice()).into();
        Ok(ScanInput { data, sha256 })
    }

    /// [`ScanInput::from_path`] on a blocking thread.
    pub async fn from_path_async(path: &Path, config: &SpoolConfig) -> Result<Self, InputError> {
        let (path, config) = (path.to_owned(), config.clone());
        tokio::task::spawn_blocking(move || Self::from_path(&path, &config))
            .await
            .map_err(|e| InputError::Read(io::Error::other(e)))?
    }

    /// Wraps bytes already in memory (they are hashed here).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        let sha256 = Sha256::digest(&bytes).into();
        ScanInput {
            data: ObjectData::from_vec(bytes),
            sha256,
        }
    }
}

/// Accumulates an object's bytes: memory up to the threshold, then an unnamed temp file.
pub(crate) struct Spool<'c> {
    config: &'c SpoolConfig,
    max: Option<u64>,
    memory: Vec<u8>,
    file: Option<io::BufWriter<File>>,
    written: u64,
}

impl<'c> Spool<'c> {
    pub(crate) fn new(config: &'c SpoolConfig, max: Option<u64>) -> Self {
        Spool {
            config,
            max,
            memory: Vec::new(),
            file: None,
            written: 0,
        }
    }

    pub(crate) fn write_chunk(&mut self, chunk: &[u8]) -> Result<(), InputError> {
        self.written += chunk.len() as u64;
        if let Some(max) = self.max
            && self.written > max
        {
            return Err(InputError::TooLarge { limit: max });
        }
        if self.file.is_none() && self.memory.len() + chunk.len() <= self.config.memory_threshold {
            self.memory.extend_from_slice(chunk);
            return Ok(());
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                let mut file = io::BufWriter::with_capacity(
                    256 * 1024,
                    self.config.temp_file().map_err(InputError::Spool)?,
                );
                file.write_all(&self.memory).map_err(InputError::Spool)?;
                self.memory = Vec::new();
                self.file.insert(file)
            }
        };
        file.write_all(chunk).map_err(InputError::Spool)
    }

    pub(crate) fn finish(self) -> Result<ObjectData, InputError> {
        match self.file {
            None => Ok(ObjectData::from_vec(self.memory)),
            Some(writer) => {
                let file = writer
                    .into_inner()
                    .map_err(|e| InputError::Spool(e.into_error()))?;
                ObjectData::map_file(file).map_err(InputError::Spool)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(threshold: usize, dir: &Path) -> SpoolConfig {
        SpoolConfig {
            memory_threshold: threshold,
            temp_dir: Some(dir.to_owned()),
            max_input_size: None,
        }
    }

    #[test]
    fn small_input_stays_in_memory_and_is_hashed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = ScanInput::from_reader(&b"abc"[..], &config(16, dir.path())).expect("spool");
        assert!(input.data().file().is_none());
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
        assert!(input.data().file().is_some());
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
