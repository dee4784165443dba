//! `d1.web2.qq.com/channel/*` (§3.7, §5, §6.5, §6.8-§6.11, §8, §10): login2 and relink,
//! the poll2 long poll, the warm-up, sends, and the small session calls.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rand::Rng;
use serde_json::{json, Value};

use super::auth::{channel_session, cookie_login, param, SessionCtx};
use super::config::IdleAnswer;
use super::content::decode_sent;
use super::events::{discu_event, group_event, message_event, online_buddies};
use super::faults::FaultAction;
use super::request::{inum, json_line, num, raw_json, text, Outcome, Req};
use super::state::Sim;
use super::world::{rand_hex, DedupKey, SentEntry, Session, SessionState, World, MAX_SENT};

/// Error shape of a channel endpoint (§2, fixtures `poll2_*`, `send_1202_b`, `login2_error_108`).
pub fn channel_error(endpoint: &str, code: i64) -> Value {
    match (endpoint, code) {
        ("poll2", 121) => json!({"retcode": 121, "t": "0"}),
        ("poll2", 102) => json!({"retcode": 102, "errmsg": ""}),
        ("poll2", 122) => json!({"retcode": 122, "errmsg": "wrong web client3"}),
        ("poll2", 100006) => json!({"retcode": 100006, "errmsg": ""}),
        ("poll2", c) => json!({"errmsg": "error", "retcode": c}),
        (_, 100100) => json!({"errmsg": "error!!!", "retcode": 100100}),
        (_, c) => json!({"retcode": c, "errmsg": ""}),
    }
}

fn err(endpoint: &str, code: i64, qq: Option<u64>) -> Outcome {
    Outcome::new(json_line(&channel_error(endpoint, code)), qq, Some(code))
}

/// `{"retcode":0,"result":[event]}` with `retcode` first, as the real answers were.
fn event_answer(ev: &Value, qq: u64) -> Outcome {
    events_answer(std::slice::from_ref(ev), qq)
}

/// Several events in one answer, in the order given (oldest first).
fn events_answer(evs: &[Value], qq: u64) -> Outcome {
    // Serialized in place into one buffer sized for the usual event (a message is 300-500
    // bytes): no string of its own per event, and no regrowth under the world's lock.
    let mut body = Vec::with_capacity(32 + 512 * evs.len());
    body.extend_from_slice(b"{\"retcode\":0,\"result\":[");
    for (i, ev) in evs.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        // Writing a Value to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut body, ev);
    }
    body.extend_from_slice(b"]}\n");
    // serde_json writes UTF-8 only.
    let body = String::from_utf8(body).unwrap_or_default();
    Outcome::new(raw_json(body), Some(qq), Some(0))
}

/// The E3 send success, byte for byte (§8.2, §16).
fn send_ok(qq: u64) -> Outcome {
    Outcome::new(
        raw_json("{\"errCode\":0,\"msg\":\"send ok\"}\n".to_string()),
        Some(qq),
        Some(0),
    )
}

fn ok(v: Value, qq: u64) -> Outcome {
    Outcome::new(json_line(&v), Some(qq), Some(0))
}

