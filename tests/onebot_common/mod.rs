//! Helpers of the OneBot end-to-end tests: the simulator in the test process, the real
//! `qqfleet run` binary as a child, the phone that scans the QR codes, and polling waits.

#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "../fleet_common/mod.rs"]
pub mod fleet_common;
#[allow(unused_imports)]
pub use fleet_common::{
    account, eventually, get, http, post, serve_sim, sigterm, sim, tail, token_file, wait_exit,
    write_account, Fleet, FleetRun, Sim,
};

pub const BIN: &str = env!("CARGO_BIN_EXE_qqfleet");

/// Starts `qqfleet run --sim-url` with `extra` arguments and waits for its admin API line.
pub fn start_fleet(dir: &Path, sim: &Sim, extra: &[&str]) -> Fleet {
    FleetRun::new(BIN, dir, &sim.base)
        .rust_log("info,qqfleet=debug")
        .args(extra)
        .start()
}

/// An account file with the test's fast settings.
pub fn account_toml(qq: u64, onebot: &str) -> String {
    format!(
        "qq = {qq}\nhandler = \"onebot\"\n\n[supervision]\nqr_check_secs = 1\n\n[limits]\nsend_per_minute = 300\nsend_burst = 5\ntarget_per_minute = 600\ntarget_burst = 50\n\n[onebot]\n{onebot}\n"
    )
}

pub async fn state_of(f: &Fleet, id: &str) -> Option<String> {
    account(f, id)
        .await
        .and_then(|v| v["state"].as_str().map(String::from))
}

pub async fn wait_state(f: &Fleet, id: &str, want: &str, within: Duration) {
    let end = Instant::now() + within;
    loop {
        let s = state_of(f, id).await;
        if s.as_deref() == Some(want) {
            return;
        }
        if Instant::now() > end {
            panic!(
                "{id}: wanted {want}, have {s:?}\n--- fleet log ---\n{}",
                tail(&f.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The phone: reads the QR from the admin API, scans it as `qq` in the simulator and waits
/// for the account to be online.
pub async fn login(f: &Fleet, sim: &Sim, id: &str, qq: u64) {
    fleet_common::login(f, &sim.base, id, qq).await
}

pub async fn inject(sim: &Sim, body: Value) {
    let r = post(&format!("{}/sim/inject", sim.base), body).await;
    assert!(
        r.status().is_success(),
        "inject refused: {:?}",
        r.text().await
    );
}

pub async fn sent(sim: &Sim, qq: u64) -> Vec<Value> {
    get(&format!("{}/sim/sent?qq={qq}", sim.base))
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
}
