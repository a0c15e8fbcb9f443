//! The bodies the handlers parse and the answers they return, as Rust types: each request body
//! is read into its type here (field by field, so every 400 names the field and what is wrong
//! with it), the handlers work from those types, and the OpenAPI document is generated from
//! the same types, so the two cannot drift. [`Submitted`] is the one type that only describes:
//! the statuses and headers a job submission answers with, which carry no body of ours.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use http_edge::ErrorBody;
use http_edge::body::BodyError;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::{IntoResponses, ToSchema};

use crate::error::ApiError;
use crate::job::{JobSpec, Source};

/// Largest `custom_data`, bytes of UTF-8.
pub const MAX_CUSTOM_DATA: usize = 16 * 1024;
/// Longest `trace_id`, bytes.
pub const MAX_TRACE_ID: usize = 256;

/// Where the verdict of a queued job goes, shared by both async endpoints.
#[derive(Debug, ToSchema)]
pub(crate) struct Delivery {
    /// Where to POST the result; without it, `trace_id` is required and the result is polled.
    pub(crate) callback_url: Option<String>,
    /// Headers for the callback (`Content-Type` and `Content-Length` are always ours).
    #[serde(default)]
    pub(crate) callback_headers: BTreeMap<String, String>,
    /// The caller's id for the job (at most 256 bytes), scoped to the API key that submits it.
    #[schema(min_length = 1, max_length = 256)]
    pub(crate) trace_id: Option<String>,
    /// Passed through untouched; at most 16 KB.
    pub(crate) custom_data: Option<String>,
}

impl Delivery {
    fn parse(fields: &Map<String, Value>) -> Result<Self, ApiError> {
        let callback_url = optional_url(fields, "callback_url")?;
        let callback_headers = headers(fields, "callback_headers")?;
        let trace_id = string(fields, "trace_id")?;
        if let Some(trace) = &trace_id {
            if trace.is_empty() {
                return Err(ApiError::BadRequest(
                    "trace_id must not be empty".to_owned(),
                ));
            }
            if trace.len() > MAX_TRACE_ID {
                return Err(ApiError::BadRequest(format!(
                    "trace_id is longer than {MAX_TRACE_ID} bytes"
                )));
            }
        }
        if callback_url.is_none() && trace_id.is_none() {
            return Err(ApiError::BadRequest(
                "trace_id is required when there is no callback_url (it is how the result is polled)"
                    .to_owned(),
            ));
        }
        let custom_data = string(fields, "custom_data")?;
        if let Some(custom) = &custom_data
            && custom.len() > MAX_CUSTOM_DATA
        {
            return Err(ApiError::BadRequest(format!(
                "custom_data is {} bytes; at most {MAX_CUSTOM_DATA} are accepted",
                custom.len()
            )));
        }
        Ok(Delivery {
            callback_url,
            callback_headers,
            trace_id,
            custom_data,
        })
    }

    /// The job that scans `source` and delivers its verdict here, before the caller's ids and
    /// the policy flags are filled in.
    pub(crate) fn job(self, source: Source) -> JobSpec {
        JobSpec {
            source,
            callback_url: self.callback_url,
            callback_headers: self.callback_headers,
            trace_id: self.trace_id,
            custom_data: self.custom_data,
            owner: None,
            submitted_by: None,
            tag_object: false,
            watched: false,
            bulk: None,
            rescans: 0,
            reverdict: false,
        }
    }
}

/// `POST /api/v1/scan/sync/download` body.
#[derive(Debug, ToSchema)]
pub(crate) struct SyncDownloadRequest {
    /// http(s) URL to GET and scan.
    #[schema(min_length = 1)]
    pub(crate) download_url: String,
    /// Headers for that GET.
    #[serde(default)]
    pub(crate) download_headers: BTreeMap<String, String>,
}

