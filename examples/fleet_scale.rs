//! Fleet scale benchmark (`make bench`): N accounts (default 1,000; `QQFLEET_SCALE_N`) in one
//! `qqfleet run` process against `qqfleet sim` in another, both on 127.0.0.1, 60 s holds as the
//! real service. Measures the time until every account is online (QR scans included), the
//! resident memory per account against an empty fleet of the same binary, idle CPU, open
//! files, SIGTERM time, and the time to resume every account after a restart without a scan.
//!
//! Uses the release binary (`QQFLEET_SCALE_BIN`, default `target/release/qqfleet`). Every
//! wait is bounded; both processes are killed at the end. Raise `ulimit -n` above 2·N first.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[path = "../tests/fleet_common/mod.rs"]
mod fleet_common;
use fleet_common::{get, http, post, sigterm, token_file, wait_exit, write_account};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    run().await;
}

async fn sim_account_at(base: &str, qq: u64) -> Value {
    get(&format!("{base}/sim/accounts/{qq}")).await
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields after the command: state is index 0, utime 11, stime 12.
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

async fn count_states(api: &str) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
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

async fn run() {
    let n: usize = std::env::var("QQFLEET_SCALE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let bin =
        std::env::var("QQFLEET_SCALE_BIN").unwrap_or_else(|_| "target/release/qqfleet".to_string());
    let dir = tempfile::tempdir().unwrap();
    // The simulator in its own process, 60 s holds as the real service.
    let mut simp = Command::new(&bin)
        .args([
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--hold",
            "60",
            "--send-min-interval-ms",
            "0",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(simp.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    let sim_pid = simp.id();
    for i in 0..n {
        write_account(
            dir.path(),
            &format!("acc{i:05}"),
            &format!("qq = {}\n[supervision]\nqr_check_secs = 2\n", 300_000 + i),
        );
    }
    let start_fleet_bin = |data: &str| {
        let stderr = dir.path().join(format!("{data}.stderr"));
        let mut child = Command::new(&bin)
            .args(["run", "--accounts"])
            .arg(dir.path().join("accounts"))
            .arg("--data")
            .arg(dir.path().join(data))
            .args(["--listen", "127.0.0.1:0", "--sim-url", &base])
            .arg("--admin-token-file")
            .arg(token_file(dir.path()))
            .env("RUST_LOG", "warn")
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
        (child, api.unwrap())
    };
    let t0 = Instant::now();
    let (mut fleet, api) = start_fleet_bin("data");
    let pid = fleet.id();
    // The phone: scan every QR as its account's number, a few at a time.
    let scanned = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    loop {
        let list: Value = get(&format!("{api}/api/accounts")).await;
        let list = list.as_array().cloned().unwrap_or_default();
        let online = list.iter().filter(|a| a["state"] == "online").count();
        if online == n {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(900),
            "{:?}",
            count_states(&api).await
        );
        let waiting: Vec<(String, u64)> = list
            .iter()
            .filter(|a| a["state"] == "awaiting_scan")
            .map(|a| {
                (
                    a["id"].as_str().unwrap().to_string(),
                    a["qq"].as_u64().unwrap(),
                )
            })
            .filter(|(id, _)| !scanned.lock().unwrap().contains(id))
            .collect();
        let mut tasks = Vec::new();
        for (id, qq) in waiting {
            let (api, base, scanned) = (api.clone(), base.clone(), scanned.clone());
            tasks.push(tokio::spawn(async move {
                let Ok(r) = http()
                    .get(format!("{api}/api/accounts/{id}/qr"))
                    .send()
                    .await
                else {
                    return;
                };
                if r.status() != 200 {
                    return;
                }
                let png = r.bytes().await.unwrap().to_vec();
                let url =
                    tokio::task::spawn_blocking(move || qqfleet::fleet::login::decode_qr(&png))
                        .await
                        .unwrap();
                let Some(token) = url
                    .as_deref()
                    .and_then(|u| u.split("k=").nth(1))
                    .and_then(|s| s.split('&').next())
                    .map(String::from)
                else {
                    return;
                };
                let r = post(
                    &format!("{base}/sim/qr/scan"),
                    json!({"token": token, "qq": qq, "confirm": true}),
                )
                .await;
                if r.status().is_success() {
                    scanned.lock().unwrap().insert(id);
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let t_online = t0.elapsed();
    // Idle: let logins' contact refreshes finish, then measure.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let rss = rss_kib(pid);
    let c0 = cpu_ticks(pid);
    let s0 = cpu_ticks(sim_pid);
    tokio::time::sleep(Duration::from_secs(30)).await;
    let cpu = (cpu_ticks(pid) - c0) as f64 / 30.0; // ticks/s = % of one core
    let sim_cpu = (cpu_ticks(sim_pid) - s0) as f64 / 30.0;
    let fleet_fds = fds(pid);
    let states = count_states(&api).await;
    // Restart: SIGTERM, start again on the same data, time until all are online again.
    let t_stop = Instant::now();
    sigterm(&fleet);
    let st = wait_exit(&mut fleet, Duration::from_secs(10));
    let stop_time = t_stop.elapsed();
    let t1 = Instant::now();
    let (mut fleet2, api2) = start_fleet_bin("data");
    loop {
        let s = count_states(&api2).await;
        if s.get("online") == Some(&n) {
            break;
        }
        assert!(t1.elapsed() < Duration::from_secs(600), "{s:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let t_resume = t1.elapsed();
    let logins_total: u64 = {
        let mut total = 0;
        for i in (0..n).step_by((n / 50).max(1)) {
            total += sim_account_at(&base, 300_000 + i as u64).await["logins"]
                .as_u64()
                .unwrap_or(0);
        }
        total
    };
    // Baseline: the same binary with no accounts.
    let empty = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(empty.path().join("accounts")).unwrap();
    let mut base_child = Command::new(&bin)
        .args(["run", "--accounts"])
        .arg(empty.path().join("accounts"))
        .arg("--data")
        .arg(empty.path().join("data"))
        .args(["--listen", "127.0.0.1:0", "--sim-url", &base])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss0 = rss_kib(base_child.id());
    let _ = base_child.kill();
    let _ = base_child.wait();
    println!(
        "SCALE n={n}: all online after {:.1} s (QR scans); idle RSS {} KiB (empty fleet {} KiB) \
         = {:.1} KiB/account; idle CPU {:.1}% of a core (sim {:.1}%); fds {}; states {:?}; \
         SIGTERM exit {:?} in {:.2} s; resumed all online in {:.1} s; sampled sim logins {} \
         (1 per account = no new scan)",
        t_online.as_secs_f64(),
        rss,
        rss0,
        (rss.saturating_sub(rss0)) as f64 / n as f64,
        cpu,
        sim_cpu,
        fleet_fds,
        states,
        st,
        stop_time.as_secs_f64(),
        t_resume.as_secs_f64(),
        logins_total
    );
    let _ = fleet2.kill();
    let _ = fleet2.wait();
    let _ = simp.kill();
    let _ = simp.wait();
}
