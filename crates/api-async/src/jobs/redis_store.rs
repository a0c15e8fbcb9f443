//! `RedisStore`: the queue and result store on one Redis, shared by any number of
//! `verdict-async` instances. Jobs are entries of a stream read through a consumer group: each
//! entry goes to one consumer and stays pending until acknowledged; an entry whose consumer went
//! quiet for longer than the lease is taken over by another (XAUTOCLAIM). Workers renew their
//! claims while they work, so a slow scan is not mistaken for a dead worker. Results are plain
//! keys with an expiry.
//!
//! Each step that touches several keys is one Lua script, so it is atomic. Every key carries the
//! namespace in braces (`{ns}:jobs`, `{ns}:trace:ID`...), a Redis Cluster hash tag, so the
//! scripts' keys share one slot.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply,
};

use crate::job::Job;
use crate::store::{JobQueue, Pushed, ResultStore, StoreError};

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// How long a trace id stays reserved at most; only matters if a job were lost outright.
const TRACE_RESERVATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// KEYS: stream, trace reservation, result, jobs per key. ARGV: job id, job JSON, max jobs,
/// reservation ms, whether there is a trace id, submitting key ('' for none), its quota (-1 for
/// none). Returns 1 queued, 0 trace id pending, -1 full, -2 over the key's quota.
const PUSH: &str = r"
if tonumber(ARGV[3]) > 0 and redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  return -1
end
if ARGV[6] ~= '' and tonumber(ARGV[7]) >= 0
   and tonumber(redis.call('HGET', KEYS[4], ARGV[6]) or '0') >= tonumber(ARGV[7]) then
  return -2
end
if ARGV[5] == '1' then
  if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[4]) then
    return 0
  end
  redis.call('DEL', KEYS[3])
end
redis.call('XADD', KEYS[1], '*', 'job', ARGV[2])
if ARGV[6] ~= '' then
  redis.call('HINCRBY', KEYS[4], ARGV[6], 1)
end
return 1
";

/// KEYS: stream, trace reservation, attempts hash, jobs per key. ARGV: entry id, job id, group,
/// submitting key ('' for none). The key's count goes down once, however often one job is
/// completed (a job taken over may be completed twice).
const COMPLETE: &str = r"
local acked = redis.call('XACK', KEYS[1], ARGV[3], ARGV[1])
redis.call('XDEL', KEYS[1], ARGV[1])
if ARGV[4] ~= '' and acked == 1 then
  if redis.call('HINCRBY', KEYS[4], ARGV[4], -1) <= 0 then
    redis.call('HDEL', KEYS[4], ARGV[4])
  end
end
redis.call('HDEL', KEYS[3], ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('DEL', KEYS[2])
end
return 1
";

/// The Redis queue and result store.
pub struct RedisStore {
    conn: ConnectionManager,
    /// Only for blocking reads, which would hold up everything else on a shared connection.
    blocking: tokio::sync::Mutex<ConnectionManager>,
    namespace: String,
    stream: String,
    attempts: String,
    /// Jobs queued per submitting key.
    queued_by: String,
    group: String,
    consumer: String,
    lease: Duration,
    max_jobs: usize,
    last_takeover: Mutex<Option<Instant>>,
    push: redis::Script,
    complete: redis::Script,
    bulk_advance: redis::Script,
    bulk_record: redis::Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("stream", &self.stream)
            .field("consumer", &self.consumer)
            .finish()
    }
}

/// Creates the stream and the consumer group unless they exist. From "0", so jobs pushed while
/// the group was missing (Redis restarted without persistence, say) are still delivered.
async fn ensure_group(
    conn: &mut ConnectionManager,
    stream: &str,
    group: &str,
) -> Result<(), StoreError> {
    let created: Result<(), redis::RedisError> =
        conn.xgroup_create_mkstream(stream, group, "0").await;
    match created {
        Err(e) if e.code() != Some("BUSYGROUP") => Err(backend(e)),
        _ => Ok(()),
    }
}

