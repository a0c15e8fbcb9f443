//! Verdict's scanning engines behind scan-core's [`scan_core::Engine`] trait: YARA rules through
//! yara-x and hash signatures in-process (the embedded default), ClamAV through clamd, and
//! commercial scanners through ICAP; [`EngineConfig`] builds any of them from configuration.

mod clamd;
mod config;
mod hashes;
mod icap;
mod net;
mod yara;

pub use clamd::{ClamdConfig, ClamdEngine};
pub use config::{
    EngineConfig, EngineConfigError, SizeLimited, SpoolSettings, build_engines, build_scanner,
};
pub use icap::{IcapConfig, IcapEngine};
pub use net::Address;

use std::path::PathBuf;
use std::sync::Arc;

pub use hashes::{HashEngine, HashListError};
use scan_core::Engine;
pub use yara::{YaraEngine, YaraEngineBuilder, YaraError};

/// What the embedded engines load: YARA rules (the built-in EICAR rule is always there) and
/// hash signature lists.
#[derive(Debug, Clone, Default)]
pub struct EmbeddedConfig {
    /// Rule files or folders of `.yar`/`.yara` files.
    pub rules: Vec<PathBuf>,
    /// Hash signature files.
    pub hashes: Vec<PathBuf>,
}

/// Builds the embedded engines: YARA always, the hash engine when any list is given.
pub fn embedded_engines(
    config: &EmbeddedConfig,
) -> Result<Vec<Arc<dyn Engine>>, EngineConfigError> {
    let mut configs = vec![EngineConfig::Yara {
        rules: config.rules.clone(),
        max_object_size: None,
    }];
    if !config.hashes.is_empty() {
        configs.push(EngineConfig::Hashes {
            files: config.hashes.clone(),
            max_object_size: None,
        });
    }
    build_engines(&configs)
}
