//! The fleet end to end: the real `qqfleet run` binary against the real simulator, both on
//! 127.0.0.1. The simulator runs in the test process (library), the fleet as a child process
//! (so it can be SIGKILLed). A "phone" helper reads each account's QR code from the admin
//! API, decodes it and scans it through the simulator's control API as the account's QQ.
//!
//! Every wait is a poll with a deadline; the simulator holds polls 1 s.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod fleet_common;
use fleet_common::{
    account, eventually, get, http, login, post, rand_suffix, serve_sim, sigterm, sim, tail,
    token_file, wait_exit, wait_state, write_account, Fleet, FleetRun, Sim, ADMIN_TOKEN,
};

const BIN: &str = env!("CARGO_BIN_EXE_qqfleet");

async fn sim_with(cfg: qqfleet::sim::SimConfig) -> Sim {
    let cfg = qqfleet::sim::SimConfig {
        hold: Duration::from_secs(1),
        send_min_interval: Duration::ZERO,
        target_burst_per_min: 0,
        ..cfg
    };
    serve_sim(cfg).await
}

/// Starts `qqfleet run --sim-url` and waits for its admin API line.
fn start_fleet(dir: &Path, data: &str, sim: &Sim, env: &[(&str, &str)]) -> Fleet {
    FleetRun::new(BIN, dir, &sim.base)
        .data(dir.join(data))
        .stderr(dir.join(format!("{data}-{}.stderr", rand_suffix())))
        .rust_log("info,qqfleet=debug")
        .env(env)
        .start()
}

fn account_toml(qq: u64, extra: &str) -> String {
    format!(
        "qq = {qq}\nenabled = true\n{extra}\n[supervision]\nqr_check_secs = 1\n\n[limits]\nsend_per_minute = 300\nsend_burst = 5\ntarget_per_minute = 600\ntarget_burst = 50\n"
    )
}

async fn state_of(f: &Fleet, id: &str) -> Option<String> {
    account(f, id)
        .await
        .and_then(|a| a["state"].as_str().map(String::from))
}

async fn sim_account(sim: &Sim, qq: u64) -> Value {
    sim_account_at(&sim.base, qq).await
}

async fn sim_account_at(base: &str, qq: u64) -> Value {
    get(&format!("{base}/sim/accounts/{qq}")).await
}

