//! Shared by the desk's tests: a simulator in the test process, a `qqfleet run` child
//! process against it (with the test admin token), and a headless Chromium driven over
//! WebDriver (plain HTTP JSON to `chromedriver`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

#[path = "../fleet_common/mod.rs"]
pub mod fleet_common;
#[allow(unused_imports)] // each test binary uses some of them
pub use fleet_common::{
    account, eventually, http, serve_sim, sim, token_file, write_account, Fleet, FleetRun, Sim,
    ADMIN_TOKEN,
};

pub const BIN: &str = env!("CARGO_BIN_EXE_qqfleet");

pub fn account_toml(qq: u64) -> String {
    format!("qq = {qq}\nenabled = true\n[supervision]\nqr_check_secs = 1\n")
}

/// `qqfleet run --sim-url` with `extra` arguments; waits for its admin API line.
pub fn start_fleet(dir: &Path, sim: &Sim, extra: &[&str]) -> Fleet {
    start_fleet_env(dir, sim, extra, &[])
}

/// [`start_fleet`] with extra environment variables (debug hooks, `TZ`).
pub fn start_fleet_env(dir: &Path, sim: &Sim, extra: &[&str], env: &[(&str, &str)]) -> Fleet {
    FleetRun::new(BIN, dir, &sim.base)
        .stderr(dir.join("fleet.stderr"))
        .args(extra)
        .env(env)
        .start()
}

pub async fn wait_state(f: &Fleet, id: &str, state: &str) -> Value {
    eventually(
        &format!("{id} {state}"),
        Duration::from_secs(20),
        || async { account(f, id).await.filter(|a| a["state"] == state) },
    )
    .await
}

/// Scans the account's current QR code through the simulator's control API, as `qq`.
pub async fn scan(sim: &Sim, qr_url: &str, qq: u64) {
    let token = qr_url
        .split("k=")
        .nth(1)
        .and_then(|t| t.split('&').next())
        .expect("k= in the QR URL");
    let r = reqwest::Client::new()
        .post(format!("{}/sim/qr/scan", sim.base))
        .json(&json!({"token": token, "qq": qq, "confirm": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
}

/// A headless Chromium behind its chromedriver.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends Chromium (DELETE session) before the driver; bounded by the client's timeout.
        let url = format!("{}/session/{}", self.base, self.session);
        let http = self.http.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async { http.delete(url).send().await.ok() });
        })
        .join();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[path = "../ports/mod.rs"]
mod ports;
use ports::free_port;

impl Browser {
    /// Starts chromedriver and one headless Chromium session at `width`×`height`.
    pub async fn start(width: u32, height: u32) -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver) is installed");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let profile = tempfile::tempdir().unwrap();
        let mut b = Browser {
            driver,
            base,
            session: String::new(),
            http,
            _profile: profile,
        };
        let status = format!("{}/status", b.base);
        let http = b.http.clone();
        eventually("chromedriver up", Duration::from_secs(15), || {
            let (http, status) = (http.clone(), status.clone());
            async move {
                let v: Value = http.get(status).send().await.ok()?.json().await.ok()?;
                (v["value"]["ready"] == true).then_some(())
            }
        })
        .await;
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--no-first-run".into(),
            "--disable-dev-shm-usage".into(),
            "--force-device-scale-factor=1".into(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", b._profile.path().display()),
        ];
        let mut opts = json!({ "args": args });
        if Path::new("/usr/bin/chromium").exists() {
            opts["binary"] = json!("/usr/bin/chromium");
        }
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": opts}}});
        let v = b.raw("POST", "/session", Some(caps)).await;
        b.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        b
    }

    async fn raw(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let rb = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body.unwrap_or(json!({}))),
        };
        let v: Value = rb.send().await.unwrap().json().await.unwrap();
        v["value"].clone()
    }

    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.raw(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    pub async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url }))).await;
    }

    /// Runs `script` (a function body) in the page and returns its value.
    pub async fn eval(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// The page as a PNG.
    pub async fn screenshot(&self) -> Vec<u8> {
        let v = self.cmd("GET", "/screenshot", None).await;
        decode_b64(v.as_str().expect("screenshot"))
    }

    /// One element (first match of `css`) as a PNG.
    pub async fn element_screenshot(&self, css: &str) -> Option<Vec<u8>> {
        let v = self
            .cmd(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        let id = v
            .as_object()?
            .iter()
            .find(|(k, _)| k.starts_with("element-"))?
            .1
            .as_str()?
            .to_string();
        let shot = self
            .cmd("GET", &format!("/element/{id}/screenshot"), None)
            .await;
        shot.as_str().map(decode_b64)
    }

    pub async fn set_size(&self, width: u32, height: u32) {
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }
}

fn decode_b64(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64 screenshot")
}

/// The text a QR image holds, if rqrr finds exactly one code in it.
pub fn decode_qr(png: &[u8]) -> Option<String> {
    let img = image::load_from_memory(png).ok()?.to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let grids = prepared.detect_grids();
    let (_, content) = grids.first()?.decode().ok()?;
    Some(content)
}

/// Where the tests keep their artifacts (screenshots): `target/desk-artifacts/`.
pub fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/desk-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
