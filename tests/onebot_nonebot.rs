//! Proof with a real framework: a pinned NoneBot2 + nonebot-adapter-onebot (installed by
//! `make onebot-deps` into target/onebot-venv) drives five accounts of one `qqfleet run`
//! against the real simulator: three by reverse WebSocket (friend, group and discussion
//! messages), one by forward WebSocket, one by HTTP API + HTTP POST. NoneBot is then killed
//! while messages arrive and started again: every message reaches it once it is back.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

mod onebot_common;
mod ports;

use onebot_common::*;
use ports::free_port;

const VENV_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/onebot-venv/bin/python");
const PROJECT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/onebot/nonebot");
const TOKEN: &str = "nb-token-0123";

struct NoneBot {
    child: Child,
    log: PathBuf,
}

impl Drop for NoneBot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_nonebot(dir: &Path, port: u16, fleet_api: &str) -> NoneBot {
    assert!(
        Path::new(VENV_PY).exists(),
        "{VENV_PY} is missing: run `make onebot-deps` (make test does it first)"
    );
    let log = dir.join("nonebot.jsonl");
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("nonebot.out"))
        .unwrap();
    let host = fleet_api.trim_start_matches("http://");
    let child = Command::new(VENV_PY)
        .arg("bot.py")
        .current_dir(PROJECT)
        .env("DRIVER", "~fastapi+~httpx+~websockets")
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("LOG_LEVEL", "INFO")
        .env("ONEBOT_ACCESS_TOKEN", TOKEN)
        .env("ONEBOT_SECRET", "nb-secret")
        .env(
            "ONEBOT_WS_URLS",
            json!([format!("ws://{host}/onebot/v11/fwd/ws")]).to_string(),
        )
        .env(
            "ONEBOT_API_ROOTS",
            json!({"40005": format!("http://{host}/onebot/v11/hp/")}).to_string(),
        )
        .env("QQFLEET_NB_LOG", &log)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .stdin(Stdio::null())
        .spawn()
        .expect("NoneBot starts");
    NoneBot { child, log }
}

