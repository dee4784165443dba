//! The CI version of the chaos soak (`make soak` is the long one): the real binary, the
//! simulator in its own process, 100 accounts (`QQFLEET_SOAK_ACCOUNTS`) for 60 s
//! (`SOAK_SECS`) of poll faults, kicks, expiries, a 20 s outage of every endpoint and 20
//! messages a second; then every check of issue 11. The report goes to
//! `target/soak-ci/report.json`. What the soak does: `tests/soak/mod.rs`.

mod soak;

use std::path::PathBuf;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_soak_short() {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/soak-ci");
    let cfg = soak::SoakConfig::new(
        PathBuf::from(env!("CARGO_BIN_EXE_qqfleet")),
        env("QQFLEET_SOAK_ACCOUNTS", 100) as usize,
        env("SOAK_SECS", 60),
        out,
    );
    let report = soak::run(cfg).await;
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    assert_eq!(report["failures"], serde_json::json!([]), "{report}");
    // The chaos really happened: faults of every kind, kicks, expiries, an outage.
    assert!(report["injected"].as_u64().unwrap() > 500, "{report}");
    assert!(report["faults"].as_object().unwrap().len() >= 4, "{report}");
    // Polls that hang past the fleet's poll timeout (--poll-timeout-secs 30 against a 20 s
    // hold): their accounts still end online.
    assert!(
        report["faults"]["timeout"].as_u64().unwrap_or(0) >= 1,
        "{report}"
    );
    let accounts = report["config"]["accounts"].as_u64().unwrap();
    assert!(report["qr_scans"].as_u64().unwrap() >= accounts, "{report}");
    assert!(report["outage_requests"].is_u64(), "{report}");
    // The outage opened the breaker (its warn line is in the fleet's log).
    assert!(report["breaker_opened"].as_u64().unwrap() >= 1, "{report}");
    assert!(report["handled_once"].as_u64().unwrap() > 0, "{report}");
}
