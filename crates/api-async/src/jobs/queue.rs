//! The queue of jobs and the store of results, as traits so the embedded store and Redis can
//! stand behind the same server.

use std::time::Duration;

use async_trait::async_trait;

use crate::job::Job;
use crate::wire::ScanResult;

/// The queue or result store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The storage underneath failed (disk, database, connection).
    #[error("job store: {0}")]
    Backend(String),
    /// A stored record could not be read back.
    #[error("job store: corrupt record {key}: {message}")]
    Corrupt {
        /// Which record.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// What became of a pushed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Stored durably and queued.
    Queued,
    /// Refused: a job with the same trace id is still pending.
    TraceIdPending,
    /// Refused: the queue holds its maximum number of jobs.
    Full,
    /// Refused: the submitting key has as many jobs queued as its quota allows.
    OverQuota,
}

/// Jobs waiting to be scanned. Delivery is at least once: a job leaves the queue only through
/// [`JobQueue::complete`]; a claim whose holder dies is taken over.
///
/// A job's trace id is reserved from [`push`](JobQueue::push) until
/// [`complete`](JobQueue::complete): a second job with the same trace id is refused meanwhile,
/// and pushing it forgets any earlier result under that id, so pollers see 404 until the new
/// job's result exists.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Adds a job at the end of the queue, durably, unless refused. Its submitting key's
    /// queued jobs are counted, but not limited (see [`push_within`](JobQueue::push_within)).
    async fn push(&self, job: &Job) -> Result<Pushed, StoreError> {
        self.push_limited(job, None).await
    }

    /// As [`push`](JobQueue::push), refused with [`Pushed::OverQuota`] when the job's
    /// submitting key already has `quota` jobs queued.
    async fn push_within(&self, job: &Job, quota: usize) -> Result<Pushed, StoreError> {
        self.push_limited(job, Some(quota)).await
    }

    /// The push both of the above make.
    async fn push_limited(&self, job: &Job, quota: Option<usize>) -> Result<Pushed, StoreError>;

    /// Claims up to `max` jobs nobody holds, oldest first, waiting at most `wait` for one.
    async fn claim(&self, max: usize, wait: Duration) -> Result<Vec<Job>, StoreError>;

    /// Tells the queue these claimed jobs are still being worked on, so nobody takes them over.
    async fn renew(&self, jobs: &[Job]) -> Result<(), StoreError>;

    /// Removes a finished job and frees its trace id.
    async fn complete(&self, job: &Job) -> Result<(), StoreError>;

    /// Gives a claimed job back at once (on shutdown), for any worker to claim.
    async fn release(&self, job: &Job) -> Result<(), StoreError>;

    /// Gives a claimed job back to be claimed again after `after`, without counting this claim
    /// as an attempt: for a job that found no room to do its work (a bulk listing facing a
    /// full queue), so that waiting never holds a worker.
    async fn defer(&self, job: &Job, after: Duration) -> Result<(), StoreError>;

    /// How many jobs are waiting or claimed.
    async fn pending(&self) -> Result<usize, StoreError>;
}

/// Results kept for polling by trace id.
#[async_trait]
pub trait ResultStore: Send + Sync {
    /// Stores `result` under `trace_id` for `ttl`.
    async fn put(
        &self,
        trace_id: &str,
        result: &ScanResult,
        ttl: Duration,
    ) -> Result<(), StoreError>;

    /// The result, unless absent or expired.
    async fn get(&self, trace_id: &str) -> Result<Option<ScanResult>, StoreError>;
}
