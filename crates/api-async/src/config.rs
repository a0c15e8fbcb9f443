//! Configuration: a TOML file (unknown keys refused) with environment overrides for the common
//! settings, validated into the running state before any socket opens.

use std::net::SocketAddr;
use std::path::PathBuf;

use engines::EngineConfig;
use engines::SpoolConfig;
use http_edge::EdgeConfig;
use http_edge::config_file::{self, ConfigFileError, ServiceConfig, Vars};
use scan_core::Limits;
use serde::Deserialize;
use storage::StorageConfig;
use storage::fetch::FetchConfig;
pub use storage::filters::FiltersConfig;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Allowed API keys, comma-separated (as the original product takes them).
    pub api_keys: Option<String>,
    /// A file of API keys, one per line (`#` comments allowed); re-read at start only.
    pub api_keys_file: Option<PathBuf>,
    /// Keys with their own grants: what each may scan, bulk-scan and post events for, its
    /// quota and callback key (see [`crate::keys`]).
    pub keys: Vec<crate::keys::KeyConfig>,
    /// Jobs one key may have queued at once, unless its `[[keys]]` entry says otherwise; past
    /// it, its submissions get 429 and its bulk scans wait.
    pub max_queued_jobs_per_key: usize,
    /// The address clients reach this service at, for `Location` headers
    /// (`https://scan.example.com`); taken from each request's `Host` when unset.
    pub public_url: Option<String>,
    /// Where jobs and results live.
    pub queue: QueueConfig,
    /// Jobs this process works on at once; 0 makes it an API-only front end.
    pub workers: usize,
    /// Jobs queued at most (across all instances with Redis); more are answered 503.
    pub max_queued_jobs: usize,
    /// A claimed job whose worker has not renewed it for this long is taken over (Redis).
    pub job_lease_secs: u64,
    /// A job claimed this many times without finishing (its worker keeps dying) is given up with
    /// `status: "no"`.
    pub max_attempts: u32,
    /// How long results stay pollable.
    pub result_ttl_secs: u64,
    /// On shutdown, how long in-flight jobs may take before they are given back to the queue.
    pub shutdown_grace_secs: u64,
    /// Retries of failed downloads.
    pub download: DownloadConfig,
    /// Callback delivery.
    pub callback: CallbackConfig,
    /// Largest file scanned, bytes: a `/api/v1/scan/sync/binary` body (413 past it), a download
    /// or an S3 object (`status: "no"` past it).
    pub max_body_bytes: Option<u64>,
    /// Synchronous scans at once; more are answered 503.
    pub max_concurrent_sync_scans: usize,
    /// A `/api/v1/scan/sync/binary` body that sends nothing for this many seconds is ended with
    /// 408, so a stalled client cannot hold a scan slot.
    pub upload_idle_timeout_secs: u64,
    /// Expansion limits.
    pub limits: Limits,
    /// Spooling.
    pub spool: SpoolConfig,
    /// Where S3 jobs' objects come from.
    pub storage: StorageConfig,
    /// Downloads (and which non-public ranges callbacks and downloads may reach).
    pub fetch: FetchConfig,
    /// Engines; the embedded YARA engine when empty.
    pub engines: Vec<EngineConfig>,
    /// Connection limits, timeouts, and the metrics token.
    pub http: EdgeConfig,
    /// Trace ids belong to the API key that submitted them: another key polls 404 and may reuse
    /// the same id for its own job. Set this when several keys (one per client service, say)
    /// must poll each other's results; then every key shares one space of trace ids.
    pub shared_trace_ids: bool,
    /// Objects a bulk scan lists per page (at most 1,000, S3's own page size). Each page's
    /// jobs are queued before the next page is listed, so the listing keeps about one page
    /// ahead of the workers.
    pub bulk_page_size: usize,
    /// Bucket events to consume.
    pub events: EventsConfig,
    /// What happens to a bucket event's object after its scan.
    pub actions: storage::actions::ActionsConfig,
    /// Bucket events' objects to skip.
    pub filters: FiltersConfig,
    /// Rule reloads: the file watch's period, SIGHUP, how often clamd is asked for its version.
    pub reload: engines::ReloadPolicy,
    /// The verdict cache: beside the embedded queue's file, or in Redis with the Redis queue.
    pub cache: storage::verdict_cache::CacheConfig,
    /// Re-verdicts: what is scanned again when the rules change.
    pub rescan: RescanConfig,
}

