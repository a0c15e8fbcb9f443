//! What every request shares: [`AppState`] (scanner, store, users, tokens, limits) built from
//! the configuration, and the [`User`] a token names.

use std::sync::Arc;
use std::time::Duration;

use http_edge::{EdgeConfig, StartError};
use scan_core::Scanner;
use storage::ObjectStore;
use storage::fetch::Fetcher;
use tokio::sync::Semaphore;

use crate::auth::{Throttle, Tokens};
use crate::config::Config;
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
        let (store, fetcher) = http_edge::open_storage(&config.storage, &config.fetch).await?;
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

/// Who is calling, as the token said, and what the user may reach.
#[derive(Debug, Clone)]
pub(crate) struct User {
    /// The user name.
    pub(crate) name: String,
    /// What it may reach.
    pub(crate) scopes: crate::config::UserScopes,
}
