//! Helpers shared by the fleet's end-to-end tests (`tests/fleet_e2e.rs`) and the scale
//! benchmark (`examples/fleet_scale.rs`, which includes this file by path): HTTP calls to the
//! admin and control APIs, account files written the way editors write them, and stopping a
//! child `qqfleet` process.

#![allow(dead_code)]

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::Value;

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
