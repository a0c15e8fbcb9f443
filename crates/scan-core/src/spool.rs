//! Spooling: where an object's bytes live while it is scanned. Memory up to a threshold, then
//! an unnamed temp file written by a thread of its own, seen by everything else as one `&[u8]`
//! (memory-mapped). Spool files are created with `O_TMPFILE` semantics
//! (`tempfile::tempfile_in`): they have no name, so they vanish when the last handle closes, on
//! success, error, panic or crash alike. A spool file is kept for the next spool for a few
//! seconds after its object is dropped (see [`kept`]). Large mappings have their resident pages
//! released behind the engines as they go (see [`trim`]), so memory does not follow an object's
//! size.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, Weak, mpsc};
use std::time::{Duration, Instant};

use crate::error::InputError;
use crate::formats::literals::PayloadWatch;

/// Where and how inputs and expanded members are spooled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolPolicy {
    /// Objects up to this many bytes stay in memory; larger ones go to a temp file.
    pub memory_threshold: usize,
    /// Directory for spool files; the system temp directory when `None`.
    pub temp_dir: Option<PathBuf>,
    /// Largest root input accepted, if any. Past it, reading stops with [`InputError::TooLarge`].
    pub max_input_size: Option<u64>,
    /// Whether a spool file is kept for a few seconds after its object is dropped and written
    /// over by the next one (see `kept` in this module): far cheaper than a new file, at the
    /// price of its page cache and disk blocks staying in use for those seconds.
    pub reuse_files: bool,
}

impl Default for SpoolPolicy {
    fn default() -> Self {
        SpoolPolicy {
            memory_threshold: 8 << 20,
            temp_dir: None,
            max_input_size: None,
            reuse_files: true,
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

    /// A spool file in this policy's directory: one kept from an earlier spool if there is one,
    /// else a new one.
    fn spool_file(&self) -> io::Result<SpoolFile> {
        if self.reuse_files
            && let Some(kept) = kept::take(&self.temp_dir)
        {
            return Ok(kept);
        }
        let file = match &self.temp_dir {
            Some(dir) => tempfile::tempfile_in(dir)?,
            None => tempfile::tempfile()?,
        };
        Ok(SpoolFile {
            file,
            dir: self.temp_dir.clone(),
            made: Instant::now(),
            len: 0,
            reuse: self.reuse_files,
        })
    }
}

/// An unnamed spool file. It is written from its start by one spool at a time; what lies past
/// the object it holds (the rest of a longer object spooled in it before) is never mapped or read.
#[derive(Debug)]
pub(crate) struct SpoolFile {
    file: File,
    /// The directory it is in: it is reused only by spools of the same directory.
    dir: Option<PathBuf>,
    /// When it was made: it is reused only while younger than [`kept::reuse_for`].
    made: Instant,
    /// Its length: the longest object written into it so far.
    len: u64,
    /// Whether it may be kept for reuse ([`SpoolPolicy::reuse_files`]).
    reuse: bool,
}

/// The bytes of one object, in memory or memory-mapped from a spool or source file.
#[derive(Debug)]
pub struct ObjectData {
    repr: Repr,
    seen: Seen,
}

/// What the spool's writer learnt of an object while writing it, on its own thread, so that
/// the walker need not read a large object again to learn it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Seen {
    /// Whether the script format identifies the object; `None` when nobody watched it (objects
    /// held in memory, files mapped in place).
    pub(crate) script: Option<bool>,
}

#[derive(Debug)]
enum Repr {
    Memory(Vec<u8>),
    Mapped {
        /// Shared with the trimmer (weakly), which must never release pages of an unmapped range.
        map: Arc<memmap2::Mmap>,
        /// Keeps the file (and so an unnamed spool file's blocks) alive as long as the map.
        file: Backing,
    },
}

/// The file under a mapping.
#[derive(Debug)]
enum Backing {
    /// A file scanned in place: the caller's.
    Source(File),
    /// A spool file: ours, kept for the next spool once the object is dropped.
    Spool(SpoolFile),
}

impl ObjectData {
    /// Wraps bytes already in memory.
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        ObjectData {
            repr: Repr::Memory(bytes),
            seen: Seen::default(),
        }
    }

    /// Memory-maps a whole file. An empty file becomes an empty in-memory object (an empty
    /// mapping is an error on Linux).
    pub fn map_file(file: File) -> io::Result<Self> {
        let len = file.metadata()?.len();
        Self::mapped(Backing::Source(file), len, Seen::default())
    }