fn nb_log(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

async fn pongs(sim: &Sim, qq: u64, kind: &str) -> usize {
    let want = format!("pong {qq}");
    sent(sim, qq)
        .await
        .iter()
        .filter(|m| m["kind"] == kind && m["text"] == want.as_str())
        .count()
}

async fn wait_pongs(sim: &Sim, qq: u64, kind: &str, n: usize, dir: &Path) {
    let end = std::time::Instant::now() + Duration::from_secs(40);
    loop {
        let have = pongs(sim, qq, kind).await;
        if have >= n {
            return;
        }
        if std::time::Instant::now() > end {
            panic!(
                "{qq}: {have} of {n} `pong` answers ({kind})\n--- NoneBot ---\n{}",
                tail(&dir.join("nonebot.out"))
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn reverse_connections(f: &Fleet) -> i64 {
    let m = reqwest::get(format!("{}/metrics", f.api))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    m.lines()
        .find(|l| l.starts_with("qqfleet_onebot_connections{transport=\"ws_reverse\"}"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonebot_drives_five_accounts_and_survives_a_restart() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let reverse = format!(
        "ws_reverse_url = \"ws://127.0.0.1:{port}/onebot/v11/ws\"\nws_reverse_reconnect_ms = 200"
    );
    for (id, qq) in [("r1", 40001), ("r2", 40002), ("r3", 40003)] {
        write_account(dir.path(), id, &account_toml(qq, &reverse));
    }
    write_account(dir.path(), "fwd", &account_toml(40004, ""));
    write_account(
        dir.path(),
        "hp",
        &account_toml(
            40005,
            &format!("http_post_url = \"http://127.0.0.1:{port}/onebot/v11/http\"\nsecret = \"nb-secret\""),
        ),
    );
    let token = dir.path().join("onebot.token");
    std::fs::write(&token, TOKEN).unwrap();
    let f = start_fleet(
        dir.path(),
        &sim,
        &["--onebot-token-file", token.to_str().unwrap()],
    );
    for (id, qq) in [
        ("r1", 40001),
        ("r2", 40002),
        ("r3", 40003),
        ("fwd", 40004),
        ("hp", 40005),
    ] {
        login(&f, &sim, id, qq).await;
    }
    let nb = start_nonebot(dir.path(), port, &f.api);
    // Every WebSocket bot connects and calls get_login_info and get_friend_list once.
    eventually(
        "the four WebSocket bots connected",
        Duration::from_secs(40),
        || async {
            let l = nb_log(&nb.log);
            let ok = ["40001", "40002", "40003", "40004"].iter().all(|q| {
                l.iter().any(|e| {
                    e["connect"] == *q
                        && e["user_id"].as_u64().map(|u| u.to_string()).as_deref() == Some(*q)
                        && e["friends"].as_u64() > Some(0)
                })
            });
            ok.then_some(())
        },
    )
    .await;
    inject(&sim, json!({"qq": 40001, "kind": "buddy", "text": "ping"})).await;
    inject(&sim, json!({"qq": 40002, "kind": "group", "text": "ping"})).await;
    inject(&sim, json!({"qq": 40003, "kind": "discu", "text": "ping"})).await;
    inject(&sim, json!({"qq": 40004, "kind": "buddy", "text": "ping"})).await;
    inject(&sim, json!({"qq": 40005, "kind": "buddy", "text": "ping"})).await;
    wait_pongs(&sim, 40001, "buddy", 1, dir.path()).await;
    wait_pongs(&sim, 40002, "group", 1, dir.path()).await;
    wait_pongs(&sim, 40003, "discu", 1, dir.path()).await;
    wait_pongs(&sim, 40004, "buddy", 1, dir.path()).await;
    wait_pongs(&sim, 40005, "buddy", 1, dir.path()).await;
    // The HTTP POST bot registered with its first event and called the API over HTTP. NoneBot
    // runs its connect hook and the `ping` handler side by side, so the pong can come first.
    eventually(
        "the HTTP bot called get_login_info and get_friend_list",
        Duration::from_secs(20),
        || async {
            nb_log(&nb.log)
                .iter()
                .any(|e| {
                    e["connect"] == "40005"
                        && e["user_id"].as_u64() == Some(40005)
                        && e["friends"].as_u64() > Some(0)
                })
                .then_some(())
        },
    )
    .await;

    // NoneBot dies; messages keep arriving; it comes back.
    drop(nb);
    eventually(
        "the fleet saw the reverse connections close",
        Duration::from_secs(15),
        || async { (reverse_connections(&f).await == 0).then_some(()) },
    )
    .await;
    for _ in 0..2 {
        inject(&sim, json!({"qq": 40001, "kind": "buddy", "text": "ping"})).await;
        inject(&sim, json!({"qq": 40002, "kind": "group", "text": "ping"})).await;
        inject(&sim, json!({"qq": 40004, "kind": "buddy", "text": "ping"})).await;
        inject(&sim, json!({"qq": 40005, "kind": "buddy", "text": "ping"})).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        pongs(&sim, 40001, "buddy").await,
        1,
        "nobody answers while NoneBot is down"
    );
    let _nb = start_nonebot(dir.path(), port, &f.api);
    wait_pongs(&sim, 40001, "buddy", 3, dir.path()).await;
    wait_pongs(&sim, 40002, "group", 3, dir.path()).await;
    wait_pongs(&sim, 40004, "buddy", 3, dir.path()).await;
    wait_pongs(&sim, 40005, "buddy", 3, dir.path()).await;
    // Each message once (delivery is at least once; here no frame was in flight at the kill).
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(pongs(&sim, 40001, "buddy").await, 3);
    assert_eq!(pongs(&sim, 40002, "group").await, 3);
}
