//! What requests and workers share: [`AppState`] (scanner, queue, results, keys, store)
//! built from the configuration, the [`Settings`] they read, and the [`Caller`] a key names.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use http_edge::{EdgeConfig, StartError};
use scan_core::Scanner;
use storage::ObjectStore;
use storage::fetch::Fetcher;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::callback::CallbackPolicy;
use crate::config::{Config, QueueConfig};
use crate::error::ApiError;
use crate::keys::{ApiKeys, Grant};
use crate::metrics::Metrics;
use crate::source::Sources;
use crate::store::{JobQueue, ResultStore};
use crate::{EmbeddedStore, RedisStore};

/// Largest JSON body of the submit endpoints (custom data is at most 16 KB of it).
pub(crate) const MAX_JSON_BODY: usize = 256 * 1024;

/// Tunables the workers and handlers read.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Concurrent jobs in this process.
    pub workers: usize,
    /// Claims not renewed for this long are taken over.
    pub lease: Duration,
    /// Claims per job before giving up.
    pub max_attempts: u32,
    /// Results stay this long.
    pub result_ttl: Duration,
    /// Drain time on shutdown.
    pub shutdown_grace: Duration,
    /// Download tries for transient failures.
    pub download_attempts: u32,
    /// First download retry wait.
    pub download_backoff: Duration,
    /// Base of `Location` headers, when configured.
    pub public_url: Option<String>,
    /// How long a request body may stall.
    pub upload_idle_timeout: Duration,
    /// The listener's limits and the metrics token.
    pub http: EdgeConfig,
    /// Whether every key sees (and may replace) every trace id.
    pub shared_trace_ids: bool,
    /// SQS queues of bucket events to consume.
    pub sqs: crate::config::SqsConfig,
    /// Objects listed per bulk scan page.
    pub bulk_page_size: usize,
    /// Which buckets and prefixes events are taken for.
    pub events: crate::config::EventsConfig,
    /// What happens to a bucket event's object after its scan.
    pub actions: storage::actions::ActionsConfig,
    /// Bucket events' objects to skip.
    pub filters: crate::config::FiltersConfig,
    /// When rules are reloaded and remote engines polled.
    pub reload: engines::ReloadPolicy,
    /// Re-verdicts of stored objects when the rules change.
    pub rescan: crate::config::RescanConfig,
}

/// Everything requests and workers share.
pub struct AppState {
    /// The scanner.
    pub scanner: Scanner,
    /// Guarded downloads and callbacks.
    pub fetcher: Fetcher,
    /// Where S3 jobs' objects come from.
    pub objects: Arc<dyn ObjectStore>,
    /// The job queue.
    pub queue: Arc<dyn JobQueue>,
    /// Results for polling.
    pub results: Arc<dyn ResultStore>,
    /// Bulk scans and their counts.
    pub bulks: Arc<dyn crate::bulk::BulkStore>,
    /// Keeps the scanner's rules current.
    pub reloader: Arc<engines::Reloader>,
    /// Who may call.
    pub keys: ApiKeys,
    /// How callbacks are sent.
    pub callbacks: CallbackPolicy,
    /// Tunables.
    pub settings: Settings,
    pub(crate) metrics: Metrics,
    sync_scans: Arc<Semaphore>,
    /// Spaces the scans of re-verdicts.
    pub(crate) rescan_pace: crate::pace::Pace,
    /// The status page's engine rows and when they were checked.
    pub(crate) engine_health: tokio::sync::Mutex<Option<(std::time::Instant, String)>>,
}

