//! The OneBot v11 API of one account: every action, whatever transport carried it.
//!
//! Answers are `{"status","retcode","data","message"}` (the transport adds `echo`). Retcodes:
//! 0 ok; 1 accepted (`_async` forms); 100 a parameter is missing or names nothing this
//! account knows; 103 the operation failed (account not running, contacts not loaded); 1400 a
//! parameter has the wrong type; 1404 no such action. Anything WebQQ cannot do fails with a
//! message that says why; nothing answers a fake success.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::ids::ContactKey;
use super::message::{from_param, to_webqq_text};
use super::{Bot, OneBot};
use crate::events::{emit, OneBotActionDone};
use crate::fleet::messages::EnqueueFor;
use crate::fleet::FleetError;
use crate::protocol::{Contacts, Target};

/// Every action served (without the `_async` suffix).
pub const ACTIONS: &[&str] = &[
    "send_private_msg",
    "send_group_msg",
    "send_discuss_msg",
    "send_msg",
    "get_login_info",
    "get_stranger_info",
    "get_friend_list",
    "get_group_list",
    "get_group_info",
    "get_group_member_list",
    "get_group_member_info",
    "get_status",
    "get_version_info",
    "can_send_image",
    "can_send_record",
];

/// An action's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub status: &'static str,
    pub retcode: i64,
    pub data: Value,
    pub message: String,
}

impl Answer {
    pub fn ok(data: Value) -> Answer {
        Answer {
            status: "ok",
            retcode: 0,
            data,
            message: String::new(),
        }
    }

    pub fn fail(retcode: i64, message: impl Into<String>) -> Answer {
        Answer {
            status: "failed",
            retcode,
            data: Value::Null,
            message: message.into(),
        }
    }

    /// The JSON answer, with the caller's `echo` (if any).
    pub fn to_json(&self, echo: Option<&Value>) -> Value {
        let mut v = json!({"status": self.status, "retcode": self.retcode,
                           "data": self.data, "message": self.message, "wording": self.message});
        if let Some(e) = echo {
            v["echo"] = e.clone();
        }
        v
    }
}

type Params = Map<String, Value>;

/// An integer parameter: a JSON number or a numeric string (query and form parameters are
/// text). Missing: `Ok(None)`; any other type: 1400.
fn int(p: &Params, key: &str) -> Result<Option<i64>, Answer> {
    match p.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| Answer::fail(1400, format!("`{key}` must be an integer"))),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| Answer::fail(1400, format!("`{key}` must be an integer, not `{s}`"))),
        Some(other) => Err(Answer::fail(
            1400,
            format!("`{key}` must be an integer, not {other}"),
        )),
    }
}

fn need_int(p: &Params, key: &str) -> Result<i64, Answer> {
    int(p, key)?.ok_or_else(|| Answer::fail(100, format!("missing parameter `{key}`")))
}

fn boolean(p: &Params, key: &str) -> Result<bool, Answer> {
    match p.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" || s == "1" => Ok(true),
        Some(Value::String(s)) if s == "false" || s == "0" || s.is_empty() => Ok(false),
        Some(Value::Number(n)) if n.as_i64() == Some(0) || n.as_i64() == Some(1) => {
            Ok(n.as_i64() == Some(1))
        }
        Some(other) => Err(Answer::fail(
            1400,
            format!("`{key}` must be a boolean, not {other}"),
        )),
    }
}

/// Runs an action (an `_async` form answers 1 at once and runs it in the background).
pub async fn call(ob: &Arc<OneBot>, bot: &Arc<Bot>, action: &str, params: &Params) -> Answer {
    if let Some(base) = action.strip_suffix("_async") {
        if !ACTIONS.contains(&base) {
            return finish(bot, action, unknown(action));
        }
        let (ob2, bot2, base, params) = (ob.clone(), bot.clone(), base.to_string(), params.clone());
        ob.spawn(bot, async move {
            let a = run(&ob2, &bot2, &base, &params).await;
            finish(&bot2, &base, a);
        });
        return finish(
            bot,
            action,
            Answer {
                status: "async",
                retcode: 1,
                data: Value::Null,
                message: String::new(),
            },
        );
    }
    let a = run(ob, bot, action, params).await;
    finish(bot, action, a)
}

fn finish(bot: &Bot, action: &str, a: Answer) -> Answer {
    emit(OneBotActionDone {
        account: &bot.id,
        action,
        retcode: a.retcode,
        message: &a.message,
    });
    a
}

