//! The wall clock the embedded store dates results by (when each one expires), as one type, so
//! tests move time on instead of sleeping through it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where "now" comes from: the system clock, or a [`ManualClock`] that moves only when told.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum Clock {
    /// The system's wall clock.
    #[default]
    System,
    /// A clock moved by hand (tests, simulations).
    Manual(ManualClock),
}

impl Clock {
    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::System => system_ms(),
            Clock::Manual(clock) => clock.0.load(Ordering::SeqCst),
        }
    }
}

/// A clock that starts at the system's time and then moves only by [`advance`](Self::advance).
/// Clones share one reading.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock standing at the system's time now.
    pub fn new() -> Self {
        ManualClock(Arc::new(AtomicU64::new(system_ms())))
    }

    /// Moves the clock on by `by`.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.0.fetch_add(by, Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl From<ManualClock> for Clock {
    fn from(clock: ManualClock) -> Self {
        Clock::Manual(clock)
    }
}

fn system_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_clones_share_it() {
        let clock = ManualClock::new();
        let shared = Clock::from(clock.clone());
        let start = shared.now_ms();
        assert_eq!(shared.now_ms(), start);
        clock.advance(Duration::from_secs(90));
        assert_eq!(shared.now_ms(), start + 90_000);
    }

    #[test]
    fn the_system_clock_reads_the_time_of_day() {
        let now = Clock::System.now_ms();
        // After 2020 and before 2100: a reading in milliseconds, not seconds or nanoseconds.
        assert!(
            (1_577_836_800_000..4_102_444_800_000).contains(&now),
            "{now}"
        );
    }
}
