//! Spooling: where an object's bytes live while it is scanned. Memory up to a threshold, then
//! an unnamed temp file written by a thread of its own, seen by everything else as one `&[u8]`
//! (memory-mapped). Spool files are created with `O_TMPFILE` semantics
//! (`tempfile::tempfile_in`): they have no name, so they vanish when the last handle closes, on
//! success, error, panic or crash alike. Large mappings have their resident pages released
//! behind the engines as they go (see [`trim`]), so memory does not follow an object's size.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, Weak, mpsc};
use std::time::Duration;

use crate::error::InputError;

/// Where and how inputs and expanded members are spooled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolPolicy {
    /// Objects up to this many bytes stay in memory; larger ones go to a temp file.
    pub memory_threshold: usize,
    /// Directory for spool files; the system temp directory when `None`.
    pub temp_dir: Option<PathBuf>,
    /// Largest root input accepted, if any. Past it, reading stops with [`InputError::TooLarge`].
    pub max_input_size: Option<u64>,
}

impl Default for SpoolPolicy {
    fn default() -> Self {
        SpoolPolicy {
            memory_threshold: 8 << 20,
            temp_dir: None,
            max_input_size: None,
        }
    }
}

impl SpoolPolicy {
    /// Refuses an input whose declared length (an HTTP `Content-Length`, an object's size) is
    /// already over [`SpoolPolicy::max_input_size`], so it is turned away before a byte of it
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
        /// Shared with the trimmer (weakly), which must never release pages of an unmapped range.
        map: Arc<memmap2::Mmap>,
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
        let map = Arc::new(map(&file)?);
        if map.len() as u64 >= TRIM_FROM {
            trim::register(&map);
        }
        Ok(ObjectData {
            repr: Repr::Mapped { map, file },
        })
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match &self.repr {
            Repr::Memory(v) => v,
            Repr::Mapped { map, .. } => map.as_ref(),
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
        if let Repr::Memory(bytes) = &mut self.repr {
            buffers::give(std::mem::take(bytes));
            return;
        }
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

/// Mappings this large or larger have their resident pages released while they are scanned.
const TRIM_FROM: u64 = 32 << 20;

/// Keeps large mappings from staying resident. Every page an engine touches in a mapping stays
/// in the process's resident set until the mapping goes, so a 4 GiB object scanned whole would
/// hold 4 GiB: file-backed and reclaimable, but counted by operators, container limits and
/// working-set metrics alike. A thread of its own drops the page-table entries of every live
/// large mapping every [`trim::EVERY`] (`MADV_DONTNEED`); the pages stay in the page cache, so
/// an engine that reads them again takes a minor fault, not a disk read. Engines keep seeing the
/// whole object as one slice (rules with whole-file conditions and modules are unchanged); what
/// stays resident is what the engines touch in one period: `EVERY` times their read rate, per
/// object being scanned. That is a few MiB for an engine that reads every byte (YARA, a hash;
/// `tests/resident.rs`). A reader that touches one byte a page and nothing else is not bounded
/// this way: it maps pages already in the page cache far faster than any reader of bytes (on
/// kernel 6.18 with ext4 it peaked at 280-490 MiB for 1 GiB even with a 0.5 ms period; 120 MiB
/// on an older machine), so only a windowed engine interface would bound it.
mod trim {
    use super::*;

    /// How often resident pages are released.
    pub(super) const EVERY: Duration = Duration::from_millis(2);

    struct Trimmer {
        mappings: Mutex<Vec<Weak<memmap2::Mmap>>>,
        wake: std::sync::Condvar,
    }

    /// Starts releasing `map`'s pages until it is dropped.
    pub(super) fn register(map: &Arc<memmap2::Mmap>) {
        let Some(trimmer) = trimmer() else {
            return;
        };
        trimmer
            .mappings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::downgrade(map));
        trimmer.wake.notify_one();
    }

    /// The trimmer, its thread started on first use; `None` if the thread could not start (then
    /// mappings stay resident as the kernel pleases, which is slower to release, never wrong).
    fn trimmer() -> Option<&'static Trimmer> {
        static TRIMMER: std::sync::OnceLock<Option<&'static Trimmer>> = std::sync::OnceLock::new();
        *TRIMMER.get_or_init(|| {
            let trimmer: &'static Trimmer = Box::leak(Box::new(Trimmer {
                mappings: Mutex::new(Vec::new()),
                wake: std::sync::Condvar::new(),
            }));
            match std::thread::Builder::new()
                .name("verdict-map-trim".into())
                .spawn(move || run(trimmer))
            {
                Ok(_) => Some(trimmer),
                Err(error) => {
                    tracing::warn!(%error, "no thread to release mapped pages; large objects stay resident while scanned");
                    None
                }
            }
        })
    }

    fn run(trimmer: &Trimmer) {
        raise_priority();
        let mut held = trimmer
            .mappings
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        loop {
            held.retain(|map| map.strong_count() > 0);
            if held.is_empty() {
                held = trimmer
                    .wake
                    .wait(held)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            // Holding a strong reference while advising keeps the range mapped: a range that
            // was unmapped and reused by the heap must never be released.
            let live: Vec<Arc<memmap2::Mmap>> = held.iter().filter_map(Weak::upgrade).collect();
            drop(held);
            for map in &live {
                release(map);
            }
            drop(live);
            std::thread::sleep(EVERY);
            held = trimmer
                .mappings
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The bound on what stays resident is what an engine touches between two trims, so a
    /// trimmer kept waiting for a CPU lets it grow (one CI run on a busy two-core machine saw a
    /// 1 GiB scan peak at 276 MiB). The thread asks to be first in line (nice -20); that needs
    /// CAP_SYS_NICE, and without it the trimmer runs at normal priority, as before.
    fn raise_priority() {
        use thread_priority::{
            NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
            set_thread_priority_and_policy, thread_native_id,
        };
        let policy = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other);
        if let Err(error) =
            set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Max, policy)
        {
            tracing::debug!(%error, "the trimmer runs at normal priority");
        }
    }

    #[allow(unsafe_code)]
    fn release(map: &memmap2::Mmap) {
        // SAFETY: the mapping is a read-only file mapping that nothing writes, so dropping its
        // page-table entries changes no byte anyone can see: the next read faults the same bytes
        // back from the page cache or the file (for a spool file, ours and unnamed; for a file
        // scanned in place, the same trade as mapping it at all, see `map`).
        let released = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        if let Err(error) = released {
            tracing::debug!(%error, "releasing mapped pages failed");
        }
    }
}

