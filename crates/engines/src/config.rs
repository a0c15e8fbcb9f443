//! Engine configuration: one tagged entry per engine (`type = "yara" | "hashes" | "clamd" |
//! "icap"`), each with an optional size limit, built into a list of engines before any scan.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use scan_core::{Detection, Engine, EngineError, ScanObject, Scope, Signatures};
use serde::Deserialize;

use crate::{ClamdConfig, ClamdEngine, HashEngine, IcapConfig, IcapEngine, YaraEngine};

/// One configured engine.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
#[non_exhaustive]
pub enum EngineConfig {
    /// YARA rules (the built-in EICAR rule always included).
    Yara {
        /// Rule files or folders.
        #[serde(default)]
        rules: Vec<PathBuf>,
        /// Largest object this engine examines.
        #[serde(default)]
        max_object_size: Option<u64>,
    },
    /// Hash signature lists.
    Hashes {
        /// `.hdb`, `.hsb` or plain lists, or folders of them.
        files: Vec<PathBuf>,
        /// Largest object this engine examines.
        #[serde(default)]
        max_object_size: Option<u64>,
    },
    /// ClamAV's clamd.
    Clamd(ClamdConfig),
    /// A scanner behind ICAP.
    Icap(IcapConfig),
}

/// An engine could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineConfigError {
    /// YARA rules.
    #[error(transparent)]
    Yara(#[from] crate::YaraError),
    /// Hash lists.
    #[error(transparent)]
    Hashes(#[from] crate::HashListError),
    /// A clamd or ICAP setting.
    #[error("engine {engine}: {message}")]
    Invalid {
        /// Which engine.
        engine: String,
        /// What is wrong.
        message: String,
    },
}

/// A [`scan_core::ScannerBuilder`] with the configured engines (the embedded YARA engine when
/// the list is empty), limits and spool settings, for a caller that adds a verdict cache.
pub fn scanner_builder(
    configs: &[EngineConfig],
    limits: scan_core::Limits,
    spool: scan_core::SpoolPolicy,
) -> Result<scan_core::ScannerBuilder, EngineConfigError> {
    Ok(scan_core::Scanner::builder()
        .limits(limits)
        .spool(spool)
        .engines(build_engines(&effective(configs))?))
}

/// Builds a [`scan_core::Scanner`] from engine configs (the embedded YARA engine when the list is empty),
/// limits and spool settings: the one way every binary turns its config into a scanner.
pub fn build_scanner(
    configs: &[EngineConfig],
    limits: scan_core::Limits,
    spool: scan_core::SpoolPolicy,
) -> Result<scan_core::Scanner, EngineConfigError> {
    scanner_builder(configs, limits, spool)?
        .build()
        .map_err(|e| EngineConfigError::Invalid {
            engine: "scanner".to_owned(),
            message: e.to_string(),
        })
}

/// The engines a configuration runs: the ones listed, or the embedded YARA engine alone.
pub(crate) fn effective(configs: &[EngineConfig]) -> Vec<EngineConfig> {
    if configs.is_empty() {
        vec![EngineConfig::Yara {
            rules: Vec::new(),
            max_object_size: None,
        }]
    } else {
        configs.to_vec()
    }
}

/// Builds every configured engine, in order.
pub fn build_engines(configs: &[EngineConfig]) -> Result<Vec<Arc<dyn Engine>>, EngineConfigError> {
    configs.iter().map(build).collect()
}

pub(crate) fn build(config: &EngineConfig) -> Result<Arc<dyn Engine>, EngineConfigError> {
    Ok(match config {
        EngineConfig::Yara {
            rules,
            max_object_size,
        } => {
            let mut builder = YaraEngine::builder();
            for path in rules {
                builder = builder.add_path(path)?;
            }
            SizeLimited::wrap(Arc::new(builder.build()?), *max_object_size)
        }
        EngineConfig::Hashes {
            files,
            max_object_size,
        } => {
            let mut engine = HashEngine::new();
            for path in files {
                if path.is_dir() {
                    // A folder of lists (a feed's daily files): every file in it, in name order,
                    // hidden ones (editors' swap files) left out.
                    for entry in walkdir::WalkDir::new(path).sort_by_file_name() {
                        let entry = entry.map_err(|e| crate::HashListError::Read {
                            path: path.clone(),
                            source: e.into(),
                        })?;
                        let hidden = entry.file_name().to_string_lossy().starts_with('.');
                        if entry.file_type().is_file() && !hidden {
                            engine.add_file(entry.path())?;
                        }
                    }
                } else {
                    engine.add_file(path)?;
                }
            }
            SizeLimited::wrap(Arc::new(engine), *max_object_size)
        }
        EngineConfig::Clamd(clamd) => {
            Arc::new(
                ClamdEngine::new(clamd).map_err(|e| EngineConfigError::Invalid {
                    engine: clamd.name.clone(),
                    message: e.to_string(),
                })?,
            )
        }
        EngineConfig::Icap(icap) => {
            Arc::new(
                IcapEngine::new(icap).map_err(|e| EngineConfigError::Invalid {
                    engine: icap.name.clone(),
                    message: e.to_string(),
                })?,
            )
        }
    })
}

/// Puts a size limit on any engine: larger objects are not sent, and the report says they were
/// not examined by it.
pub struct SizeLimited {
    inner: Arc<dyn Engine>,
    max: u64,
}

impl SizeLimited {
    /// `inner` limited to `max` bytes, or `inner` itself when there is no limit.
    pub fn wrap(inner: Arc<dyn Engine>, max: Option<u64>) -> Arc<dyn Engine> {
        match max {
            Some(max) => Arc::new(SizeLimited { inner, max }),
            None => inner,
        }
    }
}

#[async_trait]
impl Engine for SizeLimited {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn scope(&self) -> Scope {
        self.inner.scope()
    }

    fn max_object_size(&self) -> Option<u64> {
        Some(
            self.inner
                .max_object_size()
                .map_or(self.max, |inner| inner.min(self.max)),
        )
    }

    async fn scan(&self, object: &ScanObject<'_>) -> Result<Vec<Detection>, EngineError> {
        self.inner.scan(object).await
    }

    async fn health(&self) -> Result<String, EngineError> {
        self.inner.health().await
    }

    fn signatures(&self) -> Signatures {
        self.inner.signatures()
    }
}

/// Spool settings as they appear in a service's configuration file (`[spool]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    /// Folder for spool files; the system temp folder when unset.
    pub temp_dir: Option<PathBuf>,
    /// Bytes kept in memory before spooling to disk.
    pub memory_threshold: usize,
    /// Whether spool files are kept for a few seconds and written over by the next large object
    /// instead of made anew each time (see [`scan_core::SpoolPolicy::reuse_files`]).
    pub reuse_files: bool,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            temp_dir: None,
            memory_threshold: scan_core::SpoolPolicy::default().memory_threshold,
            reuse_files: scan_core::SpoolPolicy::default().reuse_files,
        }
    }
}

