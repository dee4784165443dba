//! Group commit: several writers' durable writes share one flush.
//!
//! The store flushes before it acknowledges (an accepted message, a recorded received
//! message). With many accounts writing at once on several threads, each paying its own
//! flush serialises them behind the disk. Here a writer that asks for durability while a
//! flush is already running waits for the next one, which covers its write and those of
//! every writer that arrived meanwhile: one flush for the group, and still no caller returns
//! before a flush that started after its write has finished.

use std::sync::{Condvar, Mutex};

#[derive(Debug, Default)]
struct State {
    /// Tickets handed out; a ticket is taken after the caller's write.
    next: u64,
    /// Every ticket below this one is durable.
    done: u64,
    /// A flush is running.
    flushing: bool,
    /// Flushes run (for tests and the curious).
    flushes: u64,
}

/// Coalesces flushes of one database.
#[derive(Debug, Default)]
pub struct GroupCommit {
    state: Mutex<State>,
    cv: Condvar,
}

impl GroupCommit {
    /// Returns once a flush (`flush`) that started after this call has succeeded; the call
    /// that runs it returns its error, and the callers it covered try again on their own.
    pub fn commit<E>(&self, flush: impl Fn() -> Result<(), E>) -> Result<(), E> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mine = s.next;
        s.next += 1;
        loop {
            if s.done > mine {
                return Ok(());
            }
            if !s.flushing {
                s.flushing = true;
                // Everything up to here was written before this flush starts.
                let covers = s.next;
                drop(s);
                let r = flush();
                s = self.state.lock().unwrap_or_else(|e| e.into_inner());
                s.flushing = false;
                s.flushes += 1;
                if r.is_ok() {
                    s.done = s.done.max(covers);
                }
                self.cv.notify_all();
                r?;
                continue;
            }
            s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Flushes run so far.
    pub fn flushes(&self) -> u64 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).flushes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Barrier};

    #[test]
    fn concurrent_writers_share_flushes_and_each_waits_for_one_after_its_write() {
        let gc = Arc::new(GroupCommit::default());
        // A "disk": writes land in `written`, a flush copies them to `durable` slowly.
        let written = Arc::new(AtomicU64::new(0));
        let durable = Arc::new(AtomicU64::new(0));
        let threads = 8;
        let per = 50;
        let barrier = Arc::new(Barrier::new(threads));
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                let (gc, w, d, b) = (
                    gc.clone(),
                    written.clone(),
                    durable.clone(),
                    barrier.clone(),
                );
                std::thread::spawn(move || {
                    b.wait();
                    for _ in 0..per {
                        let mine = w.fetch_add(1, Ordering::SeqCst) + 1;
                        gc.commit(|| {
                            let upto = w.load(Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_micros(500));
                            d.fetch_max(upto, Ordering::SeqCst);
                            Ok::<(), ()>(())
                        })
                        .unwrap();
                        assert!(
                            d.load(Ordering::SeqCst) >= mine,
                            "acknowledged before durable"
                        );
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let total = (threads * per) as u64;
        assert_eq!(durable.load(Ordering::SeqCst), total);
        assert!(
            gc.flushes() < total,
            "{} flushes for {total} writes",
            gc.flushes()
        );
    }

    #[test]
    fn a_failed_flush_is_reported_and_the_next_caller_flushes_again() {
        let gc = GroupCommit::default();
        assert_eq!(gc.commit(|| Err("disk")), Err("disk"));
        assert_eq!(gc.commit(|| Ok::<(), &str>(())), Ok(()));
        assert_eq!(gc.flushes(), 2);
    }
}
