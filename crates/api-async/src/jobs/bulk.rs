//! Bulk scans: every object under a bucket prefix, listed page by page and queued as ordinary
//! jobs, with counts any instance can read.
//!
//! The listing itself runs as jobs on the shared queue: a *page job* lists one page after the
//! stored checkpoint, queues a job for each object, moves the checkpoint on (only if it still
//! stands where the page began, so two runs of one page cannot both advance it) and queues the
//! next page job. A page job whose worker dies is taken over like any job, so the listing
//! resumes from its checkpoint on any instance. Page jobs carry a reserved trace id per page
//! number, so the next page is never queued twice while pending.
//!
//! Each object's outcome is recorded once per bulk scan (later records of the same key are
//! ignored), which is what the counts add up: an object scanned twice after a crash still counts
//! once, and an object already recorded is not queued again when its page is listed again.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::job::{Job, JobSpec, Source};
use crate::state::AppState;
use crate::store::{Pushed, StoreError};

/// What was asked for: the objects under `prefix` in `bucket`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkScan {
    /// The bulk scan's id.
    pub id: String,
    /// The submitting key's id as a trace-id scope (see [`JobSpec::owner`]).
    pub owner: Option<String>,
    /// The submitting key's id (see [`JobSpec::submitted_by`]): its object jobs count against
    /// that key's quota.
    #[serde(default)]
    pub submitted_by: Option<String>,
    /// Bucket.
    pub bucket: String,
    /// Only keys starting with this.
    pub prefix: String,
    /// Where each object's result is POSTed.
    pub callback_url: Option<String>,
    /// Headers for those callbacks.
    #[serde(default)]
    pub callback_headers: BTreeMap<String, String>,
    /// When it was submitted (RFC 3339).
    pub created: String,
    /// A re-verdict (see [`crate::rescan`]): objects already tagged with the current
    /// fingerprint are skipped, scans are paced, and objects turned infected are notified.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reverdict: bool,
}

/// How far a bulk scan has come.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Page jobs that have moved the checkpoint on.
    pub pages: u64,
    /// The last key listed: where the next page starts.
    pub after: Option<String>,
    /// Whether the listing reached the end.
    pub listing_done: bool,
    /// Objects listed.
    pub listed: u64,
    /// Jobs queued for them (the rest were skipped at listing or already recorded).
    pub queued: u64,
    /// Outcomes recorded, by kind.
    pub clean: u64,
    /// Infected objects.
    pub infected: u64,
    /// Objects read but not fully examined (unscannable, engine error).
    #[serde(alias = "not_clean")]
    pub not_examined: u64,
    /// Objects the filters left out.
    pub skipped: u64,
    /// Objects that could not be read (vanished, denied, storage down past retries); `failed`,
    /// its earlier name, is read as well.
    #[serde(alias = "failed")]
    pub unread: u64,
    /// Bytes scanned.
    pub bytes: u64,
}

impl Progress {
    /// Counts one object's entry, and the bytes scanned of it.
    pub fn count(&mut self, entry: Entry, bytes: u64) {
        *match entry {
            Entry::Judged(scan_core::Outcome::Clean) => &mut self.clean,
            Entry::Judged(scan_core::Outcome::Infected) => &mut self.infected,
            Entry::Judged(scan_core::Outcome::Unscannable | scan_core::Outcome::Error) => {
                &mut self.not_examined
            }
            Entry::Judged(scan_core::Outcome::Unread) => &mut self.unread,
            Entry::Skipped => &mut self.skipped,
        } += 1;
        self.bytes += bytes;
    }

    /// Objects with a recorded outcome.
    pub fn done(&self) -> u64 {
        self.clean + self.infected + self.not_examined + self.skipped + self.unread
    }

    /// Whether every listed object has its outcome.
    pub fn finished(&self) -> bool {
        self.listing_done && self.done() >= self.listed
    }
}

/// What a bulk scan records of one listed object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// Scanned, or tried: its [`Outcome`](scan_core::Outcome).
    Judged(scan_core::Outcome),
    /// Left out by the filters.
    Skipped,
}

impl Entry {
    /// The counter it adds to (the field of [`Progress`]).
    pub fn name(self) -> &'static str {
        match self {
            Entry::Judged(outcome) => scan_core::Tally::counter(outcome),
            Entry::Skipped => "skipped",
        }
    }
}

/// A page's listing, to be stored when the checkpoint moves on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advance {
    /// The page number the checkpoint must stand at.
    pub page: u64,
    /// The key the checkpoint must stand at: where this run's listing started.
    pub from: Option<String>,
    /// The last key dealt with: where the next listing starts.
    pub after: Option<String>,
    /// Objects dealt with (queued, skipped, or recorded before).
    pub listed: u64,
    /// Jobs queued for them.
    pub queued: u64,
    /// Whether the whole page was dealt with, so the page number moves on; a page cut short by
    /// a full queue moves only the key, and its job comes back for the rest.
    pub whole: bool,
    /// Whether this was the last page.
    pub last: bool,
}

