//! Prometheus metrics of scans, shared by both servers: scans by verdict, bytes, duration,
//! engine errors and scans in flight, registered into a service's own registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use scan_core::Report;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EngineLabel {
    engine: String,
}

/// Scan metrics.
#[derive(Debug, Clone)]
pub struct ScanMetrics {
    scans: Family<ResultLabel, Counter>,
    bytes: Counter,
    duration: Histogram,
    engine_errors: Family<EngineLabel, Counter>,
    /// Scans running now.
    pub in_flight: Gauge,
}

impl ScanMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = ScanMetrics {
            scans: Family::default(),
            bytes: Counter::default(),
            duration: Histogram::new([
                0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
            ]),
            engine_errors: Family::default(),
            in_flight: Gauge::default(),
        };
        registry.register("scans", "Scans by result", metrics.scans.clone());
        registry.register(
            "scanned_bytes",
            "Bytes of scanned objects (roots)",
            metrics.bytes.clone(),
        );
        registry.register(
            "scan_duration_seconds",
            "Time from first byte to verdict",
            metrics.duration.clone(),
        );
        registry.register(
            "engine_errors",
            "Objects an engine failed on",
            metrics.engine_errors.clone(),
        );
        registry.register(
            "scans_in_flight",
            "Scans running now",
            metrics.in_flight.clone(),
        );
        metrics
    }

    /// Records a finished scan.
    pub fn record(&self, report: &Report) {
        self.scans
            .get_or_create(&ResultLabel {
                result: report.verdict.as_str().to_owned(),
            })
            .inc();
        self.bytes.inc_by(report.size);
        self.duration.observe(report.timings.total().as_secs_f64());
        for engine in report.engines.iter().filter(|e| e.errors > 0) {
            self.engine_errors
                .get_or_create(&EngineLabel {
                    engine: engine.engine.clone(),
                })
                .inc_by(engine.errors);
        }
    }
}

/// The Prometheus text exposition of `registry`.
pub fn render(registry: &Registry) -> String {
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, registry).is_err() {
        text.clear();
    }
    text
}