/// A psessionid as the real ones were: hex of an Erlang term holding a pid, the uin, the
/// skey and the vfwebqq bytes (§4.7). Clients treat it as opaque.
pub fn mint_psessionid(qq: u64, skey: &str, vfwebqq: &str) -> String {
    let mut rng = rand::rng();
    let mut b: Vec<u8> = vec![0x83, 0x68, 0x04, 0x67, 0x64, 0x00, 0x1d];
    b.extend_from_slice(b"connserver_webqq@10.133.41.84");
    b.extend_from_slice(&rng.random::<u32>().to_be_bytes());
    b.extend_from_slice(&rng.random::<u32>().to_be_bytes());
    b.push(2);
    if qq <= i32::MAX as u64 {
        b.push(0x62);
        b.extend_from_slice(&(qq as u32).to_be_bytes());
    } else {
        b.extend_from_slice(&[0x6e, 0x04, 0x00]);
        b.extend_from_slice(&(qq as u32).to_le_bytes());
    }
    let sk = skey.as_bytes();
    b.push(0x6d);
    b.extend_from_slice(&(sk.len() as u32).to_be_bytes());
    b.extend_from_slice(sk);
    let vf: Vec<u8> = (0..vfwebqq.len() / 2)
        .filter_map(|i| u8::from_str_radix(vfwebqq.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    b.push(0x6d);
    b.extend_from_slice(&(vf.len() as u32).to_be_bytes());
    b.extend_from_slice(&vf);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `login2` (§3.7): a new channel session, or a relink when `psessionid` names a live
/// session of this account. A new session kicks the account's previous one (§12).
pub fn login2(sim: &Sim, req: &Req) -> Outcome {
    const EP: &str = "login2";
    let qq_hint = req.qq_hint();
    if !req.referer_ok() {
        return err(EP, 100_001, qq_hint);
    }
    let Ok(r) = req.r_json() else {
        return err(EP, 100_001, qq_hint);
    };
    let mut w = sim.world();
    let Ok(lid) = cookie_login(sim, &w, req) else {
        return err(EP, 100_001, qq_hint);
    };
    let login = w.logins[&lid].clone();
    let qq = login.qq;
    let Some(ptwebqq) = text(r.get("ptwebqq")) else {
        return err(EP, 100_001, Some(qq));
    };
    if !ptwebqq.is_empty() && ptwebqq != login.ptwebqq {
        return err(EP, 100_001, Some(qq));
    }
    let Some(clientid) = num(r.get("clientid")) else {
        return err(EP, 100_001, Some(qq));
    };
    let status = r
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("online")
        .to_string();
    let psid_in = text(r.get("psessionid")).unwrap_or_default();
    let relink = w.session_by_psid.get(&psid_in).copied().filter(|sid| {
        w.sessions
            .get(sid)
            .is_some_and(|s| s.qq == qq && s.state == SessionState::Alive)
    });
    let vfwebqq = match &login.vfwebqq {
        Some(v) => v.clone(),
        None => {
            let v = rand_hex(80);
            if let Some(l) = w.logins.get_mut(&lid) {
                l.vfwebqq = Some(v.clone());
            }
            v
        }
    };
    let psessionid = mint_psessionid(qq, &login.skey, &vfwebqq);
    // The early-2016 way of logging in (deviation 3 of docs/SIMULATOR.md): no warm-up needed.
    let legacy = req.host == "d.web2.qq.com"
        && clientid.to_string() != OFFICIAL_CLIENTID
        && login.qr_without_token;
    match relink {
        Some(sid) => {
            let s = w.sessions.get_mut(&sid).expect("filtered");
            let old = std::mem::replace(&mut s.psessionid, psessionid.clone());
            s.clientid = clientid.to_string();
            s.vfwebqq = vfwebqq.clone();
            s.status = status.clone();
            s.legacy = legacy;
            w.session_by_psid.remove(&old);
            w.session_by_psid.insert(psessionid.clone(), sid);
            if let Some(a) = w.accounts.get_mut(&qq) {
                a.relinks += 1;
            }
        }
        None => {
            w.kick_active(qq);
            let sid = w.next_id();
            let mut s = Session::new(
                sid,
                qq,
                lid,
                psessionid.clone(),
                clientid.to_string(),
                vfwebqq.clone(),
                status.clone(),
            );
            s.legacy = legacy;
            w.sessions.insert(sid, s);
            w.session_by_psid.insert(psessionid.clone(), sid);
            let first = {
                let l = w.logins.get_mut(&lid).expect("exists");
                l.sessions_created += 1;
                l.sessions_created == 1
            };
            if let Some(a) = w.accounts.get_mut(&qq) {
                a.active_session = Some(sid);
                if first {
                    a.logins += 1;
                } else {
                    a.resumes += 1;
                }
            }
        }
    }
    let port: u16 = rand::rng().random_range(30_000..60_000);
    ok(
        json!({"retcode": 0, "result": {
            "uin": qq, "cip": 2_130_706_433u64, "index": 1075, "port": port, "status": status,
            "vfwebqq": vfwebqq, "psessionid": psessionid, "user_state": 0, "f": 0}}),
        qq,
    )
}

/// A bare HTTP status answer (no protocol body), as the outage gives.
fn gateway_status(code: u16) -> axum::response::Response {
    let code =
        axum::http::StatusCode::from_u16(code).unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
    let mut r = axum::response::Response::new(axum::body::Body::from(
        code.canonical_reason().unwrap_or(""),
    ));
    *r.status_mut() = code;
    r
}

/// The clientid the official page sent; a login2 with another one is a client of its own.
const OFFICIAL_CLIENTID: &str = "53999199";

/// The vfwebqq `getvfwebqq` last handed out on the session's login (§15.6).
fn login_vfwebqq(w: &World, ctx: SessionCtx) -> Option<String> {
    w.logins.get(&ctx.login_id).and_then(|l| l.vfwebqq.clone())
}

/// Whether a channel call's vfwebqq is the session's: the one login2 returned, or the one
/// `getvfwebqq` gave the same login, whichever order the client called them in (§15.6, as the
/// `s.web2` calls accept it).
fn vf_matches(s: &Session, login_vf: Option<&str>, vf: &str) -> bool {
    !vf.is_empty() && (vf == s.vfwebqq || Some(vf) == login_vf)
}

/// Keeps `/sim/stats` `pending_polls` right even when the client goes away mid-hold (axum
/// drops the handler future, and this guard with it).
struct PendingGuard<'a>(&'a Sim);

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.0.pending_polls.fetch_sub(1, Ordering::Relaxed);
    }
}

