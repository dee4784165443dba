//! Account state machine against a scripted WebQQ, under paused tokio time: minutes of
//! backoff and watchdog run in milliseconds.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;

use super::*;
use crate::config::AccountFile;
use crate::fleet::status::StatusMap;
use crate::fleet::webqq::fake::{FakeConnector, Script};
use crate::protocol::{PollEvent, PollResult, ProtocolError, Session};
use crate::store::SledStore;

struct Harness {
    script: Arc<Mutex<Script>>,
    status: StatusMap,
    store: Arc<SledStore>,
    deps: Arc<Deps>,
    _dir: tempfile::TempDir,
}

fn harness(qq: u64) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(&dir.path().join("data")).unwrap());
    let script = Arc::new(Mutex::new(Script {
        hold: Duration::from_secs(60),
        scanned_by: qq,
        scans_after: 2,
        msg_id: 1000,
        ..Script::default()
    }));
    let status: StatusMap = Default::default();
    let deps = Arc::new(Deps::for_tests(
        store.clone(),
        Arc::new(FakeConnector {
            script: script.clone(),
            qq,
        }),
        status.clone(),
        dir.path().join("data"),
    ));
    Harness {
        script,
        status,
        store,
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

fn state(h: &Harness, id: &str) -> Option<AccountState> {
    h.status.get(id).map(|s| s.state)
}

/// Waits (simulated time) until the account is in `want`.
async fn until_state(h: &Harness, id: &str, want: AccountState, within: Duration) {
    let end = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < end {
        if state(h, id) == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{id}: wanted {want}, still {:?} ({:?})",
        state(h, id),
        h.status.get(id).map(|s| s.error.clone())
    );
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

fn history(h: &Harness, id: &str) -> Vec<AccountState> {
    h.status
        .get(id)
        .and_then(|s| s.history.clone())
        .map(|v| v.into_iter().map(|t| t.state).collect())
        .unwrap_or_default()
}

fn buddy_event(from: u64, msg_id: u64, text: &str) -> PollEvent {
    crate::protocol::PollEvent::Unknown(serde_json::json!({
        "poll_type": "message",
        "value": {"content": [["font", {}], text], "from_uin": from, "msg_id": msg_id,
                  "msg_type": 0, "time": 1, "to_uin": 1}
    }))
}

/// A friend message from uin 5 as the handler sees it.
fn buddy_incoming(msg_id: u64, text: &str) -> handler::Incoming {
    handler::Incoming {
        kind: handler::Kind::Buddy,
        poll_type: "message".into(),
        source: 5,
        sender: 5,
        msg_id,
        time: 0,
        text: text.into(),
        self_echo: false,
    }
}

/// Starts account "a" (qq 10001) with the `log` handler writing to `log`; returns once it
/// is online.
async fn online_log_account(h: &Harness, log: &std::path::Path) -> Addr<Account> {
    let mut c = cfg("a", 10001);
    c.handler = crate::config::HandlerKind::Log;
    c.log_path = Some(log.to_path_buf());
    let addr = Account::new(c, h.deps.clone()).start();
    until_state(h, "a", AccountState::Online, Duration::from_secs(30)).await;
    addr
}

/// The texts the `log` handler wrote to `log`, in order (none if it wrote nothing yet).
fn logged_texts(log: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<handler::Incoming>(l).unwrap().text)
        .collect()
}

/// The next poll answers with these events.
fn answer_next_poll(h: &Harness, events: Vec<PollEvent>) {
    h.script
        .lock()
        .unwrap()
        .polls
        .push_back(Ok(PollResult::Events(events)));
}

fn cfg(id: &str, qq: u64) -> AccountFile {
    let mut c = AccountFile::new(id, qq);
    c.supervision.watchdog_secs = 90;
    c
}

#[test]
fn qr_login_then_echo_through_the_outbox() {
    let h = harness(10001);
    paused(async {
        Account::new(cfg("a", 10001), h.deps.clone()).start();
        until_state(&h, "a", AccountState::AwaitingScan, Duration::from_secs(5)).await;
        assert!(h.status.get("a").unwrap().qr_png.is_some());
        until_state(&h, "a", AccountState::Online, Duration::from_secs(30)).await;
        assert_eq!(
            history(&h, "a"),
            [
                AccountState::Starting,
                AccountState::AwaitingScan,
                AccountState::LoggingIn,
                AccountState::Online
            ]
        );
        assert!(
            h.store.load_session("a").unwrap().is_some(),
            "session saved"
        );
        h.script
            .lock()
            .unwrap()
            .polls
            .push_back(Ok(PollResult::Events(vec![buddy_event(5, 1, "hello")])));
        until("the echo", Duration::from_secs(30), || {
            !h.script.lock().unwrap().sent.is_empty()
        })
        .await;
        let sent = h.script.lock().unwrap().sent.clone();
        assert_eq!(sent[0].0, crate::protocol::Target::Buddy(5));
        assert_eq!(sent[0].1, "hello");
        until("outbox drained", Duration::from_secs(5), || {
            h.store.outbox_len("a").unwrap() == 0
        })
        .await;
        // The msg_id the send used was saved in the session before it went out.
        assert!(h.store.load_session("a").unwrap().unwrap().msg_id >= sent[0].2);
    });
}

#[test]
fn wrong_qq_scan_is_refused_and_backs_off() {
    let h = harness(10001);
    h.script.lock().unwrap().scanned_by = 99999;
    paused(async {
        Account::new(cfg("a", 10001), h.deps.clone()).start();
        until_state(&h, "a", AccountState::Backoff, Duration::from_secs(30)).await;
        let err = h.status.get("a").unwrap().error.clone().unwrap();
        assert!(err.contains("99999"), "{err}");
        assert_eq!(h.script.lock().unwrap().counts.complete_login, 0);
    });
}

#[test]
fn saved_session_resumes_without_a_scan() {
    let h = harness(10001);
    h.store
        .save_session(
            "a",
            &Session {
                uin: 10001,
                psessionid: "ps".into(),
                ..Session::default()
            },
        )
        .unwrap();
    paused(async {
        Account::new(cfg("a", 10001), h.deps.clone()).start();
        until_state(&h, "a", AccountState::Online, Duration::from_secs(10)).await;
        let c = h.script.lock().unwrap().counts.clone();
        assert_eq!(c.fetch_qr, 0, "no QR for a saved session");
        assert_eq!(c.relink + c.resume, 1);
    });
}

#[test]
fn dead_session_falls_back_to_a_scan() {
    let h = harness(10001);
    h.store
        .save_session(
            "a",
            &Session {
                uin: 10001,
                ..Session::default()
            },
        )
        .unwrap();
    {
        let mut s = h.script.lock().unwrap();
        s.relinks.push_back(Err(ProtocolError::NotLoggedIn));
        s.resumes.push_back(Err(ProtocolError::NotLoggedIn));
    }
    paused(async {
        Account::new(cfg("a", 10001), h.deps.clone()).start();
        until_state(&h, "a", AccountState::Online, Duration::from_secs(30)).await;
        let c = h.script.lock().unwrap().counts.clone();
        assert_eq!((c.relink, c.resume), (1, 1));
        assert!(c.fetch_qr >= 1);
        assert!(history(&h, "a").contains(&AccountState::AwaitingScan));
    });
}

#[test]
fn retcodes_drive_relink_and_kick_stops() {
    let h = harness(10001);
    paused(async {
        let addr = Account::new(cfg("a", 10001), h.deps.clone()).start();
        until_state(&h, "a", AccountState::Online, Duration::from_secs(30)).await;
        // 121: relink, back online without a scan.
        h.script
            .lock()
            .unwrap()
            .polls
            .push_back(Ok(PollResult::Retcode {
                retcode: 121,
                action: Action::Relink,
            }));
        until("relink", Duration::from_secs(10), || {
            h.script.lock().unwrap().counts.relink == 1
        })
        .await;
        until_state(&h, "a", AccountState::Online, Duration::from_secs(10)).await;
        let hist = history(&h, "a");
        assert_eq!(
            &hist[hist.len() - 2..],
            [AccountState::LoggingIn, AccountState::Online]
        );
        // 102: just poll again.
        let polls = h.script.lock().unwrap().counts.poll;
        h.script
            .lock()
            .unwrap()
            .polls
            .push_back(Ok(PollResult::Retcode {
                retcode: 102,
                action: Action::Repoll,
            }));
        until("repoll", Duration::from_secs(5), || {
            h.script.lock().unwrap().counts.poll > polls
        })
        .await;
        assert_eq!(state(&h, "a"), Some(AccountState::Online));
        // 103: probe; alive → keep polling (no relink); dead → relink.
        {
            let mut s = h.script.lock().unwrap();
            s.probes.extend([Ok(true), Ok(false)]);
            for _ in 0..2 {
                s.polls.push_back(Ok(PollResult::Retcode {
                    retcode: 103,
                    action: Action::Probe,
                }));
            }
        }
        until(
            "relink after the dead probe",
            Duration::from_secs(10),
            || h.script.lock().unwrap().counts.relink == 2,
        )
        .await;
        until_state(&h, "a", AccountState::Online, Duration::from_secs(10)).await;
        assert!(h.script.lock().unwrap().probes.is_empty());
        // A kick: stopped, and it stays stopped across a rebuild of the actor.
        h.script
            .lock()
            .unwrap()
            .polls
            .push_back(Ok(PollResult::Events(vec![PollEvent::Unknown(
                serde_json::json!({"poll_type":"kick_message","value":{"reason":"elsewhere"}}),
            )])));
        until_state(&h, "a", AccountState::Stopped, Duration::from_secs(10)).await;
        assert!(h
            .status
            .get("a")
            .unwrap()
            .error
            .clone()
            .unwrap()
            .contains("kicked"));
        addr.send(Shutdown).await.unwrap();
        Account::new(cfg("a", 10001), h.deps.clone()).start();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(state(&h, "a"), Some(AccountState::Stopped));
    });
}

#[test]
fn repeated_refusals_back_off_then_park() {
    let h = harness(10001);
    paused(async {
        let mut c = cfg("a", 10001);
        c.supervision.park_after = 3;
        Account::new(c, h.deps.clone()).start();
        until_state(&h, "a", AccountState::Online, Duration::from_secs(30)).await;
        {
            let mut s = h.script.lock().unwrap();
            // Every poll answers a code the table calls fatal; every resume works.
            for _ in 0..40 {
                s.polls.push_back(Ok(PollResult::Retcode {
                    retcode: 100006,
                    action: Action::Fatal,
                }));
            }
        }
        until_state(&h, "a", AccountState::Backoff, Duration::from_secs(30)).await;
        until_state(&h, "a", AccountState::Parked, Duration::from_secs(600)).await;
        assert_eq!(
            h.store.load_hold("a").unwrap().map(|h| h.0),
            Some(AccountState::Parked)
        );
        // Parked stays parked: no more attempts.
        let (resumes, polls) = {
            let s = h.script.lock().unwrap();
            (s.counts.resume + s.counts.relink, s.counts.poll)
        };
        tokio::time::sleep(Duration::from_secs(900)).await;
        let s = h.script.lock().unwrap();
        assert_eq!(
            (s.counts.resume + s.counts.relink, s.counts.poll),
            (resumes, polls)
        );
    });
}

#[test]
fn an_outage_backs_off_to_the_cap_but_never_parks() {
    let h = harness(10001);
    paused(async {
        let mut c = cfg("a", 10001);
        c.supervision.park_after = 3;
        c.supervision.backoff_cap_secs = 30;
        Account::new(c, h.deps.clone()).start();
        until_state(&h, "a", AccountState::Online, Duration::from_secs(30)).await;
        let reset = || ProtocolError::Transport {
            endpoint: crate::protocol::Endpoint::Poll2,
            message: "reset".into(),
        };
        {
            let mut s = h.script.lock().unwrap();
            for _ in 0..200 {
                s.polls.push_back(Err(reset()));
                s.relinks.push_back(Err(ProtocolError::Transport {
                    endpoint: crate::protocol::Endpoint::Login2,
                    message: "refused".into(),
                }));
            }
        }
        until_state(&h, "a", AccountState::Backoff, Duration::from_secs(30)).await;
        // Ten simulated minutes of outage: many attempts, never parked.
        let end = tokio::time::Instant::now() + Duration::from_secs(600);
        while tokio::time::Instant::now() < end {
            assert_ne!(state(&h, "a"), Some(AccountState::Parked));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let relinks = h.script.lock().unwrap().counts.relink;
        assert!(relinks >= 10, "kept trying: {relinks}");
        // The server comes back: online again by itself.
        {
            let mut s = h.script.lock().unwrap();
            s.polls.clear();
            s.relinks.clear();
        }
        until_state(&h, "a", AccountState::Online, Duration::from_secs(120)).await;
    });
}

#[test]
fn watchdog_restarts_a_silent_poller() {
    let h = harness(10001);
    paused(async {
        let mut c = cfg("a", 10001);
        c.supervision.watchdog_secs = 20;
        Account::new(c, h.deps.clone()).start();
        until_state(&h, "a", AccountState::Online, Duration::from_secs(30)).await;
        h.script.lock().unwrap().hang_polls = true;
        until("a poller restart", Duration::from_secs(120), || {
            h.status
                .get("a")
                .and_then(|s| s.restarts)
                .is_some_and(|r| r.poller >= 1)
        })
        .await;
        h.script.lock().unwrap().hang_polls = false;
        let polls = h.script.lock().unwrap().counts.poll;
        // The restarted Poller's poll answers (idle after the 60 s hold) and the next starts.
        until("polling again", Duration::from_secs(200), || {
            h.script.lock().unwrap().counts.poll > polls
        })
        .await;
        assert_eq!(state(&h, "a"), Some(AccountState::Online));
    });
}

#[test]
fn duplicates_and_replays_reach_the_handler_once() {
    let h = harness(10001);
    let log = h._dir.path().join("log.jsonl");
    paused(async {
        online_log_account(&h, &log).await;
        h.script.lock().unwrap().polls.extend([
            Ok(PollResult::Events(vec![
                buddy_event(5, 1, "one"),
                buddy_event(5, 1, "one"),
            ])),
            Ok(PollResult::Events(vec![
                buddy_event(5, 1, "one"),
                buddy_event(5, 2, "two"),
            ])),
        ]);
        until("two lines", Duration::from_secs(10), || {
            std::fs::read_to_string(&log)
                .map(|t| t.lines().count())
                .unwrap_or(0)
                >= 2
        })
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(logged_texts(&log), ["one", "two"]);
    });
    // A "crash" after recording and before handling: the restarted account handles it once.
    let ev = buddy_incoming(3, "three");
    h.store
        .accept_incoming("a", &ev.dedup_key(), &serde_json::to_vec(&ev).unwrap(), 1)
        .unwrap()
        .unwrap();
    paused(async {
        online_log_account(&h, &log).await;
        answer_next_poll(&h, vec![buddy_event(5, 3, "three")]);
        tokio::time::sleep(Duration::from_secs(3)).await;
    });
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(h.store.inbox("a").unwrap().is_empty());
}

#[test]
fn backoff_is_full_jitter_capped() {
    let mut rng = rand::rng();
    for n in 1..40 {
        let d = backoff_delay(n, 1000, 300, &mut rng);
        let ceiling = (1000u64 << (n - 1).min(20)).min(300_000);
        assert!(d.as_millis() as u64 <= ceiling, "{n}: {d:?}");
    }
    let big: Vec<_> = (0..200)
        .map(|_| backoff_delay(30, 1000, 300, &mut rng))
        .collect();
    assert!(big.iter().any(|d| d.as_secs() < 150) && big.iter().any(|d| d.as_secs() > 150));
}

#[test]
fn sender_holds_refused_and_uncertain_messages_and_retries_transport_errors() {
    use crate::protocol::{SendOutcome, Target};
    let h = harness(10001);
    paused(async {
        let mut c = cfg("a", 10001);
        c.on_uncertain = crate::config::UncertainPolicy::Hold;
        let addr = Account::new(c, h.deps.clone()).start();
        until_state(&h, "a", AccountState::Online, Duration::from_secs(30)).await;
        let rejected = || ProtocolError::SendRejected {
            endpoint: crate::protocol::Endpoint::SendBuddyMsg2,
            retcode: 1,
            action: Action::Fatal,
            pieces_delivered: 0,
        };
        {
            let mut s = h.script.lock().unwrap();
            s.sends.extend([
                Err(rejected()),
                Err(rejected()),
                Err(rejected()),
                Ok(SendOutcome::Uncertain),
                Err(ProtocolError::Transport {
                    endpoint: crate::protocol::Endpoint::SendBuddyMsg2,
                    message: "connection refused".into(),
                }),
                Ok(SendOutcome::Delivered),
                Err(ProtocolError::Timeout {
                    endpoint: crate::protocol::Endpoint::SendBuddyMsg2,
                    after: Duration::from_secs(30),
                }),
            ]);
        }
        for text in ["refused", "maybe", "late", "timed out"] {
            addr.send(Enqueue {
                target: Target::Buddy(7),
                text: text.into(),
            })
            .await
            .unwrap()
            .unwrap();
        }
        until("outbox drained", Duration::from_secs(120), || {
            h.store.outbox_len("a").unwrap() == 0
        })
        .await;
        let held: Vec<String> = h
            .store
            .held("a")
            .unwrap()
            .into_iter()
            .map(|m| m.text)
            .collect();
        assert_eq!(held, ["refused", "maybe", "timed out"]);
        let sent = h.script.lock().unwrap().sent.clone();
        let texts: Vec<&str> = sent.iter().map(|s| s.1.as_str()).collect();
        // "maybe" (1202) went out once and was never resent; "late" was retried after the
        // transport error and delivered; "timed out" may have arrived: held, not resent.
        assert_eq!(texts, ["maybe", "late"]);
        // The retry of "late" reused the msg_id of its failed attempt (recorded with the
        // message): maybe = n, late's failed attempt = n + 1 = its retry.
        assert_eq!(sent[1].2, sent[0].2 + 1, "{sent:?}");
        // ...on the same session: a transport error on a send needs no relink.
        assert_eq!(h.script.lock().unwrap().counts.relink, 0);
        assert_eq!(state(&h, "a"), Some(AccountState::Online));
    });
}

#[test]
fn retire_logs_out_keeps_the_msg_id_and_the_next_start_scans() {
    let h = harness(10001);
    h.store
        .save_session(
            "a",
            &Session {
                uin: 10001,
                psessionid: "ps".into(),
                msg_id: 5000,
                ..Session::default()
            },
        )
        .unwrap();
    paused(async {
        let addr = Account::new(cfg("a", 10001), h.deps.clone()).start();
        until_state(&h, "a", AccountState::Online, Duration::from_secs(10)).await;
        addr.send(Retire).await.unwrap();
        assert_eq!(h.script.lock().unwrap().counts.logout, 1);
        let saved = h.store.load_session("a").unwrap().unwrap();
        assert!(saved.is_logged_out(), "{saved:?}");
        assert_eq!((saved.uin, saved.msg_id), (10001, 5000));
        assert!(saved.psessionid.is_empty());

        // The file comes back: nothing to resume, a scan, and the msg_id counter goes on.
        h.status.clear();
        let before = h.script.lock().unwrap().counts.clone();
        Account::new(cfg("a", 10001), h.deps.clone()).start();
        until_state(&h, "a", AccountState::Online, Duration::from_secs(30)).await;
        let c = h.script.lock().unwrap().counts.clone();
        assert_eq!((c.relink, c.resume), (before.relink, before.resume));
        assert!(c.fetch_qr > before.fetch_qr);
        assert_eq!(h.script.lock().unwrap().msg_id, 5000);
        assert!(!h.store.load_session("a").unwrap().unwrap().is_logged_out());
    });
}

/// `[retcodes]` overrides replace the table's answer: relogin, repoll and stop.
#[test]
fn retcode_overrides_replace_the_tables_answer() {
    use crate::config::RetcodeAction;
    let h = harness(10001);
    paused(async {
        let mut c = cfg("a", 10001);
        c.retcodes.insert(121, RetcodeAction::Relogin);
        c.retcodes.insert(116, RetcodeAction::Repoll);
        c.retcodes.insert(100012, RetcodeAction::Stop);
        Account::new(c, h.deps.clone()).start();
        until_state(&h, "a", AccountState::Online, Duration::from_secs(30)).await;
        let push = |retcode: i64, action: Action| {
            h.script
                .lock()
                .unwrap()
                .polls
                .push_back(Ok(PollResult::Retcode { retcode, action }));
        };
        // 121 says relink in the table; the override says relogin (a resume).
        let before = h.script.lock().unwrap().counts.clone();
        push(121, Action::Relink);
        until("resume", Duration::from_secs(10), || {
            h.script.lock().unwrap().counts.resume == before.resume + 1
        })
        .await;
        until_state(&h, "a", AccountState::Online, Duration::from_secs(10)).await;
        assert_eq!(h.script.lock().unwrap().counts.relink, before.relink);
        // Repoll: just poll again, no reconnect.
        let polls = h.script.lock().unwrap().counts.poll;
        push(116, Action::RefreshPtwebqq("p".into()));
        until("repoll", Duration::from_secs(5), || {
            h.script.lock().unwrap().counts.poll > polls
        })
        .await;
        assert_eq!(state(&h, "a"), Some(AccountState::Online));
        // Stop: held as stopped.
        push(100012, Action::Repoll);
        until_state(&h, "a", AccountState::Stopped, Duration::from_secs(10)).await;
        assert!(h.store.load_hold("a").unwrap().is_some());
    });
}

/// A message from a friend missing from the contacts refreshes them at once (a new friend),
/// a known one does not, and a second stranger within the minute waits for the backstop.
#[test]
fn a_message_from_an_unknown_friend_refreshes_the_contacts() {
    let h = harness(10011);
    h.script.lock().unwrap().contacts = Some(crate::protocol::Contacts {
        friends: vec![crate::protocol::contacts::Friend {
            uin: 5,
            nick: "known".into(),
            markname: None,
            category: 0,
            face: 0,
            is_vip: false,
        }],
        ..Default::default()
    });
    paused(async {
        let mut c = cfg("a", 10011);
        c.handler = crate::config::HandlerKind::Log;
        c.log_path = Some(h._dir.path().join("handled.jsonl"));
        Account::new(c, h.deps.clone()).start();
        until_state(&h, "a", AccountState::Online, Duration::from_secs(30)).await;
        let fetched = || h.script.lock().unwrap().counts.contacts;
        until("the first contacts", Duration::from_secs(5), || {
            fetched() == 1
        })
        .await;
        let poll = |ev| {
            h.script
                .lock()
                .unwrap()
                .polls
                .push_back(Ok(PollResult::Events(vec![ev])));
        };
        let polled = || h.script.lock().unwrap().counts.poll;
        let before = polled();
        poll(buddy_event(5, 1, "from a friend"));
        until("the known one polled", Duration::from_secs(150), || {
            polled() > before + 1
        })
        .await;
        assert_eq!(fetched(), 1, "a known friend refreshes nothing");
        poll(buddy_event(77, 2, "from a new friend"));
        until("the refresh", Duration::from_secs(150), || fetched() == 2).await;
        let before = polled();
        poll(buddy_event(78, 3, "another stranger"));
        until("the second polled", Duration::from_secs(150), || {
            polled() > before + 1
        })
        .await;
        assert_eq!(fetched(), 2, "at most one such refresh a minute");
    });
}

/// Test hook: the store refused a write with these messages received, each with the seq of
/// its record when one was made (as `record` and `record_answer` keep them).
#[derive(Message)]
#[rtype(result = "()")]
struct StoreRefused(Vec<(handler::Incoming, Option<u64>)>);

impl Handler<StoreRefused> for Account {
    type Result = ();
    fn handle(&mut self, msg: StoreRefused, ctx: &mut Context<Self>) {
        self.store_fault("test: the disk refused a write");
        self.unrecorded.extend(msg.0);
        self.watch_store(ctx);
    }
}

/// A record whose flush failed may have reached the disk in part: the dedup key (written
/// first) without the inbox entry. Once the store takes writes again the Account completes
/// the record and handles the message once; a kept message whose key belongs to another
/// record (a duplicate delivery) is not handled again; one never recorded is recorded then.
#[test]
fn a_record_cut_short_by_a_store_fault_is_handled_once_after_recovery() {
    let h = harness(10001);
    let log = h._dir.path().join("log.jsonl");
    paused(async {
        let addr = online_log_account(&h, &log).await;
        answer_next_poll(&h, vec![buddy_event(5, 1, "one")]);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(logged_texts(&log), ["one"]);

        // "two": only its dedup key reached the disk. "one" again: the server delivered it
        // twice, and the second record's flush failed. "three": never recorded.
        let two = buddy_incoming(2, "two");
        let payload = serde_json::to_vec(&two).unwrap();
        let seq = h
            .store
            .record_incoming("a", &two.dedup_key(), &payload, 1)
            .unwrap()
            .unwrap();
        h.store.inbox_done_quiet("a", seq).unwrap();
        h.store.flush().unwrap();
        addr.send(StoreRefused(vec![
            (buddy_incoming(1, "one"), Some(seq + 100)),
            (two, Some(seq)),
            (buddy_incoming(3, "three"), None),
        ]))
        .await
        .unwrap();
        // The recovery check runs a second later and finds the store writable.
        tokio::time::sleep(Duration::from_secs(3)).await;
    });
    assert_eq!(logged_texts(&log), ["one", "two", "three"]);
    assert!(h.store.inbox("a").unwrap().is_empty());
    assert!(h.status.get("a").unwrap().error.is_none());
}

/// Account "a"'s store holds `msg`'s dedup key, recorded at unix second `at` by an earlier
/// run, its message handled.
fn handled_key_from_earlier_run(h: &Harness, msg: &handler::Incoming, at: u64) {
    let seq = h
        .store
        .accept_incoming("a", &msg.dedup_key(), b"{}", at)
        .unwrap()
        .unwrap();
    h.store.inbox_done("a", seq, &[]).unwrap();
}

/// The dedup window is pruned only while it holds keys: past the start's one look for keys
/// left from before (which forgets them), an idle account scans nothing, and a received
/// message arms one prune a window later.
#[test]
fn the_dedup_window_is_pruned_only_while_it_holds_keys() {
    use std::sync::atomic::Ordering;
    let h = harness(10001);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("handled.jsonl");
    // A key recorded long ago (unix second 1) by an earlier run.
    let old = buddy_incoming(7, "old");
    handled_key_from_earlier_run(&h, &old, 1);
    let scans = || h.store.prune_scans.load(Ordering::Relaxed);
    paused(async {
        online_log_account(&h, &log).await;
        tokio::time::sleep(Duration::from_secs(61)).await;
        assert_eq!(scans(), 1, "the start's look for old keys");
        // Ten idle minutes, every poll answered empty: no scan.
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(scans(), 1, "an idle account scanned its dedup keys");
        answer_next_poll(&h, vec![buddy_event(5, 1, "one")]);
        until("the message handled", Duration::from_secs(70), || {
            logged_texts(&log).len() == 1
        })
        .await;
        tokio::time::sleep(Duration::from_secs(DEDUP_WINDOW_SECS - 10)).await;
        assert_eq!(scans(), 1, "pruned before the key could leave the window");
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert_eq!(scans(), 2, "no prune a window after the message");
    });
    // The start's look forgot the old key (it is new again); the message's key is kept (the
    // clock the keys are dated by did not move a window).
    assert!(h
        .store
        .accept_incoming("a", &old.dedup_key(), b"{}", 2)
        .unwrap()
        .is_some());
    let one = buddy_incoming(1, "one");
    assert_eq!(
        h.store
            .accept_incoming("a", &one.dedup_key(), b"{}", 2)
            .unwrap(),
        None
    );
}

/// A window whose oldest key is about to leave it (as under a steady stream of messages) is
/// pruned at most once a gap, not every second.
#[test]
fn dedup_prunes_stay_a_gap_apart_when_keys_keep_leaving_the_window() {
    use std::sync::atomic::Ordering;
    let h = harness(10001);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("handled.jsonl");
    // A key 20 s from leaving the window, by the clock keys are dated with.
    let edge = now_secs() - DEDUP_WINDOW_SECS + 20;
    handled_key_from_earlier_run(&h, &buddy_incoming(7, "x"), edge);
    let scans = || h.store.prune_scans.load(Ordering::Relaxed);
    paused(async {
        // Timed from the account's start, not from its login (which takes a few seconds):
        // the start's look comes 30-60 s in, the next one not before a gap (60 s) after it.
        let start = tokio::time::Instant::now();
        let at = |secs| tokio::time::sleep_until(start + Duration::from_secs(secs));
        online_log_account(&h, &log).await;
        at(61).await;
        assert_eq!(scans(), 1);
        at(89).await;
        assert_eq!(scans(), 1, "pruned again within the gap");
        at(122).await;
        assert_eq!(scans(), 2);
    });
}
