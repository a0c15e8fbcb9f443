//! `EmbeddedStore`: the queue and result store in one redb file, so a single `verdict-async`
//! needs no external service and loses nothing to a crash or restart.
//!
//! Durable state is only what must survive: queued jobs and results. A push is answered only
//! after its transaction is committed (fsynced). Claims live in memory: one process owns the
//! file (redb locks it), so after a crash every stored job is simply queued again.
//!
//! Writes go through one writer thread that commits whatever has queued up since its last commit
//! in a single transaction (group commit), so many submitters and workers share each fsync
//! instead of waiting for one each.
//!
//! Memory holds a few words per queued job (sequence, id, trace id); the job itself is read back
//! from the file when it is claimed, so a deep queue costs disk, not memory.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{Notify, oneshot};

use crate::clock::Clock;
use crate::job::Job;
use crate::store::{JobQueue, Pushed, ResultStore, StoreError};

/// Queue order: sequence number -> job JSON.
const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("queued_jobs");
/// Trace id -> (expiry in milliseconds since the epoch, result JSON).
const RESULTS: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("results");
/// (expiry, trace id): results in the order they expire, so sweeping never scans live ones.
const EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("result_expiry");

/// Bulk scan id -> (scan JSON, progress JSON).
const BULKS: TableDefinition<&str, (&[u8], &[u8])> = TableDefinition::new("bulk_scans");
/// (bulk scan id, key) -> outcome: each object's outcome, recorded once.
const BULK_OBJECTS: TableDefinition<(&str, &str), &str> = TableDefinition::new("bulk_objects");

/// Most operations committed in one transaction.
const MAX_BATCH: usize = 4096;
/// How often expired results are swept, and most results removed per sweep.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
const SWEEP_MAX: usize = 10_000;

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// What memory knows of a stored job.
struct Entry {
    id: String,
    trace_id: Option<String>,
    attempts: u32,
    /// The submitting key's id, whose queued jobs are counted.
    submitted_by: Option<String>,
}

#[derive(Default)]
struct State {
    /// Every stored job by sequence number, claimed or not.
    jobs: HashMap<u64, Entry>,
    /// Job id -> sequence number.
    ids: HashMap<String, u64>,
    /// Unclaimed jobs, oldest first.
    waiting: BTreeSet<u64>,
    /// Trace ids of stored jobs (and of pushes being committed) -> job id.
    traces: HashMap<String, String>,
    /// Pushes being committed, counted against the size limit.
    committing: usize,
    /// Jobs stored (or being committed) per submitting key.
    by_key: HashMap<String, usize>,
    next_seq: u64,
}

impl State {
    fn count_in(&mut self, key: Option<&str>) {
        if let Some(key) = key {
            *self.by_key.entry(key.to_owned()).or_default() += 1;
        }
    }

    fn count_out(&mut self, key: Option<&str>) {
        if let Some(key) = key
            && let Some(count) = self.by_key.get_mut(key)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.by_key.remove(key);
            }
        }
    }
}

enum Op {
    Push {
        seq: u64,
        json: Vec<u8>,
        forget_result: Option<String>,
    },
    Remove {
        seq: u64,
    },
    PutResult {
        trace_id: String,
        expires: u64,
        json: Vec<u8>,
    },
    BulkCreate {
        id: String,
        json: Vec<u8>,
    },
    BulkAdvance {
        id: String,
        advance: crate::bulk::Advance,
    },
    BulkRecord {
        id: String,
        key: String,
        entry: crate::bulk::Entry,
        bytes: u64,
    },
}

struct Request {
    op: Op,
    /// Whether the operation took effect (for the conditional ones), once committed.
    done: oneshot::Sender<Result<bool, String>>,
}