fn idle(sim: &Sim, qq: u64) -> Outcome {
    // Written out so the key order is exactly the documented one (clients compared strings).
    let (v, code) = match sim.cfg.idle_answer {
        IdleAnswer::EmptyResult => ("{\"retcode\":0,\"result\":[]}\n", 0),
        IdleAnswer::Errmsg => ("{\"errmsg\":\"\",\"retcode\":0}\n", 0),
        IdleAnswer::Retcode102 => ("{\"retcode\":102,\"errmsg\":\"\"}\n", 102),
    };
    Outcome::new(raw_json(v.to_string()), Some(qq), Some(code))
}

/// Rotates the login's ptwebqq (retcode 116, §5.2) and returns the new value.
pub fn rotate_ptwebqq(sim: &Sim, login_id: u64) -> String {
    let p = rand_hex(48);
    let now = sim.now();
    let mut w = sim.world();
    if let Some(l) = w.logins.get_mut(&login_id) {
        l.ptwebqq = p.clone();
        l.ptwebqq_set_ms = now;
    }
    p
}

/// What a poll step found.
enum Step {
    Answer(Outcome),
    Wait(Arc<tokio::sync::Notify>),
}

/// `poll2` (§5): one event per answer (up to `poll_batch` queued ones when that is raised);
/// holds up to `hold` and then gives the idle answer. 103 until `get_online_buddies2` was
/// called (§3.8). Of two polls on one session the newer one gets the events and the older is
/// answered idle at once (§12).
pub async fn poll2(sim: Arc<Sim>, req: Req) -> Outcome {
    const EP: &str = "poll2";
    let qq_hint = req.qq_hint();
    if !req.referer_ok() {
        return err(EP, 100_001, qq_hint);
    }
    let r = match req.r_json() {
        Ok(r) => r,
        Err(_) => return err(EP, 100_006, qq_hint),
    };
    let (ctx, my_gen) = {
        let mut w = sim.world();
        // Kicked sessions still get their kick_message (checked before the usual auth).
        let psid = text(r.get("psessionid")).unwrap_or_default();
        if let Some(sid) = w.session_by_psid.get(&psid).copied() {
            if w.sessions.get(&sid).map(|s| s.state) == Some(SessionState::Kicked) {
                let s = w.sessions.get_mut(&sid).expect("present");
                let qq = s.qq;
                let ev = s.queue.pop_front();
                w.remove_session(sid);
                return match ev {
                    Some(ev) => event_answer(&ev, qq),
                    None => err(EP, 103, Some(qq)),
                };
            }
        }
        let ctx = match channel_session(&sim, &w, &req, Some(&r), 100_001, 103) {
            Ok(c) => c,
            Err(code) => return err(EP, code, qq_hint),
        };
        // The `ptwebqq` of the poll body is not checked: from 2018 the service ignored it
        // (clients sent ""), and a widely used client never applied a 116 rotation to it.
        let login = &w.logins[&ctx.login_id];
        let rotate_due = sim.cfg.ptwebqq_rotation.is_some_and(|d| {
            sim.now().saturating_sub(login.ptwebqq_set_ms) >= d.as_millis() as u64
        });
        let s = w.sessions.get_mut(&ctx.sid).expect("authenticated");
        if !s.activated && !s.legacy {
            return err(EP, 103, Some(ctx.qq));
        }
        if rotate_due {
            drop(w);
            let p = rotate_ptwebqq(&sim, ctx.login_id);
            return Outcome::new(
                json_line(&json!({"retcode": 116, "p": p})),
                Some(ctx.qq),
                Some(116),
            );
        }
        s.poll_gen += 1;
        s.notify.notify_waiters();
        (ctx, s.poll_gen)
    };
    sim.pending_polls.fetch_add(1, Ordering::Relaxed);
    let _guard = PendingGuard(&sim);
    let deadline = tokio::time::Instant::now() + sim.cfg.hold;
    // Bounded: every turn either answers or waits for a wake-up or the deadline.
    loop {
        // An outage that starts while the poll is held fails it too, as a dead service drops
        // the connections it holds (`POST /sim/outage` wakes every held poll).
        let outage = sim.faults().outage().map(|o| o.action.clone());
        match outage {
            Some(FaultAction::Drop) => {
                if let Some(a) = &req.abort {
                    a.abort();
                    // The connection task drops this future together with the connection.
                    std::future::pending::<()>().await;
                }
                return Outcome::new(gateway_status(502), Some(ctx.qq), None);
            }
            Some(FaultAction::HttpStatus(code)) => {
                return Outcome::new(gateway_status(code), Some(ctx.qq), None);
            }
            _ => {}
        }
        let step = poll_step(&sim, ctx, my_gen);
        let notify = match step {
            Step::Answer(o) => return o,
            Step::Wait(n) => n,
        };
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        // Re-check after registering so a wake-up between the check and the wait is not lost.
        if sim.faults().outage().is_some() {
            continue;
        }
        if let Step::Answer(o) = poll_step(&sim, ctx, my_gen) {
            return o;
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(deadline) => return idle(&sim, ctx.qq),
        }
    }
}

