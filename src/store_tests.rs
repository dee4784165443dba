//! Tests of the sled store (a child module of `store.rs`).

use super::*;

/// Opens a sled database in `dir` that a `Db` of this process dropped a moment ago: waits
/// (bounded) until sled's IO threads have let go of its file, as [`SledClosed`] does for a
/// store, instead of failing with "could not acquire lock". For tests that reopen a
/// database they opened with `sled::open`.
pub(crate) fn sled_reopen(dir: &std::path::Path) -> sled::Db {
    drop(SledClosed {
        db_file: dir.join("db"),
    });
    sled::open(dir).unwrap()
}

fn out(target: Target, text: &str) -> NewOut {
    NewOut {
        target,
        text: text.into(),
        to_name: None,
    }
}

fn key(msg_id: u64) -> DedupKey {
    DedupKey {
        poll_type: "message".into(),
        source: 42,
        msg_id,
    }
}

#[test]
fn session_round_trip_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let s = crate::protocol::session::sample_session(7);
    {
        let st = SledStore::open(dir.path()).unwrap();
        assert!(st.load_session("a").unwrap().is_none());
        st.save_session("a", &s).unwrap();
    }
    let st = SledStore::open(dir.path()).unwrap();
    let back = st.load_session("a").unwrap().unwrap();
    assert_eq!(back.uin, 10001);
    assert_eq!(back.psessionid, "ps");
    st.delete_session("a").unwrap();
    assert!(st.load_session("a").unwrap().is_none());
}

#[test]
fn data_dir_is_private_and_exclusive() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let st = SledStore::open(&d).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    match SledStore::open(&d) {
        Err(StoreError::Locked(p)) => assert_eq!(p, d),
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("expected Locked, got a second store"),
    }
    drop(st);
    SledStore::open(&d).unwrap();
}

#[test]
fn outbox_is_fifo_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let st = SledStore::open(dir.path()).unwrap();
        let a = st.enqueue("a", out(Target::Buddy(1), "one")).unwrap();
        let b = st.enqueue("a", out(Target::Group(2), "two")).unwrap();
        st.enqueue("b", out(Target::Buddy(1), "other account"))
            .unwrap();
        assert!(a.seq < b.seq);
        assert_eq!(a.msg_id, None);
        assert_eq!(st.outbox_len("a").unwrap(), 2);
        assert_eq!(st.outbox_head("a").unwrap().unwrap().text, "one");
        st.ack("a", a.seq).unwrap();
        assert_eq!(st.outbox_head("a").unwrap().unwrap().text, "two");
    }
    let st = SledStore::open(dir.path()).unwrap();
    let left = st.outbox("a").unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].text, "two");
    let c = st.enqueue("a", out(Target::Buddy(1), "three")).unwrap();
    assert!(c.seq > left[0].seq, "seq keeps growing after a restart");
    let mut upd = left[0].clone();
    upd.attempts = 3;
    upd.msg_id = Some(77);
    st.update_outbox("a", &upd).unwrap();
    let head = st.outbox_head("a").unwrap().unwrap();
    assert_eq!((head.attempts, head.msg_id), (3, Some(77)));
    st.hold_outgoing("a", &upd).unwrap();
    assert_eq!(st.held("a").unwrap(), vec![upd.clone()]);
    assert_eq!(st.outbox("a").unwrap(), vec![c.clone()]);
    // The operator sends it again: back at its place (the head), counters reset.
    let back = st.release_held("a", upd.seq, true).unwrap().unwrap();
    assert_eq!((back.attempts, back.rejections), (0, 0));
    assert_eq!(st.outbox_head("a").unwrap().unwrap().seq, upd.seq);
    assert!(st.held("a").unwrap().is_empty());
    assert_eq!(st.release_held("a", upd.seq, true).unwrap(), None);
    st.hold_outgoing("a", &back).unwrap();
    assert!(st.release_held("a", back.seq, false).unwrap().is_some());
    assert!(st.held("a").unwrap().is_empty());
    assert_eq!(st.outbox("a").unwrap(), vec![c]);
    assert_eq!(st.outbox_len("b").unwrap(), 1);
}

