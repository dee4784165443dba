//! The chaos soak (issue 11), shared by `make soak` (`examples/chaos_soak.rs`, 1,000 accounts,
//! `SOAK_SECS` seconds) and its CI version (`tests/chaos_soak.rs`, fewer accounts, 60 s).
//!
//! The simulator runs in its own process, the fleet in another, both the real `qqfleet`
//! binary on 127.0.0.1. A quarter of the accounts run the `echo` handler (their replies are
//! checked in the simulator's `/sim/sent`), the rest the `log` handler (each handled message is
//! a line in `<data>/handled/<id>.jsonl`). While messages arrive at a set rate from friends,
//! groups and discussions, the driver injects poll faults (103, 121, HTTP 502, dropped
//! connections, and with `timeouts` answers slower than the client's poll timeout), kicks some
//! accounts, expires the sessions of others (their relogin needs a scan), and cuts every
//! endpoint for `outage_secs`; the "phone" scans every QR code that appears. Then it stops the
//! chaos, waits (bounded) for the fleet to settle, and checks what the issue asks: every
//! account not kicked is online, every injected message handled exactly once, every reply
//! delivered exactly once or held, resident memory grew < 5 % over the second half, no panic
//! in either log. Every wait is bounded and both processes are killed at the end.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{json, Value};

#[path = "../fleet_common/mod.rs"]
mod fleet_common;

#[path = "../../examples/support/plot.rs"]
mod plot;
use fleet_common::{get, http, token_file, write_account};

/// What one soak does.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// The `qqfleet` binary.
    pub bin: PathBuf,
    pub accounts: usize,
    /// Length of the chaos phase.
    pub secs: u64,
    /// Messages injected per second, fleet-wide.
    pub msgs_per_sec: u32,
    /// One poll fault every this many milliseconds (0: none).
    pub fault_every_ms: u64,
    /// Length of the outage of every endpoint (0: none).
    pub outage_secs: u64,
    /// Include poll answers slower than the client's poll timeout.
    pub timeouts: bool,
    /// The fleet's poll timeout (`qqfleet run --poll-timeout-secs`): the simulator holds a
    /// poll `hold_secs`, so a timeout just above it lets even a 60 s run see polls that hang
    /// past it (the default 90 s would need runs of several minutes).
    pub poll_timeout_secs: u64,
    /// Fraction of accounts kicked, and fraction whose sessions expire.
    pub kick_fraction: f64,
    pub expire_fraction: f64,
    /// Run the fleet with its outage breaker (false: `--no-outage-breaker`).
    pub breaker: bool,
    /// How long the fleet may take to settle after the chaos.
    pub settle_secs: u64,
    /// The simulator's poll hold.
    pub hold_secs: u64,
    /// Where the report and the logs go.
    pub out_dir: PathBuf,
}

impl SoakConfig {
    pub fn new(bin: PathBuf, accounts: usize, secs: u64, out_dir: PathBuf) -> SoakConfig {
        SoakConfig {
            bin,
            accounts,
            secs,
            msgs_per_sec: 20,
            fault_every_ms: 250,
            outage_secs: 20,
            timeouts: true,
            poll_timeout_secs: 30,
            kick_fraction: 0.01,
            expire_fraction: 0.01,
            breaker: true,
            settle_secs: 120,
            hold_secs: 20,
            out_dir,
        }
    }
}