fn poll_step(sim: &Sim, ctx: SessionCtx, my_gen: u64) -> Step {
    let now = sim.now();
    let alive = {
        let w = sim.world();
        w.login_alive(ctx.login_id, now, sim.lifetime_ms())
    };
    let mut w = sim.world();
    let Some(s) = w.sessions.get_mut(&ctx.sid) else {
        return Step::Answer(err("poll2", 103, Some(ctx.qq)));
    };
    if s.state == SessionState::Kicked {
        let ev = s.queue.pop_front();
        w.remove_session(ctx.sid);
        return Step::Answer(match ev {
            Some(ev) => event_answer(&ev, ctx.qq),
            None => err("poll2", 103, Some(ctx.qq)),
        });
    }
    if !alive {
        w.remove_session(ctx.sid);
        return Step::Answer(err("poll2", 103, Some(ctx.qq)));
    }
    if s.poll_gen != my_gen {
        drop(w);
        return Step::Answer(idle(sim, ctx.qq));
    }
    if !s.queue.is_empty() {
        // One event per answer unless `poll_batch` allows more of those queued.
        let n = s.queue.len().min(sim.poll_batch.load(Ordering::Relaxed));
        let evs: Vec<Value> = s.queue.drain(..n).collect();
        drop(w);
        // Fault `duplicate`: the first event goes back to the front of the queue, so the
        // next answer repeats it with the same msg_id.
        if sim.faults().take_duplicate(ctx.qq) {
            let mut w = sim.world();
            if let Some(s) = w.sessions.get_mut(&ctx.sid) {
                s.queue.push_front(evs[0].clone());
            }
        }
        return Step::Answer(events_answer(&evs, ctx.qq));
    }
    Step::Wait(s.notify.clone())
}

/// `get_online_buddies2` (§6.8): online friends; also the warm-up that lets poll2 work.
pub fn get_online_buddies2(sim: &Sim, req: &Req) -> Outcome {
    const EP: &str = "get_online_buddies2";
    let mut w = sim.world();
    let ctx = match channel_session(sim, &w, req, None, 100_001, 103) {
        Ok(c) => c,
        Err(c) => return err(EP, c, req.qq_hint()),
    };
    let contacts = w.accounts[&ctx.qq].contacts.clone();
    let login_vf = login_vfwebqq(&w, ctx);
    let s = w.sessions.get_mut(&ctx.sid).expect("authenticated");
    if let Some(vf) = req.q("vfwebqq") {
        if !vf_matches(s, login_vf.as_deref(), vf) {
            return err(EP, 100_001, Some(ctx.qq));
        }
    }
    s.activated = true;
    let list = online_buddies(s, &contacts);
    ok(json!({"result": list, "retcode": 0}), ctx.qq)
}