impl SyncDownloadRequest {
    fn from_fields(fields: &Map<String, Value>) -> Result<Self, ApiError> {
        Ok(SyncDownloadRequest {
            download_url: http_url("download_url", &required(fields, "download_url")?)?,
            download_headers: headers(fields, "download_headers")?,
        })
    }

    /// Reads the body.
    pub(crate) fn parse(body: Result<Bytes, BytesRejection>) -> Result<Self, ApiError> {
        Self::from_fields(&object(body)?)
    }

    /// What to fetch.
    pub(crate) fn source(self) -> Source {
        Source::Url {
            url: self.download_url,
            headers: self.download_headers,
        }
    }
}

/// `POST /api/v1/scan/sync/s3` body.
#[derive(Debug, ToSchema)]
pub(crate) struct SyncS3Request {
    #[schema(min_length = 1)]
    pub(crate) bucket: String,
    #[schema(min_length = 1, max_length = 1024)]
    pub(crate) key: String,
    /// The object version; the latest when absent.
    pub(crate) version: Option<String>,
}

impl SyncS3Request {
    fn from_fields(fields: &Map<String, Value>) -> Result<Self, ApiError> {
        Ok(SyncS3Request {
            bucket: required(fields, "bucket")?,
            key: required(fields, "key")?,
            version: string(fields, "version")?.filter(|v| !v.is_empty()),
        })
    }

    /// Reads the body.
    pub(crate) fn parse(body: Result<Bytes, BytesRejection>) -> Result<Self, ApiError> {
        Self::from_fields(&object(body)?)
    }

    /// What to fetch.
    pub(crate) fn source(self) -> Source {
        Source::S3 {
            bucket: self.bucket,
            key: self.key,
            version: self.version,
        }
    }
}

/// `POST /api/v1/scan/async/download` body.
#[derive(Debug, ToSchema)]
pub(crate) struct AsyncDownloadRequest {
    #[serde(flatten)]
    pub(crate) source: SyncDownloadRequest,
    #[serde(flatten)]
    pub(crate) delivery: Delivery,
}

impl AsyncDownloadRequest {
    /// Reads the body.
    pub(crate) fn parse(body: Result<Bytes, BytesRejection>) -> Result<Self, ApiError> {
        let fields = object(body)?;
        Ok(AsyncDownloadRequest {
            source: SyncDownloadRequest::from_fields(&fields)?,
            delivery: Delivery::parse(&fields)?,
        })
    }
}

/// `POST /api/v1/scan/async/s3` body.
#[derive(Debug, ToSchema)]
pub(crate) struct AsyncS3Request {
    #[serde(flatten)]
    pub(crate) source: SyncS3Request,
    #[serde(flatten)]
    pub(crate) delivery: Delivery,
}

impl AsyncS3Request {
    /// Reads the body.
    pub(crate) fn parse(body: Result<Bytes, BytesRejection>) -> Result<Self, ApiError> {
        let fields = object(body)?;
        Ok(AsyncS3Request {
            source: SyncS3Request::from_fields(&fields)?,
            delivery: Delivery::parse(&fields)?,
        })
    }
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

/// `POST /api/v1/events/s3` answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EventsQueued {
    /// Created objects queued as jobs.
    pub(crate) queued: usize,
    /// Records of other events (removals...) and objects in buckets not watched, which need
    /// no scan.
    pub(crate) ignored: usize,
}

/// `POST /api/v1/scan/async/s3/bulk` body.
#[derive(Debug, ToSchema)]
pub(crate) struct BulkRequest {
    /// The bucket to scan.
    #[schema(min_length = 1)]
    pub(crate) bucket: String,
    /// Only keys starting with this; the whole bucket when absent.
    #[serde(default)]
    pub(crate) prefix: String,
    /// Where each object's result is POSTed (signed, as for single jobs).
    pub(crate) callback_url: Option<String>,
    /// Headers for those callbacks.
    #[serde(default)]
    pub(crate) callback_headers: BTreeMap<String, String>,
}