/// `qqfleet_heap_in_use_bytes` from the fleet's `/metrics`, in KiB.
async fn heap_kib(api: &str) -> Option<u64> {
    let text = http()
        .get(format!("{api}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("qqfleet_heap_in_use_bytes "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|b| (b / 1024.0) as u64)
}

/// Growth in % of a series (`(seconds, KiB)`) over its samples from `half` on, with the
/// KiB at each end. Each end is the median of a few samples (a tenth of the half, at least
/// three): the fleet gives freed memory back every 30 s (`memtrim`), so one sample taken just
/// after a trim and one just before the next differ by what was allocated in between.
fn second_half_growth(series: &[(f64, u64)], half: f64) -> (f64, u64, u64) {
    let second: Vec<u64> = series
        .iter()
        .filter(|(t, _)| *t >= half)
        .map(|x| x.1)
        .collect();
    let k = (second.len() / 10).max(3).min(second.len());
    let median = |xs: &[u64]| {
        let mut v = xs.to_vec();
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0)
    };
    let mid = median(&second[..k]);
    let end = median(&second[second.len() - k..]);
    let growth = if mid > 0 {
        (end as f64 - mid as f64) / mid as f64 * 100.0
    } else {
        0.0
    };
    (growth, mid, end)
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A child process killed when dropped (a failed assertion must not leave it running).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_sim(cfg: &SoakConfig) -> (Proc, String) {
    let mut c = Command::new(&cfg.bin)
        .args(["sim", "--listen", "127.0.0.1:0", "--hold"])
        .arg(cfg.hold_secs.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(cfg.out_dir.join("sim.stderr")).unwrap())
        .spawn()
        .expect("start qqfleet sim");
    let mut line = String::new();
    BufReader::new(c.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .expect("the simulator prints `listening on` first")
        .to_string();
    (Proc(c), base)
}

fn start_fleet(cfg: &SoakConfig, dir: &Path, base: &str) -> (Proc, String) {
    let mut cmd = Command::new(&cfg.bin);
    cmd.args(["run", "--accounts"])
        .arg(dir.join("accounts"))
        .arg("--data")
        .arg(dir.join("data"))
        .args(["--listen", "127.0.0.1:0", "--sim-url", base])
        .arg("--admin-token-file")
        .arg(token_file(dir))
        .arg("--poll-timeout-secs")
        .arg(cfg.poll_timeout_secs.to_string())
        // `SOAK_LOG=debug` to chase a stall; the default keeps the log to warnings.
        .env(
            "RUST_LOG",
            std::env::var("SOAK_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(cfg.out_dir.join("fleet.stderr")).unwrap());
    if !cfg.breaker {
        cmd.arg("--no-outage-breaker");
    }
    // Extra `qqfleet run` flags for an experiment (`SOAK_FLEET_ARGS="--store-cache-mb 8"`).
    if let Ok(extra) = std::env::var("SOAK_FLEET_ARGS") {
        cmd.args(extra.split_whitespace());
    }
    let mut child = cmd.spawn().expect("start qqfleet run");
    let out = child.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    let mut api = None;
    for l in lines.by_ref().map_while(Result::ok) {
        if let Some(rest) = l.strip_prefix("admin API: ") {
            api = Some(rest.trim_end_matches("/api/accounts").to_string());
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    (
        Proc(child),
        api.expect("the fleet prints its admin API address"),
    )
}

fn qq_of(i: usize) -> u64 {
    400_000 + i as u64
}

fn id_of(i: usize) -> String {
    format!("s{i:05}")
}

fn is_echo(i: usize) -> bool {
    i % 4 == 0
}

async fn states(api: &str) -> HashMap<String, String> {
    let mut m = HashMap::new();
    if let Ok(r) = http().get(format!("{api}/api/accounts")).send().await {
        if let Ok(Value::Array(v)) = r.json::<Value>().await {
            for a in v {
                m.insert(
                    a["id"].as_str().unwrap_or("?").to_string(),
                    a["state"].as_str().unwrap_or("?").to_string(),
                );
            }
        }
    }
    m
}

fn count(states: &HashMap<String, String>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for s in states.values() {
        *m.entry(s.clone()).or_insert(0) += 1;
    }
    m
}

/// The phone: scans every QR code an account shows, as that account's QQ number, until
/// `stop` is set. Keyed by the QR token, so an account that needs a second scan gets one.
async fn phone(api: String, base: String, stop: Arc<Mutex<bool>>, scans: Arc<Mutex<u64>>) {
    use futures::StreamExt;
    // Accounts scanned in the last seconds: their state has not caught up yet.
    let mut recent: HashMap<String, Instant> = HashMap::new();
    while !*stop.lock().unwrap() {
        let list: Value = match http().get(format!("{api}/api/accounts")).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        recent.retain(|_, at| at.elapsed() < Duration::from_secs(10));
        let due: Vec<(String, u64)> = list
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|a| a["state"] == "awaiting_scan")
            .filter_map(|a| Some((a["id"].as_str()?.to_string(), a["qq"].as_u64()?)))
            .filter(|(id, _)| !recent.contains_key(id))
            .collect();
        let (api2, base2) = (api.clone(), base.clone());
        let done: Vec<String> = futures::stream::iter(due)
            .map(|(id, qq)| {
                let (api, base) = (api2.clone(), base2.clone());
                async move { scan_one(&api, &base, &id, qq).await.then_some(id) }
            })
            .buffer_unordered(4)
            .filter_map(|x| async move { x })
            .collect()
            .await;
        *scans.lock().unwrap() += done.len() as u64;
        for id in done {
            recent.insert(id, Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Reads the account's QR code from the admin API and scans it as `qq`.
async fn scan_one(api: &str, base: &str, id: &str, qq: u64) -> bool {
    let Ok(r) = http()
        .get(format!("{api}/api/accounts/{id}/qr"))
        .send()
        .await
    else {
        return false;
    };
    if r.status() != 200 {
        return false;
    }
    let png = r.bytes().await.unwrap_or_default().to_vec();
    let url = tokio::task::spawn_blocking(move || qqfleet::fleet::login::decode_qr(&png))
        .await
        .ok()
        .flatten();
    let Some(token) = url
        .as_deref()
        .and_then(|u| u.split("k=").nth(1))
        .and_then(|s| s.split('&').next())
        .map(String::from)
    else {
        return false;
    };
    http()
        .post(format!("{base}/sim/qr/scan"))
        .json(&json!({"token": token, "qq": qq, "confirm": true}))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

async fn sim_requests(base: &str) -> u64 {
    let st = get(&format!("{base}/sim/stats")).await;
    st["requests"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0)
}

async fn control(base: &str, path: &str, body: Value) -> u16 {
    match http()
        .post(format!("{base}/sim/{path}"))
        .json(&body)
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// One injected message.
struct Injected {
    account: usize,
    text: String,
    /// Seconds since the chaos began.
    at: f64,
}

/// Handled texts of a `log` account, with how often each was handled.
fn handled_texts(data: &Path, id: &str) -> HashMap<String, u32> {
    let mut m = HashMap::new();
    let path = data.join("handled").join(format!("{id}.jsonl"));
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        if let Ok(v) = serde_json::from_str::<Value>(line) {
            if let Some(t) = v["text"].as_str() {
                *m.entry(t.to_string()).or_insert(0) += 1;
            }
        }
    }
    m
}

/// Delivered texts of an `echo` account, per `/sim/sent`.
async fn sent_texts(base: &str, qq: u64) -> HashMap<String, u32> {
    let mut m = HashMap::new();
    let v = get(&format!("{base}/sim/sent?qq={qq}")).await;
    for e in v.as_array().cloned().unwrap_or_default() {
        if let Some(t) = e["text"].as_str() {
            *m.entry(t.to_string()).or_insert(0) += 1;
        }
    }
    m
}

/// Held (text → reason) and pending texts of an account's outbox.
async fn outbox(api: &str, id: &str) -> (HashMap<String, String>, HashSet<String>) {
    let v = get(&format!("{api}/api/accounts/{id}/outbox")).await;
    let held = v["held"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|m| {
            let reason = if m["rejections"].as_u64().unwrap_or(0) > 0 {
                "refused"
            } else {
                "uncertain"
            };
            Some((m["text"].as_str()?.to_string(), reason.to_string()))
        })
        .collect();
    let pending = v["pending"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|m| Some(m["text"].as_str()?.to_string()))
        .collect();
    (held, pending)
}

/// Runs the soak; returns the report (also written to `out_dir/report.json`). The report's
/// `failures` list is empty when every check passed.
pub async fn run(cfg: SoakConfig) -> Value {
    std::fs::create_dir_all(&cfg.out_dir).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let n = cfg.accounts;
    let (_sim, base) = start_sim(&cfg);
    for i in 0..n {
        // Echo accounts hold an uncertain send (1202, a timeout) for an operator rather than
        // assume it delivered, so "delivered exactly once or held with its reason" is checkable.
        let handler = if is_echo(i) {
            "handler = \"echo\"\non_uncertain = \"hold\""
        } else {
            "handler = \"log\""
        };
        write_account(
            dir.path(),
            &id_of(i),
            &format!(
                "qq = {}\n{handler}\n[supervision]\nqr_check_secs = 1\n",
                qq_of(i)
            ),
        );
    }
    let t_start = Instant::now();
    let (fleet, api) = start_fleet(&cfg, dir.path(), &base);
    let pid = fleet.0.id();
    let stop_phone = Arc::new(Mutex::new(false));
    let scans = Arc::new(Mutex::new(0u64));
    let phone_task = tokio::spawn(phone(
        api.clone(),
        base.clone(),
        stop_phone.clone(),
        scans.clone(),
    ));

    // Everyone online first (bounded).
    let login_limit = Duration::from_secs(120 + n as u64 / 4);
    loop {
        let s = states(&api).await;
        let online = s.values().filter(|v| *v == "online").count();
        if online == n {
            break;
        }
        assert!(
            t_start.elapsed() < login_limit,
            "not all online after {login_limit:?}: {:?}",
            count(&s)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let login_secs = t_start.elapsed().as_secs_f64();

    // The chaos phase.
    let mut rng = rand::rng();
    let secs = cfg.secs as f64;
    // Early in the chaos, so the outage and the burst of relinks and queued sends after it
    // are over before the second half, over which memory growth is judged.
    let outage_at = (secs * 0.1).max(5.0);
    let at_least_one = |f: f64| {
        if f > 0.0 {
            ((n as f64 * f).ceil() as usize).max(1)
        } else {
            0
        }
    };
    let n_kick = at_least_one(cfg.kick_fraction);
    let n_expire = at_least_one(cfg.expire_fraction);
    // Kicks and expiries away from the outage, spread over the first 60 % of the run.
    let mut pool: Vec<usize> = (0..n).collect();
    let mut pick =
        |rng: &mut rand::rngs::ThreadRng| pool.swap_remove(rng.random_range(0..pool.len()));
    let mut kicks: Vec<(f64, usize)> = (0..n_kick)
        .map(|k| {
            (
                (k as f64 + 0.5) / n_kick as f64 * secs * 0.25,
                pick(&mut rng),
            )
        })
        .collect();
    let mut expiries: Vec<(f64, usize)> = (0..n_expire)
        .map(|k| {
            (
                outage_at
                    + cfg.outage_secs as f64
                    + 2.0
                    + (k as f64 + 0.5) / n_expire as f64 * secs * 0.2,
                pick(&mut rng),
            )
        })
        .collect();
    kicks.reverse();
    expiries.reverse();
    let kicked: HashSet<usize> = kicks.iter().map(|k| k.1).collect();
    let mut expired: HashSet<usize> = HashSet::new();
    let mut slowed: HashSet<usize> = HashSet::new();
    let mut injected: Vec<Injected> = Vec::new();
    let mut inject_refused = 0u64;
    let mut faults: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut rss: Vec<(f64, u64)> = Vec::new();
    // The allocator's live bytes (`qqfleet_heap_in_use_bytes`, read after each trim): tells a
    // leak (it grows) from freed memory kept for reuse (RSS grows, it does not).
    let mut heap: Vec<(f64, u64)> = Vec::new();
    let mut next_heap = 0.0;
    let mut outage: Option<(u64, f64)> = None;
    let mut outage_requests: Option<u64> = None;
    let mut requests_per_sec: Vec<(f64, u64)> = Vec::new();
    let mut last_req = sim_requests(&base).await;
    let t0 = Instant::now();
    let msg_every = 1.0 / cfg.msgs_per_sec.max(1) as f64;
    let (mut next_msg, mut next_fault, mut next_rss, mut next_req) = (0.0, 0.0, 0.0, 1.0);
    let mut seq = 0u64;
    let kinds = ["buddy", "group", "discu"];
    loop {
        let t = t0.elapsed().as_secs_f64();
        if t >= secs {
            break;
        }
        while t >= next_msg {
            next_msg += msg_every;
            let i = rng.random_range(0..n);
            let kind = kinds[seq as usize % 3];
            let text = format!("soak {seq} {kind}");
            seq += 1;
            let s = control(
                &base,
                "inject",
                json!({"qq": qq_of(i), "kind": kind, "text": text}),
            )
            .await;
            if s == 200 {
                injected.push(Injected {
                    account: i,
                    text,
                    at: t,
                });
            } else {
                inject_refused += 1;
            }
        }
        let in_outage = outage.is_some_and(|(_, at)| t < at + cfg.outage_secs as f64);
        if cfg.fault_every_ms > 0 && t >= next_fault {
            next_fault += cfg.fault_every_ms as f64 / 1000.0;
            if !in_outage {
                let i = rng.random_range(0..n);
                // One fault in 20 is a hang: its account's messages can be lost with the
                // abandoned answer (as against the real service), so it is left out of the
                // exactly-once count and kept rare.
                let choices = ["103", "121", "502", "drop"];
                let which = if cfg.timeouts && rng.random_range(0..20) == 0 {
                    "timeout"
                } else {
                    choices[rng.random_range(0..choices.len())]
                };
                let mut body = json!({"qq": qq_of(i), "endpoint": "poll2"});
                match which {
                    "103" => body["retcode"] = json!(103),
                    "121" => body["retcode"] = json!(121),
                    "502" => body["http_status"] = json!(502),
                    "drop" => body["drop"] = json!(true),
                    _ => {
                        // Longer than the fleet's poll timeout.
                        body["delay_ms"] = json!((cfg.poll_timeout_secs + 5) * 1000);
                        slowed.insert(i);
                    }
                }
                if control(&base, "faults", body).await == 200 {
                    *faults.entry(which).or_insert(0) += 1;
                }
            }
        }
        if outage.is_none() && cfg.outage_secs > 0 && t >= outage_at {
            let before = sim_requests(&base).await;
            let s = control(
                &base,
                "outage",
                json!({"seconds": cfg.outage_secs, "mode": "drop"}),
            )
            .await;
            assert_eq!(s, 200, "POST /sim/outage");
            outage = Some((before, t));
        }
        if let Some((before, at)) = outage {
            if outage_requests.is_none() && t >= at + cfg.outage_secs as f64 {
                outage_requests = Some(sim_requests(&base).await - before);
            }
        }
        if kicks.last().is_some_and(|k| t >= k.0) {
            let (_, i) = kicks.pop().unwrap();
            control(&base, "kick", json!({"qq": qq_of(i)})).await;
        }
        if !in_outage && expiries.last().is_some_and(|k| t >= k.0) {
            let (_, i) = expiries.pop().unwrap();
            if control(&base, "expire", json!({"qq": qq_of(i)})).await == 200 {
                expired.insert(i);
            }
        }
        if t >= next_rss {
            next_rss += 2.0;
            rss.push(((t * 10.0).round() / 10.0, rss_kib(pid)));
        }
        if t >= next_heap {
            next_heap += 10.0;
            if let Some(h) = heap_kib(&api).await {
                heap.push(((t * 10.0).round() / 10.0, h));
            }
        }
        if t >= next_req {
            next_req += 1.0;
            let now = sim_requests(&base).await;
            requests_per_sec.push((t.round(), now - last_req));
            last_req = now;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    rss.push((secs, rss_kib(pid)));
    let chaos_secs = t0.elapsed().as_secs_f64();
    let _ = http().delete(format!("{base}/sim/faults")).send().await;

    // The injected messages by account, and whether the chaos threw an account's server
    // session away (kicked, expired, or a poll answered after the client gave up on it): its
    // queued events may be lost with it, so its messages count apart.
    let mut by_acc: HashMap<usize, Vec<&Injected>> = HashMap::new();
    for m in &injected {
        by_acc.entry(m.account).or_default().push(m);
    }
    let touched = |i: &usize| kicked.contains(i) || expired.contains(i) || slowed.contains(i);

    // Settle: every account not kicked online, every message handled (bounded).
    let data = dir.path().join("data");
    let settle_start = Instant::now();
    let settle_limit = Duration::from_secs(cfg.settle_secs);
    let (mut final_states, mut settled) = (HashMap::new(), false);
    while settle_start.elapsed() < settle_limit {
        final_states = states(&api).await;
        let all_online = (0..n).all(|i| {
            kicked.contains(&i) || final_states.get(&id_of(i)).is_some_and(|s| s == "online")
        });
        let mut missing = 0;
        for (i, msgs) in &by_acc {
            if is_echo(*i) || touched(i) {
                continue;
            }
            let h = handled_texts(&data, &id_of(*i));
            missing += msgs.iter().filter(|m| !h.contains_key(&m.text)).count();
        }
        // An echo account is done when its outbox is empty and each of its messages got its
        // reply or a held one (those of accounts the chaos touched may be lost with a hung
        // poll): a message it had not handled yet would put a reply in the outbox later.
        let mut pending = 0;
        if all_online && missing == 0 {
            for (i, msgs) in by_acc
                .iter()
                .filter(|(i, _)| is_echo(**i) && !kicked.contains(*i))
            {
                let (held, queued) = outbox(&api, &id_of(*i)).await;
                pending += queued.len();
                if touched(i) {
                    continue;
                }
                let sent = sent_texts(&base, qq_of(*i)).await;
                pending += msgs
                    .iter()
                    .filter(|m| !sent.contains_key(&m.text) && !held.contains_key(&m.text))
                    .count();
            }
        }
        if all_online && missing == 0 && pending == 0 {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let settle_secs = settle_start.elapsed().as_secs_f64();

    // The checks.
    let mut failures: Vec<String> = Vec::new();
    let not_online: Vec<String> = (0..n)
        .filter(|i| !kicked.contains(i))
        .filter(|i| final_states.get(&id_of(*i)).map_or(true, |s| s != "online"))
        .map(|i| {
            format!(
                "{}={}",
                id_of(i),
                final_states.get(&id_of(i)).map_or("?", |s| s)
            )
        })
        .collect();
    if !not_online.is_empty() {
        failures.push(format!(
            "{} accounts not kicked are not online: {:?}",
            not_online.len(),
            &not_online[..not_online.len().min(20)]
        ));
    }
    let kicked_not_stopped: Vec<String> = kicked
        .iter()
        .filter(|i| {
            final_states
                .get(&id_of(**i))
                .map_or(true, |s| s != "stopped")
        })
        .map(|i| id_of(*i))
        .collect();
    // Messages: exactly once for accounts whose server session was never thrown away;
    // at most once where the simulator itself dropped queued events (kick, expiry, a poll
    // answered after the client gave up on it).
    let (mut handled_once, mut handled_twice, mut missing_clean, mut missing_affected) =
        (0u64, 0u64, 0u64, 0u64);
    let (mut replies_once, mut replies_twice, mut replies_held, mut replies_pending) =
        (0u64, 0u64, 0u64, 0u64);
    // Replies queued on an account the kick stopped: kept in its outbox until an operator
    // starts it again, as they should be (the settle step does not wait for them).
    let mut replies_kept_stopped = 0u64;
    let mut held_reasons: BTreeMap<String, u64> = BTreeMap::new();
    let mut examples: Vec<String> = Vec::new();
    for (i, msgs) in &by_acc {
        let affected = touched(i);
        let id = id_of(*i);
        if is_echo(*i) {
            let sent = sent_texts(&base, qq_of(*i)).await;
            let (held, pending) = outbox(&api, &id).await;
            for m in msgs {
                match (sent.get(&m.text).copied().unwrap_or(0), held.get(&m.text)) {
                    (1, _) => {
                        replies_once += 1;
                        handled_once += 1;
                    }
                    (0, Some(reason)) => {
                        replies_held += 1;
                        handled_once += 1;
                        *held_reasons.entry(reason.clone()).or_insert(0) += 1;
                    }
                    (0, None) if pending.contains(&m.text) => {
                        if kicked.contains(i) {
                            replies_kept_stopped += 1;
                        } else {
                            replies_pending += 1;
                        }
                        handled_once += 1;
                    }
                    (0, None) => {
                        if affected {
                            missing_affected += 1;
                        } else {
                            missing_clean += 1;
                            if examples.len() < 10 {
                                examples.push(format!(
                                    "{id}: no reply to {:?} (t={:.1})",
                                    m.text, m.at
                                ));
                            }
                        }
                    }
                    (k, _) => {
                        replies_twice += 1;
                        if examples.len() < 10 {
                            examples.push(format!("{id}: {k} replies to {:?}", m.text));
                        }
                    }
                }
            }
        } else {
            let h = handled_texts(&data, &id);
            for m in msgs {
                match h.get(&m.text).copied().unwrap_or(0) {
                    1 => handled_once += 1,
                    0 if affected => missing_affected += 1,
                    0 => {
                        missing_clean += 1;
                        if examples.len() < 10 {
                            examples
                                .push(format!("{id}: {:?} not handled (t={:.1})", m.text, m.at));
                        }
                    }
                    k => {
                        handled_twice += 1;
                        if examples.len() < 10 {
                            examples.push(format!("{id}: {:?} handled {k} times", m.text));
                        }
                    }
                }
            }
        }
    }
    if handled_twice > 0 {
        failures.push(format!("{handled_twice} messages handled more than once"));
    }
    if missing_clean > 0 {
        failures.push(format!(
            "{missing_clean} messages never handled (accounts never kicked, expired or timed out)"
        ));
    }
    if replies_twice > 0 {
        failures.push(format!("{replies_twice} replies delivered more than once"));
    }
    if replies_pending > 0 {
        failures.push(format!(
            "{replies_pending} replies still pending in an outbox"
        ));
    }
    // Memory over the second half of the chaos; the same for the heap's live bytes (a
    // figure, not a check: RSS is what the goal bounds).
    let half = secs / 2.0;
    let (growth, mid, end) = second_half_growth(&rss, half);
    let (heap_growth, _, _) = second_half_growth(&heap, half);
    if growth >= 5.0 {
        failures.push(format!(
            "resident memory grew {growth:.1} % over the second half ({mid} → {end} KiB)"
        ));
    }
    // The breaker's warn line, once per opening (a false trip shows as more than one).
    let breaker_opened = std::fs::read_to_string(cfg.out_dir.join("fleet.stderr"))
        .unwrap_or_default()
        .matches("service outage:")
        .count();
    let mut panics = 0;
    for f in ["fleet.stderr", "sim.stderr"] {
        let text = std::fs::read_to_string(cfg.out_dir.join(f)).unwrap_or_default();
        let k = text.matches("panicked").count();
        if k > 0 {
            failures.push(format!("{k} panics in {f}"));
        }
        panics += k;
    }
    if !settled {
        failures.push(format!("not settled within {} s", cfg.settle_secs));
        // What each account was doing when the soak gave up, for the post-mortem.
        let accounts = get(&format!("{api}/api/accounts")).await;
        let _ = std::fs::write(cfg.out_dir.join("accounts.json"), accounts.to_string());
    }
    *stop_phone.lock().unwrap() = true;
    let _ = tokio::time::timeout(Duration::from_secs(5), phone_task).await;
    let metrics = http().get(format!("{api}/metrics")).send().await.ok();
    let metrics = match metrics {
        Some(r) => r.text().await.unwrap_or_default(),
        None => String::new(),
    };
    let restarts: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("qqfleet_actor_restarts_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    let _ = std::fs::write(cfg.out_dir.join("metrics.txt"), &metrics);
    drop(fleet);
    let report = json!({
        "config": {
            "accounts": n, "echo_accounts": (0..n).filter(|i| is_echo(*i)).count(),
            "chaos_secs": cfg.secs, "msgs_per_sec": cfg.msgs_per_sec,
            "fault_every_ms": cfg.fault_every_ms, "outage_secs": cfg.outage_secs,
            "outage_mode": "drop", "timeouts": cfg.timeouts, "poll_timeout_secs": cfg.poll_timeout_secs, "breaker": cfg.breaker,
            "sim_hold_secs": cfg.hold_secs,
        },
        "login_all_online_secs": (login_secs * 10.0).round() / 10.0,
        "chaos_secs_measured": (chaos_secs * 10.0).round() / 10.0,
        "settle_secs": (settle_secs * 10.0).round() / 10.0,
        "qr_scans": *scans.lock().unwrap(),
        "injected": injected.len(), "inject_refused_not_online": inject_refused,
        "faults": faults, "kicked": kicked.len(), "expired": expired.len(),
        "timed_out_accounts": slowed.len(),
        "kicked_not_stopped": kicked_not_stopped,
        "handled_once": handled_once, "handled_twice": handled_twice,
        "missing_unaffected": missing_clean, "missing_on_kicked_expired_or_timed_out": missing_affected,
        "replies_delivered_once": replies_once, "replies_delivered_twice": replies_twice,
        "replies_held": replies_held, "held_reasons": held_reasons,
        "replies_pending": replies_pending,
        "replies_kept_on_stopped_accounts": replies_kept_stopped,
        "outage_requests": outage_requests,
        "breaker_opened": breaker_opened,
        "requests_per_sec": requests_per_sec,
        "actor_restarts": restarts,
        "final_states": count(&final_states),
        "rss_kib": rss, "rss_growth_second_half_pct": (growth * 100.0).round() / 100.0,
        "heap_in_use_kib": heap, "heap_growth_second_half_pct": (heap_growth * 100.0).round() / 100.0,
        "panics": panics,
        "examples": examples,
        "failures": failures,
    });
    std::fs::write(
        cfg.out_dir.join("report.json"),
        serde_json::to_string_pretty(&report).unwrap(),
    )
    .unwrap();
    // Memory over time, drawn by the soak itself (docs/RELIABILITY.md shows one).
    let mib = |xs: &[(f64, u64)]| -> Vec<(f64, f64)> {
        xs.iter().map(|&(t, k)| (t, k as f64 / 1024.0)).collect()
    };
    plot::line_plot(
        &cfg.out_dir.join("memory.png"),
        "qqfleet resident memory during the chaos soak",
        "seconds",
        "MiB",
        &[("fleet RSS", mib(&rss)), ("heap in use", mib(&heap))],
    )
    .expect("memory plot written");
    report
}

/// Requests the fleet sends to the simulator during a `secs` outage of every endpoint, with or
/// without the breaker: `accounts` accounts online, no other chaos.
pub async fn outage_requests(
    bin: PathBuf,
    accounts: usize,
    secs: u64,
    breaker: bool,
    out_dir: PathBuf,
) -> Value {
    let mut cfg = SoakConfig::new(bin, accounts, secs + 15, out_dir);
    cfg.msgs_per_sec = 1;
    cfg.fault_every_ms = 3_600_000;
    cfg.outage_secs = secs;
    cfg.kick_fraction = 0.0;
    cfg.expire_fraction = 0.0;
    cfg.timeouts = false;
    cfg.breaker = breaker;
    cfg.settle_secs = 60;
    let r = run(cfg).await;
    json!({"accounts": accounts, "outage_secs": secs, "breaker": breaker,
           "requests": r["outage_requests"], "requests_per_sec": r["requests_per_sec"],
           "breaker_opened": r["breaker_opened"],
           "failures": r["failures"]})
}
