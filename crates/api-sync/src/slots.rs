//! Scan slots: how many scans may run at once (each holds one from its first byte received to
//! its answer), and a gauge of how many are taken, so an operator sees the 503s coming.

use std::sync::Arc;

use http_edge::InFlight;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A fixed number of slots; a request that finds none free is refused at once (503), not queued.
#[derive(Debug)]
pub struct ScanSlots {
    free: Arc<Semaphore>,
    taken: Gauge,
}

/// One taken slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    _counted: InFlight,
}

impl ScanSlots {
    /// `max` slots (at least one), counted in `taken`.
    pub fn new(max: usize, taken: Gauge) -> Self {
        ScanSlots {
            free: Arc::new(Semaphore::new(max.max(1))),
            taken,
        }
    }

    /// A free slot, or `None` when every one is taken.
    pub fn try_take(&self) -> Option<Slot> {
        let permit = Arc::clone(&self.free).try_acquire_owned().ok()?;
        Some(Slot {
            _permit: permit,
            _counted: InFlight::enter(&self.taken),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_run_out_come_back_when_dropped_and_are_counted() {
        let gauge = Gauge::default();
        let slots = ScanSlots::new(2, gauge.clone());
        let first = slots.try_take().unwrap();
        let second = slots.try_take().unwrap();
        assert_eq!(gauge.get(), 2);
        assert!(slots.try_take().is_none());
        drop(first);
        assert_eq!(gauge.get(), 1);
        let third = slots.try_take();
        assert!(third.is_some());
        drop((second, third));
        assert_eq!(gauge.get(), 0);
    }

    #[test]
    fn zero_slots_means_one() {
        let slots = ScanSlots::new(0, Gauge::default());
        let only = slots.try_take();
        assert!(only.is_some());
        assert!(slots.try_take().is_none());
    }
}
