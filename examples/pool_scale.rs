//! Memory and open files of N idle online accounts for two `qqfleet` binaries (before and
//! after a change), without paying a cold start per binary: one `qqfleet sim` (60 s holds)
//! in its own process; the accounts are logged in once with a QR scan (by the first binary,
//! the phone played here), then each binary in turn resumes the same saved sessions without a
//! scan, waits until all N are online, and is measured while every poll is parked (30, 60,
//! 100 and 130 s later; the figure is the last): resident memory minus an empty fleet of the
//! same binary, / N, and `/proc/PID/fd`.
//!
//! `QQFLEET_POOL_BINS=before,after` (paths), `QQFLEET_POOL_N` (default 1000),
//! `QQFLEET_POOL_DEADLINE` seconds for the cold start (default 900). Loopback only; every
//! wait is bounded; children are killed at the end.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[path = "../tests/fleet_common/mod.rs"]
mod fleet_common;
#[path = "support/procs.rs"]
mod procs;
use fleet_common::{http, post, sigterm, token_file, wait_exit, write_account};
use procs::{fds, rss_kib, start_sim, Kill};

fn start_fleet(bin: &str, dir: &Path, accounts: &Path, data: &str, base: &str) -> (Kill, String) {
    let mut child = Command::new(bin)
        .args(["run", "--accounts"])
        .arg(accounts)
        .arg("--data")
        .arg(dir.join(data))
        .args(["--listen", "127.0.0.1:0", "--sim-url", base])
        .arg("--admin-token-file")
        .arg(token_file(dir))
        .args(["--max-logins", "1000", "--qr-per-second", "100"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut api = String::new();
    for l in lines.by_ref().map_while(Result::ok) {
        if let Some(rest) = l.strip_prefix("admin API: ") {
            api = rest.trim_end_matches("/api/accounts").to_string();
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    assert!(!api.is_empty(), "fleet {bin} did not start");
    (Kill(child), api)
}

/// With `QQFLEET_POOL_TRIM=1`: the RSS after a forced collection of the allocator
/// (mimalloc's `mi_collect(1)`, then glibc's `malloc_trim(0)` for what C code allocated,
/// both called through gdb), i.e. without the freed memory the allocators keep from a burst.
fn trim(pid: u32) -> Option<u64> {
    if std::env::var("QQFLEET_POOL_TRIM").as_deref() != Ok("1") {
        return None;
    }
    Command::new("gdb")
        .args([
            "-p",
            &pid.to_string(),
            "-batch",
            "-ex",
            "call (void) mi_collect(1)",
            "-ex",
            "call (int) malloc_trim(0)",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    Some(rss_kib(pid))
}

async fn list(api: &str) -> Vec<Value> {
    match http().get(format!("{api}/api/accounts")).send().await {
        Ok(r) => r
            .json::<Value>()
            .await
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// Scans every waiting account's QR code as its own QQ number until all are online. The
/// admin API shows the code's URL, whose `k=` is the token the simulator scans by.
async fn cold_start(api: &str, base: &str, n: usize, deadline: Duration) -> bool {
    let t0 = Instant::now();
    let mut scanned = std::collections::HashSet::new();
    while t0.elapsed() < deadline {
        let all = list(api).await;
        let online = all.iter().filter(|a| a["state"] == "online").count();
        if online == n {
            println!(
                "  cold start: {n} online in {:.0} s",
                t0.elapsed().as_secs_f64()
            );
            return true;
        }
        for a in all.iter().filter(|a| a["state"] == "awaiting_scan") {
            let url = a["qr"]["url"].as_str().unwrap_or("");
            let Some(token) = url.split("k=").nth(1).and_then(|s| s.split('&').next()) else {
                continue;
            };
            if scanned.contains(token) {
                continue;
            }
            let r = post(
                &format!("{base}/sim/qr/scan"),
                json!({"token": token, "qq": a["qq"], "confirm": true}),
            )
            .await;
            if r.status().is_success() {
                scanned.insert(token.to_string());
            }
        }
        println!(
            "  {online} online after {:.0} s",
            t0.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

async fn wait_online(api: &str, n: usize, within: Duration) -> Option<f64> {
    let t0 = Instant::now();
    while t0.elapsed() < within {
        let all = list(api).await;
        if all.iter().filter(|a| a["state"] == "online").count() == n {
            return Some(t0.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    None
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let bins: Vec<String> = std::env::var("QQFLEET_POOL_BINS")
        .expect("QQFLEET_POOL_BINS=before,after")
        .split(',')
        .map(String::from)
        .collect();
    let n: usize = std::env::var("QQFLEET_POOL_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let deadline = Duration::from_secs(
        std::env::var("QQFLEET_POOL_DEADLINE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(900),
    );
    let _ = qqfleet::fdlimit::raise();
    let dir = tempfile::tempdir().unwrap();
    for i in 0..n {
        write_account(
            dir.path(),
            &format!("acc{i:05}"),
            &format!("qq = {}\n[supervision]\nqr_check_secs = 2\n", 300_000 + i),
        );
    }
    let accounts = dir.path().join("accounts");
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (_sim, base) = start_sim(&bins[0]);
    println!("== {n} accounts, cold start with {} ==", bins[0]);
    {
        let (mut f, api) = start_fleet(&bins[0], dir.path(), &accounts, "data", &base);
        assert!(cold_start(&api, &base, n, deadline).await, "cold start");
        sigterm(&f.0);
        wait_exit(&mut f.0, Duration::from_secs(60));
    }
    let mut out = Vec::new();
    for bin in &bins {
        let (mut f, api) = start_fleet(bin, dir.path(), &accounts, "data", &base);
        let pid = f.0.id();
        let t = wait_online(&api, n, Duration::from_secs(600)).await;
        // Sampled while every poll is parked: at 30 s the connections of the resume burst
        // may still be idle in a pool; from 100 s on (after reqwest's 90 s default idle
        // timeout and the first 60 s hold) the fleet is in its steady state.
        let mut samples = Vec::new();
        let t_online = Instant::now();
        for at in [30u64, 60, 100, 130] {
            tokio::time::sleep_until((t_online + Duration::from_secs(at)).into()).await;
            let (rss, open) = (rss_kib(pid), fds(pid));
            println!("  {bin} +{at} s: RSS {rss} KiB, open files {open}");
            samples.push(json!({"after_online_s": at, "rss_kib": rss, "open_files": open}));
        }
        let (rss, open) = (rss_kib(pid), fds(pid));
        let trimmed = trim(pid);
        if let Some(t) = trimmed {
            println!("  {bin} after a forced collection: RSS {t} KiB");
        }
        sigterm(&f.0);
        wait_exit(&mut f.0, Duration::from_secs(60));
        let (e, _) = start_fleet(bin, dir.path(), &empty, "data-empty", &base);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (rss0, open0) = (rss_kib(e.0.id()), fds(e.0.id()));
        let trimmed0 = trim(e.0.id());
        drop(e);
        let per = rss.saturating_sub(rss0) as f64 / n as f64;
        let trimmed_per = trimmed
            .zip(trimmed0)
            .map(|(t, t0)| t.saturating_sub(t0) as f64 / n as f64);
        println!(
            "{bin}: online again in {t:?} s; RSS {rss} KiB (empty {rss0} KiB) = {per:.1} KiB per account (after a forced collection: {trimmed_per:?}); open files {open} (empty {open0})"
        );
        out.push(json!({
            "binary": bin, "accounts": n, "online_after_restart_s": t,
            "rss_kib": rss, "empty_rss_kib": rss0, "kib_per_account": per,
            "open_files": open, "empty_open_files": open0, "samples": samples,
            "trimmed_rss_kib": trimmed, "trimmed_empty_rss_kib": trimmed0,
            "trimmed_kib_per_account": trimmed_per,
        }));
    }
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
}
