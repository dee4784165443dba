//! The fleet-wide login gate and QR keeping, with Account actors against the scripted
//! WebQQ under paused tokio time (functional: what each account shows, what was called).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;

use super::account::{Account, Deps};
use super::gate::LoginGate;
use super::status::StatusMap;
use super::webqq::fake::{FakeConnector, Script};
use super::AccountState;
use crate::config::AccountFile;
use crate::protocol::{Endpoint, ProtocolError, QrStatus};
use crate::store::SledStore;

const QQ: u64 = 20001;

struct Harness {
    script: Arc<Mutex<Script>>,
    status: StatusMap,
    deps: Arc<Deps>,
    _dir: tempfile::TempDir,
}

fn harness(gate: LoginGate) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let script = Arc::new(Mutex::new(Script {
        hold: Duration::from_secs(60),
        scanned_by: QQ,
        scans_after: 2,
        ..Script::default()
    }));
    let status: StatusMap = Default::default();
    let deps = Arc::new(Deps {
        gate: Arc::new(gate),
        ..Deps::for_tests(
            Arc::new(SledStore::open(&dir.path().join("data")).unwrap()),
            Arc::new(FakeConnector {
                script: script.clone(),
                qq: QQ,
            }),
            status.clone(),
            dir.path().join("data"),
        )
    });
    Harness {
        script,
        status,
        deps,
        _dir: dir,
    }
}

fn paused<F: std::future::Future<Output = ()>>(f: F) {
    let sys = actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
    });
    sys.block_on(f);
}

/// The reason of the account's last state change.
fn reason(h: &Harness, id: &str) -> String {
    h.status
        .get(id)
        .and_then(|e| e.history.as_ref()?.back()?.reason.clone())
        .unwrap_or_default()
}

fn count(h: &Harness, st: AccountState) -> usize {
    h.status.iter().filter(|e| e.state == st).count()
}

async fn until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let end = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < end {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

fn transport() -> ProtocolError {
    ProtocolError::HttpStatus {
        endpoint: Endpoint::Ptqrlogin,
        status: 502,
    }
}

#[test]
fn logins_beyond_the_bound_wait_their_turn_as_starting() {
    // Two slots, five accounts whose codes nobody scans yet.
    let h = harness(LoginGate::new(2, 0.0));
    h.script.lock().unwrap().scans_after = u32::MAX;
    paused(async move {
        let mut addrs = Vec::new();
        for i in 0..5 {
            let mut c = AccountFile::new(&format!("a{i}"), QQ);
            c.supervision.watchdog_secs = 90;
            addrs.push(Account::new(c, h.deps.clone()).start());
        }
        until("two codes shown", Duration::from_secs(10), || {
            count(&h, AccountState::AwaitingScan) == 2
        })
        .await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(count(&h, AccountState::AwaitingScan), 2);
        assert_eq!(count(&h, AccountState::Starting), 3);
        assert_eq!(h.deps.gate.in_progress(), 2);
        assert_eq!(
            h.script.lock().unwrap().counts.fetch_qr,
            2,
            "one code per slot"
        );
        let waiting = h
            .status
            .iter()
            .filter(|e| e.state == AccountState::Starting)
            .filter(|e| reason(&h, &e.id).contains("waiting for a login slot"))
            .count();
        assert_eq!(waiting, 3, "the waiting accounts say why");
        // The phone scans from now on: every account comes online, two at a time.
        {
            let mut s = h.script.lock().unwrap();
            s.scans_after = 0;
        }
        until("all five online", Duration::from_secs(60), || {
            count(&h, AccountState::Online) == 5
        })
        .await;
        assert_eq!(h.deps.gate.in_progress(), 0, "online accounts hold no slot");
        assert_eq!(h.script.lock().unwrap().counts.fetch_qr, 5);
        drop(addrs);
        System::current().stop();
    });
}

#[test]
fn an_expired_unscanned_code_lets_the_queue_in() {
    // One slot, two accounts: the first code expires unscanned, so the second account gets
    // the slot before the first asks for a new code.
    let h = harness(LoginGate::new(1, 0.0));
    {
        let mut s = h.script.lock().unwrap();
        s.scans_after = u32::MAX;
        s.qr_checks.push_back(Ok(QrStatus::Expired));
    }
    paused(async move {
        let mut addrs = Vec::new();
        for i in 0..2 {
            let mut c = AccountFile::new(&format!("a{i}"), QQ);
            c.supervision.watchdog_secs = 90;
            addrs.push(Account::new(c, h.deps.clone()).start());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        until(
            "the second account shows a code",
            Duration::from_secs(20),
            || {
                h.status
                    .get("a1")
                    .is_some_and(|s| s.state == AccountState::AwaitingScan)
            },
        )
        .await;
        let a0 = h.status.get("a0").unwrap().state;
        assert_eq!(a0, AccountState::Starting);
        let why = reason(&h, "a0");
        assert!(why.contains("expired"), "{why}");
        drop(addrs);
        System::current().stop();
    });
}

#[test]
fn a_failed_qr_check_keeps_the_code() {
    let h = harness(LoginGate::new(4, 0.0));
    {
        let mut s = h.script.lock().unwrap();
        // More failed checks in a row than the old three-retry limit, then the scan.
        for _ in 0..6 {
            s.qr_checks.push_back(Err(transport()));
        }
        s.scans_after = 1;
    }
    paused(async move {
        let mut c = AccountFile::new("a", QQ);
        c.supervision.watchdog_secs = 90;
        let _addr = Account::new(c, h.deps.clone()).start();
        until("online", Duration::from_secs(120), || {
            count(&h, AccountState::Online) == 1
        })
        .await;
        let s = h.script.lock().unwrap();
        assert_eq!(s.counts.fetch_qr, 1, "the same code was checked again");
        assert!(s.qr_checks.is_empty());
        assert_eq!(s.counts.complete_login, 1);
        let hist: Vec<AccountState> = h
            .status
            .get("a")
            .and_then(|e| e.history.clone())
            .map(|v| v.into_iter().map(|t| t.state).collect())
            .unwrap_or_default();
        assert!(!hist.contains(&AccountState::Backoff), "{hist:?}");
        drop(s);
        System::current().stop();
    });
}

#[test]
fn new_codes_are_paced_fleet_wide() {
    // Two codes a second, six accounts: the sixth code comes 2.5 s after the first.
    let h = harness(LoginGate::new(100, 2.0));
    h.script.lock().unwrap().scans_after = u32::MAX;
    paused(async move {
        let t0 = tokio::time::Instant::now();
        let mut addrs = Vec::new();
        for i in 0..6 {
            let mut c = AccountFile::new(&format!("a{i}"), QQ);
            c.supervision.watchdog_secs = 90;
            addrs.push(Account::new(c, h.deps.clone()).start());
        }
        until("one code", Duration::from_secs(5), || {
            h.script.lock().unwrap().counts.fetch_qr >= 1
        })
        .await;
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let after_1s = h.script.lock().unwrap().counts.fetch_qr;
        assert!(after_1s <= 3, "{after_1s} codes in the first second");
        until("six codes", Duration::from_secs(10), || {
            h.script.lock().unwrap().counts.fetch_qr == 6
        })
        .await;
        assert!(t0.elapsed() >= Duration::from_millis(2500));
        drop(addrs);
        System::current().stop();
    });
}
