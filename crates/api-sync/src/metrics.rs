//! Prometheus metrics: the shared scan metrics and the scan slots taken, under the `verdict`
//! prefix.

use http_edge::metrics::ScanMetrics;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    /// Scans by result, bytes, duration, engine errors, in flight.
    pub scans: ScanMetrics,
    /// Scan slots taken now.
    pub slots_taken: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("verdict");
        let scans = ScanMetrics::register(&mut registry);
        let slots_taken = Gauge::default();
        registry.register(
            "scan_slots_taken",
            "Scan slots taken now, of max_concurrent_scans; with none free a scan is answered 503",
            slots_taken.clone(),
        );
        Metrics {
            registry,
            scans,
            slots_taken,
        }
    }
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        http_edge::metrics::render(&self.registry)
    }
}