struct Shared {
    db: Arc<Database>,
    state: Mutex<State>,
    ready: Notify,
    max_jobs: usize,
    writes: Mutex<Option<std_mpsc::Sender<Request>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    clock: Clock,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Close the channel, then wait for the writer to let go of the file, so the same path can
        // be opened again at once (tests, restarts within one process).
        self.writes.get_mut().map(Option::take).ok();
        if let Ok(Some(writer)) = self.writer.get_mut().map(Option::take) {
            let _ = writer.join();
        }
    }
}

/// The embedded queue and result store.
#[derive(Clone)]
pub struct EmbeddedStore {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the store at `path`, holding at most `max_jobs` queued jobs. Every job
    /// stored there is queued again, in its original order.
    pub fn open(path: &Path, max_jobs: usize) -> Result<Self, StoreError> {
        Self::open_with_clock(path, max_jobs, Clock::System)
    }

    /// As [`open`](Self::open), dating results (when they expire) by `clock`.
    pub fn open_with_clock(path: &Path, max_jobs: usize, clock: Clock) -> Result<Self, StoreError> {
        let db = Database::create(path)
            .map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))?;
        let txn = db.begin_write().map_err(backend)?;
        // Create every table, so readers never meet a missing one.
        txn.open_table(JOBS).map_err(backend)?;
        txn.open_table(RESULTS).map_err(backend)?;
        txn.open_table(EXPIRY).map_err(backend)?;
        txn.open_table(BULKS).map_err(backend)?;
        txn.open_table(BULK_OBJECTS).map_err(backend)?;
        txn.commit().map_err(backend)?;

        let mut state = State::default();
        {
            let txn = db.begin_read().map_err(backend)?;
            let jobs = txn.open_table(JOBS).map_err(backend)?;
            for record in jobs.iter().map_err(backend)? {
                let (seq, json) = record.map_err(backend)?;
                let seq = seq.value();
                state.next_seq = seq + 1;
                match serde_json::from_slice::<Job>(json.value()) {
                    Ok(job) => {
                        if let Some(trace) = &job.spec.result_key() {
                            state.traces.insert(trace.clone(), job.id.clone());
                        }
                        state.ids.insert(job.id.clone(), seq);
                        state.waiting.insert(seq);
                        state.count_in(job.spec.submitted_by.as_deref());
                        state.jobs.insert(
                            seq,
                            Entry {
                                id: job.id,
                                trace_id: job.spec.result_key(),
                                attempts: job.attempts,
                                submitted_by: job.spec.submitted_by,
                            },
                        );
                    }
                    // Left in the file for inspection, not silently dropped.
                    Err(e) => {
                        tracing::error!(seq, error = %e, "a stored job cannot be read; it is not queued")
                    }
                }
            }
        }
        if !state.jobs.is_empty() {
            tracing::info!(
                jobs = state.jobs.len(),
                "jobs stored before the last stop are queued again"
            );
        }

        let db = Arc::new(db);
        let (tx, rx) = std_mpsc::channel();
        let writer = {
            let db = Arc::clone(&db);
            let clock = clock.clone();
            std::thread::Builder::new()
                .name("verdict-store-writer".to_owned())
                .spawn(move || write_loop(&db, &rx, &clock))
                .map_err(backend)?
        };
        Ok(EmbeddedStore {
            shared: Arc::new(Shared {
                db,
                state: Mutex::new(state),
                ready: Notify::new(),
                max_jobs: max_jobs.max(1),
                writes: Mutex::new(Some(tx)),
                writer: Mutex::new(Some(writer)),
                clock,
            }),
        })
    }

    fn state(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        self.shared
            .state
            .lock()
            .map_err(|_| backend("queue state poisoned by a panic"))
    }

    /// Hands `op` to the writer and waits until it is committed.
    async fn write(&self, op: Op) -> Result<(), StoreError> {
        self.write_if(op).await.map(|_| ())
    }

    /// Hands `op` to the writer; once committed, whether it took effect.
    async fn write_if(&self, op: Op) -> Result<bool, StoreError> {
        let (done, committed) = oneshot::channel();
        {
            let writes = self
                .shared
                .writes
                .lock()
                .map_err(|_| backend("writer poisoned"))?;
            let sender = writes
                .as_ref()
                .ok_or_else(|| backend("the store is closed"))?;
            sender
                .send(Request { op, done })
                .map_err(|_| backend("the store's writer has stopped"))?;
        }
        committed
            .await
            .map_err(|_| backend("the store's writer has stopped"))?
            .map_err(StoreError::Backend)
    }

    /// Reads the stored jobs for `claimed` (sequence, attempts) on a blocking thread.
    async fn read_jobs(&self, claimed: Vec<(u64, u32)>) -> Result<Vec<Job>, StoreError> {
        let db = Arc::clone(&self.shared.db);
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(JOBS).map_err(backend)?;
            claimed
                .into_iter()
                .map(|(seq, attempts)| {
                    let record =
                        table
                            .get(seq)
                            .map_err(backend)?
                            .ok_or_else(|| StoreError::Corrupt {
                                key: seq.to_string(),
                                message: "queued but not stored".to_owned(),
                            })?;
                    let mut job: Job = serde_json::from_slice(record.value()).map_err(|e| {
                        StoreError::Corrupt {
                            key: seq.to_string(),
                            message: e.to_string(),
                        }
                    })?;
                    job.attempts = attempts;
                    job.receipt = seq.to_string();
                    Ok(job)
                })
                .collect()
        })
        .await
        .map_err(backend)?
    }

    /// Reads the claimed jobs and stores their claim counts before any of them starts, so a job
    /// that kills the process every time it runs is still given up after max_attempts restarts.
    async fn start(&self, claimed: Vec<(u64, u32)>) -> Result<Vec<Job>, StoreError> {
        let jobs = self.read_jobs(claimed).await?;
        let counted = jobs.iter().map(|job| {
            let json = serde_json::to_vec(job).map_err(backend);
            let seq = job.receipt.parse::<u64>().map_err(backend);
            async move {
                self.write(Op::Push {
                    seq: seq?,
                    json: json?,
                    forget_result: None,
                })
                .await
            }
        });
        futures::future::try_join_all(counted).await?;
        Ok(jobs)
    }

    fn take_waiting(&self, max: usize) -> Result<Vec<(u64, u32)>, StoreError> {
        let mut state = self.state()?;
        let mut claimed = Vec::new();
        while claimed.len() < max {
            let Some(seq) = state.waiting.pop_first() else {
                break;
            };
            if let Some(entry) = state.jobs.get_mut(&seq) {
                entry.attempts += 1;
                claimed.push((seq, entry.attempts));
            }
        }
        Ok(claimed)
    }

    fn seq_of(&self, job: &Job) -> Result<Option<u64>, StoreError> {
        Ok(self.state()?.ids.get(&job.id).copied())
    }
}