    /// Maps the first `len` bytes of a spool file: the object just written into it.
    fn map_spool(spool_file: SpoolFile, len: u64, seen: Seen) -> io::Result<Self> {
        Self::mapped(Backing::Spool(spool_file), len, seen)
    }

    fn mapped(file: Backing, len: u64, seen: Seen) -> io::Result<Self> {
        if len == 0 {
            if let Backing::Spool(spool_file) = file {
                kept::give(spool_file);
            }
            return Ok(Self::from_vec(Vec::new()));
        }
        let len = usize::try_from(len).map_err(|_| io::Error::other("object too large to map"))?;
        let map = Arc::new(map(file.file(), len)?);
        if map.len() as u64 >= TRIM_FROM {
            trim::register(&map);
        }
        Ok(ObjectData {
            repr: Repr::Mapped { map, file },
            seen,
        })
    }

    /// What the spool's writer learnt of the object.
    pub(crate) fn seen(&self) -> Seen {
        self.seen
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

    /// Whether the bytes are mapped from a file (a spool file or a file scanned in place) rather
    /// than held in memory.
    pub fn is_file_backed(&self) -> bool {
        matches!(self.repr, Repr::Mapped { .. })
    }
}

impl Backing {
    fn file(&self) -> &File {
        match self {
            Backing::Source(file) => file,
            Backing::Spool(spool_file) => &spool_file.file,
        }
    }
}

impl Drop for ObjectData {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.repr, Repr::Memory(Vec::new())) {
            Repr::Memory(bytes) => buffers::give(bytes),
            Repr::Mapped { map, file } => {
                // Unmapped first, so the file is never reused while this object's mapping is
                // alive (the trimmer may hold the map a moment longer; it only drops page-table
                // entries and reads nothing).
                drop(map);
                match file {
                    Backing::Spool(spool_file) => kept::give(spool_file),
                    Backing::Source(file) => drop(file),
                }
            }
        }
    }
}

#[allow(unsafe_code)]
fn map(file: &File, len: usize) -> io::Result<memmap2::Mmap> {
    // SAFETY: a mapping is undefined behaviour only if the file changes underneath it. Spool
    // files are unnamed and owned by this process alone, and a kept one is written again only
    // after the object mapped from it is dropped (and its mapping with it). Files scanned in
    // place by path are the caller's; a caller that truncates a file while it is being scanned
    // can crash the process (SIGBUS), the same trade ripgrep and yara make for mapped scanning.
    unsafe { memmap2::MmapOptions::new().len(len).map(file) }
}

/// Spool files kept for reuse. A new spool file costs far more than the object's bytes: the
/// kernel allocates and charges every page-cache page and every delayed block as it is written,
/// and frees them all when the file closes (for 256 MiB here: 45 ms to write a new file, 20 ms
/// more to close it, 18 ms to write over a kept one; on a virtual machine whose free memory goes
/// back to the host, a new file's first pages can cost ten times that). A file written over
/// keeps its pages and blocks, so a steady stream of large objects costs one copy each.
///
/// Bounds: a file is reused only while younger than [`kept::reuse_for`] (20 s, or two thirds of
/// the kernel's age for writing dirty pages back if that is set lower than its default 30 s), so
/// the data of short-lived objects is never written to the disk; at most [`kept::MAX_FILES`]
/// files and [`kept::MAX_BYTES`] bytes are kept, and a thread of its own closes those that grow
/// too old. A file that is not kept is closed on that thread too, since closing a large one
/// frees its page cache synchronously (about 20 ms per 256 MiB) and the verdict need not wait.
pub(crate) mod kept {
    use super::*;

    /// At most this many files are kept.
    pub(crate) const MAX_FILES: usize = 8;
    /// At most this many bytes of files are kept (their lengths: the longest object each held).
    pub(crate) const MAX_BYTES: u64 = 2 << 30;
    /// How often the keeper closes files that grew too old.
    const SWEEP_EVERY: Duration = Duration::from_secs(1);

    static KEPT: Mutex<Vec<SpoolFile>> = Mutex::new(Vec::new());

    /// How long after it was made a spool file is reused: 20 s, and never past two thirds of
    /// the age at which the kernel writes dirty pages back (`vm.dirty_expire_centisecs`).
    pub(crate) fn reuse_for() -> Duration {
        static REUSE_FOR: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
        *REUSE_FOR.get_or_init(|| {
            let expire = std::fs::read_to_string("/proc/sys/vm/dirty_expire_centisecs")
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .map(|centis| Duration::from_millis(centis * 10 * 2 / 3));
            let most = Duration::from_secs(20);
            // Unknown (not Linux, no /proc): a file is not reused at all.
            expire.map_or(Duration::ZERO, |expire| expire.min(most))
        })
    }

