//! The shard handoff (`qqfleet run --handoff DIR`): an account that changes shard when N
//! changes takes its durable state (session, msg_id counter, outbox, held messages, dedup
//! window, every other tree) with it, so it resumes without a scan and its outbox goes out once.
//!
//! The handoff folder is shared by every shard (an RWX volume in Kubernetes) and holds:
//! * `<id>.qqacct`: an account's state ([`crate::transfer`]), written by the shard that ran it
//!   and no longer owns it, imported and removed by its new owner;
//! * `running/shard-<I>.json`: the ledger of shard I: the accounts it last ran. A new owner
//!   holds an account back (`starting`, "waiting for its handoff") while another shard's ledger
//!   lists it and no handoff file is there yet: during a rolling restart the old owner may
//!   still be running it, and a second login would kick the first (§12).
//!
//! A process exports at start, before any account runs (the first moment it knows N has
//! changed), and again at shutdown for anything left; it rewrites its ledger after the export.
//! An account held back longer than `--handoff-wait` starts anyway, with a QR scan, and its
//! log line says why.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::shard::Shard;
use crate::store::SledStore;
use crate::transfer::{handoff_file, AccountDump, TransferError};

/// Asked by the FleetSupervisor before it starts an account it owns.
pub trait StartGate: Send + Sync + 'static {
    /// `Ok`: start it now. `Err(why)`: not yet (asked again a second later); `why` is shown
    /// as the account's error while it waits.
    fn check(&self, id: &str) -> Result<(), String>;
}

/// The handoff of one process.
pub struct Handoff {
    dir: PathBuf,
    shard: Shard,
    store: Arc<SledStore>,
    wait: Duration,
    /// When each held-back account was first held back.
    held_since: Mutex<HashMap<String, Instant>>,
    /// The other shards' ledgers (account → shard), re-read at most once a second.
    ledgers: Mutex<Option<(Instant, HashMap<String, u32>)>>,
    /// What this shard's own ledger lists (an account added while running is added to it
    /// when it starts).
    listed: Mutex<std::collections::BTreeSet<String>>,
}

