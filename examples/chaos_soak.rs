//! `make soak`: the chaos soak of issue 11 with 1,000 accounts (`SOAK_ACCOUNTS`) for
//! `SOAK_SECS` seconds (default 600), against the simulator in its own process; first (unless
//! `SOAK_COMPARE=0`) the requests sent during a 20 s outage with and without the outage
//! breaker (`SOAK_COMPARE_ONLY=1`: only that). Writes `target/soak/report.json`; exits non-zero if a check failed.
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
    let cfg = soak::SoakConfig::new(bin, accounts, env("SOAK_SECS", 600), out.clone());
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
