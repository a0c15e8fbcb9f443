//! Which object store a service uses, as it appears in a configuration file.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use crate::{LocalStore, ObjectStore, S3Config, S3Store};

/// Which object store.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum StorageConfig {
    /// A local directory; each bucket is a folder under it.
    Local {
        /// The root.
        root: PathBuf,
    },
    /// S3 or an S3-compatible server.
    S3(S3Config),
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig::Local {
            root: PathBuf::from("data"),
        }
    }
}

impl StorageConfig {
    /// Environment overrides every service shares: `VERDICT_DATA_DIR` (a local root) and
    /// `VERDICT_S3_ENDPOINT` (S3 at that endpoint, path-style), the latter winning.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) {
        if let Some(root) = get("VERDICT_DATA_DIR") {
            *self = StorageConfig::Local { root: root.into() };
        }
        if let Some(endpoint) = get("VERDICT_S3_ENDPOINT") {
            *self = StorageConfig::S3(S3Config {
                endpoint: Some(endpoint),
                path_style: true,
                region: None,
            });
        }
    }

    /// Opens the configured store (creating a local root if needed).
    pub async fn open(&self) -> std::io::Result<Arc<dyn ObjectStore>> {
        Ok(match self {
            StorageConfig::Local { root } => Arc::new(LocalStore::new(root).map_err(|e| {
                std::io::Error::new(e.kind(), format!("local storage {}: {e}", root.display()))
            })?),
            StorageConfig::S3(s3) => Arc::new(S3Store::new(s3).await),
        })
    }
}
