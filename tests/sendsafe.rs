//! Sending safely across crashes (issue 11): pacing that survives a restart, `on_uncertain =
//! "confirm"` (the account's own echo decides an uncertain send), the crash matrix and
//! storage faults. The real `qqfleet run` binary against the real simulator on 127.0.0.1;
//! the fleet is a child process so it can be SIGKILLed.
//!
//! Every wait is a poll with a deadline; the simulator holds polls 1 s.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod fleet_common;
mod sim_common;
use fleet_common::{
    account, eventually_every, get, post, serve_sim, tail, token_file, wait_state, write_account,
    Fleet, FleetRun, Sim,
};

const BIN: &str = env!("CARGO_BIN_EXE_qqfleet");

/// The simulator with 1 s polls and the given anti-spam rules.
async fn sim_with(cfg: qqfleet::sim::SimConfig) -> Sim {
    let cfg = qqfleet::sim::SimConfig {
        hold: Duration::from_secs(1),
        ..cfg
    };
    serve_sim(cfg).await
}

/// No anti-spam rule: tests that are not about pacing.
fn quiet_sim() -> qqfleet::sim::SimConfig {
    qqfleet::sim::SimConfig {
        send_min_interval: Duration::ZERO,
        target_burst_per_min: 0,
        ..Default::default()
    }
}

/// Starts `qqfleet run --sim-url` on `dir/<data>` and waits for its admin API line.
fn start_fleet(dir: &Path, data: &Path, sim: &Sim, env: &[(&str, &str)]) -> Fleet {
    FleetRun::new(BIN, dir, &sim.base)
        .data(data)
        .rust_log("info,qqfleet=debug")
        .env(env)
        .start()
}

/// Polls `f` every 50 ms until it returns `Some`, or panics with `what` after `within`.
async fn eventually<T, F, Fut>(what: &str, within: Duration, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually_every(what, within, Duration::from_millis(50), f).await
}

/// The phone, polling the QR code every 50 ms like [`eventually`].
async fn scan(f: &Fleet, sim_base: &str, id: &str, qq: u64) {
    fleet_common::scan_every(f, sim_base, id, qq, Duration::from_millis(50)).await
}

/// [`scan`], then online within 20 s.
async fn login(f: &Fleet, sim_base: &str, id: &str, qq: u64) {
    fleet_common::login_every(f, sim_base, id, qq, Duration::from_millis(50)).await
}

