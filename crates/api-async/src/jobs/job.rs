//! A job: what to fetch, where to deliver the verdict, and the caller's ids.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where the bytes to scan come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Source {
    /// An http(s) URL, fetched with these headers.
    Url {
        /// The URL.
        url: String,
        /// Headers for the GET.
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
    /// An object in S3.
    S3 {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Version; the latest when absent.
        version: Option<String>,
    },
    /// One page of a bulk scan's listing (see [`crate::bulk`]).
    Listing {
        /// The bulk scan.
        bulk: String,
        /// Which page: the checkpoint must stand at it.
        page: u64,
    },
}

/// What a caller asked for (contract section 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The bytes to scan.
    pub source: Source,
    /// Where to POST the result.
    pub callback_url: Option<String>,
    /// Headers for the callback (ours win for Content-Type and Content-Length).
    #[serde(default)]
    pub callback_headers: BTreeMap<String, String>,
    /// The caller's id, under which the result can be polled.
    pub trace_id: Option<String>,
    /// Passed through untouched.
    pub custom_data: Option<String>,
    /// The id of the API key that submitted the job (never the key), which scopes its trace id:
    /// another key neither sees its result nor replaces it. `None` when trace ids are shared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The id of the API key that submitted the job, shared trace ids or not: its queued jobs
    /// count against that key's quota, and its callback names it. `None` for the service's own
    /// jobs (SQS events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_by: Option<String>,
    /// Carry out the `[actions]` policy on the S3 object once it is scanned (jobs from bucket
    /// events and bulk scans).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tag_object: bool,
    /// The object came from watching a bucket (an event or a bulk scan), not from a caller's
    /// request: the `[filters]` apply, and a change after its scan queues it again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub watched: bool,
    /// The bulk scan this object belongs to, whose counts its outcome goes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulk: Option<String>,
    /// How many times the object changed between its scan and the action on it, each time
    /// queueing it again.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rescans: u32,
    /// Part of a re-verdict (see [`crate::rescan`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reverdict: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl JobSpec {
    /// What the queue reserves and the result is stored under: the trace id, within its
    /// owner's scope.
    pub fn result_key(&self) -> Option<String> {
        let trace = self.trace_id.as_deref()?;
        Some(scoped(self.owner.as_deref(), trace))
    }
}

/// `trace` within `owner`'s scope (`owner:trace`), or `trace` itself when ids are shared.
pub(crate) fn scoped(owner: Option<&str>, trace: &str) -> String {
    match owner {
        Some(owner) => format!("{owner}:{trace}"),
        None => trace.to_owned(),
    }
}

/// A queued job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Unique id of this job (not the caller's trace id, which may be absent).
    pub id: String,
    /// What was asked.
    pub spec: JobSpec,
    /// How many times a worker has claimed it (a job claimed again after a crash counts up).
    pub attempts: u32,
    /// The queue's own handle for this claim (a Redis stream entry id); not part of the job.
    #[serde(skip)]
    pub receipt: String,
}
