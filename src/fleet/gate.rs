//! The login gate: a fleet-wide bound on logins in progress and a pace for new QR codes.
//!
//! Without it a cold start of thousands of accounts asks for thousands of QR codes in the
//! same second (a storm from one address against the real service) and runs every login at
//! once. Every Login actor passes through the gate: it holds a slot for the whole attempt
//! (resume, relink, or QR until the scan is confirmed and the session is up), and waits its
//! turn for each new QR code. Accounts waiting for a slot show as `starting`.
//!
//! A slot is a permit of one fair (FIFO) semaphore, so waiting costs no timer and no scan;
//! the QR pace is a single "next free instant" that each request reserves and sleeps until.
//! A QR attempt gives its slot back when its code expires unscanned and queues again, so a
//! fleet of codes nobody scans never starves the resumes behind it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Default bound on logins in progress, fleet-wide (`qqfleet run --max-logins`).
pub const DEFAULT_MAX_LOGINS: usize = 256;
/// Default pace of new QR codes, fleet-wide (`qqfleet run --qr-per-second`).
pub const DEFAULT_QR_PER_SECOND: f64 = 20.0;

/// A slot of the gate; dropping it lets the next login in.
pub type Slot = OwnedSemaphorePermit;

/// The fleet-wide login gate.
#[derive(Debug)]
pub struct LoginGate {
    slots: Arc<Semaphore>,
    max: usize,
    /// Time between two new QR codes; zero for no pace.
    qr_interval: Duration,
    /// The earliest instant the next QR code may be asked for.
    next_qr: Mutex<Option<Instant>>,
}

impl LoginGate {
    /// `max_logins` slots (at least one) and at most `qr_per_second` new codes a second
    /// (zero or less: no pace).
    pub fn new(max_logins: usize, qr_per_second: f64) -> LoginGate {
        let max = max_logins.clamp(1, Semaphore::MAX_PERMITS);
        let qr_interval = if qr_per_second > 0.0 && qr_per_second.is_finite() {
            Duration::from_secs_f64(1.0 / qr_per_second)
        } else {
            Duration::ZERO
        };
        LoginGate {
            slots: Arc::new(Semaphore::new(max)),
            max,
            qr_interval,
            next_qr: Mutex::new(None),
        }
    }

    /// The defaults of `qqfleet run`.
    pub fn with_defaults() -> LoginGate {
        LoginGate::new(DEFAULT_MAX_LOGINS, DEFAULT_QR_PER_SECOND)
    }

    /// A slot now, if one is free.
    pub fn try_enter(&self) -> Option<Slot> {
        self.slots.clone().try_acquire_owned().ok()
    }

    /// Waits for a slot, in arrival order.
    pub async fn enter(&self) -> Slot {
        self.slots
            .clone()
            .acquire_owned()
            .await
            .expect("the gate's semaphore is never closed")
    }

    /// Logins holding a slot now.
    pub fn in_progress(&self) -> usize {
        self.max - self.slots.available_permits()
    }

    /// The bound on logins in progress.
    pub fn max_logins(&self) -> usize {
        self.max
    }

    /// Waits until this caller may ask for a new QR code. Each call reserves the next free
    /// instant, so N callers are spread over N intervals.
    pub async fn qr_turn(&self) {
        if self.qr_interval.is_zero() {
            return;
        }
        let at = {
            let mut next = self.next_qr.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let at = next.map_or(now, |n| n.max(now));
            *next = Some(at + self.qr_interval);
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slots_bound_logins_and_free_on_drop() {
        let gate = Arc::new(LoginGate::new(2, 0.0));
        let a = gate.try_enter().expect("first slot");
        let _b = gate.try_enter().expect("second slot");
        assert!(gate.try_enter().is_none(), "a third login must wait");
        assert_eq!(gate.in_progress(), 2);
        let g = gate.clone();
        let waiter = tokio::spawn(async move { g.enter().await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(a);
        let c = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter gets the freed slot")
            .unwrap();
        assert_eq!(gate.in_progress(), 2);
        drop(c);
        assert_eq!(gate.in_progress(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn qr_codes_are_paced() {
        let gate = Arc::new(LoginGate::new(100, 10.0));
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..21 {
            let g = gate.clone();
            tasks.push(tokio::spawn(async move {
                g.qr_turn().await;
                Instant::now()
            }));
        }
        let mut at = Vec::new();
        for t in tasks {
            at.push(t.await.unwrap() - t0);
        }
        at.sort();
        // 10 a second: the 21st code is asked for two seconds after the first.
        assert_eq!(at[0], Duration::ZERO);
        assert_eq!(at[20], Duration::from_secs(2));
        for w in at.windows(2) {
            assert!(w[1] - w[0] >= Duration::from_millis(99), "{at:?}");
        }
    }
}
