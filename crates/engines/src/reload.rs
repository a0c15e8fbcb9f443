//! `Reloader`: keeps a scanner's rules current without a restart. The in-process engines (YARA
//! rules, hash lists) are rebuilt from their files on SIGHUP or when the files change, compiled
//! on a blocking thread and swapped in as a whole new engine set; remote engines (clamd, ICAP)
//! are asked for their signature version on a short period, so the fingerprint follows
//! freshclam. A set that does not build is refused and the one in use stays.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use scan_core::{Engine, Scanner};

use crate::{EngineConfig, EngineConfigError};

/// How often the reloader looks, and whether it listens for SIGHUP: a server's `[reload]`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReloadPolicy {
    /// Seconds between looks at the rule files for changes; 0 turns the file watch off. A
    /// change is loaded once the files have stayed the same for one more period, so a file
    /// still being written is not compiled half-way.
    pub watch_every_secs: f64,
    /// Seconds between asking remote engines (clamd, ICAP) for their signature version.
    pub poll_every_secs: f64,
    /// Reload on SIGHUP.
    pub on_sighup: bool,
}

impl Default for ReloadPolicy {
    fn default() -> Self {
        ReloadPolicy {
            watch_every_secs: 2.0,
            poll_every_secs: 15.0,
            on_sighup: true,
        }
    }
}

impl ReloadPolicy {
    fn watch_every(&self) -> Option<Duration> {
        (self.watch_every_secs > 0.0)
            .then(|| Duration::try_from_secs_f64(self.watch_every_secs).ok())
            .flatten()
    }

    fn poll_every(&self) -> Duration {
        Duration::try_from_secs_f64(self.poll_every_secs)
            .unwrap_or(Duration::from_secs(15))
            .max(Duration::from_millis(100))
    }
}

/// What the reloader has done since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReloadStats {
    /// Reloads that built and installed a set.
    pub reloaded: u64,
    /// Reloads refused because a file did not load or compile.
    pub refused: u64,
    /// Why the last refused reload was refused, naming the file and line.
    pub last_refusal: Option<String>,
}

/// Rebuilds a scanner's in-process engines from their configuration. Share it in an `Arc`.
pub struct Reloader {
    scanner: Scanner,
    configs: Vec<EngineConfig>,
    reloaded: AtomicU64,
    refused: AtomicU64,
    last_refusal: Mutex<Option<String>>,
    /// One reload at a time: a SIGHUP during a watch-triggered compile waits for it.
    running: tokio::sync::Mutex<()>,
    /// The watched files as the set in use was loaded from them (taken before reading them,
    /// so a change made while loading is seen as one).
    loaded: Mutex<Stamp>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("files", &self.watched_paths())
            .finish()
    }
}

impl Reloader {
    /// A reloader for `scanner`, which was built from `configs` by [`crate::build_scanner`].
    pub fn new(scanner: Scanner, configs: &[EngineConfig]) -> Self {
        let configs = crate::config::effective(configs);
        let loaded = Mutex::new(Stamp::of(&watched(&configs)));
        Reloader {
            scanner,
            configs,
            loaded,
            reloaded: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            last_refusal: Mutex::new(None),
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// The rule files and folders the in-process engines load.
    pub fn watched_paths(&self) -> Vec<PathBuf> {
        watched(&self.configs)
    }

    /// What the reloader has done since start.
    pub fn stats(&self) -> ReloadStats {
        ReloadStats {
            reloaded: self.reloaded.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            last_refusal: self.last_refusal.lock().ok().and_then(|held| held.clone()),
        }
    }

    /// Loads every in-process engine's files again and installs the new set; remote engines are
    /// kept as they are. On failure the set in use stays, and the error names the file and
    /// line. Returns the new set's fingerprint.
    pub async fn reload(&self) -> Result<String, EngineConfigError> {
        let _one = self.running.lock().await;
        let stamp = Stamp::of(&self.watched_paths());
        if let Ok(mut loaded) = self.loaded.lock() {
            // Refused or not, these files were tried: the watch waits for them to change again.
            *loaded = stamp;
        }
        let current = self.scanner.engine_set();
        let mut engines: Vec<Arc<dyn Engine>> = Vec::with_capacity(self.configs.len());
        for config in &self.configs {
            let kept = match config {
                EngineConfig::Clamd(c) => current.engines().iter().find(|e| e.name() == c.name),
                EngineConfig::Icap(c) => current.engines().iter().find(|e| e.name() == c.name),
                _ => None,
            };
            let engine = match kept {
                Some(engine) => Arc::clone(engine),
                None => build_in_background(config.clone())
                    .await
                    .inspect_err(|e| self.refuse(e))?,
            };
            engines.push(engine);
        }
        let set = self
            .scanner
            .replace_engines(engines)
            .map_err(|e| EngineConfigError::Invalid {
                engine: "scanner".to_owned(),
                message: e.to_string(),
            })
            .inspect_err(|e| self.refuse(e))?;
        self.reloaded.fetch_add(1, Ordering::Relaxed);
        for (name, held) in set.names().zip(set.signatures()) {
            tracing::info!(
                engine = name,
                rules = held.count,
                version = %held.version,
                "engine loaded"
            );
        }
        tracing::info!(fingerprint = set.fingerprint(), "rules reloaded");
        Ok(set.fingerprint().to_owned())
    }

    fn refuse(&self, error: &EngineConfigError) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        tracing::error!(error = %error, "rules refused; the set in use stays active");
        if let Ok(mut held) = self.last_refusal.lock() {
            *held = Some(error.to_string());
        }
    }

    /// Runs until dropped: reloads on SIGHUP and on file changes, polls remote engines. Spawn
    /// it, and abort it at shutdown.
    pub async fn run(self: Arc<Self>, policy: ReloadPolicy) {
        let mut hangups = if policy.on_sighup {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(signals) => Some(signals),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGHUP; reloads follow the file watch only");
                    None
                }
            }
        } else {
            None
        };
        let paths = self.watched_paths();
        let watch_every = policy
            .watch_every()
            .filter(|_| !paths.is_empty())
            .unwrap_or(Duration::MAX);
        let mut watch = tokio::time::interval(watch_every.min(Duration::from_secs(86_400)));
        watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut poll = tokio::time::interval(policy.poll_every());
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen = self.loaded_stamp();
        loop {
            tokio::select! {
                Some(()) = async {
                    match hangups.as_mut() {
                        Some(signals) => signals.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    tracing::info!("SIGHUP: reloading rules");
                    let _ = self.reload().await;
                    seen = self.loaded_stamp();
                }
                _ = watch.tick(), if watch_every != Duration::MAX => {
                    let now = Stamp::of(&paths);
                    // Loaded once the files held still for a whole period.
                    if now != self.loaded_stamp() && now == seen {
                        tracing::info!("rule files changed: reloading");
                        let _ = self.reload().await;
                    }
                    seen = now;
                }
                _ = poll.tick() => {
                    self.scanner.poll_engines(Duration::from_secs(5)).await;
                }
            }
        }
    }
}

