//! Prometheus metrics: scan-core's scan metrics plus jobs submitted (by outcome), jobs finished
//! (by status), callbacks (delivered or given up) and the queue's depth, under `verdict`.

use http_edge::metrics::ScanMetrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

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
    actions: Family<Outcome, Counter>,
    queue_depth: Gauge,
    /// Jobs finished in the last hour, by status, for the status page.
    pub(crate) last_hour: LastHour,
}

/// Counts of finished jobs per minute over the last hour, by status (this instance's only).
#[derive(Debug, Default)]
pub(crate) struct LastHour {
    /// (minute since the epoch, status) -> count; at most 60 minutes are kept.
    minutes: std::sync::Mutex<std::collections::BTreeMap<(u64, String), u64>>,
}

impl LastHour {
    fn minute_now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            / 60
    }

    fn record(&self, status: &str) {
        self.record_at(Self::minute_now(), status);
    }

    fn record_at(&self, minute: u64, status: &str) {
        let mut minutes = self.minutes.lock().unwrap_or_else(|e| e.into_inner());
        minutes.retain(|(m, _), _| m + 60 > minute);
        *minutes.entry((minute, status.to_owned())).or_default() += 1;
    }

    /// Status -> jobs finished in the 60 minutes up to now.
    pub(crate) fn totals(&self) -> std::collections::BTreeMap<String, u64> {
        self.totals_at(Self::minute_now())
    }

    fn totals_at(&self, minute: u64) -> std::collections::BTreeMap<String, u64> {
        let minutes = self.minutes.lock().unwrap_or_else(|e| e.into_inner());
        let mut totals = std::collections::BTreeMap::new();
        for ((m, status), count) in minutes.iter() {
            if m + 60 > minute {
                *totals.entry(status.clone()).or_default() += count;
            }
        }
        totals
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("verdict");
        let scans = ScanMetrics::register(&mut registry);
        let submitted = Family::<Outcome, Counter>::default();
        let finished = Family::<Status, Counter>::default();
        let callbacks = Family::<Outcome, Counter>::default();
        let actions = Family::<Outcome, Counter>::default();
        registry.register(
            "object_actions",
            "Actions on scanned objects (tagging after bucket events) by outcome (done, failed)",
            actions.clone(),
        );
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
            actions,
            queue_depth,
            last_hour: LastHour::default(),
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
        self.last_hour.record(status);
    }

    /// A callback was delivered, or given up on.
    pub(crate) fn callback(&self, delivered: bool) {
        let outcome = if delivered { "delivered" } else { "failed" };
        self.callbacks.get_or_create(&Outcome { outcome }).inc();
    }

    /// An action on a scanned object was done, or failed.
    pub(crate) fn action(&self, done: bool) {
        let outcome = if done { "done" } else { "failed" };
        self.actions.get_or_create(&Outcome { outcome }).inc();
    }

    /// The Prometheus text exposition, with the queue depth as of now.
    pub(crate) fn render(&self, pending: Option<usize>) -> String {
        if let Some(pending) = pending {
            self.queue_depth.set(pending as i64);
        }
        http_edge::metrics::render(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_hour_forgets_older_minutes() {
        let hour = LastHour::default();
        hour.record_at(1000, "clean");
        hour.record_at(1000, "clean");
        hour.record_at(1030, "infected");
        hour.record_at(1059, "no");
        let totals = hour.totals_at(1059);
        assert_eq!(totals["clean"], 2);
        assert_eq!(totals["infected"], 1);
        assert_eq!(totals["no"], 1);
        let later = hour.totals_at(1060);
        assert!(
            !later.contains_key("clean"),
            "minute 1000 is over an hour before 1060"
        );
        assert_eq!(later["infected"], 1);
    }
}
