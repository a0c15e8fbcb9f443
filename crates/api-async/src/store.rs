//! The queue of jobs and the store of results, as traits so the embedded store and Redis can
//! stand behind the same server.

use std::time::Duration;

use async_trait::async_trait;

use crate::job::Job;

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

/// Jobs waiting to be scanned. Delivery is at least once: a job is removed only by
/// [`JobQueue::complete`], and a claim that is not completed within its lease is taken over.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Adds a job at the end of the queue, durably.
    async fn push(&self, job: &Job) -> Result<(), StoreError>;

    /// Claims the oldest job that nobody holds (or whose holder's lease ran out) for `lease`.
    async fn claim(&self, lease: Duration) -> Result<Option<Job>, StoreError>;

    /// Removes a finished job.
    async fn complete(&self, job_id: &str) -> Result<(), StoreError>;

    /// Gives a claimed job back at once (on shutdown, say).
    async fn release(&self, job_id: &str) -> Result<(), StoreError>;

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
        result: &serde_json::Value,
        ttl: Duration,
    ) -> Result<(), StoreError>;

    /// The result, unless absent or expired.
    async fn get(&self, trace_id: &str) -> Result<Option<serde_json::Value>, StoreError>;
}
