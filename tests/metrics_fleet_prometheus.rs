//! The proof against a real Prometheus, end to end: `qqfleet run --sim` (the real binary, three
//! accounts, the simulator in the process with its demo phone scanning the QR codes) is scraped
//! every second by `/usr/bin/prometheus` on loopback. The test sends messages and faults through
//! the simulator's control API, then evaluates every panel of the dashboard and every alert
//! rule through Prometheus' HTTP API.

mod metrics_harness;

use std::time::{Duration, Instant};

use metrics_harness::{
    account_files, alert_rule_problems, control, free_port, http, loopback_urls, now_unix,
    poll_until, promtool, repo, series_lines, Macros, Prometheus, Qqfleet,
};
use serde_json::json;

const ACCOUNTS: [(&str, u64); 3] = [
    ("alpha", 3_100_001),
    ("bravo", 3_100_002),
    ("charlie", 3_100_003),
];

#[test]
fn a_real_prometheus_evaluates_every_panel_and_alert_over_qqfleet_run_sim() {
    let accounts = account_files(&ACCOUNTS);
    let data = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());

    // Prometheus first, so its 1 s scrapes are running when the accounts wait for their scans.
    let prom = Prometheus::start(
        std::slice::from_ref(&listen),
        &[repo().join("dashboards/alerts.yml")],
    );
    prom.wait_for("up", Duration::from_secs(30));
    let start = now_unix() - 1.0;

    let mut fleet = Qqfleet::start(
        &[
            "run",
            "--sim",
            "--accounts",
            accounts.path().to_str().unwrap(),
            "--data",
            data.path().to_str().unwrap(),
            "--listen",
            &listen,
        ],
        // The debug hooks let the test panic an account's actor through the admin API.
        &[("RUST_LOG", "info"), ("QQFLEET_DEBUG_HOOKS", "1")],
    );

    // /metrics answers, and passes promtool's lint on a real scrape.
    let page = poll_until(Duration::from_secs(30), "qqfleet /metrics", || {
        fleet.assert_running();
        http("GET", &listen, "/metrics", None)
            .ok()
            .filter(|r| r.status == 200)
    });
    let (ok, out) = promtool(&["check", "metrics"], Some(&page.body), None);
    assert!(ok, "promtool check metrics on qqfleet run --sim:\n{out}");

    // The in-process simulator's address, as qqfleet run --sim prints it.
    let sim = poll_until(
        Duration::from_secs(30),
        "the simulator's URL in the output",
        || {
            loopback_urls(&fleet.output())
                .into_iter()
                .map(|u| u.trim_start_matches("http://").to_owned())
                .find(|a| {
                    *a != listen
                        && http("GET", a, "/sim/health", None).is_ok_and(|r| r.status == 200)
                })
        },
    );

    // All three accounts come online through the demo phone's scans.
    poll_until(Duration::from_secs(60), "three accounts online", || {
        fleet.assert_running();
        let v = prom.vector(r#"qqfleet_accounts{state="online"} == 3"#);
        (!v.is_empty()).then_some(())
    });

    // The budget on the real process: an idle online account costs at most 20 series.
    let page = http("GET", &listen, "/metrics", None).unwrap().body;
    for (id, _) in ACCOUNTS {
        let n = series_lines(&page)
            .into_iter()
            .filter(|l| l.contains(&format!("account=\"{id}\"")))
            .count();
        eprintln!("{id} (idle, online) has {n} series");
        assert!((1..=20).contains(&n), "{id} has {n} series");
    }

    // A message of every kind to every account; the echo handler answers each, and the send
    // limiter (burst 1) makes the answers wait. The faults come once the answers are out: a
    // session that dies with sends still queued is a different story (see the report).
    for (_, qq) in ACCOUNTS {
        for kind in ["buddy", "group", "discu", "sess"] {
            control(
                "POST",
                &sim,
                "/sim/inject",
                json!({"qq": qq, "kind": kind, "text": format!("hello {kind}")}),
            );
        }
    }
    // The simulator's demo chatter keeps the accounts busy too, so "every echo sent" is read
    // from the simulator (each account's replies to the injected texts; a `sess` message has
    // no reply target) and from Prometheus (the delivered count), not from an empty outbox,
    // which the chatter may never leave at the same scrape on all three accounts.
    let replied = |qq: u64| {
        let sent = control("GET", &sim, &format!("/sim/sent?qq={qq}"), json!({}));
        let texts: Vec<String> = sent
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["text"].as_str().map(str::to_owned))
            .collect();
        ["buddy", "group", "discu"]
            .iter()
            .all(|k| texts.iter().any(|t| *t == format!("hello {k}")))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        fleet.assert_running();
        let sent = prom.vector(r#"sum(qqfleet_messages_sent_total{result="delivered"}) >= 9"#);
        if !sent.is_empty() && ACCOUNTS.iter().all(|(_, qq)| replied(*qq)) {
            break;
        }
        // What each account sent and still holds, and the fleet's last lines, so a timeout
        // says where the echoes stopped.
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after 90 s waiting for every echo sent\nsent: {:?}\noutbox: {:?}\nheld: {:?}\n{}",
            prom.vector("qqfleet_messages_sent_total"),
            prom.vector("qqfleet_outbox_messages"),
            prom.vector("qqfleet_messages_held_total > 0"),
            fleet.tail(80)
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Every received message and accepted reply was made durable by a flush of the store:
    // the flush histograms have counted them, each flush covering at least one write.
    prom.wait_for(
        "qqfleet_store_flush_writes_count > 0 and on (instance) qqfleet_store_flush_writes_sum >= on (instance) qqfleet_store_flush_writes_count",
        Duration::from_secs(30),
    );
    prom.wait_for(
        "qqfleet_store_flush_duration_seconds_count > 0",
        Duration::from_secs(30),
    );
    // Each of those messages waited for its record before its handler: the wait histogram
    // counted the nine injected at least, and never more waits than messages received.
    prom.wait_for(
        "sum(qqfleet_message_wait_seconds_count) >= 9 and sum(qqfleet_message_wait_seconds_count) <= sum(qqfleet_messages_received_total)",
        Duration::from_secs(30),
    );

    // Faults: a lost connection on alpha's poll (relink), an expired session on bravo
    // (relogin through a new QR), a kick on charlie (stopped until an operator acts), and a
    // panic inside alpha's actor (rebuilt from the store).
    control(
        "POST",
        &sim,
        "/sim/faults",
        json!({"qq": ACCOUNTS[0].1, "endpoint": "poll2", "retcode": 121, "count": 1}),
    );
    control("POST", &sim, "/sim/expire", json!({"qq": ACCOUNTS[1].1}));
    control("POST", &sim, "/sim/kick", json!({"qq": ACCOUNTS[2].1}));
    control(
        "POST",
        &listen,
        "/api/accounts/alpha/debug/panic",
        json!({}),
    );

    // What the faults must show in Prometheus before the panels are judged.
    let wait = |what: &str, expr: &str, fleet: &mut Qqfleet| {
        let deadline = Instant::now() + Duration::from_secs(90);
        while prom.vector(expr).is_empty() {
            fleet.assert_running();
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} ({expr}); qqfleet's last lines:\n{}",
                fleet.tail(40)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    for (what, expr) in [
        (
            "alpha's relink",
            r#"qqfleet_reconnects_total{account="alpha",kind="relink"} > 0"#,
        ),
        (
            "the poll retcode 121",
            r#"qqfleet_retcodes_total{account="alpha",endpoint="poll2",retcode="121"}"#,
        ),
        (
            "alpha's actor rebuilt",
            r#"qqfleet_actor_restarts_total{actor="account"} > 0"#,
        ),
        (
            "charlie stopped",
            r#"qqfleet_account_state{account="charlie",state="stopped"}"#,
        ),
        (
            "bravo's relogin",
            r#"qqfleet_reconnects_total{account="bravo",kind=~"relogin|resume"} > 0"#,
        ),
        (
            "bravo back online",
            r#"qqfleet_account_up{account="bravo"} == 1 and on (account) qqfleet_reconnects_total{account="bravo",kind=~"relogin|resume"} > 0"#,
        ),
        (
            "alpha back online",
            r#"qqfleet_account_up{account="alpha"} == 1"#,
        ),
    ] {
        wait(what, expr, &mut fleet);
    }
    // A friend-list lockout on bravo: the server answers retcode 6 to the next refreshes.
    control(
        "POST",
        &sim,
        "/sim/faults",
        json!({"qq": ACCOUNTS[1].1, "endpoint": "get_user_friends2", "retcode": 6, "count": 3}),
    );
    control(
        "POST",
        &listen,
        "/api/accounts/bravo/contacts/refresh",
        json!({}),
    );
    wait(
        "bravo's lockout",
        r#"qqfleet_retcodes_total{account="bravo",endpoint="get_user_friends2",retcode="6"}"#,
        &mut fleet,
    );

    // Every panel, for the fleet and drilled down to alpha, with Grafana's macros substituted.
    let elapsed = (now_unix() - start).ceil() as u64;
    let all = Macros {
        rate_interval: "4s".into(),
        interval: "1s".into(),
        range: format!("{elapsed}s"),
        account: ".*".into(),
    };
    let alpha = Macros {
        account: "alpha".into(),
        ..Macros {
            rate_interval: "4s".into(),
            interval: "1s".into(),
            range: format!("{elapsed}s"),
            account: String::new(),
        }
    };
    prom.wait_dashboard_ok(
        &[
            (&all, &[]),
            // alpha never loses its session, so its drill-down has no QR wait after its first
            // scan, which may fall between two scrapes.
            (&alpha, &["Accounts waiting for a QR scan"]),
        ],
        start,
        Duration::from_secs(30),
    );

    // Every alert rule is healthy and evaluates; the lockout fires and charlie is pending as
    // down, and nothing else is raised: no storm, no open-file alarm.
    let rules = prom.evaluated_alert_rules(Duration::from_secs(20));
    assert_eq!(rules.len(), 10);
    let problems = alert_rule_problems(&prom, &rules);
    assert!(problems.is_empty(), "{problems:#?}");
    let alerts = poll_until(
        Duration::from_secs(20),
        "the lockout and charlie's down alerts",
        || {
            let a = prom.alerts();
            let has = |name: &str, state: &str, account: &str| {
                a.iter()
                    .any(|(n, s, l)| n == name && s == state && l["account"] == account)
            };
            (has("QQFleetFriendListLockout", "firing", "bravo")
                && has("QQFleetAccountDown", "pending", "charlie"))
            .then_some(a)
        },
    );
    for (name, state, labels) in &alerts {
        assert!(
            matches!(
                name.as_str(),
                "QQFleetFriendListLockout" | "QQFleetAccountDown" | "QQFleetQrWaitingTooLong"
            ),
            "unexpected alert {name} {state} {labels}"
        );
    }
    let fds =
        prom.vector("process_open_fds / process_max_fds and on (instance, job) qqfleet_build_info");
    assert!(!fds.is_empty() && fds[0]["value"][1].as_str().unwrap().parse::<f64>().unwrap() < 0.8);

    // The series budget on the real process: alpha is online and was never removed.
    let page = http("GET", &listen, "/metrics", None).unwrap().body;
    let alpha_series = series_lines(&page)
        .into_iter()
        .filter(|l| l.contains("account=\"alpha\""))
        .count();
    eprintln!("alpha (online, busy) has {alpha_series} series");
    let (ok, out) = promtool(&["check", "metrics"], Some(&page), None);
    assert!(ok, "promtool check metrics after the scenario:\n{out}");

    let t = Instant::now();
    let status = fleet.stop();
    assert!(
        status.is_some_and(|s| s.success()),
        "qqfleet did not exit cleanly on SIGTERM ({:?}):\n{}",
        t.elapsed(),
        fleet.output()
    );
}
