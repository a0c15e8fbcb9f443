//! The input pipeline: bytes in once, counted and hashed on the way, held in memory up to a
//! threshold and in an unnamed temp file past it, then seen by everything else as one `&[u8]`.
//!
//! Spool files are created with `O_TMPFILE` semantics (`tempfile::tempfile_in`): they have no
//! name, so they vanish when the last handle closes, on success, error, panic or crash alike.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

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
    /// Refuses an input whose declared length (an HTTP `Content-Length`, an object's size) is
    /// already over [`SpoolConfig::max_input_size`], so it is turned away before a byte of it
    /// is read.
    pub fn check_declared(&self, length: Option<u64>) -> Result<(), InputError> {
        match (length, self.max_input_size) {
            (Some(length), Some(limit)) if length > limit => Err(InputError::TooLarge { limit }),
            _ => Ok(()),
        }
    }

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

impl Drop for ObjectData {
    fn drop(&mut self) {
        // Closing a large unnamed spool file frees its page cache synchronously (about 20 ms per
        // 256 MiB here). Hand such files to a background thread so the verdict is not held up;
        // the file still disappears right after, and at exit at the latest.
        const BACKGROUND_DROP: u64 = 32 << 20;
        if matches!(self.repr, Repr::Mapped { .. }) && self.len() >= BACKGROUND_DROP {
            let repr = std::mem::replace(&mut self.repr, Repr::Memory(Vec::new()));
            if let Err(mpsc::SendError(repr)) = reaper().send(repr) {
                drop(repr);
            }
        }
    }
}

/// The thread that closes large spool files; started on first use.
fn reaper() -> &'static mpsc::Sender<Repr> {
    static REAPER: std::sync::OnceLock<mpsc::Sender<Repr>> = std::sync::OnceLock::new();
    REAPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Repr>();
        // If the thread cannot start, the receiver is dropped and senders drop files inline.
        let _ = std::thread::Builder::new()
            .name("verdict-spool-reaper".into())
            .spawn(move || {
                for repr in rx {
                    drop(repr);
                }
            });
        tx
    })
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
        Ok(ScanInput {
            data,
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

/// Builds a [`ScanInput`] from chunks that arrive already in memory, such as an HTTP request
/// body: each chunk is hashed, and past the memory threshold handed to the spool writer as it
/// is. `push` may block while the writer catches up, so call it from a blocking thread.
pub struct InputBuilder<'c> {
    hasher: Sha256,
    spool: Spool<'c>,
}

impl<'c> InputBuilder<'c> {
    /// An empty input spooled per `config` (its `max_input_size` applies).
    pub fn new(config: &'c SpoolConfig) -> Self {
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
        Ok(ScanInput {
            data,
            sha256: self.hasher.finalize().into(),
        })
    }
}

/// Size of the chunks objects are read in.
const CHUNK: usize = 256 * 1024;

/// Why a spool could not take the next chunk.
#[derive(Debug)]
pub(crate) enum SpoolError {
    /// Reading from the source failed (this carries limit hits from a capped decoder too).
    Read(io::Error),
    /// Writing the spool file failed.
    Write(io::Error),
    /// The object passed the spool's maximum size.
    TooLarge(u64),
}

/// Accumulates an object's bytes: memory up to the threshold, then an unnamed temp file written
/// by a separate thread, so reading (inflating, receiving) and writing overlap on two cores.
/// Chunks are read straight into the buffers that are written; nothing is copied in between.
pub(crate) struct Spool<'c> {
    config: &'c SpoolConfig,
    max: Option<u64>,
    memory: Vec<u8>,
    writer: Option<SpoolWriter>,
    total: u64,
}

impl<'c> Spool<'c> {
    pub(crate) fn new(config: &'c SpoolConfig, max: Option<u64>) -> Self {
        Spool {
            config,
            max,
            memory: Vec::new(),
            writer: None,
            total: 0,
        }
    }

