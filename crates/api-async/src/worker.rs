//! Workers: claim jobs, fetch, scan, store the result for polling, call back, complete.
//!
//! One dispatcher per process claims as many jobs as it has free slots and runs each in its own
//! task (scanning itself happens on blocking threads inside the scanner). A job gives its slot
//! back once its result is stored: callback delivery, which may retry for minutes, runs beside
//! the workers (bounded separately), so a receiver that is down does not stall scanning. While
//! jobs run or deliver, their claims are renewed, so they are not taken over by another
//! instance. On shutdown the dispatcher stops claiming, lets running jobs finish for a grace
//! period, and gives the rest back to the queue.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::callback;
use crate::job::Job;
use crate::server::AppState;

/// Most jobs claimed in one round trip.
const CLAIM_BATCH: usize = 32;
/// Callbacks being delivered (or waiting to retry) at once, beyond the running jobs.
const MAX_DELIVERIES: usize = 1024;
/// How long one claim waits for work before checking for shutdown.
const CLAIM_WAIT: Duration = Duration::from_secs(1);

type InFlight = Arc<Mutex<HashMap<String, Job>>>;

/// Runs `state.workers` jobs at a time until `shutdown` is cancelled, then drains (see the
/// module docs). Returns when every job is finished or given back.
pub(crate) async fn run(state: Arc<AppState>, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(state.settings.workers.max(1)));
    let deliveries = Arc::new(Semaphore::new(MAX_DELIVERIES));
    let in_flight: InFlight = Arc::default();
    let renewer = tokio::spawn(renew_loop(Arc::clone(&state), Arc::clone(&in_flight)));
    let mut tasks = JoinSet::new();
    let mut failures = 0u32;
    loop {
        let first = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
        };
        let mut permits = vec![first];
        while permits.len() < CLAIM_BATCH {
            match Arc::clone(&slots).try_acquire_owned() {
                Ok(permit) => permits.push(permit),
                Err(_) => break,
            }
        }
        // Not raced against shutdown: a claim cut short could strand jobs it had taken. It
        // returns within CLAIM_WAIT anyway.
        match state.queue.claim(permits.len(), CLAIM_WAIT).await {
            Ok(jobs) => {
                failures = 0;
                for (job, permit) in jobs.into_iter().zip(permits) {
                    if let Ok(mut held) = in_flight.lock() {
                        held.insert(job.id.clone(), job.clone());
                    }
                    let state = Arc::clone(&state);
                    let in_flight = Arc::clone(&in_flight);
                    let deliveries = Arc::clone(&deliveries);
                    tasks.spawn(async move {
                        let work = async {
                            if let Some(callback) = examine(&state, &job).await {
                                // The worker slot is freed while the callback is delivered
                                // (retries can take minutes), once a delivery slot is held: a
                                // receiver that is down does not stop scanning, and deliveries
                                // stay bounded.
                                let delivering = deliveries.acquire_owned().await;
                                drop(permit);
                                deliver(&state, &job, callback).await;
                                drop(delivering);
                            }
                        };
                        if AssertUnwindSafe(work).catch_unwind().await.is_err() {
                            // A bug, not the job's fault; it runs again (max_attempts bounds it).
                            tracing::error!(job = job.id, "a job panicked; it is given back to the queue");
                            if let Err(e) = state.queue.release(&job).await {
                                tracing::error!(job = job.id, error = %e, "giving the job back failed; it returns when its lease runs out");
                            }
                        }
                        if let Ok(mut held) = in_flight.lock() {
                            held.remove(&job.id);
                        }
                    });
                }
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let wait = Duration::from_millis(200 * u64::from(failures.min(25)));
                tracing::error!(error = %e, retry_in_ms = wait.as_millis() as u64, "claiming jobs failed");
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = shutdown.cancelled() => break,
                }
            }
        }
        while tasks.try_join_next().is_some() {}
    }

    let grace = state.settings.shutdown_grace;
    tracing::info!(
        running = tasks.len(),
        grace_secs = grace.as_secs(),
        "workers stopping: no new jobs; running ones may finish"
    );
    let drained =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tasks.shutdown().await;
    }
    renewer.abort();
    let unfinished: Vec<Job> = in_flight
        .lock()
        .map(|mut held| held.drain().map(|(_, job)| job).collect())
        .unwrap_or_default();
    for job in &unfinished {
        if let Err(e) = state.queue.release(job).await {
            tracing::error!(job = job.id, error = %e, "could not give an unfinished job back; it returns when its lease runs out");
        }
    }
    if !unfinished.is_empty() {
        tracing::info!(
            jobs = unfinished.len(),
            "unfinished jobs given back to the queue"
        );
    }
}

