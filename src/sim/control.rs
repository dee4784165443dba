//! The control API under `/sim/` (issue 5, exact paths and fields; additions documented in
//! docs/SIMULATOR.md). Tests and tools drive the simulated world through it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::events::{inject, InjectRequest};
use super::faults::{FaultRequest, OutageRequest};
use super::ptlogin::{self, ScanError};
use super::state::Sim;
use super::world::{o_uin, Account, World};

type S = State<Arc<Sim>>;

fn bad(code: StatusCode, msg: impl Into<String>) -> Response {
    (code, Json(json!({"error": msg.into()}))).into_response()
}

/// `GET /sim/health`.
pub async fn health() -> Json<Value> {
    Json(json!({"ok": true}))
}

fn account_json(sim: &Sim, w: &World, a: &Account) -> Value {
    let (now, life) = (sim.now(), sim.lifetime_ms());
    let live = |s: &&super::world::Session| {
        s.state == super::world::SessionState::Alive && w.login_alive(s.login_id, now, life)
    };
    let sessions = w
        .sessions
        .values()
        .filter(|s| s.qq == a.qq)
        .filter(live)
        .count();
    let online = a
        .active_session
        .and_then(|sid| w.sessions.get(&sid))
        .filter(live)
        .is_some();
    json!({
        "qq": a.qq, "nick": a.nick, "online": online, "sessions": sessions,
        "logins": a.logins, "resumes": a.resumes, "relinks": a.relinks,
        "duplicates_dropped": a.duplicates_dropped,
        "calls": a.calls, "retcodes": a.retcodes,
    })
}

/// Body of `POST /sim/accounts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountRequest {
    pub qq: u64,
    #[serde(default)]
    pub nick: Option<String>,
    #[serde(default)]
    pub friends: Option<u32>,
    #[serde(default)]
    pub groups: Option<u32>,
    #[serde(default)]
    pub discus: Option<u32>,
}

/// Body of `POST /sim/poll-batch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollBatchRequest {
    pub poll_batch: usize,
}

/// `POST /sim/poll-batch {"poll_batch":N}` (addition): from now on a poll2 answer carries up
/// to N queued events (1..=100; 1 is the usual answer). Answers `{"poll_batch":N}`.
pub async fn post_poll_batch(State(sim): S, Json(b): Json<PollBatchRequest>) -> Response {
    if !(1..=crate::sim::config::MAX_POLL_BATCH).contains(&b.poll_batch) {
        return bad(
            StatusCode::BAD_REQUEST,
            format!(
                "poll_batch must be 1 to {}",
                crate::sim::config::MAX_POLL_BATCH
            ),
        );
    }
    sim.poll_batch.store(b.poll_batch, Ordering::Relaxed);
    Json(json!({"poll_batch": b.poll_batch})).into_response()
}

/// `POST /sim/accounts`: creates the account, or regenerates its contacts with new counts.
pub async fn create_account(State(sim): S, Json(b): Json<AccountRequest>) -> Response {
    if b.qq < 10_000 || b.qq > 9_999_999_999 {
        return bad(StatusCode::BAD_REQUEST, "qq must have 5 to 10 digits");
    }
    let c = &sim.cfg;
    let regenerate = b.friends.is_some() || b.groups.is_some() || b.discus.is_some();
    let mut w = sim.world();
    w.upsert_account(
        b.qq,
        b.nick,
        b.friends.unwrap_or(c.default_friends).min(500),
        b.groups.unwrap_or(c.default_groups).min(100),
        b.discus.unwrap_or(c.default_discus).min(100),
        c.group_members,
        regenerate,
    );
    let a = &w.accounts[&b.qq];
    Json(account_json(&sim, &w, a)).into_response()
}

/// `GET /sim/accounts`: the QQ numbers (addition).
pub async fn list_accounts(State(sim): S) -> Json<Value> {
    let w = sim.world();
    let mut qqs: Vec<u64> = w.accounts.keys().copied().collect();
    qqs.sort_unstable();
    Json(json!(qqs))
}

/// `GET /sim/accounts/{qq}`.
pub async fn get_account(State(sim): S, Path(qq): Path<u64>) -> Response {
    let w = sim.world();
    match w.accounts.get(&qq) {
        Some(a) => Json(account_json(&sim, &w, a)).into_response(),
        None => bad(StatusCode::NOT_FOUND, "unknown account"),
    }
}

