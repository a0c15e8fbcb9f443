//! One error type for every handler: a stable JSON body (`{"error": ..., "status": ...}`), the
//! real cause of a 5xx in the log and a generic sentence for the client.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// What went wrong with a request.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// The request is malformed or a field is invalid.
    #[error("{0}")]
    BadRequest(String),
    /// No or unknown API key.
    #[error("{0}")]
    Unauthorized(String),
    /// The storage refused us (bucket not ours to list).
    #[error("{0}")]
    Forbidden(String),
    /// No such result (not finished, unknown or expired).
    #[error("{0}")]
    NotFound(String),
    /// A job with this trace id is still pending.
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than the configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// Too much at once (queue full, scans busy) or the queue is unreachable; retry later.
    #[error("{0}")]
    Unavailable(String),
    /// The request body could not be read (stalled, too large, malformed).
    #[error(transparent)]
    Body(#[from] storage::edge::body::BodyError),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Body(e) => e.status(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        storage::edge::error_response(self.status(), &self.to_string())
    }
}

impl From<crate::StoreError> for ApiError {
    fn from(err: crate::StoreError) -> Self {
        tracing::error!(error = %err, "job store failed");
        ApiError::Unavailable("the job queue is unavailable; retry shortly".to_owned())
    }
}