async fn sent(sim: &Sim, qq: u64) -> Vec<Value> {
    get(&format!("{}/sim/sent?qq={qq}", sim.base))
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// First friend's uin in the current session.
async fn friend_uin(sim: &Sim, qq: u64) -> (u64, u64) {
    let c = get(&format!("{}/sim/accounts/{qq}/contacts", sim.base)).await;
    let f = &c["friends"][0];
    (f["qq"].as_u64().unwrap(), f["uin"].as_u64().unwrap())
}

/// The admin API needs its bearer token: created on first start as `<data>/admin.token`
/// (0600, its path printed, kept across restarts); missing or wrong → 401 with no data;
/// `/healthz` and `/metrics` stay open; the token never reaches the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_needs_its_token() {
    use std::os::unix::fs::PermissionsExt;
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    write_account(dir.path(), "a", &account_toml(20091, "handler = \"echo\""));
    let stderr = dir.path().join("stderr");
    let mut child = Command::new(BIN)
        .args(["run", "--accounts"])
        .arg(dir.path().join("accounts"))
        .arg("--data")
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0", "--sim-url", &sim.base])
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut api, mut token_path) = (None, None);
    while api.is_none() || token_path.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("start lines");
        if let Some(rest) = line.strip_prefix("admin API: ") {
            api = Some(rest.trim_end_matches("/api/accounts").to_string());
        }
        if let Some(rest) = line.strip_prefix("admin token: ") {
            token_path = Some(PathBuf::from(rest.split(" (").next().unwrap()));
        }
    }
    let (api, token_path) = (api.unwrap(), token_path.unwrap());
    assert_eq!(token_path, dir.path().join("data/admin.token"));
    let mode = std::fs::metadata(&token_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let token = std::fs::read_to_string(&token_path)
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(token.len(), 64);
    let bare = reqwest::Client::new();
    for path in [
        "/api/accounts",
        "/api/accounts/a",
        "/api/accounts/a/outbox",
        "/api/nothing",
    ] {
        let r = bare.get(format!("{api}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} without a token");
        let body = r.text().await.unwrap();
        assert!(
            !body.contains("20091") && !body.contains("\"a\""),
            "{path}: {body}"
        );
        let r = bare
            .get(format!("{api}{path}"))
            .bearer_auth("wrong-token-wrong-token")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path} with a wrong token");
    }
    let r = bare
        .post(format!("{api}/api/accounts/a/send"))
        .json(&json!({"kind":"buddy","to":1,"text":"x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    for path in ["/healthz", "/metrics"] {
        assert_eq!(
            bare.get(format!("{api}{path}"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let list: Value = bare
        .get(format!("{api}/api/accounts"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list[0]["id"], "a");
    sigterm(&child);
    wait_exit(&mut child, Duration::from_secs(6)).expect("exits after SIGTERM");
    let log = std::fs::read_to_string(&stderr).unwrap();
    assert!(!log.contains(&token), "the token reached the log");
    // A second start keeps the same token.
    let keep = std::fs::read_to_string(&token_path).unwrap();
    assert_eq!(keep.trim(), token);
    assert_ne!(token, ADMIN_TOKEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_accounts_log_in_by_qr_and_echo() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    for (id, qq) in [("a", 20001), ("b", 20002), ("c", 20003)] {
        write_account(dir.path(), id, &account_toml(qq, "handler = \"echo\""));
    }
    let mut f = start_fleet(dir.path(), "data", &sim, &[]);
    assert_eq!(
        reqwest::get(format!("{}/healthz", f.api))
            .await
            .unwrap()
            .status(),
        200
    );
    for (id, qq) in [("a", 20001), ("b", 20002), ("c", 20003)] {
        login(&f, &sim.base, id, qq).await;
    }
    let list = get(&format!("{}/api/accounts", f.api)).await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3);
    for a in list {
        for key in ["id", "qq", "state", "since", "last_poll_at", "error"] {
            assert!(a.get(key).is_some(), "{key} missing in {a}");
        }
        assert_eq!(a["state"], "online");
    }
    // The counts alone, as a monitor polls them.
    let sum = get(&format!("{}/api/summary", f.api)).await;
    assert_eq!(sum, json!({"accounts": 3, "states": {"online": 3}}));
    // An injected message gets its echo, exactly once (the echo of the echo is ignored).
    let r = post(
        &format!("{}/sim/inject", sim.base),
        json!({"qq": 20002, "kind": "buddy", "text": "hello fleet"}),
    )
    .await;
    assert!(r.status().is_success());
    let (friend_qq, _) = friend_uin(&sim, 20002).await;
    eventually("the echo in /sim/sent", Duration::from_secs(15), || async {
        let s = sent(&sim, 20002).await;
        s.iter().any(|m| m["text"] == "hello fleet").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = sent(&sim, 20002).await;
    assert_eq!(s.len(), 1, "one answer, no echo loop: {s:?}");
    assert_eq!(s[0]["kind"], "buddy");
    assert_eq!(s[0]["to"], friend_qq);
    // A group message is answered in the group.
    let r = post(
        &format!("{}/sim/inject", sim.base),
        json!({"qq": 20003, "kind": "group", "text": "hi group"}),
    )
    .await;
    assert!(r.status().is_success());
    eventually("the group echo", Duration::from_secs(15), || async {
        let s = sent(&sim, 20003).await;
        s.iter()
            .any(|m| m["text"] == "hi group" && m["kind"] == "group")
            .then_some(())
    })
    .await;
    // last_poll_at moves while online.
    let a = account(&f, "a").await.unwrap();
    assert!(a["last_poll_at"].is_string(), "{a}");
    // /metrics answers in the Prometheus text format.
    let m = reqwest::get(format!("{}/metrics", f.api)).await.unwrap();
    assert_eq!(m.status(), 200);
    assert_eq!(
        m.headers()["content-type"].to_str().unwrap(),
        "text/plain; version=0.0.4"
    );
    // A second process on the same data directory fails clearly.
    let second = Command::new(BIN)
        .args(["run", "--accounts"])
        .arg(dir.path().join("accounts"))
        .arg("--data")
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0", "--sim-url", &sim.base])
        .arg("--admin-token-file")
        .arg(token_file(dir.path()))
        .output()
        .unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("in use by another qqfleet process"), "{err}");
    // SIGTERM: exit 0 within 5 s.
    let t = Instant::now();
    sigterm(&f.child);
    let status = wait_exit(&mut f.child, Duration::from_secs(6)).expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}\n{}", tail(&f.stderr));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_a_full_outbox_delivers_each_message_once_without_a_new_scan() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    // 5 sends a second: 50 messages take about 10 s, so the kill lands mid-outbox.
    write_account(
        dir.path(),
        "a",
        "qq = 20011\n[supervision]\nqr_check_secs = 1\n[limits]\nsend_per_minute = 300\nsend_burst = 1\ntarget_per_minute = 600\ntarget_burst = 50\n",
    );
    let mut f = start_fleet(dir.path(), "data", &sim, &[]);
    login(&f, &sim.base, "a", 20011).await;
    let (friend_qq, uin) = friend_uin(&sim, 20011).await;
    for i in 0..50 {
        let r = post(
            &format!("{}/api/accounts/a/send", f.api),
            json!({"kind": "buddy", "to": uin, "text": format!("m{i}")}),
        )
        .await;
        assert_eq!(r.status(), 202, "{:?}", r.text().await);
    }
    eventually("some sent", Duration::from_secs(10), || async {
        (sent(&sim, 20011).await.len() >= 5).then_some(())
    })
    .await;
    f.child.kill().unwrap(); // SIGKILL
    f.child.wait().unwrap();
    let before = sent(&sim, 20011).await.len();
    assert!(
        before < 50,
        "the kill came too late to test anything ({before})"
    );
    drop(f);
    let friend_lists = |v: Value| v["requests"]["get_user_friends2"].as_u64().unwrap_or(0);
    let lists_before = friend_lists(get(&format!("{}/sim/stats", sim.base)).await);
    assert!(lists_before >= 1, "the first login fetched the contacts");
    let f = start_fleet(dir.path(), "data", &sim, &[]);
    wait_state(&f, "a", "online", Duration::from_secs(20)).await;
    eventually("all 50 delivered", Duration::from_secs(40), || async {
        (sent(&sim, 20011).await.len() >= 50).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = sent(&sim, 20011).await;
    let mut texts: Vec<String> = s
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect();
    assert!(s.iter().all(|m| m["to"] == friend_qq));
    texts.sort_by_key(|t| t[1..].parse::<u32>().unwrap());
    let want: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, want, "each message exactly once");
    let acc = sim_account(&sim, 20011).await;
    assert_eq!(acc["logins"], 1, "no new scan: {acc}");
    assert!(
        acc["resumes"].as_u64().unwrap() + acc["relinks"].as_u64().unwrap() >= 1,
        "{acc}"
    );
    // The channel lived through the kill and was relinked (same pseudo uins): its stored
    // contacts were reused, with no friend-list call, and every message still went to the
    // right friend (above).
    let lists_after = friend_lists(get(&format!("{}/sim/stats", sim.base)).await);
    assert_eq!(lists_after, lists_before, "contacts fetched again: {acc}");
    let a = account(&f, "a").await.unwrap();
    assert_eq!(a["outbox"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_delivery_and_a_crash_before_handling_reach_the_handler_once() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("handled.jsonl");
    write_account(
        dir.path(),
        "a",
        &account_toml(
            20021,
            &format!("handler = \"log\"\nlog_path = \"{}\"", log.display()),
        ),
    );
    let mut f = start_fleet(
        dir.path(),
        "data",
        &sim,
        &[
            ("QQFLEET_DEBUG_HOOKS", "1"),
            ("QQFLEET_DEBUG_CRASH_BEFORE_HANDLER", "a"),
        ],
    );
    login(&f, &sim.base, "a", 20021).await;
    // The next event comes twice; the process dies after recording it, before handling.
    let r = post(
        &format!("{}/sim/faults", sim.base),
        json!({"qq": 20021, "endpoint": "poll2", "duplicate": true, "count": 1}),
    )
    .await;
    assert!(r.status().is_success(), "{:?}", r.text().await);
    post(
        &format!("{}/sim/inject", sim.base),
        json!({"qq": 20021, "kind": "buddy", "text": "once"}),
    )
    .await;
    let status = wait_exit(&mut f.child, Duration::from_secs(15)).expect("the crash hook fired");
    assert!(!status.success());
    assert!(!log.exists() || std::fs::read_to_string(&log).unwrap().is_empty());
    drop(f);
    let f = start_fleet(dir.path(), "data", &sim, &[]);
    wait_state(&f, "a", "online", Duration::from_secs(20)).await;
    post(
        &format!("{}/sim/inject", sim.base),
        json!({"qq": 20021, "kind": "buddy", "text": "after"}),
    )
    .await;
    eventually("both handled", Duration::from_secs(15), || async {
        let t = std::fs::read_to_string(&log).unwrap_or_default();
        t.contains("\"after\"").then_some(())
    })
    .await;
    // Without a crash: the server delivers an event twice, the handler sees it once.
    let r = post(
        &format!("{}/sim/faults", sim.base),
        json!({"qq": 20021, "endpoint": "poll2", "duplicate": true, "count": 1}),
    )
    .await;
    assert!(r.status().is_success());
    post(
        &format!("{}/sim/inject", sim.base),
        json!({"qq": 20021, "kind": "buddy", "text": "twice"}),
    )
    .await;
    eventually("the duplicate dropped", Duration::from_secs(15), || async {
        let t = std::fs::read_to_string(&f.stderr).unwrap_or_default();
        t.contains("duplicate event dropped").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let texts: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        texts,
        ["once", "after", "twice"],
        "each event handled exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_add_change_remove_and_invalid_leave_the_others_alone() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    write_account(dir.path(), "a", &account_toml(20031, ""));
    let f = start_fleet(dir.path(), "data", &sim, &[]);
    login(&f, &sim.base, "a", 20031).await;
    let a_since = account(&f, "a").await.unwrap()["since"].clone();

    // Hot-add.
    write_account(dir.path(), "b", &account_toml(20032, ""));
    login(&f, &sim.base, "b", 20032).await;

    // Change: restarted with the new settings, resumed without a scan.
    write_account(dir.path(), "b", &account_toml(20032, "handler = \"log\""));
    eventually("b restarted", Duration::from_secs(15), || async {
        let b = account(&f, "b").await?;
        let h = b["history"].as_array()?;
        let n = h.iter().filter(|t| t["state"] == "online").count();
        (n >= 2 && b["state"] == "online").then_some(())
    })
    .await;
    assert_eq!(sim_account(&sim, 20032).await["logins"], 1);

    // Invalid: shown with file, line and key.
    write_account(dir.path(), "c", "qq = 20033\nhandlr = \"echo\"\n");
    wait_state(&f, "c", "invalid", Duration::from_secs(15)).await;
    let c = account(&f, "c").await.unwrap();
    let err = c["error"].as_str().unwrap();
    assert!(err.contains("c.toml:2") && err.contains("handlr"), "{err}");

    // Fixing it starts it.
    write_account(dir.path(), "c", &account_toml(20033, ""));
    login(&f, &sim.base, "c", 20033).await;

    // Remove: logged out (WEBQQ.md §10: the channel by change_status2, the login by the
    // ptlogin logout), stopped and gone from the API.
    std::fs::remove_file(dir.path().join("accounts/b.toml")).unwrap();
    eventually("b removed", Duration::from_secs(15), || async {
        account(&f, "b").await.is_none().then_some(())
    })
    .await;
    let b = sim_account(&sim, 20032).await;
    assert_eq!(b["online"], false, "{b}");
    assert_eq!(b["sessions"], 0, "{b}");
    assert_eq!(b["calls"]["change_status2"], 1, "{b}");
    assert_eq!(b["calls"]["logout"], 1, "{b}");

    // Back again: the logged-out session cannot resume, so it is a new scan.
    write_account(dir.path(), "b", &account_toml(20032, ""));
    wait_state(&f, "b", "awaiting_scan", Duration::from_secs(15)).await;
    login(&f, &sim.base, "b", 20032).await;
    let b = sim_account(&sim, 20032).await;
    assert_eq!(b["logins"], 2, "{b}");

    // `a` never left `online`.
    let a = account(&f, "a").await.unwrap();
    assert_eq!(a["state"], "online");
    assert_eq!(a["since"], a_since);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retcode_faults_lead_back_online_or_to_stopped() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    write_account(dir.path(), "a", &account_toml(20041, ""));
    let f = start_fleet(dir.path(), "data", &sim, &[]);
    login(&f, &sim.base, "a", 20041).await;
    let fault = |retcode: i64| {
        let url = format!("{}/sim/faults", sim.base);
        async move {
            let r = post(
                &url,
                json!({"qq": 20041, "endpoint": "poll2", "retcode": retcode, "count": 1}),
            )
            .await;
            assert!(r.status().is_success());
        }
    };
    let history_len = || async {
        account(&f, "a").await.unwrap()["history"]
            .as_array()
            .unwrap()
            .len()
    };
    // 121 and 120: relink, back online, no scan.
    for code in [121, 120] {
        let relinks = sim_account(&sim, 20041).await["relinks"].as_u64().unwrap();
        let h0 = history_len().await;
        fault(code).await;
        eventually(
            &format!("relink after {code}"),
            Duration::from_secs(15),
            || async {
                (sim_account(&sim, 20041).await["relinks"].as_u64().unwrap() > relinks)
                    .then_some(())
            },
        )
        .await;
        wait_state(&f, "a", "online", Duration::from_secs(15)).await;
        let a = account(&f, "a").await.unwrap();
        let h = a["history"].as_array().unwrap();
        let states: Vec<&str> = h[h0..]
            .iter()
            .map(|t| t["state"].as_str().unwrap())
            .collect();
        assert_eq!(states, ["logging_in", "online"], "after {code}");
    }
    // 102 and 100012 (ignorable, §5.2): still online, no reconnect.
    let relinks = sim_account(&sim, 20041).await["relinks"].as_u64().unwrap();
    let h0 = history_len().await;
    for code in [102, 100012] {
        fault(code).await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(state_of(&f, "a").await.as_deref(), Some("online"));
    assert_eq!(history_len().await, h0);
    assert_eq!(
        sim_account(&sim, 20041).await["relinks"].as_u64().unwrap(),
        relinks
    );

    // Expired session: relink and resume fail, a new scan brings it back.
    post(&format!("{}/sim/expire", sim.base), json!({"qq": 20041})).await;
    wait_state(&f, "a", "awaiting_scan", Duration::from_secs(20)).await;
    login(&f, &sim.base, "a", 20041).await;
    assert_eq!(sim_account(&sim, 20041).await["logins"], 2);

    // Kick: stopped until an operator acts.
    post(&format!("{}/sim/kick", sim.base), json!({"qq": 20041})).await;
    wait_state(&f, "a", "stopped", Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(state_of(&f, "a").await.as_deref(), Some("stopped"));
    // It stays stopped across a restart of the process, until an operator acts.
    let mut f = f;
    sigterm(&f.child);
    assert!(wait_exit(&mut f.child, Duration::from_secs(6)).is_some());
    drop(f);
    let f = start_fleet(dir.path(), "data", &sim, &[]);
    wait_state(&f, "a", "stopped", Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let a = account(&f, "a").await.unwrap();
    assert_eq!(a["state"], "stopped");
    assert!(a["error"].as_str().unwrap_or("").contains("kick"), "{a}");
    let r = post(&format!("{}/api/accounts/a/restart", f.api), json!({})).await;
    assert_eq!(r.status(), 202);
    eventually(
        "restarted after the kick",
        Duration::from_secs(20),
        || async {
            let s = state_of(&f, "a").await?;
            (s == "online" || s == "awaiting_scan").then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_friend_list_refresh_storm_never_gets_retcode_6() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    write_account(dir.path(), "a", &account_toml(20051, ""));
    let f = start_fleet(dir.path(), "data", &sim, &[]);
    login(&f, &sim.base, "a", 20051).await;
    for _ in 0..60 {
        let r = post(
            &format!("{}/api/accounts/a/contacts/refresh", f.api),
            json!({}),
        )
        .await;
        assert_eq!(r.status(), 202);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let acc = sim_account(&sim, 20051).await;
    let calls = acc["calls"]["get_user_friends2"].as_u64().unwrap_or(0);
    assert!(calls >= 1, "the refresh reached the server: {acc}");
    assert!(calls <= 15, "{calls} friend-list calls: {acc}");
    let sixes = acc["retcodes"]["get_user_friends2"]["6"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(sixes, 0, "{acc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_one_account_is_contained() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    write_account(dir.path(), "a", &account_toml(20061, ""));
    write_account(dir.path(), "b", &account_toml(20062, ""));
    let f = start_fleet(dir.path(), "data", &sim, &[("QQFLEET_DEBUG_HOOKS", "1")]);
    login(&f, &sim.base, "a", 20061).await;
    login(&f, &sim.base, "b", 20062).await;
    let b_since = account(&f, "b").await.unwrap()["since"].clone();
    let r = post(&format!("{}/api/accounts/a/debug/panic", f.api), json!({})).await;
    assert_eq!(r.status(), 202);
    eventually("a rebuilt", Duration::from_secs(15), || async {
        let a = account(&f, "a").await?;
        (a["restarts"]["account"].as_u64()? >= 1 && a["state"] == "online").then_some(())
    })
    .await;
    assert_eq!(
        sim_account(&sim, 20061).await["logins"],
        1,
        "rebuilt from the store"
    );
    // b kept polling the whole time.
    let b1 = account(&f, "b").await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let b2 = account(&f, "b").await.unwrap();
    assert_eq!(b2["state"], "online");
    assert_eq!(b2["since"], b_since);
    assert_eq!(b2["restarts"]["account"], 0);
    assert_ne!(b1["last_poll_at"], b2["last_poll_at"], "b still polls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ptwebqq_rotation_116_keeps_the_account_online() {
    let sim = sim_with(qqfleet::sim::SimConfig {
        ptwebqq_rotation: Some(Duration::from_secs(2)),
        ..qqfleet::sim::SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    write_account(dir.path(), "a", &account_toml(20081, ""));
    let f = start_fleet(dir.path(), "data", &sim, &[]);
    login(&f, &sim.base, "a", 20081).await;
    let h0 = account(&f, "a").await.unwrap()["history"]
        .as_array()
        .unwrap()
        .len();
    eventually("two 116 answers", Duration::from_secs(20), || async {
        let acc = sim_account(&sim, 20081).await;
        (acc["retcodes"]["poll2"]["116"].as_u64()? >= 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let a = account(&f, "a").await.unwrap();
    assert_eq!(a["state"], "online");
    assert_eq!(
        a["history"].as_array().unwrap().len(),
        h0,
        "no reconnect: {a}"
    );
    let acc = sim_account(&sim, 20081).await;
    assert_eq!(acc["relinks"], 0, "{acc}");
    // Polls after the rotation carry the new ptwebqq (the simulator refuses old ones).
    let r = post(
        &format!("{}/sim/inject", sim.base),
        json!({"qq": 20081, "kind": "buddy", "text": "still here"}),
    )
    .await;
    assert!(r.status().is_success());
    eventually("echo after rotation", Duration::from_secs(15), || async {
        sent(&sim, 20081)
            .await
            .iter()
            .any(|m| m["text"] == "still here")
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_restarts_a_silent_poller() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    write_account(
        dir.path(),
        "a",
        "qq = 20091\n[supervision]\nqr_check_secs = 1\nwatchdog_secs = 3\n",
    );
    let f = start_fleet(dir.path(), "data", &sim, &[]);
    login(&f, &sim.base, "a", 20091).await;
    // The next polls hang for 20 s (the hold is 1 s).
    let r = post(
        &format!("{}/sim/faults", sim.base),
        json!({"qq": 20091, "endpoint": "poll2", "delay_ms": 20000, "count": 1}),
    )
    .await;
    assert!(r.status().is_success());
    eventually("a poller restart", Duration::from_secs(15), || async {
        let a = account(&f, "a").await?;
        (a["restarts"]["poller"].as_u64()? >= 1).then_some(())
    })
    .await;
    let before = account(&f, "a").await.unwrap()["last_poll_at"].clone();
    eventually("polling again", Duration::from_secs(10), || async {
        let a = account(&f, "a").await?;
        (a["last_poll_at"] != before && a["state"] == "online").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_server_keeps_refusing_is_held_and_the_rest_flows() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    write_account(dir.path(), "a", &account_toml(20101, ""));
    let f = start_fleet(dir.path(), "data", &sim, &[]);
    login(&f, &sim.base, "a", 20101).await;
    let (_, uin) = friend_uin(&sim, 20101).await;
    // A uin of no friend in this session: the server answers 100001 every time.
    for (to, text) in [(1u64, "to nobody"), (uin, "to a friend")] {
        let r = post(
            &format!("{}/api/accounts/a/send", f.api),
            json!({"kind": "buddy", "to": to, "text": text}),
        )
        .await;
        assert_eq!(r.status(), 202);
    }
    eventually(
        "the good one delivered",
        Duration::from_secs(40),
        || async {
            sent(&sim, 20101)
                .await
                .iter()
                .any(|m| m["text"] == "to a friend")
                .then_some(())
        },
    )
    .await;
    let ob = get(&format!("{}/api/accounts/a/outbox", f.api)).await;
    assert_eq!(ob["pending"].as_array().unwrap().len(), 0, "{ob}");
    let held = ob["held"].as_array().unwrap();
    assert_eq!(held.len(), 1, "{ob}");
    assert_eq!(held[0]["text"], "to nobody");
    wait_state(&f, "a", "online", Duration::from_secs(10)).await;
    assert_eq!(sim_account(&sim, 20101).await["logins"], 1);
    // The operator drops it.
    let seq = held[0]["seq"].as_u64().unwrap();
    let url = format!("{}/api/accounts/a/held/{seq}", f.api);
    assert_eq!(http().delete(&url).send().await.unwrap().status(), 202);
    assert_eq!(http().delete(&url).send().await.unwrap().status(), 404);
    let ob = get(&format!("{}/api/accounts/a/outbox", f.api)).await;
    assert!(ob["held"].as_array().unwrap().is_empty(), "{ob}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_messages_follow_their_target_into_a_new_session() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    // One send every 5 s: the queue outlives the session.
    write_account(
        dir.path(),
        "a",
        "qq = 20111\n[supervision]\nqr_check_secs = 1\n[limits]\nsend_per_minute = 12\nsend_burst = 1\n",
    );
    let f = start_fleet(dir.path(), "data", &sim, &[]);
    login(&f, &sim.base, "a", 20111).await;
    eventually("contacts fetched", Duration::from_secs(10), || async {
        let acc = sim_account(&sim, 20111).await;
        (acc["calls"]["get_user_friends2"].as_u64()? >= 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (friend_qq, old_uin) = friend_uin(&sim, 20111).await;
    for i in 0..3 {
        let r = post(
            &format!("{}/api/accounts/a/send", f.api),
            json!({"kind": "buddy", "to": old_uin, "text": format!("q{i}")}),
        )
        .await;
        assert_eq!(r.status(), 202);
    }
    // The session dies (as after two days); a new scan makes a new session, new uins.
    post(&format!("{}/sim/expire", sim.base), json!({"qq": 20111})).await;
    wait_state(&f, "a", "awaiting_scan", Duration::from_secs(20)).await;
    login(&f, &sim.base, "a", 20111).await;
    let (_, new_uin) = friend_uin(&sim, 20111).await;
    assert_ne!(
        new_uin, old_uin,
        "the simulator gives new pseudo uins per session"
    );
    eventually("all three delivered", Duration::from_secs(40), || async {
        let s = sent(&sim, 20111).await;
        (s.len() >= 3).then_some(())
    })
    .await;
    let s = sent(&sim, 20111).await;
    let texts: Vec<&str> = s.iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["q0", "q1", "q2"]);
    assert!(s.iter().all(|m| m["to"] == friend_qq), "{s:?}");
    let ob = get(&format!("{}/api/accounts/a/outbox", f.api)).await;
    assert_eq!(ob["held"].as_array().unwrap().len(), 0, "{ob}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1202_is_never_resent_blindly() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    write_account(dir.path(), "a", &account_toml(20121, ""));
    write_account(
        dir.path(),
        "b",
        &account_toml(20122, "on_uncertain = \"hold\""),
    );
    let f = start_fleet(dir.path(), "data", &sim, &[]);
    login(&f, &sim.base, "a", 20121).await;
    login(&f, &sim.base, "b", 20122).await;
    for (id, qq) in [("a", 20121u64), ("b", 20122)] {
        // Delivered, but answered 1202 ("maybe not sent", §8.2).
        let r = post(
            &format!("{}/sim/faults", sim.base),
            json!({"qq": qq, "endpoint": "send_buddy_msg2", "retcode": 1202, "deliver": true, "count": 1}),
        )
        .await;
        assert!(r.status().is_success(), "{:?}", r.text().await);
        let (_, uin) = friend_uin(&sim, qq).await;
        for text in ["maybe", "surely"] {
            let r = post(
                &format!("{}/api/accounts/{id}/send", f.api),
                json!({"kind": "buddy", "to": uin, "text": text}),
            )
            .await;
            assert_eq!(r.status(), 202);
        }
    }
    for qq in [20121u64, 20122] {
        eventually("both sent", Duration::from_secs(20), || async {
            (sent(&sim, qq).await.len() >= 2).then_some(())
        })
        .await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for qq in [20121u64, 20122] {
        let texts: Vec<String> = sent(&sim, qq)
            .await
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(texts, ["maybe", "surely"], "no resend after the 1202");
    }
    // assume_delivered: gone; hold: kept aside for an operator.
    let a = get(&format!("{}/api/accounts/a/outbox", f.api)).await;
    assert!(
        a["held"].as_array().unwrap().is_empty() && a["pending"].as_array().unwrap().is_empty(),
        "{a}"
    );
    let b = get(&format!("{}/api/accounts/b/outbox", f.api)).await;
    let held = b["held"].as_array().unwrap();
    assert_eq!(held.len(), 1, "{b}");
    assert_eq!(held[0]["text"], "maybe");
}

#[test]
fn check_names_file_line_and_key_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    write_account(dir.path(), "good", "qq = 20071\n");
    write_account(dir.path(), "bad", "qq = 20072\n[limits]\nsend_burts = 3\n");
    write_account(dir.path(), "worse", "qq = \"twelve\"\n");
    let out = Command::new(BIN)
        .args(["check", "--accounts"])
        .arg(dir.path().join("accounts"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:3: key `limits.send_burts`"), "{err}");
    assert!(err.contains("worse.toml:1: key `qq`"), "{err}");
    std::fs::remove_file(dir.path().join("accounts/bad.toml")).unwrap();
    std::fs::remove_file(dir.path().join("accounts/worse.toml")).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--accounts"])
        .arg(dir.path().join("accounts"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
