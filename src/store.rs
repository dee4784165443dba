//! `trait Store` and its sled implementation: everything an account needs to survive a crash.
//!
//! * the session (cookies, ptwebqq, vfwebqq, psessionid): a restart resumes without a scan;
//! * the msg_id counter, inside the saved session: saved before every new message goes out,
//!   so a restart continues from there;
//! * the outbox: an outgoing message is accepted only once it is flushed to disk, records
//!   the msg_id of its attempt before the attempt goes out (a resend after a crash is
//!   recognisably the same message), and is removed only when delivered;
//! * the dedup window and inbox of received events: an event is recorded (key + payload,
//!   flushed) before any handler sees it; a duplicate key is dropped; the inbox entry is
//!   removed once handled, so a crash between receive and handling replays it exactly once;
//! * the contacts cache and an operator "hold" (stopped / parked survive a restart).
//!
//! sled loses unflushed writes on a crash (research §1.4), so every write that something
//! else relies on is followed by `flush()` before the call returns.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sled::Transactional;

use crate::protocol::{Session, Target};
use crate::state::AccountState;

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the data directory.
    #[error(
        "data directory {0} is in use by another qqfleet process (two processes must never share one; stop the other or use another --data)"
    )]
    Locked(PathBuf),
    /// The directory could not be created or opened.
    #[error("data directory {path}: {message}")]
    Io { path: PathBuf, message: String },
    /// sled failed.
    #[error("store: {0}")]
    Sled(String),
    /// A stored value could not be decoded.
    #[error("store: corrupt value under {key}: {message}")]
    Corrupt { key: String, message: String },
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Sled(e.to_string())
    }
}

/// An accepted outgoing message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutMsg {
    /// Position in the account's outbox (monotonic, survives restarts).
    pub seq: u64,
    pub target: Target,
    pub text: String,
    /// msg_id of the message (of its first piece), recorded (with the client's counter,
    /// moved past it, in the saved session) before the first attempt goes out and used by
    /// every attempt: a resend after a transport error or a crash carries the same msg_id,
    /// which a deduplicating server (the simulator, for 600 s) acknowledges without
    /// delivering twice. `None` until the first attempt.
    pub msg_id: Option<u64>,
    /// Failed attempts so far (transport errors); drives the sender's retry delay.
    pub attempts: u32,
    /// The target's name when the message was accepted (friend markname or nick, group or
    /// discussion name): pseudo uins change with every login (WEBQQ.md §1), names do not,
    /// so a message accepted in one session can still reach its target in the next.
    #[serde(default)]
    pub to_name: Option<String>,
    /// Refusals by the server (not transport trouble), across reconnects: a message refused
    /// this often is held, not retried forever.
    #[serde(default)]
    pub rejections: u32,
    /// `on_uncertain = "confirm"` already resent it once without seeing its echo: the next
    /// miss goes to the fallback (kept here so a crash cannot make it two resends).
    #[serde(default)]
    pub confirm_resent: bool,
    /// Unix seconds of acceptance.
    pub accepted_at: u64,
}

/// When an account last sent, and to which targets within the last minute (unix ms): the
/// send limits live in memory, so without this a restart (or a new Sender after a relink)
/// forgot how recently the account sent and went faster than its limits (issue 11: a resend
/// 0.57 s after the last send drew 1202).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pacing {
    /// The last send attempt of the account.
    pub last_ms: Option<u64>,
    /// The last send attempt to each target (by the Sender's target key) within a minute.
    #[serde(default)]
    pub targets: std::collections::BTreeMap<String, u64>,
}

/// How long a target's last send is kept in [`Pacing`] (the per-target quota's window).
const PACING_KEEP_MS: u64 = 60_000;

/// A message to accept into the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewOut {
    pub target: Target,
    pub text: String,
    /// See [`OutMsg::to_name`].
    pub to_name: Option<String>,
}

/// Identity of a received event for deduplication (WEBQQ.md §5.4: same msg_id twice
/// happened; deduplicate on poll_type, source and msg_id).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DedupKey {
    pub poll_type: String,
    /// The friend uin, group gid or discussion did the event came from.
    pub source: u64,
    pub msg_id: u64,
}

