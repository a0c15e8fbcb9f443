//! Reading a service's TOML configuration file and its environment overrides, with errors that
//! name the file or the variable; both servers load their configuration through here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::de::DeserializeOwned;

use storage::StorageConfig;

/// A configuration file or an override could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigFileError {
    /// The file could not be read.
    #[error("cannot read config {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this service (syntax, an unknown key, a wrong type).
    #[error("config {}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said, with the line.
        message: String,
    },
    /// An environment variable's value is not what it must be.
    #[error("{name} {value:?}: {message}")]
    Env {
        /// The variable.
        name: String,
        /// Its value.
        value: String,
        /// Why it is refused.
        message: String,
    },
}

/// Where overrides come from: a variable's value by its name (the process environment, or a map
/// in tests).
pub type Vars<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A service's whole configuration: a TOML file's sections, then the `VERDICT_*` variables that
/// override them. Every service listens somewhere and keeps objects somewhere; those overrides
/// are the same for all and applied here, the rest by each service.
pub trait ServiceConfig: DeserializeOwned + Default {
    /// The parts every service has: the address it listens on, and its storage.
    fn shared_mut(&mut self) -> (&mut SocketAddr, &mut StorageConfig);

    /// Applies the overrides of this service's own settings that `get` knows.
    fn apply_own_env(&mut self, get: Vars<'_>) -> Result<(), ConfigFileError>;

    /// Applies every override that `get` knows (the process environment, or a map in tests):
    /// `VERDICT_LISTEN`, the storage's (`VERDICT_DATA_DIR` for a local root,
    /// `VERDICT_S3_ENDPOINT` for S3, path-style), then the service's own.
    fn apply_env(&mut self, get: Vars<'_>) -> Result<(), ConfigFileError> {
        let (listen, storage) = self.shared_mut();
        if let Some(address) = env(&get, "VERDICT_LISTEN")? {
            *listen = address;
        }
        storage.apply_env(get);
        self.apply_own_env(get)
    }

    /// Reads `path` (the defaults when there is none), then applies the process environment.
    fn load(path: Option<&Path>) -> Result<Self, ConfigFileError> {
        let mut config: Self = load(path)?;
        config.apply_env(&|name| std::env::var(name).ok())?;
        Ok(config)
    }
}

/// `T` from the TOML file at `path`, or its defaults when there is none.
pub fn load<T: DeserializeOwned + Default>(path: Option<&Path>) -> Result<T, ConfigFileError> {
    let Some(path) = path else {
        return Ok(T::default());
    };
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigFileError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// The variable `name` from `get`, parsed, if it is set.
pub fn env<T>(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
) -> Result<Option<T>, ConfigFileError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    get(name)
        .map(|value| {
            value.parse().map_err(|e: T::Err| ConfigFileError::Env {
                name: name.to_owned(),
                message: e.to_string(),
                value,
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Sample {
        workers: usize,
    }

    #[test]
    fn errors_name_the_file_or_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load::<Sample>(None).unwrap().workers, 0);
        let missing = dir.path().join("missing.toml");
        let err = load::<Sample>(Some(&missing)).unwrap_err().to_string();
        assert!(
            err.contains("missing.toml") && err.contains("cannot read"),
            "{err}"
        );
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "worker = 3\n").unwrap();
        let err = load::<Sample>(Some(&bad)).unwrap_err().to_string();
        assert!(
            err.contains("bad.toml") && err.contains("unknown field"),
            "{err}"
        );
        std::fs::write(&bad, "workers = 3\n").unwrap();
        assert_eq!(load::<Sample>(Some(&bad)).unwrap().workers, 3);

        let get = |name: &str| (name == "N").then(|| "x".to_owned());
        let err = env::<usize>(&get, "N").unwrap_err().to_string();
        assert!(err.starts_with("N \"x\": invalid digit"), "{err}");
        assert_eq!(env::<usize>(&get, "OTHER").unwrap(), None);
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Service {
        listen: SocketAddr,
        storage: StorageConfig,
        workers: usize,
    }

    impl Default for Service {
        fn default() -> Self {
            Service {
                listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
                storage: StorageConfig::default(),
                workers: 1,
            }
        }
    }

    impl ServiceConfig for Service {
        fn shared_mut(&mut self) -> (&mut SocketAddr, &mut StorageConfig) {
            (&mut self.listen, &mut self.storage)
        }
        fn apply_own_env(&mut self, get: Vars<'_>) -> Result<(), ConfigFileError> {
            if let Some(workers) = env(&get, "VERDICT_WORKERS")? {
                self.workers = workers;
            }
            Ok(())
        }
    }

    #[test]
    fn the_shared_overrides_and_the_services_own_all_apply() {
        let vars = [
            ("VERDICT_LISTEN", "0.0.0.0:9999"),
            ("VERDICT_S3_ENDPOINT", "http://127.0.0.1:9000"),
            ("VERDICT_WORKERS", "7"),
        ];
        let get = |name: &str| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        };
        let mut config = Service::default();
        config.apply_env(&get).unwrap();
        assert_eq!(config.listen.port(), 9999);
        assert!(
            matches!(&config.storage, StorageConfig::S3(s3) if s3.endpoint.as_deref() == Some("http://127.0.0.1:9000"))
        );
        assert_eq!(config.workers, 7);
        let bad = |name: &str| (name == "VERDICT_LISTEN").then(|| "nowhere".to_owned());
        let err = Service::default().apply_env(&bad).unwrap_err().to_string();
        assert!(err.starts_with("VERDICT_LISTEN \"nowhere\""), "{err}");
    }
}
