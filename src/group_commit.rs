//! Group commit: several writers' durable writes share one flush.
//!
//! The store flushes before it acknowledges (an accepted message, a recorded received
//! message). With many accounts writing at once on several threads, each paying its own
//! flush serialises them behind the disk. Here a writer that asks for durability while a
//! flush is already running waits for the next one, which covers its write and those of
//! every writer that arrived meanwhile: one flush for the group, and still no caller returns
//! before a flush that started after its write has finished.
//!
//! [`GroupCommit::commit_async`] is the same for the actors: a waiter holds no thread (an
//! account on an Arbiter thread that blocked in a flush held up every account of that
//! thread, and at most one writer per thread could join a group), and a leader runs the
//! flush on a blocking thread. Both forms share the same tickets and the same flushes.

use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Told of every successful flush: how long it took and how many durable writes it covered.
/// Set once by the process wiring (`run.rs` points it at the metrics), since this floor
/// knows nothing of the layers above it.
pub type FlushObserver = fn(Duration, u64);

static OBSERVER: OnceLock<FlushObserver> = OnceLock::new();

/// Sets the process's [`FlushObserver`] (the first call wins).
pub fn observe_flushes(f: FlushObserver) {
    let _ = OBSERVER.set(f);
}

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
    /// Tickets the last successful flush made durable: the load on the store.
    last_group: u64,
}

/// A leader of [`GroupCommit::commit_async`] waits this long before it flushes when the last
/// flush covered at least [`GATHER_FROM`] writes: under load the writers that arrive meanwhile
/// share its flush instead of starting the next one. Each flush seals sled's log buffer and
/// hands its write to sled's IO threads, and in an off-CPU profile at 1,000 accounts under
/// load, the Arbiter threads' waits were mostly on the queue lock of that hand-off and on
/// sled's process-wide lock: fewer, larger flushes are less of both. Under load a message
/// waits hundreds of milliseconds for its Arbiter thread anyway, so the gather costs no
/// latency there; under light load (one writer per flush) nobody waits, so latency at
/// 100 msg/s is unchanged.
///
/// Measured at 1,000 accounts, 20,000 queued messages, one event per poll answer (quick runs
/// of `make bench`, one after another): 1,956-2,645 msg/s (median 2,160, nine runs) with the
/// earlier 1 ms from 8 writes; 2,427-2,731 with 2 ms from 2; **2,779-2,829 with 3 ms from 2**;
/// 2,771-2,895 with 5 ms from 2 (two runs each). With up to 10 events per answer:
/// 3,292-4,402 (median 3,630, seven runs); 4,503-5,412; **4,896-4,924**; 4,066-4,130.
pub const GATHER: Duration = Duration::from_millis(3);
/// See [`GATHER`].
pub const GATHER_FROM: u64 = 2;

/// Coalesces flushes of one database.
#[derive(Debug, Default)]
pub struct GroupCommit {
    state: Mutex<State>,
    cv: Condvar,
    /// Wakes the waiters of [`GroupCommit::commit_async`] when a flush ends.
    notify: tokio::sync::Notify,
}