/// Which send endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendKind {
    Buddy,
    Qun,
    Discu,
    Sess,
}

impl SendKind {
    fn endpoint(self) -> &'static str {
        match self {
            SendKind::Buddy => "send_buddy_msg2",
            SendKind::Qun => "send_qun_msg2",
            SendKind::Discu => "send_discu_msg2",
            SendKind::Sess => "send_sess_msg2",
        }
    }
    fn sent_kind(self) -> &'static str {
        match self {
            SendKind::Buddy => "buddy",
            SendKind::Qun => "group",
            SendKind::Discu => "discu",
            SendKind::Sess => "sess",
        }
    }
}

/// The four sends (§8): validation, dedup, anti-spam, delivery into `/sim/sent`, echo.
pub fn send(sim: &Sim, req: &Req, kind: SendKind) -> Outcome {
    let ep = kind.endpoint();
    let qq_hint = req.qq_hint();
    let Ok(r) = req.r_json() else {
        return err(ep, 100_001, qq_hint);
    };
    let now = sim.now();
    let mut w = sim.world();
    let ctx = match channel_session(sim, &w, req, Some(&r), 100_001, 100_001) {
        Ok(c) => c,
        Err(c) => return err(ep, c, qq_hint),
    };
    let qq = ctx.qq;
    let Some(msg_id) = inum(r.get("msg_id")) else {
        return err(ep, 100_001, Some(qq));
    };
    let Some(content_raw) = r.get("content") else {
        return err(ep, 100_001, Some(qq));
    };
    let Ok(decoded) = decode_sent(content_raw) else {
        return err(ep, 100_001, Some(qq));
    };
    let contacts = w.accounts[&qq].contacts.clone();
    let s = w.sessions.get_mut(&ctx.sid).expect("authenticated");
    if !s.activated {
        // §8.2: a session that skipped the warm-up could not send (QQRobot #10).
        return err(ep, 100_001, Some(qq));
    }
    // Resolve the target to what /sim/sent reports.
    let target: Option<u64> = match kind {
        SendKind::Buddy => num(r.get("to"))
            .and_then(|u| s.qq_of_uin(u))
            .filter(|q| *q == qq || contacts.friends.iter().any(|f| f.qq == *q)),
        SendKind::Qun => num(r.get("group_uin"))
            .and_then(|g| s.group_of_gid(g))
            .filter(|n| contacts.groups.iter().any(|g| g.number == *n)),
        SendKind::Discu => {
            num(r.get("did")).filter(|d| contacts.discus.iter().any(|x| x.did == *d))
        }
        SendKind::Sess => {
            let sig_ok = r
                .get("group_sig")
                .and_then(Value::as_str)
                .is_some_and(|g| s.sigs.contains(g));
            let st_ok = matches!(num(r.get("service_type")), Some(0) | Some(1));
            num(r.get("to"))
                .and_then(|u| s.qq_of_uin(u))
                .filter(|q| *q != qq && sig_ok && st_ok && contacts.knows(*q))
        }
    };
    let Some(to) = target else {
        return err(ep, 100_001, Some(qq));
    };
    if decoded.text_bytes > sim.cfg.max_message_bytes {
        return err(ep, 1202, Some(qq));
    }
    let echo_to_self = kind == SendKind::Buddy && to == qq;
    let gid = match kind {
        SendKind::Qun => Some(s.group_ids(to).0),
        _ => None,
    };
    let acc = w.accounts.get_mut(&qq).expect("session has account");
    // Exactly-once for clients that resend after a crash: a repeat inside the window is
    // acknowledged but not delivered again.
    let key = DedupKey {
        msg_id,
        target: format!("{}:{}", kind.sent_kind(), to),
        // The decoded text, so a resend whose font item differs still counts as the same.
        content: decoded.text.clone(),
    };
    let window = sim.cfg.send_dedup_window.as_millis() as u64;
    while let Some((t, _)) = acc.dedup.front() {
        if now.saturating_sub(*t) < window {
            break;
        }
        if let Some((_, k)) = acc.dedup.pop_front() {
            acc.dedup_set.remove(&k);
        }
    }
    if acc.dedup_set.contains(&key) {
        acc.duplicates_dropped += 1;
        return send_ok(qq);
    }
    // Anti-spam (§8.3): minimum interval per account, burst per target per minute.
    let min = sim.cfg.send_min_interval.as_millis() as u64;
    if min > 0 {
        if let Some(last) = acc.last_send_ms {
            if now.saturating_sub(last) < min {
                return err(ep, 1202, Some(qq));
            }
        }
    }
    let burst = sim.cfg.target_burst_per_min as usize;
    if burst > 0 {
        let q = acc.target_sends.entry(key.target.clone()).or_default();
        while q.front().is_some_and(|t| now.saturating_sub(*t) >= 60_000) {
            q.pop_front();
        }
        if q.len() >= burst {
            return err(ep, 1202, Some(qq));
        }
        q.push_back(now);
    }
    acc.last_send_ms = Some(now);
    acc.dedup.push_back((now, key.clone()));
    acc.dedup_set.insert(key);
    if acc.sent.len() >= MAX_SENT {
        acc.sent.pop_front();
    }
    acc.sent.push_back(SentEntry {
        kind: kind.sent_kind(),
        to,
        text: decoded.text.clone(),
        msg_id,
        time: now / 1000,
    });
    // Echo (§5.4): a friend message comes back with the text only, no recipient (from and
    // to are the own uin); a group or discussion message names its conversation but comes
    // from the session's stable pseudo echo uin, in no member list (§14 item 5).
    if sim.cfg.echo && !echo_to_self {
        let mid = acc.take_msg_id();
        let t = now / 1000;
        if let Some(s) = w.sessions.get_mut(&ctx.sid) {
            let me = s.echo_uin();
            let ev = match kind {
                SendKind::Buddy => Some(message_event(qq, qq, mid, t, &decoded.text)),
                SendKind::Qun => gid.map(|g| group_event(g, me, qq, mid, t, &decoded.text)),
                SendKind::Discu => Some(discu_event(to, me, qq, mid, t, &decoded.text)),
                SendKind::Sess => None,
            };
            if let Some(ev) = ev {
                s.push_event(ev);
            }
        }
    }
    send_ok(qq)
}