impl SpoolConfig {
    /// The spool policy this section describes, refusing inputs larger than `max_input_size`.
    pub fn policy(&self, max_input_size: Option<u64>) -> scan_core::SpoolPolicy {
        scan_core::SpoolPolicy {
            memory_threshold: self.memory_threshold,
            temp_dir: self.temp_dir.clone(),
            max_input_size,
            reuse_files: self.reuse_files,
        }
    }
}

/// Engines from the environment, over a configuration file's: `VERDICT_RULES` (YARA rule files
/// or folders, `:`-separated) and `VERDICT_HASHES` (hash lists) are added to the YARA and hash
/// engines (made if there is none), and `VERDICT_CLAMD` (clamd's address) adds clamd unless one
/// is configured. What `scripts/run.sh` sets to use the signatures it finds.
pub fn apply_engine_env(configs: &mut Vec<EngineConfig>, get: &dyn Fn(&str) -> Option<String>) {
    let paths = |name: &str| -> Vec<PathBuf> {
        get(name)
            .map(|v| {
                v.split(':')
                    .filter(|p| !p.trim().is_empty())
                    .map(PathBuf::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    let (rules, hashes, clamd) = (
        paths("VERDICT_RULES"),
        paths("VERDICT_HASHES"),
        get("VERDICT_CLAMD"),
    );
    if rules.is_empty() && hashes.is_empty() && clamd.is_none() {
        return;
    }
    if configs.is_empty() {
        *configs = effective(configs);
    }
    if !rules.is_empty() {
        match configs
            .iter_mut()
            .find(|c| matches!(c, EngineConfig::Yara { .. }))
        {
            Some(EngineConfig::Yara { rules: held, .. }) => held.extend(rules),
            _ => configs.push(EngineConfig::Yara {
                rules,
                max_object_size: None,
            }),
        }
    }
    if !hashes.is_empty() {
        match configs
            .iter_mut()
            .find(|c| matches!(c, EngineConfig::Hashes { .. }))
        {
            Some(EngineConfig::Hashes { files, .. }) => files.extend(hashes),
            _ => configs.push(EngineConfig::Hashes {
                files: hashes,
                max_object_size: None,
            }),
        }
    }
    if let Some(address) = clamd.filter(|a| !a.trim().is_empty())
        && !configs.iter().any(|c| matches!(c, EngineConfig::Clamd(_)))
    {
        configs.push(EngineConfig::Clamd(ClamdConfig {
            address,
            ..Default::default()
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spool_section_reaches_the_policy_and_reuse_is_on_unless_turned_off() {
        let policy = SpoolConfig::default().policy(Some(10));
        assert!(policy.reuse_files);
        assert_eq!(policy.max_input_size, Some(10));
        let config: SpoolConfig =
            serde_json::from_value(serde_json::json!({"reuse_files": false, "temp_dir": "/s"}))
                .unwrap();
        let policy = config.policy(None);
        assert!(!policy.reuse_files);
        assert_eq!(policy.temp_dir, Some(PathBuf::from("/s")));
        assert_eq!(
            policy.memory_threshold,
            scan_core::SpoolPolicy::default().memory_threshold
        );
    }

    #[test]
    fn the_environment_adds_rules_hash_lists_and_clamd() {
        let vars = |name: &str| match name {
            "VERDICT_RULES" => Some("/r/one:/r/two".to_owned()),
            "VERDICT_HASHES" => Some("/h/feed.txt".to_owned()),
            "VERDICT_CLAMD" => Some("unix:/run/clamd.ctl".to_owned()),
            _ => None,
        };
        let mut configs = Vec::new();
        apply_engine_env(&mut configs, &vars);
        let [
            EngineConfig::Yara { rules, .. },
            EngineConfig::Hashes { files, .. },
            EngineConfig::Clamd(clamd),
        ] = configs.as_slice()
        else {
            panic!("{configs:?}")
        };
        assert_eq!(rules, &[PathBuf::from("/r/one"), PathBuf::from("/r/two")]);
        assert_eq!(files, &[PathBuf::from("/h/feed.txt")]);
        assert_eq!(clamd.address, "unix:/run/clamd.ctl");

        let mut none = Vec::new();
        apply_engine_env(&mut none, &|_| None);
        assert!(
            none.is_empty(),
            "nothing set: the file's engines (or the default) stay"
        );
    }
}