    /// The youngest kept file of `dir` young enough to reuse, rewound to its start.
    pub(crate) fn take(dir: &Option<PathBuf>) -> Option<SpoolFile> {
        let mut kept = KEPT.lock().unwrap_or_else(PoisonError::into_inner);
        let youngest = kept
            .iter()
            .enumerate()
            .filter(|(_, f)| &f.dir == dir && f.made.elapsed() < reuse_for())
            .max_by_key(|(_, f)| f.made)
            .map(|(i, _)| i);
        let mut spool_file = match youngest {
            Some(i) => kept.swap_remove(i),
            None => {
                drop(kept);
                // Normally the keeper has closed them already.
                too_old().into_iter().for_each(close);
                return None;
            }
        };
        drop(kept);
        match spool_file.file.rewind() {
            Ok(()) => Some(spool_file),
            Err(error) => {
                tracing::debug!(%error, "a kept spool file could not be rewound; closing it");
                close(spool_file);
                None
            }
        }
    }

    /// Keeps `spool_file` for the next spool if it is young enough and there is room; closes it
    /// in the background otherwise.
    pub(crate) fn give(spool_file: SpoolFile) {
        if !spool_file.reuse
            || spool_file.made.elapsed() >= reuse_for()
            || spool_file.len > MAX_BYTES
        {
            return close(spool_file);
        }
        let mut kept = KEPT.lock().unwrap_or_else(PoisonError::into_inner);
        let bytes: u64 = kept.iter().map(|f| f.len).sum();
        if kept.len() >= MAX_FILES || bytes + spool_file.len > MAX_BYTES {
            drop(kept);
            return close(spool_file);
        }
        kept.push(spool_file);
        drop(kept);
        // Started with the first kept file, so it is there to close it when it grows old.
        keeper();
    }

    /// Takes the kept files that grew too old out of the pool.
    fn too_old() -> Vec<SpoolFile> {
        let mut kept = KEPT.lock().unwrap_or_else(PoisonError::into_inner);
        let (old, young) = std::mem::take(&mut *kept)
            .into_iter()
            .partition(|f| f.made.elapsed() >= reuse_for());
        *kept = young;
        old
    }

    /// How many files are kept now, and their bytes.
    #[cfg(test)]
    pub(crate) fn held() -> (usize, u64) {
        let kept = KEPT.lock().unwrap_or_else(PoisonError::into_inner);
        (kept.len(), kept.iter().map(|f| f.len).sum())
    }

    fn close(spool_file: SpoolFile) {
        if let Err(mpsc::SendError(spool_file)) = keeper().send(spool_file) {
            drop(spool_file);
        }
    }

    /// The keeper thread: closes the files it is sent, and every [`SWEEP_EVERY`] the kept ones
    /// that grew too old. Started on first use; if it cannot start, files are closed inline and
    /// kept ones that grew too old are closed by the next `take`.
    fn keeper() -> &'static mpsc::Sender<SpoolFile> {
        static KEEPER: std::sync::OnceLock<mpsc::Sender<SpoolFile>> = std::sync::OnceLock::new();
        KEEPER.get_or_init(|| {
            let (tx, rx) = mpsc::channel::<SpoolFile>();
            let started = std::thread::Builder::new()
                .name("verdict-spool-keeper".into())
                .spawn(move || {
                    loop {
                        match rx.recv_timeout(SWEEP_EVERY) {
                            Ok(spool_file) => drop(spool_file),
                            Err(mpsc::RecvTimeoutError::Timeout) => {}
                            Err(mpsc::RecvTimeoutError::Disconnected) => return,
                        }
                        // Closed outside the pool's lock: each may take tens of milliseconds.
                        drop(too_old());
                    }
                });
            if let Err(error) = started {
                tracing::warn!(%error, "no thread to close spool files; they are closed inline");
            }
            tx
        })
    }
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

