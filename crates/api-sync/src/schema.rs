//! The bodies the handlers parse and the answers they return, as Rust types: the handlers
//! deserialize and serialize exactly these, and the OpenAPI document is generated from them, so
//! the two cannot drift. The one exception is [`ScanForm`]: a multipart upload is streamed part
//! by part into the spool, never deserialized into a struct, so its type only describes it.

use scan_core::{Detection, Report};
use serde::{Deserialize, Serialize};
use storage::actions::ActionReport;
use utoipa::ToSchema;

use crate::wire::SyncScanResponse;

/// `POST /api/Token` body.
#[derive(Deserialize, ToSchema)]
pub(crate) struct LoginRequest {
    pub(crate) username: String,
    pub(crate) password: String,
}

/// `POST /api/Token` answer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TokenResponse {
    /// The bearer token for the scan endpoints.
    pub(crate) access_token: String,
    /// Always `Bearer`.
    pub(crate) token_type: &'static str,
    /// Seconds until the token expires.
    pub(crate) expires_in: u64,
}

/// `POST /api/Scan` multipart body: streamed part by part (see the module doc), so this type
/// describes the parts `read_multipart` takes and is never built.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ScanForm {
    /// The file (any part with a filename is accepted when `documents` is absent).
    #[schema(value_type = String, format = Binary)]
    documents: Vec<u8>,
    /// Accepted and ignored, e.g. `NONE`.
    composite: Option<String>,
    /// `bucket/path/to/file.ext`, or a bucket alone for a generated name: where to store the
    /// file when it is clean.
    #[schema(rename = "uploadTo")]
    upload_to: Option<String>,
}

/// The answer of `/api/Scan`, `/api/Scan/Existing` and `/api/Scan/URL`: the contract's verdict
/// body, then additive fields (what was stored or done to the object, and the detail the web
/// page draws its tree from).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ScanResponse {
    #[serde(flatten)]
    pub(crate) verdict: SyncScanResponse,
    /// Where a clean file was stored (with `uploadTo`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) uploaded_to: Option<String>,
    /// Whether it was stored (with `uploadTo`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) stored: Option<bool>,
    /// Why it was not stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) upload_error: Option<String>,
    /// Why acting on an existing object failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tag_error: Option<String>,
    /// What `/api/Scan/Existing` did to the object (with `actions.on_requests`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) object_action: Option<ActionReport>,
    /// Each detection, with the engine that made it.
    pub(crate) detections: Vec<Detection>,
    /// Each part that was not examined, and why.
    pub(crate) problems: Vec<Problem>,
    /// Objects examined: the file and everything expanded from it.
    pub(crate) objects_scanned: u64,
    /// Where the time went.
    pub(crate) timings: Timings,
}

/// One part that was not examined.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Problem {
    /// Path of the object, archive members joined by `/`.
    path: String,
    /// Why it was not examined.
    message: String,
}

/// Where the time of a scan went, in seconds.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Timings {
    /// Receiving, hashing and spooling the file.
    read_seconds: f64,
    /// Expansion and engines.
    scan_seconds: f64,
}

impl From<&Report> for ScanResponse {
    fn from(report: &Report) -> Self {
        ScanResponse {
            verdict: SyncScanResponse::from(report),
            uploaded_to: None,
            stored: None,
            upload_error: None,
            tag_error: None,
            object_action: None,
            detections: report.detections.clone(),
            problems: report
                .problems
                .iter()
                .map(|p| Problem {
                    path: p.path.clone(),
                    message: p.message.clone(),
                })
                .collect(),
            objects_scanned: report.objects,
            timings: Timings {
                read_seconds: report.timings.read_seconds,
                scan_seconds: report.timings.scan_seconds,
            },
        }
    }
}

/// `POST /api/Scan/Existing` body. The names are optional to serde so that a missing one is
/// answered with its own name (`container is required`) rather than serde's wording.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExistingRequest {
    #[schema(required = true, min_length = 1)]
    pub(crate) container: Option<String>,
    #[schema(required = true, min_length = 1, max_length = 1024)]
    pub(crate) object_path: Option<String>,
    /// The object version; the latest when absent.
    pub(crate) version_id: Option<String>,
    /// Who uploaded it, for the log.
    pub(crate) uploaded_by: Option<String>,
}

/// `POST /api/Scan/URL` JSON body (also accepted as a multipart field `url`).
#[derive(Deserialize, ToSchema)]
pub(crate) struct UrlRequest {
    /// The http(s) URL to download and scan.
    #[schema(required = true, min_length = 1)]
    pub(crate) url: Option<String>,
}
