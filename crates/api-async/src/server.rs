//! The service as a library: [`router`] over the shared [`AppState`], and [`run`], which serves
//! HTTP and runs the workers until a shutdown signal, then drains both.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::state::{AppState, Caller, MAX_JSON_BODY};
use crate::{handlers, worker};

/// All routes.
pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route(
            "/api/v1/scan/async/download",
            post(handlers::async_download),
        )
        .route("/api/v1/scan/async/s3", post(handlers::async_s3))
        .route("/api/v1/scan/async/result", get(handlers::async_result))
        .route("/api/v1/scan/sync/download", post(handlers::sync_download))
        .route("/api/v1/scan/sync/s3", post(handlers::sync_s3))
        .route("/api/v1/test", get(handlers::test))
        .route("/api/v1/events/s3", post(handlers::s3_events))
        .route("/api/v1/scan/async/s3/bulk", post(handlers::bulk_start))
        .route(
            "/api/v1/scan/async/s3/bulk/{id}",
            get(handlers::bulk_status),
        )
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        // The binary body is streamed to the spool, which enforces max_body_bytes itself.
        .merge(
            Router::new()
                .route("/api/v1/scan/sync/binary", post(handlers::sync_binary))
                .layer(DefaultBodyLimit::disable()),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            require_key,
        ));
    Router::new()
        .route("/", get(handlers::status_page))
        .route("/health", get(handlers::health))
        .route("/metrics", get(handlers::metrics))
        .route("/openapi.json", get(crate::openapi::serve))
        .merge(api)
        .with_state(state)
}

async fn require_key(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let headers = request.headers();
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let grant = state
        .keys
        .bearer(text(axum::http::header::AUTHORIZATION.as_str()))
        .or_else(|| text("x-api-key").and_then(|key| state.keys.find(key)))
        .cloned();
    let Some(grant) = grant else {
        return Err(ApiError::Unauthorized(
            "missing or unknown API key; send Authorization: Bearer <api key>".to_owned(),
        ));
    };
    let mut request = request;
    // With shared trace ids every key acts in one scope.
    request.extensions_mut().insert(Caller {
        scope: (!state.settings.shared_trace_ids).then(|| grant.id.clone()),
        grant,
    });
    Ok(next.run(request).await)
}

/// Serves HTTP on `listener` and runs the workers until `shutdown` resolves; then stops
/// accepting, lets in-flight requests finish, and drains the workers: running jobs get
/// `shutdown_grace_secs`, and the rest go back to the queue.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stop = CancellationToken::new();
    let workers = (state.settings.workers > 0)
        .then(|| tokio::spawn(worker::run(Arc::clone(&state), stop.clone())));
    let events = (!state.settings.sqs.queue_urls.is_empty()).then(|| {
        tokio::spawn(crate::sqs::run(
            Arc::clone(&state),
            state.settings.sqs.clone(),
            stop.clone(),
        ))
    });
    let rescans = tokio::spawn(crate::rescan::run(Arc::clone(&state)));
    let refresher = tokio::spawn(Arc::clone(&state.reloader).run(state.settings.reload.clone()));
    tracing::info!(
        address = %listener.local_addr()?,
        workers = state.settings.workers,
        fingerprint = %state.fingerprint(),
        "verdict-async listening"
    );
    let signal = {
        let stop = stop.clone();
        async move {
            shutdown.await;
            stop.cancel();
        }
    };
    let http = state.settings.http.clone();
    let idle = state.settings.upload_idle_timeout;
    let served = http_edge::serve(listener, router(state), &http, idle, signal).await;
    stop.cancel();
    refresher.abort();
    rescans.abort();
    if let Some(workers) = workers {
        let _ = workers.await;
    }
    if let Some(events) = events {
        let _ = events.await;
    }
    served
}