impl RedisStore {
    /// Connects to `url`, with keys under `namespace`, as consumer `consumer` (unique per
    /// process, e.g. host name and pid). Claims not renewed for `lease` are taken over; at most
    /// `max_jobs` jobs are queued. Creates the stream and group if missing.
    pub async fn open(
        url: &str,
        namespace: &str,
        consumer: &str,
        lease: Duration,
        max_jobs: usize,
    ) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(backend)?;
        // While Redis is away, requests should fail within a couple of seconds (a 503 the caller
        // can retry), not hang through a long reconnect schedule.
        let quick = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let mut conn = ConnectionManager::new_with_config(
            client.clone(),
            quick
                .clone()
                .set_response_timeout(Some(Duration::from_secs(5))),
        )
        .await
        .map_err(|e| StoreError::Backend(format!("cannot reach Redis at {url}: {e}")))?;
        let blocking = ConnectionManager::new_with_config(client, quick.set_response_timeout(None))
            .await
            .map_err(backend)?;
        let stream = format!("{{{namespace}}}:jobs");
        let group = "workers".to_owned();
        ensure_group(&mut conn, &stream, &group).await?;
        Ok(RedisStore {
            conn,
            blocking: tokio::sync::Mutex::new(blocking),
            attempts: format!("{{{namespace}}}:attempts"),
            queued_by: format!("{{{namespace}}}:queued-by"),
            namespace: namespace.to_owned(),
            stream,
            group,
            consumer: consumer.to_owned(),
            lease,
            max_jobs,
            last_takeover: Mutex::new(None),
            push: redis::Script::new(PUSH),
            complete: redis::Script::new(COMPLETE),
            bulk_advance: redis::Script::new(BULK_ADVANCE),
            bulk_record: redis::Script::new(BULK_RECORD),
        })
    }

    fn trace_key(&self, trace_id: &str) -> String {
        format!("{{{}}}:trace:{trace_id}", self.namespace)
    }

    fn result_key(&self, trace_id: &str) -> String {
        format!("{{{}}}:result:{trace_id}", self.namespace)
    }

    /// Whether it is time to look for jobs of dead consumers (a few times per lease).
    fn takeover_due(&self) -> bool {
        let Ok(mut last) = self.last_takeover.lock() else {
            return true;
        };
        let due = last.is_none_or(|at| at.elapsed() >= self.lease / 4);
        if due {
            *last = Some(Instant::now());
        }
        due
    }

    /// Redis lost the group (restarted empty, flushed): makes it again, so the next claim reads
    /// from it, and returns no jobs for this one.
    async fn group_lost(&self) -> Result<Vec<Job>, StoreError> {
        tracing::warn!(
            stream = self.stream,
            "the consumer group was gone; created again"
        );
        let mut conn = self.conn.clone();
        ensure_group(&mut conn, &self.stream, &self.group).await?;
        Ok(Vec::new())
    }

    /// Turns stream entries into jobs, counting this delivery of each.
    async fn jobs_of(&self, entries: &[StreamId]) -> Result<Vec<Job>, StoreError> {
        let mut jobs = Vec::with_capacity(entries.len());
        let mut count = redis::pipe();
        for entry in entries {
            let parsed = entry
                .get::<String>("job")
                .ok_or_else(|| "no job field".to_owned())
                .and_then(|json| serde_json::from_str::<Job>(&json).map_err(|e| e.to_string()));
            let mut job = match parsed {
                Ok(job) => job,
                Err(why) => {
                    // Nothing can run it; acknowledged and removed so it does not come back
                    // (and block a worker) on every takeover, but said loudly.
                    tracing::error!(
                        entry = entry.id,
                        error = why,
                        "an unreadable queued entry was dropped"
                    );
                    let mut conn = self.conn.clone();
                    let _: Result<i64, _> =
                        conn.xack(&self.stream, &self.group, &[&entry.id]).await;
                    let _: Result<i64, _> = conn.xdel(&self.stream, &[&entry.id]).await;
                    continue;
                }
            };
            job.receipt = entry.id.clone();
            count.hincr(&self.attempts, &job.id, 1);
            jobs.push(job);
        }
        if jobs.is_empty() {
            return Ok(jobs);
        }
        let mut conn = self.conn.clone();
        let attempts: Vec<u32> = count.query_async(&mut conn).await.map_err(backend)?;
        for (job, attempts) in jobs.iter_mut().zip(attempts) {
            job.attempts = attempts;
        }
        Ok(jobs)
    }
}