impl Reloader {
    fn loaded_stamp(&self) -> Stamp {
        self.loaded
            .lock()
            .map(|held| held.clone())
            .unwrap_or_else(|_| Stamp(Vec::new()))
    }
}

/// The rule files and folders `configs` load.
fn watched(configs: &[EngineConfig]) -> Vec<PathBuf> {
    configs
        .iter()
        .flat_map(|config| match config {
            EngineConfig::Yara { rules, .. } => rules.clone(),
            EngineConfig::Hashes { files, .. } => files.clone(),
            _ => Vec::new(),
        })
        .collect()
}

/// Every watched file's length and modification time: what the watch compares.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Vec<(PathBuf, u64, Option<SystemTime>)>);

impl Stamp {
    fn of(paths: &[PathBuf]) -> Self {
        let mut files = Vec::new();
        for path in paths {
            // A folder that cannot be read is a change too (it will show in the reload's error).
            for entry in walkdir::WalkDir::new(path)
                .follow_links(true)
                .sort_by_file_name()
            {
                match entry.and_then(|e| Ok((e.path().to_owned(), e.metadata()?))) {
                    Ok((file, meta)) if meta.is_file() => {
                        files.push((file, meta.len(), meta.modified().ok()));
                    }
                    Ok(_) => {}
                    Err(e) => files.push((PathBuf::from(e.to_string()), 0, None)),
                }
            }
        }
        Stamp(files)
    }
}

/// Builds `config` on a thread of its own at the lowest CPU priority: compiling thousands of
/// rules takes seconds of CPU, which must come from idle time, never from scans in flight (on a
/// busy machine the reload takes longer instead).
async fn build_in_background(config: EngineConfig) -> Result<Arc<dyn Engine>, EngineConfigError> {
    let failed = |message: String| EngineConfigError::Invalid {
        engine: "reload".to_owned(),
        message,
    };
    let (sender, built) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("verdict-reload".to_owned())
        .spawn(move || {
            lower_priority();
            let _ = sender.send(crate::config::build(&config));
        })
        .map_err(|e| failed(format!("cannot start the loading thread: {e}")))?;
    built
        .await
        .map_err(|_| failed("the loading thread stopped before it finished".to_owned()))?
}

/// Makes the calling thread the last to get a CPU (nice 19, `SCHED_BATCH`); lowering one's own
/// priority needs no privilege. If it cannot be done the build runs at normal priority.
fn lower_priority() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    let lowest = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch);
    if let Err(e) = set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, lowest)
    {
        tracing::debug!(error = %e, "cannot lower the reload thread's priority");
    }
}

/// Logs the engines a scanner runs with, each with its rule count and set version, and the
/// fingerprint: what every start prints.
pub fn log_engines(scanner: &Scanner) {
    let set = scanner.engine_set();
    for (name, held) in set.names().zip(set.signatures()) {
        tracing::info!(
            engine = name,
            rules = held.count,
            version = %held.version,
            "engine ready"
        );
    }
    tracing::info!(fingerprint = set.fingerprint(), "engine set");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loading thread really is at nice 19 (field 19 of /proc/thread-self/stat).
    #[test]
    fn the_loading_thread_runs_at_the_lowest_priority() {
        let nice = std::thread::spawn(|| {
            lower_priority();
            let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
            // The command name, in parentheses, may hold spaces: count fields after it.
            let after = stat.rsplit_once(')').map(|(_, rest)| rest.to_owned());
            after.and_then(|rest| rest.split_whitespace().nth(16).map(str::to_owned))
        })
        .join()
        .ok()
        .flatten();
        assert_eq!(nice.as_deref(), Some("19"));
    }
}
