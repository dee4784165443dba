//! Poll events in their real shapes (§5.3) and the injection of incoming messages.
//!
//! E3 shapes for message / group_message / discu_message (only `content`, `from_uin`,
//! `msg_id`, `msg_type` 0, `time`, `to_uin`, plus `group_code`/`did` and `send_uin`);
//! `sess_message`, `input_notify` and `buddies_status_change` only have E1/E2 samples and are
//! produced in those shapes.

use serde::Deserialize;
use serde_json::{json, Value};

use super::content::build_received;
use super::world::{Session, World};

/// What an injected event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InjectKind {
    Buddy,
    Group,
    Discu,
    Sess,
    /// A friend is typing (addition to the kinds).
    InputNotify,
    /// A friend's status changed (addition).
    Status,
}

/// Body of `POST /sim/inject`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InjectRequest {
    pub qq: u64,
    pub kind: InjectKind,
    #[serde(default)]
    pub from: Option<u64>,
    #[serde(default)]
    pub group: Option<u64>,
    #[serde(default)]
    pub did: Option<u64>,
    #[serde(default)]
    pub text: Option<String>,
    /// For `status`: the new status string (default `online`).
    #[serde(default)]
    pub status: Option<String>,
}

/// Why an injection failed.
#[derive(Debug, PartialEq, Eq)]
pub enum InjectError {
    UnknownAccount,
    NotOnline,
    UnknownFrom,
    UnknownGroup,
    UnknownDiscu,
}

impl InjectError {
    pub fn message(&self) -> &'static str {
        match self {
            InjectError::UnknownAccount => "unknown account",
            InjectError::NotOnline => "account has no live session",
            InjectError::UnknownFrom => "from is not a friend or member",
            InjectError::UnknownGroup => "unknown group",
            InjectError::UnknownDiscu => "unknown discussion",
        }
    }
}

/// Queues an incoming event on the account's active session; returns its msg_id. `now_ms`
/// and `lifetime_ms` decide whether that session's login still lives (an expired session
/// would never deliver the event, so the injection is refused).
pub fn inject(
    w: &mut World,
    req: &InjectRequest,
    now_ms: u64,
    lifetime_ms: u64,
) -> Result<i64, InjectError> {
    let now_secs = now_ms / 1000;
    let acc = w.accounts.get(&req.qq).ok_or(InjectError::UnknownAccount)?;
    let contacts = acc.contacts.clone();
    let own = acc.qq;
    let text = req.text.clone().unwrap_or_default();
    let msg_id = {
        let acc = w
            .accounts
            .get_mut(&req.qq)
            .ok_or(InjectError::UnknownAccount)?;
        acc.next_msg_id
    };
    let login_id = w
        .active_session_mut(req.qq)
        .map(|s| s.login_id)
        .ok_or(InjectError::NotOnline)?;
    if !w.login_alive(login_id, now_ms, lifetime_ms) {
        return Err(InjectError::NotOnline);
    }
    let s = w.active_session_mut(req.qq).ok_or(InjectError::NotOnline)?;
    let ev = match req.kind {
        InjectKind::Buddy | InjectKind::InputNotify | InjectKind::Status => {
            let from = match req.from {
                Some(f) => contacts
                    .friends
                    .iter()
                    .find(|p| p.qq == f)
                    .ok_or(InjectError::UnknownFrom)?,
                None => contacts.friends.first().ok_or(InjectError::UnknownFrom)?,
            };
            let uin = s.uin_of(from.qq);
            match req.kind {
                InjectKind::Buddy => message_event(uin, own, msg_id, now_secs, &text),
                InjectKind::InputNotify => json!({"poll_type":"input_notify","value":{
                    "msg_id": msg_id, "from_uin": uin, "to_uin": own,
                    "msg_id2": msg_id2(msg_id), "msg_type": 121, "reply_ip": 4294967295u64}}),
                _ => json!({"poll_type":"buddies_status_change","value":{
                    "uin": uin,
                    "status": req.status.clone().unwrap_or_else(|| "online".into()),
                    "client_type": 1}}),
            }
        }
        InjectKind::Group => {
            let g = match req.group {
                Some(n) => contacts.groups.iter().find(|g| g.number == n),
                None => contacts.groups.first(),
            }
            .ok_or(InjectError::UnknownGroup)?;
            let from = pick_member(&g.members, own, req.from)?;
            let (gid, _code) = s.group_ids(g.number);
            let send_uin = s.uin_of(from);
            group_event(gid, send_uin, own, msg_id, now_secs, &text)
        }
        InjectKind::Discu => {
            let d = match req.did {
                Some(n) => contacts.discus.iter().find(|d| d.did == n),
                None => contacts.discus.first(),
            }
            .ok_or(InjectError::UnknownDiscu)?;
            let from = pick_member(&d.members, own, req.from)?;
            let send_uin = s.uin_of(from);
            discu_event(d.did, send_uin, own, msg_id, now_secs, &text)
        }
        InjectKind::Sess => {
            // A temporary session from a member of a group (service_type 0) or, when `did`
            // is given, of a discussion (service_type 1).
            let (id, members, service_type) = if let Some(did) = req.did {
                let d = contacts
                    .discus
                    .iter()
                    .find(|d| d.did == did)
                    .ok_or(InjectError::UnknownDiscu)?;
                (did, d.members.clone(), 1)
            } else {
                let g = match req.group {
                    Some(n) => contacts.groups.iter().find(|g| g.number == n),
                    None => contacts.groups.first(),
                }
                .ok_or(InjectError::UnknownGroup)?;
                let (_gid, code) = s.group_ids(g.number);
                (code, g.members.clone(), 0)
            };
            // `from` defaults to the first friend, as for buddy messages; a friend or a member
            // of the group/discussion may be named.
            let is_friend = |q: u64| contacts.friends.iter().any(|p| p.qq == q);
            let from = match req.from {
                Some(f) if is_friend(f) => f,
                None => match contacts.friends.first() {
                    Some(f) => f.qq,
                    None => pick_member(&members, own, None)?,
                },
                Some(_) => pick_member(&members, own, req.from)?,
            };
            let uin = s.uin_of(from);
            json!({"poll_type":"sess_message","value":{
                "msg_id": msg_id, "from_uin": uin, "to_uin": own, "msg_id2": msg_id2(msg_id),
                "msg_type": 140, "reply_ip": 176752037, "time": now_secs, "id": id,
                "ruin": from, "service_type": service_type,
                "flags": {"text":1,"pic":1,"file":1,"audio":1,"video":1},
                "content": build_received(&text)}})
        }
    };
    s.push_event(ev);
    if let Some(acc) = w.accounts.get_mut(&req.qq) {
        acc.take_msg_id();
    }
    Ok(msg_id)
}

