//! Verdict's scanning core: the verdict model, a streaming input pipeline, recursive expansion
//! of archives under bomb limits, and the [`Engine`] trait that scanning engines implement.
//!
//! Every scan takes one road: bytes are read once (counted, hashed, spooled past a threshold),
//! identified by content, expanded recursively through one capped decompression path, handed to
//! every engine that wants each object, and merged into a [`Report`] whose [`Verdict`] is Clean
//! only if every object was fully examined by every engine.
//!
//! ```
//! use scan_core::{Detection, Engine, EngineError, ScanObject, Scanner, Verdict, async_trait};
//!
//! /// Flags any object containing the word "malicious".
//! struct Words;
//!
//! #[async_trait]
//! impl Engine for Words {
//!     fn name(&self) -> &str { "words" }
//!     async fn scan(&self, o: &ScanObject<'_>) -> Result<Vec<Detection>, EngineError> {
//!         let hit = o.data.windows(9).any(|w| w == b"malicious");
//!         Ok(if hit { vec![Detection::named("Test.Word")] } else { vec![] })
//!     }
//!     async fn health(&self) -> Result<String, EngineError> { Ok("ready".into()) }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let scanner = Scanner::builder().engine(Words).build()?;
//! let report = scanner.scan_reader("note.txt", &b"a malicious note"[..]).await?;
//! assert_eq!(report.verdict, Verdict::Infected);
//! assert_eq!(report.detections[0].path, "note.txt");
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod blocking;
mod cache;
mod decompress;
mod engine;
mod engine_set;
mod error;
mod expand;
pub mod filetype;
mod formats;
mod input;
mod landmarks;
mod limits;
mod scanner;
mod spool;
mod verdict;

/// The attribute [`Engine`] implementations need, re-exported so implementing one takes no
/// dependency of its own: `#[scan_core::async_trait]`.
pub use async_trait::async_trait;
pub use cache::{CacheError, CacheKey, CachedVerdict, VerdictCache};
pub use engine::{Engine, EngineError, ScanObject, Scope, Signatures};
pub use engine_set::{ConfigError, EngineSet};
pub use error::InputError;
pub use filetype::FileType;
pub use input::{InputBuilder, ScanInput};
pub use landmarks::{LandmarkKind, Landmarks};
pub use limits::{Limit, Limits};
pub use scanner::{CacheStats, Scanner, ScannerBuilder};
pub use spool::{ObjectData, SpoolPolicy};
pub use verdict::{
    Detection, EngineSummary, Outcome, Problem, Reason, Report, Tally, Timings, Verdict,
};
#[cfg(feature = "test-support")]
pub mod testing;
