//! The metrics written by `events::emit`: every contract family, the per-state counts, the
//! removal of an account's series, the label bounds, the series budget per idle account, and
//! `promtool check metrics` on the real exposition.
//!
//! The registry is process-wide and tests run in parallel threads, so each test uses account
//! ids of its own and looks only at its own series.

mod metrics_harness;

use std::time::Duration;

use metrics_harness::{has_label, promtool, series_lines, series_name};
use qqfleet::events::{
    emit, render_metrics, AccountRemoved, AccountStateChanged, ActorRestarted, DuplicateDropped,
    LoginFinished, LoginMethod, MessageReceived, MessageSent, OutboxDepth, OutgoingHeld,
    PollCompleted, RateLimited, ReconnectKind, ReconnectStarted, RetcodeReceived,
};
use qqfleet::fleet::AccountState;

/// Moves `account` through the states a QR login passes, as the Account actor does.
fn bring_online(account: &str) {
    let path = [
        AccountState::Starting,
        AccountState::AwaitingScan,
        AccountState::LoggingIn,
        AccountState::Online,
    ];
    let mut from = None;
    for to in path {
        emit(AccountStateChanged {
            account,
            from,
            to,
            reason: None,
        });
        from = Some(to);
    }
    emit(LoginFinished {
        account,
        method: LoginMethod::Qr,
        ok: true,
        reason: None,
    });
}

/// The series of one account in the current exposition.
fn account_series(text: &str, account: &str) -> Vec<String> {
    series_lines(text)
        .into_iter()
        .filter(|l| has_label(l, "account", account))
        .map(str::to_owned)
        .collect()
}

/// The value of the one series of `name` whose labels include every pair of `labels`.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<f64> = series_lines(text)
        .into_iter()
        .filter(|l| series_name(l) == name && labels.iter().all(|(k, v)| has_label(l, k, v)))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?} matches {found:?}");
    found.first().copied()
}

