//! `RedisStore`: the queue and result store on one Redis, shared by any number of
//! `verdict-async` instances. Jobs are entries of a stream read through a consumer group: each
//! entry goes to one consumer, stays pending until acknowledged, and an entry whose consumer
//! went quiet for longer than the lease is taken over by another (XAUTOCLAIM). Results are
//! plain keys with an expiry.

use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamReadOptions, StreamReadReply,
};

use crate::job::Job;
use crate::store::{JobQueue, ResultStore, StoreError};

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// The Redis queue and result store.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    stream: String,
    entries: String,
    attempts: String,
    results: String,
    group: String,
    consumer: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("stream", &self.stream)
            .field("consumer", &self.consumer)
            .finish()
    }
}

impl RedisStore {
    /// Connects to `url`, with keys under `namespace`, as consumer `consumer` (unique per
    /// process, e.g. host name and pid); creates the stream and group if missing.
    pub async fn open(url: &str, namespace: &str, consumer: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(backend)?;
        let mut conn = ConnectionManager::new(client).await.map_err(backend)?;
        let stream = format!("{namespace}:jobs");
        let group = "workers".to_owned();
        let created: Result<(), redis::RedisError> =
            conn.xgroup_create_mkstream(&stream, &group, "0").await;
        if let Err(e) = created
            && e.code() != Some("BUSYGROUP")
        {
            return Err(backend(e));
        }
        Ok(RedisStore {
            conn,
            entries: format!("{namespace}:entries"),
            attempts: format!("{namespace}:attempts"),
            results: format!("{namespace}:result:"),
            stream,
            group,
            consumer: consumer.to_owned(),
        })
    }

    /// Turns a stream entry into its job, counting this delivery.
    async fn job_of(&self, entry: &redis::streams::StreamId) -> Result<Job, StoreError> {
        let json: String = entry.get("job").ok_or_else(|| StoreError::Corrupt {
            key: entry.id.clone(),
            message: "entry without a job".to_owned(),
        })?;
        let mut job: Job = serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
            key: entry.id.clone(),
            message: e.to_string(),
        })?;
        let mut conn = self.conn.clone();
        let attempts: u32 = conn
            .hincr(&self.attempts, &job.id, 1)
            .await
            .map_err(backend)?;
        job.attempts = attempts;
        Ok(job)
    }
}

#[async_trait]
impl JobQueue for RedisStore {
    async fn push(&self, job: &Job) -> Result<(), StoreError> {
        let json = serde_json::to_string(job).map_err(backend)?;
        let mut conn = self.conn.clone();
        let entry: String = conn
            .xadd(
                &self.stream,
                "*",
                &[("id", job.id.as_str()), ("job", json.as_str())],
            )
            .await
            .map_err(backend)?;
        let _: () = conn
            .hset(&self.entries, &job.id, entry)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn claim(&self, lease: Duration) -> Result<Option<Job>, StoreError> {
        let mut conn = self.conn.clone();
        // First, entries whose consumer has been silent for longer than the lease.
        let reclaimed: StreamAutoClaimReply = conn
            .xautoclaim_options(
                &self.stream,
                &self.group,
                &self.consumer,
                lease.as_millis() as u64,
                "0-0",
                StreamAutoClaimOptions::default().count(1),
            )
            .await
            .map_err(backend)?;
        if let Some(entry) = reclaimed.claimed.first() {
            return self.job_of(entry).await.map(Some);
        }
        // Then, new entries.
        let options = StreamReadOptions::default()
            .group(&self.group, &self.consumer)
            .count(1);
        let read: StreamReadReply = conn
            .xread_options(&[&self.stream], &[">"], &options)
            .await
            .map_err(backend)?;
        match read.keys.first().and_then(|key| key.ids.first()) {
            Some(entry) => self.job_of(entry).await.map(Some),
            None => Ok(None),
        }
    }

    async fn complete(&self, job_id: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let entry: Option<String> = conn.hget(&self.entries, job_id).await.map_err(backend)?;
        if let Some(entry) = entry {
            let _: i64 = conn
                .xack(&self.stream, &self.group, &[&entry])
                .await
                .map_err(backend)?;
            let _: i64 = conn.xdel(&self.stream, &[&entry]).await.map_err(backend)?;
        }
        let _: i64 = conn.hdel(&self.entries, job_id).await.map_err(backend)?;
        let _: i64 = conn.hdel(&self.attempts, job_id).await.map_err(backend)?;
        Ok(())
    }

    async fn release(&self, job_id: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let entry: Option<String> = conn.hget(&self.entries, job_id).await.map_err(backend)?;
        if let Some(entry) = entry {
            // Mark it as idle for ages, so the next claim anywhere takes it over at once.
            let _: redis::Value = redis::cmd("XCLAIM")
                .arg(&self.stream)
                .arg(&self.group)
                .arg(&self.consumer)
                .arg(0)
                .arg(&entry)
                .arg("IDLE")
                .arg(u64::from(u32::MAX))
                .arg("JUSTID")
                .query_async(&mut conn)
                .await
                .map_err(backend)?;
        }
        Ok(())
    }

    async fn pending(&self) -> Result<usize, StoreError> {
        let mut conn = self.conn.clone();
        conn.xlen(&self.stream).await.map_err(backend)
    }
}

#[async_trait]
impl ResultStore for RedisStore {
    async fn put(
        &self,
        trace_id: &str,
        result: &serde_json::Value,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(result).map_err(backend)?;
        let mut conn = self.conn.clone();
        let _: () = conn
            .pset_ex(
                format!("{}{trace_id}", self.results),
                json,
                ttl.as_millis() as u64,
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn get(&self, trace_id: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let mut conn = self.conn.clone();
        let json: Option<String> = conn
            .get(format!("{}{trace_id}", self.results))
            .await
            .map_err(backend)?;
        json.map(|j| {
            serde_json::from_str(&j).map_err(|e| StoreError::Corrupt {
                key: trace_id.to_owned(),
                message: e.to_string(),
            })
        })
        .transpose()
    }
}