/// Durable state of the fleet. Every method that returns `Ok` after a write has flushed it.
pub trait Store: Send + Sync + 'static {
    fn load_session(&self, id: &str) -> Result<Option<Session>, StoreError>;
    fn save_session(&self, id: &str, session: &Session) -> Result<(), StoreError>;
    fn delete_session(&self, id: &str) -> Result<(), StoreError>;

    /// Accepts an outgoing message: appends it to the outbox, flushed.
    fn enqueue(&self, id: &str, msg: NewOut) -> Result<OutMsg, StoreError>;
    /// The oldest undelivered message.
    fn outbox_head(&self, id: &str) -> Result<Option<OutMsg>, StoreError>;
    fn outbox(&self, id: &str) -> Result<Vec<OutMsg>, StoreError>;
    fn outbox_len(&self, id: &str) -> Result<usize, StoreError>;
    /// Rewrites an entry (attempt count).
    fn update_outbox(&self, id: &str, msg: &OutMsg) -> Result<(), StoreError>;
    /// Removes a delivered message.
    fn ack(&self, id: &str, seq: u64) -> Result<(), StoreError>;
    /// Moves an uncertain message aside for an operator.
    fn hold_outgoing(&self, id: &str, msg: &OutMsg) -> Result<(), StoreError>;
    fn held(&self, id: &str) -> Result<Vec<OutMsg>, StoreError>;
    /// An operator's decision on a held message: back into the outbox (`resend`, with its
    /// counters reset) or dropped. `None` if no such held message.
    fn release_held(&self, id: &str, seq: u64, resend: bool) -> Result<Option<OutMsg>, StoreError>;

    /// Records a received event before any handler sees it. `None`: a duplicate (drop it).
    /// `Some(seq)`: stored in the inbox under `seq`; call [`Store::inbox_done`] once handled.
    /// Not flushed: the record is durable once a flush that starts after this call has ended
    /// ([`Store::durable_async`], [`Store::flush`]). An account records every message of a
    /// poll answer this way and waits for one flush, shared with the other accounts, before
    /// any handler sees them.
    ///
    /// The record is two writes in order, the dedup key then the inbox entry, not a
    /// transaction: sled's transactions take a process-wide lock exclusively, which waits
    /// for every flush in progress and makes every other tree access wait behind it (at
    /// 1,000 accounts under load this halved the fleet's throughput, docs/PERFORMANCE.md).
    /// sled recovers a prefix of its log after a crash, so the inbox entry never survives
    /// without its key; a key that survives alone belongs to a message that was never
    /// durable, hence never handled, which a crash before the flush loses either way. After
    /// a failed flush, [`Store::restore_incoming`] completes such a record.
    fn record_incoming(
        &self,
        id: &str,
        key: &DedupKey,
        payload: &[u8],
        now: u64,
    ) -> Result<Option<u64>, StoreError>;
    /// A message recorded under `seq` ([`Store::record_incoming`]) whose flush failed, once
    /// the store takes writes again: what reached the disk may be the dedup key alone.
    /// Completes the record (flushed) and returns `Some(seq)`: the inbox entry is there, and
    /// the message goes to its handler as a fresh record does. `None` if the key belongs to
    /// another record of the same event (a duplicate).
    fn restore_incoming(
        &self,
        id: &str,
        key: &DedupKey,
        seq: u64,
        payload: &[u8],
        now: u64,
    ) -> Result<Option<u64>, StoreError>;
    /// Makes every write made before this call durable, like [`Store::flush`], without
    /// holding the caller's thread while it waits (one flush serves every writer waiting).
    fn durable_async(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send>>;
    /// Marks an inbox entry whose handler gave no replies handled, without a flush of its
    /// own: the mark becomes durable with the next flush (any account's, or sled's own within
    /// half a second). A crash before that replays the message, exactly as a crash between
    /// the handler and [`Store::inbox_done`] does, and handlers already expect that replay
    /// (the `log` handler finds its line, OneBot its event under the same inbox `seq`).
    /// Nothing waits on this mark: no reply is accepted with it.
    fn inbox_done_quiet(&self, id: &str, seq: u64) -> Result<(), StoreError>;
    /// Events recorded but not yet handled, oldest first.
    fn inbox(&self, id: &str) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;
    /// Marks an inbox entry handled and, in the same transaction, accepts the handler's
    /// replies into the outbox: a crash can neither lose the replies nor send them twice.
    fn inbox_done(&self, id: &str, seq: u64, replies: &[NewOut])
        -> Result<Vec<OutMsg>, StoreError>;
    /// Forgets dedup keys recorded before `before` (unix seconds); says how many, and when
    /// the oldest key kept was recorded (the next prune is due a window after it).
    fn prune_dedup(&self, id: &str, before: u64) -> Result<Pruned, StoreError>;

    fn save_contacts(&self, id: &str, json: &[u8], fetched_at: u64) -> Result<(), StoreError>;
    fn load_contacts(&self, id: &str) -> Result<Option<(Vec<u8>, u64)>, StoreError>;

    /// An operator hold (`stopped` after a kick, `parked`) that survives a restart.
    fn set_hold(&self, id: &str, hold: Option<&(AccountState, String)>) -> Result<(), StoreError>;
    fn load_hold(&self, id: &str) -> Result<Option<(AccountState, String)>, StoreError>;

    /// Records a send attempt (before it goes out), flushed: see [`Pacing`].
    fn record_send(&self, id: &str, target: &str, at_ms: u64) -> Result<(), StoreError>;
    /// The recorded send attempts of an account (empty if none).
    fn load_pacing(&self, id: &str) -> Result<Pacing, StoreError>;

    fn flush(&self) -> Result<(), StoreError>;

    /// After a failed write (a full disk, a read-only data directory): `Ok` once the store
    /// takes writes again, reopening the database if it must. Cheap when the store is fine.
    fn recover(&self) -> Result<(), StoreError>;
}

