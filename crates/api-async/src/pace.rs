//! Spacing work out in time: [`Pace`] lets at most so many tasks a second start on this
//! instance (re-verdicts of stored objects use it).

use std::time::{Duration, Instant};

/// Spaces re-verdict scans at most `rate` per second on this instance.
#[derive(Debug)]
pub(crate) struct Pace {
    every: Duration,
    next: tokio::sync::Mutex<Instant>,
}

impl Pace {
    pub(crate) fn new(rate: f64) -> Self {
        Pace {
            every: Duration::try_from_secs_f64(1.0 / rate.max(0.001))
                .unwrap_or(Duration::from_secs(1)),
            next: tokio::sync::Mutex::new(Instant::now()),
        }
    }

    /// Waits for this scan's turn.
    pub(crate) async fn turn(&self) {
        let at = {
            let mut next = self.next.lock().await;
            let at = (*next).max(Instant::now());
            *next = at + self.every;
            at
        };
        tokio::time::sleep_until(at.into()).await;
    }
}
