//! Shards end to end: real `qqfleet run --shard I/N` processes on one `accounts/` folder and
//! one simulator (in this process), all on 127.0.0.1; and `qqfleet account export/import`.
//!
//! What a second run of one account would look like from the server's side is a second
//! login (§12: it kicks the first): the simulator counts full logins (`logins`), resumes and
//! relinks per QQ number, which is what these tests check, besides every process's own view.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod fleet_common;
use fleet_common::{
    get, http, post, rand_suffix, sigterm, sim, tail_n, wait_exit, write_account, Fleet, FleetRun,
    Sim,
};

const BIN: &str = env!("CARGO_BIN_EXE_qqfleet");

/// Starts `qqfleet run` with `extra` arguments and waits for its admin API line.
fn start(dir: &Path, data: &str, sim: &Sim, extra: &[String]) -> Fleet {
    FleetRun::new(BIN, dir, &sim.base)
        .data(dir.join(data))
        .stderr(dir.join(format!("{data}-{}.stderr", rand_suffix())))
        .args(extra)
        .start()
}

/// The last 30 lines of a fleet's log.
fn tail(p: &Path) -> String {
    tail_n(p, 30)
}

/// Starts shard `i` of `n` on data folder `data-<i>` (its own volume, as in a StatefulSet).
fn start_shard(dir: &Path, sim: &Sim, i: u32, n: u32, handoff: Option<&Path>) -> Fleet {
    let mut extra = vec!["--shard".to_string(), format!("{i}/{n}")];
    if let Some(h) = handoff {
        extra.push("--handoff".into());
        extra.push(h.display().to_string());
    }
    start(dir, &format!("data-{i}"), sim, &extra)
}

fn account_toml(qq: u64, send_per_minute: u32) -> String {
    format!(
        "qq = {qq}\n[supervision]\nqr_check_secs = 1\n[limits]\nsend_per_minute = {send_per_minute}\nsend_burst = 1\ntarget_per_minute = 600\ntarget_burst = 50\n"
    )
}