/// `GET /sim/accounts/{qq}/contacts`, with the uins of the current session (null without).
pub async fn get_contacts(State(sim): S, Path(qq): Path<u64>) -> Response {
    let mut w = sim.world();
    let Some(a) = w.accounts.get(&qq) else {
        return bad(StatusCode::NOT_FOUND, "unknown account");
    };
    let c = a.contacts.clone();
    let mut s = w.active_session_mut(qq);
    fn uin_in(s: &mut Option<&mut super::world::Session>, q: u64) -> Option<u64> {
        s.as_mut().map(|s| s.uin_of(q))
    }
    let friends: Vec<Value> = c
        .friends
        .iter()
        .map(|f| json!({"qq": f.qq, "uin": uin_in(&mut s, f.qq), "nick": f.nick, "markname": f.markname, "category": f.category}))
        .collect();
    let member = |m: &super::world::Member, uin: Option<u64>| json!({"qq": m.qq, "uin": uin, "nick": m.nick, "card": m.card});
    let mut groups = Vec::new();
    for g in &c.groups {
        let members: Vec<Value> = g
            .members
            .iter()
            .map(|m| member(m, uin_in(&mut s, m.qq)))
            .collect();
        let ids = s.as_mut().map(|s| s.group_ids(g.number));
        groups.push(
            json!({"number": g.number, "gid": ids.map(|i| i.0), "code": ids.map(|i| i.1),
                           "name": g.name, "members": members}),
        );
    }
    let mut discus = Vec::new();
    for d in &c.discus {
        let members: Vec<Value> = d
            .members
            .iter()
            .map(|m| member(m, uin_in(&mut s, m.qq)))
            .collect();
        discus.push(json!({"did": d.did, "name": d.name, "members": members}));
    }
    Json(json!({"friends": friends, "groups": groups, "discus": discus})).into_response()
}

/// `GET /sim/qr`.
pub async fn list_qr(State(sim): S) -> Json<Value> {
    let now = sim.now();
    let mut w = sim.world();
    let lifetime = sim.cfg.qr_lifetime.as_millis() as u64;
    Json(Value::Array(
        w.qrs
            .list(now, lifetime)
            .into_iter()
            .map(|q| json!({"qrsig": q.qrsig, "token": q.token, "state": q.state, "qq": q.qq}))
            .collect(),
    ))
}

/// Body of `POST /sim/qr/scan` and `/sim/qr/confirm`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanRequest {
    #[serde(default)]
    pub qrsig: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub qq: Option<u64>,
    #[serde(default)]
    pub confirm: Option<bool>,
}

fn scan_error(e: ScanError) -> Response {
    match e {
        ScanError::UnknownQr => bad(StatusCode::NOT_FOUND, "unknown qr"),
        ScanError::NotWaiting(s) => bad(
            StatusCode::CONFLICT,
            format!("qr is {}", serde_json::to_value(s).unwrap_or_default()),
        ),
    }
}

/// `POST /sim/qr/scan`.
pub async fn qr_scan(State(sim): S, Json(b): Json<ScanRequest>) -> Response {
    let Some(key) = b.qrsig.or(b.token) else {
        return bad(StatusCode::BAD_REQUEST, "give qrsig or token");
    };
    if let Some(q) = b.qq {
        if !(10_000..=9_999_999_999).contains(&q) {
            return bad(StatusCode::BAD_REQUEST, "qq must have 5 to 10 digits");
        }
    }
    let confirm = b.confirm.unwrap_or(true);
    match ptlogin::scan(&sim, &key, b.qq, confirm) {
        Ok(qq) => Json(
            json!({"ok": true, "qq": qq, "state": if confirm { "confirmed" } else { "scanned" }}),
        )
        .into_response(),
        Err(e) => scan_error(e),
    }
}

/// `POST /sim/qr/confirm`.
pub async fn qr_confirm(State(sim): S, Json(b): Json<ScanRequest>) -> Response {
    let Some(key) = b.qrsig.or(b.token) else {
        return bad(StatusCode::BAD_REQUEST, "give qrsig or token");
    };
    match ptlogin::confirm(&sim, &key) {
        Ok(qq) => Json(json!({"ok": true, "qq": qq, "state": "confirmed"})).into_response(),
        Err(e) => scan_error(e),
    }
}