/// `get_c2cmsg_sig2` (§8.1): the `group_sig` a temporary-session send needs.
pub fn get_c2cmsg_sig2(sim: &Sim, req: &Req) -> Outcome {
    const EP: &str = "get_c2cmsg_sig2";
    let mut w = sim.world();
    let ctx = match channel_session(sim, &w, req, None, 100_001, 103) {
        Ok(c) => c,
        Err(c) => return err(EP, c, req.qq_hint()),
    };
    let contacts = w.accounts[&ctx.qq].contacts.clone();
    let s = w.sessions.get_mut(&ctx.sid).expect("authenticated");
    let member = req
        .q("to_uin")
        .and_then(|u| u.parse().ok())
        .and_then(|u| s.qq_of_uin(u))
        .filter(|q| contacts.knows(*q));
    let st_ok = matches!(req.q("service_type"), Some("0") | Some("1"));
    if member.is_none() || !st_ok || req.q("id").is_none() {
        return err(EP, 100_001, Some(ctx.qq));
    }
    let sig = rand_hex(96);
    if s.sigs.len() < 1000 {
        s.sigs.insert(sig.clone());
    }
    ok(
        json!({"retcode": 0, "result": {"type": 0, "value": sig,
            "flags": {"text": 1, "pic": 1, "file": 1, "audio": 1, "video": 1}}}),
        ctx.qq,
    )
}

const STATUSES: &[&str] = &[
    "online", "away", "busy", "silent", "hidden", "callme", "offline",
];

/// `change_status2` (§6.11); `offline` ends the session as lwqq's logout did (§10).
pub fn change_status2(sim: &Sim, req: &Req) -> Outcome {
    const EP: &str = "change_status2";
    let mut w = sim.world();
    let ctx = match channel_session(sim, &w, req, None, 100_001, 103) {
        Ok(c) => c,
        Err(c) => return err(EP, c, req.qq_hint()),
    };
    let Some(st) = req.q("newstatus").filter(|s| STATUSES.contains(s)) else {
        return err(EP, 100_001, Some(ctx.qq));
    };
    if st == "offline" {
        w.remove_session(ctx.sid);
    } else if let Some(s) = w.sessions.get_mut(&ctx.sid) {
        s.status = st.to_string();
    }
    ok(json!({"retcode": 0, "result": "ok"}), ctx.qq)
}