#[test]
fn incoming_is_deduplicated_and_replayed_until_done() {
    let dir = tempfile::tempdir().unwrap();
    {
        let st = SledStore::open(dir.path()).unwrap();
        let s1 = st
            .accept_incoming("a", &key(1), b"first", 100)
            .unwrap()
            .unwrap();
        assert_eq!(
            st.accept_incoming("a", &key(1), b"first", 101).unwrap(),
            None
        );
        // Same msg_id from another source or kind is another event.
        let mut k2 = key(1);
        k2.poll_type = "group_message".into();
        assert!(st.accept_incoming("a", &k2, b"g", 100).unwrap().is_some());
        assert!(st
            .accept_incoming("b", &key(1), b"b", 100)
            .unwrap()
            .is_some());
        let replies = st
            .inbox_done("a", s1, &[out(Target::Buddy(42), "echo")])
            .unwrap();
        assert_eq!(replies.len(), 1);
        assert_eq!(st.outbox_head("a").unwrap().unwrap().text, "echo");
        // "crash" here: the group event was recorded but never handled.
    }
    let st = SledStore::open(dir.path()).unwrap();
    let inbox = st.inbox("a").unwrap();
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].1, b"g");
    assert_eq!(
        st.accept_incoming("a", &key(1), b"again", 102).unwrap(),
        None
    );
    assert_eq!(
        st.prune_dedup("a", 101).unwrap(),
        Pruned {
            removed: 2,
            oldest_kept: None
        }
    );
    assert!(st
        .accept_incoming("a", &key(1), b"late", 5000)
        .unwrap()
        .is_some());
}

/// The batched path of a poll answer: records without a flush each, one awaited flush,
/// then the quiet marks of handled messages; what was recorded survives a reopen and a
/// marked message is no longer replayed.
#[tokio::test]
async fn recorded_then_made_durable_once_and_marked_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let (s1, s2);
    {
        let st = SledStore::open(dir.path()).unwrap();
        s1 = st
            .record_incoming("a", &key(1), b"one", 100)
            .unwrap()
            .unwrap();
        s2 = st
            .record_incoming("a", &key(2), b"two", 100)
            .unwrap()
            .unwrap();
        assert_eq!(st.record_incoming("a", &key(1), b"one", 100).unwrap(), None);
        st.durable_async().await.unwrap();
        st.inbox_done_quiet("a", s1).unwrap();
        st.durable_async().await.unwrap();
    }
    let st = SledStore::open(dir.path()).unwrap();
    assert_eq!(st.inbox("a").unwrap(), vec![(s2, b"two".to_vec())]);
    assert_eq!(st.accept_incoming("a", &key(1), b"one", 101).unwrap(), None);
}

/// The single writes that skip sled's transaction are durable like the others: an inbox
/// entry marked done with no reply (an unreadable entry dropped by the replay), and one
/// message accepted into the outbox with no inbox entry to remove (a send).
#[test]
fn single_writes_without_a_transaction_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let sent;
    {
        let st = SledStore::open(dir.path()).unwrap();
        let s1 = st
            .accept_incoming("a", &key(1), b"unreadable", 100)
            .unwrap()
            .unwrap();
        assert_eq!(st.inbox_done("a", s1, &[]).unwrap(), vec![]);
        sent = st.enqueue("a", out(Target::Buddy(42), "hello")).unwrap();
    }
    let st = SledStore::open(dir.path()).unwrap();
    assert_eq!(st.inbox("a").unwrap(), vec![]);
    assert_eq!(st.outbox("a").unwrap(), vec![sent]);
}