/// sled's page cache bound by default, in MiB (`qqfleet run --store-cache-mb`).
pub const DEFAULT_CACHE_MB: u64 = 64;

/// The sled store. Holds an exclusive `flock` on `<data>/LOCK` for its whole life.
pub struct SledStore {
    dir: PathBuf,
    /// sled's page cache bound, in bytes (kept for a reopen).
    cache_bytes: u64,
    /// The open database; replaced by [`Store::recover`] after an IO error (sled refuses
    /// every operation after its first failed write until it is opened again).
    trees: std::sync::RwLock<Option<Arc<Trees>>>,
    /// Flushes shared by concurrent writers (a sled flush covers every tree).
    group: Arc<crate::group_commit::GroupCommit>,
    /// Kept open: closing it would release the lock. Dropped after `trees`.
    _lock: std::fs::File,
    /// Dedup prunes run (each one a scan of the account's keys), for the tests.
    #[cfg(test)]
    pub(crate) prune_scans: std::sync::atomic::AtomicUsize,
}

/// What a [`Store::prune_dedup`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Keys forgotten.
    pub removed: usize,
    /// When the oldest key kept was recorded (unix seconds); `None`: the window is empty.
    pub oldest_kept: Option<u64>,
}

/// The handles of one opened sled database.
struct Trees {
    // Fields drop in this order: every sled handle, then the wait for sled's own lock.
    db: sled::Db,
    sessions: sled::Tree,
    outbox: sled::Tree,
    held: sled::Tree,
    dedup: sled::Tree,
    inbox: sled::Tree,
    contacts: sled::Tree,
    meta: sled::Tree,
    /// Added to sled's id generator (see [`SledStore::next_id`]).
    id_offset: std::sync::atomic::AtomicU64,
    _closed: SledClosed,
}

impl Trees {
    /// sled's id generator plus the offset an import raised (see [`SledStore::next_id`]).
    fn next_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()? + self.id_offset.load(std::sync::atomic::Ordering::SeqCst))
    }
}

/// Waits, when dropped, until sled has really closed its database file.
///
/// sled releases its `flock` on `db/db` when the last clone of its running config goes, not
/// when the last `Db` handle is dropped: the final flush of a dropped `Db` seals the log
/// buffer and hands the write to sled's global IO thread pool, whose closure holds a clone
/// until it returns, after the flush already saw the data stable. Reopening the directory
/// in that window failed with "could not acquire lock" (about 1 run in 10 of
/// `incoming_is_deduplicated_and_replayed_until_done`, more under load, when the shared pool
/// is busy with other databases). This waits on that lock itself (bounded), so a dropped
/// store is closed for good.
struct SledClosed {
    db_file: std::path::PathBuf,
}

