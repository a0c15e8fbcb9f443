//! Errors that stop a scan before it can produce a report: the input could not be read.
//! Everything that goes wrong after that is recorded in the report instead.

use std::io;
use std::path::PathBuf;

/// The root input could not be read or spooled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// Reading the input stream failed (client went away, network error).
    #[error("reading the input failed: {0}")]
    Read(#[source] io::Error),
    /// A file to scan could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The path is not a regular file.
    #[error("{0} is not a regular file")]
    NotAFile(PathBuf),
    /// The input is larger than the configured maximum.
    #[error("the input is larger than the configured maximum of {limit} bytes")]
    TooLarge {
        /// The maximum, in bytes.
        limit: u64,
    },
    /// Writing the spool file failed (disk full, temp directory missing or not writable).
    #[error("spooling to the temp directory failed: {0}")]
    Spool(#[source] io::Error),
}
