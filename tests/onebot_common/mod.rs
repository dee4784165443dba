//! Helpers of the OneBot end-to-end tests: the simulator in the test process, the real
//! `qqfleet run` binary as a child, the phone that scans the QR codes, and polling waits.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[path = "../fleet_common/mod.rs"]
pub mod fleet_common;
#[allow(unused_imports)]
pub use fleet_common::{get, http, post, sigterm, token_file, wait_exit, write_account};

pub const BIN: &str = env!("CARGO_BIN_EXE_qqfleet");

pub struct Sim {
    pub base: String,
    pub _handle: qqfleet::sim::SimHandle,
}

pub async fn sim() -> Sim {
    let cfg = qqfleet::sim::SimConfig {
        hold: Duration::from_secs(1),
        send_min_interval: Duration::ZERO,
        target_burst_per_min: 0,
        ..qqfleet::sim::SimConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = qqfleet::sim::serve(cfg, listener).await.unwrap();
    Sim {
        base: handle.base_url(),
        _handle: handle,
    }
}

pub struct Fleet {
    pub child: Child,
    pub api: String,
    pub stderr: PathBuf,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `qqfleet run --sim-url` with `extra` arguments and waits for its admin API line.
pub fn start_fleet(dir: &Path, sim: &Sim, extra: &[&str]) -> Fleet {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let stderr = dir.join(format!("fleet-{n}.stderr"));
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--accounts"])
        .arg(dir.join("accounts"))
        .arg("--data")
        .arg(dir.join("data"))
        .args(["--listen", "127.0.0.1:0", "--sim-url", &sim.base])
        .arg("--admin-token-file")
        .arg(token_file(dir))
        .args(extra)
        .env("RUST_LOG", "info,qqfleet=debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap());
    let mut child = cmd.spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("admin API: ") {
                let _ = tx.send(rest.trim_end_matches("/api/accounts").to_string());
            }
        }
    });
    let api = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(a) => a,
        Err(_) => panic!(
            "fleet did not start: {}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        ),
    };
    Fleet { child, api, stderr }
}

/// An account file with the test's fast settings.
pub fn account_toml(qq: u64, onebot: &str) -> String {
    format!(
        "qq = {qq}\nhandler = \"onebot\"\n\n[supervision]\nqr_check_secs = 1\n\n[limits]\nsend_per_minute = 300\nsend_burst = 5\ntarget_per_minute = 600\ntarget_burst = 50\n\n[onebot]\n{onebot}\n"
    )
}

/// Polls `f` until it returns `Some`, or panics with `what` after `within`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > end {
            panic!("timed out: {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn tail(p: &Path) -> String {
    let t = std::fs::read_to_string(p).unwrap_or_default();
    let lines: Vec<&str> = t.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

pub async fn state_of(f: &Fleet, id: &str) -> Option<String> {
    let r = http()
        .get(format!("{}/api/accounts/{id}", f.api))
        .send()
        .await
        .ok()?;
    if r.status() != 200 {
        return None;
    }
    let v: Value = r.json().await.ok()?;
    v["state"].as_str().map(String::from)
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

/// The phone: reads the QR from the admin API and scans it as `qq` in the simulator.
pub async fn login(f: &Fleet, sim: &Sim, id: &str, qq: u64) {
    let png = eventually("a QR code", Duration::from_secs(20), || async {
        let r = http()
            .get(format!("{}/api/accounts/{id}/qr", f.api))
            .send()
            .await
            .ok()?;
        if r.status() != 200 {
            return None;
        }
        Some(r.bytes().await.ok()?.to_vec())
    })
    .await;
    let url = qqfleet::fleet::login::decode_qr(&png).expect("the QR PNG decodes");
    let token = url
        .split("k=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .unwrap()
        .to_string();
    let r = post(
        &format!("{}/sim/qr/scan", sim.base),
        json!({"token": token, "qq": qq, "confirm": true}),
    )
    .await;
    assert!(r.status().is_success(), "scan refused");
    wait_state(f, id, "online", Duration::from_secs(20)).await;
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