async fn sent(sim: &Sim, qq: u64) -> Vec<Value> {
    get(&format!("{}/sim/sent?qq={qq}", sim.base))
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn sent_texts(sim: &Sim, qq: u64) -> Vec<String> {
    sent(sim, qq)
        .await
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Waits until `text` was sent by `qq`.
async fn until_sent(sim: &Sim, qq: u64, text: &str, within: Duration) {
    eventually(&format!("{text:?} sent"), within, || async {
        sent_texts(sim, qq)
            .await
            .iter()
            .any(|t| t == text)
            .then_some(())
    })
    .await;
}

async fn contacts(sim: &Sim, qq: u64) -> Value {
    get(&format!("{}/sim/accounts/{qq}/contacts", sim.base)).await
}

async fn inject(sim: &Sim, body: Value) {
    let r = post(&format!("{}/sim/inject", sim.base), body).await;
    assert!(r.status().is_success(), "inject: {:?}", r.text().await);
}

async fn fault(sim: &Sim, body: Value) {
    let r = post(&format!("{}/sim/faults", sim.base), body).await;
    assert!(r.status().is_success(), "fault: {:?}", r.text().await);
}

async fn outbox(f: &Fleet, id: &str) -> Value {
    get(&format!("{}/api/accounts/{id}/outbox", f.api)).await
}

/// Each of `want` exactly once in `got`, nothing else.
fn assert_once(got: &[String], want: &[String], what: &str) {
    let mut g = got.to_vec();
    g.sort();
    let mut w = want.to_vec();
    w.sort();
    assert_eq!(g, w, "{what}: each exactly once");
}

/// The failure: 30 messages from 10 friends to one echo account, SIGKILL after the
/// third reply, a restart on the same data. Before pacing was persisted the restarted
/// Sender resent the fourth reply within the simulator's one-send-a-second rule, got 1202,
/// and (with `assume_delivered`) lost it. Every reply must arrive exactly once, and no two
/// sends of the account may come closer than the simulator's minimum interval (no 1202).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pacing_survives_a_sigkill_and_no_reply_is_lost() {
    let sim = sim_with(qqfleet::sim::SimConfig {
        send_min_interval: Duration::from_millis(1000),
        target_burst_per_min: 0,
        default_friends: 10,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // 40 a minute (1.5 s apart), above the simulator's 1 s with room for a loaded machine;
    // the old policy, so only the pacing can save the reply.
    write_account(
        dir.path(),
        "a",
        "qq = 21001\non_uncertain = \"assume_delivered\"\n[supervision]\nqr_check_secs = 1\n\
         [limits]\nsend_per_minute = 40\nsend_burst = 1\ntarget_per_minute = 600\ntarget_burst = 50\n",
    );
    let mut f = start_fleet(dir.path(), &data, &sim, &[]);
    login(&f, &sim.base, "a", 21001).await;
    let c = contacts(&sim, 21001).await;
    let friends: Vec<u64> = c["friends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["qq"].as_u64().unwrap())
        .collect();
    assert_eq!(friends.len(), 10, "{c}");
    let want: Vec<String> = (0..30).map(|i| format!("q{i}")).collect();
    for (i, text) in want.iter().enumerate() {
        inject(
            &sim,
            json!({"qq": 21001, "kind": "buddy", "from": friends[i % 10], "text": text}),
        )
        .await;
    }
    // After the third reply, once all 30 are recorded (an event the server handed out but
    // the process never read would be lost to the kill whatever the pacing).
    eventually("the third reply", Duration::from_secs(30), || async {
        let log = std::fs::read_to_string(&f.stderr).unwrap_or_default();
        let received = log.matches("message received").count();
        (received >= 30 && sent(&sim, 21001).await.len() >= 3).then_some(())
    })
    .await;
    f.child.kill().unwrap(); // SIGKILL
    f.child.wait().unwrap();
    drop(f);
    let f = start_fleet(dir.path(), &data, &sim, &[]);
    wait_state(&f, "a", "online", Duration::from_secs(20)).await;
    // The outbox drained and (at least) all but one delivered: then look at what arrived.
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let ob = outbox(&f, "a").await;
        let idle = ob["pending"].as_array().is_some_and(|p| p.is_empty());
        let n = sent(&sim, 21001).await.len();
        if idle && n >= 29 {
            break;
        }
        assert!(
            Instant::now() < end,
            "the outbox did not drain: {n} sent, outbox {ob}\n{}",
            tail(&f.stderr)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = sent_texts(&sim, 21001).await;
    assert_once(&got, &want, "replies across the SIGKILL");
    // No send refused for speed: the gaps the simulator saw are all ≥ 1 s.
    let acc = get(&format!("{}/sim/accounts/21001", sim.base)).await;
    let log = std::fs::read_to_string(&f.stderr).unwrap_or_default();
    assert!(
        !log.contains("\"uncertain\"") && !log.contains("result=uncertain"),
        "a send drew 1202 after the restart: {acc}\n{}",
        tail(&f.stderr)
    );
}

/// Every number under a `uin`, `muin` or `mem_uin` key anywhere in `v`.
fn uins_in(v: &Value, out: &mut Vec<u64>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if matches!(k.as_str(), "uin" | "muin" | "mem_uin") {
                    if let Some(n) = x.as_u64() {
                        out.push(n);
                    }
                }
                uins_in(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| uins_in(x, out)),
        _ => {}
    }
}

/// The simulator echoes an account's own sends as WEBQQ.md §5.4 says: a friend message
/// comes back with the text only and no recipient (from and to are the own uin); a group
/// or discussion message names its conversation but comes from a pseudo uin that is stable
/// for the session, is not the own uin and is in no member list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_echoes_own_sends_as_section_5_4_says() {
    use sim_common::{D_REF, S_REF};
    let h = sim_common::start(sim_common::cfg()).await;
    let mut c = sim_common::login(&h.base_url(), 21101).await;
    let f = c.friends().await;
    let friend = f["result"]["friends"][0]["uin"].as_u64().unwrap();
    let ptwebqq = c.cookie("ptwebqq").unwrap();
    let g = c
        .post_r(
            "s.web2.qq.com/api/get_group_name_list_mask2",
            S_REF,
            &json!({"vfwebqq": c.vfwebqq, "hash": sim_common::hash_p(c.qq, &ptwebqq)}),
        )
        .await;
    let gid = g["result"]["gnamelist"][0]["gid"].as_u64().unwrap();
    let code = g["result"]["gnamelist"][0]["code"].as_u64().unwrap();
    let info = c
        .get_json(
            &format!(
                "s.web2.qq.com/api/get_group_info_ext2?gcode={code}&vfwebqq={}&t=1",
                c.vfwebqq
            ),
            S_REF,
        )
        .await;
    let dl = c
        .get_json(
            &format!(
                "s.web2.qq.com/api/get_discus_list?clientid=53999199&psessionid={}&vfwebqq={}&t=1",
                c.psessionid, c.vfwebqq
            ),
            S_REF,
        )
        .await;
    let did = dl["result"]["dnamelist"][0]["did"].as_u64().unwrap();
    let di = c
        .get_json(
            &format!(
                "d1.web2.qq.com/channel/get_discu_info?did={did}&vfwebqq={}&clientid=53999199&psessionid={}&t=1",
                c.vfwebqq, c.psessionid
            ),
            D_REF,
        )
        .await;
    let mut members = Vec::new();
    uins_in(&info, &mut members);
    uins_in(&di, &mut members);
    uins_in(&f, &mut members);
    assert!(members.len() > 3, "{info} {di}");
    // The received content: a font item, then strings (and faces, none here).
    let text = |v: &Value| -> String {
        v["value"]["content"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    };

    // A friend message: text only, no recipient.
    let r = c
        .send(
            "send_buddy_msg2",
            ("to", json!(friend)),
            &[json!("to a friend")],
        )
        .await;
    assert_eq!(r["errCode"], 0, "{r}");
    let e = c.poll_event().await;
    assert_eq!(e["poll_type"], "message", "{e}");
    assert_eq!(e["value"]["from_uin"], 21101, "{e}");
    assert_eq!(e["value"]["to_uin"], 21101, "no recipient: {e}");
    assert_eq!(text(&e), "to a friend");

    // Group and discussion: the conversation, from the session's pseudo echo uin.
    let mut echo_uins = Vec::new();
    for (i, (ep, field, id, poll_type)) in [
        ("send_qun_msg2", "group_uin", gid, "group_message"),
        ("send_discu_msg2", "did", did, "discu_message"),
        ("send_qun_msg2", "group_uin", gid, "group_message"),
    ]
    .into_iter()
    .enumerate()
    {
        let body = format!("to a conversation {i}");
        let r = c.send(ep, (field, json!(id)), &[json!(body)]).await;
        assert_eq!(r["errCode"], 0, "{r}");
        let e = c.poll_event().await;
        assert_eq!(e["poll_type"], poll_type, "{e}");
        assert_eq!(e["value"]["from_uin"], id, "{e}");
        assert_eq!(text(&e), body);
        let send_uin = e["value"]["send_uin"].as_u64().unwrap();
        assert_ne!(send_uin, 21101, "not the own uin: {e}");
        assert!(!members.contains(&send_uin), "in no member list: {e}");
        echo_uins.push(send_uin);
    }
    assert!(
        echo_uins.iter().all(|u| *u == echo_uins[0]),
        "stable for the session: {echo_uins:?}"
    );
    // A new session has another echo uin (pseudo uins are per session, §1).
    let mut c2 = sim_common::login(&h.base_url(), 21101).await;
    let g = c2
        .post_r(
            "s.web2.qq.com/api/get_group_name_list_mask2",
            S_REF,
            &json!({"vfwebqq": c2.vfwebqq, "hash": sim_common::hash_p(c2.qq, &c2.cookie("ptwebqq").unwrap())}),
        )
        .await;
    let gid2 = g["result"]["gnamelist"][0]["gid"].as_u64().unwrap();
    let r = c2
        .send(
            "send_qun_msg2",
            ("group_uin", json!(gid2)),
            &[json!("again")],
        )
        .await;
    assert_eq!(r["errCode"], 0, "{r}");
    let mut e = c2.poll_event().await;
    for _ in 0..5 {
        if e["poll_type"] == "group_message" {
            break;
        }
        e = c2.poll_event().await;
    }
    assert_ne!(
        e["value"]["send_uin"].as_u64().unwrap(),
        echo_uins[0],
        "{e}"
    );
}

fn fast_account(qq: u64, extra: &str) -> String {
    format!(
        "qq = {qq}\n{extra}\n[supervision]\nqr_check_secs = 1\n\n[limits]\nsend_per_minute = 300\nsend_burst = 5\ntarget_per_minute = 600\ntarget_burst = 50\n"
    )
}

async fn send_api(f: &Fleet, id: &str, body: Value) {
    let r = post(&format!("{}/api/accounts/{id}/send", f.api), body).await;
    assert_eq!(r.status(), 202, "{:?}", r.text().await);
}

/// `on_uncertain = "confirm"` (the default): a 1202 whose message was delivered is confirmed
/// by its echo (friend and group) and not resent; a 1202 whose message was not delivered is
/// resent once with the same msg_id and arrives once; one that stays unconfirmed after the
/// resend goes to the `on_unconfirmed` fallback: held with its reason, or counted delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncertain_send_is_confirmed_by_its_echo_or_resent_once() {
    let sim = sim_with(quiet_sim()).await;
    let dir = tempfile::tempdir().unwrap();
    write_account(dir.path(), "a", &fast_account(21201, ""));
    write_account(dir.path(), "b", &fast_account(21202, ""));
    write_account(
        dir.path(),
        "c",
        &fast_account(21203, "on_unconfirmed = \"assume_delivered\""),
    );
    let f = start_fleet(dir.path(), &dir.path().join("data"), &sim, &[]);
    for (id, qq) in [("a", 21201u64), ("b", 21202), ("c", 21203)] {
        login(&f, &sim.base, id, qq).await;
    }
    let friend = |c: &Value| c["friends"][0]["uin"].as_u64().unwrap();
    let ca = contacts(&sim, 21201).await;
    // a: delivered but answered 1202 (friend, then group), then not delivered once.
    fault(
        &sim,
        json!({"qq": 21201, "endpoint": "send_buddy_msg2", "retcode": 1202, "deliver": true, "count": 1}),
    )
    .await;
    fault(
        &sim,
        json!({"qq": 21201, "endpoint": "send_qun_msg2", "retcode": 1202, "deliver": true, "count": 1}),
    )
    .await;
    send_api(
        &f,
        "a",
        json!({"kind": "buddy", "to": friend(&ca), "text": "seen"}),
    )
    .await;
    let gid = ca["groups"][0]["gid"].as_u64().unwrap();
    send_api(
        &f,
        "a",
        json!({"kind": "group", "to": gid, "text": "group seen"}),
    )
    .await;
    // b and c: never delivered, answered 1202 twice (the attempt and the one resend).
    for (id, qq) in [("b", 21202u64), ("c", 21203)] {
        fault(
            &sim,
            json!({"qq": qq, "endpoint": "send_buddy_msg2", "retcode": 1202, "count": 2}),
        )
        .await;
        let c = contacts(&sim, qq).await;
        send_api(
            &f,
            id,
            json!({"kind": "buddy", "to": friend(&c), "text": "lost"}),
        )
        .await;
        send_api(
            &f,
            id,
            json!({"kind": "buddy", "to": friend(&c), "text": "after"}),
        )
        .await;
    }
    // a again: not delivered once, then the resend goes through.
    eventually("a's first two sent", Duration::from_secs(15), || async {
        (sent(&sim, 21201).await.len() >= 2).then_some(())
    })
    .await;
    fault(
        &sim,
        json!({"qq": 21201, "endpoint": "send_buddy_msg2", "retcode": 1202, "count": 1}),
    )
    .await;
    send_api(
        &f,
        "a",
        json!({"kind": "buddy", "to": friend(&ca), "text": "resent"}),
    )
    .await;
    eventually("every outbox idle", Duration::from_secs(40), || async {
        for id in ["a", "b", "c"] {
            let ob = outbox(&f, id).await;
            if !ob["pending"].as_array().is_some_and(|p| p.is_empty()) {
                return None;
            }
        }
        (sent(&sim, 21201).await.len() >= 3).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // a: each once; nothing held; the group echo was not answered (no reply loop).
    assert_eq!(
        sent_texts(&sim, 21201).await,
        ["seen", "group seen", "resent"],
        "confirmed by the echo or resent once\n{}",
        tail(&f.stderr)
    );
    let ob = outbox(&f, "a").await;
    assert!(ob["held"].as_array().unwrap().is_empty(), "{ob}");
    // The delivered ones were not sent again (a repeat would show as a dropped duplicate).
    let acc = get(&format!("{}/sim/accounts/21201", sim.base)).await;
    assert_eq!(acc["duplicates_dropped"], 0, "{acc}");
    // b: held with its reason; c: counted delivered; both went on with the next message.
    for (id, qq) in [("b", 21202u64), ("c", 21203)] {
        assert_eq!(sent_texts(&sim, qq).await, ["after"], "{id}");
    }
    let held = outbox(&f, "b").await["held"].as_array().unwrap().clone();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["text"], "lost");
    let ob = outbox(&f, "c").await;
    assert!(ob["held"].as_array().unwrap().is_empty(), "{ob}");
    let log = std::fs::read_to_string(&f.stderr).unwrap();
    for outcome in ["echo_seen", "resent", "held", "assumed_delivered"] {
        assert!(
            log.contains(&format!("outcome=\"{outcome}\""))
                || log.contains(&format!("outcome={outcome}")),
            "no {outcome} in the log"
        );
    }
}

/// The crash matrix: one data directory, one simulator, and per round a SIGKILL (or an abort
/// at a named crash point, `QQFLEET_DEBUG_CRASH_AT`) at each point, then a restart on the
/// same data. The echo account `a` is scanned once, at the start; after every restart every
/// message injected so far has exactly one reply (no message lost, none handled twice, no
/// reply doubled) and `a` was never scanned again. Only accounts killed before their scan
/// completed (waiting for it, or just hot-added) are scanned after the restart.
struct Matrix {
    sim: Sim,
    dir: tempfile::TempDir,
    data: PathBuf,
    /// Every text injected into `a` so far (each unique; the echo answers with it).
    injected: Vec<String>,
    n: usize,
    /// Per point: how many times it was crashed at.
    hits: std::collections::BTreeMap<&'static str, usize>,
}

const A: u64 = 21501;

impl Matrix {
    fn start(&self, env: &[(&str, &str)]) -> Fleet {
        let mut e = vec![("QQFLEET_DEBUG_HOOKS", "1")];
        e.extend_from_slice(env);
        start_fleet(self.dir.path(), &self.data, &self.sim, &e)
    }

    /// Injects a new unique message into `a` from its first friend.
    async fn inject(&mut self) -> String {
        self.n += 1;
        let text = format!("crash-matrix-{}", self.n);
        inject(&self.sim, json!({"qq": A, "kind": "buddy", "text": text})).await;
        self.injected.push(text.clone());
        text
    }

    /// After a restart: `a` online without a new scan, every injected message answered
    /// exactly once.
    async fn check(&self, f: &Fleet, point: &str) {
        wait_state(f, "a", "online", Duration::from_secs(30)).await;
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let got = sent_texts(&self.sim, A).await;
            if self.injected.iter().all(|t| got.contains(t)) {
                break;
            }
            assert!(
                Instant::now() < end,
                "{point}: replies missing: want {:?}, sent {got:?}\n{}",
                self.injected,
                tail(&f.stderr)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // A doubled reply would come right behind the first one.
        tokio::time::sleep(Duration::from_millis(700)).await;
        let got = sent_texts(&self.sim, A).await;
        assert_once(&got, &self.injected, point);
        let acc = get(&format!("{}/sim/accounts/{A}", self.sim.base)).await;
        assert_eq!(acc["logins"], 1, "{point}: `a` was scanned again: {acc}");
    }

    async fn killed(&mut self, mut f: Fleet, point: &'static str) {
        let _ = f.child.kill(); // SIGKILL (a no-op if a crash hook already aborted it)
        f.child.wait().unwrap();
        *self.hits.entry(point).or_default() += 1;
    }

    /// Waits for the process to abort at its crash point.
    async fn aborted(&mut self, mut f: Fleet, point: &'static str) {
        let st = fleet_common::wait_exit(&mut f.child, Duration::from_secs(20));
        assert!(
            st.is_some_and(|s| !s.success()),
            "{point}: the crash hook did not fire\n{}",
            tail(&f.stderr)
        );
        assert!(
            std::fs::read_to_string(&f.stderr)
                .unwrap_or_default()
                .contains("debug hook: crashing here"),
            "{point}: died elsewhere\n{}",
            tail(&f.stderr)
        );
        *self.hits.entry(point).or_default() += 1;
    }

    async fn round(&mut self, r: u64) {
        // 1. Waiting for a QR scan: a new account, killed while its code is shown.
        let q = format!("q{r}");
        let qq = 21600 + r;
        write_account(self.dir.path(), &q, &fast_account(qq, ""));
        let f = self.start(&[]);
        wait_state(&f, &q, "awaiting_scan", Duration::from_secs(20)).await;
        self.killed(f, "awaiting_scan").await;
        let f = self.start(&[]);
        self.check(&f, "awaiting_scan").await;
        login(&f, &self.sim.base, &q, qq).await; // its scan never completed: scanned now
        self.killed(f, "(restart)").await;

        // 2. Inside the login steps: the scan done, check_sig answered, login2 not yet.
        let s = format!("s{r}");
        let sq = 21700 + r;
        write_account(self.dir.path(), &s, &fast_account(sq, ""));
        let point = format!("after_scan:{s}");
        let f = self.start(&[("QQFLEET_DEBUG_CRASH_AT", &point)]);
        scan(&f, &self.sim.base, &s, sq).await;
        self.aborted(f, "after_scan").await;
        let f = self.start(&[]);
        self.check(&f, "after_scan").await;
        wait_state(&f, &s, "online", Duration::from_secs(30)).await;
        let acc = get(&format!("{}/sim/accounts/{sq}", self.sim.base)).await;
        assert_eq!(acc["logins"], 1, "after_scan: scanned again: {acc}");
        self.killed(f, "(restart)").await;

        // 3-4. Between recording a message and its handler; between the handler and the
        // outbox commit.
        for point in ["before_handler", "before_outbox_commit"] {
            let f = self.start(&[("QQFLEET_DEBUG_CRASH_AT", &format!("{point}:a"))]);
            wait_state(&f, "a", "online", Duration::from_secs(30)).await;
            self.inject().await;
            self.aborted(f, point).await;
            let f = self.start(&[]);
            self.check(&f, point).await;
            self.killed(f, "(restart)").await;
        }

        // 5. A send in flight: the simulator holds the reply's send 3 s.
        let f = self.start(&[]);
        wait_state(&f, "a", "online", Duration::from_secs(30)).await;
        fault(
            &self.sim,
            json!({"qq": A, "endpoint": "send_buddy_msg2", "delay_ms": 3000, "count": 1}),
        )
        .await;
        self.inject().await;
        eventually("the reply on the wire", Duration::from_secs(15), || async {
            let log = std::fs::read_to_string(&f.stderr).unwrap_or_default();
            log.lines()
                .any(|l| l.contains("send_buddy_msg2") && l.contains("request"))
                .then_some(())
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.killed(f, "send_in_flight").await;
        let f = self.start(&[]);
        self.check(&f, "send_in_flight").await;
        self.killed(f, "(restart)").await;

        // 6. Right after a send was answered, before the answer was recorded.
        let f = self.start(&[("QQFLEET_DEBUG_CRASH_AT", "send_answered:a")]);
        wait_state(&f, "a", "online", Duration::from_secs(30)).await;
        self.inject().await;
        self.aborted(f, "send_answered").await;
        let f = self.start(&[]);
        self.check(&f, "send_answered").await;
        self.killed(f, "(restart)").await;

        // 7. During a contacts refresh: the simulator holds the friend list 3 s.
        let f = self.start(&[]);
        wait_state(&f, "a", "online", Duration::from_secs(30)).await;
        fault(
            &self.sim,
            json!({"qq": A, "endpoint": "get_user_friends2", "delay_ms": 3000, "count": 1}),
        )
        .await;
        let r2 = post(
            &format!("{}/api/accounts/a/contacts/refresh", f.api),
            json!({}),
        )
        .await;
        assert!(r2.status().is_success(), "{:?}", r2.text().await);
        self.inject().await;
        tokio::time::sleep(Duration::from_millis(1000)).await;
        self.killed(f, "contacts_refresh").await;
        let f = self.start(&[]);
        self.check(&f, "contacts_refresh").await;

        // 8. During a hot-add: killed as soon as the new account shows. (A message is not
        // injected right before this kill: an event the server has handed out on a poll
        // answer the process never read is gone, on the real service as in the simulator.)
        self.inject().await;
        self.check(&f, "before hot_add").await;
        let h = format!("h{r}");
        let hq = 21800 + r;
        write_account(self.dir.path(), &h, &fast_account(hq, ""));
        eventually("the hot-added account", Duration::from_secs(15), || async {
            account(&f, &h).await.map(|_| ())
        })
        .await;
        self.killed(f, "hot_add").await;
        let f = self.start(&[]);
        self.check(&f, "hot_add").await;
        login(&f, &self.sim.base, &h, hq).await; // never scanned before the kill
        self.killed(f, "(restart)").await;
    }
}

/// Rounds of the crash matrix: `CRASH_ROUNDS` (default 1 here; `make crash` runs more).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_matrix_loses_nothing_and_doubles_nothing() {
    let rounds: u64 = std::env::var("CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let sim = sim_with(quiet_sim()).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut m = Matrix {
        sim,
        dir,
        data,
        injected: Vec::new(),
        n: 0,
        hits: Default::default(),
    };
    write_account(m.dir.path(), "a", &fast_account(A, ""));
    let f = m.start(&[]);
    login(&f, &m.sim.base, "a", A).await;
    m.inject().await;
    m.check(&f, "start").await;
    drop(f);
    for r in 0..rounds {
        m.round(r).await;
    }
    m.hits.remove("(restart)");
    eprintln!("crash matrix: {rounds} round(s): {:?}", m.hits);
    assert_eq!(m.hits.len(), 8, "{:?}", m.hits);
    assert!(m.hits.values().all(|n| *n as u64 == rounds), "{:?}", m.hits);
}

/// A small tmpfs mounted for one test (tests run as root, in CI too), unmounted on drop.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .expect("mount(8)");
        assert!(st.success(), "mounting a tmpfs needs root: {st}");
        Tmpfs {
            path: path.to_path_buf(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Writes a file until the filesystem is full; returns its path.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let p = dir.join("filler");
    let mut f = std::fs::File::create(&p).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    loop {
        if f.write_all(&chunk).is_err() || f.flush().is_err() {
            break;
        }
    }
    // Tail bytes too: not a page left.
    while f.write_all(&[0u8; 512]).is_ok() {}
    let _ = f.sync_all();
    p
}

/// After a storage fault: SIGTERM, a restart on the same data, and one more message. Account
/// `a` (QQ `qq`) is online again without a new scan and every accepted reply, that one too,
/// was delivered exactly once.
async fn restart_finds_everything_intact(
    mut f: Fleet,
    dir: &Path,
    data: &Path,
    sim: &Sim,
    qq: u64,
    accepted: &mut Vec<String>,
) {
    fleet_common::sigterm(&f.child);
    fleet_common::wait_exit(&mut f.child, Duration::from_secs(10)).expect("stops");
    drop(f);
    let f = start_fleet(dir, data, sim, &[]);
    wait_state(&f, "a", "online", Duration::from_secs(30)).await;
    inject(sim, json!({"qq": qq, "kind": "buddy", "text": "restarted"})).await;
    accepted.push("restarted".into());
    until_sent(sim, qq, "restarted", Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_once(&sent_texts(sim, qq).await, accepted, "after the restart");
    let acc = get(&format!("{}/sim/accounts/{qq}", sim.base)).await;
    assert_eq!(acc["logins"], 1, "no new scan: {acc}");
}

/// After a storage fault is over: every accepted message reaches the simulator, and a new send
/// ("after") is accepted again.
async fn kept_answered_then_one_more(
    sim: &Sim,
    qq: u64,
    f: &Fleet,
    uin: u64,
    accepted: &mut Vec<String>,
) {
    eventually(
        "the kept messages answered",
        Duration::from_secs(30),
        || async {
            let got = sent_texts(sim, qq).await;
            accepted.iter().all(|t| got.contains(t)).then_some(())
        },
    )
    .await;
    let r = post(
        &format!("{}/api/accounts/a/send", f.api),
        json!({"kind": "buddy", "to": uin, "text": "after"}),
    )
    .await;
    assert_eq!(r.status(), 202, "{:?}", r.text().await);
    accepted.push("after".into());
}

/// Sends to account `a` through the admin API until one is refused with 503 (within 15 s),
/// adding each accepted text to `accepted`; the refusal must say what is wrong and name the
/// account.
async fn sends_until_refused(f: &Fleet, uin: u64, accepted: &mut Vec<String>, fault: &str) {
    let end = Instant::now() + Duration::from_secs(15);
    let err = loop {
        let text = format!("send-{}", accepted.len());
        let r = post(
            &format!("{}/api/accounts/a/send", f.api),
            json!({"kind": "buddy", "to": uin, "text": text}),
        )
        .await;
        match r.status().as_u16() {
            202 => accepted.push(text),
            503 => break r.json::<Value>().await.unwrap(),
            s => panic!("send answered {s}: {:?}", r.text().await),
        }
        assert!(Instant::now() < end, "no 503 on {fault}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let msg = err["error"].as_str().unwrap_or_default();
    assert!(
        msg.contains("refuses writes") && msg.contains("`a`"),
        "the error says what is wrong: {err}"
    );
}

/// A full disk: the account refuses sends with 503 and a clear error, polling pauses and
/// what it received meanwhile is kept, not lost; when space returns it recovers by itself
/// (every message answered exactly once, sends accepted again), and a restart on the same
/// data finds everything intact (no new scan, nothing answered twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_pauses_the_account_and_it_recovers_by_itself() {
    let sim = sim_with(quiet_sim()).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let disk = Tmpfs::mount(&data, "24m");
    write_account(dir.path(), "a", &fast_account(21901, ""));
    // A OneBot account beside it: its bot's id tables and event queue live in the same
    // database, and must follow the store when it reopens after the fault.
    write_account(
        dir.path(),
        "b",
        &fast_account(21902, "handler = \"onebot\""),
    );
    let f = start_fleet(dir.path(), &data, &sim, &[]);
    login(&f, &sim.base, "a", 21901).await;
    login(&f, &sim.base, "b", 21902).await;
    let uin = contacts(&sim, 21901).await["friends"][0]["uin"]
        .as_u64()
        .unwrap();
    inject(
        &sim,
        json!({"qq": 21901, "kind": "buddy", "text": "before"}),
    )
    .await;
    eventually("the first reply", Duration::from_secs(15), || async {
        (sent(&sim, 21901).await.len() == 1).then_some(())
    })
    .await;

    let filler = fill(&disk.path);
    // Sends are refused with 503 and a clear error (one may still slip into a buffer that
    // was flushed before the disk filled: it must then be delivered like any other).
    let mut accepted = vec!["before".to_string()];
    sends_until_refused(&f, uin, &mut accepted, "a full disk").await;
    // Messages arriving now are kept, not handled (nothing can record them) and not lost.
    for t in ["during-1", "during-2"] {
        inject(&sim, json!({"qq": 21901, "kind": "buddy", "text": t})).await;
        accepted.push(t.to_string());
    }
    eventually("the account says why", Duration::from_secs(15), || async {
        let a = account(&f, "a").await?;
        a["error"]
            .as_str()
            .is_some_and(|e| e.contains("store unwritable"))
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = sent_texts(&sim, 21901).await;
    assert!(
        !during.iter().any(|t| t.starts_with("during")),
        "handled without a record: {during:?}"
    );

    // Space returns: it recovers by itself.
    std::fs::remove_file(&filler).unwrap();
    kept_answered_then_one_more(&sim, 21901, &f, uin, &mut accepted).await;
    inject(
        &sim,
        json!({"qq": 21901, "kind": "buddy", "text": "after-2"}),
    )
    .await;
    accepted.push("after-2".into());
    eventually(
        "the new ones delivered",
        Duration::from_secs(20),
        || async {
            let got = sent_texts(&sim, 21901).await;
            accepted.iter().all(|t| got.contains(t)).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_once(&sent_texts(&sim, 21901).await, &accepted, "after recovery");
    let a = account(&f, "a").await.unwrap();
    assert!(a["error"].is_null(), "{a}");
    // The OneBot account works on the reopened database: a send through its HTTP API looks
    // up the friend's id and is delivered.
    let ob = |action: &str| format!("{}/onebot/v11/b/{action}", f.api);
    let friends = get(&ob("get_friend_list")).await;
    let buid = friends["data"][0]["user_id"].as_i64().expect("a friend id");
    let body = json!({"user_id": buid, "message": "bot after recovery"});
    let v: Value = post(&ob("send_private_msg"), body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "ok", "{v}");
    until_sent(&sim, 21902, "bot after recovery", Duration::from_secs(20)).await;

    // Nothing stored is corrupted: a restart on the same data resumes, replays nothing.
    restart_finds_everything_intact(f, dir.path(), &data, &sim, 21901, &mut accepted).await;
    drop(disk);
}

/// A read-only data directory at start: the fleet refuses to start with an error naming the
/// directory (the store cannot lock nor open it), and touches nothing: once the directory is
/// writable again the account resumes its saved session without a new scan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_data_directory_is_named_and_nothing_is_lost() {
    let sim = sim_with(quiet_sim()).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let disk = Tmpfs::mount(&data, "24m");
    write_account(dir.path(), "a", &fast_account(21951, ""));
    let mut f = start_fleet(dir.path(), &data, &sim, &[]);
    login(&f, &sim.base, "a", 21951).await;
    fleet_common::sigterm(&f.child);
    fleet_common::wait_exit(&mut f.child, Duration::from_secs(10)).expect("stops");
    drop(f);
    let remount = |opt: &str| {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,{opt}")])
            .arg(&disk.path)
            .status()
            .unwrap();
        assert!(st.success(), "remount {opt}: {st}");
    };
    remount("ro");
    let out = Command::new(BIN)
        .args(["run", "--accounts"])
        .arg(dir.path().join("accounts"))
        .arg("--data")
        .arg(&data)
        .args(["--listen", "127.0.0.1:0", "--sim-url", &sim.base])
        .arg("--admin-token-file")
        .arg(token_file(dir.path()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&data.display().to_string()) && err.to_lowercase().contains("read-only"),
        "the error names the directory and the cause: {err}"
    );
    remount("rw");
    let f = start_fleet(dir.path(), &data, &sim, &[]);
    wait_state(&f, "a", "online", Duration::from_secs(30)).await;
    inject(
        &sim,
        json!({"qq": 21951, "kind": "buddy", "text": "still here"}),
    )
    .await;
    eventually("the reply", Duration::from_secs(20), || async {
        (sent_texts(&sim, 21951).await == ["still here"]).then_some(())
    })
    .await;
    let acc = get(&format!("{}/sim/accounts/21951", sim.base)).await;
    assert_eq!(acc["logins"], 1, "no new scan: {acc}");
}

/// An ext4 filesystem in a file on a loop device, mounted `errors=remount-ro` for one test:
/// the kernel's own way for a data directory to turn read-only under a running process (a
/// remount cannot, while files are open for writing). Unmounted and detached on drop.
struct Ext4 {
    image: PathBuf,
    path: PathBuf,
    dev: String,
}

impl Ext4 {
    fn mount(image: &Path, path: &Path, size_mb: u64) -> Ext4 {
        std::fs::create_dir_all(path).unwrap();
        let f = std::fs::File::create(image).unwrap();
        f.set_len(size_mb << 20).unwrap();
        drop(f);
        let st = Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(image)
            .status()
            .expect("mkfs.ext4 (e2fsprogs)");
        assert!(st.success(), "mkfs.ext4: {st}");
        let mut disk = Ext4 {
            image: image.to_path_buf(),
            path: path.to_path_buf(),
            dev: String::new(),
        };
        disk.attach_and_mount();
        disk
    }

    /// A loop device for the image, mounted at `path`.
    fn attach_and_mount(&mut self) {
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(&self.image)
            .output()
            .expect("losetup(8)");
        assert!(out.status.success(), "losetup needs root: {out:?}");
        self.dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let st = Command::new("mount")
            .args(["-t", "ext4", "-o", "errors=remount-ro", &self.dev])
            .arg(&self.path)
            .status()
            .unwrap();
        assert!(st.success(), "mount {}: {st}", self.dev);
    }

    /// The filesystem reports an error and the kernel turns it read-only (ext4's own test
    /// hook): every write, to open files too, fails with EROFS from now on.
    fn turn_read_only(&self) {
        let name = self.dev.trim_start_matches("/dev/");
        std::fs::write(format!("/sys/fs/ext4/{name}/trigger_fs_error"), "1")
            .expect("ext4's trigger_fs_error");
        let probe = std::fs::write(self.path.join("probe"), b"x");
        assert!(probe.is_err(), "the filesystem is read-only now");
    }

    /// What an operator does: detach the broken mount (the fleet still holds its files),
    /// check the filesystem, and mount it again at the same place.
    fn repair(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
        let out = Command::new("e2fsck")
            .args(["-f", "-y"])
            .arg(&self.image)
            .output()
            .expect("e2fsck");
        // 0: clean, 1: errors corrected.
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "e2fsck: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        self.attach_and_mount();
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

/// The data directory turns read-only while the fleet runs (the filesystem hit an error and
/// the kernel remounted it read-only): sends are refused with 503 and a clear error, polling
/// pauses and what was received is kept, not handled without its record; once an operator
/// has repaired the filesystem and mounted it again, the account resumes by itself (every
/// message answered exactly once, no new scan), and a restart finds everything intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_turned_read_only_pauses_the_account_and_a_repair_resumes_it() {
    let sim = sim_with(quiet_sim()).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut disk = Ext4::mount(&dir.path().join("data.img"), &data, 32);
    write_account(dir.path(), "a", &fast_account(21961, ""));
    let f = start_fleet(dir.path(), &data, &sim, &[]);
    login(&f, &sim.base, "a", 21961).await;
    let uin = contacts(&sim, 21961).await["friends"][0]["uin"]
        .as_u64()
        .unwrap();
    inject(
        &sim,
        json!({"qq": 21961, "kind": "buddy", "text": "before"}),
    )
    .await;
    until_sent(&sim, 21961, "before", Duration::from_secs(15)).await;
    let mut accepted = vec!["before".to_string()];

    disk.turn_read_only();
    sends_until_refused(&f, uin, &mut accepted, "a read-only data directory").await;
    for t in ["during-1", "during-2"] {
        inject(&sim, json!({"qq": 21961, "kind": "buddy", "text": t})).await;
        accepted.push(t.to_string());
    }
    let why = eventually("the account says why", Duration::from_secs(15), || async {
        let a = account(&f, "a").await?;
        let e = a["error"].as_str()?.to_string();
        e.contains("store unwritable").then_some(e)
    })
    .await;
    assert!(why.to_lowercase().contains("read-only"), "{why}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = sent_texts(&sim, 21961).await;
    assert!(
        !during.iter().any(|t| t.starts_with("during")),
        "handled without a record: {during:?}"
    );

    disk.repair();
    kept_answered_then_one_more(&sim, 21961, &f, uin, &mut accepted).await;
    until_sent(&sim, 21961, "after", Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_once(
        &sent_texts(&sim, 21961).await,
        &accepted,
        "after the repair",
    );
    assert!(account(&f, "a").await.unwrap()["error"].is_null());

    restart_finds_everything_intact(f, dir.path(), &data, &sim, 21961, &mut accepted).await;
    drop(disk);
}
