//! The Prometheus harness proven against a scrape target this test controls: a real
//! Prometheus (`/usr/bin/prometheus`) on loopback scrapes `render_metrics()` served over
//! HTTP while events are emitted in-process; every dashboard panel and every alert rule is
//! then evaluated through Prometheus' HTTP API, and the alerts the scenario should raise are
//! the ones Prometheus reports.
//!
//! The end-to-end version against `qqfleet run --sim` is `metrics_fleet_prometheus.rs`.

mod metrics_harness;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics_harness::{
    alert_rule_problems, http, now_unix, poll_until, promtool, repo, serve_metrics, Macros,
    Prometheus,
};
use qqfleet::events::{
    emit, render_metrics, AccountStateChanged, ActorRestarted, DuplicateDropped, LoginFinished,
    LoginMethod, MessageReceived, MessageSent, OutboxDepth, OutgoingHeld, PollCompleted,
    RateLimited, ReconnectKind, ReconnectStarted, RetcodeReceived,
};
use qqfleet::fleet::AccountState;

fn set_state(account: &str, to: AccountState) {
    emit(AccountStateChanged {
        account,
        from: None,
        to,
        reason: None,
    });
}

/// Accounts of the scenario: two online and busy, one waiting for a QR scan, one in backoff.
const ONLINE: [&str; 2] = ["h-online-1", "h-online-2"];
const WAITING: &str = "h-waiting";
const BACKOFF: &str = "h-backoff";

