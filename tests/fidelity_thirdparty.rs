//! Fidelity: a real, unmodified third-party WebQQ client against the real `qqfleet sim` binary.
//!
//! The simulator is judged by one standard: clients written by other people in the WebQQ era,
//! pointed at it only by rewriting `scheme://HOST/` to `http://127.0.0.1:PORT/HOST/`, log in by
//! QR code, receive messages and reply as they did against w.qq.com. This test runs
//! pandolia/qqbot 2.3.11 (PyPI `qqbot`, 2018) from the venv that `make fidelity-deps` builds in
//! `target/fidelity-venv`, through `tests/fidelity/run_qqbot.py` (the URL rewrite at the
//! `requests` transport and one documented runtime shim, nothing else; see docs/FIDELITY.md),
//! and plays the phone and the client's friends through the simulator's control API.
//!
//! Everything is on 127.0.0.1; every wait is a poll with a deadline; both child processes are
//! killed on every path (Drop guards). No network: a missing venv fails with a message saying
//! to run `make fidelity-deps`.

use std::fs::File;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_qqfleet");
/// The QQ number the "phone" scans the client's QR code as.
const QQ: u64 = 2_001_234_567;
/// The whole scenario; it normally takes 20-30 s.
const SCENARIO_LIMIT: Duration = Duration::from_secs(150);

/// The venv of `make fidelity-deps` (override: `QQFLEET_FIDELITY_VENV`).
fn venv_dir() -> PathBuf {
    match std::env::var_os("QQFLEET_FIDELITY_VENV") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fidelity-venv"),
    }
}

fn venv_python() -> PathBuf {
    let venv = venv_dir();
    let python = venv.join("bin/python");
    assert!(
        python.exists() && venv.join(".installed").exists(),
        "the fidelity venv {} is missing or incomplete: run `make fidelity-deps` first (it \
         installs the pinned third-party WebQQ clients of tests/fidelity/requirements.txt; \
         CI runs it from .ci/run)",
        venv.display()
    );
    python
}