fn unknown(action: &str) -> Answer {
    Answer::fail(1404, format!("no action `{action}` (see docs/ONEBOT.md)"))
}

async fn run(ob: &Arc<OneBot>, bot: &Arc<Bot>, action: &str, p: &Params) -> Answer {
    match dispatch(ob, bot, action, p).await {
        Ok(a) | Err(a) => a,
    }
}

/// Which conversation a send goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conv {
    Private,
    Group,
    Discuss,
}

async fn dispatch(
    ob: &Arc<OneBot>,
    bot: &Arc<Bot>,
    action: &str,
    p: &Params,
) -> Result<Answer, Answer> {
    let contacts = || {
        ob.contacts(&bot.id).ok_or_else(|| {
            Answer::fail(
                103,
                "the account's contacts are not loaded yet (is it online?)",
            )
        })
    };
    Ok(match action {
        "send_private_msg" => {
            send_param(ob, bot, Conv::Private, need_int(p, "user_id")?, p).await?
        }
        "send_group_msg" => send_param(ob, bot, Conv::Group, need_int(p, "group_id")?, p).await?,
        "send_discuss_msg" => {
            send_param(ob, bot, Conv::Discuss, need_int(p, "discuss_id")?, p).await?
        }
        "send_msg" => {
            let kind = match p.get("message_type").and_then(|v| v.as_str()) {
                Some("private") => Conv::Private,
                Some("group") => Conv::Group,
                Some("discuss") => Conv::Discuss,
                Some(other) => {
                    return Err(Answer::fail(
                        100,
                        format!("message_type `{other}`: use private, group or discuss"),
                    ))
                }
                None if int(p, "group_id")?.is_some() => Conv::Group,
                None if int(p, "discuss_id")?.is_some() => Conv::Discuss,
                None => Conv::Private,
            };
            let key = match kind {
                Conv::Private => "user_id",
                Conv::Group => "group_id",
                Conv::Discuss => "discuss_id",
            };
            send_param(ob, bot, kind, need_int(p, key)?, p).await?
        }
        "get_login_info" => {
            let nick = ob
                .contacts(&bot.id)
                .map(|c| c.self_info.nick)
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| bot.id.clone());
            Answer::ok(json!({"user_id": bot.self_id, "nickname": nick}))
        }
        "get_stranger_info" => {
            let uid = need_int(p, "user_id")?;
            let c = contacts()?;
            let (nick, _) = user(bot, &c, uid)?;
            Answer::ok(json!({"user_id": uid, "nickname": nick, "sex": "unknown", "age": 0}))
        }
        "get_friend_list" => {
            let c = contacts()?;
            let mut out = Vec::new();
            for f in &c.friends {
                let id = ids(bot, &ContactKey::Friend(f.display_name().to_string()))?;
                out.push(json!({"user_id": id, "nickname": f.nick,
                                "remark": f.markname.clone().unwrap_or_default()}));
            }
            Answer::ok(Value::Array(out))
        }
        "get_group_list" => {
            let c = contacts()?;
            let mut out = Vec::new();
            for g in &c.groups {
                out.push(group_info(bot, g)?);
            }
            Answer::ok(Value::Array(out))
        }
        "get_group_info" => {
            let c = contacts()?;
            let g = group(bot, &c, need_int(p, "group_id")?)?;
            Answer::ok(group_info(bot, g)?)
        }
        "get_group_member_list" => {
            let c = contacts()?;
            let gid = need_int(p, "group_id")?;
            let g = group(bot, &c, gid)?;
            let mut out = Vec::new();
            for m in &g.members {
                out.push(member_info(bot, &c, g, gid, m)?);
            }
            Answer::ok(Value::Array(out))
        }
        "get_group_member_info" => {
            let c = contacts()?;
            let gid = need_int(p, "group_id")?;
            let uid = need_int(p, "user_id")?;
            let g = group(bot, &c, gid)?;
            for m in &g.members {
                let info = member_info(bot, &c, g, gid, m)?;
                if info["user_id"] == uid {
                    return Ok(Answer::ok(info));
                }
            }
            Answer::fail(100, format!("no member with user_id {uid} in group {gid}"))
        }
        "get_status" => {
            let online = ob.online(&bot.id);
            Answer::ok(json!({"online": online, "good": online,
                              "app_initialized": true, "app_enabled": true, "app_good": true,
                              "stat": {"events_queued": bot.queue.len()}}))
        }
        "get_version_info" => Answer::ok(json!({"app_name": "qqfleet",
            "app_version": env!("CARGO_PKG_VERSION"), "protocol_version": "v11",
            "runtime_os": std::env::consts::OS})),
        "can_send_image" | "can_send_record" => Answer::ok(json!({"yes": false})),
        other => unknown(other),
    })
}