/// Traffic of the online accounts, once per tick, until `stop`.
fn traffic(stop: Arc<AtomicBool>) {
    let mut depth = 0;
    while !stop.load(Ordering::Relaxed) {
        for a in ONLINE {
            emit(PollCompleted {
                account: a,
                outcome: "events",
                elapsed: Duration::from_millis(300),
            });
            emit(PollCompleted {
                account: a,
                outcome: "idle",
                elapsed: Duration::from_secs(60),
            });
            emit(MessageReceived {
                account: a,
                kind: "buddy",
                text: "hello",
                self_echo: false,
                waited: None,
            });
            emit(MessageSent {
                account: a,
                kind: "buddy",
                text: "hello",
                result: "delivered",
            });
            emit(RateLimited {
                account: a,
                limiter: "send",
                wait: Duration::from_millis(50),
            });
            emit(RetcodeReceived {
                account: a,
                endpoint: "poll2",
                retcode: 121,
            });
            emit(ReconnectStarted {
                account: a,
                kind: ReconnectKind::Relink,
                reason: "poll retcode 121",
            });
            emit(LoginFinished {
                account: a,
                method: LoginMethod::Relink,
                ok: true,
                reason: None,
            });
        }
        // One outbox keeps growing: nothing drains it.
        depth += 1;
        emit(OutboxDepth {
            account: ONLINE[0],
            depth: 20 + depth,
        });
        emit(ActorRestarted {
            account: ONLINE[1],
            actor: "poller",
            reason: "watchdog",
        });
        emit(DuplicateDropped {
            account: ONLINE[0],
            poll_type: "message",
        });
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn prometheus_scrapes_evaluates_every_panel_and_raises_the_right_alerts() {
    for a in ONLINE {
        for to in [
            AccountState::Starting,
            AccountState::AwaitingScan,
            AccountState::LoggingIn,
            AccountState::Online,
        ] {
            set_state(a, to);
        }
        emit(LoginFinished {
            account: a,
            method: LoginMethod::Qr,
            ok: true,
            reason: None,
        });
    }
    set_state(WAITING, AccountState::Starting);
    set_state(WAITING, AccountState::AwaitingScan);
    set_state(BACKOFF, AccountState::Starting);
    set_state(BACKOFF, AccountState::Backoff);

    let target = serve_metrics(render_metrics);
    // promtool lints the exposition as served over HTTP, not just the string.
    let scraped = http("GET", &target, "/metrics", None).expect("scrape");
    assert_eq!(scraped.status, 200);
    let (ok, out) = promtool(&["check", "metrics"], Some(&scraped.body), None);
    assert!(ok, "promtool check metrics on the served page:\n{out}");

    let prom = Prometheus::start(
        std::slice::from_ref(&target),
        &[repo().join("dashboards/alerts.yml")],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let stop = stop.clone();
        std::thread::spawn(move || traffic(stop))
    };

    // The first sample takes about 5 s (service discovery batches its first update).
    let first = prom.wait_for("qqfleet_build_info", Duration::from_secs(30));
    let start = now_unix() - 1.0;
    assert_eq!(first[0]["metric"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        prom.target_health().iter().all(|t| t.contains("\"up\"")),
        "{:?}",
        prom.target_health()
    );

    // Events after the first scrape: a relogin storm on the backoff account, and a
    // friend-list lockout (retcode 6) on the first online account.
    for _ in 0..8 {
        emit(ReconnectStarted {
            account: BACKOFF,
            kind: ReconnectKind::Relogin,
            reason: "session expired",
        });
    }
    emit(RetcodeReceived {
        account: ONLINE[0],
        endpoint: "get_user_friends2",
        retcode: 6,
    });
    // And a message the second account's sender gave up on.
    emit(OutgoingHeld {
        account: ONLINE[1],
        reason: "refused",
    });

    // Every panel parses and returns data, for the whole fleet and drilled down to one
    // account. Rate windows need two scrapes, so poll until the panels fill or time runs out.
    let all = Macros {
        rate_interval: "4s".into(),
        interval: "1s".into(),
        range: "1m".into(),
        account: ".*".into(),
    };
    let one = Macros {
        account: ONLINE[0].into(),
        ..Macros {
            rate_interval: "4s".into(),
            interval: "1s".into(),
            range: "1m".into(),
            account: String::new(),
        }
    };
    prom.wait_dashboard_ok(
        &[
            (&all, &[]),
            // The drilled-down account is online and never waits for a scan.
            (&one, &["Accounts waiting for a QR scan"]),
        ],
        start,
        Duration::from_secs(30),
    );

    // Every alert rule is healthy and its expression evaluates.
    let rules = prom.evaluated_alert_rules(Duration::from_secs(20));
    assert_eq!(rules.len(), 10, "{rules:?}");
    let problems = alert_rule_problems(&prom, &rules);
    assert!(problems.is_empty(), "{problems:#?}");

    // The alerts Prometheus raises are exactly the scenario's: the lockout fires at once; the
    // others wait out their `for` as pending.
    let want = [
        ("QQFleetFriendListLockout", "firing", Some(ONLINE[0])),
        ("QQFleetQrWaitingTooLong", "pending", Some(WAITING)),
        ("QQFleetAccountDown", "pending", Some(BACKOFF)),
        ("QQFleetReloginStorm", "pending", None),
        ("QQFleetOutboxBacklogGrowing", "pending", Some(ONLINE[0])),
        // Both online accounts relink four times a second.
        ("QQFleetReconnectLoop", "pending", Some(ONLINE[0])),
        ("QQFleetReconnectLoop", "pending", Some(ONLINE[1])),
        ("QQFleetMessageHeld", "firing", Some(ONLINE[1])),
    ];
    let alerts = poll_until(Duration::from_secs(20), "the scenario's alerts", || {
        let a = prom.alerts();
        let ours: Vec<_> = a
            .iter()
            .filter(|(_, _, l)| {
                l["account"]
                    .as_str()
                    .is_none_or(|acc| acc.starts_with("h-"))
            })
            .cloned()
            .collect();
        want.iter()
            .all(|(name, state, account)| {
                ours.iter().any(|(n, s, l)| {
                    n == name && s == state && account.is_none_or(|acc| l["account"] == acc)
                })
            })
            .then_some(ours)
    });
    // And no other alert: not the open-file one, not a storm or a backlog for the second
    // account.
    for (name, state, labels) in &alerts {
        assert!(
            want.iter().any(|(n, s, acc)| n == name
                && s == state
                && acc.is_none_or(|acc| labels["account"] == acc)),
            "unexpected alert {name} {state} {labels}"
        );
    }
    let fds = prom.vector("process_open_fds / process_max_fds");
    assert!(!fds.is_empty());

    stop.store(true, Ordering::Relaxed);
    worker.join().unwrap();
}