#[async_trait]
impl JobQueue for RedisStore {
    async fn push_limited(&self, job: &Job, quota: Option<usize>) -> Result<Pushed, StoreError> {
        let json = serde_json::to_string(job).map_err(backend)?;
        let result_key = job.spec.result_key();
        let trace = result_key.as_deref().unwrap_or("");
        let mut conn = self.conn.clone();
        let outcome: i64 = self
            .push
            .key(&self.stream)
            .key(self.trace_key(trace))
            .key(self.result_key(trace))
            .key(&self.queued_by)
            .arg(&job.id)
            .arg(json)
            .arg(self.max_jobs)
            .arg(TRACE_RESERVATION.as_millis() as u64)
            .arg(if result_key.is_some() { "1" } else { "0" })
            .arg(job.spec.submitted_by.as_deref().unwrap_or(""))
            .arg(quota.map_or(-1, |q| i64::try_from(q).unwrap_or(i64::MAX)))
            .invoke_async(&mut conn)
            .await
            .map_err(backend)?;
        Ok(match outcome {
            1 => Pushed::Queued,
            0 => Pushed::TraceIdPending,
            -2 => Pushed::OverQuota,
            _ => Pushed::Full,
        })
    }

    async fn claim(&self, max: usize, wait: Duration) -> Result<Vec<Job>, StoreError> {
        let max = max.max(1);
        if self.takeover_due() {
            let mut conn = self.conn.clone();
            let reclaimed: StreamAutoClaimReply = match conn
                .xautoclaim_options(
                    &self.stream,
                    &self.group,
                    &self.consumer,
                    self.lease.as_millis() as u64,
                    "0-0",
                    StreamAutoClaimOptions::default().count(max),
                )
                .await
            {
                Ok(reply) => reply,
                Err(e) if e.code() == Some("NOGROUP") => return self.group_lost().await,
                Err(e) => return Err(backend(e)),
            };
            if !reclaimed.claimed.is_empty() {
                tracing::info!(
                    jobs = reclaimed.claimed.len(),
                    "taking over jobs whose worker stopped renewing them"
                );
                return self.jobs_of(&reclaimed.claimed).await;
            }
        }
        let mut options = StreamReadOptions::default()
            .group(&self.group, &self.consumer)
            .count(max);
        if !wait.is_zero() {
            options = options.block(wait.as_millis().max(1) as usize);
        }
        let read: Option<StreamReadReply> = {
            let mut conn = self.blocking.lock().await;
            match conn.xread_options(&[&self.stream], &[">"], &options).await {
                Ok(read) => read,
                Err(e) if e.code() == Some("NOGROUP") => return self.group_lost().await,
                Err(e) => return Err(backend(e)),
            }
        };
        match read.as_ref().and_then(|r| r.keys.first()) {
            Some(key) => self.jobs_of(&key.ids).await,
            None => Ok(Vec::new()),
        }
    }

    async fn renew(&self, jobs: &[Job]) -> Result<(), StoreError> {
        if jobs.is_empty() {
            return Ok(());
        }
        // XCLAIM by the holder resets the entry's idle time.
        let mut cmd = redis::cmd("XCLAIM");
        cmd.arg(&self.stream)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(0);
        for job in jobs {
            cmd.arg(&job.receipt);
        }
        cmd.arg("JUSTID");
        let mut conn = self.conn.clone();
        let _: redis::Value = cmd.query_async(&mut conn).await.map_err(backend)?;
        Ok(())
    }