impl AppState {
    /// Builds engines, storage, the queue and keys from the configuration; fails before any
    /// socket opens if something is wrong.
    pub async fn from_config(config: &Config) -> Result<Arc<Self>, StartError> {
        let keys_file =
            match &config.api_keys_file {
                Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                    StartError::failed(format!("API keys file {}", path.display()), e)
                })?),
                None => None,
            };
        config
            .actions
            .check()
            .map_err(|e| StartError::Invalid(e.to_string()))?;
        config
            .events
            .check_against(&config.actions)
            .map_err(StartError::Invalid)?;
        config.rescan.check().map_err(StartError::Invalid)?;
        let quota = config.max_queued_jobs_per_key.max(1);
        let plain = Grant {
            id: String::new(),
            name: String::new(),
            scan: storage::scope::Scopes::any(),
            bulk: storage::scope::Scopes::buckets(&config.events.buckets, &config.events.prefixes),
            events: storage::scope::Scopes::default(),
            max_queued_jobs: quota,
            callback_secret: None,
        };
        let keys = ApiKeys::plain(config.api_keys.as_deref(), keys_file.as_deref(), &plain)
            .with_entries(&config.keys, quota, |path| std::fs::read_to_string(path))
            .map_err(|e| StartError::Invalid(e.to_string()))?;
        if keys.is_empty() {
            return Err(StartError::Invalid(
                "no API keys: set api_keys (comma-separated), api_keys_file or [[keys]] in the config, or VERDICT_API_KEYS".to_owned(),
            ));
        }
        let scanner = engines::scanner_builder(
            &config.engines,
            config.limits.clone(),
            config.spool.policy(config.max_body_bytes),
        )
        .map_err(|e| StartError::failed("engines", e))?;
        let (objects, fetcher) = http_edge::open_storage(&config.storage, &config.fetch).await?;
        let lease = Duration::from_secs(config.job_lease_secs.max(1));
        type Stores = (
            Arc<dyn JobQueue>,
            Arc<dyn ResultStore>,
            Arc<dyn crate::bulk::BulkStore>,
        );
        let mut cache: Option<Arc<dyn scan_core::VerdictCache>> = None;
        let (queue, results, bulks): Stores = match &config.queue {
            QueueConfig::Embedded { path } => {
                cache = config
                    .cache
                    .open_embedded(&path.with_extension("cache.redb"))
                    .map_err(|e| StartError::failed("verdict cache", e))?;
                let store = EmbeddedStore::open(path, config.max_queued_jobs).map_err(|e| {
                    StartError::failed(format!("embedded queue {}", path.display()), e)
                })?;
                tracing::info!(path = %path.display(), "jobs and results in the embedded store");
                if config.workers == 0 {
                    tracing::warn!(
                        "workers = 0 with the embedded queue: jobs are accepted but nothing here runs them (only this process can open the file); use Redis for separate front ends and workers"
                    );
                }
                (
                    Arc::new(store.clone()),
                    Arc::new(store.clone()),
                    Arc::new(store),
                )
            }
            QueueConfig::Redis { url, namespace } => {
                let consumer = format!(
                    "{}-{}-{}",
                    hostname(),
                    std::process::id(),
                    hex::encode(rand::random::<[u8; 4]>())
                );
                let store = Arc::new(
                    RedisStore::open(url, namespace, &consumer, lease, config.max_queued_jobs)
                        .await
                        .map_err(|e| StartError::failed("Redis", e))?,
                );
                tracing::info!(namespace, consumer, "jobs and results in Redis");
                if config.cache.enabled {
                    cache = Some(Arc::new(store.verdicts(config.cache.ttl())));
                    tracing::info!(ttl_secs = config.cache.ttl_secs, "verdict cache in Redis");
                }
                (store.clone(), store.clone(), store)
            }
        };
        let scanner = match cache {
            Some(cache) => scanner.cache(cache),
            None => scanner,
        }
        .build()
        .map_err(|e| StartError::failed("engines", e))?;
        let reloader = Arc::new(engines::Reloader::new(scanner.clone(), &config.engines));
        scanner.poll_engines(Duration::from_secs(5)).await;
        engines::log_engines(&scanner);
        let callbacks = CallbackPolicy {
            secret: callback_secret(config)?,
            timeout: Duration::from_secs(config.callback.timeout_secs.max(1)),
            retry_for: Duration::from_secs(config.callback.retry_for_secs),
            first_backoff: Duration::from_millis(config.callback.first_backoff_ms.max(1)),
            max_backoff: Duration::from_secs(config.callback.max_backoff_secs.max(1)),
        };
        Ok(Arc::new(AppState {
            scanner,
            reloader,
            fetcher,
            objects,
            queue,
            results,
            bulks,
            keys,
            callbacks,
            settings: Settings {
                workers: config.workers,
                lease,
                max_attempts: config.max_attempts.max(1),
                result_ttl: Duration::from_secs(config.result_ttl_secs.max(1)),
                shutdown_grace: Duration::from_secs(config.shutdown_grace_secs),
                download_attempts: config.download.attempts.max(1),
                download_backoff: Duration::from_millis(config.download.first_backoff_ms),
                public_url: config
                    .public_url
                    .as_ref()
                    .map(|u| u.trim_end_matches('/').to_owned()),
                upload_idle_timeout: Duration::from_secs(config.upload_idle_timeout_secs.max(1)),
                http: config.http.clone(),
                shared_trace_ids: config.shared_trace_ids,
                sqs: config.events.sqs.clone(),
                events: config.events.clone(),
                bulk_page_size: config.bulk_page_size.clamp(1, 1000),
                actions: config.actions.clone(),
                filters: config.filters.clone(),
                reload: config.reload.clone(),
                rescan: config.rescan.clone(),
            },
            rescan_pace: crate::pace::Pace::new(config.rescan.max_objects_per_sec),
            metrics: Metrics::default(),
            sync_scans: Arc::new(Semaphore::new(config.max_concurrent_sync_scans.max(1))),
            engine_health: tokio::sync::Mutex::new(None),
        }))
    }

    /// The fingerprint of the engine set new scans start with (see
    /// [`storage::FINGERPRINT_TAG`]).
    pub(crate) fn fingerprint(&self) -> String {
        self.scanner.fingerprint()
    }

    pub(crate) fn sources(&self) -> Sources<'_> {
        Sources {
            scanner: &self.scanner,
            fetcher: &self.fetcher,
            objects: self.objects.as_ref(),
            attempts: self.settings.download_attempts,
            first_backoff: self.settings.download_backoff,
        }
    }

    /// A slot for a synchronous scan, or 503.
    pub(crate) fn sync_slot(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        Arc::clone(&self.sync_scans)
            .try_acquire_owned()
            .map_err(|_| ApiError::Unavailable("too many scans at once; retry shortly".to_owned()))
    }

    /// The quota of queued jobs of the key with id `key_id` (`None` for the service's own jobs,
    /// which only the queue's size bounds).
    pub(crate) fn quota_of(&self, key_id: Option<&str>) -> Option<usize> {
        let key_id = key_id?;
        Some(
            self.keys
                .by_id(key_id)
                .map_or(0, |grant| grant.max_queued_jobs),
        )
    }

    /// Scans `content` as `name` (or takes the verdict the cache gave for it), counted in the
    /// metrics.
    pub(crate) async fn scan(
        &self,
        name: &str,
        content: crate::source::Content,
    ) -> scan_core::Report {
        let report = match content {
            crate::source::Content::Read(input) => {
                let _counted = http_edge::InFlight::enter(&self.metrics.scans.in_flight);
                self.scanner.scan_input(name, Arc::new(input)).await
            }
            crate::source::Content::Cached(report) => *report,
        };
        self.metrics.scans.record(&report);
        report
    }

    /// Where clients reach us: the configured public URL, or `http://<Host>` when the `Host`
    /// header is a plain host and optional port (anything else, such as
    /// `evil.example/phish?` or `user@host`, would put another address in `Location`: `None`).
    pub(crate) fn base_url(&self, headers: &HeaderMap) -> Option<String> {
        if let Some(url) = &self.settings.public_url {
            return Some(url.clone());
        }
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        let authority: axum::http::uri::Authority = host.parse().ok()?;
        (authority.as_str() == host && !host.contains('@') && !authority.host().is_empty())
            .then(|| format!("http://{host}"))
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned())
}