/// A record whose flush failed, completed once the store recovers: whatever part of it
/// reached the disk (nothing, or the dedup key alone, since the key is written first), the
/// message ends up recorded once, and a key held by another record is a duplicate.
#[test]
fn a_record_whose_flush_failed_is_completed_once() {
    let dir = tempfile::tempdir().unwrap();
    let st = SledStore::open(dir.path()).unwrap();
    // The dedup key alone: the inbox entry of the record is gone.
    let s1 = st
        .accept_incoming("a", &key(1), b"one", 100)
        .unwrap()
        .unwrap();
    st.inbox_done_quiet("a", s1).unwrap();
    assert_eq!(st.inbox("a").unwrap(), vec![]);
    assert_eq!(
        st.restore_incoming("a", &key(1), s1, b"one", 100).unwrap(),
        Some(s1)
    );
    assert_eq!(st.inbox("a").unwrap(), vec![(s1, b"one".to_vec())]);
    // The whole record: nothing is written twice.
    assert_eq!(
        st.restore_incoming("a", &key(1), s1, b"one", 100).unwrap(),
        Some(s1)
    );
    assert_eq!(st.inbox("a").unwrap().len(), 1);
    // Nothing of it: recorded now, and the event is a duplicate from then on.
    let s2 = s1 + 1000;
    assert_eq!(
        st.restore_incoming("a", &key(2), s2, b"two", 100).unwrap(),
        Some(s2)
    );
    assert_eq!(st.record_incoming("a", &key(2), b"two", 100).unwrap(), None);
    // Another record holds the key (this delivery was a duplicate): nothing is written.
    assert_eq!(
        st.restore_incoming("a", &key(1), s1 + 7, b"one again", 101)
            .unwrap(),
        None
    );
    // So does a key written before the seq was kept in its value (time only).
    st.t()
        .unwrap()
        .dedup
        .insert(dedup_key("a", &key(3)), &100u64.to_be_bytes())
        .unwrap();
    assert_eq!(
        st.restore_incoming("a", &key(3), s1 + 9, b"three", 101)
            .unwrap(),
        None
    );
    assert_eq!(
        st.inbox("a").unwrap(),
        vec![(s1, b"one".to_vec()), (s2, b"two".to_vec())]
    );
    drop(st);
    // Flushed: the reopened store has it all, and the pruning reads both value forms.
    let st = SledStore::open(dir.path()).unwrap();
    assert_eq!(st.inbox("a").unwrap().len(), 2);
    assert_eq!(
        st.prune_dedup("a", 101).unwrap(),
        Pruned {
            removed: 3,
            oldest_kept: None
        }
    );
}

/// A dropped store is closed for good: reopening the folder at once always works, even
/// while other databases keep sled's shared IO threads busy (the flake of
/// `incoming_is_deduplicated_and_replayed_until_done`, see `SledClosed`).
#[test]
fn a_dropped_store_reopens_at_once() {
    let busy = tempfile::tempdir().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let noise = {
        let (stop, path) = (stop.clone(), busy.path().to_path_buf());
        std::thread::spawn(move || {
            let st = SledStore::open(&path).unwrap();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 1_000_000 {
                st.accept_incoming("n", &key(n), &[0u8; 512], 1).unwrap();
                n += 1;
            }
        })
    };
    let dir = tempfile::tempdir().unwrap();
    for i in 0..100 {
        let st = SledStore::open(dir.path())
            .unwrap_or_else(|e| panic!("reopen {i} right after a drop: {e}"));
        st.accept_incoming("a", &key(i), &[1u8; 4096], 1).unwrap();
        st.enqueue("a", out(Target::Buddy(1), "x")).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    noise.join().unwrap();
}

#[test]
fn contacts_and_hold() {
    let dir = tempfile::tempdir().unwrap();
    let st = SledStore::open(dir.path()).unwrap();
    assert!(st.load_contacts("a").unwrap().is_none());
    st.save_contacts("a", b"{\"x\":1}", 77).unwrap();
    assert_eq!(
        st.load_contacts("a").unwrap().unwrap(),
        (b"{\"x\":1}".to_vec(), 77)
    );
    let h = (AccountState::Stopped, "kicked".to_string());
    st.set_hold("a", Some(&h)).unwrap();
    assert_eq!(st.load_hold("a").unwrap(), Some(h));
    st.set_hold("a", None).unwrap();
    assert_eq!(st.load_hold("a").unwrap(), None);
}

/// A prune says when the oldest key it kept was recorded, which is when the next one is due
/// (a window later), and touches only the account's own keys.
#[test]
fn a_prune_tells_when_the_oldest_key_kept_was_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let st = SledStore::open(dir.path()).unwrap();
    for (n, at) in [(1, 100), (2, 130), (3, 120)] {
        st.accept_incoming("a", &key(n), b"m", at).unwrap().unwrap();
    }
    st.accept_incoming("ab", &key(9), b"m", 50)
        .unwrap()
        .unwrap();
    assert_eq!(
        st.prune_dedup("a", 110).unwrap(),
        Pruned {
            removed: 1,
            oldest_kept: Some(120)
        }
    );
    assert_eq!(
        st.prune_dedup("a", 200).unwrap(),
        Pruned {
            removed: 2,
            oldest_kept: None
        }
    );
    assert_eq!(
        st.prune_dedup("ab", 10).unwrap(),
        Pruned {
            removed: 0,
            oldest_kept: Some(50)
        }
    );
}
