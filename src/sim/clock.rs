//! The simulated clock.
//!
//! Lifetimes that are hours or days long in the real service (session lifetime, QR lifetime,
//! lockout cool-down, rate windows) are measured on this clock so tests can jump over them
//! with `POST /sim/clock/advance`. It runs at the speed of the wall clock plus an offset that
//! only grows. The poll hold is not on this clock: it is a real socket wait.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Simulated time in milliseconds since the Unix epoch.
#[derive(Debug)]
pub struct Clock {
    started: Instant,
    started_unix_ms: u64,
    offset_ms: AtomicU64,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock that starts at the current wall-clock time.
    pub fn new() -> Clock {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Clock {
            started: Instant::now(),
            started_unix_ms: unix,
            offset_ms: AtomicU64::new(0),
        }
    }

    /// Current simulated time, ms since the epoch.
    pub fn now_ms(&self) -> u64 {
        self.started_unix_ms
            + self.started.elapsed().as_millis() as u64
            + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Current simulated time, seconds since the epoch (the `time` field of events).
    pub fn now_secs(&self) -> u64 {
        self.now_ms() / 1000
    }

    /// Moves simulated time forward; returns the new time in ms.
    pub fn advance_ms(&self, ms: u64) -> u64 {
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
        self.now_ms()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_time_forward() {
        let c = Clock::new();
        let a = c.now_ms();
        let b = c.advance_ms(3_600_000);
        assert!(b >= a + 3_600_000);
    }
}
