//! Fidelity: real, unmodified third-party WebQQ clients against the real `qqfleet sim` binary.
//!
//! The simulator is judged by one standard: clients written by other people in the WebQQ era,
//! pointed at it only by rewriting `scheme://HOST/` to `http://127.0.0.1:PORT/HOST/`, log in by
//! QR code, receive messages and reply as they did against w.qq.com. These tests run
//! pandolia/qqbot 2.3.11 (PyPI `qqbot`, 2018) and python-smartqq-client 0.4.10 (PyPI, 2017)
//! from the venv that `make fidelity-deps` builds in `target/fidelity-venv`, each through a
//! small script in `tests/fidelity/` (the URL rewrite at the `requests` transport plus one
//! named shim each, nothing else; see docs/FIDELITY.md), and play the phone and the clients'
//! friends through the simulator's control API.
//!
//! Everything is on 127.0.0.1; every wait is a poll with a deadline; the child processes are
//! killed on every path (Drop guards). No network: a missing venv fails with a message saying
//! to run `make fidelity-deps`.

use std::ffi::OsString;
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
/// The whole scenario of one client; it normally takes 8-17 s.
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

/// Starts `tests/fidelity/<script>` with the venv's python in `dir` (the client's working
/// folder); its stdout and stderr go to `dir/harness.log`.
fn start_client(dir: &Path, script: &str, args: &[OsString]) -> Proc {
    let python = venv_python();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fidelity")
        .join(script);
    std::fs::create_dir_all(dir).unwrap();
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let log = dir.join("harness.log");
    let out = File::create(&log).unwrap();
    let err = out.try_clone().unwrap();
    let child = Command::new(&python)
        .arg(&script)
        .args(args)
        // A clean environment: no proxy variables, no user config; PATH only the venv, so a
        // client finds no image viewer to pop its QR code up in (qqbot then logs a warning).
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
        .unwrap_or_else(|e| panic!("start {}: {e}", script.display()));
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
    ping_expect(ctl, kind, extra, to, text, &format!("pong {text}")).await
}

/// Injects `text` as `kind` (with the extra target fields) and waits until the reply `want`
/// to `to` shows up in `/sim/sent`.
async fn ping_expect(
    ctl: &Ctl,
    kind: &str,
    extra: Value,
    to: &Value,
    text: &str,
    want: &str,
) -> Result<(), String> {
    let before = ctl.sent().await?.len();
    let mut body = json!({"qq": QQ, "kind": kind, "text": text});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    ctl.post("/sim/inject", body).await?;
    let reply = wait_for(
        &format!("the client's {kind} reply {want:?}"),
        Duration::from_secs(25),
        || async move {
            let sent = ctl.sent().await?;
            Ok(sent.into_iter().skip(before).find(|m| m["text"] == want))
        },
    )
    .await;
    let reply = match reply {
        Ok(r) => r,
        Err(e) => {
            let sent = ctl.sent().await.unwrap_or_default();
            return Err(format!(
                "{e}; sent since: {:?}",
                &sent[before.min(sent.len())..]
            ));
        }
    };
    if reply["kind"] != kind || &reply["to"] != to {
        return Err(format!(
            "reply {reply} went to the wrong place: want kind {kind}, to {to}"
        ));
    }
    Ok(())
}

/// The client fetches a QR code; the phone scans and confirms it as `QQ`; waits until the
/// account is online, activated and polling. Returns the account's contacts.
async fn qr_login(ctl: &Ctl, client: &mut Proc) -> Result<Value, String> {
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
    let contacts = ctl.get(&format!("/sim/accounts/{QQ}/contacts")).await?;
    for p in ["/friends/0/qq", "/groups/0/number", "/discus/0/did"] {
        if contacts.pointer(p).map_or(true, Value::is_null) {
            return Err(format!("the account lacks {p}: {contacts}"));
        }
    }
    Ok(contacts)
}

/// Checks that the client called each of `endpoints` at least once.
async fn called(ctl: &Ctl, endpoints: &[&str]) -> Result<Value, String> {
    let a = ctl.account().await?;
    for ep in endpoints {
        if count(&a, &format!("/calls/{ep}")) == 0 {
            return Err(format!("the client never called {ep}: {a}"));
        }
    }
    Ok(a)
}

