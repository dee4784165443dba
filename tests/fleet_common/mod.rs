//! Helpers shared by the fleet's end-to-end tests (`tests/fleet_e2e.rs`) and the scale
//! benchmark (`examples/fleet_scale.rs`, which includes this file by path): HTTP calls to the
//! admin and control APIs, account files written the way editors write them, and stopping a
//! child `qqfleet` process; starting a `qqfleet run` child against a simulator
//! ([`FleetRun`]), polling waits, account look-ups and the phone that scans QR codes.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The admin token every test fleet is started with (`--admin-token-file`, see
/// [`token_file`]); [`http`] sends it on every request.
pub const ADMIN_TOKEN: &str = "qqfleet-test-admin-token-0123456789";

/// Writes [`ADMIN_TOKEN`] into `dir/admin-token` and returns the path, for
/// `qqfleet run --admin-token-file`.
pub fn token_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("admin-token");
    std::fs::write(&path, format!("{ADMIN_TOKEN}\n")).unwrap();
    path
}

/// A client that carries the test fleets' admin token.
pub fn http() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {ADMIN_TOKEN}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .default_headers(headers)
        .build()
        .unwrap()
}

pub async fn get(url: &str) -> Value {
    let r = http().get(url).send().await.unwrap();
    r.json().await.unwrap()
}

pub async fn post(url: &str, body: Value) -> reqwest::Response {
    http().post(url).json(&body).send().await.unwrap()
}

pub fn write_account(dir: &Path, id: &str, body: &str) {
    let acc = dir.join("accounts");
    std::fs::create_dir_all(&acc).unwrap();
    // Write then rename, as editors do: the watcher never sees half a file.
    let tmp = dir.join(format!(".{id}.tmp"));
    std::fs::write(&tmp, body).unwrap();
    std::fs::rename(&tmp, acc.join(format!("{id}.toml"))).unwrap();
}

pub fn sigterm(child: &Child) {
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
}

pub fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// The simulator served in the test process on 127.0.0.1.
pub struct Sim {
    pub base: String,
    pub _handle: qqfleet::sim::SimHandle,
}

/// Serves the simulator with `cfg` as given on a free port.
pub async fn serve_sim(cfg: qqfleet::sim::SimConfig) -> Sim {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = qqfleet::sim::serve(cfg, listener).await.unwrap();
    Sim {
        base: handle.base_url(),
        _handle: handle,
    }
}

/// The simulator with 1 s polls and no anti-spam rule.
pub async fn sim() -> Sim {
    serve_sim(qqfleet::sim::SimConfig {
        hold: Duration::from_secs(1),
        send_min_interval: Duration::ZERO,
        target_burst_per_min: 0,
        ..qqfleet::sim::SimConfig::default()
    })
    .await
}

/// A `qqfleet run` child process and the admin API base it printed; killed when dropped so
/// a failing test never leaves a fleet behind.
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

