//! Prometheus metrics: the scan metrics of scan-core, under the `verdict` prefix.

use prometheus_client::registry::Registry;
use storage::edge::metrics::ScanMetrics;

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    /// Scans by result, bytes, duration, engine errors, in flight.
    pub scans: ScanMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("verdict");
        let scans = ScanMetrics::register(&mut registry);
        Metrics { registry, scans }
    }
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        storage::edge::metrics::render(&self.registry)
    }
}