#[async_trait]
impl JobQueue for EmbeddedStore {
    async fn push_limited(&self, job: &Job, quota: Option<usize>) -> Result<Pushed, StoreError> {
        let json = serde_json::to_vec(job).map_err(backend)?;
        let submitted_by = job.spec.submitted_by.as_deref();
        let seq = {
            let mut state = self.state()?;
            if state.jobs.len() + state.committing >= self.shared.max_jobs {
                return Ok(Pushed::Full);
            }
            if let (Some(quota), Some(key)) = (quota, submitted_by)
                && state.by_key.get(key).copied().unwrap_or(0) >= quota
            {
                return Ok(Pushed::OverQuota);
            }
            if let Some(trace) = &job.spec.result_key() {
                if state.traces.contains_key(trace) {
                    return Ok(Pushed::TraceIdPending);
                }
                state.traces.insert(trace.clone(), job.id.clone());
            }
            state.committing += 1;
            state.count_in(submitted_by);
            state.next_seq += 1;
            state.next_seq - 1
        };
        let written = self
            .write(Op::Push {
                seq,
                json,
                forget_result: job.spec.result_key(),
            })
            .await;
        let mut state = self.state()?;
        state.committing -= 1;
        match written {
            Ok(()) => {
                state.ids.insert(job.id.clone(), seq);
                state.waiting.insert(seq);
                state.jobs.insert(
                    seq,
                    Entry {
                        id: job.id.clone(),
                        trace_id: job.spec.result_key(),
                        attempts: job.attempts,
                        submitted_by: job.spec.submitted_by.clone(),
                    },
                );
                drop(state);
                self.shared.ready.notify_waiters();
                Ok(Pushed::Queued)
            }
            Err(e) => {
                if let Some(trace) = &job.spec.result_key() {
                    state.traces.remove(trace);
                }
                state.count_out(submitted_by);
                Err(e)
            }
        }
    }