impl Handoff {
    /// Opens (creating) the handoff folder.
    pub fn open(
        dir: &Path,
        shard: Shard,
        store: Arc<SledStore>,
        wait: Duration,
    ) -> Result<Handoff, TransferError> {
        std::fs::create_dir_all(dir.join("running")).map_err(|e| TransferError::Io {
            path: dir.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(Handoff {
            dir: dir.to_path_buf(),
            shard,
            store,
            wait,
            held_since: Mutex::new(HashMap::new()),
            ledgers: Mutex::new(None),
            listed: Mutex::new(Default::default()),
        })
    }

    /// Exports every account of `accounts` (the ids in the accounts folder) the store holds
    /// state for and this shard does not own, into the handoff folder, then forgets it here.
    /// Returns the ids. (State of an account whose file is gone stays, as without shards.)
    pub fn export_unowned(&self, accounts: &HashSet<String>) -> Result<Vec<String>, TransferError> {
        let mut owners: HashSet<String> = HashSet::new();
        let db = self.store.sled()?;
        for name in db.tree_names() {
            let tree = db
                .open_tree(&name)
                .map_err(crate::store::StoreError::from)?;
            for k in tree.iter().keys() {
                let k = k.map_err(crate::store::StoreError::from)?;
                if let Some(o) =
                    crate::store::key_owner(&k).and_then(|o| std::str::from_utf8(o).ok())
                {
                    if !self.shard.owns(o) && accounts.contains(o) {
                        owners.insert(o.to_string());
                    }
                }
            }
        }
        if owners.is_empty() {
            return Ok(Vec::new());
        }
        let dumps = self.store.export_accounts(&owners)?;
        let mut done = Vec::new();
        for (id, dump) in dumps {
            dump.write_to(&handoff_file(&self.dir, &id))?;
            self.store.forget_account(&id)?;
            crate::events::emit(crate::events::AccountHandedOff {
                account: &id,
                to_shard: self.shard.owner_of(&id),
                entries: dump.entries(),
            });
            done.push(id);
        }
        Ok(done)
    }

    /// Writes this shard's ledger: the accounts it runs from now on.
    pub fn write_ledger(&self, owned: &[String]) -> Result<(), TransferError> {
        let mut listed = self.listed.lock().unwrap_or_else(|p| p.into_inner());
        *listed = owned.iter().cloned().collect();
        let owned: Vec<&String> = listed.iter().collect();
        self.write_ledger_file(&owned)
    }

    /// Adds an account that starts here to the ledger, if it is not listed yet.
    fn list(&self, id: &str) {
        let mut listed = self.listed.lock().unwrap_or_else(|p| p.into_inner());
        if listed.insert(id.to_string()) {
            let owned: Vec<&String> = listed.iter().collect();
            if let Err(e) = self.write_ledger_file(&owned) {
                tracing::error!(account = id, error = %e, "handoff ledger");
            }
        }
    }

    fn write_ledger_file(&self, owned: &[&String]) -> Result<(), TransferError> {
        let path = self.ledger_path(self.shard.index);
        let body = serde_json::json!({"shard": self.shard.to_string(), "accounts": owned});
        let tmp = self
            .dir
            .join("running")
            .join(format!(".shard-{}.json.tmp", self.shard.index));
        let io = |e: std::io::Error| TransferError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        std::fs::write(&tmp, serde_json::to_vec(&body).expect("plain data")).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        Ok(())
    }

    fn ledger_path(&self, index: u32) -> PathBuf {
        self.dir.join("running").join(format!("shard-{index}.json"))
    }

    /// Which other shard's ledger lists `id`.
    fn listed_elsewhere(&self, id: &str) -> Option<u32> {
        let mut g = self.ledgers.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = g
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < Duration::from_secs(1));
        if !fresh {
            let mut map = HashMap::new();
            if let Ok(rd) = std::fs::read_dir(self.dir.join("running")) {
                for e in rd.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let Some(idx) = name
                        .strip_prefix("shard-")
                        .and_then(|n| n.strip_suffix(".json"))
                        .and_then(|n| n.parse::<u32>().ok())
                    else {
                        continue;
                    };
                    if idx == self.shard.index {
                        continue;
                    }
                    let Ok(bytes) = std::fs::read(e.path()) else {
                        continue;
                    };
                    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                        continue;
                    };
                    for a in v["accounts"].as_array().into_iter().flatten() {
                        if let Some(a) = a.as_str() {
                            map.insert(a.to_string(), idx);
                        }
                    }
                }
            }
            *g = Some((Instant::now(), map));
        }
        g.as_ref().and_then(|(_, m)| m.get(id).copied())
    }

    /// Imports `id`'s handoff file if there is one; `Ok(true)` when it did.
    pub fn take(&self, id: &str) -> Result<bool, TransferError> {
        let path = handoff_file(&self.dir, id);
        if !path.exists() {
            return Ok(false);
        }
        let dump = match AccountDump::read_from(&path) {
            Ok(d) if d.id == id => d,
            Ok(d) => {
                return Err(TransferError::Bad {
                    path: path.display().to_string(),
                    message: format!("holds account `{}`, not `{id}`", d.id),
                })
            }
            Err(e) => return Err(e),
        };
        // The file is newer than anything here: this shard ran the account before the
        // shard that exported it did.
        self.store.import_account(&dump, true)?;
        std::fs::remove_file(&path).map_err(|e| TransferError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        crate::events::emit(crate::events::AccountTakenOver {
            account: id,
            shard: self.shard.index,
            entries: dump.entries(),
        });
        Ok(true)
    }
}

impl StartGate for Handoff {
    fn check(&self, id: &str) -> Result<(), String> {
        let r = self.decide(id);
        if r.is_ok() {
            self.list(id);
        }
        r
    }
}

