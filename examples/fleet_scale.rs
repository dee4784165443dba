//! Fleet scale benchmark (`make bench`): for each size N of `QQFLEET_SCALE_SIZES` (default
//! `100,1000,5000,10000`), N accounts in one `qqfleet run` process against `qqfleet sim` in
//! another, both on 127.0.0.1, 60 s holds as the real service. Per size it measures:
//!
//! * the cold start (every QR code scanned as soon as it is shown, by a phone played here:
//!   the code read from the admin API, decoded, scanned through the control API), bounded by
//!   `QQFLEET_SCALE_DEADLINE` seconds (default 600): a fleet that does not come up is
//!   reported with how many accounts were online and how many codes were issued;
//! * resident memory per idle online account (fleet RSS minus an empty fleet of the same
//!   binary, / N; also its anonymous part alone), idle CPU (every poll parked, over one 60 s hold), open
//!   files, and the simulator's own memory and CPU over the same window, from 60 s after
//!   the last account came online (`QQFLEET_BENCH_IDLE_WAIT_S`), when the start's pooled
//!   connections have closed and the heap has been trimmed;
//! * the `/metrics` scrape (time and size), and from it the heap's live bytes (allocated and
//!   not freed, as the last trim counted them): what of the RSS is objects, what allocator;
//! * the echo round trip (message injected in the simulator → the reply in `/sim/sent`), at
//!   100 messages a second in total to random accounts, p50 and p99;
//! * SIGTERM time, and the time until all N are online again after a restart, no scan;
//! * on the restarted fleet, every account with the `log` handler and the fleet logging its
//!   events in JSON: inject → handler (from just before `POST /sim/inject` to the fleet's
//!   "message received" line, stamped as the handler is handed the message after its
//!   durable record), 100 messages a second in total for 30 s (`QQFLEET_BENCH_LAT_MSGS`,
//!   3,000), p50, p99, p99.9 and the slowest, with the fleet's own share (the line's
//!   `waited_us`, poll answer → handler: the record, its flush and the account's turn) and
//!   how many of the store's flushes meanwhile took over 2 and 5 ms (the disk's share of
//!   the tail); then fleet-wide
//!   throughput: `QQFLEET_BENCH_MSGS` (20,000) messages queued at once through
//!   `/sim/inject/batch`, msg/s from the first inject to the last one handled, and every
//!   account's log file read back (none lost, none handled twice).
//!
//! Then, once, pandolia/qqbot of the fidelity venv (`target/fidelity-venv`, `make
//! fidelity-deps`) logged in against a simulator: its resident memory for its one account.
//!
//! Writes `target/bench/report[-LABEL].json` (`QQFLEET_BENCH_LABEL`), the plots
//! `target/bench/*.png` and `docs/PERFORMANCE.md` (`QQFLEET_BENCH_DOC`, empty: none); a
//! `target/bench/report-before.json` from an earlier run with `QQFLEET_BENCH_LABEL=before`
//! becomes the "before" column. Uses the release binary (`QQFLEET_SCALE_BIN`). Every wait is
//! bounded; every child is killed at the end.
//!
//! `QQFLEET_BENCH_RENDER=path/to/report.json` writes a recorded run's report, plots and
//! `docs/PERFORMANCE.md` again without measuring (after a change to how they are written).
//!
//! For a diagnosis: `QQFLEET_BENCH_FLEET_ARGS` adds `qqfleet run` options to every fleet
//! (e.g. `--max-logins 100`, which replaces the bench's wide gate); `QQFLEET_BENCH_LOG`
//! sets the message path's log filter (e.g. `warn,qqfleet::events=trace`: every flush);
//! `QQFLEET_BENCH_KEEP=1` keeps each size's data and logs and prints the ten slowest
//! messages with their inject times.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[path = "../tests/fleet_common/mod.rs"]
mod fleet_common;
#[path = "support/plot.rs"]
mod plot;
#[path = "support/procs.rs"]
mod procs;
use fleet_common::{get, http, post, sigterm, token_file, wait_exit, write_account};
use procs::{cpu_ticks, fds, rss_anon_kib, rss_kib, start_sim, Kill};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    run().await;
}

/// The accounts in each state: `/api/summary` (the counts alone), else the whole list (a
/// binary from before the summary). Polled while a fleet comes up, so it must cost the fleet
/// little: the list at 10,000 accounts is megabytes of JSON.
async fn count_states(api: &str) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    if let Ok(r) = http().get(format!("{api}/api/summary")).send().await {
        if r.status().is_success() {
            if let Ok(v) = r.json::<Value>().await {
                for (k, n) in v["states"].as_object().into_iter().flatten() {
                    m.insert(k.clone(), n.as_u64().unwrap_or(0) as usize);
                }
                return m;
            }
        }
    }
    if let Ok(r) = http().get(format!("{api}/api/accounts")).send().await {
        if let Ok(Value::Array(v)) = r.json::<Value>().await {
            for a in v {
                *m.entry(a["state"].as_str().unwrap_or("?").to_string())
                    .or_insert(0) += 1;
            }
        }
    }
    m
}

/// The simulator's binary: `QQFLEET_SCALE_SIM_BIN`, else the fleet's. A "before" fleet is
/// measured against the current simulator (which has `/sim/inject/batch`).
fn sim_bin(bin: &str) -> String {
    std::env::var("QQFLEET_SCALE_SIM_BIN").unwrap_or_else(|_| bin.to_string())
}

