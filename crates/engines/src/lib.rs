//! Verdict's scanning engines behind scan-core's [`scan_core::Engine`] trait: YARA rules through
//! yara-x and hash signatures in-process (the embedded default), ClamAV through clamd, and
//! commercial scanners through ICAP; [`EngineConfig`] builds any of them from configuration.
//!
//! ```
//! // Engines as a server's configuration file names them (TOML or JSON alike): here YARA with
//! // its built-in EICAR rule, and a hash list would go beside it as `type = "hashes"`.
//! let configs: Vec<engines::EngineConfig> =
//!     serde_json::from_value(serde_json::json!([{ "type": "yara" }]))?;
//! let scanner = engines::build_scanner(&configs, Default::default(), Default::default())?;
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let eicar = scan_core::testing::eicar();
//! let report = scanner
//!     .scan_reader("eicar.com", std::io::Cursor::new(eicar))
//!     .await?;
//! assert_eq!(report.verdict, scan_core::Verdict::Infected);
//! assert_eq!(report.detections[0].engine, "yara");
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```

mod clamd;
mod config;
mod hashes;
mod icap;
mod net;
mod reload;
mod yara;

pub use clamd::{ClamdConfig, ClamdEngine};
pub use config::{
    EngineConfig, EngineConfigError, SizeLimited, SpoolConfig, apply_engine_env, build_engines,
    build_scanner, scanner_builder,
};
pub use icap::{IcapConfig, IcapEngine};
pub use net::{Address, SetupError};
pub use reload::{ReloadPolicy, ReloadStats, Reloader, log_engines};

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
