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