/// Longest wait for sled's IO threads to let go of a dropped database (they need
/// milliseconds; the bound keeps a shutdown inside its 5 s even if sled misbehaves).
const SLED_CLOSE_WAIT: Duration = Duration::from_secs(2);

impl Drop for SledClosed {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        let Ok(f) = std::fs::File::open(&self.db_file) else {
            return;
        };
        let start = std::time::Instant::now();
        loop {
            // SAFETY: flock on a file descriptor we own; no memory is touched.
            let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                // Closing `f` releases it at once.
                return;
            }
            if start.elapsed() > SLED_CLOSE_WAIT {
                tracing::warn!(path = %self.db_file.display(),
                    "sled still holds its database file after the store was dropped");
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl SledStore {
    /// Makes every write made so far durable: one sled flush (which covers every tree) shared
    /// with the writers of other accounts asking at the same time (group commit).
    fn durable(&self) -> Result<(), StoreError> {
        let t = self.t()?;
        self.group.commit(|| flush_sled(&t.db))?;
        Ok(())
    }
}

/// Flushes sled (every tree of its database: `tree` may be any of them, or the `Db`), then
/// hands this thread's deferred frees on. Every flush of the process goes through here: the
/// store's, and those of the layers above on their own trees (OneBot's queue and ids, the
/// account transfer).
///
/// sled frees what a write replaced (the old version of a node; the log buffer of a segment
/// once it is full, a 512 KiB allocation) through crossbeam-epoch deferred functions. They
/// wait in the local bag of the thread that deferred them until 64 more are deferred there,
/// or until that thread flushes its bag. Threads that write now and then, as a quiet fleet's
/// do, may not fill their bags for hours: after its start, a 100-account fleet held two
/// full segments' buffers it no longer used (1.1 MB), and 40 flushed writes of 64 KiB left
/// 3.6 MB behind (`tests/store_quiet_memory.rs`). Handing the bag on at each flush costs a
/// few microseconds, against the flush's hundreds.
pub fn flush_sled(tree: &sled::Tree) -> sled::Result<()> {
    let r = tree.flush().map(|_| ());
    crossbeam_epoch::pin().flush();
    r
}

impl SledStore {
    /// Opens (creating, mode 0700) the data directory with the default page cache. A second
    /// process on the same directory gets [`StoreError::Locked`].
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        Self::open_with_cache(dir, DEFAULT_CACHE_MB << 20)
    }

    /// [`SledStore::open`] with sled's page cache bounded to `cache_bytes`
    /// (`qqfleet run --store-cache-mb`).
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<SledStore, StoreError> {
        let io = |e: std::io::Error| StoreError::Io {
            path: dir.to_path_buf(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        {
            use std::os::unix::fs::PermissionsExt;
            // Sessions are credentials: only the owner may read them.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        }
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))
            .map_err(io)?;
        {
            use std::os::fd::AsRawFd;
            // SAFETY: flock on a file descriptor we own; no memory is touched.
            let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc != 0 {
                return Err(StoreError::Locked(dir.to_path_buf()));
            }
        }
        let trees = Self::open_trees(dir, cache_bytes)?;
        Ok(SledStore {
            dir: dir.to_path_buf(),
            cache_bytes,
            trees: std::sync::RwLock::new(Some(Arc::new(trees))),
            group: Default::default(),
            _lock: lock,
            #[cfg(test)]
            prune_scans: Default::default(),
        })
    }

    fn open_trees(dir: &Path, cache_bytes: u64) -> Result<Trees, StoreError> {
        let db = sled::Config::new()
            .path(dir.join("db"))
            .cache_capacity(cache_bytes)
            .open()
            .map_err(|e| {
                let s = e.to_string();
                if s.contains("lock") {
                    StoreError::Locked(dir.to_path_buf())
                } else {
                    StoreError::Sled(s)
                }
            })?;
        let meta = db.open_tree("meta")?;
        let id_offset = match meta.get(ID_OFFSET_KEY)? {
            Some(v) if v.len() == 8 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&v);
                u64::from_be_bytes(b)
            }
            _ => 0,
        };
        Ok(Trees {
            id_offset: std::sync::atomic::AtomicU64::new(id_offset),
            sessions: db.open_tree("sessions")?,
            outbox: db.open_tree("outbox")?,
            held: db.open_tree("held")?,
            dedup: db.open_tree("dedup")?,
            inbox: db.open_tree("inbox")?,
            contacts: db.open_tree("contacts")?,
            meta,
            db,
            _closed: SledClosed {
                db_file: dir.join("db").join("db"),
            },
        })
    }