/// A child process that is killed and reaped when dropped.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last `n` lines of a log file, for failure messages.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Starts `qqfleet sim` on 127.0.0.1:0 and reads its `listening on http://...` line.
fn start_sim(dir: &Path) -> (Proc, String) {
    let log = dir.join("sim.stderr");
    let child = Command::new(BIN)
        .args([
            "sim",
            "--listen",
            "127.0.0.1:0",
            // Short hold: the client polls again at once, so idle answers keep it busy.
            "--hold",
            "2",
            // The test injects a message as soon as the previous reply is seen; the client's
            // replies may then come less than 1 s apart. The anti-spam interval is not what is
            // checked here.
            "--send-min-interval-ms",
            "0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .expect("start qqfleet sim");
    let mut sim = Proc { child, log };
    let stdout = sim.child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut first = String::new();
        let _ = reader.read_line(&mut first);
        let _ = tx.send(first);
        // Keep draining so the simulator never blocks on a full pipe.
        let mut sink = String::new();
        while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
            sink.clear();
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
    let base = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_default()
        .to_string();
    assert!(
        base.starts_with("http://127.0.0.1:"),
        "simulator did not print its listening line (got {first:?}); stderr:\n{}",
        tail(&sim.log, 40)
    );
    (sim, base)
}

/// Starts pandolia/qqbot through the harness; stdout and stderr go to one log file.
fn start_qqbot(dir: &Path, base: &str) -> Proc {
    let python = venv_python();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fidelity/run_qqbot.py");
    let bench = dir.join("qqbot-bench");
    std::fs::create_dir_all(&bench).unwrap();
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let log = dir.join("qqbot.log");
    let out = File::create(&log).unwrap();
    let err = out.try_clone().unwrap();
    let child = Command::new(&python)
        .arg(&script)
        .arg(base)
        .arg(&bench)
        // A clean environment: no proxy variables, no user config; PATH only the venv, so
        // qqbot finds no image viewer to pop its QR code up in (it then just logs a warning).
        .env_clear()
        .env("PATH", python.parent().unwrap())
        .env("HOME", &home)
        .env("LANG", "C.UTF-8")
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONIOENCODING", "utf-8")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("start the qqbot harness");
    Proc { child, log }
}

struct Ctl {
    base: String,
    http: reqwest::Client,
}

impl Ctl {
    async fn get(&self, path: &str) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| format!("GET {path}: {e}"))?;
        if !status.is_success() {
            return Err(format!("GET {path}: {status} {body}"));
        }
        serde_json::from_str(&body).map_err(|e| format!("GET {path}: {e}: {body}"))
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("POST {path}: {e}"))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| format!("POST {path}: {e}"))?;
        if !status.is_success() {
            return Err(format!("POST {path} {body}: {status} {text}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("POST {path}: {e}: {text}"))
    }

    async fn account(&self) -> Result<Value, String> {
        self.get(&format!("/sim/accounts/{QQ}")).await
    }

    async fn sent(&self) -> Result<Vec<Value>, String> {
        let v = self.get(&format!("/sim/sent?qq={QQ}")).await?;
        v.as_array()
            .cloned()
            .ok_or_else(|| format!("/sim/sent is not an array: {v}"))
    }
}

/// Polls `probe` every 100 ms until it yields a value, an error, or `limit` passes.
async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, String>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await? {
            return Ok(v);
        }
        if start.elapsed() > limit {
            return Err(format!("timed out after {limit:?} waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn count(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

/// Injects `text` as `kind` (with the extra target fields) and waits until the client's reply
/// `pong <text>` to `to` shows up in `/sim/sent`.
async fn ping(ctl: &Ctl, kind: &str, extra: Value, to: &Value, text: &str) -> Result<(), String> {
    let before = ctl.sent().await?.len();
    let mut body = json!({"qq": QQ, "kind": kind, "text": text});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    ctl.post("/sim/inject", body).await?;
    let want = format!("pong {text}");
    let reply = wait_for(
        &format!("the client's {kind} reply {want:?}"),
        Duration::from_secs(25),
        || {
            let want = want.clone();
            async move {
                let sent = ctl.sent().await?;
                Ok(sent
                    .into_iter()
                    .skip(before)
                    .find(|m| m["text"] == want.as_str()))
            }
        },
    )
    .await?;
    if reply["kind"] != kind || &reply["to"] != to {
        return Err(format!(
            "reply {reply} went to the wrong place: want kind {kind}, to {to}"
        ));
    }
    Ok(())
}

async fn scenario(ctl: &Ctl, client: &mut Proc) -> Result<(), String> {
    // 1. Login by QR: the client fetches a QR code; the phone scans it as QQ.
    let qrsig = wait_for(
        "the client to fetch a QR code",
        Duration::from_secs(30),
        || {
            let client_status = client.exited();
            async move {
                if let Some(st) = client_status {
                    return Err(format!("the client exited before showing a QR code: {st}"));
                }
                let qrs = ctl.get("/sim/qr").await?;
                Ok(qrs.as_array().and_then(|a| {
                    a.iter()
                        .find(|q| q["state"] == "waiting")
                        .and_then(|q| q["qrsig"].as_str().map(str::to_string))
                }))
            }
        },
    )
    .await?;
    ctl.post(
        "/sim/qr/scan",
        json!({"qrsig": qrsig, "qq": QQ, "confirm": true}),
    )
    .await?;
    // Logged in: a full QR login, the session activated and the client polling.
    let account = wait_for(
        "the client to log in and poll",
        Duration::from_secs(30),
        || async move {
            let a = ctl.account().await?;
            let ok = a["online"] == true
                && count(&a, "/logins") >= 1
                && count(&a, "/calls/get_online_buddies2") >= 1
                && count(&a, "/calls/poll2") >= 1;
            Ok(ok.then_some(a))
        },
    )
    .await?;
    for ep in ["ptqrlogin", "check_sig", "getvfwebqq", "login2"] {
        if count(&account, &format!("/calls/{ep}")) == 0 {
            return Err(format!(
                "the client logged in without calling {ep}: {account}"
            ));
        }
    }

    // 2. Messages of each kind; the client answers each through the simulator.
    let contacts = ctl.get(&format!("/sim/accounts/{QQ}/contacts")).await?;
    let friend = contacts["friends"][0]["qq"].clone();
    let group = contacts["groups"][0]["number"].clone();
    let did = contacts["discus"][0]["did"].clone();
    if friend.is_null() || group.is_null() || did.is_null() {
        return Err(format!(
            "the account lacks a friend, group or discussion: {contacts}"
        ));
    }
    ping(ctl, "buddy", json!({}), &friend, "ping buddy 你好").await?;
    ping(
        ctl,
        "group",
        json!({"group": group}),
        &group,
        "ping group 大家好",
    )
    .await?;
    ping(ctl, "discu", json!({"did": did}), &did, "ping discu 讨论").await?;
    // The client fetched its contacts to name the senders.
    let a = ctl.account().await?;
    for ep in [
        "get_user_friends2",
        "get_group_name_list_mask2",
        "get_group_info_ext2",
        "get_discus_list",
    ] {
        if count(&a, &format!("/calls/{ep}")) == 0 {
            return Err(format!("the client never called {ep}: {a}"));
        }
    }

    // 3. Faults. Three poll2 121s in a row: the client gives up polling, re-checks its login
    //    with get_online_buddies2, and goes on polling.
    let checks_before = count(&a, "/calls/get_online_buddies2");
    ctl.post(
        "/sim/faults",
        json!({"qq": QQ, "endpoint": "poll2", "retcode": 121, "count": 3}),
    )
    .await?;
    wait_for(
        "the client to see three poll2 121s and re-check its login",
        Duration::from_secs(20),
        || async move {
            let a = ctl.account().await?;
            Ok((count(&a, "/retcodes/poll2/121") >= 3
                && count(&a, "/calls/get_online_buddies2") > checks_before)
                .then_some(()))
        },
    )
    .await?;
    ping(ctl, "buddy", json!({}), &friend, "ping after 121").await?;
    // A 502 gateway answer and a 100012 on poll2: the client just polls again.
    ctl.post(
        "/sim/faults",
        json!({"qq": QQ, "endpoint": "poll2", "http_status": 502}),
    )
    .await?;
    ctl.post(
        "/sim/faults",
        json!({"qq": QQ, "endpoint": "poll2", "retcode": 100012}),
    )
    .await?;
    wait_for(
        "the poll2 faults to be served",
        Duration::from_secs(20),
        || async move {
            let pending = ctl.get("/sim/faults").await?;
            Ok(pending
                .as_array()
                .is_some_and(|a| a.is_empty())
                .then_some(()))
        },
    )
    .await?;
    ping(
        ctl,
        "group",
        json!({"group": group}),
        &group,
        "ping after 502",
    )
    .await?;
    // No send was ever refused.
    let a = ctl.account().await?;
    for ep in ["send_buddy_msg2", "send_qun_msg2", "send_discu_msg2"] {
        if let Some(codes) = a
            .pointer(&format!("/retcodes/{ep}"))
            .and_then(Value::as_object)
        {
            if codes.keys().any(|c| c != "0") {
                return Err(format!("a {ep} was refused: {a}"));
            }
        }
    }

    // 4. Kick (another login of the account): the client stops, as it did for real, with
    //    its "login expired" exit code 203.
    ctl.post("/sim/kick", json!({"qq": QQ})).await?;
    let status = wait_for(
        "the client to stop after the kick",
        Duration::from_secs(30),
        || {
            let st = client.exited();
            async move { Ok(st) }
        },
    )
    .await?;
    if status.code() != Some(203) {
        return Err(format!(
            "the client stopped with {status}, not qqbot's login-expired code 203"
        ));
    }
    Ok(())
}

#[tokio::test]
async fn pandolia_qqbot_2_3_11_logs_in_replies_and_rides_faults() {
    // Fail (not skip) without the venv, before starting anything.
    venv_python();
    let dir = tempfile::tempdir().unwrap();
    let (sim, base) = start_sim(dir.path());
    let mut client = start_qqbot(dir.path(), &base);
    // reqwest is built with `rustls-no-provider` (feature `tls`): it needs a process-wide
    // crypto provider even for plain http.
    #[cfg(feature = "tls")]
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ctl = Ctl {
        base,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .no_proxy()
            .build()
            .unwrap(),
    };
    let started = Instant::now();
    let result = tokio::time::timeout(SCENARIO_LIMIT, scenario(&ctl, &mut client))
        .await
        .unwrap_or_else(|_| Err(format!("the scenario took over {SCENARIO_LIMIT:?}")));
    if let Err(e) = result {
        let client_log = tail(&client.log, 80);
        let sim_log = tail(&sim.log, 40);
        drop(client);
        drop(sim);
        panic!(
            "{e}\n--- pandolia/qqbot 2.3.11 (last lines) ---\n{client_log}\n--- qqfleet sim \
             stderr (last lines) ---\n{sim_log}"
        );
    }
    // Shown with `--nocapture`.
    eprintln!(
        "pandolia/qqbot 2.3.11 scenario passed in {:?}; its log:\n{}",
        started.elapsed(),
        tail(&client.log, 300)
    );
}
