//! The simulator's shared state: configuration, clock, world and fault queue.

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Mutex, MutexGuard};

use super::clock::Clock;
use super::faults::Faults;
use super::world::World;
use super::SimConfig;

/// Shared by every handler through an `Arc`.
#[derive(Debug)]
pub struct Sim {
    pub cfg: SimConfig,
    pub clock: Clock,
    world: Mutex<World>,
    faults: Mutex<Faults>,
    /// Polls currently held (for `/sim/stats`); maintained by a drop guard so polls whose
    /// client went away are not counted.
    pub pending_polls: AtomicUsize,
    /// Where the simulator listens; the fallback for URLs it hands out.
    pub addr: SocketAddr,
    /// Most events per poll2 answer, never 0: `cfg.poll_batch` (at least 1) at start, `POST
    /// /sim/poll-batch` (checked to 1..=100) after.
    pub poll_batch: AtomicUsize,
}

impl Sim {
    pub fn new(cfg: SimConfig, addr: SocketAddr) -> Sim {
        Sim {
            poll_batch: AtomicUsize::new(cfg.poll_batch.max(1)),
            cfg,
            clock: Clock::new(),
            world: Mutex::new(World::default()),
            faults: Mutex::new(Faults::default()),
            pending_polls: AtomicUsize::new(0),
            addr,
        }
    }

    /// The world. A handler that panicked while holding the lock must not take the whole
    /// simulator down, so a poisoned lock is used as is.
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The fault queue.
    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Simulated now, ms.
    pub fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Session lifetime in ms.
    pub fn lifetime_ms(&self) -> u64 {
        self.cfg.session_lifetime.as_millis() as u64
    }
}