impl GroupCommit {
    /// Ends the running flush, which covered every ticket below `covers` and took `took`
    /// (`None`: it never ran).
    fn finish(&self, covers: u64, ok: bool, took: Option<Duration>) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.flushing = false;
        s.flushes += 1;
        let mut group = 0;
        if ok {
            group = covers.saturating_sub(s.done);
            s.last_group = group;
            s.done = s.done.max(covers);
        }
        drop(s);
        self.cv.notify_all();
        self.notify.notify_waiters();
        if let (true, Some(took), Some(f)) = (ok, took, OBSERVER.get()) {
            f(took, group);
        }
    }

    /// [`GroupCommit::commit`] without holding the caller's thread: resolves once a flush
    /// that started after this call has succeeded. A caller that must lead runs `flush` on a
    /// blocking thread of the runtime, which ends the flush even if this future is dropped
    /// meanwhile.
    pub async fn commit_async<E, F>(self: Arc<Self>, flush: F) -> Result<(), E>
    where
        E: Send + 'static,
        F: Fn() -> Result<(), E> + Send + Sync + 'static,
    {
        let flush = Arc::new(flush);
        let mine = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let mine = s.next;
            s.next += 1;
            mine
        };
        loop {
            // Registered before the state is read, so the end of a flush is never missed.
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let lead = {
                let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if s.done > mine {
                    return Ok(());
                }
                if s.flushing {
                    None
                } else {
                    s.flushing = true;
                    Some(s.last_group >= GATHER_FROM)
                }
            };
            let Some(gather) = lead else {
                notified.await;
                continue;
            };
            // Ends the flush (as failed) if this future is dropped from here on.
            let mut lead = Lead {
                gc: self.clone(),
                covers: 0,
                ended: false,
            };
            // Every ticket taken so far was taken after its write: the flush covers them (and,
            // when it gathers, those taken until it starts).
            lead.covers = self.state.lock().unwrap_or_else(|e| e.into_inner()).next;
            let f = flush.clone();
            // The gathering wait is part of the flush, on the thread that runs it, never an
            // await here: while this leader holds `flushing`, a blocking writer
            // ([`GroupCommit::commit`]) on the same runtime thread waits for its end, and a
            // leader parked in a timer on that thread would never be polled again (every
            // account's writes stalled; seen once in five chaos soaks).
            let run = move || {
                if gather {
                    std::thread::sleep(GATHER);
                    lead.covers = lead.gc.state.lock().unwrap_or_else(|e| e.into_inner()).next;
                }
                let t = Instant::now();
                let r = f();
                lead.end(r.is_ok(), t.elapsed());
                r
            };
            // On the runtime's blocking threads (a paused test clock waits for them too);
            // without a runtime, here.
            let r = match tokio::runtime::Handle::try_current() {
                Ok(rt) => match rt.spawn_blocking(run).await {
                    Ok(r) => r,
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    // Cancelled with its runtime before it ran: the Lead ended it; again.
                    Err(_) => continue,
                },
                Err(_) => run(),
            };
            r?;
        }
    }

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
                let t = Instant::now();
                let r = flush();
                self.finish(covers, r.is_ok(), Some(t.elapsed()));
                r?;
                s = self.state.lock().unwrap_or_else(|e| e.into_inner());
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

/// The flush a leader of [`GroupCommit::commit_async`] started: ended (as failed) if it is
/// dropped before it ran or while it panicked, so no waiter waits for it forever.
struct Lead {
    gc: Arc<GroupCommit>,
    covers: u64,
    ended: bool,
}

impl Lead {
    fn end(mut self, ok: bool, took: Duration) {
        self.ended = true;
        self.gc.finish(self.covers, ok, Some(took));
    }
}