    /// The open database, or an error while it is being reopened.
    fn t(&self) -> Result<Arc<Trees>, StoreError> {
        self.trees
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| StoreError::Io {
                path: self.dir.clone(),
                message: "the store is being reopened after a write error".into(),
            })
    }

    /// A write that proves the store takes writes again (flushed).
    fn probe(&self) -> Result<(), StoreError> {
        let t = self.t()?;
        t.meta.insert(b"probe", &now_secs().to_be_bytes())?;
        flush_sled(&t.db)?;
        Ok(())
    }

    /// A fresh sequence number (outbox, held, inbox keys): sled's generator plus an offset
    /// that an import raises past the imported keys, so an account moved here from another
    /// data directory keeps its FIFO order and never reuses one of its own keys.
    pub fn next_id(&self) -> Result<u64, StoreError> {
        self.t()?.next_id()
    }

    /// Raises the id offset so that every later [`Self::next_id`] is above `max`.
    pub(crate) fn raise_ids_above(&self, max: u64) -> Result<(), StoreError> {
        let t = self.t()?;
        let next = t.next_id()?;
        if next > max {
            return Ok(());
        }
        let off = t.id_offset.load(std::sync::atomic::Ordering::SeqCst) + (max - next) + 1;
        t.meta.insert(ID_OFFSET_KEY, &off.to_be_bytes())?;
        flush_sled(&t.meta)?;
        t.id_offset.store(off, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// The sled database (a cheap handle), for the generic export and import of
    /// [`crate::transfer`].
    pub(crate) fn sled(&self) -> Result<sled::Db, StoreError> {
        Ok(self.t()?.db.clone())
    }

    /// Another tree of the same database, for a layer above the fleet that keeps durable
    /// data of its own (OneBot ids and event queue), keyed with [`prefix`].
    pub fn open_tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.t()?.db.open_tree(name)?)
    }

    /// A fresh number from the database's monotonic counter (the same one that numbers the
    /// inbox and the outbox).
    pub fn generate_id(&self) -> Result<u64, StoreError> {
        self.next_id()
    }

    fn list(tree: &sled::Tree, id: &str) -> Result<Vec<OutMsg>, StoreError> {
        let mut out = Vec::new();
        for kv in tree.scan_prefix(prefix(id)) {
            let (k, v) = kv?;
            out.push(decode(&k, &v)?);
        }
        Ok(out)
    }

    /// Appends messages to the outbox with fresh msg_ids and, optionally, removes an inbox
    /// entry, all in one transaction, then flushes.
    fn accept_outgoing(
        &self,
        id: &str,
        inbox_seq: Option<u64>,
        msgs: &[NewOut],
    ) -> Result<Vec<OutMsg>, StoreError> {
        let t = self.t()?;
        let mut seqs = Vec::with_capacity(msgs.len());
        for _ in msgs {
            seqs.push(t.next_id()?);
        }
        let now = now_secs();
        let out: Vec<OutMsg> = msgs
            .iter()
            .zip(seqs)
            .map(|(new, seq)| OutMsg {
                seq,
                target: new.target.clone(),
                text: new.text.clone(),
                to_name: new.to_name.clone(),
                msg_id: None,
                attempts: 0,
                rejections: 0,
                confirm_resent: false,
                accepted_at: now,
            })
            .collect();
        let done_key = inbox_seq.map(|s| seq_key(id, s));
        // A single write (one send through the API or a bot, or an unreadable inbox entry
        // dropped) is atomic by itself; only several take a transaction, which takes sled's
        // process-wide lock (see `Store::record_incoming`).
        match (&done_key, out.as_slice()) {
            (None, [msg]) => {
                t.outbox.insert(seq_key(id, msg.seq), encode(msg))?;
            }
            (Some(k), []) => {
                t.inbox.remove(k.as_slice())?;
            }
            _ => {
                (&t.outbox, &t.inbox)
                    .transaction(|(outbox, inbox)| {
                        for msg in &out {
                            outbox.insert(seq_key(id, msg.seq), encode(msg))?;
                        }
                        if let Some(k) = &done_key {
                            inbox.remove(k.as_slice())?;
                        }
                        Ok(())
                    })
                    .map_err(|e: sled::transaction::TransactionError<()>| {
                        StoreError::Sled(format!("{e:?}"))
                    })?;
            }
        }
        self.durable()?;
        Ok(out)
    }

    fn pace_key(id: &str) -> Vec<u8> {
        let mut k = b"pace\0".to_vec();
        k.extend_from_slice(id.as_bytes());
        k
    }

    fn hold_key(id: &str) -> Vec<u8> {
        let mut k = b"hold\0".to_vec();
        k.extend_from_slice(id.as_bytes());
        k
    }

    /// [`Store::record_incoming`] and a flush, for tests that set up a recorded message.
    #[cfg(test)]
    pub(crate) fn accept_incoming(
        &self,
        id: &str,
        key: &DedupKey,
        payload: &[u8],
        now: u64,
    ) -> Result<Option<u64>, StoreError> {
        let seq = self.record_incoming(id, key, payload, now)?;
        if seq.is_some() {
            self.durable()?;
        }
        Ok(seq)
    }
}