#[test]
fn every_contract_family_is_exposed_with_help_and_type() {
    let a = "fam-a";
    bring_online(a);
    emit(PollCompleted {
        account: a,
        outcome: "idle",
        elapsed: Duration::from_secs(60),
    });
    emit(RetcodeReceived {
        account: a,
        endpoint: "get_user_friends2",
        retcode: 6,
    });
    emit(ReconnectStarted {
        account: a,
        kind: ReconnectKind::Relink,
        reason: "poll retcode 121",
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
    emit(OutboxDepth {
        account: a,
        depth: 3,
    });
    emit(RateLimited {
        account: a,
        limiter: "send",
        wait: Duration::from_millis(300),
    });
    emit(ActorRestarted {
        account: a,
        actor: "poller",
        reason: "watchdog",
    });
    emit(OutgoingHeld {
        account: a,
        reason: "refused",
    });
    emit(DuplicateDropped {
        account: a,
        poll_type: "message",
    });
    let text = render_metrics();
    for family in [
        "qqfleet_accounts",
        "qqfleet_account_up",
        "qqfleet_account_state",
        "qqfleet_poll_duration_seconds",
        "qqfleet_reconnects_total",
        "qqfleet_retcodes_total",
        "qqfleet_logins_total",
        "qqfleet_messages_received_total",
        "qqfleet_messages_sent_total",
        "qqfleet_outbox_messages",
        "qqfleet_rate_limited_total",
        "qqfleet_actor_restarts_total",
        "qqfleet_messages_held_total",
        "qqfleet_duplicates_dropped_total",
        "qqfleet_build_info",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            text.contains(&format!("# HELP {family} "))
                && text.contains(&format!("# TYPE {family} ")),
            "{family} has no HELP/TYPE in:\n{text}"
        );
    }
    assert_eq!(
        value(&text, "qqfleet_account_up", &[("account", a)]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "qqfleet_account_state",
            &[("account", a), ("state", "online")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "qqfleet_retcodes_total",
            &[
                ("account", a),
                ("endpoint", "get_user_friends2"),
                ("retcode", "6")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "qqfleet_reconnects_total",
            &[("account", a), ("kind", "relink")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "qqfleet_reconnects_total",
            &[("account", a), ("kind", "relogin")]
        ),
        Some(0.0),
        "reconnect kinds start at 0 so the first one shows in rate()"
    );
    assert_eq!(
        value(
            &text,
            "qqfleet_logins_total",
            &[("account", a), ("method", "qr"), ("result", "ok")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "qqfleet_messages_sent_total",
            &[("account", a), ("kind", "buddy"), ("result", "delivered")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "qqfleet_outbox_messages", &[("account", a)]),
        Some(3.0)
    );
    assert_eq!(
        value(
            &text,
            "qqfleet_rate_limited_total",
            &[("account", a), ("limiter", "send")]
        ),
        Some(1.0)
    );
    assert!(
        value(
            &text,
            "qqfleet_actor_restarts_total",
            &[("actor", "poller")]
        )
        .unwrap()
            >= 1.0
    );
    assert_eq!(
        value(
            &text,
            "qqfleet_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    // A 60 s idle poll lands in the 60 s bucket, not the 55 s one.
    assert!(
        value(
            &text,
            "qqfleet_poll_duration_seconds_bucket",
            &[("outcome", "idle"), ("le", "60")]
        )
        .unwrap()
            >= 1.0
    );
    assert!(value(&text, "process_resident_memory_bytes", &[]).unwrap() > 0.0);
    // Fleet-wide histograms never carry an account.
    assert!(!series_lines(&text)
        .iter()
        .any(|l| l.starts_with("qqfleet_poll_duration_seconds") && l.contains("account=")));
    // Secrets never reach the exposition, whatever else is in it.
    for secret in ["ptwebqq", "skey", "psessionid", "vfwebqq", "cookie"] {
        assert!(
            !text.to_lowercase().contains(secret),
            "{secret} in /metrics"
        );
    }
}

#[test]
fn every_actor_kind_has_a_restart_series_from_the_start() {
    let text = render_metrics();
    for actor in ["account", "login", "poller", "sender"] {
        assert!(
            value(&text, "qqfleet_actor_restarts_total", &[("actor", actor)]).is_some(),
            "qqfleet_actor_restarts_total{{actor=\"{actor}\"}} missing"
        );
    }
}

#[test]
fn all_nine_states_are_always_present() {
    let text = render_metrics();
    for s in AccountState::ALL {
        assert!(
            value(&text, "qqfleet_accounts", &[("state", s.as_str())]).is_some(),
            "qqfleet_accounts{{state=\"{s}\"}} missing"
        );
    }
}

#[test]
fn state_changes_move_one_account_between_states_and_removal_deletes_its_series() {
    // The fleet-wide counts are shared with other tests running now, so this test reads the
    // per-account series, and checks the per-state counts only through its own 50 accounts
    // in a state no other test uses (`parked`) while they are there.
    let ids: Vec<String> = (0..50).map(|i| format!("mv-{i}")).collect();
    let before = value(
        &render_metrics(),
        "qqfleet_accounts",
        &[("state", "parked")],
    )
    .unwrap();
    for id in &ids {
        bring_online(id);
        emit(AccountStateChanged {
            account: id,
            from: Some(AccountState::Online),
            to: AccountState::Backoff,
            reason: Some("poll retcode 103"),
        });
        // A repeated event (or a wrong `from`) must not double-count.
        for _ in 0..2 {
            emit(AccountStateChanged {
                account: id,
                from: Some(AccountState::Online),
                to: AccountState::Parked,
                reason: Some("too many failures"),
            });
        }
        emit(RetcodeReceived {
            account: id,
            endpoint: "poll2",
            retcode: 103,
        });
        emit(MessageSent {
            account: id,
            kind: "group",
            text: "hello",
            result: "failed",
        });
        emit(OutgoingHeld {
            account: id,
            reason: "uncertain",
        });
        // One of every other per-account event, so removal is checked for every family.
        emit(MessageReceived {
            account: id,
            kind: "discu",
            text: "hello",
            self_echo: false,
            waited: None,
        });
        emit(RateLimited {
            account: id,
            limiter: "send_target",
            wait: Duration::from_millis(5),
        });
        emit(ReconnectStarted {
            account: id,
            kind: ReconnectKind::Resume,
            reason: "restart",
        });
        emit(OutboxDepth {
            account: id,
            depth: 4,
        });
    }
    // An account that stays: its series must survive the others' removal.
    bring_online("mv-keep");
    emit(MessageReceived {
        account: "mv-keep",
        kind: "discu",
        text: "hello",
        self_echo: false,
        waited: None,
    });
    let kept = account_series(&render_metrics(), "mv-keep");
    let text = render_metrics();
    assert_eq!(
        value(&text, "qqfleet_accounts", &[("state", "parked")]).unwrap() - before,
        50.0
    );
    let one = account_series(&text, "mv-7");
    assert_eq!(
        value(&text, "qqfleet_account_up", &[("account", "mv-7")]),
        Some(0.0)
    );
    let states: Vec<&String> = one
        .iter()
        .filter(|l| series_name(l) == "qqfleet_account_state")
        .collect();
    assert_eq!(states.len(), 1, "one state series per account: {states:?}");
    assert!(has_label(states[0], "state", "parked"));

    for id in &ids {
        emit(AccountRemoved {
            account: id,
            last: Some(AccountState::Parked),
        });
    }
    let text = render_metrics();
    assert_eq!(
        value(&text, "qqfleet_accounts", &[("state", "parked")]).unwrap(),
        before,
        "removed accounts leave the per-state counts"
    );
    for id in &ids {
        assert_eq!(
            account_series(&text, id),
            Vec::<String>::new(),
            "{id} left series"
        );
    }
    let families: std::collections::HashSet<&str> = kept.iter().map(|l| series_name(l)).collect();
    assert_eq!(account_series(&text, "mv-keep"), kept);
    assert!(families.len() >= 7, "{families:?}");
    // An event arriving for a removed account brings back only what it says.
    emit(MessageReceived {
        account: "mv-3",
        kind: "buddy",
        text: "hello",
        self_echo: false,
        waited: None,
    });
    assert_eq!(account_series(&render_metrics(), "mv-3").len(), 1);
    emit(AccountRemoved {
        account: "mv-3",
        last: None,
    });
    assert!(account_series(&render_metrics(), "mv-3").is_empty());
    // Removing an unknown account is harmless.
    emit(AccountRemoved {
        account: "never-seen",
        last: None,
    });
}

#[test]
fn unknown_retcodes_are_counted_as_other() {
    let a = "rc-a";
    for code in [987_654, -42, 31337] {
        emit(RetcodeReceived {
            account: a,
            endpoint: "send_qun_msg2",
            retcode: code,
        });
    }
    emit(RetcodeReceived {
        account: a,
        endpoint: "send_qun_msg2",
        retcode: 1202,
    });
    let text = render_metrics();
    let mine = account_series(&text, a);
    assert_eq!(mine.len(), 2, "{mine:?}");
    assert_eq!(
        value(
            &text,
            "qqfleet_retcodes_total",
            &[("account", a), ("retcode", "other")]
        ),
        Some(3.0)
    );
}

/// The budget of the issue: at most 20 series per idle online account, counted for 100
/// accounts that each logged in by QR, polled idle a few times, and whose outbox is empty.
#[test]
fn an_idle_online_account_costs_at_most_20_series() {
    let ids: Vec<String> = (0..100).map(|i| format!("idle-{i:03}")).collect();
    for id in &ids {
        bring_online(id);
        for _ in 0..3 {
            emit(PollCompleted {
                account: id,
                outcome: "idle",
                elapsed: Duration::from_secs(60),
            });
            // An E1/E2-style idle answer is a retcode too.
            emit(RetcodeReceived {
                account: id,
                endpoint: "poll2",
                retcode: 102,
            });
        }
        emit(OutboxDepth {
            account: id,
            depth: 0,
        });
    }
    let text = render_metrics();
    let total: usize = ids.iter().map(|id| account_series(&text, id).len()).sum();
    let per_account = total as f64 / ids.len() as f64;
    eprintln!("series per idle online account: {per_account}");
    for id in &ids {
        let n = account_series(&text, id).len();
        assert!(n <= 20, "{id} has {n} series");
    }
    assert!(per_account <= 20.0);
    // And the fleet-wide part does not grow with accounts: nothing without an account label
    // carries an idle-NNN value.
    assert!(series_lines(&text)
        .iter()
        .filter(|l| !l.contains("account="))
        .all(|l| !l.contains("idle-")));
    // The exposition parses as Prometheus text.
    let parsed = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("exposition parses");
    assert!(parsed.samples.len() > 100 * 7);
}

/// `promtool check metrics` lints the exposition the way Prometheus' own tooling does
/// (counter suffixes, HELP lines, units, label names).
#[test]
fn promtool_check_metrics_passes() {
    let a = "lint-a";
    bring_online(a);
    emit(PollCompleted {
        account: a,
        outcome: "events",
        elapsed: Duration::from_millis(120),
    });
    emit(MessageReceived {
        account: a,
        kind: "group",
        text: "hello",
        self_echo: false,
        waited: None,
    });
    let text = render_metrics();
    let (ok, out) = promtool(&["check", "metrics"], Some(&text), None);
    assert!(ok, "promtool check metrics failed:\n{out}");

    // And the check is real: a counter without `_total` is flagged.
    let (ok, _) = promtool(
        &["check", "metrics"],
        Some("# HELP bad_counter x\n# TYPE bad_counter counter\nbad_counter 1\n"),
        None,
    );
    assert!(!ok, "promtool accepted a counter without _total");
}

#[test]
fn service_up_follows_the_outage_breaker() {
    use qqfleet::events::ServiceHealth;
    // Present at 1 before any outage, so "is the service up" is always a number.
    assert_eq!(
        value(&render_metrics(), "qqfleet_service_up", &[]),
        Some(1.0)
    );
    emit(ServiceHealth { up: false });
    let text = render_metrics();
    assert!(text.contains("# TYPE qqfleet_service_up gauge"), "{text}");
    assert_eq!(value(&text, "qqfleet_service_up", &[]), Some(0.0));
    emit(ServiceHealth { up: true });
    assert_eq!(
        value(&render_metrics(), "qqfleet_service_up", &[]),
        Some(1.0)
    );
}

/// An account another shard runs counts in `qqfleet_accounts{state="elsewhere"}` and has no
/// series of its own here (its owner exports them; two would double fleet-wide sums and fire
/// per-account alerts for an account that is fine). This test alone uses `elsewhere`.
#[test]
fn an_account_run_elsewhere_is_counted_but_has_no_series() {
    let count = || {
        value(
            &render_metrics(),
            "qqfleet_accounts",
            &[("state", "elsewhere")],
        )
        .unwrap()
    };
    let before = count();
    for id in ["else-a", "else-b"] {
        emit(AccountStateChanged {
            account: id,
            from: None,
            to: AccountState::Elsewhere,
            reason: Some("runs on shard 2/3"),
        });
    }
    assert_eq!(count(), before + 2.0);
    let text = render_metrics();
    assert!(account_series(&text, "else-a").is_empty(), "{text}");
    // An account that ran here and is now owned elsewhere loses its series too.
    bring_online("else-c");
    assert!(!account_series(&render_metrics(), "else-c").is_empty());
    emit(AccountStateChanged {
        account: "else-c",
        from: Some(AccountState::Online),
        to: AccountState::Elsewhere,
        reason: None,
    });
    assert!(account_series(&render_metrics(), "else-c").is_empty());
    assert_eq!(count(), before + 3.0);
    for id in ["else-a", "else-b", "else-c"] {
        emit(AccountRemoved {
            account: id,
            last: Some(AccountState::Elsewhere),
        });
    }
    assert_eq!(count(), before);
}

/// Each heap trim reports the allocator's live and kept-free bytes, so a soak can tell a
/// leak (live bytes grow) from freed memory kept for reuse (RSS grows, live bytes do not).
#[test]
fn heap_gauges_are_set_by_each_trim() {
    // A live allocation of 8 MiB is counted while it lives.
    let big = vec![1u8; 8 << 20];
    qqfleet::memtrim::trim();
    let with = value(&render_metrics(), "qqfleet_heap_in_use_bytes", &[]).expect("set by a trim");
    assert!(with >= (8 << 20) as f64, "{with}");
    assert!(value(&render_metrics(), "qqfleet_heap_free_bytes", &[]).is_some());
    drop(std::hint::black_box(big));
    qqfleet::memtrim::trim();
    let without = value(&render_metrics(), "qqfleet_heap_in_use_bytes", &[]).unwrap();
    assert!(
        without <= with - (6 << 20) as f64,
        "freed memory no longer counts as in use: {with} → {without}"
    );
}

/// A handled message's wait lands once in `qqfleet_message_wait_seconds`, in the bucket of
/// its duration; a replay (no wait known) is counted as received but not as a wait. Only
/// this test emits a wait, so the histogram moves by exactly what it emits.
#[test]
fn a_message_wait_is_observed_in_its_bucket_and_a_replay_is_not() {
    let a = "wait-a";
    bring_online(a);
    let before = render_metrics();
    let count = |t: &str| value(t, "qqfleet_message_wait_seconds_count", &[]).unwrap_or(0.0);
    let bucket = |t: &str, le: &str| {
        value(t, "qqfleet_message_wait_seconds_bucket", &[("le", le)]).unwrap_or(0.0)
    };
    for waited in [Some(Duration::from_micros(3_500)), None] {
        emit(MessageReceived {
            account: a,
            kind: "buddy",
            text: "hello",
            self_echo: false,
            waited,
        });
    }
    let after = render_metrics();
    assert_eq!(count(&after) - count(&before), 1.0);
    assert_eq!(bucket(&after, "0.003") - bucket(&before, "0.003"), 0.0);
    assert_eq!(bucket(&after, "0.004") - bucket(&before, "0.004"), 1.0);
    assert_eq!(
        value(
            &after,
            "qqfleet_messages_received_total",
            &[("account", a), ("kind", "buddy")]
        ),
        Some(2.0)
    );
}