/// Size of the chunks objects are read in while in memory.
const CHUNK: usize = 256 * 1024;
/// Size of the chunks read for, and written by, the spool writer.
const WRITE_CHUNK: usize = 1 << 20;

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
            // Filled before it is sent: a decoder returns a few KiB a read, and each send may
            // wake the writer (a futex call each; 9% of the inflating thread at 256 KiB sends).
            let mut buf = writer.buffer();
            let mut n = 0;
            let mut failed = None;
            while n < buf.len() {
                match read_some(reader, &mut buf[n..]) {
                    Ok(0) => break,
                    Ok(got) => n += got,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if n > 0 {
                // What arrived before an error is kept, as in memory mode.
                inspect(&buf[..n]);
                self.total += n as u64;
                check_max(self.total, self.max)?;
                writer.send(buf, n).map_err(SpoolError::Write)?;
            }
            return match failed {
                Some(e) => Err(SpoolError::Read(e)),
                None => Ok(n),
            };
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
            let file = self.config.spool_file().map_err(SpoolError::Write)?;
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
            Some(writer) => {
                let (spool_file, written, seen) = writer.finish()?;
                ObjectData::map_spool(spool_file, written, seen)
            }
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
    /// Shared chunks, gathered to about [`WRITE_CHUNK`] bytes so the writer is woken less often.
    Shared(Vec<bytes::Bytes>),
}

/// What the writer thread hands back: the spool file, how many bytes it wrote from its start,
/// and what it saw of them.
type Written = (SpoolFile, u64, Seen);

struct SpoolWriter {
    chunks: Option<mpsc::SyncSender<Chunk>>,
    /// Shared chunks not sent yet, and their bytes.
    gathered: Vec<bytes::Bytes>,
    gathered_len: usize,
    recycled: mpsc::Receiver<Vec<u8>>,
    thread: Option<std::thread::JoinHandle<io::Result<Written>>>,
}

impl SpoolWriter {
    /// Starts writing at the start of `spool_file` (a kept one is rewound already).
    fn start(spool_file: SpoolFile) -> io::Result<Self> {
        // Eight chunks (8 MiB) in flight absorb bursts of page-cache work and bound the memory a
        // slow disk can hold up.
        let (chunks, incoming) = mpsc::sync_channel::<Chunk>(8);
        let (give_back, recycled) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("verdict-spool".into())
            .spawn(move || {
                let mut spool_file = spool_file;
                let mut written = 0u64;
                // The one pass identification would make over a large text object, made here
                // beside the reader instead of after it.
                let mut watch = PayloadWatch::default();
                for chunk in incoming {
                    match chunk {
                        Chunk::Buffer(buf, len) => {
                            watch.feed(&buf[..len]);
                            spool_file.file.write_all(&buf[..len])?;
                            written += len as u64;
                            if buf.len() == WRITE_CHUNK {
                                // The reader may be gone already; then the buffer is dropped.
                                let _ = give_back.send(buf);
                            }
                        }
                        Chunk::Shared(gathered) => {
                            for bytes in gathered {
                                watch.feed(&bytes);
                                spool_file.file.write_all(&bytes)?;
                                written += bytes.len() as u64;
                            }
                        }
                    }
                }
                spool_file.len = spool_file.len.max(written);
                let seen = Seen {
                    script: Some(watch.finish()),
                };
                Ok((spool_file, written, seen))
            })?;
        Ok(SpoolWriter {
            chunks: Some(chunks),
            gathered: Vec::new(),
            gathered_len: 0,
            recycled,
            thread: Some(thread),
        })
    }

    /// A buffer of [`WRITE_CHUNK`] bytes, reused when the writer has given one back.
    fn buffer(&self) -> Vec<u8> {
        self.recycled
            .try_recv()
            .unwrap_or_else(|_| vec![0; WRITE_CHUNK])
    }

    fn send(&mut self, buf: Vec<u8>, len: usize) -> io::Result<()> {
        // In order after any shared chunks still gathered.
        self.send_gathered()?;
        self.send_chunk(Chunk::Buffer(buf, len))
    }

    fn send_shared(&mut self, bytes: bytes::Bytes) -> io::Result<()> {
        self.gathered_len += bytes.len();
        self.gathered.push(bytes);
        if self.gathered_len >= WRITE_CHUNK {
            self.send_gathered()?;
        }
        Ok(())
    }

    fn send_gathered(&mut self) -> io::Result<()> {
        if self.gathered.is_empty() {
            return Ok(());
        }
        self.gathered_len = 0;
        let gathered = std::mem::take(&mut self.gathered);
        self.send_chunk(Chunk::Shared(gathered))
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

    fn finish(mut self) -> io::Result<Written> {
        self.send_gathered()?;
        self.join()
    }

    fn join(&mut self) -> io::Result<Written> {
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
    use std::os::unix::fs::MetadataExt;

    fn policy(dir: &std::path::Path) -> SpoolPolicy {
        SpoolPolicy {
            memory_threshold: 1024,
            temp_dir: Some(dir.to_owned()),
            max_input_size: None,
            reuse_files: true,
        }
    }

    fn spooled(policy: &SpoolPolicy, bytes: &[u8]) -> ObjectData {
        let mut spool = Spool::new(policy, None);
        let mut reader = bytes;
        while spool.read_from(&mut reader, &mut |_| {}).expect("read") > 0 {}
        spool.finish().expect("finish")
    }

    /// The inode and the length of the spool file under `data`. (An inode number alone does not
    /// tell a kept file from a new one: a closed file's number is soon given to the next.)
    fn spool_file_of(data: &ObjectData) -> (u64, u64) {
        match &data.repr {
            Repr::Mapped {
                file: Backing::Spool(spool_file),
                ..
            } => {
                let meta = spool_file.file.metadata().expect("metadata");
                (meta.ino(), meta.len())
            }
            other => panic!("not spooled to a file: {other:?}"),
        }
    }

    fn inode(data: &ObjectData) -> u64 {
        spool_file_of(data).0
    }

    #[test]
    fn a_spool_file_is_written_over_by_the_next_spool_and_only_the_new_object_is_seen() {
        let (one, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let first: Vec<u8> = (0..3u32 << 20).map(|i| (i % 251) as u8).collect();
        let data = spooled(&policy(one.path()), &first);
        assert_eq!(data.as_slice(), &first[..]);
        let first_inode = inode(&data);
        drop(data);

        // Shorter than the first: the rest of the first object is still in the file, unseen.
        // The file's length shows it is the first one (a new file would hold 1 MiB).
        let second = vec![0xA5u8; 1 << 20];
        let data = spooled(&policy(one.path()), &second);
        assert_eq!(
            spool_file_of(&data),
            (first_inode, first.len() as u64),
            "the kept file is reused"
        );
        assert_eq!(data.as_slice(), &second[..]);

        // While it is in use, another spool of the same directory gets a file of its own, and
        // a spool of another directory never gets this one.
        let third = vec![0x5Au8; 2 << 20];
        let beside = spooled(&policy(one.path()), &third);
        assert_ne!(inode(&beside), first_inode);
        assert_eq!(beside.as_slice(), &third[..]);
        assert_eq!(data.as_slice(), &second[..]);
        drop(data);
        let elsewhere = spooled(&policy(other.path()), &third);
        assert_ne!(inode(&elsewhere), first_inode);
        assert_eq!(elsewhere.as_slice(), &third[..]);
    }

    #[test]
    fn with_reuse_turned_off_every_spool_gets_a_new_file_and_none_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let policy = SpoolPolicy {
            reuse_files: false,
            ..policy(dir.path())
        };
        let longer = vec![7u8; 128 << 10];
        drop(spooled(&policy, &longer));
        assert!(kept::take(&policy.temp_dir).is_none(), "nothing kept");
        // A new file: it holds the shorter object alone, nothing of the first.
        let shorter = vec![9u8; 64 << 10];
        let data = spooled(&policy, &shorter);
        assert_eq!(spool_file_of(&data).1, shorter.len() as u64);
        assert_eq!(data.as_slice(), &shorter[..]);
    }

    #[test]
    fn files_too_old_or_too_large_are_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let made = |age: Duration, len: u64| SpoolFile {
            file: tempfile::tempfile_in(dir.path()).unwrap(),
            dir: Some(dir.path().to_owned()),
            made: Instant::now().checked_sub(age).unwrap(),
            len,
            reuse: true,
        };
        let key = Some(dir.path().to_owned());
        // Within the kernel's own age for writing dirty pages back, read from /proc.
        let expire: u64 = std::fs::read_to_string("/proc/sys/vm/dirty_expire_centisecs")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let reuse_for = kept::reuse_for();
        assert!(reuse_for <= Duration::from_secs(20));
        assert!(reuse_for > Duration::ZERO && reuse_for < Duration::from_millis(expire * 10));
        kept::give(made(reuse_for, 1 << 20));
        assert!(kept::take(&key).is_none(), "too old to reuse");
        kept::give(made(Duration::ZERO, kept::MAX_BYTES + 1));
        assert!(kept::take(&key).is_none(), "too large to keep");
        kept::give(made(Duration::ZERO, 1 << 20));
        let taken = kept::take(&key).expect("a young, small file is kept");
        assert_eq!(taken.len, 1 << 20);
        assert!(kept::take(&key).is_none(), "a kept file is taken once");
        let (files, bytes) = kept::held();
        assert!(files <= kept::MAX_FILES && bytes <= kept::MAX_BYTES);
    }
}