/// Buffers for objects held in memory, handed back when the object is dropped and given to the
/// next one. A read into fresh memory makes the kernel fault in and zero every page before the
/// copy (in a warm scan of the mixed corpus, three times the cost of the copy itself); a buffer
/// that was used before has its pages already. What is kept is bounded by [`buffers::KEPT`].
pub(crate) mod buffers {
    use std::sync::{Mutex, PoisonError};

    /// At most this many bytes of buffers are kept for reuse.
    pub(crate) const KEPT: usize = 32 << 20;
    /// Smaller buffers are not kept: the allocator reuses them well on its own.
    const SMALLEST: usize = 256 << 10;

    static POOL: Mutex<Pool> = Mutex::new(Pool {
        buffers: Vec::new(),
    });

    /// An empty buffer with room for at least `capacity` bytes: the smallest kept one that is
    /// large enough, or a new one. New ones are made a power of two in size, so that a buffer
    /// fits the next object of about the same size, not only smaller ones.
    pub(crate) fn take(capacity: usize) -> Vec<u8> {
        if capacity < SMALLEST {
            return Vec::with_capacity(capacity);
        }
        let kept = POOL
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take(capacity);
        kept.unwrap_or_else(|| {
            Vec::with_capacity(capacity.checked_next_power_of_two().unwrap_or(capacity))
        })
    }

    /// Keeps `buffer` for reuse, if it is worth keeping.
    pub(crate) fn give(buffer: Vec<u8>) {
        if buffer.capacity() < SMALLEST || buffer.capacity() > KEPT {
            return;
        }
        let dropped = POOL
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .give(buffer);
        // Freed outside the lock.
        drop(dropped);
    }

    /// The kept buffers, at most [`KEPT`] bytes of them.
    struct Pool {
        buffers: Vec<Vec<u8>>,
    }

    impl Pool {
        fn take(&mut self, capacity: usize) -> Option<Vec<u8>> {
            let best = self
                .buffers
                .iter()
                .enumerate()
                .filter(|(_, b)| b.capacity() >= capacity)
                .min_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i)?;
            Some(self.buffers.swap_remove(best))
        }