/// What a page job came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listing {
    /// Its work is done (or was done by another run): complete it.
    Done,
    /// No room to queue what it listed (the queue is full, or the key's quota is): the
    /// checkpoint stands after what was queued, and the job comes back later for the rest.
    Deferred(&'static str),
}

/// Where bulk scans and their counts are kept: beside the queue, in the same store.
#[async_trait]
pub trait BulkStore: Send + Sync {
    /// Stores a new bulk scan with empty progress.
    async fn create(&self, bulk: &BulkScan) -> Result<(), StoreError>;

    /// The bulk scan and its progress, if it exists.
    async fn bulk(&self, id: &str) -> Result<Option<(BulkScan, Progress)>, StoreError>;

    /// Moves the checkpoint on by one page, if it still stands at `advance.page`; whether it did.
    async fn advance(&self, id: &str, advance: &Advance) -> Result<bool, StoreError>;

    /// Records `key`'s entry (and `bytes` scanned) unless it has one; whether it was new.
    async fn record(
        &self,
        id: &str,
        key: &str,
        entry: Entry,
        bytes: u64,
    ) -> Result<bool, StoreError>;

    /// For each key, whether it has an outcome already.
    async fn recorded(&self, id: &str, keys: &[String]) -> Result<Vec<bool>, StoreError>;
}

/// The trace id reserving page `page` of bulk scan `id` while its job is pending.
fn page_trace(id: &str, page: u64) -> String {
    format!("bulk:{id}:page:{page}")
}

fn new_id() -> String {
    let mut id = [0u8; 16];
    rand::fill(&mut id[..]);
    hex::encode(id)
}

