//! Secrets never reach the logs of a full run, in either log format, nor `/metrics` or the
//! admin API (see `full_run`).

mod metrics_harness;

use std::time::Duration;

use metrics_harness::{
    account_files, control, free_port, http, loopback_urls, poll_until, Qqfleet, RecordingProxy,
};
use serde_json::json;

/// A full run with debug logs: `qqfleet sim` in its own process, the recording proxy in front
/// of it, and `qqfleet run --sim-url` pointed at the proxy. The test scans the account's QR
/// codes through the control API, sends messages of every kind, and makes the session's
/// secrets change (a ptwebqq rotation by retcode 116, a relink, an expired session and a new
/// scan), then greps everything the fleet printed for every secret value the proxy saw.
fn full_run(log_format: &str) {
    const QQ: u64 = 3_200_001;
    let mut sim = Qqfleet::start(&["sim", "--listen", "127.0.0.1:0", "--hold", "2"], &[]);
    let sim_addr = poll_until(Duration::from_secs(20), "the simulator's address", || {
        sim.assert_running();
        loopback_urls(&sim.output())
            .first()
            .map(|u| u.trim_start_matches("http://").to_owned())
    });
    let proxy = RecordingProxy::start(&sim_addr);
    let accounts = account_files(&[("secretive", QQ)]);
    let data = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut fleet = Qqfleet::start(
        &[
            "--log-format",
            log_format,
            "run",
            "--sim-url",
            &format!("http://{}", proxy.addr),
            "--accounts",
            accounts.path().to_str().unwrap(),
            "--data",
            data.path().to_str().unwrap(),
            "--listen",
            &listen,
        ],
        &[("RUST_LOG", "debug")],
    );

    // The phone: scan every waiting QR as the account's number (through the proxy, so the
    // answers that follow carry the secrets past it).
    let scan = |fleet: &mut Qqfleet| {
        fleet.assert_running();
        let qrs = control("GET", &proxy.addr, "/sim/qr", json!(null));
        for qr in qrs.as_array().into_iter().flatten() {
            if qr["state"] == "waiting" {
                control(
                    "POST",
                    &proxy.addr,
                    "/sim/qr/scan",
                    json!({"qrsig": qr["qrsig"], "qq": QQ, "confirm": true}),
                );
            }
        }
    };
    let online = |fleet: &mut Qqfleet| {
        poll_until(Duration::from_secs(60), "the account online", || {
            scan(fleet);
            let r = http("GET", &listen, "/api/accounts", None).ok()?;
            r.body.contains("\"online\"").then_some(())
        })
    };
    online(&mut fleet);

    for kind in ["buddy", "group", "discu", "sess"] {
        control(
            "POST",
            &proxy.addr,
            "/sim/inject",
            json!({"qq": QQ, "kind": kind, "text": format!("hello {kind}")}),
        );
    }
    fleet.until(
        Duration::from_secs(60),
        "three echoes (buddy, group, discu; the echo bot only logs session messages)",
        || {
            let sent = control(
                "GET",
                &proxy.addr,
                &format!("/sim/sent?qq={QQ}"),
                json!(null),
            );
            (sent.as_array().map_or(0, Vec::len) >= 3).then_some(())
        },
    );
    control(
        "POST",
        &proxy.addr,
        "/sim/faults",
        json!({"qq": QQ, "endpoint": "poll2", "retcode": 116, "count": 1}),
    );
    control(
        "POST",
        &proxy.addr,
        "/sim/faults",
        json!({"qq": QQ, "endpoint": "poll2", "retcode": 121, "count": 1}),
    );
    control("POST", &proxy.addr, "/sim/expire", json!({"qq": QQ}));
    // The expiry sends the account back to a QR; scanning brings it online on new secrets.
    poll_until(
        Duration::from_secs(60),
        "the account to leave online",
        || {
            let r = http("GET", &listen, "/api/accounts", None).ok()?;
            (!r.body.contains("\"online\"")).then_some(())
        },
    );
    online(&mut fleet);
    control(
        "POST",
        &proxy.addr,
        "/sim/inject",
        json!({"qq": QQ, "kind": "buddy", "text": "after expiry"}),
    );
    fleet.until(Duration::from_secs(60), "the echo after the expiry", || {
        let sent = control(
            "GET",
            &proxy.addr,
            &format!("/sim/sent?qq={QQ}"),
            json!(null),
        );
        (sent.as_array().map_or(0, Vec::len) >= 4).then_some(())
    });
    // What an operator's tools read while it runs.
    let metrics = http("GET", &listen, "/metrics", None).unwrap().body;
    let api = http("GET", &listen, "/api/accounts", None).unwrap().body;
    let api_one = http("GET", &listen, "/api/accounts/secretive", None)
        .unwrap()
        .body;
    fleet.stop();
    sim.stop();

    let secrets = proxy.secrets();
    let logs = fleet.output();
    if log_format == "json" {
        let mut client_lines = 0;
        // Every line is JSON (the QR art is printed for people only in the text format).
        for l in logs.lines().filter(|l| l.starts_with('{')) {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            // The protocol client knows nothing of accounts: its request/answer/retcode lines
            // get the id from the account span the fleet runs every client call in.
            if v["target"] == "qqfleet::protocol::client" {
                client_lines += 1;
                let spans = v["spans"].as_array().cloned().unwrap_or_default();
                assert!(
                    v["span"]["account"] == "secretive"
                        && spans.iter().any(|s| s["account"] == "secretive"),
                    "a protocol client line without the account id: {l}"
                );
            }
            // A line that speaks of the account (its id or its QQ number) carries its id as a
            // field, or inside an account span.
            if l.contains("secretive") || l.contains(&QQ.to_string()) {
                let spans = v["spans"].as_array().cloned().unwrap_or_default();
                assert!(
                    v["fields"]["account"] == "secretive"
                        || v["span"]["account"] == "secretive"
                        || spans.iter().any(|s| s["account"] == "secretive"),
                    "a line about the account without its id: {l}"
                );
            }
        }
        let requests = logs
            .lines()
            .filter(|l| l.contains("\"message\":\"request\""))
            .count();
        assert!(
            requests > 10 && client_lines > requests,
            "client request and answer lines at debug: {requests} requests, {client_lines} lines"
        );
    } else {
        // Text: the span prints as a prefix of the client's lines.
        let requests: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains("qqfleet::protocol::client") && l.contains(" request "))
            .collect();
        assert!(requests.len() > 10, "{logs}");
        for l in requests {
            assert!(l.contains("account{account=\"secretive\"}"), "{l}");
        }
    }
    assert!(
        logs.lines().count() > 20,
        "a debug run logs more than this:\n{logs}"
    );
    // The proxy saw the secrets of both sessions (the test would be empty otherwise).
    for kind in [
        "json psessionid",
        "json vfwebqq",
        "set-cookie ptwebqq",
        "set-cookie skey",
    ] {
        let n = secrets.keys().filter(|k| k.starts_with(kind)).count();
        assert!(
            n >= 2,
            "expected two sessions' {kind}, saw {n}: {secrets:#?}"
        );
    }
    let mut leaked = Vec::new();
    for (seen, value) in &secrets {
        // QQ numbers (uin cookies such as o0003200001) identify the account and are logged on
        // purpose; everything else a server sets is secret.
        let digits = value.trim_start_matches(['o', '0']);
        if value.len() < 6 || digits == QQ.to_string() {
            continue;
        }
        for (place, text) in [
            ("logs", &logs),
            ("/metrics", &metrics),
            ("/api/accounts", &api),
            ("/api/accounts/secretive", &api_one),
        ] {
            if text.contains(value.as_str()) {
                leaked.push(format!("{place}: {seen}"));
            }
        }
    }
    eprintln!(
        "{log_format}: {} secret values checked against {} log lines",
        secrets.len(),
        logs.lines().count()
    );
    assert!(leaked.is_empty(), "secrets leaked: {leaked:#?}");
}

#[test]
fn a_full_debug_run_never_logs_a_secret_in_text() {
    full_run("text");
}

#[test]
fn a_full_debug_run_never_logs_a_secret_in_json() {
    full_run("json");
}