/// `POST /sim/inject` → `{"msg_id":n}`.
pub async fn post_inject(State(sim): S, Json(b): Json<InjectRequest>) -> Response {
    let now = sim.now();
    let mut w = sim.world();
    match inject(&mut w, &b, now, sim.lifetime_ms()) {
        Ok(id) => Json(json!({"msg_id": id})).into_response(),
        Err(e) => {
            let code = match e {
                super::events::InjectError::UnknownAccount => StatusCode::NOT_FOUND,
                super::events::InjectError::NotOnline => StatusCode::CONFLICT,
                _ => StatusCode::BAD_REQUEST,
            };
            bad(code, e.message())
        }
    }
}

/// The most messages one `POST /sim/inject/batch` takes (a bound on the time one request
/// takes).
pub const MAX_INJECT_BATCH: usize = 10_000;

/// Entries of a batch injected under one taking of the world's lock.
const INJECT_LOCK_RUN: usize = 64;

/// `POST /sim/inject/batch`: an array of `/sim/inject` bodies → an array of `{"msg_id":n}`
/// or `{"error":".."}`, in the same order. A load-testing aid (the bench's fleet-wide
/// throughput): thousands of messages queued in one request, where one request each would
/// make the injector the bottleneck. Each entry is judged alone; one refused entry does not
/// refuse the others.
pub async fn post_inject_batch(State(sim): S, Json(b): Json<Vec<InjectRequest>>) -> Response {
    if b.len() > MAX_INJECT_BATCH {
        return bad(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("at most {MAX_INJECT_BATCH} messages per batch"),
        );
    }
    let now = sim.now();
    let mut out: Vec<Value> = Vec::with_capacity(b.len());
    // The world's lock is taken for a few entries at a time, not for the whole batch: every
    // poll answer needs it too, and a batch of thousands held it for a good part of a second,
    // while the polls it had just woken waited to be answered.
    for part in b.chunks(INJECT_LOCK_RUN) {
        let mut w = sim.world();
        out.extend(
            part.iter()
                .map(|r| match inject(&mut w, r, now, sim.lifetime_ms()) {
                    Ok(id) => json!({"msg_id": id}),
                    Err(e) => json!({"error": e.message()}),
                }),
        );
    }
    Json(out).into_response()
}

/// Query of `GET /sim/sent`.
#[derive(Debug, Deserialize)]
pub struct SentQuery {
    pub qq: u64,
}

/// `GET /sim/sent?qq=N`.
pub async fn get_sent(State(sim): S, Query(q): Query<SentQuery>) -> Response {
    let w = sim.world();
    match w.accounts.get(&q.qq) {
        Some(a) => Json(json!(a.sent)).into_response(),
        None => bad(StatusCode::NOT_FOUND, "unknown account"),
    }
}

/// `POST /sim/faults`.
pub async fn post_fault(State(sim): S, Json(b): Json<FaultRequest>) -> Response {
    match b.into_fault() {
        Ok(f) => {
            if sim.faults().push(f) {
                Json(json!({"ok": true})).into_response()
            } else {
                bad(StatusCode::TOO_MANY_REQUESTS, "fault queue full")
            }
        }
        Err(e) => bad(StatusCode::BAD_REQUEST, e),
    }
}

/// `GET /sim/faults`: the pending faults (addition).
pub async fn get_faults(State(sim): S) -> Json<Value> {
    Json(sim.faults().to_json())
}

/// Body of `/sim/kick` and `/sim/expire`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QqRequest {
    pub qq: u64,
}

/// `POST /sim/kick`: `kick_message` to the active poll; the session is dead.
pub async fn kick(State(sim): S, Json(b): Json<QqRequest>) -> Response {
    let mut w = sim.world();
    if !w.accounts.contains_key(&b.qq) {
        return bad(StatusCode::NOT_FOUND, "unknown account");
    }
    let kicked = w.kick_active(b.qq);
    Json(json!({"ok": true, "kicked": kicked})).into_response()
}

/// `POST /sim/expire`: all cookies and sessions of the account dead, as after two days.
pub async fn expire(State(sim): S, Json(b): Json<QqRequest>) -> Response {
    let mut w = sim.world();
    if !w.accounts.contains_key(&b.qq) {
        return bad(StatusCode::NOT_FOUND, "unknown account");
    }
    w.expire_account(b.qq);
    Json(json!({"ok": true})).into_response()
}

