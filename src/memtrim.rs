//! Gives freed heap memory back to the system, twice a minute, and reports the heap.
//!
//! A fleet's work comes in bursts (thousands of logins at a start, relinks after an outage, a
//! wave of messages), and what a burst freed can stay resident for good: measured with
//! `make soak` under glibc's malloc, 1,000 accounts grew 38 MB in one step and never came
//! down. mimalloc (the allocator, see [`crate::heap`]) returns free pages on its own after a
//! short delay, but only from the threads that keep allocating; a thread gone quiet keeps
//! its free pages. A forced collection every [`EVERY`] returns those too. The little memory
//! that C code takes from glibc's malloc directly is trimmed as well.

use std::time::Duration;

use crate::events::{emit, HeapTrimmed};

/// How often the heap is trimmed.
pub const EVERY: Duration = Duration::from_secs(30);

/// Trims now, then reports the heap's live and kept-free bytes ([`HeapTrimmed`]).
pub fn trim() {
    crate::heap::collect();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas, under their locks.
    unsafe {
        libc::malloc_trim(0);
    }
    let in_use_bytes = crate::heap::live_bytes();
    emit(HeapTrimmed {
        in_use_bytes,
        // What mimalloc holds from the system beyond the live objects: free room kept for
        // reuse, its own metadata, and arena memory committed ahead of use (on Linux not
        // resident until touched, so this is no RSS figure).
        free_bytes: crate::heap::committed_bytes().saturating_sub(in_use_bytes),
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