/// `logout2` (§10): ends the channel session.
pub fn logout2(sim: &Sim, req: &Req) -> Outcome {
    let mut w = sim.world();
    let ctx = match channel_session(sim, &w, req, None, 100_001, 103) {
        Ok(c) => c,
        Err(c) => return err("logout2", c, req.qq_hint()),
    };
    w.remove_session(ctx.sid);
    ok(json!({"retcode": 0, "result": "ok"}), ctx.qq)
}

/// `get_discu_info` (§6.5).
pub fn get_discu_info(sim: &Sim, req: &Req) -> Outcome {
    const EP: &str = "get_discu_info";
    let mut w = sim.world();
    let ctx = match channel_session(sim, &w, req, None, 100_001, 103) {
        Ok(c) => c,
        Err(c) => return err(EP, c, req.qq_hint()),
    };
    let contacts = w.accounts[&ctx.qq].contacts.clone();
    let login_vf = login_vfwebqq(&w, ctx);
    let s = w.sessions.get_mut(&ctx.sid).expect("authenticated");
    if !req
        .q("vfwebqq")
        .is_some_and(|vf| vf_matches(s, login_vf.as_deref(), vf))
    {
        return err(EP, 100_001, Some(ctx.qq));
    }
    let did: Option<u64> = req.q("did").and_then(|d| d.trim().parse().ok());
    let Some(d) = did.and_then(|d| contacts.discus.iter().find(|x| x.did == d)) else {
        return err(EP, 6, Some(ctx.qq));
    };
    let mut mem_list = Vec::new();
    let mut mem_status = Vec::new();
    let mut mem_info = Vec::new();
    for m in &d.members {
        let u = s.uin_of(m.qq);
        mem_list.push(json!({"mem_uin": u, "ruin": m.qq}));
        mem_status.push(json!({"uin": u, "status": "online", "client_type": 1}));
        mem_info.push(json!({"uin": u, "nick": m.nick}));
    }
    let owner = d.members.get(1).map(|m| m.qq).unwrap_or(ctx.qq);
    let owner_uin = s.uin_of(owner);
    ok(
        json!({"retcode": 0, "result": {
            "info": {"did": d.did, "discu_owner": owner_uin, "discu_name": d.name,
                     "info_seq": 2, "mem_list": mem_list},
            "mem_status": mem_status, "mem_info": mem_info}}),
        ctx.qq,
    )
}

/// `get_recent_list2` (§6.9); types 0 friend, 1 group, 2 discussion (§15.8: the mapping two
/// independent clients used).
pub fn get_recent_list2(sim: &Sim, req: &Req) -> Outcome {
    const EP: &str = "get_recent_list2";
    let Ok(r) = req.r_json() else {
        return err(EP, 100_001, req.qq_hint());
    };
    let mut w = sim.world();
    // The page sent psessionid "" here at times (§6.9): accept the active session then.
    let psid = text(r.get("psessionid")).unwrap_or_default();
    let ctx = if psid.is_empty() {
        super::auth::api_session(sim, &w, req, Some(&r)).map_err(|_| 100_001)
    } else {
        channel_session(sim, &w, req, Some(&r), 100_001, 103)
    };
    let ctx = match ctx {
        Ok(c) => c,
        Err(c) => return err(EP, c, req.qq_hint()),
    };
    let contacts = w.accounts[&ctx.qq].contacts.clone();
    let login_vf = login_vfwebqq(&w, ctx);
    let s = w.sessions.get_mut(&ctx.sid).expect("authenticated");
    let vf = param(req, Some(&r), "vfwebqq").and_then(|v| text(Some(&v)));
    if !vf.is_some_and(|vf| vf_matches(s, login_vf.as_deref(), &vf)) {
        return err(EP, 100_001, Some(ctx.qq));
    }
    let mut list = Vec::new();
    if let Some(f) = contacts.friends.first() {
        list.push(json!({"type": 0, "uin": s.uin_of(f.qq)}));
    }
    if let Some(g) = contacts.groups.first() {
        list.push(json!({"type": 1, "uin": s.group_ids(g.number).0}));
    }
    if let Some(d) = contacts.discus.first() {
        list.push(json!({"type": 2, "uin": d.did}));
    }
    ok(json!({"result": list, "retcode": 0}), ctx.qq)
}