/// Checks that no send of the client was refused.
async fn no_refused_send(ctl: &Ctl) -> Result<(), String> {
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
    Ok(())
}

/// Queues `faults` (each on poll2 of `QQ`) and waits until the simulator has served them all.
async fn poll_faults(ctl: &Ctl, faults: &[Value]) -> Result<(), String> {
    for f in faults {
        let mut body = f.clone();
        body["qq"] = json!(QQ);
        body["endpoint"] = json!("poll2");
        ctl.post("/sim/faults", body).await?;
    }
    wait_for(
        &format!("the poll2 faults {faults:?} to be served"),
        Duration::from_secs(20),
        || async move {
            let pending = ctl.get("/sim/faults").await?;
            Ok(pending
                .as_array()
                .is_some_and(|a| a.is_empty())
                .then_some(()))
        },
    )
    .await
}

/// pandolia/qqbot in `dir/qqbot-bench`; with `resume`, `-q QQ` (its "auto login" from the
/// login it saved there).
fn start_qqbot(dir: &Path, base: &str, resume: bool) -> Proc {
    let bench = dir.join("qqbot-bench");
    std::fs::create_dir_all(&bench).unwrap();
    let mut args: Vec<OsString> = vec![base.into(), bench.into()];
    if resume {
        args.push(QQ.to_string().into());
    }
    start_client(dir, "run_qqbot.py", &args)
}