/// `POST /sim/outage`: every protocol request fails for `seconds` (dropped connection or the
/// given HTTP status) while the world (accounts, logins, sessions, queued events) is kept.
pub async fn post_outage(State(sim): S, Json(b): Json<OutageRequest>) -> Response {
    match b.validate() {
        Ok((action, len)) => {
            sim.faults().start_outage(action, len);
            // Held polls fail too (see channel::poll2).
            sim.world().wake_all();
            tracing::info!(seconds = b.seconds, "sim outage started");
            Json(json!({"ok": true, "seconds": b.seconds})).into_response()
        }
        Err(e) => bad(StatusCode::BAD_REQUEST, e),
    }
}

/// `DELETE /sim/faults`: empties the fault queue (and ends an outage in force).
pub async fn delete_faults(State(sim): S) -> Json<Value> {
    let removed = sim.faults().clear();
    Json(json!({"ok": true, "removed": removed}))
}

/// Body of `/sim/clock/advance`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdvanceRequest {
    pub seconds: f64,
}

/// `POST /sim/clock/advance`.
pub async fn clock_advance(State(sim): S, Json(b): Json<AdvanceRequest>) -> Response {
    if !b.seconds.is_finite() || b.seconds < 0.0 || b.seconds > 10.0 * 365.0 * 86_400.0 {
        return bad(StatusCode::BAD_REQUEST, "seconds must be 0..=10 years");
    }
    let now = sim.clock.advance_ms((b.seconds * 1000.0) as u64);
    sim.world().wake_all();
    Json(json!({"ok": true, "now": now / 1000})).into_response()
}

/// `GET /sim/stats`.
pub async fn stats(State(sim): S) -> Json<Value> {
    let outage = sim.faults().outage().is_some();
    let w = sim.world();
    Json(json!({
        "accounts": w.accounts.len(),
        "sessions": w.sessions.len(),
        "pending_polls": sim.pending_polls.load(Ordering::Relaxed),
        "requests": w.requests,
        "outage": outage,
    }))
}

/// Body of `POST /sim/sessions/bulk` (load-testing aid).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    pub count: u32,
    #[serde(default)]
    pub clientid: Option<u64>,
}

/// `POST /sim/sessions/bulk`: mints `count` fresh accounts already logged in and warmed up
/// (as if each had scanned, run check_sig, getvfwebqq, login2 and get_online_buddies2), and
/// returns what a client needs to poll with each. A load-testing aid: it skips the login
/// steps, not the checks of the calls that follow.
pub async fn sessions_bulk(State(sim): S, Json(b): Json<BulkRequest>) -> Response {
    if b.count == 0 || b.count > 20_000 {
        return bad(StatusCode::BAD_REQUEST, "count must be 1..=20000");
    }
    let clientid = b.clientid.unwrap_or(53_999_199);
    let now = sim.now();
    let c = &sim.cfg;
    let mut out = Vec::with_capacity(b.count as usize);
    let mut w = sim.world();
    for _ in 0..b.count {
        let qq = w.fresh_qq();
        w.upsert_account(
            qq,
            None,
            c.default_friends,
            c.default_groups,
            c.default_discus,
            c.group_members,
            false,
        );
        let lid = w.create_login(qq, now);
        let vf = super::world::rand_hex(80);
        let l = {
            let l = w.logins.get_mut(&lid).expect("created");
            l.vfwebqq = Some(vf.clone());
            l.sessions_created = 1;
            l.clone()
        };
        let psid = super::channel::mint_psessionid(qq, &l.skey, &vf);
        let sid = w.next_id();
        let mut s = super::world::Session::new(
            sid,
            qq,
            lid,
            psid.clone(),
            clientid.to_string(),
            vf.clone(),
            "online".into(),
        );
        s.activated = true;
        w.sessions.insert(sid, s);
        w.session_by_psid.insert(psid.clone(), sid);
        if let Some(a) = w.accounts.get_mut(&qq) {
            a.active_session = Some(sid);
            a.logins += 1;
        }
        out.push(json!({
            "qq": qq, "psessionid": psid, "clientid": clientid, "vfwebqq": vf,
            "ptwebqq": l.ptwebqq,
            "cookie": format!("uin={}; skey={}; p_skey={}; p_uin={}; ptwebqq={}",
                              o_uin(qq), l.skey, l.p_skey, o_uin(qq), l.ptwebqq),
        }));
    }
    Json(Value::Array(out)).into_response()
}