    async fn claim(&self, max: usize, wait: Duration) -> Result<Vec<Job>, StoreError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Registered before looking, so a push between the look and the wait still wakes us.
            let notified = self.shared.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let claimed = self.take_waiting(max.max(1))?;
            if !claimed.is_empty() {
                let seqs: Vec<u64> = claimed.iter().map(|(seq, _)| *seq).collect();
                let started = self.start(claimed).await;
                if started.is_err() {
                    // Not handed out after all: back in line, so nothing is stranded.
                    self.state()?.waiting.extend(seqs);
                }
                return started;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn renew(&self, _jobs: &[Job]) -> Result<(), StoreError> {
        // Claims belong to this process alone; nobody else can take them over.
        Ok(())
    }

    async fn complete(&self, job: &Job) -> Result<(), StoreError> {
        let Some(seq) = self.seq_of(job)? else {
            return Ok(());
        };
        self.write(Op::Remove { seq }).await?;
        let mut state = self.state()?;
        if let Some(entry) = state.jobs.remove(&seq) {
            state.ids.remove(&entry.id);
            state.count_out(entry.submitted_by.as_deref());
            if let Some(trace) = entry.trace_id
                && state.traces.get(&trace) == Some(&entry.id)
            {
                state.traces.remove(&trace);
            }
        }
        state.waiting.remove(&seq);
        Ok(())
    }

    async fn release(&self, job: &Job) -> Result<(), StoreError> {
        if let Some(seq) = self.seq_of(job)? {
            self.state()?.waiting.insert(seq);
            self.shared.ready.notify_waiters();
        }
        Ok(())
    }

    async fn defer(&self, job: &Job, after: Duration) -> Result<(), StoreError> {
        let Some(seq) = self.seq_of(job)? else {
            return Ok(());
        };
        if let Some(entry) = self.state()?.jobs.get_mut(&seq) {
            entry.attempts = entry.attempts.saturating_sub(1);
        }
        // Claims live in this process alone: held out of line until then. A stop meanwhile
        // loses nothing, since every stored job is queued again at the next start; the wait
        // does not keep the store (and its file) open.
        let shared = Arc::downgrade(&self.shared);
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let store = EmbeddedStore { shared };
            if let Ok(mut state) = store.state()
                && state.jobs.contains_key(&seq)
            {
                state.waiting.insert(seq);
                drop(state);
                store.shared.ready.notify_waiters();
            }
        });
        Ok(())
    }

    async fn pending(&self) -> Result<usize, StoreError> {
        Ok(self.state()?.jobs.len())
    }
}

#[async_trait]
impl ResultStore for EmbeddedStore {
    async fn put(
        &self,
        trace_id: &str,
        result: &crate::wire::ScanResult,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.write(Op::PutResult {
            trace_id: trace_id.to_owned(),
            expires: self.shared.clock.now_ms() + ttl.as_millis() as u64,
            json: serde_json::to_vec(result).map_err(backend)?,
        })
        .await
    }