    async fn complete(&self, job: &Job) -> Result<(), StoreError> {
        let result_key = job.spec.result_key();
        let trace = result_key.as_deref().unwrap_or("");
        let mut conn = self.conn.clone();
        let _: i64 = self
            .complete
            .key(&self.stream)
            .key(self.trace_key(trace))
            .key(&self.attempts)
            .key(&self.queued_by)
            .arg(&job.receipt)
            .arg(&job.id)
            .arg(&self.group)
            .arg(job.spec.submitted_by.as_deref().unwrap_or(""))
            .invoke_async(&mut conn)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn release(&self, job: &Job) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        // Marked idle for ages, so the next takeover anywhere picks it up at once.
        let _: redis::Value = redis::cmd("XCLAIM")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(0)
            .arg(&job.receipt)
            .arg("IDLE")
            .arg(u64::from(u32::MAX))
            .arg("JUSTID")
            .query_async(&mut conn)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn defer(&self, job: &Job, after: Duration) -> Result<(), StoreError> {
        // Marked idle for all but `after` of a lease, so a takeover picks it up once `after`
        // has passed; the claim it came back from is not counted as an attempt.
        let idle = self.lease.saturating_sub(after).as_millis() as u64;
        let mut conn = self.conn.clone();
        let _: (redis::Value, i64) = redis::pipe()
            .cmd("XCLAIM")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(0)
            .arg(&job.receipt)
            .arg("IDLE")
            .arg(idle)
            .arg("JUSTID")
            .hincr(&self.attempts, &job.id, -1)
            .query_async(&mut conn)
            .await
            .map_err(backend)?;
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
        result: &crate::wire::ScanResult,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(result).map_err(backend)?;
        let mut conn = self.conn.clone();
        let _: () = conn
            .pset_ex(self.result_key(trace_id), json, ttl.as_millis() as u64)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn get(&self, trace_id: &str) -> Result<Option<crate::wire::ScanResult>, StoreError> {
        let mut conn = self.conn.clone();
        let json: Option<String> = conn.get(self.result_key(trace_id)).await.map_err(backend)?;
        json.map(|j| {
            serde_json::from_str(&j).map_err(|e| StoreError::Corrupt {
                key: trace_id.to_owned(),
                message: e.to_string(),
            })
        })
        .transpose()
    }
}

/// How long a bulk scan's record stays after its last change.
const BULK_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// KEYS: bulk hash. ARGV: page, after (empty: none), listed, queued, last ('1'), ttl ms, the
/// checkpoint's key the page started from (empty: none), whether the page was whole ('1').
/// Moves the checkpoint on if it stands at ARGV[1] and ARGV[7]; 1 if it did. A page cut
/// short moves the key, not the page number.
const BULK_ADVANCE: &str = r"
local at = redis.call('HMGET', KEYS[1], 'pages', 'after')
if tonumber(at[1] or '-1') ~= tonumber(ARGV[1]) or (at[2] or '') ~= ARGV[7] then
  return 0
end
local pages = tonumber(ARGV[1])
local done = '0'
if ARGV[8] == '1' then
  pages = pages + 1
  done = ARGV[5]
end
redis.call('HSET', KEYS[1], 'pages', pages, 'after', ARGV[2], 'listing_done', done)
redis.call('HINCRBY', KEYS[1], 'listed', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'queued', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1
";

/// KEYS: bulk hash, objects hash. ARGV: key, outcome field, bytes, ttl ms. Records the
/// outcome unless the key has one; 1 if it was new.
const BULK_RECORD: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then
  return 0
end
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
redis.call('HINCRBY', KEYS[1], 'bytes', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
";

impl RedisStore {
    fn bulk_key(&self, id: &str) -> String {
        format!("{{{}}}:bulk:{id}", self.namespace)
    }

    fn bulk_objects_key(&self, id: &str) -> String {
        format!("{{{}}}:bulk:{id}:objects", self.namespace)
    }
}

#[async_trait]
impl crate::bulk::BulkStore for RedisStore {
    async fn create(&self, bulk: &crate::bulk::BulkScan) -> Result<(), StoreError> {
        let json = serde_json::to_string(bulk).map_err(backend)?;
        let key = self.bulk_key(&bulk.id);
        let mut conn = self.conn.clone();
        let _: () = redis::pipe()
            .atomic()
            .hset_multiple(&key, &[("spec", json.as_str()), ("pages", "0")])
            .pexpire(&key, BULK_TTL.as_millis() as i64)
            .query_async(&mut conn)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn bulk(
        &self,
        id: &str,
    ) -> Result<Option<(crate::bulk::BulkScan, crate::bulk::Progress)>, StoreError> {
        let mut conn = self.conn.clone();
        let fields: std::collections::HashMap<String, String> =
            conn.hgetall(self.bulk_key(id)).await.map_err(backend)?;
        let Some(spec) = fields.get("spec") else {
            return Ok(None);
        };
        let bulk = serde_json::from_str(spec).map_err(|e| StoreError::Corrupt {
            key: id.to_owned(),
            message: e.to_string(),
        })?;
        let number = |name: &str| {
            fields
                .get(name)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let progress = crate::bulk::Progress {
            pages: number("pages"),
            after: fields.get("after").filter(|a| !a.is_empty()).cloned(),
            listing_done: fields.get("listing_done").is_some_and(|v| v == "1"),
            listed: number("listed"),
            queued: number("queued"),
            clean: number("clean"),
            infected: number("infected"),
            not_examined: number("not_examined"),
            skipped: number("skipped"),
            // `failed` is where scans begun before its rename counted.
            unread: number("unread") + number("failed"),
            bytes: number("bytes"),
        };
        Ok(Some((bulk, progress)))
    }

    async fn advance(&self, id: &str, advance: &crate::bulk::Advance) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let moved: i64 = self
            .bulk_advance
            .key(self.bulk_key(id))
            .arg(advance.page)
            .arg(advance.after.as_deref().unwrap_or(""))
            .arg(advance.listed)
            .arg(advance.queued)
            .arg(if advance.last { "1" } else { "0" })
            .arg(BULK_TTL.as_millis() as u64)
            .arg(advance.from.as_deref().unwrap_or(""))
            .arg(if advance.whole { "1" } else { "0" })
            .invoke_async(&mut conn)
            .await
            .map_err(backend)?;
        Ok(moved == 1)
    }

    async fn record(
        &self,
        id: &str,
        key: &str,
        entry: crate::bulk::Entry,
        bytes: u64,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let recorded: i64 = self
            .bulk_record
            .key(self.bulk_key(id))
            .key(self.bulk_objects_key(id))
            .arg(key)
            .arg(entry.name())
            .arg(bytes)
            .arg(BULK_TTL.as_millis() as u64)
            .invoke_async(&mut conn)
            .await
            .map_err(backend)?;
        Ok(recorded == 1)
    }

    async fn recorded(&self, id: &str, keys: &[String]) -> Result<Vec<bool>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let found: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.bulk_objects_key(id))
            .arg(keys)
            .query_async(&mut conn)
            .await
            .map_err(backend)?;
        Ok(found.into_iter().map(|v| v.is_some()).collect())
    }
}

/// The verdict cache in Redis, beside the queue: every instance on the same Redis shares it.
/// Entries expire on their own (`SET ... PX`); an outcome larger than [`MAX_CACHED_BYTES`] is
/// not kept, and Redis's own `maxmemory` policy bounds the whole.
#[derive(Clone)]
pub(crate) struct RedisVerdicts {
    conn: ConnectionManager,
    namespace: String,
    ttl: Duration,
}

/// The largest outcome kept in Redis (thousands of detections are judged again instead).
const MAX_CACHED_BYTES: usize = 64 * 1024;

impl RedisStore {
    /// The verdict cache on this store's connection, keeping outcomes for `ttl`.
    pub(crate) fn verdicts(&self, ttl: Duration) -> RedisVerdicts {
        RedisVerdicts {
            conn: self.conn.clone(),
            namespace: self.namespace.clone(),
            ttl,
        }
    }
}

impl RedisVerdicts {
    fn key(&self, key: &scan_core::CacheKey) -> String {
        format!("{{{}}}:verdict:{key}", self.namespace)
    }
}

#[async_trait::async_trait]
impl scan_core::VerdictCache for RedisVerdicts {
    async fn get(
        &self,
        key: &scan_core::CacheKey,
    ) -> Result<Option<scan_core::CachedVerdict>, scan_core::CacheError> {
        let mut conn = self.conn.clone();
        let json: Option<Vec<u8>> = conn
            .get(self.key(key))
            .await
            .map_err(|e| scan_core::CacheError(format!("Redis read: {e}")))?;
        Ok(json.and_then(|json| serde_json::from_slice(&json).ok()))
    }

    async fn put(
        &self,
        key: &scan_core::CacheKey,
        verdict: &scan_core::CachedVerdict,
    ) -> Result<(), scan_core::CacheError> {
        let json = serde_json::to_vec(verdict)
            .map_err(|e| scan_core::CacheError(format!("encode: {e}")))?;
        if json.len() > MAX_CACHED_BYTES {
            return Ok(());
        }
        let ttl_ms = u64::try_from(self.ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut conn = self.conn.clone();
        conn.pset_ex::<_, _, ()>(self.key(key), json, ttl_ms)
            .await
            .map_err(|e| scan_core::CacheError(format!("Redis write: {e}")))
    }
}