fn pick_member(
    members: &[super::world::Member],
    own: u64,
    from: Option<u64>,
) -> Result<u64, InjectError> {
    match from {
        Some(f) if f != own && members.iter().any(|m| m.qq == f) => Ok(f),
        Some(_) => Err(InjectError::UnknownFrom),
        None => members
            .iter()
            .find(|m| m.qq != own)
            .map(|m| m.qq)
            .ok_or(InjectError::UnknownFrom),
    }
}

fn msg_id2(msg_id: i64) -> i64 {
    msg_id.wrapping_mul(37).rem_euclid(1_000_000)
}

/// E3 friend message.
pub fn message_event(from_uin: u64, to_uin: u64, msg_id: i64, time: u64, text: &str) -> Value {
    json!({"poll_type":"message","value":{
        "content": build_received(text), "from_uin": from_uin, "msg_id": msg_id,
        "msg_type": 0, "time": time, "to_uin": to_uin}})
}

/// E3 group message: `group_code` equals `from_uin` equals the gid (§5.3).
pub fn group_event(
    gid: u64,
    send_uin: u64,
    to_uin: u64,
    msg_id: i64,
    time: u64,
    text: &str,
) -> Value {
    json!({"poll_type":"group_message","value":{
        "content": build_received(text), "from_uin": gid, "group_code": gid, "msg_id": msg_id,
        "msg_type": 0, "send_uin": send_uin, "time": time, "to_uin": to_uin}})
}

/// E3 discussion message: `from_uin` equals `did` (§5.3).
pub fn discu_event(
    did: u64,
    send_uin: u64,
    to_uin: u64,
    msg_id: i64,
    time: u64,
    text: &str,
) -> Value {
    json!({"poll_type":"discu_message","value":{
        "content": build_received(text), "from_uin": did, "did": did, "msg_id": msg_id,
        "msg_type": 0, "send_uin": send_uin, "time": time, "to_uin": to_uin}})
}

/// Online friends for `get_online_buddies2`, in this session's uins.
pub fn online_buddies(s: &mut Session, contacts: &super::world::Contacts) -> Value {
    Value::Array(
        contacts
            .friends
            .iter()
            .filter(|f| f.online)
            .map(|f| json!({"client_type": 1, "status": "online", "uin": s.uin_of(f.qq)}))
            .collect(),
    )
}