/// The job listing page `page` of `bulk`.
pub(crate) fn page_job(bulk: &BulkScan, page: u64) -> Job {
    Job {
        id: new_id(),
        spec: JobSpec {
            source: Source::Listing {
                bulk: bulk.id.clone(),
                page,
            },
            callback_url: None,
            callback_headers: BTreeMap::new(),
            trace_id: Some(page_trace(&bulk.id, page)),
            custom_data: None,
            owner: bulk.owner.clone(),
            submitted_by: bulk.submitted_by.clone(),
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

/// Creates a bulk scan and queues its first page.
pub(crate) async fn start(state: &AppState, bulk: &BulkScan) -> Result<Pushed, StoreError> {
    state.bulks.create(bulk).await?;
    state.queue.push(&page_job(bulk, 0)).await
}

/// Queues the job of page `page`, unless the queue is full. Its reserved trace id keeps it
/// from being queued twice.
async fn queue_page(state: &AppState, bulk: &BulkScan, page: u64) -> Result<Listing, String> {
    match state.queue.push(&page_job(bulk, page)).await {
        Ok(Pushed::Queued | Pushed::TraceIdPending) => Ok(Listing::Done),
        Ok(Pushed::Full | Pushed::OverQuota) => Ok(Listing::Deferred("the job queue is full")),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs one page job (see the module docs). It never waits for room in the queue: what it
/// cannot queue now it leaves after the checkpoint, and says [`Listing::Deferred`]. An error
/// leaves the job to be tried again.
pub(crate) async fn list_page(
    state: &AppState,
    job: &Job,
    id: &str,
    page: u64,
) -> Result<Listing, String> {
    let Some((bulk, progress)) = state.bulks.bulk(id).await.map_err(|e| e.to_string())? else {
        tracing::warn!(
            job = job.id,
            bulk = id,
            "a page job for an unknown bulk scan; dropped"
        );
        return Ok(Listing::Done);
    };
    if progress.pages != page {
        // This page was listed and the checkpoint moved on before its job finished (a crash,
        // or a full queue, in between). If the next page's job may not have been queued,
        // queue it.
        if progress.pages == page + 1 && !progress.listing_done {
            return queue_page(state, &bulk, page + 1).await;
        }
        return Ok(Listing::Done);
    }
    let listing = state
        .objects
        .list_page(
            &bulk.bucket,
            &bulk.prefix,
            progress.after.as_deref(),
            state.settings.bulk_page_size,
        )
        .await
        .map_err(|e| format!("listing s3://{}/{}: {e}", bulk.bucket, bulk.prefix))?;
    let keys: Vec<String> = listing.objects.iter().map(|o| o.key.clone()).collect();
    let already = state
        .bulks
        .recorded(id, &keys)
        .await
        .map_err(|e| e.to_string())?;
    let filters = &state.settings.filters;
    let quota = state.quota_of(bulk.submitted_by.as_deref());
    let mut dealt_with: usize = 0;
    let mut queued = 0;
    let mut no_room = None;
    for (object, already) in listing.objects.iter().zip(already) {
        if !already {
            // Name and size are known from the listing, so those filters cost no request; tag
            // rules are left to the object's job, which reads the tags. What is in a
            // quarantine was judged already, and is never acted on again.
            let skip = if state
                .settings
                .actions
                .in_quarantine(&bulk.bucket, &object.key)
            {
                Some("it is in the quarantine".to_owned())
            } else {
                filters
                    .by_name(&object.key)
                    .or_else(|| filters.by_size(object.size))
            };
            if let Some(why) = skip {
                tracing::debug!(bulk = id, key = ?object.key, reason = %why, "skipped by the filters");
                state.metrics.finished("skipped");
                state
                    .bulks
                    .record(id, &object.key, Entry::Skipped, 0)
                    .await
                    .map_err(|e| e.to_string())?;
            } else {
                let pushed = state
                    .queue
                    .push_limited(&object_job(&bulk, &object.key), quota)
                    .await
                    .map_err(|e| e.to_string())?;
                match pushed {
                    Pushed::Queued | Pushed::TraceIdPending => {
                        state.metrics.submitted("queued");
                        queued += 1;
                    }
                    Pushed::Full => {
                        no_room = Some("the job queue is full");
                        break;
                    }
                    Pushed::OverQuota => {
                        no_room = Some("the key's quota of queued jobs is full");
                        break;
                    }
                }
            }
        }
        dealt_with += 1;
    }
    let whole = no_room.is_none();
    if let Some(why) = no_room
        && dealt_with == 0
    {
        return Ok(Listing::Deferred(why));
    }
    let advance = Advance {
        page,
        from: progress.after.clone(),
        after: dealt_with
            .checked_sub(1)
            .map(|last| listing.objects[last].key.clone())
            .or(progress.after),
        listed: dealt_with as u64,
        queued,
        whole,
        last: !listing.more,
    };
    let moved = state
        .bulks
        .advance(id, &advance)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(
        bulk = id,
        page,
        listed = advance.listed,
        queued,
        whole,
        last = advance.last,
        moved,
        "bulk scan page listed"
    );
    if !moved {
        // Another run of this page moved the checkpoint first; it carries the listing on.
        return Ok(Listing::Done);
    }
    if let Some(why) = no_room {
        return Ok(Listing::Deferred(why));
    }
    if !advance.last {
        return queue_page(state, &bulk, page + 1).await;
    }
    Ok(Listing::Done)
}

/// The job scanning one listed object of `bulk`.
fn object_job(bulk: &BulkScan, key: &str) -> Job {
    Job {
        id: new_id(),
        spec: JobSpec {
            source: Source::S3 {
                bucket: bulk.bucket.clone(),
                key: key.to_owned(),
                version: None,
            },
            callback_url: bulk.callback_url.clone(),
            callback_headers: bulk.callback_headers.clone(),
            trace_id: None,
            custom_data: None,
            owner: bulk.owner.clone(),
            submitted_by: bulk.submitted_by.clone(),
            tag_object: true,
            watched: true,
            bulk: Some(bulk.id.clone()),
            rescans: 0,
            reverdict: bulk.reverdict,
        },
        attempts: 0,
        receipt: String::new(),
    }
}

/// A bulk scan's counts, as `POST /api/v1/scan/async/s3/bulk` and
/// `GET /api/v1/scan/async/s3/bulk/{id}` answer them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BulkStatus {
    /// Its id, for `GET /api/v1/scan/async/s3/bulk/{id}`.
    pub id: String,
    /// The bucket it scans.
    pub bucket: String,
    /// Only keys starting with this.
    pub prefix: String,
    /// When it was submitted (RFC 3339).
    pub created: String,
    /// Objects listed so far.
    pub listed: u64,
    /// Jobs queued for them.
    pub queued: u64,
    /// Objects with an outcome: the sum of the five below.
    pub done: u64,
    /// Fully examined, nothing found.
    pub clean: u64,
    /// Something found.
    pub infected: u64,
    /// Read but not fully examined (unscannable, engine error): never clean.
    pub not_examined: u64,
    /// Left out by the filters: never scanned, never clean.
    pub skipped: u64,
    /// Could not be read: never judged, never clean.
    pub unread: u64,
    /// Bytes scanned.
    pub bytes: u64,
    /// Whether the listing reached the end.
    pub listing_done: bool,
    /// Whether every listed object has its outcome.
    pub finished: bool,
}

impl BulkStatus {
    /// The counts of `bulk` so far.
    pub fn of(bulk: &BulkScan, progress: &Progress) -> Self {
        BulkStatus {
            id: bulk.id.clone(),
            bucket: bulk.bucket.clone(),
            prefix: bulk.prefix.clone(),
            created: bulk.created.clone(),
            listed: progress.listed,
            queued: progress.queued,
            done: progress.done(),
            clean: progress.clean,
            infected: progress.infected,
            not_examined: progress.not_examined,
            skipped: progress.skipped,
            unread: progress.unread,
            bytes: progress.bytes,
            listing_done: progress.listing_done,
            finished: progress.finished(),
        }
    }
}

/// A new bulk scan's record.
pub(crate) fn new_bulk(
    owner: Option<String>,
    submitted_by: Option<String>,
    bucket: String,
    prefix: String,
    callback_url: Option<String>,
    callback_headers: BTreeMap<String, String>,
) -> BulkScan {
    BulkScan {
        id: new_id(),
        owner,
        submitted_by,
        bucket,
        prefix,
        callback_url,
        callback_headers,
        created: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        reverdict: false,
    }
}
