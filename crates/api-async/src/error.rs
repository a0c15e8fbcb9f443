//! How the job store's failures reach a caller: as the shared edge's 503, never as a 500.

pub(crate) use http_edge::ApiError;

impl From<crate::StoreError> for ApiError {
    fn from(err: crate::StoreError) -> Self {
        tracing::error!(error = %err, "job store failed");
        ApiError::Unavailable("the job queue is unavailable; retry shortly".to_owned())
    }
}
