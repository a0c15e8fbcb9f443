//! The shapes of the bodies that the handlers parse by hand (multipart, JSON read field by
//! field) and of the answer they assemble, as the OpenAPI document describes them.

pub(crate) use http_edge::openapi::ErrorBody;
use serde::Serialize;
use utoipa::ToSchema;

/// `POST /api/Token` body.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct LoginRequest {
    username: String,
    password: String,
}

/// `POST /api/Token` answer.
#[derive(ToSchema, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub(crate) struct TokenResponse {
    /// The bearer token for the scan endpoints.
    access_token: String,
    /// Always `Bearer`.
    token_type: String,
    /// Seconds until the token expires.
    expires_in: u64,
}

/// `POST /api/Scan` multipart body.
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

/// The verdict, as `/api/Scan`, `/api/Scan/Existing` and `/api/Scan/URL` answer it.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub(crate) struct ScanResult {
    #[serde(flatten)]
    verdict: crate::wire::SyncScanResponse,
    /// Where a clean file was stored (with `uploadTo`).
    uploaded_to: Option<String>,
    /// Whether it was stored (with `uploadTo`).
    stored: Option<bool>,
    /// Why it was not stored.
    upload_error: Option<String>,
    /// Why tagging an existing object failed.
    tag_error: Option<String>,
    /// What was done to an existing object after its scan (with `actions.on_requests`).
    object_action: Option<http_edge::openapi::ObjectAction>,
}

/// `POST /api/Scan/Existing` body.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub(crate) struct ExistingRequest {
    #[schema(min_length = 1)]
    container: String,
    #[schema(min_length = 1, max_length = 1024)]
    object_path: String,
    version_id: Option<String>,
    uploaded_by: Option<String>,
}

/// `POST /api/Scan/URL` body (also accepted as a multipart field `url`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct UrlRequest {
    #[schema(min_length = 1)]
    url: String,
}
