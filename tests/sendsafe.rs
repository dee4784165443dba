//! Sending safely across crashes (issue 11): pacing that survives a restart, `on_uncertain =
//! "confirm"` (the account's own echo decides an uncertain send), the crash matrix and
//! storage faults. The real `qqfleet run` binary against the real simulator on 127.0.0.1;
//! the fleet is a child process so it can be SIGKILLed.
//!
//! Every wait is a poll with a deadline; the simulator holds polls 1 s.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod fleet_common;
use fleet_common::{get, http, post, token_file, wait_exit, write_account};

const BIN: &str = env!("CARGO_BIN_EXE_qqfleet");

struct Sim {
    base: String,
    _handle: qqfleet::sim::SimHandle,
}

/// The simulator with 1 s polls and the given anti-spam rules.
async fn sim_with(cfg: qqfleet::sim::SimConfig) -> Sim {
    let cfg = qqfleet::sim::SimConfig {
        hold: Duration::from_secs(1),
        ..cfg
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = qqfleet::sim::serve(cfg, listener).await.unwrap();
    Sim {
        base: handle.base_url(),
        _handle: handle,
    }
}

/// No anti-spam rule: tests that are not about pacing.
fn quiet_sim() -> qqfleet::sim::SimConfig {
    qqfleet::sim::SimConfig {
        send_min_interval: Duration::ZERO,
        target_burst_per_min: 0,
        ..Default::default()
    }
}

struct Fleet {
    child: Child,
    api: String,
    stderr: PathBuf,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Starts `qqfleet run --sim-url` on `dir/<data>` and waits for its admin API line.
fn start_fleet(dir: &Path, data: &Path, sim: &Sim, env: &[(&str, &str)]) -> Fleet {
    let stderr = dir.join(format!("fleet-{}.stderr", rand_suffix()));
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--accounts"])
        .arg(dir.join("accounts"))
        .arg("--data")
        .arg(data)
        .args(["--listen", "127.0.0.1:0", "--sim-url", &sim.base])
        .arg("--admin-token-file")
        .arg(token_file(dir))
        .env("RUST_LOG", "info,qqfleet=debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
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

fn tail(p: &Path) -> String {
    let t = std::fs::read_to_string(p).unwrap_or_default();
    let lines: Vec<&str> = t.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

async fn account(f: &Fleet, id: &str) -> Option<Value> {
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

/// Polls `f` until it returns `Some`, or panics with `what` after `within`.
async fn eventually<T, F, Fut>(what: &str, within: Duration, mut f: F) -> T
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
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_state(f: &Fleet, id: &str, want: &str, within: Duration) {
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

/// The phone: reads the account's QR from the admin API and scans it as `qq`.
async fn scan(f: &Fleet, sim: &Sim, id: &str, qq: u64) {
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
        .expect("token in the QR URL")
        .to_string();
    let r = post(
        &format!("{}/sim/qr/scan", sim.base),
        json!({"token": token, "qq": qq, "confirm": true}),
    )
    .await;
    assert!(
        r.status().is_success(),
        "scan refused: {:?}",
        r.text().await
    );
}

async fn login(f: &Fleet, sim: &Sim, id: &str, qq: u64) {
    scan(f, sim, id, qq).await;
    wait_state(f, id, "online", Duration::from_secs(20)).await;
}

async fn sent(sim: &Sim, qq: u64) -> Vec<Value> {
    get(&format!("{}/sim/sent?qq={qq}", sim.base))
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn sent_texts(sim: &Sim, qq: u64) -> Vec<String> {
    sent(sim, qq)
        .await
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn contacts(sim: &Sim, qq: u64) -> Value {
    get(&format!("{}/sim/accounts/{qq}/contacts", sim.base)).await
}

async fn inject(sim: &Sim, body: Value) {
    let r = post(&format!("{}/sim/inject", sim.base), body).await;
    assert!(r.status().is_success(), "inject: {:?}", r.text().await);
}

async fn fault(sim: &Sim, body: Value) {
    let r = post(&format!("{}/sim/faults", sim.base), body).await;
    assert!(r.status().is_success(), "fault: {:?}", r.text().await);
}

async fn outbox(f: &Fleet, id: &str) -> Value {
    get(&format!("{}/api/accounts/{id}/outbox", f.api)).await
}

/// Each of `want` exactly once in `got`, nothing else.
fn assert_once(got: &[String], want: &[String], what: &str) {
    let mut g = got.to_vec();
    g.sort();
    let mut w = want.to_vec();
    w.sort();
    assert_eq!(g, w, "{what}: each exactly once");
}

/// The failure: 30 messages from 10 friends to one echo account, SIGKILL after the
/// third reply, a restart on the same data. Before pacing was persisted the restarted
/// Sender resent the fourth reply within the simulator's one-send-a-second rule, got 1202,
/// and (with `assume_delivered`) lost it. Every reply must arrive exactly once, and no two
/// sends of the account may come closer than the simulator's minimum interval (no 1202).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pacing_survives_a_sigkill_and_no_reply_is_lost() {
    let sim = sim_with(qqfleet::sim::SimConfig {
        send_min_interval: Duration::from_millis(1000),
        target_burst_per_min: 0,
        default_friends: 10,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // 50 a minute (1.2 s apart), above the simulator's 1 s; the old policy, so only the
    // pacing can save the reply.
    write_account(
        dir.path(),
        "a",
        "qq = 21001\non_uncertain = \"assume_delivered\"\n[supervision]\nqr_check_secs = 1\n\
         [limits]\nsend_per_minute = 50\nsend_burst = 1\ntarget_per_minute = 600\ntarget_burst = 50\n",
    );
    let mut f = start_fleet(dir.path(), &data, &sim, &[]);
    login(&f, &sim, "a", 21001).await;
    let c = contacts(&sim, 21001).await;
    let friends: Vec<u64> = c["friends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["qq"].as_u64().unwrap())
        .collect();
    assert_eq!(friends.len(), 10, "{c}");
    let want: Vec<String> = (0..30).map(|i| format!("q{i}")).collect();
    for (i, text) in want.iter().enumerate() {
        inject(
            &sim,
            json!({"qq": 21001, "kind": "buddy", "from": friends[i % 10], "text": text}),
        )
        .await;
    }
    eventually("the third reply", Duration::from_secs(30), || async {
        (sent(&sim, 21001).await.len() >= 3).then_some(())
    })
    .await;
    f.child.kill().unwrap(); // SIGKILL
    f.child.wait().unwrap();
    drop(f);
    let f = start_fleet(dir.path(), &data, &sim, &[]);
    wait_state(&f, "a", "online", Duration::from_secs(20)).await;
    // The outbox drained and (at least) all but one delivered: then look at what arrived.
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let ob = outbox(&f, "a").await;
        let idle = ob["pending"].as_array().is_some_and(|p| p.is_empty());
        let n = sent(&sim, 21001).await.len();
        if idle && n >= 29 {
            break;
        }
        assert!(
            Instant::now() < end,
            "the outbox did not drain: {n} sent, outbox {ob}\n{}",
            tail(&f.stderr)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = sent_texts(&sim, 21001).await;
    assert_once(&got, &want, "replies across the SIGKILL");
    // No send refused for speed: the gaps the simulator saw are all ≥ 1 s.
    let acc = get(&format!("{}/sim/accounts/21001", sim.base)).await;
    let log = std::fs::read_to_string(&f.stderr).unwrap_or_default();
    assert!(
        !log.contains("\"uncertain\"") && !log.contains("result=uncertain"),
        "a send drew 1202 after the restart: {acc}\n{}",
        tail(&f.stderr)
    );
}