async fn qqbot_scenario(ctl: &Ctl, client: &mut Proc, dir: &Path) -> Result<(), String> {
    // 1. Login by QR.
    let contacts = qr_login(ctl, client).await?;
    let friend = contacts["friends"][0]["qq"].clone();
    let group = contacts["groups"][0]["number"].clone();
    let did = contacts["discus"][0]["did"].clone();

    // 2. A message of each kind; the client answers each through the simulator, after
    //    fetching the contacts it needs to name the sender.
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
    // A face item (§7): qqbot shows face 14 as " /微笑 " (its own face map, spaces included)
    // and its SendTo turns "/微笑" back into face 14.
    ping_expect(
        ctl,
        "buddy",
        json!({}),
        &friend,
        "ping face [face:14]",
        "pong ping face  [face:14] ",
    )
    .await?;
    let a = called(
        ctl,
        &[
            "get_user_friends2",
            "get_group_name_list_mask2",
            "get_group_info_ext2",
            "get_discus_list",
        ],
    )
    .await?;

    // 3. Faults. Three poll2 121s in a row: qqbot gives up the poll, re-checks its login with
    //    get_online_buddies2, and polls on.
    let checks_before = count(&a, "/calls/get_online_buddies2");
    poll_faults(ctl, &[json!({"retcode": 121, "count": 3})]).await?;
    let a = ctl.account().await?;
    if count(&a, "/retcodes/poll2/121") < 3 {
        return Err(format!("the three 121s were not counted: {a}"));
    }
    wait_for(
        "qqbot to re-check its login after the 121s",
        Duration::from_secs(20),
        || async move {
            let a = ctl.account().await?;
            Ok((count(&a, "/calls/get_online_buddies2") > checks_before).then_some(()))
        },
    )
    .await?;
    ping(ctl, "buddy", json!({}), &friend, "ping after 121").await?;
    // A 502 gateway answer (qqbot pings pinghot.qq.com, as the web page did) and a 100012:
    // qqbot just polls again.
    poll_faults(
        ctl,
        &[json!({"http_status": 502}), json!({"retcode": 100012})],
    )
    .await?;
    let stats = ctl.get("/sim/stats").await?;
    if count(&stats, "/requests/pingd") == 0 {
        return Err(format!("qqbot did not ping pinghot after the 502: {stats}"));
    }
    ping(
        ctl,
        "group",
        json!({"group": group}),
        &group,
        "ping after 502",
    )
    .await?;
    no_refused_send(ctl).await?;

    // 4. The process dies (SIGKILL) and is started again with `-q QQ`: qqbot restores the login
    //    it saved, checks it with get_online_buddies2 and polls on the same session: no QR
    //    code, no new login2, and it still replies.
    let a = ctl.account().await?;
    let (login2_before, polls_before) = (count(&a, "/calls/login2"), count(&a, "/calls/poll2"));
    let first_log = client.log.clone();
    let _ = client.child.kill();
    let _ = client.child.wait();
    // Keep the first run's log for failure reports.
    std::fs::rename(&first_log, dir.join("harness-first-run.log")).map_err(|e| e.to_string())?;
    *client = start_qqbot(dir, &ctl.base, true);
    wait_for(
        "the restarted qqbot to poll again",
        Duration::from_secs(30),
        || {
            let st = client.exited();
            async move {
                if let Some(st) = st {
                    return Err(format!("the restarted qqbot exited: {st}"));
                }
                let a = ctl.account().await?;
                Ok((count(&a, "/calls/poll2") > polls_before + 1).then_some(()))
            }
        },
    )
    .await?;
    ping(
        ctl,
        "discu",
        json!({"did": did}),
        &did,
        "ping after restart",
    )
    .await?;
    let a = ctl.account().await?;
    if count(&a, "/calls/login2") != login2_before || count(&a, "/logins") != 1 {
        return Err(format!(
            "the restarted qqbot logged in again instead of resuming: {a}"
        ));
    }
    let qrs = ctl.get("/sim/qr").await?;
    if qrs
        .as_array()
        .is_some_and(|a| a.iter().any(|q| q["state"] == "waiting"))
    {
        return Err(format!(
            "the restarted qqbot asked for a new QR code: {qrs}"
        ));
    }

    // 5. A send answered 1202 although it was delivered (§8.2, "maybe not sent"): qqbot
    //    repeats the request with the same msg_id, the simulator's send dedup drops the
    //    repeat, and the friend gets the reply exactly once.
    let dropped_before = count(&ctl.account().await?, "/duplicates_dropped");
    ctl.post(
        "/sim/faults",
        json!({"qq": QQ, "endpoint": "send_buddy_msg2", "retcode": 1202, "deliver": true}),
    )
    .await?;
    ping(ctl, "buddy", json!({}), &friend, "ping 1202").await?;
    wait_for(
        "qqbot to repeat the send answered 1202",
        Duration::from_secs(20),
        || async move {
            let a = ctl.account().await?;
            Ok((count(&a, "/duplicates_dropped") > dropped_before).then_some(()))
        },
    )
    .await?;
    let replies = ctl
        .sent()
        .await?
        .into_iter()
        .filter(|m| m["text"] == "pong ping 1202")
        .count();
    if replies != 1 {
        return Err(format!("the 1202 reply was delivered {replies} times"));
    }

    // 6. Kick (another login of the account): qqbot stops, as it did for real, with its
    //    "login expired" exit code 203.
    ctl.post("/sim/kick", json!({"qq": QQ})).await?;
    let status = wait_for(
        "qqbot to stop after the kick",
        Duration::from_secs(30),
        || {
            let st = client.exited();
            async move { Ok(st) }
        },
    )
    .await?;
    if status.code() != Some(203) {
        return Err(format!(
            "qqbot stopped with {status}, not its login-expired code 203"
        ));
    }
    Ok(())
}

async fn smartqq_scenario(ctl: &Ctl, client: &mut Proc) -> Result<(), String> {
    // 1. Login by QR (this client sends ptqrtoken, and a getvfwebqq query with
    //    `clientid=53999199psessionid=` run together, as it did for real).
    let contacts = qr_login(ctl, client).await?;
    let friend = contacts["friends"][0]["qq"].clone();
    let group = contacts["groups"][0]["number"].clone();

    // 2. Buddy and group messages (the library handles no discussions).
    ping(ctl, "buddy", json!({}), &friend, "ping buddy 你好").await?;
    ping(
        ctl,
        "group",
        json!({"group": group}),
        &group,
        "ping group 大家好",
    )
    .await?;
    called(
        ctl,
        &[
            "get_user_friends2",
            "get_group_name_list_mask2",
            "get_group_info_ext2",
        ],
    )
    .await?;

    // 3. Faults: a poll2 121, a 502 and a 100012; the library logs each and polls on.
    poll_faults(
        ctl,
        &[
            json!({"retcode": 121}),
            json!({"http_status": 502}),
            json!({"retcode": 100012}),
        ],
    )
    .await?;
    ping(ctl, "buddy", json!({}), &friend, "ping after faults").await?;
    ping(
        ctl,
        "group",
        json!({"group": group}),
        &group,
        "ping after faults",
    )
    .await?;
    no_refused_send(ctl).await?;
    // (No kick stage: on 103 this library only logs and polls again, forever.)
    Ok(())
}

