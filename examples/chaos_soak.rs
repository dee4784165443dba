//! `make soak`: the chaos soak of issue 11 with 1,000 accounts (`SOAK_ACCOUNTS`) for
//! `SOAK_SECS` seconds (default 600), against the simulator in its own process; first (unless
//! `SOAK_COMPARE=0`) the requests sent during a 20 s outage with and without the outage
//! breaker (`SOAK_COMPARE_ONLY=1`: only that). `SOAK_MSGS_PER_SEC` (20), `SOAK_FAULT_EVERY_MS`
//! (250; 0: no faults) and `SOAK_OUTAGE_SECS` (20; 0: none) take the chaos apart. Writes `target/soak/report.json`; exits non-zero if a check failed.
//! What the soak does: `tests/soak/mod.rs`.

use std::path::PathBuf;

#[path = "../tests/soak/mod.rs"]
mod soak;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let bin = PathBuf::from(
        std::env::var("QQFLEET_SOAK_BIN").unwrap_or_else(|_| "target/release/qqfleet".into()),
    );
    let accounts = env("SOAK_ACCOUNTS", 1000) as usize;
    let out = PathBuf::from("target/soak");
    let mut compare = Vec::new();
    if env("SOAK_COMPARE", 1) == 1 {
        for breaker in [false, true] {
            let r = soak::outage_requests(
                bin.clone(),
                accounts,
                20,
                breaker,
                out.join(if breaker {
                    "outage-breaker"
                } else {
                    "outage-no-breaker"
                }),
            )
            .await;
            eprintln!("outage, breaker={breaker}: {r}");
            compare.push(r);
        }
    }
    if env("SOAK_COMPARE_ONLY", 0) == 1 {
        println!("{}", serde_json::to_string_pretty(&compare).unwrap());
        return;
    }
    let mut cfg = soak::SoakConfig::new(bin, accounts, env("SOAK_SECS", 600), out.clone());
    // To take the chaos apart when chasing a cost (say, memory with messages but no faults).
    cfg.msgs_per_sec = env("SOAK_MSGS_PER_SEC", cfg.msgs_per_sec as u64) as u32;
    cfg.fault_every_ms = env("SOAK_FAULT_EVERY_MS", cfg.fault_every_ms);
    cfg.outage_secs = env("SOAK_OUTAGE_SECS", cfg.outage_secs);
    let mut report = soak::run(cfg).await;
    report["outage_comparison"] = serde_json::json!(compare);
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(&report).unwrap(),
    )
    .unwrap();
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    if report["failures"] != serde_json::json!([]) {
        std::process::exit(1);
    }
}
