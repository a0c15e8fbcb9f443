//! Configuration: a TOML file (raw serde structs, unknown keys refused) with environment
//! overrides for the common settings, validated into the running state before any socket opens.

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

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The users file (`verdict-sync user add NAME` writes it).
    pub users_file: PathBuf,
    /// Token signing.
    pub token: TokenConfig,
    /// Largest request body (upload) accepted, in bytes.
    pub max_body_bytes: Option<u64>,
    /// Scans running at once; more are answered 503.
    pub max_concurrent_scans: usize,
    /// Password checks running at once (each argon2 check takes about 19 MiB); 0 means one per
    /// core. A login that cannot start one within `login_wait_ms` is answered 503.
    pub max_concurrent_logins: usize,
    /// How long a login waits for a password check to be free, in milliseconds.
    pub login_wait_ms: u64,
    /// An upload that sends nothing for this many seconds is ended with 408, so a client that
    /// stalls cannot hold a scan slot forever.
    pub upload_idle_timeout_secs: u64,
    /// Tag scanned existing objects with `scan-result`, `scan-date` and `scan-engines`: the
    /// same as `actions.on_requests = true` with the default policy (tag every outcome).
    pub tag_existing: bool,
    /// What `/api/Scan/Existing` does to the object after its scan, when `on_requests` is set
    /// (or `tag_existing`): tag, move to quarantine, delete, or nothing, per outcome and prefix.
    pub actions: storage::actions::ActionsConfig,
    /// Objects `[actions]` leaves alone (a legal hold, say): scanned, never acted on.
    pub filters: storage::filters::FiltersConfig,
    /// What each user may reach, by user name (`[scopes.alice]`). Without any entry every user
    /// reaches every bucket; with entries, a user without one reaches what `[scopes."*"]`
    /// says, or nothing.
    pub scopes: std::collections::BTreeMap<String, UserScopes>,
    /// Expansion limits.
    pub limits: Limits,
    /// Spooling.
    pub spool: SpoolConfig,
    /// Where clean uploads go and existing objects come from.
    pub storage: StorageConfig,
    /// URL scans.
    pub fetch: FetchConfig,
    /// Engines; the embedded YARA engine when empty.
    pub engines: Vec<EngineConfig>,
    /// Connection limits, timeouts, and the metrics token.
    pub http: EdgeConfig,
    /// Rule reloads: the file watch's period, SIGHUP, how often clamd is asked for its version.
    pub reload: engines::ReloadPolicy,
    /// The verdict cache (by default `verdict-sync-cache.redb` beside the users file).
    pub cache: storage::verdict_cache::CacheConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            users_file: PathBuf::from("users"),
            token: TokenConfig::default(),
            max_body_bytes: Some(8 << 30),
            max_concurrent_scans: 32,
            max_concurrent_logins: 0,
            login_wait_ms: 2000,
            upload_idle_timeout_secs: 60,
            tag_existing: false,
            actions: storage::actions::ActionsConfig::default(),
            filters: storage::filters::FiltersConfig::default(),
            scopes: std::collections::BTreeMap::new(),
            limits: Limits::default(),
            spool: SpoolConfig::default(),
            storage: StorageConfig::default(),
            fetch: FetchConfig::default(),
            engines: Vec::new(),
            http: EdgeConfig::default(),
            reload: engines::ReloadPolicy::default(),
            cache: storage::verdict_cache::CacheConfig::default(),
        }
    }
}

/// One `[scopes.NAME]` entry: the buckets and prefixes (`"*"`, `"bucket"`,
/// `"bucket/prefix"`) a user may reach.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct UserScopes {
    /// Objects it may scan where they are (`/api/Scan/Existing`).
    pub scan: storage::scope::Scopes,
    /// Where it may store clean uploads (`uploadTo`).
    pub upload: storage::scope::Scopes,
}

impl UserScopes {
    /// What `user` may reach, from the `[scopes]` entries (see [`Config::scopes`]).
    pub fn of(entries: &std::collections::BTreeMap<String, UserScopes>, user: &str) -> Self {
        if entries.is_empty() {
            return UserScopes {
                scan: storage::scope::Scopes::any(),
                upload: storage::scope::Scopes::any(),
            };
        }
        entries
            .get(user)
            .or_else(|| entries.get("*"))
            .cloned()
            .unwrap_or_default()
    }
}

/// Token signing settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenConfig {
    /// The HS256 key. Prefer `secret_file`.
    pub secret: Option<String>,
    /// A file holding the key (trailing white space ignored).
    pub secret_file: Option<PathBuf>,
    /// Token validity, seconds.
    pub ttl_secs: u64,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            secret: None,
            secret_file: None,
            ttl_secs: 3600,
        }
    }
}

impl ServiceConfig for Config {
    fn shared_mut(&mut self) -> (&mut SocketAddr, &mut StorageConfig) {
        (&mut self.listen, &mut self.storage)
    }

    /// verdict-sync's own overrides: `VERDICT_USERS_FILE`, `VERDICT_TOKEN_SECRET`,
    /// `VERDICT_TOKEN_SECRET_FILE`, `VERDICT_MAX_BODY_BYTES`.
    fn apply_own_env(&mut self, get: Vars<'_>) -> Result<(), ConfigFileError> {
        if let Some(users) = get("VERDICT_USERS_FILE") {
            self.users_file = users.into();
        }
        if let Some(secret) = get("VERDICT_TOKEN_SECRET") {
            self.token.secret = Some(secret);
        }
        if let Some(file) = get("VERDICT_TOKEN_SECRET_FILE") {
            self.token.secret_file = Some(file.into());
        }
        engines::apply_engine_env(&mut self.engines, &get);
        if let Some(max) = config_file::env(&get, "VERDICT_MAX_BODY_BYTES")? {
            self.max_body_bytes = Some(max);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_with_engines_and_env_overrides() {
        let mut config: Config = toml::from_str(
            r#"
            listen = "0.0.0.0:9000"
            [token]
            secret_file = "/run/secrets/verdict"
            [storage]
            type = "s3"
            region = "eu-west-1"
            [[engines]]
            type = "yara"
            rules = ["/etc/verdict/rules"]
            [[engines]]
            type = "clamd"
            address = "/run/clamav/clamd.ctl"
            "#,
        )
        .unwrap();
        assert_eq!(config.engines.len(), 2);
        assert!(
            matches!(config.storage, StorageConfig::S3(ref s3) if s3.region.as_deref() == Some("eu-west-1"))
        );
        config
            .apply_env(&|name| (name == "VERDICT_LISTEN").then(|| "127.0.0.1:1".to_owned()))
            .unwrap();
        assert_eq!(config.listen.port(), 1);
        assert!(
            toml::from_str::<Config>("lisen = 1").is_err(),
            "unknown keys are refused"
        );
    }
}