/// Renews the claims of running jobs, through the shutdown grace period too (run() stops it).
async fn renew_loop(state: Arc<AppState>, in_flight: InFlight) {
    let every = (state.settings.lease / 3).max(Duration::from_millis(50));
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let held: Vec<Job> = in_flight
            .lock()
            .map(|held| held.values().cloned().collect())
            .unwrap_or_default();
        if let Err(e) = state.queue.renew(&held).await {
            tracing::warn!(error = %e, jobs = held.len(), "renewing claims failed");
        }
    }
}

/// The body and target of a callback still to deliver.
struct Callback {
    url: String,
    body: bytes::Bytes,
}

/// Fetches and scans a job and stores its result for polling. Failures to fetch or scan become a
/// `status: "no"` result; a failure of the result store gives the job back to be tried again.
/// Completes the job unless it has a callback, which is returned for [`deliver`].
async fn examine(state: &AppState, job: &Job) -> Option<Callback> {
    let sources = state.sources();
    let (name, download_url) = sources.describe(&job.spec.source);
    let mut download_time = 0.0;
    let mut scan_time = 0.0;
    let mut verdict = None;
    if job.spec.tag_object
        && let Some(why) = skipped(state, job).await
    {
        tracing::info!(job = job.id, object = ?download_url, reason = %why, "skipped by the filters");
        state.metrics.finished("skipped");
        complete(state, job).await;
        return None;
    }
    let result: Value = if job.attempts > state.settings.max_attempts {
        tracing::error!(
            job = job.id,
            attempts = job.attempts,
            "a job keeps failing to finish; given up"
        );
        json!({
            "status": "no",
            "reason": format!("given up: the job was started {} times without finishing", job.attempts - 1),
        })
    } else {
        let started = Instant::now();
        let fetched = sources.fetch(&job.spec.source).await;
        download_time = started.elapsed().as_secs_f64();
        match fetched {
            Ok(input) => {
                let started = Instant::now();
                let report = state.scan(&name, input).await;
                scan_time = started.elapsed().as_secs_f64();
                verdict = Some(report.verdict);
                tracing::info!(job = job.id, trace_id = ?job.spec.trace_id, verdict = %report.verdict, size = report.size, "scanned");
                serde_json::to_value(report.to_async_result())
                    .unwrap_or_else(|e| json!({"status": "no", "reason": e.to_string()}))
            }
            Err(why) => {
                tracing::warn!(job = job.id, trace_id = ?job.spec.trace_id, url = ?download_url, error = %why, "not scanned");
                json!({"status": "no", "reason": why})
            }
        }
    };

    if let Some(trace_id) = &job.spec.result_key()
        && let Err(e) = state
            .results
            .put(trace_id, &result, state.settings.result_ttl)
            .await
    {
        tracing::error!(job = job.id, error = %e, "storing the result failed; the job stays queued");
        if let Err(e) = state.queue.release(job).await {
            tracing::error!(job = job.id, error = %e, "giving the job back failed too; it returns when its lease runs out");
        }
        return None;
    }

    if job.spec.tag_object {
        act_on_object(state, job, verdict).await;
    }
    state
        .metrics
        .finished(result["status"].as_str().unwrap_or("no"));
    let Some(url) = &job.spec.callback_url else {
        complete(state, job).await;
        return None;
    };
    let mut body = result;
    if let Some(fields) = body.as_object_mut() {
        fields.insert("download_time".into(), json!(download_time));
        fields.insert("scan_time".into(), json!(scan_time));
        fields.insert("download_url".into(), json!(download_url));
        if let Some(trace_id) = &job.spec.trace_id {
            fields.insert("trace_id".into(), json!(trace_id));
        }
        if let Some(custom) = &job.spec.custom_data {
            fields.insert("custom_data".into(), json!(custom));
        }
    }
    Some(Callback {
        url: url.clone(),
        body: bytes::Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
    })
}

