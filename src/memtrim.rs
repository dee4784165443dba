//! Gives freed heap memory back to the system, twice a minute.
//!
//! glibc's malloc keeps the pages of freed memory for reuse. A fleet's work comes in bursts
//! (thousands of logins at a start, relinks after an outage, a wave of messages), and what a
//! burst freed then stays resident for good: measured with `make soak`, 1,000 accounts grew
//! 38 MB in one step and never came down, and the pool branch found 37-52 MB freed but
//! resident after a resume burst. `malloc_trim(0)` returns those pages (glibc ≥ 2.8 also
//! releases free pages in the middle of the heap); it takes about a millisecond here.

use std::time::Duration;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
use crate::events::{emit, HeapTrimmed};

/// How often the heap is trimmed.
pub const EVERY: Duration = Duration::from_secs(30);

/// Trims now, then reports the heap's live and free bytes ([`HeapTrimmed`]). A no-op where
/// the allocator is not glibc's.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim and mallinfo2 only walk the allocator's own arenas, under its locks.
    let info = unsafe {
        libc::malloc_trim(0);
        libc::mallinfo2()
    };
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    emit(HeapTrimmed {
        // Small blocks in use plus the large ones glibc gave their own mappings.
        in_use_bytes: (info.uordblks + info.hblkhd) as u64,
        free_bytes: info.fordblks as u64,
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