/// Whether this binary has the login gate's flags (the "before" binary has not).
fn has_gate(bin: &str) -> bool {
    Command::new(bin)
        .args(["run", "--help"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("--max-logins"))
        .unwrap_or(false)
}

fn start_fleet(bin: &str, dir: &Path, accounts: &Path, data: &str, base: &str) -> (Kill, String) {
    start_fleet_logged(bin, dir, accounts, data, base, false)
}

/// `events`: the fleet logs in JSON with its events at info (what an operator's default
/// `info` shows: "message received" for every message), to `<dir>/<data>.stderr`.
fn start_fleet_logged(
    bin: &str,
    dir: &Path,
    accounts: &Path,
    data: &str,
    base: &str,
    events: bool,
) -> (Kill, String) {
    let stderr = dir.join(format!("{data}.stderr"));
    let mut cmd = Command::new(bin);
    if events {
        cmd.args(["--log-format", "json"]);
    }
    cmd.args(["run", "--accounts"])
        .arg(accounts)
        .arg("--data")
        .arg(dir.join(data))
        .args(["--listen", "127.0.0.1:0", "--sim-url", base])
        .arg("--admin-token-file")
        .arg(token_file(dir));
    // QQFLEET_BENCH_FLEET_ARGS: more `qqfleet run` options, split at spaces (a diagnosis,
    // e.g. `--store-cache-mb 8`), for every fleet of the run, the empty one included.
    let extra = std::env::var("QQFLEET_BENCH_FLEET_ARGS").unwrap_or_default();
    cmd.args(extra.split_whitespace());
    if has_gate(bin) && !extra.contains("--max-logins") {
        // The phone scans at once: a wide gate, paced as a fast operator would.
        cmd.args(["--max-logins", "1000", "--qr-per-second", "500"]);
    }
    let log = if events {
        // QQFLEET_BENCH_LOG: another filter for the message path's fleet (a diagnosis, e.g.
        // `warn,qqfleet::events=trace` for every flush); it must keep the events at info.
        std::env::var("QQFLEET_BENCH_LOG").unwrap_or("warn,qqfleet::events=info".into())
    } else {
        "warn".into()
    };
    let mut child = cmd
        .env("RUST_LOG", log)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
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
    let api = api.unwrap_or_else(|| {
        panic!(
            "fleet did not start: {}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        )
    });
    (Kill(child), api)
}

/// Plays the phone until every account is online or the deadline passes; returns the
/// seconds taken (None at the deadline) and the last state counts.
async fn cold_start(
    api: &str,
    base: &str,
    n: usize,
    deadline: Duration,
) -> (Option<f64>, BTreeMap<String, usize>) {
    let t0 = Instant::now();
    let scanned = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    loop {
        let list: Value = match http().get(format!("{api}/api/accounts")).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        let list = list.as_array().cloned().unwrap_or_default();
        let online = list.iter().filter(|a| a["state"] == "online").count();
        if online == n {
            return (Some(t0.elapsed().as_secs_f64()), count_states(api).await);
        }
        if t0.elapsed() > deadline {
            return (None, count_states(api).await);
        }
        // Each code is scanned once, known by its token: the list shows every waiting
        // account's QR URL (`qr.url`, with the `k=` token). A binary without it is read
        // through the PNG, known by (id, since).
        let token_of = |url: &str| {
            url.split("k=")
                .nth(1)
                .and_then(|s| s.split('&').next())
                .map(String::from)
        };
        let waiting: Vec<(String, u64, String, Option<String>)> = list
            .iter()
            .filter(|a| a["state"] == "awaiting_scan")
            .map(|a| {
                let id = a["id"].as_str().unwrap_or("").to_string();
                let token = a["qr"]["url"].as_str().and_then(token_of);
                let key = token
                    .clone()
                    .unwrap_or_else(|| format!("{id}@{}", a["since"].as_str().unwrap_or("")));
                (id, a["qq"].as_u64().unwrap_or(0), key, token)
            })
            .filter(|k| !scanned.lock().unwrap().contains(&k.2))
            .collect();
        let mut tasks = Vec::new();
        for chunk in waiting.chunks(waiting.len().div_ceil(8).max(1)) {
            let chunk = chunk.to_vec();
            let (api, base, scanned) = (api.to_string(), base.to_string(), scanned.clone());
            tasks.push(tokio::spawn(async move {
                for (id, qq, key, token) in chunk {
                    let token = match token {
                        Some(t) => t,
                        None => {
                            let Ok(r) = http()
                                .get(format!("{api}/api/accounts/{id}/qr"))
                                .send()
                                .await
                            else {
                                continue;
                            };
                            if r.status() != 200 {
                                continue;
                            }
                            let png = r.bytes().await.unwrap_or_default().to_vec();
                            let url = tokio::task::spawn_blocking(move || {
                                qqfleet::fleet::login::decode_qr(&png)
                            })
                            .await
                            .unwrap();
                            let Some(t) = url.as_deref().and_then(token_of) else {
                                continue;
                            };
                            t
                        }
                    };
                    let r = post(
                        &format!("{base}/sim/qr/scan"),
                        json!({"token": token, "qq": qq, "confirm": true}),
                    )
                    .await;
                    if r.status().is_success() {
                        scanned.lock().unwrap().insert(key);
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    Some(sorted[i.min(sorted.len() - 1)])
}

/// Injects `count` buddy messages at `rate` a second in total to random accounts and waits
/// for each echo in `/sim/sent`; returns the round trips in ms (sorted) and the lost count.
async fn echo_round_trips(base: &str, n: usize, rate: f64, count: usize) -> (Vec<f64>, usize) {
    let mut tasks = Vec::new();
    let every = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now();
    // One client with kept-alive connections: a new connection per poll of the sent log
    // ran the machine out of ephemeral ports (TIME_WAIT) within seconds.
    let client = http();
    for k in 0..count {
        tokio::time::sleep_until(start + every * k as u32).await;
        // Each message to another account while there are accounts left (the send limits
        // then pace nothing), in a scattered order.
        let qq = 300_000 + (spread(k, n) as u64);
        let base = base.to_string();
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let text = format!("bench echo {k}");
            let t = Instant::now();
            let r = client
                .post(format!("{base}/sim/inject"))
                .json(&json!({"qq": qq, "kind": "buddy", "text": text}))
                .send()
                .await
                .ok()?;
            if !r.status().is_success() {
                return None;
            }
            let end = Instant::now() + Duration::from_secs(10);
            while Instant::now() < end {
                let sent: Value = match client.get(format!("{base}/sim/sent?qq={qq}")).send().await
                {
                    Ok(r) => r.json().await.unwrap_or(Value::Null),
                    Err(_) => Value::Null,
                };
                if sent
                    .as_array()
                    .is_some_and(|a| a.iter().any(|e| e["text"] == text.as_str()))
                {
                    return Some(t.elapsed().as_secs_f64() * 1000.0);
                }
                // Fine-grained first, coarser for a reply that waits (a send limit).
                let waited = t.elapsed();
                let pause = if waited < Duration::from_millis(50) {
                    Duration::from_millis(1)
                } else if waited < Duration::from_millis(500) {
                    Duration::from_millis(10)
                } else {
                    Duration::from_millis(50)
                };
                tokio::time::sleep(pause).await;
            }
            None
        }));
    }
    let mut got = Vec::new();
    let mut lost = 0;
    for t in tasks {
        match t.await.ok().flatten() {
            Some(ms) => got.push(ms),
            None => lost += 1,
        }
    }
    got.sort_by(f64::total_cmp);
    (got, lost)
}

/// The k-th account of a scattered walk over all n (a stride coprime with n): every account
/// once before any twice.
fn spread(k: usize, n: usize) -> usize {
    let gcd = |mut a: usize, mut b: usize| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    let mut stride = (n * 618 / 1000).max(1);
    while gcd(stride, n) != 1 {
        stride += 1;
    }
    (k * stride) % n
}

/// Unix time in seconds (the clock the fleet's log lines are stamped with).
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `2026-11-30T13:52:53.123456Z` (the JSON log's timestamps, UTC) as unix seconds.
fn parse_utc(s: &str) -> Option<f64> {
    let (date, time) = s.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let (h, mi) = (
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
    );
    let sec = t.next()?.parse::<f64>().ok()?;
    // Days from the civil date (proleptic Gregorian), 1970-01-01 = 0.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + h * 3600.0 + mi * 60.0 + sec)
}

/// Reads the fleet's JSON log as it grows: the "message received" lines (logged as the
/// handler is handed the message, after its durable record) by text, with their instants.
struct LogTail {
    path: PathBuf,
    pos: u64,
    partial: Vec<u8>,
    /// The errors of "poll failed, retrying" lines read so far, by text.
    poll_errors: BTreeMap<String, usize>,
}

/// One "message received" line: its text, when it was logged (unix seconds), and its
/// `waited_us` in ms, the fleet's own share of the message's latency (poll answer →
/// handler; `None` from a fleet older than the field).
struct Received {
    text: String,
    at: f64,
    waited_ms: Option<f64>,
}

impl LogTail {
    fn new(path: &Path) -> LogTail {
        LogTail {
            path: path.to_path_buf(),
            pos: 0,
            partial: Vec::new(),
            poll_errors: BTreeMap::new(),
        }
    }

    /// Every "message received" line since the last call.
    fn received(&mut self) -> Vec<Received> {
        use std::io::{Read, Seek, SeekFrom};
        let mut out = Vec::new();
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return out;
        };
        if f.seek(SeekFrom::Start(self.pos)).is_err() {
            return out;
        }
        let mut buf = Vec::new();
        let Ok(got) = f.read_to_end(&mut buf) else {
            return out;
        };
        self.pos += got as u64;
        self.partial.extend_from_slice(&buf);
        let Some(last_nl) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return out;
        };
        let rest = self.partial.split_off(last_nl + 1);
        let lines = std::mem::replace(&mut self.partial, rest);
        for line in lines.split(|b| *b == b'\n') {
            if line.windows(11).any(|w| w == b"poll failed") {
                if let Ok(v) = serde_json::from_slice::<Value>(line) {
                    let e = v["fields"]["error"].as_str().unwrap_or("?").to_string();
                    *self.poll_errors.entry(e).or_default() += 1;
                }
                continue;
            }
            if !line.windows(16).any(|w| w == b"message received") {
                continue;
            }
            let Ok(v) = serde_json::from_slice::<Value>(line) else {
                continue;
            };
            let (Some(text), Some(at)) = (
                v["fields"]["text"].as_str(),
                v["timestamp"].as_str().and_then(parse_utc),
            ) else {
                continue;
            };
            out.push(Received {
                text: text.to_string(),
                at,
                waited_ms: v["fields"]["waited_us"]
                    .as_u64()
                    .map(|us| us as f64 / 1000.0),
            });
        }
        out
    }
}

/// Injects `count` buddy messages `lat K` at `rate` a second in total to accounts in a
/// scattered order, and times each from just before its inject request to the fleet's
/// "message received" log line (the handler's turn, after the durable record): the inject
/// request's own trip is counted in. Returns the latencies in ms (sorted), the lost count and
/// the fleet's own share of each (its "waited" from poll answer to handler, ms, sorted);
/// `show_slowest`: prints the ten slowest.
async fn handler_latency(
    base: &str,
    n: usize,
    tail: &mut LogTail,
    rate: f64,
    count: usize,
    show_slowest: bool,
) -> (Vec<f64>, usize, Vec<f64>) {
    let every = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now();
    let client = http();
    let mut tasks = Vec::new();
    for k in 0..count {
        tokio::time::sleep_until(start + every * k as u32).await;
        let qq = 300_000 + (spread(k, n) as u64);
        let (base, client) = (base.to_string(), client.clone());
        tasks.push(tokio::spawn(async move {
            let t = unix_now();
            let r = client
                .post(format!("{base}/sim/inject"))
                .json(&json!({"qq": qq, "kind": "buddy", "text": format!("lat {k}")}))
                .send()
                .await
                .ok()?;
            r.status().is_success().then_some((k, t))
        }));
    }
    let mut sent = std::collections::HashMap::new();
    for t in tasks {
        if let Some((k, at)) = t.await.ok().flatten() {
            sent.insert(format!("lat {k}"), at);
        }
    }
    // (latency ms, text, inject time, ms in the fleet): each message taken out of `sent`
    // when first seen.
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(15);
    while Instant::now() < end {
        for r in tail.received() {
            if let Some(t0) = sent.remove(&r.text) {
                got.push(((r.at - t0) * 1000.0, r.text, t0, r.waited_ms));
            }
        }
        if sent.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    got.sort_by(|a, b| a.0.total_cmp(&b.0));
    if show_slowest {
        // For a diagnosis: the slowest ten, with when they were injected (unix time).
        for (ms, text, t0, w) in got.iter().rev().take(10) {
            let w = w.unwrap_or(f64::NAN);
            println!("    slow: {ms:.2} ms (in the fleet {w:.2})  {text}  injected at {t0:.6}");
        }
    }
    // A fleet older than the `waited_us` field gives none: then the split is not reported.
    let mut waited: Vec<f64> = got.iter().filter_map(|g| g.3).collect();
    waited.sort_by(f64::total_cmp);
    let got: Vec<f64> = got.into_iter().map(|g| g.0).collect();
    let lost = count - got.len();
    (got, lost, waited)
}

/// Queues `total` buddy messages `tp K` across the n accounts (round robin) as fast as the
/// simulator takes them (`/sim/inject/batch`, or single requests from a simulator without
/// it), then waits until the fleet has handed every one to its log handler. Fleet-wide
/// msg/s from the first inject to the last "message received"; then every account's log
/// file is read back: each message must be there exactly once.
async fn throughput(
    base: &str,
    n: usize,
    tail: &mut LogTail,
    handled: &Path,
    total: usize,
) -> Value {
    let _ = tail.received();
    tail.poll_errors.clear();
    let tag = format!("tp{} ", unix_now() as u64 % 100_000);
    let client = http();
    let bodies: Vec<Value> = (0..total)
        .map(|k| json!({"qq": 300_000 + (k % n) as u64, "kind": "buddy", "text": format!("{tag}{k}")}))
        .collect();
    let t0 = unix_now();
    let mut accepted = 0usize;
    let mut batch_ok = true;
    // When each batch was answered (s after the first inject): a lull in the handled
    // messages while batches go in points at the injection, not the fleet.
    let mut batch_done: Vec<f64> = Vec::new();
    for chunk in bodies.chunks(2_000) {
        // A transport error (a kept-alive connection the simulator had just closed) is tried
        // again; only a simulator without the batch endpoint (404) gets single requests, which
        // take seconds, not the fraction of one the batches take.
        let (mut tries, mut done) = (0, false);
        while batch_ok && !done && tries < 3 {
            tries += 1;
            let r = client
                .post(format!("{base}/sim/inject/batch"))
                .json(&chunk)
                .send()
                .await;
            match r {
                Ok(r) if r.status().is_success() => {
                    let v: Value = r.json().await.unwrap_or(Value::Null);
                    accepted += v
                        .as_array()
                        .map(|a| a.iter().filter(|e| e["msg_id"].is_u64()).count())
                        .unwrap_or(0);
                    batch_done.push(((unix_now() - t0) * 1000.0).round() / 1000.0);
                    done = true;
                }
                Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => batch_ok = false,
                Ok(r) => println!("  /sim/inject/batch answered {}; again", r.status()),
                // It may have been applied: counted as accepted, so if it was not, the run
                // reports its messages lost rather than injecting them twice.
                Err(e) if e.is_timeout() => {
                    println!("  /sim/inject/batch timed out; counted as accepted");
                    accepted += chunk.len();
                    done = true;
                }
                Err(e) => println!("  /sim/inject/batch: {e}; again"),
            }
        }
        if done {
            continue;
        }
        batch_ok = false;
        // One request each, 32 at a time.
        let mut set = tokio::task::JoinSet::new();
        for body in chunk {
            let body = body.clone();
            if set.len() >= 32 {
                if let Some(Ok(true)) = set.join_next().await {
                    accepted += 1;
                }
            }
            let (client, base) = (client.clone(), base.to_string());
            set.spawn(async move {
                client
                    .post(format!("{base}/sim/inject"))
                    .json(&body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            });
        }
        while let Some(r) = set.join_next().await {
            if let Ok(true) = r {
                accepted += 1;
            }
        }
    }
    let queued_s = unix_now() - t0;
    let mut received = 0usize;
    let mut last = t0;
    let mut times: Vec<f64> = Vec::new();
    let end = Instant::now() + Duration::from_secs(120);
    while Instant::now() < end && received < accepted {
        for r in tail.received() {
            if r.text.starts_with(&tag) {
                received += 1;
                last = last.max(r.at);
                times.push(r.at - t0);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let the last handler writes land, then every log file is read back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The lines logged meanwhile: a poll retried at the very end is still named below.
    let _ = tail.received();
    let mut counts = vec![0u32; total];
    for e in std::fs::read_dir(handled).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if let Some(k) = v["text"]
                .as_str()
                .and_then(|t| t.strip_prefix(tag.as_str()))
                .and_then(|k| k.parse::<usize>().ok())
                .filter(|k| *k < total)
            {
                counts[k] += 1;
            }
        }
    }
    let lost = counts
        .iter()
        .filter(|c| **c == 0)
        .count()
        .saturating_sub(total - accepted);
    let twice = counts.iter().filter(|c| **c > 1).count();
    let secs = last - t0;
    // When the first half, 90 % and 99 % had been handled (s after the first inject): a run
    // whose last messages lag far behind the bulk is held up by a few accounts, not by load.
    times.sort_by(f64::total_cmp);
    let mut buckets = vec![0usize; (times.last().copied().unwrap_or(0.0) * 4.0) as usize + 1];
    for t in &times {
        buckets[(t.max(0.0) * 4.0) as usize] += 1;
    }
    println!("  handled per 0.25 s: {buckets:?}");
    println!("  batches of 2,000 queued by (s): {batch_done:?}");
    // Why polls were retried during the run (each "poll failed, retrying" line's error).
    let mut errors: Vec<(usize, String)> = std::mem::take(&mut tail.poll_errors)
        .into_iter()
        .map(|(e, k)| (k, e))
        .collect();
    errors.sort_by(|a, b| b.cmp(a));
    errors.truncate(5);
    if !errors.is_empty() {
        println!("  polls retried: {errors:?}");
    }
    let at = |p: f64| percentile(&times, p).map(|t| (t * 1000.0).round() / 1000.0);
    json!({
        "throughput_handled_per_quarter_s": buckets,
        "throughput_handled_by_s": format!("{:?} / {:?} / {:?}", at(0.5), at(0.9), at(0.99)),
        "throughput_messages": total,
        "throughput_accepted": accepted,
        "throughput_queued_s": queued_s,
        "throughput_s": secs,
        "throughput_msgs_per_s": (received as f64 / secs.max(1e-6)).round(),
        "throughput_lost": lost,
        "throughput_handled_twice": twice,
        "throughput_lost_or_twice": format!("{lost} / {twice}"),
        "throughput_poll_retry_errors": errors,
    })
}

/// `perf record` of process `pid` at `hz` samples a second with DWARF call graphs, into
/// `out`, for `secs` seconds (the returned child ends then).
fn perf_record(pid: u32, hz: u32, out: &Path, secs: u32) -> std::io::Result<std::process::Child> {
    Command::new("perf")
        .args([
            "record",
            "-F",
            &hz.to_string(),
            "--call-graph",
            "dwarf,16384",
            "-p",
        ])
        .arg(pid.to_string())
        .arg("-o")
        .arg(out)
        .args(["--", "sleep", &secs.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

/// The fleet's `/metrics` text; `None` if the scrape failed (30 s allowed: a busy fleet of
/// 10,000 accounts may take seconds).
async fn scrape(api: &str) -> Option<String> {
    let r = http()
        .get(format!("{api}/metrics"))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.text().await.ok()
}

/// One sample of a `/metrics` text, by its whole name and labels.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse::<f64>()
            .ok()
    })
}

/// The store's flush histograms and the polls that failed in transport, as `/metrics`
/// gave them at one instant; what happened during a run is the difference of two.
struct Flushes {
    count: f64,
    /// Durable writes the flushes covered.
    writes: f64,
    seconds: f64,
    /// Polls that failed in transport: a run that stalls on reconnects shows there.
    poll_transport: f64,
    /// Flushes that took at most 2 ms and at most 5 ms (the duration histogram's buckets).
    within_2ms: Option<f64>,
    within_5ms: Option<f64>,
}

/// [`Flushes`] from `/metrics`; `None` when three scrapes failed.
async fn flushes(api: &str) -> Option<Flushes> {
    for _ in 0..3 {
        let Some(text) = scrape(api).await else {
            continue;
        };
        let read = |name: &str| sample(&text, name);
        let b = "qqfleet_store_flush_duration_seconds_bucket";
        if let (Some(count), Some(writes), Some(seconds)) = (
            read("qqfleet_store_flush_writes_count"),
            read("qqfleet_store_flush_writes_sum"),
            read("qqfleet_store_flush_duration_seconds_sum"),
        ) {
            return Some(Flushes {
                count,
                writes,
                seconds,
                poll_transport: read("qqfleet_poll_duration_seconds_count{outcome=\"transport\"}")
                    .unwrap_or(0.0),
                within_2ms: read(&format!("{b}{{le=\"0.002\"}}")),
                within_5ms: read(&format!("{b}{{le=\"0.005\"}}")),
            });
        }
    }
    None
}

/// What the store's flushes did during a run (the difference of two [`flushes`]).
fn flush_share(tp: &mut Value, prefix: &str, before: Option<Flushes>, after: Option<Flushes>) {
    let (Some(before), Some(after)) = (before, after) else {
        tp[format!("{prefix}flush")] = json!("not read (/metrics did not answer)");
        return;
    };
    let flushes = after.count - before.count;
    let per = (after.writes - before.writes) / flushes.max(1.0);
    let ms = (after.seconds - before.seconds) * 1000.0 / flushes.max(1.0);
    tp[format!("{prefix}flushes")] = json!(flushes);
    tp[format!("{prefix}poll_transport_errors")] =
        json!(after.poll_transport - before.poll_transport);
    tp[format!("{prefix}flush")] = json!(format!("{flushes} / {per:.1} / {ms:.2}"));
}

async fn measure(bin: &str, n: usize, deadline: Duration) -> Value {
    println!("== {n} accounts ==");
    let dir = tempfile::tempdir().unwrap();
    // QQFLEET_BENCH_KEEP=1: the fleet's data and logs are kept for a diagnosis.
    let kept = std::env::var("QQFLEET_BENCH_KEEP").is_ok_and(|v| v == "1");
    if kept {
        println!("  kept: {}", dir.path().display());
    }
    let (sim, base) = start_sim(&sim_bin(bin));
    let sim_pid = sim.0.id();
    for i in 0..n {
        write_account(
            dir.path(),
            &format!("acc{i:05}"),
            &format!("qq = {}\n[supervision]\nqr_check_secs = 2\n", 300_000 + i),
        );
    }
    let accounts = dir.path().join("accounts");
    let (mut fleet, api) = start_fleet(bin, dir.path(), &accounts, "data", &base);
    let pid = fleet.0.id();
    let (t_online, states) = cold_start(&api, &base, n, deadline).await;
    let stats = get(&format!("{base}/sim/stats")).await;
    let qr_issued = stats["requests"]["ptqrshow"].as_u64().unwrap_or(0);
    let mut r = json!({
        "accounts": n,
        "cold_start_s": t_online,
        "states_after_cold_start": states,
        "qr_codes_issued": qr_issued,
    });
    println!("  cold start: {t_online:?} s, {states:?}, {qr_issued} QR codes issued");
    if t_online.is_none() {
        r["online"] = json!(states.get("online").copied().unwrap_or(0));
        r["deadline_s"] = json!(deadline.as_secs());
        return r;
    }
    r["online"] = json!(n);
    // Idle: every poll parked, and what the cold start left behind gone. The logins' pooled
    // connections close 20 s after their last use (`protocol::pool::POOL_IDLE_TIMEOUT`) and
    // the heap they used goes back to the system at the next trim (every 30 s,
    // `memtrim::EVERY`): so 60 s after the last account came online (QQFLEET_BENCH_IDLE_WAIT_S
    // to change it). Measured 20 s after, 1,000 accounts showed 116 KiB each; 55 s after,
    // 92.6 KiB, the difference being that leftover of the start.
    let idle_wait = std::env::var("QQFLEET_BENCH_IDLE_WAIT_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    tokio::time::sleep(Duration::from_secs(idle_wait)).await;
    r["idle_wait_s"] = json!(idle_wait);
    let rss = rss_kib(pid);
    let rss_anon = rss_anon_kib(pid);
    let sim_rss = rss_kib(sim_pid);
    let (c0, s0) = (cpu_ticks(pid), cpu_ticks(sim_pid));
    // One whole hold of the simulator's polls (60 s), so that every parked poll is answered
    // and parked again exactly once inside the window. The polls of a cold start are answered
    // in waves (each account's a minute after it came online), and a 30 s window saw a wave
    // or missed it: the 30 s windows of one idle 1,000-account fleet, second by second, gave
    // 0.43-1.0 % of a core.
    let window = std::env::var("QQFLEET_BENCH_IDLE_WINDOW_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60.0);
    tokio::time::sleep(Duration::from_secs_f64(window)).await;
    r["idle_window_s"] = json!(window);
    let cpu = (cpu_ticks(pid) - c0) as f64 / window;
    let sim_cpu = (cpu_ticks(sim_pid) - s0) as f64 / window;
    let fleet_fds = fds(pid);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("  idle: RSS {rss} KiB, CPU {cpu:.2} %, fds {fleet_fds}; sim RSS {sim_rss} KiB, CPU {sim_cpu:.2} %; load {}", load.trim());
    // /metrics.
    let t = Instant::now();
    let body = http()
        .get(format!("{api}/metrics"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let scrape_ms = t.elapsed().as_secs_f64() * 1000.0;
    // The heap as the last trim saw it: what is live (allocated and not freed) against what
    // the allocator keeps beyond that; RSS beyond the live bytes is the allocator's.
    let text = String::from_utf8_lossy(&body);
    let heap_live = sample(&text, "qqfleet_heap_in_use_bytes").map(|b| b / 1024.0);
    let heap_free = sample(&text, "qqfleet_heap_free_bytes").map(|b| b / 1024.0);
    println!("  heap: {heap_live:?} KiB live, {heap_free:?} KiB kept free by the allocator");
    // Echo round trips: 100 messages a second in total, 10 s (at most one per account).
    let count = 1000.min(n.max(100));
    let (rtt, lost) = echo_round_trips(&base, n, 100.0, count).await;
    println!(
        "  echo: p50 {:?} ms, p99 {:?} ms, {} lost; /metrics {} bytes in {scrape_ms:.1} ms",
        percentile(&rtt, 0.5),
        percentile(&rtt, 0.99),
        lost,
        body.len()
    );
    // Profiles (QQFLEET_BENCH_PERF=DIR): the idle fleet, then the message path under the same
    // echo load, each outside the measured windows (perf costs CPU itself).
    if let Ok(dir) = std::env::var("QQFLEET_BENCH_PERF") {
        let dir = PathBuf::from(dir);
        let _ = std::fs::create_dir_all(&dir);
        let rec = |name: &str, secs: u32| {
            perf_record(pid, 199, &dir.join(format!("{name}-{n}.data")), secs)
        };
        if let Ok(mut p) = rec("idle", 20) {
            let _ = p.wait();
        }
        if let Ok(mut p) = rec("message", 12) {
            let _ = echo_round_trips(&base, n, 100.0, count).await;
            let _ = p.wait();
        }
        println!("  profiles in {}", dir.display());
    }
    // Restart without a scan.
    let t_stop = Instant::now();
    sigterm(&fleet.0);
    let st = wait_exit(&mut fleet.0, Duration::from_secs(30));
    let stop_s = t_stop.elapsed().as_secs_f64();
    // The restarted fleet runs the `log` handler (the message path measured below): the
    // handler changes nothing of the login, and the files are rewritten while no fleet runs.
    for i in 0..n {
        write_account(
            dir.path(),
            &format!("acc{i:05}"),
            &format!(
                "qq = {}\nhandler = \"log\"\n[supervision]\nqr_check_secs = 2\n",
                300_000 + i
            ),
        );
    }
    let t1 = Instant::now();
    let (fleet2, api2) = start_fleet_logged(bin, dir.path(), &accounts, "data", &base, true);
    let mut resume_s = None;
    while t1.elapsed() < Duration::from_secs(300) {
        let s = count_states(&api2).await;
        if s.get("online") == Some(&n) {
            resume_s = Some(t1.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stats2 = get(&format!("{base}/sim/stats")).await;
    let qr_after_restart = stats2["requests"]["ptqrshow"].as_u64().unwrap_or(0) - qr_issued;
    // The message path, on the restarted fleet (log handler): inject → handler at 100
    // messages a second in total, then many messages queued at once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fleet_log = dir.path().join("data.stderr");
    let mut tail = LogTail::new(&fleet_log);
    // 30 s of messages (QQFLEET_BENCH_LAT_MSGS, 3,000): the p99 is then the 30th slowest,
    // so one stall of this shared machine (a few ms of steal, a neighbour's disk) that
    // delays ten messages in a row does not decide it alone, as it did from 1,000.
    let lat_count: usize = std::env::var("QQFLEET_BENCH_LAT_MSGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let flushes_before = flushes(&api2).await;
    let (lat, lat_lost, waited) =
        handler_latency(&base, n, &mut tail, 100.0, lat_count, kept).await;
    let flushes_after = flushes(&api2).await;
    println!(
        "  inject → handler: p50 {:?} ms, p99 {:?} ms, p99.9 {:?} ms, max {:?} ms, {lat_lost} lost",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 0.999),
        lat.last(),
    );
    if !waited.is_empty() {
        println!(
            "  of which in the fleet (poll answer → handler): p50 {:?} ms, p99 {:?} ms, max {:?} ms",
            percentile(&waited, 0.5),
            percentile(&waited, 0.99),
            waited.last(),
        );
    }
    // The disk's share: how many of the phase's flushes took over 2 and over 5 ms.
    // (flushes, over 2 ms, over 5 ms) so far; None without the duration buckets.
    let slow = |f: &Flushes| Some((f.count, f.count - f.within_2ms?, f.count - f.within_5ms?));
    let lat_flushes = match (
        flushes_before.as_ref().and_then(slow),
        flushes_after.as_ref().and_then(slow),
    ) {
        (Some(b), Some(a)) => {
            let (all, over2, over5) = (a.0 - b.0, a.1 - b.1, a.2 - b.2);
            println!("  flushes meanwhile: {all}, {over2} over 2 ms, {over5} over 5 ms");
            json!(format!("{all} / {over2} / {over5}"))
        }
        _ => Value::Null,
    };
    let total: usize = std::env::var("QQFLEET_BENCH_MSGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
        .min(n * 500);
    let handled = dir.path().join("data/handled");
    let fleet_pid = fleet2.0.id();
    // Where the CPU went during a run: the fleet's and the simulator's share (of one core).
    let cpu_share = |tp: &mut Value, prefix: &str, ticks: (u64, u64), t: Instant| {
        let secs = t.elapsed().as_secs_f64().max(1e-3);
        let fleet = ((cpu_ticks(fleet_pid) - ticks.0) as f64 / secs).round();
        let sim = ((cpu_ticks(sim_pid) - ticks.1) as f64 / secs).round();
        tp[format!("{prefix}fleet_cpu_pct")] = json!(fleet);
        tp[format!("{prefix}sim_cpu_pct")] = json!(sim);
        tp[format!("{prefix}cpu")] = json!(format!("{fleet} / {sim}"));
    };
    let flushed = flushes(&api2).await;
    let (ticks, t) = ((cpu_ticks(fleet_pid), cpu_ticks(sim_pid)), Instant::now());
    let mut tp = throughput(&base, n, &mut tail, &handled, total).await;
    cpu_share(&mut tp, "throughput_", ticks, t);
    flush_share(&mut tp, "throughput_", flushed, flushes(&api2).await);
    println!("  throughput: {tp}");
    // The same with the simulator answering up to `batch` queued events per poll, as the
    // real service did when events had queued up (docs/SIMULATOR.md, `poll_batch`).
    let batch: usize = std::env::var("QQFLEET_BENCH_POLL_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let set = http()
        .post(format!("{base}/sim/poll-batch"))
        .json(&json!({"poll_batch": batch}))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    if set {
        let flushed = flushes(&api2).await;
        let (ticks, t) = ((cpu_ticks(fleet_pid), cpu_ticks(sim_pid)), Instant::now());
        let mut b = throughput(&base, n, &mut tail, &handled, total).await;
        cpu_share(&mut b, "throughput_", ticks, t);
        flush_share(&mut b, "throughput_", flushed, flushes(&api2).await);
        println!("  throughput, up to {batch} events per poll: {b}");
        for (k, v) in b.as_object().into_iter().flatten() {
            let k = k.replacen("throughput_", "batched_throughput_", 1);
            tp[k] = v.clone();
        }
        // Left at `batch`: the message path profile below (QQFLEET_BENCH_PERF) is of this
        // path, the fleet's own work per message, not of one HTTP round trip per message.
        tp["batched_poll_batch"] = json!(batch);
    }
    if let Ok(pdir) = std::env::var("QQFLEET_BENCH_PERF") {
        // The message path under the throughput load, outside the measured run: the fleet,
        // and the simulator serving it (`sim-messages-N.data`), which must not be the limit.
        let out = |name: String| PathBuf::from(&pdir).join(name);
        let fleet_rec = perf_record(fleet2.0.id(), 499, &out(format!("messages-{n}.data")), 8);
        let sim_rec = perf_record(sim_pid, 499, &out(format!("sim-messages-{n}.data")), 8);
        if fleet_rec.is_ok() || sim_rec.is_ok() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let _ = throughput(&base, n, &mut tail, &dir.path().join("data/handled"), total).await;
        }
        for mut p in [fleet_rec, sim_rec].into_iter().flatten() {
            let _ = p.wait();
        }
    }
    drop(fleet2);
    println!("  SIGTERM exit {st:?} in {stop_s:.2} s; all online again in {resume_s:?} s, {qr_after_restart} new QR codes");
    // An empty fleet of the same binary.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (base_fleet, _) = start_fleet(bin, dir.path(), &empty, "data-empty", &base);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss0 = rss_kib(base_fleet.0.id());
    let anon0 = rss_anon_kib(base_fleet.0.id());
    drop(base_fleet);
    drop(sim);
    let per_account = rss.saturating_sub(rss0) as f64 / n as f64;
    // The same without file pages: the program's code that the accounts' work paged in (the
    // login, poll and send paths an empty fleet never ran) is a one-off of a few MB, shared
    // and reclaimable, which the total spreads over few accounts at small sizes.
    let anon_per_account = rss_anon.saturating_sub(anon0) as f64 / n as f64;
    println!(
        "  memory: {per_account:.1} KiB per account ({rss} KiB against {rss0} KiB empty); \
anonymous only: {anon_per_account:.1} KiB ({rss_anon} against {anon0})"
    );
    r["rss_kib"] = json!(rss);
    r["empty_rss_kib"] = json!(rss0);
    r["kib_per_account"] = json!(per_account);
    r["rss_anon_kib"] = json!(rss_anon);
    r["empty_rss_anon_kib"] = json!(anon0);
    r["anon_kib_per_account"] = json!(anon_per_account);
    r["idle_cpu_pct"] = json!(cpu);
    r["idle_cpu_pct_per_1000"] = json!(cpu * 1000.0 / n as f64);
    r["open_files"] = json!(fleet_fds);
    r["sim_rss_kib"] = json!(sim_rss);
    r["sim_idle_cpu_pct"] = json!(sim_cpu);
    r["load_during_idle"] = json!(load.trim());
    r["metrics_scrape_ms"] = json!(scrape_ms);
    r["heap_live_kib"] = json!(heap_live);
    r["heap_live_kib_per_account"] = json!(heap_live.map(|k| k / n as f64));
    r["heap_free_kib"] = json!(heap_free);
    r["metrics_bytes"] = json!(body.len());
    r["echo_messages"] = json!(count);
    r["echo_rate_per_s"] = json!(100);
    r["echo_rtt_p50_ms"] = json!(percentile(&rtt, 0.5));
    r["echo_rtt_p99_ms"] = json!(percentile(&rtt, 0.99));
    r["echo_lost"] = json!(lost);
    r["handler_messages"] = json!(lat_count);
    r["handler_latency_p999_ms"] = json!(percentile(&lat, 0.999));
    r["handler_latency_max_ms"] = json!(lat.last());
    r["handler_latency_flushes"] = lat_flushes;
    r["handler_rate_per_s"] = json!(100);
    r["handler_latency_p50_ms"] = json!(percentile(&lat, 0.5));
    r["handler_latency_p99_ms"] = json!(percentile(&lat, 0.99));
    r["handler_wait_p50_ms"] = json!(percentile(&waited, 0.5));
    r["handler_wait_p99_ms"] = json!(percentile(&waited, 0.99));
    r["handler_latency_lost"] = json!(lat_lost);
    for (k, v) in tp.as_object().into_iter().flatten() {
        r[k.as_str()] = v.clone();
    }
    r["sigterm_exit_s"] = json!(stop_s);
    r["sigterm_exit_ok"] = json!(st.is_some_and(|s| s.success()));
    r["restart_online_s"] = json!(resume_s);
    r["qr_codes_after_restart"] = json!(qr_after_restart);
    if kept {
        std::mem::forget(dir);
    }
    r
}

/// pandolia/qqbot (fidelity venv) logged in against its own simulator: its RSS.
async fn measure_qqbot(bin: &str) -> Value {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fidelity-venv");
    let python = venv.join("bin/python");
    if !venv.join(".installed").exists() {
        return json!({"error": "no fidelity venv: run `make fidelity-deps`"});
    }
    let (sim, base) = start_sim(bin);
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let bench = dir.path().join("qqbot-bench");
    std::fs::create_dir_all(&bench).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fidelity/run_qqbot.py");
    let child = Command::new(&python)
        .arg(&script)
        .arg(&base)
        .arg(&bench)
        .env_clear()
        .env("PATH", python.parent().unwrap())
        .env("HOME", &home)
        .env("LANG", "C.UTF-8")
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = Kill(child);
    let qq = 900_001u64;
    let end = Instant::now() + Duration::from_secs(60);
    let mut scanned = false;
    let mut online = false;
    while Instant::now() < end {
        if !scanned {
            let qrs = get(&format!("{base}/sim/qr")).await;
            if let Some(sig) = qrs.as_array().and_then(|a| {
                a.iter()
                    .find(|q| q["state"] == "waiting")
                    .and_then(|q| q["qrsig"].as_str().map(str::to_string))
            }) {
                scanned = post(
                    &format!("{base}/sim/qr/scan"),
                    json!({"qrsig": sig, "qq": qq, "confirm": true}),
                )
                .await
                .status()
                .is_success();
            }
        } else {
            let a = get(&format!("{base}/sim/accounts/{qq}")).await;
            if a["online"] == true {
                online = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if !online {
        return json!({"error": "qqbot did not log in within 60 s"});
    }
    // Idle with its poll parked, like the fleet.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let pid = child.0.id();
    let rss = rss_kib(pid) + children_rss(pid);
    drop(child);
    drop(sim);
    println!("qqbot: {rss} KiB for one account");
    json!({"client": "pandolia/qqbot 2.3.11 (fidelity venv)", "accounts": 1, "rss_kib": rss})
}

/// RSS of the direct children of `pid` (qqbot may fork helpers).
fn children_rss(pid: u32) -> u64 {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut sum = 0;
    for e in rd.flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u32>().ok());
        if ppid == Some(pid) {
            sum += rss_kib(p);
        }
    }
    sum
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let nofile = qqfleet::fdlimit::current()
        .map(|l| format!("{}/{}", l.soft, l.hard))
        .unwrap_or_default();
    json!({"cpu": cpu, "cores": cores, "memory": mem, "kernel": kernel.trim(), "nofile": nofile})
}

async fn run() {
    let sizes: Vec<usize> = std::env::var("QQFLEET_SCALE_SIZES")
        .or_else(|_| std::env::var("QQFLEET_SCALE_N"))
        .unwrap_or_else(|_| "100,1000,5000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let bin =
        std::env::var("QQFLEET_SCALE_BIN").unwrap_or_else(|_| "target/release/qqfleet".to_string());
    let deadline = Duration::from_secs(
        std::env::var("QQFLEET_SCALE_DEADLINE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(600),
    );
    let label = std::env::var("QQFLEET_BENCH_LABEL").unwrap_or_default();
    let out = PathBuf::from(std::env::var("QQFLEET_BENCH_OUT").unwrap_or("target/bench".into()));
    std::fs::create_dir_all(&out).unwrap();
    if let Ok(path) = std::env::var("QQFLEET_BENCH_RENDER") {
        // A recorded run written out again (figures derived from the runs are recomputed,
        // so a report from before a new derived figure gets it): no fleet is started.
        let mut report: Value = match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(r) => r,
            Err(e) => {
                eprintln!("QQFLEET_BENCH_RENDER={path}: {e}");
                std::process::exit(2);
            }
        };
        if let Some(runs) = report["runs"].as_array_mut() {
            let growth = memory_growth(runs);
            report["memory_growth"] = growth;
        }
        write_outputs(&out, &label, &report);
        return;
    }
    let _ = qqfleet::fdlimit::raise();
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut runs = Vec::new();
    for &n in &sizes {
        runs.push(measure(&bin, n, deadline).await);
    }
    let growth = memory_growth(&mut runs);
    let qqbot = if std::env::var("QQFLEET_BENCH_QQBOT").as_deref() == Ok("0") {
        json!({"error": "skipped (QQFLEET_BENCH_QQBOT=0)"})
    } else {
        measure_qqbot(&bin).await
    };
    let report = json!({
        "label": label,
        "started_unix": started,
        "machine": machine(),
        "binary": bin,
        "command": format!(
            "make bench BENCH_SIZES={} (QQFLEET_SCALE_BIN={bin} target/release/examples/fleet_scale)",
            sizes.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(",")
        ),
        "runs": runs,
        "memory_growth": growth,
        "qqbot": qqbot,
    });
    write_outputs(&out, &label, &report);
}

/// Writes the report, its plots and (unless it is the "before" run) `docs/PERFORMANCE.md`.
fn write_outputs(out: &Path, label: &str, report: &Value) {
    let name = if label.is_empty() {
        "report.json".to_string()
    } else {
        format!("report-{label}.json")
    };
    std::fs::write(out.join(&name), serde_json::to_vec_pretty(report).unwrap()).unwrap();
    println!("wrote {}", out.join(&name).display());
    let before: Option<Value> = std::fs::read(out.join("report-before.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(|_| label != "before");
    plots(out, report, before.as_ref());
    let doc = std::env::var("QQFLEET_BENCH_DOC").unwrap_or("docs/PERFORMANCE.md".into());
    if !doc.is_empty() && label != "before" {
        // Notes written by people below the marker survive a new run.
        let notes = std::fs::read_to_string(&doc)
            .ok()
            .and_then(|d| d.find(NOTES).map(|i| d[i..].to_string()))
            .unwrap_or_else(|| format!("{NOTES}\n"));
        let text = format!("{}\n{notes}", markdown(report, before.as_ref()));
        std::fs::write(&doc, text).unwrap();
        println!("wrote {doc}");
    }
}

/// How the fleet's memory grows with N, from the runs' idle RSS: each run after the first
/// gets `kib_per_added_account` (its RSS minus the previous size's, over the accounts added).
/// The answer holds the range of those slopes and the one-time part: the smallest size's
/// RSS above its empty fleet, less its accounts at the first slope.
///
/// Why: "fleet RSS minus an empty fleet, / N" spreads the costs a fleet pays once it runs any
/// account at all (program code paged in, the store's log buffer, the allocator's pages
/// that the start's temporaries left partly used) over N, so it falls with N even when
/// every added account costs the same. The slope is what an operator adding accounts pays.
/// Each size is its own fleet process, so a slope carries the noise of two runs.
fn memory_growth(runs: &mut [Value]) -> Value {
    let mut slopes: Vec<f64> = Vec::new();
    let mut first: Option<(f64, f64, f64)> = None;
    let mut prev: Option<(f64, f64)> = None;
    for r in runs.iter_mut() {
        let (Some(n), Some(rss), Some(empty)) = (
            r["online"].as_f64().filter(|&n| n > 0.0),
            r["rss_kib"].as_f64(),
            r["empty_rss_kib"].as_f64(),
        ) else {
            continue;
        };
        if let Some((pn, prss)) = prev.filter(|&(pn, _)| n > pn) {
            let slope = (rss - prss) / (n - pn);
            r["kib_per_added_account"] = json!(slope);
            slopes.push(slope);
        }
        prev = Some((n, rss));
        first.get_or_insert((n, rss, empty));
    }
    let (Some(&first_slope), Some((n1, rss1, empty1))) = (slopes.first(), first) else {
        return Value::Null;
    };
    let min = slopes.iter().copied().fold(f64::INFINITY, f64::min);
    let max = slopes.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    json!({
        "kib_per_added_account_min": min,
        "kib_per_added_account_max": max,
        "one_time_kib": rss1 - empty1 - n1 * first_slope,
        "one_time_at": n1,
        "first_slope": first_slope,
    })
}

/// Everything after this line of docs/PERFORMANCE.md is kept by the next run.
const NOTES: &str = "<!-- notes: kept by make bench -->";

fn series(report: &Value, key: &str) -> Vec<(f64, f64)> {
    report["runs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| Some((r["accounts"].as_f64()?, r[key].as_f64()?)))
        .collect()
}

fn plots(out: &Path, report: &Value, before: Option<&Value>) {
    for (file, title, y, key) in [
        (
            "memory_per_account.png",
            "resident memory per idle account",
            "KiB per account",
            "kib_per_account",
        ),
        (
            "idle_cpu.png",
            "idle CPU, every poll parked",
            "% of one core",
            "idle_cpu_pct",
        ),
    ] {
        let mut s: Vec<(&str, Vec<(f64, f64)>)> = vec![("qqfleet", series(report, key))];
        if let Some(b) = before {
            s.push(("before", series(b, key)));
        }
        if key == "kib_per_account" {
            s.push(("per added account", series(report, "kib_per_added_account")));
        }
        if let Err(e) = plot::line_plot(&out.join(file), title, "accounts", y, &s) {
            eprintln!("plot {file}: {e}");
        }
    }
}

fn cell(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::Null => "-".into(),
        Value::Number(x) => {
            let f = x.as_f64().unwrap_or(0.0);
            if x.is_u64() || x.is_i64() {
                format!("{}", x)
            } else if f >= 100.0 {
                format!("{f:.0}")
            } else {
                format!("{f:.2}")
            }
        }
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn markdown(report: &Value, before: Option<&Value>) -> String {
    let mut s = String::new();
    let first_run = report["runs"].as_array().and_then(|r| r.first());
    let idle_wait = first_run
        .and_then(|r| r["idle_wait_s"].as_u64())
        .unwrap_or(60);
    let idle_window = first_run
        .and_then(|r| r["idle_window_s"].as_f64())
        .unwrap_or(60.0);
    s.push_str(&format!("# Performance\n\nWritten by `make bench` (`examples/fleet_scale.rs`): release build, `qqfleet run` and `qqfleet sim` in separate processes on 127.0.0.1, the simulator holding each poll 60 s as the real service. Figures of one run each; CPU figures are sensitive to whatever else the machine runs (the load average during the idle window is in each table). The idle figures are taken from {idle_wait} s after the last account came online, when the start's pooled connections have closed and the heap has been trimmed; idle CPU over the {idle_window} s that follow (one whole hold: every parked poll answered and parked again once).\n\n"));
    let m = &report["machine"];
    s.push_str(&format!(
        "Machine: {} ({} cores), {}, Linux {}, open files {}.\n\nCommand: `{}`\n\n",
        m["cpu"].as_str().unwrap_or(""),
        m["cores"],
        m["memory"].as_str().unwrap_or("").replace("  ", ""),
        m["kernel"].as_str().unwrap_or(""),
        m["nofile"].as_str().unwrap_or(""),
        report["command"].as_str().unwrap_or("")
    ));
    let rows: [(&str, &str, &str); 44] = [
        ("accounts online", "online", "N"),
        (
            "cold start to all online, every QR scanned at once (s)",
            "cold_start_s",
            "",
        ),
        (
            "QR codes issued during the cold start",
            "qr_codes_issued",
            "N",
        ),
        ("fleet RSS, idle, all online (KiB)", "rss_kib", ""),
        ("empty fleet RSS (KiB)", "empty_rss_kib", ""),
        (
            "resident memory per idle account (KiB)",
            "kib_per_account",
            "≤ 100",
        ),
        (
            "the same, anonymous memory only (KiB; without the program's code pages)",
            "anon_kib_per_account",
            "",
        ),
        (
            "memory per added account (KiB; RSS minus the previous size's, / the accounts added)",
            "kib_per_added_account",
            "",
        ),
        (
            "live heap per account (KiB; the whole fleet's live bytes / N)",
            "heap_live_kib_per_account",
            "",
        ),
        ("idle CPU (% of one core)", "idle_cpu_pct", ""),
        (
            "idle CPU per 1,000 accounts (% of one core)",
            "idle_cpu_pct_per_1000",
            "< 1",
        ),
        ("open files", "open_files", ""),
        ("simulator RSS (KiB)", "sim_rss_kib", ""),
        ("simulator idle CPU (% of one core)", "sim_idle_cpu_pct", ""),
        (
            "echo round trip p50 (ms), 100 msg/s in total",
            "echo_rtt_p50_ms",
            "",
        ),
        ("echo round trip p99 (ms)", "echo_rtt_p99_ms", ""),
        ("echo messages lost (10 s window)", "echo_lost", "0"),
        (
            "inject → handler p50 (ms), log handler, 100 msg/s in total",
            "handler_latency_p50_ms",
            "",
        ),
        ("inject → handler p99 (ms)", "handler_latency_p99_ms", "< 5"),
        ("inject → handler p99.9 (ms)", "handler_latency_p999_ms", ""),
        (
            "of which in the fleet, poll answer → handler p50 (ms)",
            "handler_wait_p50_ms",
            "",
        ),
        (
            "of which in the fleet, poll answer → handler p99 (ms)",
            "handler_wait_p99_ms",
            "",
        ),
        (
            "inject → handler slowest (ms)",
            "handler_latency_max_ms",
            "",
        ),
        (
            "inject → handler messages (30 s at 100 msg/s)",
            "handler_messages",
            "",
        ),
        (
            "the store's flushes meanwhile / over 2 ms / over 5 ms",
            "handler_latency_flushes",
            "",
        ),
        (
            "inject → handler messages lost",
            "handler_latency_lost",
            "0",
        ),
        (
            "received, recorded and handled (log handler), fleet-wide (msg/s)",
            "throughput_msgs_per_s",
            "≥ 5000",
        ),
        (
            "messages of the throughput run (queued at once)",
            "throughput_messages",
            "",
        ),
        (
            "throughput run: lost / handled twice",
            "throughput_lost_or_twice",
            "0 / 0",
        ),
        (
            "throughput run: fleet / simulator CPU (% of one core)",
            "throughput_cpu",
            "",
        ),
        (
            "throughput run: half / 90 % / 99 % handled after (s)",
            "throughput_handled_by_s",
            "",
        ),
        (
            "throughput run: store flushes / writes per flush / mean flush (ms)",
            "throughput_flush",
            "",
        ),
        (
            "the same, the simulator answering up to `poll_batch` queued events per poll",
            "batched_poll_batch",
            "",
        ),
        (
            "received, recorded and handled, batched answers (msg/s)",
            "batched_throughput_msgs_per_s",
            "≥ 5000",
        ),
        (
            "batched run: lost / handled twice",
            "batched_throughput_lost_or_twice",
            "0 / 0",
        ),
        (
            "batched run: fleet / simulator CPU (% of one core)",
            "batched_throughput_cpu",
            "",
        ),
        (
            "batched run: half / 90 % / 99 % handled after (s)",
            "batched_throughput_handled_by_s",
            "",
        ),
        (
            "batched run: store flushes / writes per flush / mean flush (ms)",
            "batched_throughput_flush",
            "",
        ),
        ("`/metrics` scrape (ms)", "metrics_scrape_ms", "< 1000"),
        ("`/metrics` size (bytes)", "metrics_bytes", "< 20 MB"),
        ("SIGTERM to exit (s)", "sigterm_exit_s", ""),
        (
            "restart to all online, no scan (s)",
            "restart_online_s",
            "< 30",
        ),
        (
            "QR codes asked for after the restart",
            "qr_codes_after_restart",
            "0",
        ),
        (
            "load average during the idle window",
            "load_during_idle",
            "",
        ),
    ];
    for r in report["runs"].as_array().into_iter().flatten() {
        let n = r["accounts"].as_u64().unwrap_or(0);
        let b = before.and_then(|b| {
            b["runs"]
                .as_array()?
                .iter()
                .find(|x| x["accounts"].as_u64() == Some(n))
                .cloned()
        });
        s.push_str(&format!("## {n} accounts\n\n"));
        if b.is_some() {
            s.push_str("| figure | before | now | goal |\n|---|---|---|---|\n");
        } else {
            s.push_str("| figure | now | goal |\n|---|---|---|\n");
        }
        for (name, key, goal) in rows {
            let goal = if goal == "N" {
                n.to_string()
            } else {
                goal.to_string()
            };
            match &b {
                Some(b) => s.push_str(&format!(
                    "| {name} | {} | {} | {goal} |\n",
                    cell(b, key),
                    cell(r, key)
                )),
                None => s.push_str(&format!("| {name} | {} | {goal} |\n", cell(r, key))),
            }
        }
        s.push('\n');
    }
    let g = &report["memory_growth"];
    if let (Some(min), Some(max), Some(once), Some(n1), Some(first)) = (
        g["kib_per_added_account_min"].as_f64(),
        g["kib_per_added_account_max"].as_f64(),
        g["one_time_kib"].as_f64(),
        g["one_time_at"].as_f64(),
        g["first_slope"].as_f64(),
    ) {
        s.push_str("## Memory as the fleet grows\n\n");
        s.push_str("| accounts | fleet RSS, idle (KiB) | per account: RSS minus an empty fleet, / N (KiB) | per added account: RSS minus the previous size's, / the accounts added (KiB) |\n|---|---|---|---|\n");
        for r in report["runs"].as_array().into_iter().flatten() {
            s.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                cell(r, "online"),
                cell(r, "rss_kib"),
                cell(r, "kib_per_account"),
                cell(r, "kib_per_added_account")
            ));
        }
        let cost = if max - min < 0.05 {
            format!("{min:.1} KiB")
        } else {
            format!(
                "{min:.1} to {max:.1} KiB ({:.2}× between the extremes)",
                max / min
            )
        };
        s.push_str(&format!(
            "\nEach added account costs {cost}. At {n1:.0} accounts the fleet holds {:.1} MB more than the empty fleet plus {n1:.0} accounts at {first:.1} KiB: a part paid once a fleet has run any account (what it holds: the notes below), which is why the per-account figure above is higher at small sizes.\n\n",
            once / 1024.0
        ));
    }
    let q = &report["qqbot"];
    s.push_str("## One WebQQ client of the period\n\n");
    if let Some(rss) = q["rss_kib"].as_u64() {
        let best = report["runs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["kib_per_account"].as_f64())
            .fold(f64::NAN, f64::min);
        s.push_str(&format!(
            "{}, logged in against the same simulator, idle: {rss} KiB for its one account. \
qqfleet at its largest size above: {best:.1} KiB per account, **{:.0}× less**.\n\n",
            q["client"].as_str().unwrap_or(""),
            rss as f64 / best
        ));
    } else {
        s.push_str(&format!("Not measured: {}\n\n", q["error"]));
    }
    s.push_str("## Plots\n\n`target/bench/memory_per_account.png` and `target/bench/idle_cpu.png` (copied to `docs/perf/` with the report).\n");
    s
}
