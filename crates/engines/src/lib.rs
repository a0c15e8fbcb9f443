//! Verdict's scanning engines behind scan-core's [`scan_core::Engine`] trait: YARA rules through
//! yara-x and hash signatures, both in-process (the embedded default).

mod hashes;
mod yara;

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

/// Building the embedded engines failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbeddedError {
    /// The YARA rules.
    #[error(transparent)]
    Yara(#[from] YaraError),
    /// A hash list.
    #[error(transparent)]
    Hashes(#[from] HashListError),
}

/// Builds the embedded engines: YARA always, the hash engine when any list is given.
pub fn embedded_engines(config: &EmbeddedConfig) -> Result<Vec<Arc<dyn Engine>>, EmbeddedError> {
    let mut yara = YaraEngine::builder();
    for path in &config.rules {
        yara = yara.add_path(path)?;
    }
    let mut engines: Vec<Arc<dyn Engine>> = vec![Arc::new(yara.build()?)];
    if !config.hashes.is_empty() {
        let mut hashes = HashEngine::new();
        for path in &config.hashes {
            hashes.add_file(path)?;
        }
        engines.push(Arc::new(hashes));
    }
    Ok(engines)
}