async fn accounts(f: &Fleet) -> Vec<Value> {
    match http().get(format!("{}/api/accounts", f.api)).send().await {
        Ok(r) if r.status() == 200 => r.json().await.unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// id → (state, shard) as one process lists them.
async fn states(f: &Fleet) -> BTreeMap<String, (String, Option<u64>)> {
    accounts(f)
        .await
        .into_iter()
        .map(|a| {
            (
                a["id"].as_str().unwrap().to_string(),
                (
                    a["state"].as_str().unwrap().to_string(),
                    a["shard"].as_u64(),
                ),
            )
        })
        .collect()
}

async fn sim_account(sim: &Sim, qq: u64) -> Value {
    get(&format!("{}/sim/accounts/{qq}", sim.base)).await
}

/// Logins on an existing session (cookie replay, or a relink of a live one): how a restarted
/// or moved account comes back without a scan.
fn comebacks(a: &Value) -> u64 {
    a["resumes"].as_u64().unwrap() + a["relinks"].as_u64().unwrap()
}

/// The phone: scans every QR code any of `fleets` shows, as the account's QQ number.
async fn scan_waiting(fleets: &[&Fleet], sim: &Sim, qq_of: &HashMap<String, u64>) {
    for f in fleets {
        for a in accounts(f).await {
            if a["state"] != "awaiting_scan" {
                continue;
            }
            let id = a["id"].as_str().unwrap();
            let Ok(r) = http()
                .get(format!("{}/api/accounts/{id}/qr", f.api))
                .send()
                .await
            else {
                continue;
            };
            if r.status() != 200 {
                continue;
            }
            let png = r.bytes().await.unwrap();
            let Some(url) = qqfleet::fleet::login::decode_qr(&png) else {
                continue;
            };
            let Some(token) = url.split("k=").nth(1).and_then(|s| s.split('&').next()) else {
                continue;
            };
            let _ = post(
                &format!("{}/sim/qr/scan", sim.base),
                json!({"token": token, "qq": qq_of[id], "confirm": true}),
            )
            .await;
        }
    }
}

/// Waits until every account is online on exactly its owner and `elsewhere` (with the right
/// shard) on every other process, scanning QR codes on the way if `scan`.
async fn until_placed(
    fleets: &[&Fleet],
    n: u32,
    sim: &Sim,
    qq_of: &HashMap<String, u64>,
    scan: bool,
    within: Duration,
) {
    let end = Instant::now() + within;
    loop {
        if scan {
            scan_waiting(fleets, sim, qq_of).await;
        }
        let mut wrong = Vec::new();
        for (i, f) in fleets.iter().enumerate() {
            let st = states(f).await;
            for id in qq_of.keys() {
                let owner = qqfleet::shard::owner(id, n);
                let want = if owner == i as u32 {
                    ("online".to_string(), None)
                } else {
                    ("elsewhere".to_string(), Some(u64::from(owner)))
                };
                if st.get(id) != Some(&want) {
                    wrong.push(format!(
                        "{id} on shard {i}: {:?}, want {want:?}",
                        st.get(id)
                    ));
                }
            }
        }
        if wrong.is_empty() {
            return;
        }
        if Instant::now() > end {
            let logs: Vec<String> = fleets.iter().map(|f| tail(&f.stderr)).collect();
            panic!(
                "accounts not placed: {:?} ...\n--- logs ---\n{}",
                &wrong[..wrong.len().min(8)],
                logs.join("\n---\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Fails if any account is active (past `starting`, not `elsewhere`) on two processes.
async fn active_twice(fleets: &[&Fleet]) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for f in fleets {
        for (id, (state, _)) in states(f).await {
            if !matches!(state.as_str(), "elsewhere" | "starting" | "invalid") {
                *seen.entry(id).or_default() += 1;
            }
        }
    }
    seen.into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(id, _)| id)
        .collect()
}

/// Three shards on one folder of 30 accounts; SIGKILL and restart of one; a reshard to four
/// with a handoff folder, with messages queued on a moving account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shards_share_thirty_accounts_survive_a_kill_and_reshard_to_four() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let handoff = dir.path().join("handoff");
    let mut qq_of = HashMap::new();
    for i in 0..30u64 {
        let id = format!("bot{i:02}");
        // One send a second on every account: a queue outlives the move below.
        write_account(dir.path(), &id, &account_toml(30_001 + i, 60));
        qq_of.insert(id, 30_001 + i);
    }
    let mut shards: Vec<Fleet> = (0..3)
        .map(|i| start_shard(dir.path(), &sim, i, 3, Some(&handoff)))
        .collect();
    {
        let refs: Vec<&Fleet> = shards.iter().collect();
        until_placed(&refs, 3, &sim, &qq_of, true, Duration::from_secs(60)).await;
        for f in &refs {
            let r = http()
                .get(format!("{}/readyz", f.api))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{:?}", r.text().await);
        }
        // The metrics of a shard count its accounts once, the others as elsewhere.
        let m = http()
            .get(format!("{}/metrics", refs[0].api))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let mine = qq_of
            .keys()
            .filter(|id| qqfleet::shard::owner(id, 3) == 0)
            .count();
        assert!(
            m.contains(&format!("qqfleet_accounts{{state=\"online\"}} {mine}")),
            "{m}"
        );
        assert!(m.contains(&format!(
            "qqfleet_accounts{{state=\"elsewhere\"}} {}",
            30 - mine
        )));
        let other = qq_of
            .keys()
            .find(|id| qqfleet::shard::owner(id, 3) != 0)
            .unwrap();
        assert!(
            !m.contains(&format!("account=\"{other}\"")),
            "no per-account series for an account run elsewhere"
        );
        // Commands for it are refused here, naming the shard to ask.
        let r = post(
            &format!("{}/api/accounts/{other}/send", refs[0].api),
            json!({"kind": "buddy", "to": 1, "text": "x"}),
        )
        .await;
        assert_eq!(r.status(), 409);
        let owner = qqfleet::shard::owner(other, 3);
        let body = r.text().await.unwrap();
        assert!(body.contains(&format!("runs on shard {owner}/3")), "{body}");
    }
    for (id, qq) in &qq_of {
        let a = sim_account(&sim, *qq).await;
        assert_eq!(
            (a["logins"].as_u64(), comebacks(&a), a["sessions"].as_u64()),
            (Some(1), 0, Some(1)),
            "{id}: one login, no second one: {a}"
        );
    }

    // A file added while they run: the watchers apply the same split.
    write_account(dir.path(), "late", &account_toml(30_031, 60));
    qq_of.insert("late".to_string(), 30_031);
    {
        let refs: Vec<&Fleet> = shards.iter().collect();
        until_placed(&refs, 3, &sim, &qq_of, true, Duration::from_secs(30)).await;
        let owner = qqfleet::shard::owner("late", 3);
        let ledger =
            std::fs::read_to_string(handoff.join("running").join(format!("shard-{owner}.json")))
                .unwrap();
        assert!(ledger.contains("\"late\""), "its owner lists it: {ledger}");
    }

    // SIGKILL shard 1 and start it again on its data: its accounts resume, no scan.
    shards[1].child.kill().unwrap();
    shards[1].child.wait().unwrap();
    shards[1] = start_shard(dir.path(), &sim, 1, 3, Some(&handoff));
    {
        let refs: Vec<&Fleet> = shards.iter().collect();
        until_placed(&refs, 3, &sim, &qq_of, false, Duration::from_secs(30)).await;
    }
    for (id, qq) in &qq_of {
        let a = sim_account(&sim, *qq).await;
        // Shard 1's accounts came back once without a scan; the others never noticed.
        let back = u64::from(qqfleet::shard::owner(id, 3) == 1);
        assert_eq!(
            (a["logins"].as_u64(), comebacks(&a), a["sessions"].as_u64()),
            (Some(1), back, Some(1)),
            "{id}: {a}"
        );
    }

    // Queue messages on an account that moves to the new shard 3, while it sends one a second.
    let moving: Vec<&String> = qq_of
        .keys()
        .filter(|id| qqfleet::shard::owner(id, 4) == 3)
        .collect();
    assert!(moving.len() >= 3, "{moving:?}");
    let m_id = moving[0].clone();
    let m_qq = qq_of[&m_id];
    let old = qqfleet::shard::owner(&m_id, 3) as usize;
    let friend = get(&format!("{}/sim/accounts/{m_qq}/contacts", sim.base)).await;
    let (friend_qq, uin) = (
        friend["friends"][0]["qq"].as_u64().unwrap(),
        friend["friends"][0]["uin"].as_u64().unwrap(),
    );
    // The sender needs the contacts (names survive a new session, uins do not).
    let end = Instant::now() + Duration::from_secs(15);
    while sim_account(&sim, m_qq).await["calls"]["get_user_friends2"]
        .as_u64()
        .unwrap_or(0)
        == 0
    {
        assert!(Instant::now() < end, "contacts never fetched");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..8 {
        let r = post(
            &format!("{}/api/accounts/{m_id}/send", shards[old].api),
            json!({"kind": "buddy", "to": uin, "text": format!("moved{i}")}),
        )
        .await;
        assert_eq!(r.status(), 202, "{:?}", r.text().await);
    }
    let sent = || async {
        get(&format!("{}/sim/sent?qq={m_qq}", sim.base))
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let end = Instant::now() + Duration::from_secs(15);
    while sent().await.is_empty() {
        assert!(Instant::now() < end, "nothing sent");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Reshard: stop the three, start shard 3 of 4 FIRST (it must wait for the others'
    // handoff, not log anyone in), then shards 0..2 of 4.
    for f in &shards {
        sigterm(&f.child);
    }
    for f in &mut shards {
        assert!(wait_exit(&mut f.child, Duration::from_secs(15)).is_some());
    }
    let before = sent().await.len();
    assert!(
        before < 8,
        "the stop came too late to test anything ({before})"
    );
    let new3 = start_shard(dir.path(), &sim, 3, 4, Some(&handoff));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let st = states(&new3).await;
    for id in &moving {
        let (state, _) = &st[*id];
        assert_eq!(state, "starting", "{id} must wait for its handoff: {st:?}");
    }
    let r = http()
        .get(format!("{}/readyz", new3.api))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "waiting on another shard's handoff does not make it unready"
    );
    let mut new: Vec<Fleet> = Vec::new();
    for i in 0..3 {
        new.push(start_shard(dir.path(), &sim, i, 4, Some(&handoff)));
        let mut refs: Vec<&Fleet> = new.iter().collect();
        refs.push(&new3);
        let twice = active_twice(&refs).await;
        assert!(twice.is_empty(), "active on two shards: {twice:?}");
    }
    new.push(new3);
    {
        let refs: Vec<&Fleet> = new.iter().collect();
        // Watch for a double run while everything settles.
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            let twice = active_twice(&refs).await;
            assert!(twice.is_empty(), "active on two shards: {twice:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        until_placed(&refs, 4, &sim, &qq_of, false, Duration::from_secs(40)).await;
    }
    let end = Instant::now() + Duration::from_secs(30);
    while sent().await.len() < 8 {
        assert!(
            Instant::now() < end,
            "queued messages not delivered: {:?}",
            sent().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let texts: Vec<String> = sent()
        .await
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect();
    let want: Vec<String> = (0..8).map(|i| format!("moved{i}")).collect();
    assert_eq!(texts, want, "each queued message once, in order");
    assert!(sent().await.iter().all(|m| m["to"] == friend_qq));
    for (id, qq) in &qq_of {
        let a = sim_account(&sim, *qq).await;
        assert_eq!(a["logins"], 1, "{id}: never a new scan: {a}");
        assert_eq!(a["sessions"], 1, "{id}: one live session: {a}");
        // Exactly one comeback per restart of its owner (the kill of shard 1, the reshard):
        // a second process running it would have logged in on the session once more.
        let restarts = u64::from(qqfleet::shard::owner(id, 3) == 1) + 1;
        assert_eq!(comebacks(&a), restarts, "{id}: {a}");
    }
    let left: Vec<_> = std::fs::read_dir(&handoff)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "qqacct"))
        .collect();
    assert!(left.is_empty(), "handoff files are removed once imported");
}

fn qqfleet_account(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("account")
        .args(args)
        .output()
        .unwrap()
}

/// `qqfleet account export` and `import` through the real binary: the account resumes from
/// another data folder without a scan; a busy data folder, a damaged file and a different
/// existing state are refused with a clear message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_import_moves_an_account_between_data_folders() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    write_account(dir.path(), "a", &account_toml(30_101, 600));
    let qq_of: HashMap<String, u64> = [("a".to_string(), 30_101)].into();
    let mut f = start(dir.path(), "data", &sim, &[]);
    until_placed(&[&f], 1, &sim, &qq_of, true, Duration::from_secs(30)).await;
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    // The data folder is in use.
    let out = qqfleet_account(&["export", "--data", d, "a"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use by another qqfleet process"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sigterm(&f.child);
    assert!(wait_exit(&mut f.child, Duration::from_secs(15)).is_some());
    let out = qqfleet_account(&["export", "--data", d, "a"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = dir.path().join("a.qqacct");
    std::fs::write(&file, &out.stdout).unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["format"].as_str(), v["version"].as_u64()),
        (Some("qqfleet-account"), Some(1))
    );
    assert!(v["trees"]["sessions"]
        .as_array()
        .is_some_and(|s| s.len() == 1));
    let out = qqfleet_account(&["export", "--data", d, "nobody"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no stored state for account `nobody`"));

    // A damaged copy is refused and writes nothing.
    let data2 = dir.path().join("data2");
    let d2 = data2.to_str().unwrap();
    let mut bad = out_text(&file);
    bad = bad.replacen("\"exported_at\": ", "\"exported_at\": 1", 1);
    let bad_file = dir.path().join("bad.qqacct");
    std::fs::write(&bad_file, bad).unwrap();
    let out = qqfleet_account(&["import", "--data", d2, bad_file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("integrity check failed"));

    let out = qqfleet_account(&["import", "--data", d2, file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = qqfleet_account(&["import", "--data", d2, file.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing changed"));

    // The copy runs from the new folder: a resume, not a new scan.
    let before = sim_account(&sim, 30_101).await;
    let mut f2 = start(dir.path(), "data2", &sim, &[]);
    until_placed(&[&f2], 1, &sim, &qq_of, false, Duration::from_secs(30)).await;
    let after = sim_account(&sim, 30_101).await;
    assert_eq!(after["logins"], 1, "{after}");
    assert_eq!(comebacks(&after), comebacks(&before) + 1, "{after}");
    // While it runs, the folder is in use; once stopped, its state (a newer session) differs
    // from the file: refused without --force, replaced with it.
    let out = qqfleet_account(&["import", "--data", d2, file.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use by another qqfleet process"));
    sigterm(&f2.child);
    assert!(wait_exit(&mut f2.child, Duration::from_secs(15)).is_some());
    let out = qqfleet_account(&["import", "--data", d2, file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--force"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = qqfleet_account(&["import", "--data", d2, "--force", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn out_text(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

/// Bad shard arguments are refused with a clear message; without `--handoff`, an account a
/// shard owns but has no state for says in the log why it needs a scan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_arguments_and_a_move_without_handoff() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    for i in 0..6u64 {
        write_account(dir.path(), &format!("m{i}"), &account_toml(30_201 + i, 60));
    }
    let run = |extra: &[&str]| {
        Command::new(BIN)
            .args(["run", "--accounts"])
            .arg(dir.path().join("accounts"))
            .arg("--data")
            .arg(dir.path().join("never"))
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&["--shard", "3/3"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--shard `3/3`: expected I/N"));
    let out = run(&["--shard-from-hostname"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--shards"));

    let f = start(dir.path(), "data", &sim, &["--shard".into(), "1/2".into()]);
    let mine: Vec<String> = (0..6)
        .map(|i| format!("m{i}"))
        .filter(|id| qqfleet::shard::owner(id, 2) == 1)
        .collect();
    assert!(!mine.is_empty());
    let said = |log: &str, id: &str| {
        log.lines()
            .any(|l| l.contains(&format!("account=\"{id}\"")) && l.contains("without --handoff"))
    };
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let log = std::fs::read_to_string(&f.stderr).unwrap_or_default();
        if mine.iter().all(|id| said(&log, id)) {
            // Only for its own accounts: the others run elsewhere.
            for i in 0..6 {
                let id = format!("m{i}");
                assert_eq!(said(&log, &id), mine.contains(&id), "{id}:\n{log}");
            }
            break;
        }
        assert!(
            Instant::now() < end,
            "no reason logged for {mine:?}:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