fn ids(bot: &Bot, key: &ContactKey) -> Result<i64, Answer> {
    bot.ids
        .id_of(key)
        .map_err(|e| Answer::fail(103, format!("store: {e}")))
}

fn key_of(bot: &Bot, id: i64, what: &str) -> Result<ContactKey, Answer> {
    match bot.ids.contact(id) {
        Ok(Some(k)) => Ok(k),
        Ok(None) => Err(Answer::fail(
            100,
            format!("no {what} with id {id} in account `{}`", bot.id),
        )),
        Err(e) => Err(Answer::fail(103, format!("store: {e}"))),
    }
}

/// A user's nickname and, when a friend, their uin in this session.
fn user(bot: &Bot, c: &Contacts, uid: i64) -> Result<(String, Option<u64>), Answer> {
    match key_of(bot, uid, "user")? {
        ContactKey::Friend(name) => match c.friend_by_name(&name) {
            Ok(f) => Ok((f.nick.clone(), Some(f.uin))),
            Err(e) => Err(Answer::fail(100, format!("user {uid} (`{name}`): {e}"))),
        },
        ContactKey::Member { name, .. } => Ok((name, None)),
        ContactKey::Session { .. } => Err(Answer::fail(
            100,
            format!("user {uid} was seen before the contacts were known; its session is over"),
        )),
        _ => Err(Answer::fail(100, format!("{uid} is not a user id"))),
    }
}

fn group<'c>(bot: &Bot, c: &'c Contacts, gid: i64) -> Result<&'c crate::protocol::Group, Answer> {
    match key_of(bot, gid, "group")? {
        ContactKey::Group(name) => c
            .group_by_name(&name)
            .map_err(|e| Answer::fail(100, format!("group {gid} (`{name}`): {e}"))),
        _ => Err(Answer::fail(100, format!("{gid} is not a group id"))),
    }
}

fn group_info(bot: &Bot, g: &crate::protocol::Group) -> Result<Value, Answer> {
    let name = g.markname.clone().unwrap_or_else(|| g.name.clone());
    let id = ids(bot, &ContactKey::Group(name))?;
    Ok(
        json!({"group_id": id, "group_name": g.name, "member_count": g.members.len(),
              "max_member_count": 0}),
    )
}

fn member_info(
    bot: &Bot,
    c: &Contacts,
    g: &crate::protocol::Group,
    gid: i64,
    m: &crate::protocol::GroupMember,
) -> Result<Value, Answer> {
    let key = match c.friend(m.uin) {
        Some(f) => ContactKey::Friend(f.display_name().to_string()),
        None => ContactKey::Member {
            within: g.name.clone(),
            name: m.display_name().to_string(),
        },
    };
    let uid = ids(bot, &key)?;
    let role = if g.owner == Some(m.uin) {
        "owner"
    } else if m.is_admin {
        "admin"
    } else {
        "member"
    };
    Ok(json!({"group_id": gid, "user_id": uid, "nickname": m.nick,
              "card": m.card.clone().unwrap_or_default(), "sex": "unknown", "age": 0,
              "area": "", "join_time": 0, "last_sent_time": 0, "level": "", "role": role,
              "unfriendly": false, "title": "", "title_expire_time": 0,
              "card_changeable": false}))
}

async fn send_param(
    ob: &Arc<OneBot>,
    bot: &Arc<Bot>,
    kind: Conv,
    to: i64,
    p: &Params,
) -> Result<Answer, Answer> {
    let auto_escape = boolean(p, "auto_escape")?;
    let message = p
        .get("message")
        .ok_or_else(|| Answer::fail(100, "missing parameter `message`"))?;
    send(ob, bot, kind, to, message, auto_escape, "").await
}

