//! What both servers answer when a request fails: one error type for their handlers and one JSON
//! body (`{"error": ..., "status": ...}`), with the cause of a 500 in the log and a generic
//! sentence for the client.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::body::BodyError;
use storage::StorageError;

/// Why a request failed, as the caller is told.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The request is malformed (a missing part, bad JSON, a bad URL, an invalid field).
    #[error("{0}")]
    BadRequest(String),
    /// No, unknown, bad or expired credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// The credentials may not do this, the storage refused us, or the destination is refused.
    #[error("{0}")]
    Forbidden(String),
    /// No such object, bucket or result.
    #[error("{0}")]
    NotFound(String),
    /// The request clashes with one still pending (a trace id in use).
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than the configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// The body is not of a type the endpoint takes.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Too much at once (scan slots taken, the queue full) or a part we need is away; retry.
    #[error("{0}")]
    Unavailable(String),
    /// The caller has as much queued as its quota allows; retry once some of it is done.
    #[error("{0}")]
    QuotaFull(String),
    /// Too many failed logins: the next attempt may run after this long.
    #[error("too many failed logins; retry in {} s", .0.as_secs().max(1))]
    Throttled(Duration),
    /// A service behind us (storage, the URL's server) failed.
    #[error("{0}")]
    BadGateway(String),
    /// The request body could not be read (stalled, too large, malformed).
    #[error(transparent)]
    Body(#[from] BodyError),
    /// A bug or an unexpected failure; the message is logged, not shown.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// Every scan slot is taken.
    pub fn busy() -> Self {
        ApiError::Unavailable("the server is busy; retry shortly".to_owned())
    }

    /// The status the error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Throttled(_) | ApiError::QuotaFull(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::Body(e) => e.status(),
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = error_response(self.status(), &self.to_string());
        if let ApiError::Throttled(wait) = self
            && let Ok(value) = HeaderValue::from_str(&wait.as_secs().max(1).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// What a storage failure tells the caller: a missing object or bucket is 404, a refusal 403, an
/// invalid name 400, and anything else (the storage failing us) 502, logged here.
impl From<StorageError> for ApiError {
    fn from(err: StorageError) -> Self {
        use StorageError as S;
        match err {
            e @ (S::NoSuchBucket(_) | S::NoSuchKey { .. } | S::NoSuchVersion { .. }) => {
                ApiError::NotFound(e.to_string())
            }
            e @ S::AccessDenied(_) => ApiError::Forbidden(e.to_string()),
            e @ S::InvalidName(_) => ApiError::BadRequest(e.to_string()),
            e @ S::Changed(_) => ApiError::Conflict(e.to_string()),
            e => {
                tracing::warn!(error = %e, "storage failed");
                ApiError::BadGateway(e.public_message())
            }
        }
    }
}

/// Every error answer: `{"error": "...", "status": 400}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
    /// The HTTP status again.
    pub status: u16,
}

/// The error body both APIs answer with: `{"error": message, "status": code}`, with
/// `Retry-After` on 503 and 429 and `WWW-Authenticate: Bearer` on 401. For a 500 the message is
/// the cause, which goes to the log; the caller gets one generic sentence.
pub fn error_response(status: StatusCode, message: &str) -> Response {
    let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = %message, "internal error");
        "internal error; the cause is in the server log"
    } else {
        message
    };
    let mut response = (
        status,
        Json(ErrorBody {
            error: message.to_owned(),
            status: status.as_u16(),
        }),
    )
        .into_response();
    let headers = response.headers_mut();
    if matches!(
        status,
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
    ) {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn an_internal_error_is_logged_and_the_caller_gets_a_generic_sentence() {
        let response =
            ApiError::Internal("the pool at 0x7f3a was poisoned".to_owned()).into_response();
        assert_eq!(response.status(), 500);
        let body = body(response).await;
        assert_eq!(body["status"], 500);
        assert!(
            !body["error"].as_str().unwrap().contains("0x7f3a"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn throttled_says_when_to_come_back_and_busy_says_retry() {
        let throttled = ApiError::Throttled(Duration::from_secs(7)).into_response();
        assert_eq!(throttled.status(), 429);
        assert_eq!(throttled.headers()[header::RETRY_AFTER], "7");
        let busy = ApiError::busy().into_response();
        assert_eq!(busy.status(), 503);
        assert_eq!(busy.headers()[header::RETRY_AFTER], "1");
        assert_eq!(
            body(busy).await["error"],
            "the server is busy; retry shortly"
        );
    }

    #[test]
    fn error_bodies_carry_their_headers() {
        let busy = error_response(StatusCode::SERVICE_UNAVAILABLE, "busy");
        assert_eq!(busy.headers()[header::RETRY_AFTER], "1");
        let refused = error_response(StatusCode::UNAUTHORIZED, "no");
        assert_eq!(refused.headers()[header::WWW_AUTHENTICATE], "Bearer");
        assert!(!refused.headers().contains_key(header::RETRY_AFTER));
    }

    #[test]
    fn storage_failures_map_to_what_the_caller_can_act_on() {
        let missing = ApiError::from(StorageError::NoSuchBucket("b".to_owned()));
        assert_eq!(missing.status(), 404);
        let refused = ApiError::from(StorageError::AccessDenied("b".to_owned()));
        assert_eq!(refused.status(), 403);
    }
}