impl Drop for Lead {
    fn drop(&mut self) {
        if !self.ended {
            self.gc.finish(self.covers, false, None);
        }
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn async_and_blocking_writers_share_flushes_and_each_waits_for_one_after_its_write() {
        let gc = Arc::new(GroupCommit::default());
        let written = Arc::new(AtomicU64::new(0));
        let durable = Arc::new(AtomicU64::new(0));
        let flush = {
            let (w, d) = (written.clone(), durable.clone());
            move || {
                let upto = w.load(Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_micros(500));
                d.fetch_max(upto, Ordering::SeqCst);
                Ok::<(), ()>(())
            }
        };
        let (tasks, threads, per) = (40, 2, 10);
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..tasks {
            let (gc, w, d, f) = (gc.clone(), written.clone(), durable.clone(), flush.clone());
            set.spawn(async move {
                for _ in 0..per {
                    let mine = w.fetch_add(1, Ordering::SeqCst) + 1;
                    gc.clone().commit_async(f.clone()).await.unwrap();
                    assert!(
                        d.load(Ordering::SeqCst) >= mine,
                        "acknowledged before durable"
                    );
                }
            });
        }
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                let (gc, w, d, f) = (gc.clone(), written.clone(), durable.clone(), flush.clone());
                std::thread::spawn(move || {
                    for _ in 0..per {
                        let mine = w.fetch_add(1, Ordering::SeqCst) + 1;
                        gc.commit(&f).unwrap();
                        assert!(
                            d.load(Ordering::SeqCst) >= mine,
                            "acknowledged before durable"
                        );
                    }
                })
            })
            .collect();
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
        for h in hs {
            h.join().unwrap();
        }
        let total = ((tasks + threads) * per) as u64;
        assert_eq!(durable.load(Ordering::SeqCst), total);
        assert!(
            gc.flushes() < total / 2,
            "{} flushes for {total} writes",
            gc.flushes()
        );
    }

    /// Under load (the last flush covered many writes) a leader waits [`GATHER`] before it
    /// flushes, and a writer that arrives meanwhile shares its flush; under light load it
    /// flushes at once and the late writer needs a flush of its own.
    #[tokio::test]
    async fn under_load_a_leader_gathers_the_writers_that_arrive_before_it_flushes() {
        for (last_group, want_flushes) in [(GATHER_FROM, 1), (1, 2)] {
            let gc = Arc::new(GroupCommit::default());
            gc.state.lock().unwrap().last_group = last_group;
            let flush = || Ok::<(), ()>(());
            let a = tokio::spawn(gc.clone().commit_async(flush));
            // The first writer takes its ticket and leads (then gathers, or flushes at once).
            tokio::task::yield_now().await;
            let b = tokio::spawn(gc.clone().commit_async(flush));
            tokio::task::yield_now().await;
            a.await.unwrap().unwrap();
            b.await.unwrap().unwrap();
            assert_eq!(
                gc.flushes(),
                want_flushes,
                "last flush covered {last_group} writes"
            );
        }
    }

    /// A leader that gathers and a blocking writer on the same single-threaded runtime (an
    /// actor's Arbiter): the writer blocks the thread until the leader's flush ends, so that
    /// flush must end without this thread. It once waited in a timer here, and both hung.
    #[test]
    fn a_blocking_writer_on_the_thread_of_a_gathering_leader_does_not_hang_it() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let gc = Arc::new(GroupCommit::default());
                gc.state.lock().unwrap().last_group = GATHER_FROM;
                let flush = || Ok::<(), ()>(());
                let leader = tokio::spawn(gc.clone().commit_async(flush));
                // The leader takes `flushing` and starts to gather.
                tokio::task::yield_now().await;
                assert!(gc.state.lock().unwrap().flushing, "the first writer leads");
                // A blocking writer on this very thread.
                gc.commit(flush).unwrap();
                leader.await.unwrap().unwrap();
            });
            tx.send(()).unwrap();
        });
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("the blocking writer and the gathering leader hung each other");
    }

    #[tokio::test]
    async fn a_failed_async_flush_is_reported_and_the_next_caller_flushes_again() {
        let gc = Arc::new(GroupCommit::default());
        assert_eq!(gc.clone().commit_async(|| Err("disk")).await, Err("disk"));
        assert_eq!(gc.clone().commit_async(|| Ok::<(), &str>(())).await, Ok(()));
        assert_eq!(gc.flushes(), 2);
    }

    #[test]
    fn a_failed_flush_is_reported_and_the_next_caller_flushes_again() {
        let gc = GroupCommit::default();
        assert_eq!(gc.commit(|| Err("disk")), Err("disk"));
        assert_eq!(gc.commit(|| Ok::<(), &str>(())), Ok(()));
        assert_eq!(gc.flushes(), 2);
    }

    /// The observer (the metrics, in the process) hears of each successful flush with its
    /// duration and the writes it covered, and of no failed one. Other tests of this binary
    /// flush too, in parallel, and the observer is process-wide; a blocking flush is observed
    /// on the thread that ran it, so this test counts only what its own thread reported.
    #[test]
    fn the_observer_hears_of_each_successful_flush_and_not_of_a_failed_one() {
        type Seen = Vec<(std::thread::ThreadId, Duration, u64)>;
        static SEEN: Mutex<Seen> = Mutex::new(Vec::new());
        observe_flushes(|took, writes| {
            SEEN.lock()
                .unwrap()
                .push((std::thread::current().id(), took, writes))
        });
        let gc = GroupCommit::default();
        gc.commit(|| {
            std::thread::sleep(Duration::from_millis(40));
            Ok::<(), &str>(())
        })
        .unwrap();
        assert_eq!(gc.commit(|| Err("disk")), Err("disk"));
        let me = std::thread::current().id();
        let mine: Vec<(Duration, u64)> = SEEN
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _, _)| *t == me)
            .map(|(_, took, w)| (*took, *w))
            .collect();
        assert_eq!(mine.len(), 1, "one flush succeeded, one failed: {mine:?}");
        assert!(mine[0].0 >= Duration::from_millis(40), "{mine:?}");
        assert_eq!(mine[0].1, 1, "{mine:?}");
    }
}
