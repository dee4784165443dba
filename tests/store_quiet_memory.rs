//! A store that writes now and then gives back what its writes replaced.
//!
//! sled frees the old version of a node, and the 512 KiB log buffer of a full segment, only
//! through deferred functions of the thread that replaced them, which wait until that thread
//! has deferred 64 more things or hands its deferred frees on. An account writes now and
//! then (a quiet fleet, or any fleet between its busy hours), so without the hand-off at each
//! flush (`store.rs`, `flush_sled`) what its writes replaced stayed allocated for as long as the
//! fleet stayed quiet.
//!
//! Its own test binary, so the process's heap count (`qqfleet::heap::live_bytes`, the figure
//! `/metrics` reports as `qqfleet_heap_in_use_bytes`) holds this test's allocations alone.

use qqfleet::store::{SledStore, Store};

/// The size of each write: 40 of them fill about five of sled's 512 KiB log segments.
const WRITE: usize = 64 * 1024;
const WRITES: u64 = 40;

#[test]
fn flushed_writes_one_at_a_time_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&dir.path().join("data")).unwrap();
    // Saving contacts is one write, flushed before it returns; each replaces the last.
    let save = |i: u64| {
        let contacts = format!("{{\"friends\":[{i}],\"note\":\"{}\"}}", "x".repeat(WRITE));
        store
            .save_contacts("quiet", contacts.as_bytes(), i)
            .unwrap();
    };
    // The first writes allocate what the store keeps (the tree's nodes, its log buffer).
    for i in 0..5 {
        save(i);
    }
    let before = qqfleet::heap::live_bytes();
    for i in 5..5 + WRITES {
        save(i);
    }
    let grown = qqfleet::heap::live_bytes().saturating_sub(before);
    // Kept, the replaced values and the full segments' buffers were 3.6 MB here; handed on at
    // each flush, about 30 KB remain (the newest value is the same size as the first one).
    assert!(
        grown < 1024 * 1024,
        "{WRITES} flushed writes of {WRITE} bytes, each replacing the last, left {grown} more \
         bytes on the heap: sled's replaced nodes and full log buffers were not freed"
    );
    assert_eq!(
        store.load_contacts("quiet").unwrap().map(|(_, at)| at),
        Some(4 + WRITES),
        "the last write is the one kept"
    );
}
