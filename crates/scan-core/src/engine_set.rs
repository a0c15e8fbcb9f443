//! `EngineSet`: the engines one scan runs with and the fingerprint that names their rules. The
//! scanner swaps whole sets, so a scan keeps the set it started with and no report mixes two.

use std::sync::Arc;

use sha2::Digest;
use time::OffsetDateTime;

use crate::engine::{Engine, Signatures};

/// A scanner could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A scanner with no engine would call everything clean without looking.
    #[error("no engine is configured; a scanner needs at least one")]
    NoEngines,
    /// Two engines share a name, so reports could not tell them apart.
    #[error("two engines are named {0:?}; engine names must be unique")]
    DuplicateEngine(String),
}

/// The engines of one generation, with what each judges with and the fingerprint of it all.
pub struct EngineSet {
    engines: Vec<Arc<dyn Engine>>,
    signatures: Vec<Signatures>,
    fingerprint: String,
    since: OffsetDateTime,
}

impl std::fmt::Debug for EngineSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineSet")
            .field("engines", &self.names().collect::<Vec<_>>())
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

impl EngineSet {
    /// Checks the engines (at least one, names unique) and fingerprints what they hold now.
    pub fn new(engines: Vec<Arc<dyn Engine>>) -> Result<Self, ConfigError> {
        if engines.is_empty() {
            return Err(ConfigError::NoEngines);
        }
        for (i, engine) in engines.iter().enumerate() {
            if engines[..i].iter().any(|e| e.name() == engine.name()) {
                return Err(ConfigError::DuplicateEngine(engine.name().to_owned()));
            }
        }
        let signatures: Vec<Signatures> = engines.iter().map(|e| e.signatures()).collect();
        let fingerprint = fingerprint_of(&engines, &signatures);
        Ok(EngineSet {
            engines,
            signatures,
            fingerprint,
            since: OffsetDateTime::now_utc(),
        })
    }

    /// The engines, in the order they run.
    pub fn engines(&self) -> &[Arc<dyn Engine>] {
        &self.engines
    }

    /// The engines' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.engines.iter().map(|e| e.name())
    }

    /// What each engine judged with when the set was made, in engine order.
    pub fn signatures(&self) -> &[Signatures] {
        &self.signatures
    }

    /// Twelve hex digits naming this release of the scanner, every engine and its rule set:
    /// equal fingerprints judge alike,
    /// and it changes the moment any engine's rules do. Tagged on objects and put in reports.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// When this set became the scanner's.
    pub fn since(&self) -> OffsetDateTime {
        self.since
    }

    /// Whether the engines' signatures now differ from what this set was made with (a remote
    /// engine reloaded its database).
    pub fn is_stale(&self) -> bool {
        self.engines
            .iter()
            .zip(&self.signatures)
            .any(|(engine, held)| engine.signatures().version != held.version)
    }

    /// A set of the same engines, fingerprinted on what they hold now.
    pub fn refreshed(&self) -> Self {
        let signatures: Vec<Signatures> = self.engines.iter().map(|e| e.signatures()).collect();
        let fingerprint = fingerprint_of(&self.engines, &signatures);
        EngineSet {
            engines: self.engines.clone(),
            signatures,
            fingerprint,
            since: OffsetDateTime::now_utc(),
        }
    }
}

fn fingerprint_of(engines: &[Arc<dyn Engine>], signatures: &[Signatures]) -> String {
    let mut hash = sha2::Sha256::new();
    // What expansion opens judges too: a release that reads more carriers is another judge.
    hash.update(concat!("scan-core ", env!("CARGO_PKG_VERSION")).as_bytes());
    hash.update([0]);
    for (engine, held) in engines.iter().zip(signatures) {
        hash.update(engine.name().as_bytes());
        hash.update([0]);
        hash.update(held.version.as_bytes());
        hash.update([0]);
    }
    hex::encode(&hash.finalize()[..6])
}
