//! The server as a library: [`AppState::from_config`], [`router`], and [`serve`] with a shutdown
//! signal. Paths are matched case-insensitively (clients use `/api/Scan` and `/api/scan`).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use scan_core::Scanner;
use storage::ObjectStore;
use storage::edge::{ApiError, EdgeConfig, StartError};
use storage::fetch::Fetcher;
use tokio::sync::Semaphore;

use crate::auth::{Throttle, Tokens};
use crate::config::Config;
use crate::handlers;
use crate::metrics::Metrics;
use crate::slots::ScanSlots;
use crate::users::UserStore;

/// Everything a request needs, shared by all of them.
pub struct AppState {
    /// The scanner (engines, limits, spool).
    pub scanner: Scanner,
    /// Where clean uploads go and existing objects come from.
    pub store: Arc<dyn ObjectStore>,
    /// URL downloads.
    pub fetcher: Fetcher,
    /// Users (re-read when the file changes).
    pub users: UserStore,
    /// Tokens.
    pub tokens: Tokens,
    /// Failed-login slowdown.
    pub throttle: Throttle,
    /// Bounds scans at once.
    pub scans: ScanSlots,
    /// Bounds password checks at once: argon2's memory is the cost of a login, so parallel
    /// wrong guesses cannot grow the process without bound.
    pub password_checks: Arc<Semaphore>,
    /// How long a login waits for a password check.
    pub login_wait: Duration,
    /// argon2's working memory, one set per password check that may run.
    pub check_memory: crate::users::CheckMemory,
    /// Metrics.
    pub metrics: Metrics,
    /// What is done to existing objects once scanned (when `on_requests`).
    pub actions: storage::actions::ActionsConfig,
    /// Objects the actions leave alone.
    pub filters: storage::filters::FiltersConfig,
    /// What each user may reach (see [`crate::config::UserScopes::of`]).
    pub scopes: std::collections::BTreeMap<String, crate::config::UserScopes>,
    /// How long an upload may stall.
    pub upload_idle_timeout: Duration,
    /// Keeps the scanner's rules current.
    pub reloader: Arc<engines::Reloader>,
    /// When rules are reloaded and remote engines polled.
    pub reload: engines::ReloadPolicy,
    /// The listener's limits and the metrics token.
    pub http: EdgeConfig,
}

impl AppState {
    /// Builds engines, storage, users and keys from the configuration; fails before any socket
    /// opens if something is wrong.
    pub async fn from_config(config: &Config) -> Result<Arc<Self>, StartError> {
        let cache = config
            .cache
            .open_embedded(&config.users_file.with_file_name("verdict-sync-cache.redb"))
            .map_err(|e| StartError::failed("verdict cache", e))?;
        let builder = engines::scanner_builder(
            &config.engines,
            config.limits.clone(),
            config.spool.policy(config.max_body_bytes),
        )
        .map_err(|e| StartError::failed("engines", e))?;
        let scanner = match cache {
            Some(cache) => builder.cache(cache),
            None => builder,
        }
        .build()
        .map_err(|e| StartError::failed("engines", e))?;
        let reloader = Arc::new(engines::Reloader::new(scanner.clone(), &config.engines));
        scanner.poll_engines(Duration::from_secs(5)).await;
        engines::log_engines(&scanner);
        let (store, fetcher) = storage::edge::open_storage(&config.storage, &config.fetch).await?;
        let users = UserStore::open(&config.users_file).map_err(|e| {
            StartError::failed(format!("users file {}", config.users_file.display()), e)
        })?;
        if users.current().is_empty() {
            tracing::warn!(
                users_file = %config.users_file.display(),
                "no users yet: add one with `verdict-sync user add NAME --users {}` (the password is read from stdin); logins fail until one exists, and the file is re-read when it changes",
                config.users_file.display()
            );
        }
        let key = signing_key(config)?;
        let mut actions = config.actions.clone();
        actions.on_requests |= config.tag_existing;
        actions
            .check()
            .map_err(|e| StartError::Invalid(e.to_string()))?;
        let metrics = Metrics::default();
        Ok(Arc::new(AppState {
            scanner,
            reloader,
            reload: config.reload.clone(),
            store,
            fetcher,
            users,
            tokens: Tokens::new(&key, Duration::from_secs(config.token.ttl_secs)),
            throttle: Throttle::default(),
            scans: ScanSlots::new(config.max_concurrent_scans, metrics.slots_taken.clone()),
            password_checks: Arc::new(Semaphore::new(match config.max_concurrent_logins {
                0 => std::thread::available_parallelism().map_or(2, usize::from),
                n => n,
            })),
            login_wait: Duration::from_millis(config.login_wait_ms),
            check_memory: crate::users::CheckMemory::default(),
            metrics,
            actions,
            filters: config.filters.clone(),
            scopes: config.scopes.clone(),
            upload_idle_timeout: Duration::from_secs(config.upload_idle_timeout_secs.max(1)),
            http: config.http.clone(),
        }))
    }
}

fn signing_key(config: &Config) -> Result<Vec<u8>, StartError> {
    if let Some(file) = &config.token.secret_file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| StartError::failed(format!("token secret file {}", file.display()), e))?;
        return non_trivial(text.trim_end().as_bytes().to_vec());
    }
    if let Some(secret) = &config.token.secret {
        return non_trivial(secret.as_bytes().to_vec());
    }
    tracing::warn!(
        "no token secret configured: using a random key, so tokens die with this process and other replicas reject them; set token.secret_file (or VERDICT_TOKEN_SECRET_FILE)"
    );
    let mut key = vec![0u8; 32];
    rand::fill(&mut key[..]);
    Ok(key)
}

fn non_trivial(key: Vec<u8>) -> Result<Vec<u8>, StartError> {
    if key.len() < 16 {
        return Err(StartError::Invalid(
            "the token secret must be at least 16 bytes".to_owned(),
        ));
    }
    Ok(key)
}

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
        .route("/openapi.json", get(handlers::openapi))
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

/// Who is calling, as the token said, and what the user may reach.
#[derive(Debug, Clone)]
pub(crate) struct User {
    /// The user name.
    pub(crate) name: String,
    /// What it may reach.
    pub(crate) scopes: crate::config::UserScopes,
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
/// [`storage::edge::serve`] the listener under it.)
pub async fn run(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(address = %listener.local_addr()?, fingerprint = %state.scanner.fingerprint(), "verdict-sync listening");
    let refresher = tokio::spawn(Arc::clone(&state.reloader).run(state.reload.clone()));
    let http = state.http.clone();
    let idle = state.upload_idle_timeout;
    let served = storage::edge::serve(listener, app(state), &http, idle, shutdown).await;
    refresher.abort();
    served
}