/// The callback key: configured, or read from (and, the first time, generated into) its file.
fn callback_secret(config: &Config) -> Result<Vec<u8>, StartError> {
    if let Some(secret) = &config.callback.secret {
        if secret.len() < 16 {
            return Err(StartError::Invalid(
                "callback.secret must be at least 16 bytes".to_owned(),
            ));
        }
        return Ok(secret.as_bytes().to_vec());
    }
    let path = &config.callback.secret_file;
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let secret = text.trim_end().as_bytes().to_vec();
            if secret.len() < 16 {
                return Err(StartError::Invalid(format!(
                    "the callback secret in {} must be at least 16 bytes",
                    path.display()
                )));
            }
            Ok(secret)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = hex::encode(rand::random::<[u8; 32]>());
            write_private(path, &secret).map_err(|e| {
                StartError::failed(format!("writing callback secret {}", path.display()), e)
            })?;
            tracing::warn!(
                path = %path.display(),
                "generated a callback signing key; give it to your callback receivers (and the same file to every instance)"
            );
            Ok(secret.into_bytes())
        }
        Err(e) => Err(StartError::failed(
            format!("callback secret file {}", path.display()),
            e,
        )),
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")
}

/// Who is calling, as the key middleware found it.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The scope of the caller's trace ids: its key's id; `None` when trace ids are shared by
    /// all keys.
    pub(crate) scope: Option<String>,
    /// What its key may do.
    pub(crate) grant: Arc<Grant>,
}

impl Caller {
    /// Refuses (403) an object its key may not scan.
    pub(crate) fn may_scan(&self, bucket: &str, key: &str) -> Result<(), ApiError> {
        if self.grant.scan.allows(bucket, key) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this API key may not scan objects in s3://{bucket}/{key}"
            )))
        }
    }
}
