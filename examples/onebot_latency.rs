//! OneBot latency (issue 8): N accounts (default 100; `QQFLEET_ONEBOT_N`) of one `qqfleet run`
//! connected by reverse WebSocket to one real NoneBot2 (the project of tests/onebot, from
//! target/onebot-venv: `make onebot-deps`), against `qqfleet sim` in another process, all on
//! 127.0.0.1. Measures the time from a message injected into the simulator to NoneBot's
//! `pong <self_id>` in `/sim/sent`, one message at a time (each account in turn, `ROUNDS`
//! rounds), with every account connected; prints p50, p90, p99 and max.
//!
//! `cargo run --release --example onebot_latency` (the binary is `QQFLEET_ONEBOT_BIN`, default
//! `target/release/qqfleet`). Every wait is bounded; every process is killed at the end.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[path = "../tests/fleet_common/mod.rs"]
mod fleet_common;
use fleet_common::{get, http, post, token_file, write_account};

const ROUNDS: usize = 3;

#[path = "support/procs.rs"]
mod procs;
use procs::{start_sim_with, Kill};

#[path = "../tests/ports/mod.rs"]
mod ports;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("QQFLEET_ONEBOT_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let bin = std::env::var("QQFLEET_ONEBOT_BIN")
        .unwrap_or_else(|_| "target/release/qqfleet".to_string());
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = tempfile::tempdir().unwrap();
    let (_sim, base) = start_sim_with(
        &bin,
        &[
            "--send-min-interval-ms",
            "0",
            "--target-burst-per-min",
            "0",
            "--hold",
            "30",
        ],
    );
    let port = ports::free_port();
    for i in 0..n {
        write_account(
            dir.path(),
            &format!("ob{i:04}"),
            &format!(
                "qq = {}\nhandler = \"onebot\"\n[supervision]\nqr_check_secs = 1\n[limits]\nsend_per_minute = 600\nsend_burst = 10\ntarget_per_minute = 600\ntarget_burst = 10\n[onebot]\nws_reverse_url = \"ws://127.0.0.1:{port}/onebot/v11/ws\"\nws_reverse_reconnect_ms = 500\n",
                500_000 + i
            ),
        );
    }
    let tok = dir.path().join("onebot.token");
    std::fs::write(&tok, "latency-token").unwrap();
    let mut child = Command::new(&bin)
        .args(["run", "--accounts"])
        .arg(dir.path().join("accounts"))
        .arg("--data")
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0", "--sim-url", &base])
        .arg("--admin-token-file")
        .arg(token_file(dir.path()))
        .arg("--onebot-token-file")
        .arg(&tok)
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
    let _fleet = Kill(child);
    // The phone: scan each QR as its account's number.
    let t0 = Instant::now();
    let mut scanned = std::collections::HashSet::new();
    loop {
        let list = get(&format!("{api}/api/accounts")).await;
        let list = list.as_array().cloned().unwrap_or_default();
        if list.iter().filter(|a| a["state"] == "online").count() == n {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(600), "logins too slow");
        for a in list.iter().filter(|a| a["state"] == "awaiting_scan") {
            let id = a["id"].as_str().unwrap().to_string();
            if !scanned.insert(id.clone()) {
                continue;
            }
            let r = http()
                .get(format!("{api}/api/accounts/{id}/qr"))
                .send()
                .await
                .unwrap();
            if r.status() != 200 {
                scanned.remove(&id);
                continue;
            }
            let png = r.bytes().await.unwrap().to_vec();
            let url = qqfleet::fleet::login::decode_qr(&png).unwrap();
            let token = url.split("k=").nth(1).unwrap().split('&').next().unwrap();
            post(
                &format!("{base}/sim/qr/scan"),
                json!({"token": token, "qq": a["qq"], "confirm": true}),
            )
            .await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("{n} accounts online in {:.1} s", t0.elapsed().as_secs_f64());
    let nb = Command::new(format!("{root}/target/onebot-venv/bin/python"))
        .arg("bot.py")
        .current_dir(format!("{root}/tests/onebot/nonebot"))
        .env("DRIVER", "~fastapi+~httpx+~websockets")
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("LOG_LEVEL", "WARNING")
        .env("ONEBOT_ACCESS_TOKEN", "latency-token")
        .env("QQFLEET_NB_LOG", dir.path().join("nb.jsonl"))
        .env("ONEBOT_API_ROOTS", json!({}).to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("NoneBot (make onebot-deps)");
    let _nb = Kill(nb);
    let t1 = Instant::now();
    loop {
        let m = reqwest::get(format!("{api}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let up = m
            .lines()
            .find(|l| l.starts_with("qqfleet_onebot_connections{transport=\"ws_reverse\"}"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0);
        if up == n as i64 {
            break;
        }
        assert!(
            t1.elapsed() < Duration::from_secs(120),
            "{up} of {n} connected"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "{n} reverse WebSockets connected {:.1} s after NoneBot started",
        t1.elapsed().as_secs_f64()
    );
    // Let every bot's get_login_info / get_friend_list at connection finish.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut lat = Vec::new();
    for round in 0..ROUNDS {
        for i in 0..n {
            let qq = 500_000 + i as u64;
            let want = format!("pong {qq}");
            let start = Instant::now();
            post(
                &format!("{base}/sim/inject"),
                json!({"qq": qq, "kind": "buddy", "text": "ping"}),
            )
            .await;
            loop {
                let sent: Value = get(&format!("{base}/sim/sent?qq={qq}")).await;
                let have = sent
                    .as_array()
                    .map(|a| a.iter().filter(|m| m["text"] == want.as_str()).count())
                    .unwrap_or(0);
                if have > round {
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "no answer for {qq}"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            lat.push(start.elapsed());
        }
    }
    lat.sort();
    let q = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "inject → NoneBot's answer in /sim/sent, {} messages, {n} accounts connected: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lat.len(),
        ms(q(0.50)),
        ms(q(0.90)),
        ms(q(0.99)),
        ms(*lat.last().unwrap())
    );
}
