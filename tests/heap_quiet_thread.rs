//! A thread that did a burst of work and went quiet gives its free pages back once asked.
//!
//! mimalloc's heaps are per thread, and a collection reaches only the heap of the thread that
//! asks: blocks one thread allocated and another freed stay on the first thread's pages until
//! that thread collects. In the fleet, a runtime worker that served a start's burst and an
//! Arbiter after the logins go quiet this way; `memtrim` asks every thread to collect
//! (`heap::ask_every_thread`), and each does when it next parks or is woken
//! (`heap::collect_if_asked`).
//!
//! Its own test binary, so the process's anonymous resident memory moves with this test alone.

use std::sync::mpsc;

/// The process's anonymous resident memory, KiB.
fn anon_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("RssAnon in /proc/self/status")
}

const BLOCKS: usize = 64 * 1024;
const BLOCK: usize = 1024;

#[test]
fn a_quiet_thread_gives_back_what_others_freed_once_asked() {
    qqfleet::heap::configure();
    let (nudge, nudged) = mpsc::channel::<()>();
    let (hand, handed) = mpsc::channel::<Vec<Box<[u8]>>>();
    let (ack, acked) = mpsc::channel::<()>();
    let worker = std::thread::spawn(move || {
        // The burst: 128 MiB of small blocks, each written. Half are freed here, half are
        // handed to another thread (so no page is full, as a busy thread's pages are not, and
        // stays this thread's).
        let mut blocks: Vec<Box<[u8]>> = (0..2 * BLOCKS)
            .map(|i| vec![i as u8; BLOCK].into_boxed_slice())
            .collect();
        let mut i = 0;
        blocks.retain(|_| {
            i += 1;
            i % 2 == 0
        });
        blocks.shrink_to_fit();
        hand.send(blocks).unwrap();
        // Then quiet, until woken.
        for () in nudged {
            qqfleet::heap::collect_if_asked();
            ack.send(()).unwrap();
        }
    });
    let blocks = handed.recv().unwrap();
    let held = anon_kib();
    drop(blocks);
    // This thread's own collection: the pages are the worker's, so they stay.
    qqfleet::heap::collect();
    let after_own = anon_kib();
    // Woken without being asked, the worker collects nothing either.
    nudge.send(()).unwrap();
    acked.recv().unwrap();
    let after_unasked = anon_kib();
    // Asked, then woken: it collects, once.
    qqfleet::heap::ask_every_thread();
    nudge.send(()).unwrap();
    acked.recv().unwrap();
    let after_asked = anon_kib();
    drop(nudge);
    worker.join().unwrap();

    let total = (BLOCKS * BLOCK / 1024) as u64;
    eprintln!(
        "anonymous KiB: {held} held, {after_own} after this thread's collection, \
         {after_unasked} after the worker woke unasked, {after_asked} after it was asked"
    );
    assert!(
        held.saturating_sub(after_unasked) < total / 4,
        "the freed blocks' pages left before the worker collected: {held} → {after_unasked} KiB"
    );
    assert!(
        after_unasked.saturating_sub(after_asked) > total * 3 / 4,
        "the worker's collection gave back too little: {after_unasked} → {after_asked} KiB \
         of {total} KiB freed"
    );
}