/// Sends a message: answers `{"message_id"}` once it is durable in the account's outbox.
/// `prefix` goes before the text (a quick reply's `@sender `).
pub async fn send(
    ob: &Arc<OneBot>,
    bot: &Arc<Bot>,
    kind: Conv,
    to: i64,
    message: &Value,
    auto_escape: bool,
    prefix: &str,
) -> Result<Answer, Answer> {
    let segs = from_param(message, auto_escape).map_err(|e| Answer::fail(1400, e))?;
    let c = ob.contacts(&bot.id).ok_or_else(|| {
        Answer::fail(
            103,
            "the account's contacts are not loaded yet (is it online?)",
        )
    })?;
    let target = match (kind, key_of(bot, to, "contact")?) {
        (Conv::Private, ContactKey::Friend(name)) => c
            .friend_by_name(&name)
            .map(|f| Target::Buddy(f.uin))
            .map_err(|e| Answer::fail(100, format!("user {to} (`{name}`): {e}")))?,
        (Conv::Group, ContactKey::Group(name)) => c
            .group_by_name(&name)
            .map(|g| Target::Group(g.gid))
            .map_err(|e| Answer::fail(100, format!("group {to} (`{name}`): {e}")))?,
        (Conv::Discuss, ContactKey::Discuss(name)) => c
            .discu_by_name(&name)
            .map(|d| Target::Discu(d.did))
            .map_err(|e| Answer::fail(100, format!("discussion {to} (`{name}`): {e}")))?,
        (Conv::Private, ContactKey::Member { .. }) => {
            return Err(Answer::fail(
                100,
                format!(
                    "user {to} is not a friend: WebQQ cannot message a group member who is not \
                     (temporary sessions were blocked from 2016)"
                ),
            ))
        }
        (_, ContactKey::Session { .. }) => {
            return Err(Answer::fail(
                100,
                format!("id {to} was seen before the contacts were known; its session is over"),
            ))
        }
        (k, _) => return Err(Answer::fail(100, format!("{to} is not a {k:?} id"))),
    };
    let text = to_webqq_text(&segs, |qq| {
        let id: i64 = qq.parse().ok()?;
        match bot.ids.contact(id).ok()?? {
            ContactKey::Friend(n) => Some(n),
            ContactKey::Member { name, .. } => Some(name),
            _ => None,
        }
    })
    .map_err(|e| Answer::fail(100, e))?;
    let text = format!("{prefix}{text}");
    let sup = ob
        .supervisor
        .get()
        .ok_or_else(|| Answer::fail(103, "the fleet is starting"))?;
    let m = match sup
        .send(EnqueueFor {
            id: bot.id.clone(),
            target,
            text,
        })
        .await
    {
        Ok(Ok(m)) => m,
        Ok(Err(e @ (FleetError::UnknownAccount(_) | FleetError::NotRunning(_)))) => {
            return Err(Answer::fail(103, e.to_string()))
        }
        Ok(Err(e)) => return Err(Answer::fail(103, format!("not accepted: {e}"))),
        Err(e) => return Err(Answer::fail(103, format!("fleet busy: {e}"))),
    };
    let mid = bot
        .ids
        .next_message_id()
        .map_err(|e| Answer::fail(103, format!("store: {e}")))?;
    if let Err(e) = bot.ids.remember_sent(m.seq, mid) {
        tracing::warn!(account = %bot.id, error = %e, "onebot: message id not kept for the outcome");
    }
    Ok(Answer::ok(json!({"message_id": mid})))
}

/// Carries out a webhook's quick operation on a message event: `reply` (with `auto_escape`,
/// and `at_sender` in groups and discussions, on by default).
pub async fn quick_operation(ob: &Arc<OneBot>, bot: &Arc<Bot>, ev: &Value, op: &Value) {
    if ev["post_type"] != "message" {
        return;
    }
    let Some(reply) = op.get("reply").filter(|r| !r.is_null()) else {
        return;
    };
    let auto_escape = op
        .get("auto_escape")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let at_sender = op
        .get("at_sender")
        .and_then(|v| v.as_bool())
        .unwrap_or(true);
    let (kind, to) = match ev["message_type"].as_str() {
        Some("private") => (Conv::Private, ev["user_id"].as_i64()),
        Some("group") => (Conv::Group, ev["group_id"].as_i64()),
        Some("discuss") => (Conv::Discuss, ev["discuss_id"].as_i64()),
        _ => return,
    };
    let Some(to) = to else { return };
    let prefix = match (kind, at_sender) {
        (Conv::Private, _) | (_, false) => String::new(),
        _ => {
            let card = ev["sender"]["card"].as_str().filter(|c| !c.is_empty());
            let nick = card.or(ev["sender"]["nickname"].as_str()).unwrap_or("");
            if nick.is_empty() {
                String::new()
            } else {
                format!("@{nick} ")
            }
        }
    };
    let a = match send(ob, bot, kind, to, reply, auto_escape, &prefix).await {
        Ok(a) | Err(a) => a,
    };
    finish(bot, "quick_operation", a);
}