impl Store for SledStore {
    fn load_session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        let t = self.t()?;
        match t.sessions.get(id)? {
            Some(v) => Ok(Some(decode(id.as_bytes(), &v)?)),
            None => Ok(None),
        }
    }

    fn save_session(&self, id: &str, session: &Session) -> Result<(), StoreError> {
        let t = self.t()?;
        t.sessions.insert(id, encode(session))?;
        self.durable()?;
        Ok(())
    }

    fn delete_session(&self, id: &str) -> Result<(), StoreError> {
        let t = self.t()?;
        t.sessions.remove(id)?;
        self.durable()?;
        Ok(())
    }

    fn enqueue(&self, id: &str, msg: NewOut) -> Result<OutMsg, StoreError> {
        let mut v = self.accept_outgoing(id, None, &[msg])?;
        Ok(v.remove(0))
    }

    fn outbox_head(&self, id: &str) -> Result<Option<OutMsg>, StoreError> {
        let t = self.t()?;
        match t.outbox.scan_prefix(prefix(id)).next() {
            Some(kv) => {
                let (k, v) = kv?;
                Ok(Some(decode(&k, &v)?))
            }
            None => Ok(None),
        }
    }

    fn outbox(&self, id: &str) -> Result<Vec<OutMsg>, StoreError> {
        let t = self.t()?;
        Self::list(&t.outbox, id)
    }

    fn outbox_len(&self, id: &str) -> Result<usize, StoreError> {
        let t = self.t()?;
        Ok(t.outbox.scan_prefix(prefix(id)).keys().count())
    }

    fn update_outbox(&self, id: &str, msg: &OutMsg) -> Result<(), StoreError> {
        let t = self.t()?;
        let k = seq_key(id, msg.seq);
        if t.outbox.contains_key(&k)? {
            t.outbox.insert(k, encode(msg))?;
            self.durable()?;
        }
        Ok(())
    }

    fn ack(&self, id: &str, seq: u64) -> Result<(), StoreError> {
        let t = self.t()?;
        t.outbox.remove(seq_key(id, seq))?;
        self.durable()?;
        Ok(())
    }

    fn hold_outgoing(&self, id: &str, msg: &OutMsg) -> Result<(), StoreError> {
        let t = self.t()?;
        let k = seq_key(id, msg.seq);
        (&t.outbox, &t.held)
            .transaction(|(outbox, held)| {
                outbox.remove(k.as_slice())?;
                held.insert(k.as_slice(), encode(msg))?;
                Ok(())
            })
            .map_err(|e: sled::transaction::TransactionError<()>| {
                StoreError::Sled(format!("{e:?}"))
            })?;
        self.durable()?;
        Ok(())
    }

    fn held(&self, id: &str) -> Result<Vec<OutMsg>, StoreError> {
        let t = self.t()?;
        Self::list(&t.held, id)
    }

    fn release_held(&self, id: &str, seq: u64, resend: bool) -> Result<Option<OutMsg>, StoreError> {
        let t = self.t()?;
        let k = seq_key(id, seq);
        let Some(v) = t.held.get(&k)? else {
            return Ok(None);
        };
        let mut msg: OutMsg = decode(&k, &v)?;
        msg.attempts = 0;
        msg.rejections = 0;
        msg.confirm_resent = false;
        (&t.outbox, &t.held)
            .transaction(|(outbox, held)| {
                held.remove(k.as_slice())?;
                if resend {
                    outbox.insert(k.as_slice(), encode(&msg))?;
                }
                Ok(())
            })
            .map_err(|e: sled::transaction::TransactionError<()>| {
                StoreError::Sled(format!("{e:?}"))
            })?;
        self.durable()?;
        Ok(Some(msg))
    }

    fn durable_async(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send>> {
        let t = match self.t() {
            Ok(t) => t,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let group = self.group.clone();
        Box::pin(async move {
            group
                .commit_async(move || flush_sled(&t.db).map_err(StoreError::from))
                .await
        })
    }

    fn inbox_done_quiet(&self, id: &str, seq: u64) -> Result<(), StoreError> {
        let t = self.t()?;
        t.inbox.remove(seq_key(id, seq))?;
        Ok(())
    }

    fn record_incoming(
        &self,
        id: &str,
        key: &DedupKey,
        payload: &[u8],
        now: u64,
    ) -> Result<Option<u64>, StoreError> {
        let t = self.t()?;
        let dk = dedup_key(id, key);
        let seq = t.next_id()?;
        // The dedup key first, claimed by a compare-and-swap (an existing key: a duplicate),
        // then the inbox entry: two single-key writes in that order, not a transaction (see
        // `Store::record_incoming`). A duplicate only costs an unused seq.
        let claim = dedup_value(now, seq);
        if t.dedup
            .compare_and_swap(dk.as_slice(), None as Option<&[u8]>, Some(&claim[..]))?
            .is_err()
        {
            return Ok(None);
        }
        if let Err(e) = t.inbox.insert(seq_key(id, seq), payload) {
            // Give the key back (if sled still takes writes), so that the message, kept by
            // the caller, is recorded afresh once the store recovers.
            let _ =
                t.dedup
                    .compare_and_swap(dk.as_slice(), Some(&claim[..]), None as Option<&[u8]>);
            return Err(e.into());
        }
        Ok(Some(seq))
    }

    fn restore_incoming(
        &self,
        id: &str,
        key: &DedupKey,
        seq: u64,
        payload: &[u8],
        now: u64,
    ) -> Result<Option<u64>, StoreError> {
        let t = self.t()?;
        let dk = dedup_key(id, key);
        let ik = seq_key(id, seq);
        match t.dedup.get(&dk)? {
            Some(v) if dedup_seq(&v) != Some(seq) => return Ok(None),
            Some(_) => {}
            None => {
                t.dedup.insert(dk.as_slice(), &dedup_value(now, seq)[..])?;
            }
        }
        if !t.inbox.contains_key(&ik)? {
            t.inbox.insert(ik, payload)?;
        }
        self.durable()?;
        Ok(Some(seq))
    }

    fn inbox(&self, id: &str) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let t = self.t()?;
        let mut out = Vec::new();
        for kv in t.inbox.scan_prefix(prefix(id)) {
            let (k, v) = kv?;
            out.push((seq_of(&k), v.to_vec()));
        }
        Ok(out)
    }

    fn inbox_done(
        &self,
        id: &str,
        seq: u64,
        replies: &[NewOut],
    ) -> Result<Vec<OutMsg>, StoreError> {
        self.accept_outgoing(id, Some(seq), replies)
    }

    fn prune_dedup(&self, id: &str, before: u64) -> Result<Pruned, StoreError> {
        let t = self.t()?;
        let mut pruned = Pruned::default();
        for kv in t.dedup.scan_prefix(prefix(id)) {
            let (k, v) = kv?;
            let at = dedup_time(&v);
            if at < before {
                t.dedup.remove(k)?;
                pruned.removed += 1;
            } else {
                pruned.oldest_kept = Some(pruned.oldest_kept.map_or(at, |o: u64| o.min(at)));
            }
        }
        #[cfg(test)]
        self.prune_scans
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // No flush: a prune lost in a crash forgets nothing that matters and is done again by
        // the next one; a flush here would block the account's thread for nothing.
        Ok(pruned)
    }

    fn save_contacts(&self, id: &str, json: &[u8], fetched_at: u64) -> Result<(), StoreError> {
        let t = self.t()?;
        let mut v = fetched_at.to_be_bytes().to_vec();
        v.extend_from_slice(json);
        t.contacts.insert(id, v)?;
        self.durable()?;
        Ok(())
    }

    fn load_contacts(&self, id: &str) -> Result<Option<(Vec<u8>, u64)>, StoreError> {
        let t = self.t()?;
        Ok(t.contacts.get(id)?.and_then(|v| {
            if v.len() < 8 {
                return None;
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&v[..8]);
            Some((v[8..].to_vec(), u64::from_be_bytes(b)))
        }))
    }

    fn record_send(&self, id: &str, target: &str, at_ms: u64) -> Result<(), StoreError> {
        let t = self.t()?;
        // A record that does not decode is replaced: it must never stop the sends.
        let mut p = match self.load_pacing(id) {
            Err(StoreError::Corrupt { .. }) => Pacing::default(),
            other => other?,
        };
        p.last_ms = Some(p.last_ms.map_or(at_ms, |l| l.max(at_ms)));
        p.targets
            .retain(|_, t| at_ms.saturating_sub(*t) < PACING_KEEP_MS);
        p.targets.insert(target.to_string(), at_ms);
        t.meta.insert(Self::pace_key(id), encode(&p))?;
        flush_sled(&t.meta)?;
        Ok(())
    }

    fn load_pacing(&self, id: &str) -> Result<Pacing, StoreError> {
        let t = self.t()?;
        let k = Self::pace_key(id);
        match t.meta.get(&k)? {
            Some(v) => decode(&k, &v),
            None => Ok(Pacing::default()),
        }
    }

    fn set_hold(&self, id: &str, hold: Option<&(AccountState, String)>) -> Result<(), StoreError> {
        let t = self.t()?;
        let k = Self::hold_key(id);
        match hold {
            Some(h) => {
                t.meta.insert(k, encode(h))?;
            }
            None => {
                t.meta.remove(k)?;
            }
        }
        self.durable()?;
        Ok(())
    }

    fn load_hold(&self, id: &str) -> Result<Option<(AccountState, String)>, StoreError> {
        let t = self.t()?;
        let k = Self::hold_key(id);
        match t.meta.get(&k)? {
            Some(v) => Ok(Some(decode(&k, &v)?)),
            None => Ok(None),
        }
    }

    fn recover(&self) -> Result<(), StoreError> {
        if self.probe().is_ok() {
            return Ok(());
        }
        // sled keeps the first IO error and refuses everything after it: only a reopen
        // clears it. What it had flushed is on disk; recovery on open drops a torn tail.
        let mut slot = self.trees.write().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = slot.take() {
            // The last handle closes the database (and waits for sled to let go of it).
            drop(old);
        }
        *slot = Some(Arc::new(Self::open_trees(&self.dir, self.cache_bytes)?));
        drop(slot);
        self.probe()
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.durable()
    }
}

/// Unix milliseconds (pacing records).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Unix seconds now.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The key convention and the byte forms of keys and values.
#[path = "store_keys.rs"]
mod keys;
use keys::{
    decode, dedup_key, dedup_seq, dedup_time, dedup_value, encode, seq_key, seq_of, ID_OFFSET_KEY,
};
pub use keys::{key_owner, prefix, TAGS};

/// Trees of the store for the layers above the fleet, looked up on every use.
#[path = "store_named.rs"]
mod named;
pub use named::{NamedTree, TreeSource};

#[cfg(test)]
#[path = "store_tests.rs"]
pub(crate) mod tests;