impl Handoff {
    fn decide(&self, id: &str) -> Result<(), String> {
        match self.take(id) {
            Ok(true) => {
                self.held_since
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(id);
                return Ok(());
            }
            Ok(false) => {}
            Err(e) => {
                // A damaged file must not keep the account offline forever: set it aside
                // for an operator and start (a QR scan), saying why.
                let path = handoff_file(&self.dir, id);
                let aside = path.with_extension("qqacct.damaged");
                let _ = std::fs::rename(&path, &aside);
                tracing::error!(account = id, error = %e, aside = %aside.display(),
                    "handoff file unusable; the account starts without it (a QR scan)");
                return Ok(());
            }
        }
        let Some(other) = self.listed_elsewhere(id) else {
            return Ok(());
        };
        let mut held = self.held_since.lock().unwrap_or_else(|p| p.into_inner());
        let since = *held.entry(id.to_string()).or_insert_with(Instant::now);
        if since.elapsed() >= self.wait {
            held.remove(id);
            tracing::warn!(
                account = id,
                from_shard = other,
                waited_secs = self.wait.as_secs(),
                "no handoff file from the shard that last ran it; starting without its state (a QR scan)"
            );
            return Ok(());
        }
        Err(format!(
            "waiting for its handoff from shard {other} (it last ran it); starts without it after {} s",
            self.wait.as_secs()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Target;
    use crate::store::{NewOut, Store};

    fn msg(text: &str) -> NewOut {
        NewOut {
            target: Target::Buddy(1),
            text: text.into(),
            to_name: None,
        }
    }

    /// Two shards of two on one handoff folder: the unowned account (with a file) leaves one
    /// store for the other; one whose file is gone stays; the new owner waits while the old
    /// one's ledger lists an account, and takes the file when it comes.
    #[test]
    fn accounts_move_through_the_folder_and_wait_for_the_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let hand = dir.path().join("handoff");
        let ids: Vec<String> = (0..40).map(|i| format!("h{i}")).collect();
        let of = |n: u32| {
            ids.iter()
                .find(|id| crate::shard::owner(id, 2) == n)
                .unwrap()
                .clone()
        };
        let (zero, one) = (of(0), of(1));
        let s0 = Shard { index: 0, count: 2 };
        let s1 = Shard { index: 1, count: 2 };
        // Shard 0 last ran `one` (and a removed account) under N=1.
        let st0 = Arc::new(SledStore::open(&dir.path().join("d0")).unwrap());
        st0.enqueue(&one, msg("queued")).unwrap();
        st0.enqueue(&zero, msg("stays")).unwrap();
        let gone = ids
            .iter()
            .find(|id| crate::shard::owner(id, 2) == 1 && **id != one)
            .unwrap();
        st0.enqueue(gone, msg("file removed")).unwrap();
        let h1 = Handoff::open(
            &hand,
            s1,
            Arc::new(SledStore::open(&dir.path().join("d1")).unwrap()),
            Duration::from_secs(60),
        )
        .unwrap();
        // Before shard 0 restarts under N=2, its old ledger lists `one`: shard 1 waits.
        let h0 = Handoff::open(&hand, s0, st0.clone(), Duration::from_secs(60)).unwrap();
        h0.write_ledger(&[zero.clone(), one.clone()]).unwrap();
        let why = h1.check(&one).unwrap_err();
        assert!(why.contains("shard 0"), "{why}");
        // Shard 0 restarts under N=2: exports `one` (its file exists), keeps `zero` and the
        // account whose file is gone.
        let known: HashSet<String> = [zero.clone(), one.clone()].into();
        assert_eq!(h0.export_unowned(&known).unwrap(), vec![one.clone()]);
        h0.write_ledger(std::slice::from_ref(&zero)).unwrap();
        assert_eq!(st0.outbox_len(&one).unwrap(), 0);
        assert_eq!(st0.outbox_len(&zero).unwrap(), 1);
        assert_eq!(st0.outbox_len(gone).unwrap(), 1);
        assert!(handoff_file(&hand, &one).exists());
        // Shard 1 takes it over: imported, file removed, listed in its ledger.
        h1.check(&one).unwrap();
        assert!(!handoff_file(&hand, &one).exists());
        assert_eq!(h1.store.outbox(&one).unwrap()[0].text, "queued");
        let ledger = std::fs::read_to_string(hand.join("running/shard-1.json")).unwrap();
        assert!(ledger.contains(&format!("\"{one}\"")), "{ledger}");
    }

    /// Past the wait, an account starts without its handoff (a scan) rather than never.
    #[test]
    fn the_wait_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let hand = dir.path().join("handoff");
        let id = (0..40)
            .map(|i| format!("w{i}"))
            .find(|id| crate::shard::owner(id, 2) == 1)
            .unwrap();
        std::fs::create_dir_all(hand.join("running")).unwrap();
        std::fs::write(
            hand.join("running/shard-0.json"),
            format!("{{\"shard\":\"0/1\",\"accounts\":[\"{id}\"]}}"),
        )
        .unwrap();
        let h = Handoff::open(
            &hand,
            Shard { index: 1, count: 2 },
            Arc::new(SledStore::open(&dir.path().join("d")).unwrap()),
            Duration::ZERO,
        )
        .unwrap();
        h.check(&id).unwrap();
    }
}