/// The third-party clients under test.
#[derive(Clone, Copy)]
enum Client {
    /// pandolia/qqbot 2.3.11 (PyPI `qqbot`).
    Qqbot,
    /// python-smartqq-client 0.4.10 (PyPI).
    Smartqq,
}

impl Client {
    fn name(self) -> &'static str {
        match self {
            Client::Qqbot => "pandolia/qqbot 2.3.11",
            Client::Smartqq => "python-smartqq-client 0.4.10",
        }
    }

    /// Its log files in its working folder.
    fn logs(self) -> &'static [&'static str] {
        match self {
            Client::Qqbot => &["harness-first-run.log", "harness.log"],
            // The library logs into bot.log in its working folder.
            Client::Smartqq => &["harness.log", "bot.log"],
        }
    }

    fn start(self, dir: &Path, base: &str) -> Proc {
        match self {
            Client::Qqbot => start_qqbot(dir, base, false),
            Client::Smartqq => start_client(dir, "run_smartqq.py", &[base.into()]),
        }
    }

    async fn scenario(self, ctl: &Ctl, client: &mut Proc, dir: &Path) -> Result<(), String> {
        match self {
            Client::Qqbot => qqbot_scenario(ctl, client, dir).await,
            Client::Smartqq => smartqq_scenario(ctl, client).await,
        }
    }
}

/// Runs the client's scenario against a fresh simulator; on failure, panics with the error
/// and the last lines of every log.
async fn run(which: Client) {
    let name = which.name();
    // Fail (not skip) without the venv, before starting anything.
    venv_python();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy();
    // The library's own TLS configuration (feature `tls`), whichever crypto provider it uses:
    // a reqwest built with `rustls-no-provider` cannot build a client without one, even for
    // plain http.
    #[cfg(feature = "tls")]
    let http = match qqfleet::protocol::client::shared_tls_config() {
        Some(tls) => http.tls_backend_preconfigured(tls.clone()),
        None => http,
    };
    let http = http.build().expect("control API client");
    let dir = tempfile::tempdir().unwrap();
    let (sim, base) = start_sim(dir.path());
    let client_dir = dir.path().join("client");
    let mut client = which.start(&client_dir, &base);
    let ctl = Ctl { base, http };
    let started = Instant::now();
    let result = tokio::time::timeout(
        SCENARIO_LIMIT,
        which.scenario(&ctl, &mut client, &client_dir),
    )
    .await
    .unwrap_or_else(|_| Err(format!("the scenario took over {SCENARIO_LIMIT:?}")));
    let mut report = String::new();
    for log in which.logs() {
        if !client_dir.join(log).exists() {
            continue;
        }
        report += &format!(
            "\n--- {name}: {log} (last lines) ---\n{}",
            tail(&client_dir.join(log), 80)
        );
    }
    drop(client);
    let sim_log = tail(&sim.log, 40);
    drop(sim);
    if let Err(e) = result {
        panic!("{name}: {e}{report}\n--- qqfleet sim stderr (last lines) ---\n{sim_log}");
    }
    // Shown with `--nocapture`.
    eprintln!("{name}: scenario passed in {:?}{report}", started.elapsed());
}

#[tokio::test]
async fn pandolia_qqbot_2_3_11() {
    run(Client::Qqbot).await;
}

#[tokio::test]
async fn python_smartqq_client_0_4_10() {
    run(Client::Smartqq).await;
}
