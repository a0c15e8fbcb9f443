//! The shapes of the bodies that the handlers parse by hand and of the answers they assemble,
//! as the OpenAPI document describes them.

use std::collections::BTreeMap;

use http_edge::openapi::ErrorBody;
use utoipa::{IntoResponses, ToSchema};

/// Where the verdict of a queued job goes, shared by both async endpoints.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct Delivery {
    /// Where to POST the result; without it, `trace_id` is required and the result is polled.
    callback_url: Option<String>,
    /// Headers for the callback (`Content-Type` and `Content-Length` are always ours).
    callback_headers: Option<BTreeMap<String, String>>,
    /// The caller's id for the job (at most 256 bytes), scoped to the API key that submits it.
    #[schema(min_length = 1, max_length = 256)]
    trace_id: Option<String>,
    /// Passed through untouched; at most 16 KB.
    custom_data: Option<String>,
}

/// `POST /api/v1/scan/async/download` body.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct AsyncDownloadRequest {
    #[serde(flatten)]
    source: SyncDownloadRequest,
    #[serde(flatten)]
    delivery: Delivery,
}

/// `POST /api/v1/scan/async/s3` body.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct AsyncS3Request {
    #[serde(flatten)]
    source: SyncS3Request,
    #[serde(flatten)]
    delivery: Delivery,
}

/// What submitting a job can answer.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(crate) enum Submitted {
    /// Queued; poll the `Location` header.
    #[response(status = 201, headers(("Location" = String, description = "The result's address")))]
    Polled,
    /// Queued; the result goes to `callback_url`.
    #[response(status = 204)]
    CalledBack,
    /// A field is missing or invalid.
    #[response(status = 400)]
    Invalid(ErrorBody),
    /// No or unknown API key.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The key may not scan this object (`async/s3`).
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// `trace_id` belongs to a job still pending.
    #[response(status = 409)]
    Pending(ErrorBody),
    /// The key has as many jobs queued as its quota allows; retry later.
    #[response(status = 429, headers(("Retry-After" = String, description = "Seconds to wait")))]
    OverQuota(ErrorBody),
    /// The queue is full or unreachable; retry.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// `POST /api/v1/scan/sync/download` body.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct SyncDownloadRequest {
    /// http(s) URL to GET and scan.
    #[schema(min_length = 1)]
    download_url: String,
    /// Headers for that GET.
    download_headers: Option<BTreeMap<String, String>>,
}

/// `POST /api/v1/scan/sync/s3` body.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct SyncS3Request {
    #[schema(min_length = 1)]
    bucket: String,
    #[schema(min_length = 1, max_length = 1024)]
    key: String,
    /// The object version; the latest when absent.
    version: Option<String>,
}

/// `POST /api/v1/events/s3` answer.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct EventsQueued {
    /// Created objects queued as jobs.
    queued: u64,
    /// Records of other events (removals...), which need no scan.
    ignored: u64,
}

/// `POST /api/v1/scan/async/s3/bulk` body.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct BulkRequest {
    /// The bucket to scan.
    #[schema(min_length = 1)]
    bucket: String,
    /// Only keys starting with this; the whole bucket when absent.
    prefix: Option<String>,
    /// Where each object's result is POSTed (signed, as for single jobs).
    callback_url: Option<String>,
    /// Headers for those callbacks.
    callback_headers: Option<BTreeMap<String, String>>,
}

/// A bulk scan's counts.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct BulkStatus {
    /// Its id, for `GET /api/v1/scan/async/s3/bulk/{id}`.
    id: String,
    bucket: String,
    prefix: String,
    /// When it was submitted (RFC 3339).
    created: String,
    /// Objects listed so far.
    listed: u64,
    /// Jobs queued for them.
    queued: u64,
    /// Objects with an outcome: the sum of the five below.
    done: u64,
    clean: u64,
    infected: u64,
    /// Scanned but not fully examined (unscannable, engine error): never clean.
    not_examined: u64,
    /// Left out by the filters: never scanned, never clean.
    skipped: u64,
    /// Could not be read.
    failed: u64,
    /// Bytes scanned.
    bytes: u64,
    /// Whether the listing reached the end.
    listing_done: bool,
    /// Whether every listed object has its outcome.
    finished: bool,
}
