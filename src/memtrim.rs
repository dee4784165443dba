//! Gives freed heap memory back to the system, twice a minute, and reports the heap.
//!
//! A fleet's work comes in bursts (thousands of logins at a start, relinks after an outage, a
//! wave of messages), and what a burst freed can stay resident for good: measured with
//! `make soak` under glibc's malloc, 1,000 accounts grew 38 MB in one step and never came
//! down. mimalloc (the allocator, see [`crate::heap`]) returns free pages on its own after a
//! short delay, but only from the threads that keep allocating; a thread gone quiet keeps
//! its free pages, and a collection reaches only the heap of the thread that asks. So every
//! [`EVERY`] each thread of the process's own is asked to collect its heap: the runtime's
//! workers and the Arbiters when they next park, woken for it ([`on_every_trim`]), the
//! accounts watcher after its next scan. The little memory
//! that C code takes from glibc's malloc directly is trimmed as well.

use std::sync::Mutex;
use std::time::Duration;

use crate::events::{emit, HeapTrimmed};

/// How often the heap is trimmed.
pub const EVERY: Duration = Duration::from_secs(30);

/// What wakes the threads that collect their own heap when asked
/// ([`crate::heap::collect_if_asked`]), run after each trim's request.
type Nudge = Box<dyn Fn() + Send>;

static NUDGES: Mutex<Vec<Nudge>> = Mutex::new(Vec::new());

/// Runs `nudge` after every trim has asked each thread to collect its heap: it wakes the
/// threads that collect when asked (an Arbiter, a runtime's parked workers), which a quiet
/// fleet would otherwise leave asleep with their free pages.
pub fn on_every_trim(nudge: impl Fn() + Send + 'static) {
    NUDGES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Box::new(nudge));
}

/// Trims now, then reports the heap's live and kept-free bytes ([`HeapTrimmed`]).
pub fn trim() {
    crate::heap::ask_every_thread();
    for nudge in NUDGES.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        nudge();
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas, under their locks.
    unsafe {
        libc::malloc_trim(0);
    }
    let in_use_bytes = crate::heap::live_bytes();
    emit(HeapTrimmed {
        in_use_bytes,
        free_bytes: crate::heap::kept_free_bytes(),
    });
}

/// Starts the trimming thread (it runs until the process exits).
pub fn spawn() {
    let _ = std::thread::Builder::new()
        .name("memory-trim".into())
        .spawn(|| loop {
            std::thread::sleep(EVERY);
            trim();
        });
}
