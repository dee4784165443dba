//! The process's allocator: mimalloc, with a count of the bytes held by live objects.
//!
//! Why mimalloc: under a wave of messages at 10,000 accounts, glibc's malloc was 19-23 % of
//! the fleet's CPU samples (most of it under sled's copy-on-write node updates), and up to
//! half of them while a burst was answered; mimalloc's per-thread free lists cut that (the
//! figures are in `docs/PERFORMANCE.md`).
//!
//! Why a count of our own: glibc's `mallinfo2` told the live bytes for free, and the soak
//! and `qqfleet_heap_in_use_bytes` rely on them to tell a leak (live bytes grow) from memory
//! kept for reuse (RSS grows, live bytes do not). mimalloc keeps no such count outside its
//! statistics build (which costs on every allocation). So every allocation and free adds its
//! size to a per-thread tally, which moves into one process-wide counter once it has drifted
//! [`SLACK`] bytes: a thread-local add on each call, a shared atomic add only now and then.
//! The count is exact to within `SLACK` per thread; a thread that exits takes its last tally
//! (at most `SLACK`) with it.
//!
//! Why large zeroed blocks are mapped apart: a block asked for zeroed is usually a table that
//! is filled in slowly or never (sled makes 41 histograms of 65,536 counters, 512 KiB each,
//! when the store opens, and writes none of them in its `no_metrics` build). mimalloc gives
//! such a block from memory it has used before whenever it has some, and then must write its
//! zeros, so every page becomes resident. Whether it had some depended on what ran before
//! the store opened: an empty fleet kept 164 KiB of the 20.5 MB resident, a fleet that had
//! just parsed 1,000 account files 15.4 MB. A block of [`MAP_ZEROED_MIN`] or more asked for
//! zeroed is mapped from the system on its own instead, and the system gives a page only when
//! it is first written.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicIsize, Ordering};

use mimalloc::MiMalloc;

/// How far a thread's tally may drift before it moves into the shared counter.
pub const SLACK: isize = 32 << 10;

/// Zeroed blocks of this size or more are mapped from the system on their own (see the
/// module's doc). Below it they are the working buffers mimalloc reuses well; the largest
/// size class mimalloc keeps in shared pages is 512 KiB.
pub const MAP_ZEROED_MIN: usize = 256 << 10;

/// Alignments a fresh mapping always meets (the smallest page size of the platforms we run on).
const MAP_ALIGN_MAX: usize = 4096;

static LIVE: AtomicIsize = AtomicIsize::new(0);

/// Bytes in live blocks mapped apart ([`MAP_ZEROED_MIN`]): counted live, but outside
/// mimalloc's commit, so [`kept_free_bytes`] leaves them out. They are few and large, so
/// one shared add each costs nothing.
static MAPPED: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    // A `const` initialiser and no destructor: reading it never allocates or registers
    // anything, so the allocator itself may use it.
    static TALLY: Cell<isize> = const { Cell::new(0) };
}

/// mimalloc, counting.
pub struct Counted;

#[global_allocator]
static GLOBAL: Counted = Counted;

#[inline]
fn tally(delta: isize) {
    let moved = TALLY.try_with(|t| {
        let v = t.get() + delta;
        if (-SLACK..=SLACK).contains(&v) {
            t.set(v);
        } else {
            t.set(0);
            LIVE.fetch_add(v, Ordering::Relaxed);
        }
    });
    if moved.is_err() {
        LIVE.fetch_add(delta, Ordering::Relaxed);
    }
}

/// A block of `size` bytes, zeroed, mapped on its own and counted in [`MAPPED`]; null if the
/// system refuses.
///
/// # Safety
/// `size` is not zero.
unsafe fn map_zeroed(size: usize) -> *mut u8 {
    // SAFETY: a fresh private anonymous mapping touches no existing memory.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return std::ptr::null_mut();
    }
    MAPPED.fetch_add(size as isize, Ordering::Relaxed);
    p.cast()
}

