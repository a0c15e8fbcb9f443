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
    /// No such result (not finished, unknown or expired).
    #[error("{0}")]
    NotFound(String),
    /// A job with this trace id is still pending.
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than the configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// The client stopped sending in the middle of the body.
    #[error("{0}")]
    Timeout(String),
    /// Too much at once (queue full, scans busy) or the queue is unreachable; retry later.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected failure; the message is logged, not shown.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(error = %cause, "internal error");
                "internal error; the cause is in the server log".to_owned()
            }
            other => other.to_string(),
        };
        storage::edge::error_response(status, &message)
    }
}

impl From<storage::edge::body::BodyError> for ApiError {
    fn from(err: storage::edge::body::BodyError) -> Self {
        use storage::edge::body::BodyError as B;
        match err {
            e @ B::Stalled(_) => ApiError::Timeout(e.to_string()),
            e @ B::TooLarge { .. } => ApiError::TooLarge(e.to_string()),
            e @ B::Spool(_) => ApiError::Internal(e.to_string()),
            e => ApiError::BadRequest(e.to_string()),
        }
    }
}

impl From<crate::StoreError> for ApiError {
    fn from(err: crate::StoreError) -> Self {
        tracing::error!(error = %err, "job store failed");
        ApiError::Unavailable("the job queue is unavailable; retry shortly".to_owned())
    }
}