    /// Reads the next chunk from `reader` into the spool, shows it to `inspect` (for hashing),
    /// and returns its length; 0 at the end of the input.
    pub(crate) fn read_from(
        &mut self,
        reader: &mut dyn Read,
        inspect: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, SpoolError> {
        if let Some(writer) = &mut self.writer {
            let mut buf = writer.buffer();
            let n = read_some(reader, &mut buf).map_err(SpoolError::Read)?;
            if n == 0 {
                return Ok(0);
            }
            inspect(&buf[..n]);
            self.total += n as u64;
            check_max(self.total, self.max)?;
            writer.send(buf, n).map_err(SpoolError::Write)?;
            return Ok(n);
        }
        let start = self.memory.len();
        // Grow the read window with the object: most members are small, and zeroing a whole
        // chunk for each of ten thousand tiny files costs more than reading them.
        let window = start.clamp(8 << 10, CHUNK);
        self.memory.resize(start + window, 0);
        let n = match read_some(reader, &mut self.memory[start..]) {
            Ok(n) => n,
            Err(e) => {
                self.memory.truncate(start);
                return Err(SpoolError::Read(e));
            }
        };
        self.memory.truncate(start + n);
        if n == 0 {
            return Ok(0);
        }
        inspect(&self.memory[start..]);
        self.total += n as u64;
        check_max(self.total, self.max)?;
        self.spill_if_over_threshold()?;
        Ok(n)
    }

    /// Takes a chunk that is already in memory (an HTTP body chunk). In memory mode it is
    /// copied; past the threshold it goes to the writer as it is, without a copy.
    pub(crate) fn push(&mut self, chunk: bytes::Bytes) -> Result<(), SpoolError> {
        self.total += chunk.len() as u64;
        check_max(self.total, self.max)?;
        if let Some(writer) = &mut self.writer {
            return writer.send_shared(chunk).map_err(SpoolError::Write);
        }
        self.memory.extend_from_slice(&chunk);
        self.spill_if_over_threshold()
    }

    fn spill_if_over_threshold(&mut self) -> Result<(), SpoolError> {
        if self.writer.is_none() && self.memory.len() > self.config.memory_threshold {
            let file = self.config.temp_file().map_err(SpoolError::Write)?;
            let mut writer = SpoolWriter::start(file).map_err(SpoolError::Write)?;
            let len = self.memory.len();
            writer
                .send(std::mem::take(&mut self.memory), len)
                .map_err(SpoolError::Write)?;
            self.writer = Some(writer);
        }
        Ok(())
    }

    /// Everything read so far, in memory or mapped from the finished spool file. After a read
    /// error this is what arrived before it.
    pub(crate) fn finish(self) -> io::Result<ObjectData> {
        match self.writer {
            None => Ok(ObjectData::from_vec(self.memory)),
            Some(writer) => ObjectData::map_file(writer.finish()?),
        }
    }
}

fn check_max(total: u64, max: Option<u64>) -> Result<(), SpoolError> {
    match max {
        Some(max) if total > max => Err(SpoolError::TooLarge(max)),
        _ => Ok(()),
    }
}

fn read_some(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// The thread that writes a spool file, and the channels that feed it and return its buffers.
/// What the writer thread writes: one of its own buffers (given back after), or a shared chunk.
enum Chunk {
    Buffer(Vec<u8>, usize),
    Shared(bytes::Bytes),
}

struct SpoolWriter {
    chunks: Option<mpsc::SyncSender<Chunk>>,
    recycled: mpsc::Receiver<Vec<u8>>,
    thread: Option<std::thread::JoinHandle<io::Result<File>>>,
}

impl SpoolWriter {
    fn start(file: File) -> io::Result<Self> {
        // Sixteen chunks (4 MiB) in flight absorb bursts of page-cache work and bound the memory a
        // slow disk can hold up.
        let (chunks, incoming) = mpsc::sync_channel::<Chunk>(16);
        let (give_back, recycled) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("verdict-spool".into())
            .spawn(move || {
                let mut file = file;
                for chunk in incoming {
                    match chunk {
                        Chunk::Buffer(buf, len) => {
                            file.write_all(&buf[..len])?;
                            if buf.len() == CHUNK {
                                // The reader may be gone already; then the buffer is dropped.
                                let _ = give_back.send(buf);
                            }
                        }
                        Chunk::Shared(bytes) => file.write_all(&bytes)?,
                    }
                }
                Ok(file)
            })?;
        Ok(SpoolWriter {
            chunks: Some(chunks),
            recycled,
            thread: Some(thread),
        })
    }

    /// A chunk-sized buffer, reused when the writer has given one back.
    fn buffer(&self) -> Vec<u8> {
        self.recycled.try_recv().unwrap_or_else(|_| vec![0; CHUNK])
    }

    fn send(&mut self, buf: Vec<u8>, len: usize) -> io::Result<()> {
        self.send_chunk(Chunk::Buffer(buf, len))
    }

    fn send_shared(&mut self, bytes: bytes::Bytes) -> io::Result<()> {
        self.send_chunk(Chunk::Shared(bytes))
    }

    fn send_chunk(&mut self, chunk: Chunk) -> io::Result<()> {
        let sent = self
            .chunks
            .as_ref()
            .is_some_and(|chunks| chunks.send(chunk).is_ok());
        if sent {
            return Ok(());
        }
        // The writer stopped: its result says why.
        match self.join() {
            Err(e) => Err(e),
            Ok(_) => Err(io::Error::other("spool writer stopped")),
        }
    }

    fn finish(mut self) -> io::Result<File> {
        self.join()
    }

    fn join(&mut self) -> io::Result<File> {
        self.chunks = None;
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| io::Error::other("spool writer panicked"))?,
            None => Err(io::Error::other("spool writer already finished")),
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