/// The `[events]` section.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Only events for these buckets are scanned (all when empty); the rest are counted as
    /// ignored.
    pub buckets: Vec<String>,
    /// Only events for keys starting with one of these are scanned (all when empty).
    pub prefixes: Vec<String>,
    /// S3 notifications delivered to SQS queues.
    pub sqs: SqsConfig,
}

impl EventsConfig {
    /// Refuses watching a quarantine: what is moved there would be scanned and moved again.
    /// (With no buckets named, every bucket is watched but the quarantines, whose events are
    /// ignored.)
    pub fn check_against(&self, actions: &storage::actions::ActionsConfig) -> Result<(), String> {
        let prefixes: Vec<&str> = if self.prefixes.is_empty() {
            vec![""]
        } else {
            self.prefixes.iter().map(String::as_str).collect()
        };
        for bucket in &self.buckets {
            for prefix in &prefixes {
                if let Some((q, p)) = actions.quarantine_overlapping(bucket, prefix) {
                    return Err(format!(
                        "[events] watches bucket {bucket:?} (prefix {prefix:?}), which holds the quarantine {q}/{p}: what is moved there would be scanned and moved again; name only the buckets and prefixes uploads land in"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether an event for `bucket`/`key` is for us.
    pub fn wants(&self, bucket: &str, key: &str) -> bool {
        (self.buckets.is_empty() || self.buckets.iter().any(|b| b == bucket))
            && (self.prefixes.is_empty() || self.prefixes.iter().any(|p| key.starts_with(p)))
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8090)),
            api_keys: None,
            api_keys_file: None,
            keys: Vec::new(),
            max_queued_jobs_per_key: 10_000,
            public_url: None,
            queue: QueueConfig::default(),
            workers: 16,
            max_queued_jobs: 100_000,
            job_lease_secs: 60,
            max_attempts: 5,
            result_ttl_secs: 24 * 3600,
            shutdown_grace_secs: 30,
            download: DownloadConfig::default(),
            callback: CallbackConfig::default(),
            max_body_bytes: Some(4 << 30),
            max_concurrent_sync_scans: 32,
            upload_idle_timeout_secs: 60,
            limits: Limits::default(),
            spool: SpoolConfig::default(),
            storage: StorageConfig::default(),
            fetch: FetchConfig::default(),
            engines: Vec::new(),
            http: EdgeConfig::default(),
            shared_trace_ids: false,
            bulk_page_size: 1000,
            events: EventsConfig::default(),
            actions: storage::actions::ActionsConfig::default(),
            filters: FiltersConfig::default(),
            reload: engines::ReloadPolicy::default(),
            cache: storage::verdict_cache::CacheConfig::default(),
            rescan: RescanConfig::default(),
        }
    }
}

/// The job queue and result store.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum QueueConfig {
    /// A local file; one process owns it.
    Embedded {
        /// The database file.
        path: PathBuf,
    },
    /// A Redis shared by any number of instances.
    Redis {
        /// `redis://[user:password@]host:port[/db]`.
        url: String,
        /// Key prefix, so several deployments can share one Redis.
        #[serde(default = "default_namespace")]
        namespace: String,
    },
}

fn default_namespace() -> String {
    "verdict".to_owned()
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig::Embedded {
            path: PathBuf::from("verdict-async.redb"),
        }
    }
}

/// Download retries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DownloadConfig {
    /// Tries in all, for failures that may pass (connection, timeout, 5xx, 429).
    pub attempts: u32,
    /// Wait before the second try; doubled each time after.
    pub first_backoff_ms: u64,
}

impl Default for DownloadConfig {
    fn default() -> Self {
        DownloadConfig {
            attempts: 3,
            first_backoff_ms: 500,
        }
    }
}

