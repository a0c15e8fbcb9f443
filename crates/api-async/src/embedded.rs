//! `EmbeddedStore`: the queue and result store in one redb file, so a single `verdict-async`
//! needs no external service and loses nothing to a crash or restart: every push, claim and
//! completion is a committed (fsynced) transaction.
//!
//! One process owns the file (redb locks it). Claims therefore belong to this process only, and
//! opening the file clears them: jobs that were in flight when the previous process died are
//! claimable again at once.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::job::Job;
use crate::store::{JobQueue, ResultStore, StoreError};

/// Queue order: sequence number -> job id.
const ORDER: TableDefinition<u64, &str> = TableDefinition::new("order");
/// Job id -> (sequence number, job JSON).
const JOBS: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("jobs");
/// Job id -> claim expiry, milliseconds since the epoch.
const CLAIMS: TableDefinition<&str, u64> = TableDefinition::new("claims");
/// Trace id -> (expiry in milliseconds since the epoch, result JSON).
const RESULTS: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("results");

/// The embedded queue and result store.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish_non_exhaustive()
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl EmbeddedStore {
    /// Opens (or creates) the store at `path`, and frees the claims of the previous owner.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(backend)?;
        let txn = db.begin_write().map_err(backend)?;
        {
            // Create every table, so readers never meet a missing one, and drop stale claims.
            txn.open_table(ORDER).map_err(backend)?;
            txn.open_table(JOBS).map_err(backend)?;
            txn.open_table(RESULTS).map_err(backend)?;
            let mut claims = txn.open_table(CLAIMS).map_err(backend)?;
            let stale = claims.len().map_err(backend)?;
            claims.retain(|_, _| false).map_err(backend)?;
            if stale > 0 {
                tracing::info!(
                    jobs = stale,
                    "jobs in flight when the store was last closed are queued again"
                );
            }
        }
        txn.commit().map_err(backend)?;
        Ok(EmbeddedStore { db: Arc::new(db) })
    }

    /// Runs blocking database work off the async reactor.
    async fn blocking<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(backend)?
    }

    /// Runs `work` in one write transaction on a blocking thread; it is committed only if `work`
    /// succeeds (an error drops, and so aborts, the transaction).
    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&redb::WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(backend)?;
            let out = work(&txn)?;
            txn.commit().map_err(backend)?;
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl JobQueue for EmbeddedStore {
    async fn push(&self, job: &Job) -> Result<(), StoreError> {
        let id = job.id.clone();
        let json = serde_json::to_vec(job).map_err(backend)?;
        self.write(move |txn| {
            {
                let mut order = txn.open_table(ORDER).map_err(backend)?;
                let seq = order
                    .last()
                    .map_err(backend)?
                    .map_or(0, |(k, _)| k.value() + 1);
                order.insert(seq, id.as_str()).map_err(backend)?;
                txn.open_table(JOBS)
                    .map_err(backend)?
                    .insert(id.as_str(), (seq, json.as_slice()))
                    .map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn claim(&self, lease: Duration) -> Result<Option<Job>, StoreError> {
        self.write(move |txn| {
            let now = now_ms();
            let claimed = {
                let order = txn.open_table(ORDER).map_err(backend)?;
                let mut jobs = txn.open_table(JOBS).map_err(backend)?;
                let mut claims = txn.open_table(CLAIMS).map_err(backend)?;
                let mut found = None;
                for entry in order.iter().map_err(backend)? {
                    let (_, id) = entry.map_err(backend)?;
                    let id = id.value().to_owned();
                    let free = claims
                        .get(id.as_str())
                        .map_err(backend)?
                        .is_none_or(|until| until.value() <= now);
                    if free {
                        found = Some(id);
                        break;
                    }
                }
                match found {
                    None => None,
                    Some(id) => {
                        let (seq, bytes) = {
                            let record =
                                jobs.get(id.as_str()).map_err(backend)?.ok_or_else(|| {
                                    StoreError::Corrupt {
                                        key: id.clone(),
                                        message: "queued but not stored".to_owned(),
                                    }
                                })?;
                            let (seq, bytes) = record.value();
                            (seq, bytes.to_vec())
                        };
                        let mut job: Job =
                            serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                                key: id.clone(),
                                message: e.to_string(),
                            })?;
                        job.attempts += 1;
                        let json = serde_json::to_vec(&job).map_err(backend)?;
                        jobs.insert(id.as_str(), (seq, json.as_slice()))
                            .map_err(backend)?;
                        claims
                            .insert(id.as_str(), now + lease.as_millis() as u64)
                            .map_err(backend)?;
                        Some(job)
                    }
                }
            };
            Ok(claimed)
        })
        .await
    }

    async fn complete(&self, job_id: &str) -> Result<(), StoreError> {
        let id = job_id.to_owned();
        self.write(move |txn| {
            {
                let mut jobs = txn.open_table(JOBS).map_err(backend)?;
                let seq = jobs
                    .remove(id.as_str())
                    .map_err(backend)?
                    .map(|record| record.value().0);
                if let Some(seq) = seq {
                    txn.open_table(ORDER)
                        .map_err(backend)?
                        .remove(seq)
                        .map_err(backend)?;
                }
                txn.open_table(CLAIMS)
                    .map_err(backend)?
                    .remove(id.as_str())
                    .map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn release(&self, job_id: &str) -> Result<(), StoreError> {
        let id = job_id.to_owned();
        self.write(move |txn| {
            txn.open_table(CLAIMS)
                .map_err(backend)?
                .remove(id.as_str())
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn pending(&self) -> Result<usize, StoreError> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(backend)?;
            Ok(txn
                .open_table(JOBS)
                .map_err(backend)?
                .len()
                .map_err(backend)? as usize)
        })
        .await
    }
}

#[async_trait]
impl ResultStore for EmbeddedStore {
    async fn put(
        &self,
        trace_id: &str,
        result: &serde_json::Value,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let key = trace_id.to_owned();
        let json = serde_json::to_vec(result).map_err(backend)?;
        let expires = now_ms() + ttl.as_millis() as u64;
        self.write(move |txn| {
            {
                let mut results = txn.open_table(RESULTS).map_err(backend)?;
                results
                    .insert(key.as_str(), (expires, json.as_slice()))
                    .map_err(backend)?;
                // Expired results are swept as new ones arrive, so the file does not grow forever.
                let now = now_ms();
                results
                    .retain(|_, (until, _)| until > now)
                    .map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn get(&self, trace_id: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let key = trace_id.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let results = txn.open_table(RESULTS).map_err(backend)?;
            let Some(record) = results.get(key.as_str()).map_err(backend)? else {
                return Ok(None);
            };
            let (until, bytes) = record.value();
            if until <= now_ms() {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobSpec, Source};

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
            },
            attempts: 0,
        }
    }

    #[tokio::test]
    async fn jobs_come_out_in_order_once_each_until_completed() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("q.redb")).unwrap();
        for id in ["a", "b", "c"] {
            store.push(&job(id)).await.unwrap();
        }
        let lease = Duration::from_secs(60);
        let first = store.claim(lease).await.unwrap().unwrap();
        let second = store.claim(lease).await.unwrap().unwrap();
        assert_eq!((first.id.as_str(), second.id.as_str()), ("a", "b"));
        assert_eq!(first.attempts, 1);
        store.complete("a").await.unwrap();
        store.release("b").await.unwrap();
        // b is free again and older than c.
        assert_eq!(store.claim(lease).await.unwrap().unwrap().id, "b");
        assert_eq!(store.claim(lease).await.unwrap().unwrap().id, "c");
        assert!(store.claim(lease).await.unwrap().is_none());
        assert_eq!(store.pending().await.unwrap(), 2);
    }

    #[tokio::test]
    async fn an_expired_lease_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("q.redb")).unwrap();
        store.push(&job("a")).await.unwrap();
        assert!(
            store
                .claim(Duration::from_millis(1))
                .await
                .unwrap()
                .is_some()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        let again = store.claim(Duration::from_secs(60)).await.unwrap().unwrap();
        assert_eq!((again.id.as_str(), again.attempts), ("a", 2));
    }

    #[tokio::test]
    async fn jobs_and_results_survive_a_restart_and_claims_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.redb");
        {
            let store = EmbeddedStore::open(&path).unwrap();
            store.push(&job("a")).await.unwrap();
            store.push(&job("b")).await.unwrap();
            // Claimed, then the process "dies" without completing it.
            assert_eq!(
                store
                    .claim(Duration::from_secs(3600))
                    .await
                    .unwrap()
                    .unwrap()
                    .id,
                "a"
            );
            store
                .put(
                    "t1",
                    &serde_json::json!({"status": "clean"}),
                    Duration::from_secs(60),
                )
                .await
                .unwrap();
        }
        let store = EmbeddedStore::open(&path).unwrap();
        assert_eq!(store.pending().await.unwrap(), 2);
        let reclaimed = store.claim(Duration::from_secs(60)).await.unwrap().unwrap();
        assert_eq!((reclaimed.id.as_str(), reclaimed.attempts), ("a", 2));
        assert_eq!(
            store.get("t1").await.unwrap(),
            Some(serde_json::json!({"status": "clean"}))
        );
    }

    #[tokio::test]
    async fn results_expire() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("q.redb")).unwrap();
        store
            .put(
                "short",
                &serde_json::json!({"status": "no"}),
                Duration::from_millis(1),
            )
            .await
            .unwrap();
        store
            .put(
                "long",
                &serde_json::json!({"status": "clean"}),
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(store.get("short").await.unwrap(), None);
        assert!(store.get("long").await.unwrap().is_some());
        assert_eq!(store.get("never").await.unwrap(), None);
    }
}
