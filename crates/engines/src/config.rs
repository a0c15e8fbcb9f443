//! Engine configuration: one tagged entry per engine (`type = "yara" | "hashes" | "clamd" |
//! "icap"`), each with an optional size limit, built into a list of engines before any scan.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use scan_core::{Detection, Engine, EngineError, ScanObject, Scope};
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
        /// `.hdb`, `.hsb` or plain lists.
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

/// Builds a [`scan_core::Scanner`] from engine configs (the embedded YARA engine when the list is empty),
/// limits and spool settings: the one way every binary turns its config into a scanner.
pub fn build_scanner(
    configs: &[EngineConfig],
    limits: scan_core::Limits,
    spool: scan_core::SpoolPolicy,
) -> Result<scan_core::Scanner, EngineConfigError> {
    let default = [EngineConfig::Yara {
        rules: Vec::new(),
        max_object_size: None,
    }];
    let configs = if configs.is_empty() {
        &default[..]
    } else {
        configs
    };
    scan_core::Scanner::builder()
        .limits(limits)
        .spool(spool)
        .engines(build_engines(configs)?)
        .build()
        .map_err(|e| EngineConfigError::Invalid {
            engine: "scanner".to_owned(),
            message: e.to_string(),
        })
}

/// Builds every configured engine, in order.
pub fn build_engines(configs: &[EngineConfig]) -> Result<Vec<Arc<dyn Engine>>, EngineConfigError> {
    configs.iter().map(build).collect()
}

fn build(config: &EngineConfig) -> Result<Arc<dyn Engine>, EngineConfigError> {
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
            for file in files {
                engine.add_file(file)?;
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
}

/// Spool settings as they appear in a service's configuration file (`[spool]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    /// Folder for spool files; the system temp folder when unset.
    pub temp_dir: Option<PathBuf>,
    /// Bytes kept in memory before spooling to disk.
    pub memory_threshold: usize,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            temp_dir: None,
            memory_threshold: scan_core::SpoolPolicy::default().memory_threshold,
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
        }
    }
}