/// Callback delivery.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallbackConfig {
    /// The HMAC key for `X-Verdict-Signature`. Prefer `secret_file`.
    pub secret: Option<String>,
    /// A file holding the key; created with a random key when missing.
    pub secret_file: PathBuf,
    /// One attempt, seconds.
    pub timeout_secs: u64,
    /// Retries stop this long after the first attempt.
    pub retry_for_secs: u64,
    /// Wait before the first retry; doubled each time after.
    pub first_backoff_ms: u64,
    /// Longest wait between retries.
    pub max_backoff_secs: u64,
}

impl Default for CallbackConfig {
    fn default() -> Self {
        CallbackConfig {
            secret: None,
            secret_file: PathBuf::from("callback.secret"),
            timeout_secs: 10,
            retry_for_secs: 600,
            first_backoff_ms: 1000,
            max_backoff_secs: 60,
        }
    }
}

impl ServiceConfig for Config {
    fn shared_mut(&mut self) -> (&mut SocketAddr, &mut StorageConfig) {
        (&mut self.listen, &mut self.storage)
    }

    /// verdict-async's own overrides: `VERDICT_API_KEYS`, `VERDICT_API_KEYS_FILE`,
    /// `VERDICT_PUBLIC_URL`, `VERDICT_WORKERS`, `VERDICT_QUEUE_PATH` (embedded queue file),
    /// `VERDICT_REDIS_URL` (switches to Redis), `VERDICT_CALLBACK_SECRET`,
    /// `VERDICT_CALLBACK_SECRET_FILE`.
    fn apply_own_env(&mut self, get: Vars<'_>) -> Result<(), ConfigFileError> {
        if let Some(keys) = get("VERDICT_API_KEYS") {
            self.api_keys = Some(keys);
        }
        if let Some(file) = get("VERDICT_API_KEYS_FILE") {
            self.api_keys_file = Some(file.into());
        }
        if let Some(url) = get("VERDICT_PUBLIC_URL") {
            self.public_url = Some(url);
        }
        engines::apply_engine_env(&mut self.engines, &get);
        if let Some(workers) = config_file::env(&get, "VERDICT_WORKERS")? {
            self.workers = workers;
        }
        if let Some(path) = get("VERDICT_QUEUE_PATH") {
            self.queue = QueueConfig::Embedded { path: path.into() };
        }
        if let Some(url) = get("VERDICT_REDIS_URL") {
            let namespace = match &self.queue {
                QueueConfig::Redis { namespace, .. } => namespace.clone(),
                QueueConfig::Embedded { .. } => default_namespace(),
            };
            self.queue = QueueConfig::Redis { url, namespace };
        }
        if let Some(secret) = get("VERDICT_CALLBACK_SECRET") {
            self.callback.secret = Some(secret);
        }
        if let Some(file) = get("VERDICT_CALLBACK_SECRET_FILE") {
            self.callback.secret_file = file.into();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_can_be_narrowed_to_buckets_and_prefixes() {
        let all = EventsConfig::default();
        assert!(all.wants("any", "thing"));
        let narrow = EventsConfig {
            buckets: vec!["uploads".into()],
            prefixes: vec!["in/".into(), "new/".into()],
            ..EventsConfig::default()
        };
        assert!(narrow.wants("uploads", "new/a"));
        assert!(!narrow.wants("uploads", "old/a"));
        assert!(!narrow.wants("logs", "in/a"));
    }

    #[test]
    fn watching_a_quarantine_is_refused() {
        let actions: storage::actions::ActionsConfig = toml::from_str(
            "infected = \"move\"\nquarantine_bucket = \"uploads\"\nquarantine_prefix = \"held/\"",
        )
        .unwrap();
        let watching = |buckets: &[&str], prefixes: &[&str]| EventsConfig {
            buckets: buckets.iter().map(|b| (*b).to_owned()).collect(),
            prefixes: prefixes.iter().map(|p| (*p).to_owned()).collect(),
            ..EventsConfig::default()
        };
        let err = watching(&["uploads"], &[])
            .check_against(&actions)
            .unwrap_err();
        assert!(err.contains("quarantine uploads/held/"), "{err}");
        assert!(
            watching(&["uploads"], &["held/x/"])
                .check_against(&actions)
                .is_err()
        );
        assert!(
            watching(&["uploads"], &["in/"])
                .check_against(&actions)
                .is_ok()
        );
        assert!(watching(&["other"], &[]).check_against(&actions).is_ok());
        assert!(
            watching(&[], &[]).check_against(&actions).is_ok(),
            "all but the quarantine"
        );
    }

    #[test]
    fn a_file_and_the_environment_combine_and_unknown_keys_are_refused() {
        let mut config: Config = toml::from_str(
            r#"
            api_keys = "a,b"
            workers = 4
            [queue]
            type = "redis"
            url = "redis://127.0.0.1:1/"
            namespace = "prod"
            [callback]
            retry_for_secs = 5
            "#,
        )
        .unwrap();
        config
            .apply_env(&|name| {
                (name == "VERDICT_REDIS_URL").then(|| "redis://10.0.0.1:6379/".to_owned())
            })
            .unwrap();
        assert_eq!(config.workers, 4);
        assert_eq!(config.callback.retry_for_secs, 5);
        match &config.queue {
            QueueConfig::Redis { url, namespace } => {
                assert_eq!(url, "redis://10.0.0.1:6379/");
                assert_eq!(namespace, "prod", "the namespace from the file is kept");
            }
            other => panic!("expected Redis, got {other:?}"),
        }
        let err = toml::from_str::<Config>("worker = 3").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }
}

/// `[rescan]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RescanConfig {
    /// What is judged again: `bucket` or `bucket/prefix`, each its own bulk scan.
    pub targets: Vec<String>,
    /// Objects scanned again per second, at most, by each instance.
    pub max_objects_per_sec: f64,
    /// Where an object that turned infected is notified, signed like the callbacks
    /// (`X-Verdict-Signature` with the service's callback secret).
    pub notify_url: Option<String>,
    /// Seconds between looks at the fingerprint.
    pub check_every_secs: f64,
}

impl Default for RescanConfig {
    fn default() -> Self {
        RescanConfig {
            targets: Vec::new(),
            max_objects_per_sec: 20.0,
            notify_url: None,
            check_every_secs: 1.0,
        }
    }
}

impl RescanConfig {
    /// `(bucket, prefix)` of each target.
    pub fn targets(&self) -> Vec<(String, String)> {
        self.targets
            .iter()
            .map(|t| {
                let t = t.trim().trim_start_matches("s3://");
                let (bucket, prefix) = t.split_once('/').unwrap_or((t, ""));
                (bucket.to_owned(), prefix.to_owned())
            })
            .collect()
    }