/// Gives back a block of `size` bytes that [`map_zeroed`] (or a remap) made.
///
/// # Safety
/// `ptr` is such a block, live, of `size` bytes, and not used after.
unsafe fn unmap(ptr: *mut u8, size: usize) {
    // SAFETY: the whole mapping made for this block (the caller's promise).
    unsafe { libc::munmap(ptr.cast(), size) };
    MAPPED.fetch_sub(size as isize, Ordering::Relaxed);
}

/// Whether a live block of `size` bytes at `ptr` is one of [`map_zeroed`]'s: it is large
/// enough and lies outside every region mimalloc manages.
#[inline]
fn is_mapped(ptr: *mut u8, size: usize) -> bool {
    // SAFETY: mi_is_in_heap_region only looks `ptr` up in mimalloc's page map.
    size >= MAP_ZEROED_MIN && !unsafe { libmimalloc_sys::mi_is_in_heap_region(ptr.cast()) }
}

// SAFETY: every call is passed on to mimalloc, which upholds `GlobalAlloc`, except zeroed
// blocks of `MAP_ZEROED_MIN` bytes or more, which are fresh private mappings (zeroed by the
// system, page-aligned, which meets any alignment up to `MAP_ALIGN_MAX`), recognised on
// free and realloc because mimalloc does not manage them, and unmapped or remapped there.
// The tally only reads the sizes.
unsafe impl GlobalAlloc for Counted {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { MiMalloc.alloc(layout) };
        if !p.is_null() {
            tally(layout.size() as isize);
        }
        p
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = if layout.size() >= MAP_ZEROED_MIN && layout.align() <= MAP_ALIGN_MAX {
            unsafe { map_zeroed(layout.size()) }
        } else {
            unsafe { MiMalloc.alloc_zeroed(layout) }
        };
        if !p.is_null() {
            tally(layout.size() as isize);
        }
        p
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_mapped(ptr, layout.size()) {
            unsafe { unmap(ptr, layout.size()) };
        } else {
            unsafe { MiMalloc.dealloc(ptr, layout) };
        }
        tally(-(layout.size() as isize));
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = if !is_mapped(ptr, layout.size()) {
            unsafe { MiMalloc.realloc(ptr, layout, new_size) }
        } else if new_size >= MAP_ZEROED_MIN {
            // SAFETY: moves the whole mapping; pages added at its end read as zero.
            let q =
                unsafe { libc::mremap(ptr.cast(), layout.size(), new_size, libc::MREMAP_MAYMOVE) };
            if q == libc::MAP_FAILED {
                std::ptr::null_mut()
            } else {
                MAPPED.fetch_add(
                    new_size as isize - layout.size() as isize,
                    Ordering::Relaxed,
                );
                q.cast()
            }
        } else {
            // Shrunk below the mark: back into mimalloc, so `is_mapped` stays true to it.
            // SAFETY: `new_size` is not zero and the alignment is the block's own (checked
            // when it was mapped).
            let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
            let q = unsafe { MiMalloc.alloc(new) };
            if !q.is_null() {
                // SAFETY: both blocks hold at least `new_size` bytes and do not overlap.
                unsafe { std::ptr::copy_nonoverlapping(ptr, q, new_size) };
                unsafe { unmap(ptr, layout.size()) };
            }
            q
        };
        if !p.is_null() {
            tally(new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// mimalloc's `mi_option_purge_delay` (its place in `mi_option_e` of the pinned v3 source).
const OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets the allocator up for a long-lived fleet; called first thing in `main`.
///
/// Free pages are given back to the system at once (`purge_delay` 0, against mimalloc's
/// default of a second), unless `MIMALLOC_PURGE_DELAY` says otherwise. mimalloc purges
/// delayed pages only when the thread that freed them allocates again, so an idle fleet kept
/// what its start had freed. Measured with `make bench`'s quick runs at 100 accounts, both
/// without transparent huge pages (one run each): 147.1 KiB per idle account with the
/// default delay, 123.3 with none; throughput at 10,000 accounts was 5,335 / 5,915 msg/s
/// with none, against 5,617 / 5,940 with the default (and huge pages).
pub fn configure() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one of mimalloc's option values; any value is valid for this one.
        unsafe { libmimalloc_sys::mi_option_set(OPTION_PURGE_DELAY, 0) }
    }
}

/// Bytes held by live objects (to within [`SLACK`] per thread): what was asked for, so a
/// large zeroed buffer counts in full before its pages are touched, and this can exceed the
/// resident memory (100 idle accounts: 37 MB live, 28 MB resident).
pub fn live_bytes() -> u64 {
    LIVE.load(Ordering::Relaxed).max(0) as u64
}

/// Bytes of live blocks mapped apart from mimalloc (large zeroed blocks, see the module's
/// doc): part of [`live_bytes`], not of [`committed_bytes`].
pub fn mapped_bytes() -> u64 {
    MAPPED.load(Ordering::Relaxed).max(0) as u64
}

/// What mimalloc holds from the system beyond the live objects it holds: free room kept for
/// reuse, its own metadata, and arena memory committed ahead of use (on Linux not resident
/// until touched, so this is no RSS figure).
pub fn kept_free_bytes() -> u64 {
    let in_mimalloc = live_bytes().saturating_sub(mapped_bytes());
    committed_bytes().saturating_sub(in_mimalloc)
}

/// Bytes the allocator has committed from the system: live objects, the free room it keeps
/// for reuse, its own metadata, and (on Linux) arena memory committed ahead of use, which is
/// not resident until touched.
pub fn committed_bytes() -> u64 {
    let (mut elapsed, mut user, mut system) = (0, 0, 0);
    let (mut rss, mut peak_rss, mut commit, mut peak_commit, mut faults) = (0, 0, 0, 0, 0);
    // SAFETY: mi_process_info only writes the eight out-parameters, all valid `usize`s here.
    unsafe {
        libmimalloc_sys::mi_process_info(
            &mut elapsed,
            &mut user,
            &mut system,
            &mut rss,
            &mut peak_rss,
            &mut commit,
            &mut peak_commit,
            &mut faults,
        );
    }
    commit as u64
}

/// Returns the free pages mimalloc holds (this thread's, abandoned threads', and the
/// arenas' pages waiting out their purge delay) to the system.
///
/// Only the calling thread's own heap is visited: mimalloc's heaps are per thread, and a
/// thread's pages hold the blocks other threads freed until that thread collects them. So a
/// thread that did a burst of work and went quiet (the runtime worker that served a start's
/// API calls, an Arbiter after the logins) keeps pages that are free but not given back:
/// 1.9 MB of an idle 100-account fleet, 6.5 MB at 1,000, measured by collecting on each
/// thread in turn. [`ask_every_thread`] and [`collect_if_asked`] reach those threads.
pub fn collect() {
    // SAFETY: mi_collect only walks mimalloc's own structures.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// Bumped by [`ask_every_thread`]; each thread remembers the last value it collected at.
static ASKED: AtomicI64 = AtomicI64::new(0);

thread_local! {
    static COLLECTED_AT: Cell<i64> = const { Cell::new(0) };
}

/// Asks every thread that calls [`collect_if_asked`] to collect its heap once, the next time
/// it does; collects the calling thread's at once.
pub fn ask_every_thread() {
    let asked = ASKED.fetch_add(1, Ordering::Relaxed) + 1;
    COLLECTED_AT.with(|c| c.set(asked));
    collect();
}

/// Collects this thread's heap if [`ask_every_thread`] asked since it last did; otherwise
/// costs one load, so it can run each time a runtime's thread parks.
pub fn collect_if_asked() {
    let asked = ASKED.load(Ordering::Relaxed);
    if COLLECTED_AT.with(|c| c.replace(asked)) != asked {
        collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_allocation_is_counted_until_freed() {
        // 256 MiB, zeroed: mapped, never touched, so it costs no memory. Other test threads
        // allocate and free meanwhile, by far less than the 56 MiB of room.
        const BIG: i64 = 256 << 20;
        let before = live_bytes() as i64;
        let big = std::hint::black_box(vec![0u8; BIG as usize]);
        let with = live_bytes() as i64;
        assert!(with - before >= BIG - (56 << 20), "{before} → {with}");
        drop(big);
        let after = live_bytes() as i64;
        assert!(with - after >= BIG - (56 << 20), "{with} → {after}");
        assert!(committed_bytes() > 0);
    }

    /// Pages of `len` bytes at `p` (page-aligned) the system holds in memory.
    fn resident_pages(p: *const u8, len: usize) -> usize {
        let mut v = vec![0u8; len.div_ceil(4096)];
        // SAFETY: `p..p+len` is one live mapping and `v` has a byte per page of it.
        let rc = unsafe { libc::mincore(p as *mut _, len, v.as_mut_ptr()) };
        assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
        v.iter().filter(|b| **b & 1 == 1).count()
    }

    #[test]
    fn a_large_zeroed_block_costs_no_memory_until_written_even_where_one_was_just_freed() {
        const SIZE: usize = 512 << 10;
        let layout = Layout::from_size_align(SIZE, 8).unwrap();
        // SAFETY: plain uses of the global allocator with a non-zero layout; every block is
        // freed with the layout (and size) it has.
        unsafe {
            // A block written in full and freed: mimalloc would give these pages again.
            let used = std::alloc::alloc(layout);
            assert!(!used.is_null());
            std::ptr::write_bytes(used, 0xA5, SIZE);
            std::alloc::dealloc(used, layout);

            let z = std::alloc::alloc_zeroed(layout);
            assert!(!z.is_null());
            assert!(mapped_bytes() >= SIZE as u64, "counted as mapped apart");
            assert_eq!(resident_pages(z, SIZE), 0, "no page before a write");
            *z.add(3 * 4096 + 7) = 42;
            assert_eq!(resident_pages(z, SIZE), 1, "one page after one write");
            // (Read last: mincore counts a page that was only read, as the shared zero page.)
            let bytes = std::slice::from_raw_parts(z, SIZE);
            assert_eq!(bytes.iter().filter(|b| **b != 0).count(), 1);

            // Grown, it keeps its bytes and the new room reads as zero.
            let g = std::alloc::realloc(z, layout, 2 * SIZE);
            assert!(!g.is_null());
            assert_eq!(*g.add(3 * 4096 + 7), 42);
            assert!(std::slice::from_raw_parts(g.add(SIZE), SIZE)
                .iter()
                .all(|b| *b == 0));
            // Shrunk below the mark, it moves back into mimalloc with its bytes.
            let grown = Layout::from_size_align(2 * SIZE, 8).unwrap();
            let s = std::alloc::realloc(g, grown, 64 << 10);
            assert!(!s.is_null());
            assert_eq!(*s.add(3 * 4096 + 7), 42);
            assert!(libmimalloc_sys::mi_is_in_heap_region(s.cast()));
            std::alloc::dealloc(s, Layout::from_size_align(64 << 10, 8).unwrap());

            // A large block not asked zeroed stays mimalloc's (its page map knows it), so a
            // free never unmaps what mimalloc owns: 600 KiB (a large page) and 8 MiB (huge).
            for size in [600 << 10, 8 << 20] {
                let l = Layout::from_size_align(size, 8).unwrap();
                let b = std::alloc::alloc(l);
                assert!(!b.is_null());
                assert!(libmimalloc_sys::mi_is_in_heap_region(b.cast()), "{size}");
                let b2 = std::alloc::realloc(b, l, 2 * size);
                assert!(
                    libmimalloc_sys::mi_is_in_heap_region(b2.cast()),
                    "{size} grown"
                );
                std::alloc::dealloc(b2, Layout::from_size_align(2 * size, 8).unwrap());
            }
        }
    }

    #[test]
    fn configure_gives_free_pages_back_at_once() {
        // Index 15 is the purge delay: the one option whose default is 1000 (ms) in v3.
        // SAFETY: reads one of mimalloc's option values.
        let get = || unsafe { libmimalloc_sys::mi_option_get(OPTION_PURGE_DELAY) };
        assert_eq!(get(), 1000);
        configure();
        assert_eq!(get(), 0);
    }
}
