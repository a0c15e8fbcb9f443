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

use crate::wire::{CallbackBody, ScanResult};
use futures::FutureExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::callback;
use crate::job::Job;
use crate::state::AppState;

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
                            match examine(&state, &job).await {
                                Next::Finished => {}
                                Next::Deliver(callback) => {
                                    // The worker slot is freed while the callback is delivered
                                    // (retries can take minutes), once a delivery slot is
                                    // held: a receiver that is down does not stop scanning,
                                    // and deliveries stay bounded.
                                    let delivering = deliveries.acquire_owned().await;
                                    drop(permit);
                                    deliver(&state, &job, callback).await;
                                    drop(delivering);
                                }
                                Next::TryAgainIn(pause) => {
                                    // Waited out without the worker slot; the claim is
                                    // renewed meanwhile.
                                    drop(permit);
                                    tokio::time::sleep(pause).await;
                                    if let Err(e) = state.queue.release(&job).await {
                                        tracing::error!(job = job.id, error = %e, "giving the job back failed; it returns when its lease runs out");
                                    }
                                }
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

/// What is left of a job once its work in the worker slot is over.
enum Next {
    /// Nothing: it is completed, given back or deferred.
    Finished,
    /// Its callback, to deliver (then complete it).
    Deliver(Callback),
    /// Give it back after this pause (counted as an attempt).
    TryAgainIn(Duration),
}

/// Fetches and scans a job and stores its result for polling. Failures to fetch or scan become a
/// `status: "no"` result; a failure of the result store gives the job back to be tried again.
/// Completes the job unless it has a callback, which is returned for [`deliver`].
async fn examine(state: &AppState, job: &Job) -> Next {
    if let crate::job::Source::Listing { bulk, page } = &job.spec.source {
        return list_page(state, job, bulk, *page).await;
    }
    match examine_object(state, job).await {
        Some(callback) => Next::Deliver(callback),
        None => Next::Finished,
    }
}

/// Ends a job whose object is not scanned on purpose (filtered, or already judged by the rules
/// in use): counted as skipped in its bulk scan and the metrics, then completed. A job whose bulk
/// scan could not record it is given back (see [`record_in_bulk`]).
async fn finish_skipped(state: &AppState, job: &Job) {
    if !record_in_bulk(state, job, crate::bulk::Entry::Skipped, 0).await {
        return;
    }
    state.metrics.finished("skipped");
    complete(state, job).await;
}

/// [`examine`] for a job that scans one object.
async fn examine_object(state: &AppState, job: &Job) -> Option<Callback> {
    let sources = state.sources();
    let (name, download_url) = sources.describe(&job.spec.source);
    let mut download_time = 0.0;
    let mut scan_time = 0.0;
    let before = if job.spec.reverdict {
        match reverdict_before(state, job).await {
            Ok(before) => Some(before),
            Err(why) => {
                tracing::info!(job = job.id, object = ?download_url, reason = %why, "re-verdict skipped");
                finish_skipped(state, job).await;
                return None;
            }
        }
    } else {
        None
    };
    if job.spec.watched
        && let Some(why) = skipped(state, job).await
    {
        tracing::info!(job = job.id, object = ?download_url, reason = %why, "skipped by the filters");
        finish_skipped(state, job).await;
        return None;
    }
    let mut scanned = None;
    let mut size = 0;
    let mut judgement = storage::actions::Judgement::unread();
    let refused = no_longer_allowed(state, job);
    let mut result = if let Some(why) = &refused {
        tracing::warn!(job = job.id, reason = %why, "a queued job's key may no longer do this");
        ScanResult::not_scanned(why.as_str())
    } else if job.attempts > state.settings.max_attempts {
        tracing::error!(
            job = job.id,
            attempts = job.attempts,
            "a job keeps failing to finish; given up"
        );
        ScanResult::not_scanned(format!(
            "given up: the job was started {} times without finishing",
            job.attempts - 1
        ))
    } else {
        if before.is_some() {
            state.rescan_pace.turn().await;
        }
        let started = Instant::now();
        let fetched = sources.fetch(&job.spec.source).await;
        download_time = started.elapsed().as_secs_f64();
        match fetched {
            Ok(fetched) => {
                scanned = fetched.object;
                let started = Instant::now();
                let report = state.scan(&name, fetched.content).await;
                scan_time = started.elapsed().as_secs_f64();
                judgement = storage::actions::Judgement::of(&report);
                size = report.size;
                tracing::info!(job = job.id, trace_id = ?job.spec.trace_id, verdict = %report.verdict, size = report.size, "scanned");
                ScanResult::of(&report)
            }
            Err(why) => {
                tracing::warn!(job = job.id, trace_id = ?job.spec.trace_id, url = ?download_url, error = %why, "not scanned");
                ScanResult::not_scanned(why)
            }
        }
    };

    // A job its key may no longer run is not acted on either: the object is not its to touch.
    if job.spec.tag_object
        && refused.is_none()
        && let crate::job::Source::S3 {
            bucket,
            key,
            version,
        } = &job.spec.source
    {
        let object = storage::ObjectRef {
            bucket: bucket.clone(),
            key: key.clone(),
            version: version.clone(),
        };
        let judged_by = result.fingerprint.clone();
        match act_on_object(
            state,
            &object,
            scanned.as_ref(),
            (judgement, judged_by.as_deref()),
            !job.spec.watched,
        )
        .await
        {
            storage::actions::Acted::Changed(why) if job.spec.watched => {
                if rescan(state, job, &why).await {
                    complete(state, job).await;
                    return None;
                }
                // It keeps changing: no verdict holds for what is there now, which is tagged
                // as not judged.
                judgement = storage::actions::Judgement::unread();
                result = ScanResult::not_scanned(format!(
                    "the object changed between its scan and the action on it {} times ({why}); it is left unjudged",
                    job.spec.rescans + 1
                ));
                result.object_action = Some(
                    act_on_object(state, &object, None, (judgement, None), false)
                        .await
                        .into_report(),
                );
            }
            acted => result.object_action = Some(acted.into_report()),
        }
        if let Some(before) = &before
            && result.status == crate::wire::Status::Infected
            && before
                .result
                .as_deref()
                .is_some_and(|was| was != "infected")
        {
            tracing::warn!(job = job.id, bucket, key, was = ?before.result, finding = ?result.finding, "re-verdict: an object judged before is infected under the current rules");
            crate::rescan::notify(state, &object, before, &result, &job.id);
        }
    }

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

    if !record_in_bulk(
        state,
        job,
        crate::bulk::Entry::Judged(judgement.outcome),
        size,
    )
    .await
    {
        return None;
    }
    state.metrics.finished(result.status.as_str());
    let Some(url) = &job.spec.callback_url else {
        complete(state, job).await;
        return None;
    };
    let body = CallbackBody {
        result,
        download_time,
        scan_time,
        download_url,
        trace_id: job.spec.trace_id.clone(),
        custom_data: job.spec.custom_data.clone(),
        key_id: job.spec.submitted_by.clone(),
    };
    Some(Callback {
        url: url.clone(),
        body: bytes::Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
    })
}

/// Why a job queued by a key may not run any more, if it may not: the key was removed, or its
/// scope no longer reaches the object (for the scope the job came through: a bulk scan, a
/// bucket event, or a request). The configuration may have changed since it was queued.
fn no_longer_allowed(state: &AppState, job: &Job) -> Option<String> {
    let key_id = job.spec.submitted_by.as_deref()?;
    let Some(grant) = state.keys.by_id(key_id) else {
        return Some("the API key that asked for this scan is no longer configured".to_owned());
    };
    let crate::job::Source::S3 { bucket, key, .. } = &job.spec.source else {
        return None;
    };
    let (scope, kind) = if job.spec.bulk.is_some() {
        (&grant.bulk, "bulk-scan")
    } else if job.spec.watched {
        (&grant.events, "post events for")
    } else {
        (&grant.scan, "scan")
    };
    (!scope.allows(bucket, key)).then(|| {
        format!("the API key that asked may no longer {kind} objects in s3://{bucket}/{key}")
    })
}

/// What a re-verdict's object said before (its outcome tags), or why it is left alone: it is
/// tagged with the current fingerprint already.
async fn reverdict_before(state: &AppState, job: &Job) -> Result<crate::rescan::Before, String> {
    let crate::job::Source::S3 {
        bucket,
        key,
        version,
    } = &job.spec.source
    else {
        return Ok(Default::default());
    };
    let object = storage::ObjectRef {
        bucket: bucket.clone(),
        key: key.clone(),
        version: version.clone(),
    };
    // Tags that cannot be read are not a reason to skip: the scan reports what goes wrong.
    let tags = state.objects.tags(&object).await.unwrap_or_default();
    let before = crate::rescan::Before::of(&tags);
    let current = state.fingerprint();
    if before.result.is_some() && before.fingerprint.as_deref() == Some(current.as_str()) {
        return Err(format!(
            "it was judged by the current rules already ({current})"
        ));
    }
    Ok(before)
}

/// Why the `[filters]` (or the quarantine) leave a watched object alone, if they do: decided
/// before any byte is read.
async fn skipped(state: &AppState, job: &Job) -> Option<String> {
    let crate::job::Source::S3 {
        bucket,
        key,
        version,
    } = &job.spec.source
    else {
        return None;
    };
    if state.settings.actions.in_quarantine(bucket, key) {
        return Some("it is in the quarantine".to_owned());
    }
    let object = storage::ObjectRef {
        bucket: bucket.clone(),
        key: key.clone(),
        version: version.clone(),
    };
    let fingerprint = state.fingerprint();
    state
        .settings
        .filters
        .leaves_alone(state.objects.as_ref(), &object, Some(&fingerprint))
        .await
}

/// How long a page job that found no room in the queue waits before it comes back.
const PAGE_DEFERRED_FOR: Duration = Duration::from_secs(2);

/// Runs a bulk scan's page job: completes it, defers it when the queue has no room (without
/// holding a worker), or, on a failure, gives it back after a pause that grows with its
/// attempts (the listing resumes from its checkpoint), until it is given up.
async fn list_page(state: &AppState, job: &Job, bulk: &str, page: u64) -> Next {
    match crate::bulk::list_page(state, job, bulk, page).await {
        Ok(crate::bulk::Listing::Done) => {
            complete(state, job).await;
            Next::Finished
        }
        Ok(crate::bulk::Listing::Deferred(why)) => {
            tracing::debug!(
                job = job.id,
                bulk,
                page,
                reason = why,
                "a bulk scan's listing waits for room"
            );
            if let Err(e) = state.queue.defer(job, PAGE_DEFERRED_FOR).await {
                tracing::error!(job = job.id, error = %e, "deferring the page job failed; it returns when its lease runs out");
            }
            Next::Finished
        }
        Err(why) if job.attempts >= state.settings.max_attempts => {
            tracing::error!(job = job.id, bulk, page, attempts = job.attempts, error = %why, "a bulk scan's listing keeps failing; given up, the bulk scan stays unfinished");
            complete(state, job).await;
            Next::Finished
        }
        Err(why) => {
            let pause = Duration::from_secs(1 << job.attempts.min(6));
            tracing::warn!(job = job.id, bulk, page, error = %why, retry_in_secs = pause.as_secs(), "listing a bulk scan's page failed");
            Next::TryAgainIn(pause)
        }
    }
}

/// Records the object's outcome in its bulk scan, if it belongs to one. `false` when the store
/// failed: the job is then given back, to be recorded when it runs again.
async fn record_in_bulk(
    state: &AppState,
    job: &Job,
    entry: crate::bulk::Entry,
    bytes: u64,
) -> bool {
    let (Some(bulk), crate::job::Source::S3 { key, .. }) = (&job.spec.bulk, &job.spec.source)
    else {
        return true;
    };
    match state.bulks.record(bulk, key, entry, bytes).await {
        Ok(first) => {
            if !first {
                tracing::info!(job = job.id, bulk, key = ?key, "the object had an outcome in its bulk scan already; counted once");
            }
            true
        }
        Err(e) => {
            tracing::error!(job = job.id, bulk, error = %e, "recording the outcome in the bulk scan failed; the job stays queued");
            if let Err(e) = state.queue.release(job).await {
                tracing::error!(job = job.id, error = %e, "giving the job back failed too; it returns when its lease runs out");
            }
            false
        }
    }
}

/// Times an object may change under its scan before it is left unjudged.
const MAX_RESCANS: u32 = 3;

/// Queues the object to be scanned again because it changed; `false` when it has changed too
/// often already (or cannot be queued), and is to be reported as it is.
async fn rescan(state: &AppState, job: &Job, why: &str) -> bool {
    if job.spec.rescans >= MAX_RESCANS {
        tracing::warn!(
            job = job.id,
            rescans = job.spec.rescans,
            why,
            "the object keeps changing under its scan"
        );
        return false;
    }
    let mut again = job.clone();
    again.id = {
        let mut id = [0u8; 16];
        rand::fill(&mut id[..]);
        hex::encode(id)
    };
    again.attempts = 0;
    again.spec.rescans += 1;
    // Jobs that act on objects (events, bulk scans) carry no trace id, so nothing is reserved
    // twice; one that did would be refused here and reported as it is.
    match state.queue.push(&again).await {
        Ok(crate::store::Pushed::Queued) => {
            tracing::info!(
                job = job.id,
                again = again.id,
                why,
                "the object changed after its scan; scanning it again, not acting on it"
            );
            true
        }
        Ok(other) => {
            tracing::warn!(job = job.id, outcome = ?other, "could not queue the changed object again");
            false
        }
        Err(e) => {
            tracing::warn!(job = job.id, error = %e, "could not queue the changed object again");
            false
        }
    }
}

/// Carries out the `[actions]` policy on the object (see [`storage::actions::act`]); the
/// `[filters]` apply when a caller asked (`asked`), since watched objects met them before
/// their scan. The outcome comes with the fingerprint of the set that judged it, tagged on the
/// object (the set in use when there is none: the object was not read). A failure is counted (`object_actions{outcome="failed"}`) and reported in the
/// result's `object_action`.
pub(crate) async fn act_on_object(
    state: &AppState,
    object: &storage::ObjectRef,
    read: Option<&storage::ObjectInfo>,
    (judgement, judged_by): (storage::actions::Judgement, Option<&str>),
    asked: bool,
) -> storage::actions::Acted {
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let fingerprint = judged_by.map_or_else(|| state.fingerprint(), str::to_owned);
    let tags = storage::actions::tags_for(judgement.outcome, &date, &fingerprint);
    let acted = storage::actions::act(
        state.objects.as_ref(),
        &state.settings.actions,
        asked.then_some(&state.settings.filters),
        storage::actions::Scanned {
            object,
            read,
            judgement,
        },
        &tags,
    )
    .await;
    if let storage::actions::Acted::Reported(report) = &acted
        && report.action != "none"
    {
        state.metrics.action(report.done);
    }
    acted
}

/// Delivers a job's callback (with retries, for a bounded time), then completes the job either
/// way: its result stays pollable, and a callback that could not be delivered is logged.
async fn deliver(state: &AppState, job: &Job, callback: Callback) {
    let own = job
        .spec
        .submitted_by
        .as_deref()
        .and_then(|id| state.keys.by_id(id))
        .and_then(|grant| grant.callback_secret.clone());
    let secret = own.as_deref().unwrap_or(&state.callbacks.secret);
    match callback::deliver(
        &state.fetcher,
        &state.callbacks,
        secret,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobSpec, Source};

    async fn state(dir: &std::path::Path) -> Arc<AppState> {
        let mut config = crate::Config {
            api_keys: Some("k".to_owned()),
            storage: storage::StorageConfig::Local {
                root: dir.join("data"),
            },
            queue: crate::config::QueueConfig::Embedded {
                path: dir.join("queue.redb"),
            },
            ..crate::Config::default()
        };
        config.callback.secret = Some("a test callback secret".to_owned());
        AppState::from_config(&config).await.unwrap()
    }

    fn object_job(key: &str, rescans: u32) -> Job {
        Job {
            id: "j".to_owned(),
            spec: JobSpec {
                source: Source::S3 {
                    bucket: "b".to_owned(),
                    key: key.to_owned(),
                    version: None,
                },
                callback_url: None,
                callback_headers: Default::default(),
                trace_id: None,
                custom_data: None,
                owner: None,
                submitted_by: None,
                tag_object: true,
                watched: true,
                bulk: None,
                rescans,
                reverdict: false,
            },
            attempts: 1,
            receipt: String::new(),
        }
    }

    #[tokio::test]
    async fn an_object_written_again_after_its_scan_is_queued_again_not_acted_on() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path()).await;
        std::fs::create_dir_all(dir.path().join("data/b")).unwrap();
        std::fs::write(dir.path().join("data/b/f.txt"), "first").unwrap();
        let job = object_job("f.txt", 0);
        let object = storage::ObjectRef::new("b", "f.txt");
        let read = state.objects.head(&object).await.unwrap();

        std::fs::write(dir.path().join("data/b/f.txt"), "second, longer").unwrap();
        let clean = storage::actions::Judgement {
            outcome: scan_core::Outcome::Clean,
            may_change: false,
        };
        let acted = act_on_object(&state, &object, Some(&read), (clean, None), false).await;
        let storage::actions::Acted::Changed(why) = acted else {
            panic!("{acted:?}")
        };
        assert!(why.contains("entity tag"), "{why}");
        assert!(
            state.objects.tags(&object).await.unwrap().is_empty(),
            "the new bytes were not tagged clean"
        );
        assert!(rescan(&state, &job, &why).await);
        let again = state.queue.claim(1, Duration::ZERO).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].spec.rescans, 1);
        assert_eq!(again[0].spec.source, job.spec.source);
        assert_ne!(again[0].id, job.id);

        // One that keeps changing is not queued for ever.
        assert!(!rescan(&state, &object_job("f.txt", MAX_RESCANS), &why).await);
    }
}
