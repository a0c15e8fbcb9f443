//! The scanner for callers without a Tokio runtime (a command-line tool, a synchronous web
//! framework, a thread pool of its own), and inputs built from the scanner so its spool policy is
//! given once, at build time.
//!
//! The blocking calls run the same async road as [`Scanner::scan_input`] on one small runtime
//! that the process starts the first time it needs it and keeps for its lifetime: a runtime
//! dropped where blocking is not allowed (the last clone of a scanner dropped inside some
//! caller's async task) would panic, and one per scanner would multiply threads. Called from
//! inside a runtime, the scan runs on a thread of its own, so it neither panics ("cannot start a
//! runtime from within a runtime") nor stalls the caller's reactor while it blocks.

use std::future::Future;
use std::io::{self, Read};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tokio::io::AsyncRead;

use crate::error::InputError;
use crate::input::{InputBuilder, ScanInput};
use crate::scanner::Scanner;
use crate::verdict::Report;

/// The runtime every blocking call shares, or why it could not be started.
fn runtime() -> Result<&'static tokio::runtime::Runtime, InputError> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    // One worker drives what engines wait on (sockets to clamd or an ICAP server, timers);
    // expansion and the in-process engines run on its blocking threads, as they do in a server.
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("verdict-blocking")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    });
    runtime.as_ref().map_err(|e| {
        InputError::Read(io::Error::other(format!(
            "cannot start the scanner's runtime: {e}"
        )))
    })
}

/// Runs `work` to completion on the shared runtime, from any thread.
fn block_on<T: Send>(work: impl Future<Output = T> + Send) -> Result<T, InputError> {
    let runtime = runtime()?;
    if tokio::runtime::Handle::try_current().is_err() {
        return Ok(runtime.block_on(work));
    }
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| runtime.block_on(work));
        match waiter.join() {
            Ok(done) => Ok(done),
            // An engine's panic reaches the caller as it would from an ordinary function call.
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

impl Scanner {
    /// [`Scanner::scan_path`] for a caller without an async runtime: blocks until the report is
    /// ready. Usable from any thread, including one inside a runtime (the scan then runs on a
    /// thread of its own).
    ///
    /// ```
    /// use scan_core::{Detection, Engine, EngineError, ScanObject, Scanner, Verdict, async_trait};
    ///
    /// /// Flags objects that start with "MZ".
    /// struct Executables;
    ///
    /// #[async_trait]
    /// impl Engine for Executables {
    ///     fn name(&self) -> &str { "executables" }
    ///     async fn scan(&self, o: &ScanObject<'_>) -> Result<Vec<Detection>, EngineError> {
    ///         Ok(if o.data.starts_with(b"MZ") { vec![Detection::named("Exe")] } else { vec![] })
    ///     }
    ///     async fn health(&self) -> Result<String, EngineError> { Ok("ready".into()) }
    /// }
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("setup.exe");
    /// std::fs::write(&path, b"MZ\x90\x00")?;
    /// // No `#[tokio::main]`, no runtime: an ordinary function call.
    /// let scanner = Scanner::builder().engine(Executables).build()?;
    /// let report = scanner.scan_path_blocking(&path)?;
    /// assert_eq!(report.verdict, Verdict::Infected);
    /// assert_eq!(report.detections[0].path, "setup.exe");
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    pub fn scan_path_blocking(&self, path: &Path) -> Result<Report, InputError> {
        block_on(self.scan_path(path))?
    }

    /// Reads a blocking reader to its end (spooled per the scanner's policy) on the calling
    /// thread, then scans it under `name`; see [`Scanner::scan_path_blocking`].
    pub fn scan_reader_blocking(
        &self,
        name: &str,
        reader: impl Read,
    ) -> Result<Report, InputError> {
        let started = Instant::now();
        let input = self.input_from_reader(reader)?;
        let read = started.elapsed();
        let mut report = self.scan_input_blocking(name, Arc::new(input))?;
        report.timings.read_seconds = read.as_secs_f64();
        Ok(report)
    }

    /// [`Scanner::scan_input`], blocking; the error is only ever that the runtime could not be
    /// started.
    pub fn scan_input_blocking(
        &self,
        name: &str,
        input: Arc<ScanInput>,
    ) -> Result<Report, InputError> {
        block_on(self.scan_input(name, input))
    }

    /// Opens a file in place under the scanner's spool policy (small files read into memory,
    /// larger ones mapped). Blocking.
    pub fn input_from_path(&self, path: &Path) -> Result<ScanInput, InputError> {
        ScanInput::from_path(path, self.spool_policy())
    }

    /// [`Scanner::input_from_path`] on a blocking thread of the caller's runtime.
    pub async fn input_from_path_async(&self, path: &Path) -> Result<ScanInput, InputError> {
        ScanInput::from_path_async(path, self.spool_policy()).await
    }

    /// Reads a blocking reader to its end: counted, hashed and spooled per the scanner's policy
    /// (its `max_input_size` applies).
    pub fn input_from_reader(&self, reader: impl Read) -> Result<ScanInput, InputError> {
        ScanInput::from_reader(reader, self.spool_policy())
    }

    /// Reads an async reader to its end, spooled per the scanner's policy; the hashing and
    /// spooling run on a blocking thread of the caller's runtime.
    pub async fn input_from_async_reader<R>(&self, reader: R) -> Result<ScanInput, InputError>
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        ScanInput::from_async_reader(reader, self.spool_policy()).await
    }

    /// An empty input that chunks already in memory (an HTTP body) are pushed into, spooled per
    /// the scanner's policy; see [`InputBuilder`].
    pub fn input_builder(&self) -> InputBuilder<'_> {
        InputBuilder::new(self.spool_policy())
    }
}