/// Why the `[filters]` skip a bucket event's object, if they do: by its key, then (only when a
/// rule needs them) by its size and tags. An object whose size or tags cannot be read is not
/// skipped: the scan then reports why it could not be read.
async fn skipped(state: &AppState, job: &Job) -> Option<String> {
    let crate::job::Source::S3 {
        bucket,
        key,
        version,
    } = &job.spec.source
    else {
        return None;
    };
    let filters = &state.settings.filters;
    if let Some(why) = filters.by_name(key) {
        return Some(why);
    }
    if !filters.needs_head() {
        return None;
    }
    let object = storage::ObjectRef {
        bucket: bucket.clone(),
        key: key.clone(),
        version: version.clone(),
    };
    let info = state.objects.head(&object).await.ok()?;
    let tags = if filters.skip_tagged.is_empty() {
        Vec::new()
    } else {
        state.objects.tags(&object).await.ok()?
    };
    filters.by_head(info.size, &tags)
}

/// Carries out the `[actions]` policy on a bucket event's object: tag, move to quarantine,
/// delete, or nothing, by outcome. A failure is logged and counted (`object_actions{outcome=
/// "failed"}`); the object then keeps no `scan-result` tag, so it stays visibly unscanned.
async fn act_on_object(state: &AppState, job: &Job, verdict: Option<scan_core::Verdict>) {
    use crate::config::Action;
    let crate::job::Source::S3 {
        bucket,
        key,
        version,
    } = &job.spec.source
    else {
        return;
    };
    let object = storage::ObjectRef {
        bucket: bucket.clone(),
        key: key.clone(),
        version: version.clone(),
    };
    let policy = &state.settings.actions;
    let action = match verdict {
        Some(scan_core::Verdict::Clean) => policy.clean,
        Some(scan_core::Verdict::Infected) => policy.infected,
        _ => policy.not_clean,
    };
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    // An object that could not be read at all (a storage failure, a job given up) was never
    // judged: it is tagged `error` at most, never moved or deleted on a guess.
    let action = match (verdict, action) {
        (None, Action::Move | Action::Delete) => Action::Tag,
        (_, action) => action,
    };
    let store = state.objects.as_ref();
    let done = match action {
        Action::None => return,
        Action::Tag => storage::tag_outcome(store, &object, verdict, &date).await,
        Action::Delete => store.delete(&object).await,
        Action::Move => {
            let to_bucket = policy.quarantine_bucket.as_deref().unwrap_or_default();
            let tags = storage::outcome_tags(verdict, &date);
            storage::quarantine(store, &object, to_bucket, &policy.quarantine_prefix, &tags)
                .await
                .map(|to| tracing::info!(job = job.id, from = ?key, to = ?to.key, bucket = ?to.bucket, "moved to quarantine"))
        }
    };
    match done {
        Ok(()) => state.metrics.action(true),
        Err(e) => {
            state.metrics.action(false);
            tracing::error!(job = job.id, bucket = ?bucket, key = ?key, action = ?action, error = %e, "acting on the scanned object failed");
        }
    }
}

/// Delivers a job's callback (with retries, for a bounded time), then completes the job either
/// way: its result stays pollable, and a callback that could not be delivered is logged.
async fn deliver(state: &AppState, job: &Job, callback: Callback) {
    match callback::deliver(
        &state.fetcher,
        &state.callbacks,
        &callback.url,
        &job.spec.callback_headers,
        &job.id,
        callback.body,
    )
    .await
    {
        Ok(attempts) => {
            state.metrics.callback(true);
            tracing::debug!(job = job.id, attempts, "callback delivered");
        }
        Err(why) => {
            state.metrics.callback(false);
            tracing::error!(job = job.id, trace_id = ?job.spec.trace_id, url = ?callback.url, error = %why, "callback not delivered");
        }
    }
    complete(state, job).await;
}

async fn complete(state: &AppState, job: &Job) {
    if let Err(e) = state.queue.complete(job).await {
        tracing::error!(job = job.id, error = %e, "marking the job done failed; it may run again");
    }
}