    /// Refuses targets without a bucket.
    pub fn check(&self) -> Result<(), String> {
        if self.targets().iter().any(|(bucket, _)| bucket.is_empty()) {
            return Err("rescan.targets: each target is bucket or bucket/prefix".to_owned());
        }
        // NaN is refused too.
        if self.max_objects_per_sec.is_nan() || self.max_objects_per_sec <= 0.0 {
            return Err("rescan.max_objects_per_sec must be above 0".to_owned());
        }
        Ok(())
    }
}

/// The `[events.sqs]` section: which queues to consume and how.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SqsConfig {
    /// Queue URLs to consume; none: SQS is not used.
    pub queue_urls: Vec<String>,
    /// An SQS-compatible endpoint (tests, or a local stand-in); AWS when unset.
    pub endpoint: Option<String>,
    /// Region; the standard chain when unset.
    pub region: Option<String>,
    /// Long-poll wait, seconds (at most 20).
    pub wait_secs: u64,
    /// Messages per receive (1 to 10).
    pub batch: u32,
    /// Receives in flight at once per queue (each handles its batch's messages together).
    pub receivers: usize,
}

impl Default for SqsConfig {
    fn default() -> Self {
        SqsConfig {
            queue_urls: Vec::new(),
            endpoint: None,
            region: None,
            wait_secs: 20,
            batch: 10,
            receivers: 2,
        }
    }
}
