//! One error type for every handler: a stable JSON body (`{"error": ..., "status": ...}`), the
//! real cause of a 5xx in the log and a generic sentence for the client.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// What went wrong with a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (missing part, bad JSON, bad URL...).
    #[error("{0}")]
    BadRequest(String),
    /// No, bad or expired credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// The credentials may not do this, or the destination is refused.
    #[error("{0}")]
    Forbidden(String),
    /// The object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The body is larger than the configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// Too many scans at once.
    #[error("the server is busy; retry shortly")]
    Busy,
    /// Too many failed logins: the next attempt may run after this long.
    #[error("too many failed logins; retry in {} s", .0.as_secs().max(1))]
    Throttled(std::time::Duration),
    /// A service behind us (storage, the URL's server) failed.
    #[error("{0}")]
    BadGateway(String),
    /// The request body could not be read (stalled, too large, malformed).
    #[error(transparent)]
    Body(#[from] storage::edge::body::BodyError),
    /// A bug or an unexpected failure; the message is logged, not shown.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::Body(e) => e.status(),
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = storage::edge::error_response(self.status(), &self.to_string());
        if let ApiError::Throttled(wait) = self {
            let secs = wait.as_secs().max(1).to_string();
            if let Ok(value) = axum::http::HeaderValue::from_str(&secs) {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, value);
            }
        }
        response
    }
}

impl From<storage::StorageError> for ApiError {
    fn from(err: storage::StorageError) -> Self {
        use storage::StorageError as S;
        match err {
            e @ (S::NoSuchBucket(_) | S::NoSuchKey { .. } | S::NoSuchVersion { .. }) => {
                ApiError::NotFound(e.to_string())
            }
            e @ S::AccessDenied(_) => ApiError::Forbidden(e.to_string()),
            e @ S::InvalidName(_) => ApiError::BadRequest(e.to_string()),
            e => {
                tracing::warn!(error = %e, "storage failed");
                ApiError::BadGateway(e.public_message())
            }
        }
    }
}
