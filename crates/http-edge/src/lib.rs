//! What `verdict-sync` and `verdict-async` both need between the socket and their handlers,
//! written once: the listener with its limits ([`serve`]), request bodies that may not stall
//! ([`body`]), one error type and JSON error body ([`ApiError`], [`error_response`]), logging
//! that cannot be forged by what callers send ([`init_logging`]), the shutdown signal, metrics
//! and the in-flight gauge that cannot leak ([`InFlight`]), the OpenAPI pieces both documents
//! share ([`openapi`]) and loading a server's configuration file ([`config_file`]).
//!
//! Its own crate between `storage` and the servers: storage stays storage, scan-core stays free
//! of service concerns, and neither server depends on the other.

pub mod body;
pub mod config_file;
mod error;
mod listen;
mod log;
pub mod metrics;
pub mod openapi;
pub mod status;

use std::time::Duration;

use axum::http::header;
use prometheus_client::metrics::gauge::Gauge;
use serde::Deserialize;

pub use error::{ApiError, ErrorBody, error_response};
pub use listen::{client_of, serve};
pub use log::{init_logging, shutdown_signal};

/// The `[http]` section of both servers' configuration: limits on connections and requests.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeConfig {
    /// Seconds a client has to send a request's headers, counted from when the connection is
    /// ready for a request: on a new connection and between requests on a kept-alive one, so it
    /// is also the keep-alive idle timeout.
    pub header_timeout_secs: u64,
    /// Open connections at most; past it, new connections wait in the kernel's backlog.
    pub max_connections: usize,
    /// Open connections from one client address (an IPv6 client's /64) at most, below
    /// `max_connections`, so one client cannot take them all; past it, a new connection is
    /// answered 503 and closed.
    pub max_connections_per_address: usize,
    /// Every request body must arrive at this many bytes per second at least, measured over
    /// each `body_rate_window_secs` of time the server spends waiting for it (408 otherwise);
    /// 0 turns the rule off.
    pub min_body_rate: u64,
    /// The window `min_body_rate` is measured over, seconds.
    pub body_rate_window_secs: u64,
    /// Largest request head (request line and headers), bytes; larger heads get 431.
    pub max_header_bytes: usize,
    /// On shutdown, seconds in-flight requests get to finish before their connections close.
    pub drain_secs: u64,
    /// When set, `GET /metrics` needs `Authorization: Bearer <this>`; when unset it is open
    /// (like `/health`), for a scraper on a trusted network.
    pub metrics_token: Option<String>,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig {
            header_timeout_secs: 10,
            max_connections: 512,
            max_connections_per_address: 64,
            min_body_rate: 1024,
            body_rate_window_secs: 30,
            max_header_bytes: 64 * 1024,
            drain_secs: 30,
            metrics_token: None,
        }
    }
}

impl EdgeConfig {
    /// The header timeout as a duration (at least one second).
    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_secs.max(1))
    }

    /// The pace every request body must keep.
    pub fn body_pace(&self) -> body::Pace {
        body::Pace {
            min_rate: self.min_body_rate,
            window: Duration::from_secs(self.body_rate_window_secs.max(1)),
        }
    }

    /// Whether a `/metrics` request with these headers may read the metrics.
    pub fn metrics_allowed(&self, headers: &axum::http::HeaderMap) -> bool {
        let Some(expected) = &self.metrics_token else {
            return true;
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            });
        given.is_some_and(|given| constant_time_eq(given.trim().as_bytes(), expected.as_bytes()))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Counts one unit of work in a gauge for as long as it lives, so a request whose client goes
/// away (its future dropped mid-scan) still leaves the gauge right.
#[derive(Debug)]
pub struct InFlight(Gauge);

impl InFlight {
    /// Increments `gauge` until the guard is dropped.
    pub fn enter(gauge: &Gauge) -> Self {
        gauge.inc();
        InFlight(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Why a server could not start: a setting that cannot work, or a part (engines, storage, the
/// queue, a secret file) that failed to come up. Said before any socket opens.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration cannot work as it stands.
    #[error("{0}")]
    Invalid(String),
    /// A part failed to come up.
    #[error("{what}: {source}")]
    Failed {
        /// Which part, and where (a file, an address).
        what: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StartError {
    /// `what` failed because of `source`.
    pub fn failed(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StartError::Failed {
            what: what.into(),
            source: source.into(),
        }
    }
}

/// What every server opens of storage at start: the object store and the guarded fetcher.
pub async fn open_storage(
    storage: &storage::StorageConfig,
    fetch: &storage::fetch::FetchConfig,
) -> Result<
    (
        std::sync::Arc<dyn storage::ObjectStore>,
        storage::fetch::Fetcher,
    ),
    StartError,
> {
    let objects = storage
        .open()
        .await
        .map_err(|e| StartError::failed("storage", e))?;
    let fetcher = storage::fetch::Fetcher::new(fetch.policy())
        .map_err(|e| StartError::failed("fetcher", e))?;
    Ok((objects, fetcher))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_token_is_checked_exactly() {
        let open = EdgeConfig::default();
        let mut headers = axum::http::HeaderMap::new();
        assert!(open.metrics_allowed(&headers), "no token configured: open");
        let closed = EdgeConfig {
            metrics_token: Some("s3cret-token".to_owned()),
            ..EdgeConfig::default()
        };
        assert!(!closed.metrics_allowed(&headers));
        for (given, allowed) in [
            ("Bearer s3cret-token", true),
            ("bearer s3cret-token", true),
            ("Bearer s3cret-toke", false),
            ("Bearer s3cret-token2", false),
            ("Basic s3cret-token", false),
        ] {
            headers.insert(header::AUTHORIZATION, given.parse().unwrap());
            assert_eq!(closed.metrics_allowed(&headers), allowed, "{given}");
        }
    }

    #[test]
    fn the_gauge_comes_back_down_when_the_guard_is_dropped() {
        let gauge = Gauge::default();
        let first = InFlight::enter(&gauge);
        let second = InFlight::enter(&gauge);
        assert_eq!(gauge.get(), 2);
        drop(first);
        assert_eq!(gauge.get(), 1);
        drop(second);
        assert_eq!(gauge.get(), 0);
    }
}