        /// Keeps `buffer`, making room by letting smaller ones go; what is let go (`buffer`
        /// itself when only larger ones are kept) is returned.
        fn give(&mut self, mut buffer: Vec<u8>) -> Vec<Vec<u8>> {
            buffer.clear();
            let mut dropped = Vec::new();
            let mut kept: usize = self.buffers.iter().map(Vec::capacity).sum();
            while kept + buffer.capacity() > KEPT {
                let smallest = self
                    .buffers
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, b)| b.capacity())
                    .map(|(i, b)| (i, b.capacity()))
                    .filter(|&(_, size)| size < buffer.capacity());
                let Some((i, size)) = smallest else {
                    dropped.push(buffer);
                    return dropped;
                };
                dropped.push(self.buffers.swap_remove(i));
                kept -= size;
            }
            self.buffers.push(buffer);
            dropped
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn buffers_are_reused_best_fit_and_what_is_kept_stays_bounded() {
            let mut pool = Pool {
                buffers: Vec::new(),
            };
            assert!(pool.take(1 << 20).is_none());
            let small = vec![7u8; 1 << 20];
            let large = Vec::<u8>::with_capacity(8 << 20);
            let (small_at, large_at) = (small.as_ptr(), large.as_ptr());
            assert!(pool.give(small).is_empty());
            assert!(pool.give(large).is_empty());
            // The smallest that fits, emptied; nothing fits a larger request.
            let again = pool.take(512 << 10).unwrap();
            assert_eq!((again.as_ptr(), again.len()), (small_at, 0));
            assert!(pool.take(9 << 20).is_none());
            let large = pool.take(2 << 20).unwrap();
            assert_eq!(large.as_ptr(), large_at);

            // Filled to the bound with small buffers, a larger one pushes them out; a smaller
            // one than every kept buffer is itself let go.
            for _ in 0..KEPT / (4 << 20) {
                assert!(pool.give(Vec::with_capacity(4 << 20)).is_empty());
            }
            let let_go = pool.give(Vec::with_capacity(16 << 20));
            assert_eq!(let_go.len(), 4);
            let refused = pool.give(Vec::with_capacity(2 << 20));
            assert_eq!(refused.len(), 1);
            assert_eq!(refused[0].capacity(), 2 << 20);
            let kept: usize = pool.buffers.iter().map(Vec::capacity).sum();
            assert_eq!(kept, KEPT);
        }
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
    config: &'c SpoolPolicy,
    max: Option<u64>,
    /// In memory mode, `memory[..filled]` is the object; the rest is zeroed room already paid
    /// for, so a read that returns less than its window does not zero that room again.
    memory: Vec<u8>,
    filled: usize,
    /// Where the room made by [`Spool::expect`] ends: reads stop there, so an object of the
    /// expected size never grows the buffer.
    expected_end: usize,
    writer: Option<SpoolWriter>,
    total: u64,
}

impl<'c> Spool<'c> {
    pub(crate) fn new(config: &'c SpoolPolicy, max: Option<u64>) -> Self {
        Spool {
            config,
            max,
            memory: Vec::new(),
            filled: 0,
            expected_end: 0,
            writer: None,
            total: 0,
        }
    }

    /// Makes room at once for an object its container says is `size` bytes, up to the memory
    /// threshold, so it is not copied each time the buffer doubles. A lying size costs at most
    /// the threshold in address space, never in what is read.
    pub(crate) fn expect(&mut self, size: u64) {
        if self.writer.is_some() || self.filled > 0 {
            return;
        }
        // One byte more than the object, for the read that finds its end.
        let room = usize::try_from(size)
            .unwrap_or(usize::MAX)
            .min(self.config.memory_threshold)
            .saturating_add(1);
        if self.memory.capacity() < room {
            self.memory = buffers::take(room);
        }
        self.expected_end = room;
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
        let start = self.filled;
        // Grow the read window with the object: most members are small, and zeroing a whole
        // chunk for each of ten thousand tiny files costs more than reading them.
        let mut window = start.clamp(8 << 10, CHUNK);
        if start < self.expected_end {
            window = window.min(self.expected_end - start);
        }
        if self.memory.len() < start + window {
            self.memory.resize(start + window, 0);
        }
        let n =
            read_some(reader, &mut self.memory[start..start + window]).map_err(SpoolError::Read)?;
        if n == 0 {
            return Ok(0);
        }
        self.filled += n;
        inspect(&self.memory[start..self.filled]);
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
        self.memory.truncate(self.filled);
        self.memory.extend_from_slice(&chunk);
        self.filled = self.memory.len();
        self.spill_if_over_threshold()
    }

    fn spill_if_over_threshold(&mut self) -> Result<(), SpoolError> {
        if self.writer.is_none() && self.filled > self.config.memory_threshold {
            let file = self.config.temp_file().map_err(SpoolError::Write)?;
            let mut writer = SpoolWriter::start(file).map_err(SpoolError::Write)?;
            let filled = std::mem::take(&mut self.filled);
            writer
                .send(std::mem::take(&mut self.memory), filled)
                .map_err(SpoolError::Write)?;
            self.writer = Some(writer);
        }
        Ok(())
    }

    /// Everything read so far, in memory or mapped from the finished spool file. After a read
    /// error this is what arrived before it.
    pub(crate) fn finish(self) -> io::Result<ObjectData> {
        match self.writer {
            None => {
                let mut memory = self.memory;
                memory.truncate(self.filled);
                Ok(ObjectData::from_vec(memory))
            }
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