    async fn get(&self, trace_id: &str) -> Result<Option<crate::wire::ScanResult>, StoreError> {
        let key = trace_id.to_owned();
        let db = Arc::clone(&self.shared.db);
        let now = self.shared.clock.now_ms();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(backend)?;
            let results = txn.open_table(RESULTS).map_err(backend)?;
            let Some(record) = results.get(key.as_str()).map_err(backend)? else {
                return Ok(None);
            };
            let (until, bytes) = record.value();
            if until <= now {
                return Ok(None);
            }
            serde_json::from_slice(bytes)
                .map(Some)
                .map_err(|e| StoreError::Corrupt {
                    key: key.clone(),
                    message: e.to_string(),
                })
        })
        .await
        .map_err(backend)?
    }
}

/// The writer thread: commits everything queued since the last commit in one transaction, and
/// sweeps expired results now and then.
fn write_loop(db: &Database, requests: &std_mpsc::Receiver<Request>, clock: &Clock) {
    let mut last_sweep = Instant::now();
    loop {
        let mut batch = Vec::new();
        match requests.recv_timeout(SWEEP_EVERY) {
            Ok(request) => batch.push(request),
            Err(std_mpsc::RecvTimeoutError::Timeout) => {}
            Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
        }
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let sweep = last_sweep.elapsed() >= SWEEP_EVERY;
        if batch.is_empty() && !sweep {
            continue;
        }
        if sweep {
            last_sweep = Instant::now();
        }
        let outcome = commit(db, &batch, sweep.then(|| clock.now_ms())).map_err(|e| {
            tracing::error!(error = %e, operations = batch.len(), "committing to the job store failed");
            e.to_string()
        });
        for (i, request) in batch.into_iter().enumerate() {
            let answer = match &outcome {
                Ok(effects) => Ok(effects.get(i).copied().unwrap_or(true)),
                Err(e) => Err(e.clone()),
            };
            let _ = request.done.send(answer);
        }
    }
}

/// Commits `batch` in one transaction, and sweeps results expired at `sweep` (ms since the epoch)
/// when given; for each operation, whether it took effect.
fn commit(db: &Database, batch: &[Request], sweep: Option<u64>) -> Result<Vec<bool>, StoreError> {
    let txn = db.begin_write().map_err(backend)?;
    let mut effects = Vec::with_capacity(batch.len());
    {
        let mut jobs = txn.open_table(JOBS).map_err(backend)?;
        let mut results = txn.open_table(RESULTS).map_err(backend)?;
        let mut expiry = txn.open_table(EXPIRY).map_err(backend)?;
        let mut bulks = txn.open_table(BULKS).map_err(backend)?;
        let mut bulk_objects = txn.open_table(BULK_OBJECTS).map_err(backend)?;
        for request in batch {
            let mut effect = true;
            match &request.op {
                Op::Push {
                    seq,
                    json,
                    forget_result,
                } => {
                    jobs.insert(*seq, json.as_slice()).map_err(backend)?;
                    if let Some(trace) = forget_result {
                        results.remove(trace.as_str()).map_err(backend)?;
                    }
                }
                Op::Remove { seq } => {
                    jobs.remove(*seq).map_err(backend)?;
                }
                Op::PutResult {
                    trace_id,
                    expires,
                    json,
                } => {
                    results
                        .insert(trace_id.as_str(), (*expires, json.as_slice()))
                        .map_err(backend)?;
                    expiry
                        .insert((*expires, trace_id.as_str()), ())
                        .map_err(backend)?;
                }
                Op::BulkCreate { id, json } => {
                    let progress =
                        serde_json::to_vec(&crate::bulk::Progress::default()).map_err(backend)?;
                    bulks
                        .insert(id.as_str(), (json.as_slice(), progress.as_slice()))
                        .map_err(backend)?;
                }
                Op::BulkAdvance { id, advance } => {
                    effect = change_progress(&mut bulks, id, |progress| {
                        if progress.pages != advance.page || progress.after != advance.from {
                            return false;
                        }
                        if advance.whole {
                            progress.pages += 1;
                        }
                        progress.after.clone_from(&advance.after);
                        progress.listed += advance.listed;
                        progress.queued += advance.queued;
                        progress.listing_done = advance.whole && advance.last;
                        true
                    })?;
                }
                Op::BulkRecord {
                    id,
                    key,
                    entry,
                    bytes,
                } => {
                    let known = bulk_objects
                        .get((id.as_str(), key.as_str()))
                        .map_err(backend)?
                        .is_some();
                    effect = !known
                        && change_progress(&mut bulks, id, |progress| {
                            progress.count(*entry, *bytes);
                            true
                        })?;
                    if effect {
                        bulk_objects
                            .insert((id.as_str(), key.as_str()), entry.name())
                            .map_err(backend)?;
                    }
                }
            }
            effects.push(effect);
        }
        if let Some(now) = sweep {
            // Expired at `now` or before, as `get` sees it.
            let due: Vec<(u64, String)> = expiry
                .range::<(u64, &str)>(..(now.saturating_add(1), ""))
                .map_err(backend)?
                .take(SWEEP_MAX)
                .map(|record| record.map(|(key, _)| (key.value().0, key.value().1.to_owned())))
                .collect::<Result<_, _>>()
                .map_err(backend)?;
            for (expires, trace) in due {
                // The result may have been replaced since; only its own expiry removes it.
                let current = results
                    .get(trace.as_str())
                    .map_err(backend)?
                    .map(|record| record.value().0);
                if current == Some(expires) {
                    results.remove(trace.as_str()).map_err(backend)?;
                }
                expiry.remove((expires, trace.as_str())).map_err(backend)?;
            }
        }
    }
    txn.commit().map_err(backend)?;
    Ok(effects)
}

