//! The server as a library: [`router`] and [`app`] over the shared [`AppState`], and [`run`]
//! with a shutdown signal. Paths are matched case-insensitively (clients use `/api/Scan` and `/api/scan`).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use http_edge::ApiError;

use crate::handlers;
use crate::state::{AppState, User};

/// All routes (lower-case; see [`app`] for the case-insensitive wrapper).
pub fn router(state: Arc<AppState>) -> Router {
    let protected = Router::new()
        .route("/api/scan", post(handlers::scan))
        .route("/api/scan/existing", post(handlers::scan_existing))
        .route("/api/scan/url", post(handlers::scan_url))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            require_token,
        ));
    Router::new()
        .route("/", get(handlers::page))
        .route("/assets/app.js", get(handlers::page_script))
        .route("/assets/app.css", get(handlers::page_style))
        .route("/api/token", post(handlers::token))
        .route("/health", get(handlers::health))
        .route("/metrics", get(handlers::metrics))
        .route("/openapi.json", get(crate::openapi::serve))
        .merge(protected)
        .with_state(state)
}

async fn require_token(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::Unauthorized("missing Authorization: Bearer <accessToken>".to_owned())
        })?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "the Authorization header must be Bearer <accessToken>".to_owned(),
            )
        })?;
    // One answer for every way a token is wrong; the reason goes to the log only, so the
    // parser's words never reach the caller.
    let refused = |why: &str| {
        tracing::info!(reason = why, "token refused");
        ApiError::Unauthorized("invalid or expired token".to_owned())
    };
    let claims = state
        .tokens
        .verify(token.trim())
        .map_err(|e| refused(&e.to_string()))?;
    // A user removed from the users file since the token was issued is logged out.
    if !state.users.current().contains(&claims.sub) {
        return Err(refused("the token's user no longer exists"));
    }
    tracing::debug!(user = ?claims.sub, "authenticated");
    let scopes = crate::config::UserScopes::of(&state.scopes, &claims.sub);
    let mut request = request;
    request.extensions_mut().insert(User {
        name: claims.sub,
        scopes,
    });
    Ok(next.run(request).await)
}

/// The router with paths lower-cased before routing, ready to serve.
pub fn app(
    state: Arc<AppState>,
) -> impl tower::Service<Request, Response = Response, Error = std::convert::Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    use tower::Layer;
    let lowercase = tower::util::MapRequestLayer::new(|mut request: Request| {
        let path = request.uri().path();
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            let lowered = path.to_ascii_lowercase();
            let rebuilt = match request.uri().query() {
                Some(query) => format!("{lowered}?{query}"),
                None => lowered,
            };
            if let Ok(uri) = rebuilt.parse() {
                *request.uri_mut() = uri;
            }
        }
        request
    });
    lowercase.layer(router(state))
}

/// Runs the service until `shutdown` resolves, then stops accepting and lets in-flight requests
/// finish (for up to `http.drain_secs`). (As in verdict-async, `run` is the whole service and
/// [`http_edge::serve`] the listener under it.)
pub async fn run(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(address = %listener.local_addr()?, fingerprint = %state.scanner.fingerprint(), "verdict-sync listening");
    let refresher = tokio::spawn(Arc::clone(&state.reloader).run(state.reload.clone()));
    let http = state.http.clone();
    let idle = state.upload_idle_timeout;
    let served = http_edge::serve(listener, app(state), &http, idle, shutdown).await;
    refresher.abort();
    served
}