/// How to start `qqfleet run --sim-url` for a test: the binary is passed in because only
/// integration tests see `CARGO_BIN_EXE_qqfleet`. Defaults: data in `dir/data`, stderr in
/// `dir/fleet-<nanos>.stderr`, `RUST_LOG=info`, no extra arguments or environment.
pub struct FleetRun<'a> {
    bin: &'a str,
    dir: &'a Path,
    sim_base: &'a str,
    data: PathBuf,
    stderr: PathBuf,
    rust_log: &'a str,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl<'a> FleetRun<'a> {
    /// `dir` holds `accounts/` and the admin token file.
    pub fn new(bin: &'a str, dir: &'a Path, sim_base: &'a str) -> Self {
        FleetRun {
            bin,
            dir,
            sim_base,
            data: dir.join("data"),
            stderr: dir.join(format!("fleet-{}.stderr", rand_suffix())),
            rust_log: "info",
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    pub fn data(mut self, data: impl Into<PathBuf>) -> Self {
        self.data = data.into();
        self
    }

    pub fn stderr(mut self, stderr: impl Into<PathBuf>) -> Self {
        self.stderr = stderr.into();
        self
    }

    pub fn rust_log(mut self, rust_log: &'a str) -> Self {
        self.rust_log = rust_log;
        self
    }

    /// Arguments after the standard ones.
    pub fn args<S: AsRef<str>>(mut self, args: &[S]) -> Self {
        self.args
            .extend(args.iter().map(|a| a.as_ref().to_string()));
        self
    }

    /// Environment set after `RUST_LOG` (so it may override it).
    pub fn env(mut self, env: &[(&str, &str)]) -> Self {
        self.env
            .extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self
    }

    /// Spawns the fleet and waits (20 s) for its `admin API: <url>/api/accounts` line.
    pub fn start(self) -> Fleet {
        let stderr = self.stderr;
        let mut cmd = Command::new(self.bin);
        cmd.args(["run", "--accounts"])
            .arg(self.dir.join("accounts"))
            .arg("--data")
            .arg(&self.data)
            .args(["--listen", "127.0.0.1:0", "--sim-url", self.sim_base])
            .arg("--admin-token-file")
            .arg(token_file(self.dir))
            .args(&self.args)
            .env("RUST_LOG", self.rust_log)
            .envs(self.env)
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
}

/// Nanoseconds since the epoch: unique enough for file names within one test run.
pub fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// The last `n` lines of a fleet's stderr, for failure messages.
pub fn tail_n(p: &Path, n: usize) -> String {
    let t = std::fs::read_to_string(p).unwrap_or_default();
    let lines: Vec<&str> = t.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The last 40 lines of a fleet's stderr.
pub fn tail(p: &Path) -> String {
    tail_n(p, 40)
}

/// Polls `f` every `every` until it returns `Some`, or panics with `what` after `within`.
pub async fn eventually_every<T, F, Fut>(
    what: &str,
    within: Duration,
    every: Duration,
    mut f: F,
) -> T
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
        tokio::time::sleep(every).await;
    }
}

/// Polls `f` every 100 ms until it returns `Some`, or panics with `what` after `within`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually_every(what, within, Duration::from_millis(100), f).await
}

/// One account as the admin API shows it; `None` while it is unknown or the API is down.
pub async fn account(f: &Fleet, id: &str) -> Option<Value> {
    let r = http()
        .get(format!("{}/api/accounts/{id}", f.api))
        .send()
        .await
        .ok()?;
    if r.status() != 200 {
        return None;
    }
    r.json().await.ok()
}

/// Waits for the account's `state`, or panics with the fleet's log tail.
pub async fn wait_state(f: &Fleet, id: &str, want: &str, within: Duration) {
    let end = Instant::now() + within;
    loop {
        let a = account(f, id).await;
        if a.as_ref().and_then(|a| a["state"].as_str()) == Some(want) {
            return;
        }
        if Instant::now() > end {
            panic!(
                "{id}: wanted {want}, have {a:?}\n--- fleet log tail ---\n{}",
                tail(&f.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The phone: reads the account's QR from the admin API (polled every 100 ms), decodes the
/// token from the image and scans it as `qq` through the simulator's control API at
/// `sim_base`.
pub async fn scan(f: &Fleet, sim_base: &str, id: &str, qq: u64) {
    scan_every(f, sim_base, id, qq, Duration::from_millis(100)).await
}

/// [`scan`] polling the QR code every `every`.
pub async fn scan_every(f: &Fleet, sim_base: &str, id: &str, qq: u64, every: Duration) {
    let png = eventually_every("a QR code", Duration::from_secs(20), every, || async {
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
        .expect("token in the QR URL")
        .to_string();
    let r = post(
        &format!("{sim_base}/sim/qr/scan"),
        json!({"token": token, "qq": qq, "confirm": true}),
    )
    .await;
    assert!(
        r.status().is_success(),
        "scan refused: {:?}",
        r.text().await
    );
}

/// [`scan`], then waits (20 s) for the account to be online.
pub async fn login(f: &Fleet, sim_base: &str, id: &str, qq: u64) {
    login_every(f, sim_base, id, qq, Duration::from_millis(100)).await
}

/// [`login`] polling the QR code every `every`.
pub async fn login_every(f: &Fleet, sim_base: &str, id: &str, qq: u64, every: Duration) {
    scan_every(f, sim_base, id, qq, every).await;
    wait_state(f, id, "online", Duration::from_secs(20)).await;
}