/// Applies `change` to bulk scan `id`'s progress and stores it when `change` says so; `false`
/// (and nothing stored) when the bulk scan is unknown or `change` declines.
fn change_progress(
    bulks: &mut redb::Table<&str, (&[u8], &[u8])>,
    id: &str,
    change: impl FnOnce(&mut crate::bulk::Progress) -> bool,
) -> Result<bool, StoreError> {
    let (scan, mut progress) = match bulks.get(id).map_err(backend)? {
        Some(record) => {
            let (scan, progress) = record.value();
            let progress: crate::bulk::Progress =
                serde_json::from_slice(progress).map_err(|e| StoreError::Corrupt {
                    key: id.to_owned(),
                    message: e.to_string(),
                })?;
            (scan.to_vec(), progress)
        }
        None => return Ok(false),
    };
    if !change(&mut progress) {
        return Ok(false);
    }
    let progress = serde_json::to_vec(&progress).map_err(backend)?;
    bulks
        .insert(id, (scan.as_slice(), progress.as_slice()))
        .map_err(backend)?;
    Ok(true)
}

#[async_trait]
impl crate::bulk::BulkStore for EmbeddedStore {
    async fn create(&self, bulk: &crate::bulk::BulkScan) -> Result<(), StoreError> {
        self.write(Op::BulkCreate {
            id: bulk.id.clone(),
            json: serde_json::to_vec(bulk).map_err(backend)?,
        })
        .await
    }

