//! `--log-format json` keeps stderr a stream of JSON objects for a whole demo run: QR codes
//! appear as log events saying where the PNG is (no terminal art), and the conversation of
//! the demo shows at info level.

mod metrics_harness;

use std::time::Duration;

use metrics_harness::{account_files, free_port, http, Qqfleet};

#[test]
fn a_json_demo_run_prints_only_json_on_stderr() {
    let accounts = account_files(&[("jane", 3_300_001), ("joe", 3_300_002)]);
    let data = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut fleet = Qqfleet::start(
        &[
            "--log-format",
            "json",
            "run",
            "--sim",
            "--accounts",
            accounts.path().to_str().unwrap(),
            "--data",
            data.path().to_str().unwrap(),
            "--listen",
            &listen,
        ],
        &[("RUST_LOG", "info")],
    );
    // The demo phone scans each QR 3 s after it appears.
    fleet.until(Duration::from_secs(60), "both accounts online", || {
        let r = http("GET", &listen, "/api/accounts", None).ok()?;
        (r.body.matches("\"online\"").count() == 2).then_some(())
    });
    // The demo's chatter reaches each bot every 5-8 s; each message and each answer is an
    // info line with the account, the kind and the text.
    let stderr_path = fleet.dir.path().join("stderr.log");
    fleet.until(Duration::from_secs(30), "an answer in the info log", || {
        let t = std::fs::read_to_string(&stderr_path).ok()?;
        t.contains("\"message\":\"message sent\"").then_some(())
    });
    let status = fleet.stop().expect("qqfleet exits on SIGTERM");
    assert!(status.success(), "{status}");

    let stderr = std::fs::read_to_string(fleet.dir.path().join("stderr.log")).unwrap();
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("a non-JSON stderr line ({e}): {l}"))
        })
        .collect();
    assert!(lines.len() > 10, "{stderr}");
    let said = |what: &str| {
        lines
            .iter()
            .filter(|v| v["fields"]["message"] == what)
            .cloned()
            .collect::<Vec<_>>()
    };
    let (received, sent) = (said("message received"), said("message sent"));
    assert!(!received.is_empty() && !sent.is_empty(), "{stderr}");
    for v in received.iter().chain(&sent) {
        assert_eq!(v["level"], "INFO", "{v}");
        let f = &v["fields"];
        assert!(f["account"] == "jane" || f["account"] == "joe", "{v}");
        assert!(f["kind"] == "buddy" || f["kind"] == "group", "{v}");
        assert!(!f["text"].as_str().unwrap_or("").is_empty(), "{v}");
    }
    // The echo bot answers with the text it got.
    let texts = |vs: &[serde_json::Value]| {
        vs.iter()
            .map(|v| v["fields"]["text"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let got = texts(&received);
    assert!(texts(&sent).iter().all(|t| got.contains(t)), "{stderr}");
    for id in ["jane", "joe"] {
        let qr = lines
            .iter()
            .find(|v| {
                v["fields"]["message"] == "QR code waiting for a scan"
                    && v["fields"]["account"] == id
            })
            .unwrap_or_else(|| panic!("no QR event for {id}:\n{stderr}"));
        assert_eq!(qr["level"], "INFO");
        assert_eq!(qr["fields"]["png"], format!("GET /api/accounts/{id}/qr"));
    }
}