impl BulkRequest {
    /// Reads the body.
    pub(crate) fn parse(body: Result<Bytes, BytesRejection>) -> Result<Self, ApiError> {
        let fields = object(body)?;
        Ok(BulkRequest {
            bucket: required(&fields, "bucket")?,
            prefix: string(&fields, "prefix")?.unwrap_or_default(),
            callback_url: optional_url(&fields, "callback_url")?,
            callback_headers: headers(&fields, "callback_headers")?,
        })
    }
}

/// A buffered body, or why not, in our error shape (axum's own answer is plain text).
pub(crate) fn buffered(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(format!(
                "the JSON body is larger than {} KiB",
                crate::state::MAX_JSON_BODY / 1024
            ))
        } else {
            // A stalled body is the client's timeout (408), not a malformed request.
            match BodyError::from_cause(&rejection) {
                slow @ (BodyError::Stalled(_) | BodyError::TooSlow(_)) => ApiError::from(slow),
                _ => ApiError::BadRequest(format!("the body could not be read: {rejection}")),
            }
        }
    })
}

/// The request body as a JSON object, or a 400 saying what it must be.
fn object(body: Result<Bytes, BytesRejection>) -> Result<Map<String, Value>, ApiError> {
    let body = buffered(body)?;
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(ApiError::BadRequest(
            "the body must be a JSON object".to_owned(),
        )),
        Err(e) => Err(ApiError::BadRequest(format!(
            "the body is not valid JSON: {e}"
        ))),
    }
}

/// An optional string field; `null` counts as absent.
fn string(fields: &Map<String, Value>, name: &str) -> Result<Option<String>, ApiError> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ApiError::BadRequest(format!(
            "{name} must be a string, not {}",
            kind(other)
        ))),
    }
}

fn required(fields: &Map<String, Value>, name: &str) -> Result<String, ApiError> {
    string(fields, name)?
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ApiError::BadRequest(format!("{name} is required")))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An optional headers object: string names to string values, each a valid HTTP header.
fn headers(fields: &Map<String, Value>, name: &str) -> Result<BTreeMap<String, String>, ApiError> {
    let map = match fields.get(name) {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "{name} must be an object of header names to string values, not {}",
                kind(other)
            )));
        }
    };
    map.iter()
        .map(|(key, value)| {
            let Value::String(value) = value else {
                return Err(ApiError::BadRequest(format!(
                    "{name}.{key} must be a string, not {}",
                    kind(value)
                )));
            };
            HeaderName::from_bytes(key.as_bytes()).map_err(|_| {
                ApiError::BadRequest(format!("{name}: {key:?} is not a valid header name"))
            })?;
            if let Some(reason) = storage::fetch::reserved_header(key) {
                return Err(ApiError::BadRequest(format!("{name}: {reason}")));
            }
            HeaderValue::from_str(value).map_err(|_| {
                ApiError::BadRequest(format!(
                    "{name}.{key}: the value is not a valid header value"
                ))
            })?;
            Ok((key.clone(), value.clone()))
        })
        .collect()
}

/// An optional http(s) URL; empty counts as absent.
fn optional_url(fields: &Map<String, Value>, name: &str) -> Result<Option<String>, ApiError> {
    string(fields, name)?
        .filter(|u| !u.trim().is_empty())
        .map(|u| http_url(name, &u))
        .transpose()
}

/// An http(s) URL with a host.
fn http_url(name: &str, value: &str) -> Result<String, ApiError> {
    let value = value.trim();
    let parsed = url::Url::parse(value)
        .map_err(|e| ApiError::BadRequest(format!("{name} {value:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ApiError::BadRequest(format!(
            "{name} must be an http or https URL, not {}",
            parsed.scheme()
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(ApiError::BadRequest(format!("{name} has no host")));
    }
    Ok(value.to_owned())
}