    async fn bulk(
        &self,
        id: &str,
    ) -> Result<Option<(crate::bulk::BulkScan, crate::bulk::Progress)>, StoreError> {
        let id = id.to_owned();
        let db = Arc::clone(&self.shared.db);
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(backend)?;
            let bulks = txn.open_table(BULKS).map_err(backend)?;
            let Some(record) = bulks.get(id.as_str()).map_err(backend)? else {
                return Ok(None);
            };
            let (scan, progress) = record.value();
            let corrupt = |e: serde_json::Error| StoreError::Corrupt {
                key: id.clone(),
                message: e.to_string(),
            };
            Ok(Some((
                serde_json::from_slice(scan).map_err(corrupt)?,
                serde_json::from_slice(progress).map_err(corrupt)?,
            )))
        })
        .await
        .map_err(backend)?
    }

    async fn advance(&self, id: &str, advance: &crate::bulk::Advance) -> Result<bool, StoreError> {
        self.write_if(Op::BulkAdvance {
            id: id.to_owned(),
            advance: advance.clone(),
        })
        .await
    }

    async fn record(
        &self,
        id: &str,
        key: &str,
        entry: crate::bulk::Entry,
        bytes: u64,
    ) -> Result<bool, StoreError> {
        self.write_if(Op::BulkRecord {
            id: id.to_owned(),
            key: key.to_owned(),
            entry,
            bytes,
        })
        .await
    }

    async fn recorded(&self, id: &str, keys: &[String]) -> Result<Vec<bool>, StoreError> {
        let id = id.to_owned();
        let keys = keys.to_vec();
        let db = Arc::clone(&self.shared.db);
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(backend)?;
            let objects = txn.open_table(BULK_OBJECTS).map_err(backend)?;
            keys.iter()
                .map(|key| {
                    Ok(objects
                        .get((id.as_str(), key.as_str()))
                        .map_err(backend)?
                        .is_some())
                })
                .collect()
        })
        .await
        .map_err(backend)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobSpec, Source};
    use redb::ReadableTableMetadata;

    fn job(id: &str) -> Job {
        Job {
            id: id.to_owned(),
            spec: JobSpec {
                source: Source::Url {
                    url: format!("https://example.com/{id}"),
                    headers: Default::default(),
                },
                callback_url: None,
                callback_headers: Default::default(),
                trace_id: Some(format!("trace-{id}")),
                custom_data: None,
                owner: None,
                submitted_by: None,
                tag_object: false,
                watched: false,
                bulk: None,
                rescans: 0,
                reverdict: false,
            },
            attempts: 0,
            receipt: String::new(),
        }
    }

    const NOW: Duration = Duration::ZERO;

    async fn claim_one(store: &EmbeddedStore) -> Option<Job> {
        store.claim(1, NOW).await.unwrap().pop()
    }

    #[tokio::test]
    async fn jobs_come_out_in_order_once_each_until_completed() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("q.redb"), 100).unwrap();
        for id in ["a", "b", "c"] {
            assert_eq!(store.push(&job(id)).await.unwrap(), Pushed::Queued);
        }
        let first = claim_one(&store).await.unwrap();
        let second = claim_one(&store).await.unwrap();
        assert_eq!((first.id.as_str(), second.id.as_str()), ("a", "b"));
        assert_eq!(first.attempts, 1);
        store.complete(&first).await.unwrap();
        store.release(&second).await.unwrap();
        // b is free again and older than c.
        let again = claim_one(&store).await.unwrap();
        assert_eq!((again.id.as_str(), again.attempts), ("b", 2));
        assert_eq!(claim_one(&store).await.unwrap().id, "c");
        assert!(claim_one(&store).await.is_none());
        assert_eq!(store.pending().await.unwrap(), 2);
    }

    #[tokio::test]
    async fn a_pending_trace_id_is_refused_until_its_job_completes() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("q.redb"), 100).unwrap();
        let mut twin = job("b");
        twin.spec.trace_id = Some("trace-a".into());
        store.push(&job("a")).await.unwrap();
        assert_eq!(store.push(&twin).await.unwrap(), Pushed::TraceIdPending);
        let claimed = claim_one(&store).await.unwrap();
        store
            .put(
                "trace-a",
                &crate::wire::ScanResult::not_scanned("stored in a test"),
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        assert_eq!(store.push(&twin).await.unwrap(), Pushed::TraceIdPending);
        store.complete(&claimed).await.unwrap();
        // Free again; the new job makes the old result disappear until its own exists.
        assert_eq!(store.push(&twin).await.unwrap(), Pushed::Queued);
        assert_eq!(store.get("trace-a").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("q.redb"), 2).unwrap();
        store.push(&job("a")).await.unwrap();
        store.push(&job("b")).await.unwrap();
        assert_eq!(store.push(&job("c")).await.unwrap(), Pushed::Full);
        let a = claim_one(&store).await.unwrap();
        store.complete(&a).await.unwrap();
        assert_eq!(store.push(&job("c")).await.unwrap(), Pushed::Queued);
    }

    #[tokio::test]
    async fn a_waiting_claim_wakes_on_push() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("q.redb"), 100).unwrap();
        let mut waiter = store.claim(4, Duration::from_secs(30));
        // One poll runs the claim up to its wait: it found nothing and is now parked.
        assert!(futures::poll!(&mut waiter).is_pending());
        store.push(&job("late")).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the claim should wake long before its 30 s wait")
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, "late");
    }

    #[tokio::test]
    async fn jobs_and_results_survive_a_restart_and_claims_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.redb");
        {
            let store = EmbeddedStore::open(&path, 100).unwrap();
            store.push(&job("a")).await.unwrap();
            store.push(&job("b")).await.unwrap();
            // Claimed, then the process "dies" without completing it.
            assert_eq!(claim_one(&store).await.unwrap().id, "a");
            store
                .put(
                    "t1",
                    &crate::wire::ScanResult::not_scanned("stored in a test"),
                    Duration::from_secs(60),
                )
                .await
                .unwrap();
        }
        let store = EmbeddedStore::open(&path, 100).unwrap();
        assert_eq!(store.pending().await.unwrap(), 2);
        let reclaimed = store.claim(10, NOW).await.unwrap();
        let ids: Vec<_> = reclaimed
            .iter()
            .map(|j| (j.id.as_str(), j.attempts))
            .collect();
        // a was claimed before the "crash": this is its second attempt, durably counted.
        assert_eq!(ids, [("a", 2), ("b", 1)]);
        // Still pending after the restart: the trace id stays reserved.
        assert_eq!(store.push(&job("a")).await.unwrap(), Pushed::TraceIdPending);
        assert_eq!(
            store.get("t1").await.unwrap(),
            Some(crate::wire::ScanResult::not_scanned("stored in a test"))
        );
    }

    #[tokio::test]
    async fn results_expire_and_are_swept_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let clock = crate::ManualClock::new();
        let store =
            EmbeddedStore::open_with_clock(&dir.path().join("q.redb"), 100, clock.clone().into())
                .unwrap();
        let short = crate::wire::ScanResult::not_scanned("short-lived");
        store
            .put("short", &short, Duration::from_secs(60))
            .await
            .unwrap();
        store
            .put(
                "long",
                &crate::wire::ScanResult::not_scanned("stored in a test"),
                Duration::from_secs(3600),
            )
            .await
            .unwrap();
        clock.advance(Duration::from_secs(59));
        assert_eq!(store.get("short").await.unwrap(), Some(short));
        clock.advance(Duration::from_secs(1));
        assert_eq!(store.get("short").await.unwrap(), None);
        assert!(store.get("long").await.unwrap().is_some());
        assert_eq!(store.get("never").await.unwrap(), None);
        // The writer's next sweep removes the expired record from the file itself.
        let on_file = |key: &'static str| {
            let db = Arc::clone(&store.shared.db);
            move || {
                let txn = db.begin_read().unwrap();
                let held = txn.open_table(RESULTS).unwrap().get(key).unwrap().is_some();
                let expiries = txn.open_table(EXPIRY).unwrap().len().unwrap();
                (held, expiries)
            }
        };
        let deadline = std::time::Instant::now() + SWEEP_EVERY * 20;
        while on_file("short")() != (false, 1) {
            assert!(std::time::Instant::now() < deadline, "never swept");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(on_file("long")(), (true, 1));
    }
}
