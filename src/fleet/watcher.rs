//! The watcher of `accounts/`: hot-add, change and removal of account files.
//!
//! File events are debounced (notify-debouncer-full stitches an editor's write-to-temp +
//! rename into one change) and only used as a nudge: on every nudge, and on a periodic
//! rescan that repairs missed events (inotify queue overflows, network filesystems), the
//! whole folder is read and compared by content fingerprint with what the FleetSupervisor
//! was last told. It runs on its own thread and talks to the supervisor with `do_send`
//! (an `Addr` is `Send`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use actix::prelude::*;
use notify::RecursiveMode;

use super::messages::{Remove, Upsert};
use super::supervisor::FleetSupervisor;
use crate::config::DirScan;

/// Debounce window for file events.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// How often the debouncer's thread looks for events whose window has passed. It wakes at
/// this pace for the fleet's whole life, events or not: at its default (a quarter of the
/// window, 16 times a second) it took 10 % of an idle 1,000-account fleet's CPU. Once per
/// window delivers a change 250-500 ms after the last write instead of 250-310 ms.
const DEBOUNCE_TICK: Duration = DEBOUNCE;

/// Keeps the watcher alive; dropping it stops the thread.
pub struct WatcherHandle {
    stop: Arc<AtomicBool>,
}

impl Drop for WatcherHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What the supervisor was last told (id → fingerprint), and the folder as last read.
#[derive(Default)]
pub struct Known {
    told: HashMap<String, u64>,
    scan: DirScan,
}

impl Known {
    /// Starts from a scanner that already read the folder (`qqfleet run` reads it once at
    /// start): the first sync then reads no file again.
    pub fn with_scan(scan: DirScan) -> Known {
        Known {
            told: HashMap::new(),
            scan,
        }
    }

    /// Reads the folder (only the files that changed since the last read) and tells the
    /// supervisor what changed. Returns how many messages were sent.
    pub fn sync(&mut self, dir: &std::path::Path, sup: &Addr<FleetSupervisor>) -> usize {
        let scanned = match self.scan.scan(dir) {
            Ok(s) => s,
            Err(e) => {
                // The folder itself is gone or unreadable: keep the accounts running rather
                // than stopping the whole fleet over a transient problem.
                tracing::warn!(error = %e, "accounts folder unreadable; keeping accounts as they are");
                return 0;
            }
        };
        let mut sent = 0;
        let mut seen = HashMap::new();
        for s in scanned {
            seen.insert(s.id.clone(), s.fingerprint);
            if self.told.get(&s.id) != Some(&s.fingerprint) {
                sup.do_send(Upsert {
                    id: s.id,
                    fingerprint: s.fingerprint,
                    file: s.file,
                });
                sent += 1;
            }
        }
        for id in self.told.keys() {
            if !seen.contains_key(id) {
                sup.do_send(Remove { id: id.clone() });
                sent += 1;
            }
        }
        self.told = seen;
        sent
    }
}

/// Scans `dir` once now (so accounts start at once), then watches it on a thread. `scan` may
/// hold a read of the folder already made: only files changed since are read again.
pub fn spawn(
    dir: PathBuf,
    sup: Addr<FleetSupervisor>,
    rescan: Duration,
    scan: DirScan,
) -> Result<WatcherHandle, notify::Error> {
    let mut known = Known::with_scan(scan);
    known.sync(&dir, &sup);
    let (tx, rx) = mpsc::channel::<()>();
    let mut debouncer = notify_debouncer_full::new_debouncer(
        DEBOUNCE,
        Some(DEBOUNCE_TICK),
        move |res: notify_debouncer_full::DebounceEventResult| {
            // Only a change is a nudge. The scan itself opens and reads every file, and
            // inotify reports those accesses: nudging on them made the watcher rescan the
            // whole folder every debounce window forever (at 1,000 accounts, most of the
            // idle fleet's CPU).
            let change = match &res {
                Ok(events) => events
                    .iter()
                    .any(|e| !matches!(e.event.kind, notify::EventKind::Access(_))),
                Err(_) => true,
            };
            if change {
                let _ = tx.send(());
            }
        },
    )?;
    debouncer.watch(&dir, RecursiveMode::NonRecursive)?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    std::thread::Builder::new()
        .name("accounts-watcher".into())
        .spawn(move || {
            // Owned by the thread: dropping it would stop the file events.
            let _debouncer = debouncer;
            while !stop2.load(Ordering::Relaxed) {
                match rx.recv_timeout(rescan) {
                    Ok(()) => {
                        // Collapse a burst of nudges into one scan.
                        while rx.try_recv().is_ok() {}
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        std::thread::sleep(rescan);
                    }
                }
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                known.sync(&dir, &sup);
                // A scan of many files frees what it read; after a trim asked, give it back.
                crate::heap::collect_if_asked();
            }
        })
        .map_err(notify::Error::io)?;
    Ok(WatcherHandle { stop })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::fleet::account::Deps;
    use crate::fleet::status::StatusMap;
    use crate::fleet::webqq::fake::{FakeConnector, Script};
    use crate::fleet::AccountState;
    use crate::store::SledStore;

    async fn until(what: &str, mut f: impl FnMut() -> bool) {
        for _ in 0..200 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("timed out: {what}");
    }

    /// The rescan alone (no file events) finds new, changed, invalid and removed files.
    #[test]
    fn rescan_diffs_the_folder_and_tells_the_supervisor() {
        let dir = tempfile::tempdir().unwrap();
        let acc = dir.path().join("accounts");
        std::fs::create_dir_all(&acc).unwrap();
        std::fs::write(acc.join("a.toml"), "qq = 10001\n").unwrap();
        let status: StatusMap = Default::default();
        let script = Arc::new(Mutex::new(Script {
            hold: Duration::from_secs(60),
            scanned_by: 10001,
            ..Script::default()
        }));
        let deps = Arc::new(Deps::for_tests(
            Arc::new(SledStore::open(&dir.path().join("data")).unwrap()),
            Arc::new(FakeConnector { script, qq: 10001 }),
            status.clone(),
            dir.path().join("data"),
        ));
        let sys = actix::System::new();
        sys.block_on(async move {
            let sup = FleetSupervisor::new(deps, vec![]).start();
            let mut known = Known::default();
            assert_eq!(known.sync(&acc, &sup), 1);
            until("a started", || status.contains_key("a")).await;
            assert_eq!(known.sync(&acc, &sup), 0, "nothing changed");
            std::fs::write(acc.join("a.toml"), "qq = 10001\nhandler = \"log\"\n").unwrap();
            std::fs::write(acc.join("b.toml"), "qq = 10002\nbogus = 1\n").unwrap();
            assert_eq!(known.sync(&acc, &sup), 2);
            until("b invalid", || {
                status
                    .get("b")
                    .is_some_and(|s| s.state == AccountState::Invalid)
            })
            .await;
            let err = status.get("b").unwrap().error.clone().unwrap();
            assert!(err.contains("b.toml:2") && err.contains("bogus"), "{err}");
            std::fs::remove_file(acc.join("a.toml")).unwrap();
            assert_eq!(known.sync(&acc, &sup), 1);
            until("a removed", || !status.contains_key("a")).await;
            assert!(status.contains_key("b"));
        });
    }
}
