//! Prometheus metrics: scan-core's scan metrics plus jobs submitted (by outcome), jobs finished
//! (by status), callbacks (delivered or given up) and the queue's depth, under `verdict`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use scan_core::metrics::ScanMetrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Status {
    status: String,
}

/// The service's metrics.
pub(crate) struct Metrics {
    registry: Registry,
    /// Scans by result, bytes, duration, engine errors, in flight.
    pub(crate) scans: ScanMetrics,
    submitted: Family<Outcome, Counter>,
    finished: Family<Status, Counter>,
    callbacks: Family<Outcome, Counter>,
    queue_depth: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("verdict");
        let scans = ScanMetrics::register(&mut registry);
        let submitted = Family::<Outcome, Counter>::default();
        let finished = Family::<Status, Counter>::default();
        let callbacks = Family::<Outcome, Counter>::default();
        let queue_depth = Gauge::default();
        registry.register(
            "jobs_submitted",
            "Job submissions by outcome (queued, conflict, full)",
            submitted.clone(),
        );
        registry.register(
            "jobs_finished",
            "Jobs finished by status (clean, infected, no)",
            finished.clone(),
        );
        registry.register(
            "callbacks",
            "Callbacks by outcome (delivered, failed)",
            callbacks.clone(),
        );
        registry.register(
            "jobs_pending",
            "Jobs queued or running (all instances, with Redis)",
            queue_depth.clone(),
        );
        Metrics {
            registry,
            scans,
            submitted,
            finished,
            callbacks,
            queue_depth,
        }
    }
}

impl Metrics {
    /// A submission was queued, refused as a conflict, or refused because the queue was full.
    pub(crate) fn submitted(&self, outcome: &'static str) {
        self.submitted.get_or_create(&Outcome { outcome }).inc();
    }

    /// A job's result was stored with this status.
    pub(crate) fn finished(&self, status: &str) {
        self.finished
            .get_or_create(&Status {
                status: status.to_owned(),
            })
            .inc();
    }

    /// A callback was delivered, or given up on.
    pub(crate) fn callback(&self, delivered: bool) {
        let outcome = if delivered { "delivered" } else { "failed" };
        self.callbacks.get_or_create(&Outcome { outcome }).inc();
    }

    /// The Prometheus text exposition, with the queue depth as of now.
    pub(crate) fn render(&self, pending: Option<usize>) -> String {
        if let Some(pending) = pending {
            self.queue_depth.set(pending as i64);
        }
        scan_core::metrics::render(&self.registry)
    }
}
