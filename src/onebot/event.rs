//! OneBot events: how a received message, a heartbeat, a connection and a send outcome look
//! to a bot, and the durable per-account queue they wait in until a bot takes them.
//!
//! Every event carries `self_id` (the account's QQ number), `time` and `event_id`, an
//! extension field that stays the same when an event is delivered again (after a restart or a
//! lost acknowledgement), so a bot can deduplicate.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{json, Value};

use super::ids::{ContactKey, Ids};
use super::message::{from_webqq_text, to_cq};
use crate::config::MessageFormat;
use crate::fleet::handler::{Incoming, Kind};
use crate::protocol::Contacts;
use crate::store::{now_secs, prefix, NamedTree, StoreError};

/// Events kept per account while no bot takes them; more are counted and dropped (logged).
pub const QUEUE_CAP: usize = 10_000;

/// The stable ids of a received message's conversation and sender.
struct Who {
    user_id: i64,
    nickname: String,
    card: String,
    conv_id: i64,
}

/// Keys of the conversation and the sender, from this session's contacts (see `ids`).
fn keys(msg: &Incoming, c: Option<&Contacts>) -> (ContactKey, ContactKey, String, String) {
    let session = |kind: &str, uin: u64| ContactKey::Session {
        kind: kind.to_string(),
        uin,
    };
    let friend = |uin: u64| {
        c.and_then(|c| c.friend(uin)).map(|f| {
            (
                ContactKey::Friend(f.display_name().to_string()),
                f.nick.clone(),
            )
        })
    };
    match msg.kind {
        Kind::Buddy => {
            let (k, nick) =
                friend(msg.sender).unwrap_or((session("user", msg.sender), String::new()));
            (k.clone(), k, nick, String::new())
        }
        Kind::Group | Kind::Sess => {
            let g = c.and_then(|c| {
                if msg.kind == Kind::Group {
                    c.group(msg.source)
                } else {
                    c.groups.iter().find(|g| g.member(msg.sender).is_some())
                }
            });
            let conv = match (msg.kind, g) {
                (Kind::Group, Some(g)) => {
                    ContactKey::Group(g.markname.clone().unwrap_or_else(|| g.name.clone()))
                }
                (Kind::Group, None) => session("group", msg.source),
                _ => session("sess", msg.source),
            };
            let member = g.and_then(|g| g.member(msg.sender));
            let card = member.and_then(|m| m.card.clone()).unwrap_or_default();
            let (sender, nick) = match (friend(msg.sender), member, g) {
                (Some(f), _, _) => f,
                (None, Some(m), Some(g)) => (
                    ContactKey::Member {
                        within: g.name.clone(),
                        name: m.display_name().to_string(),
                    },
                    m.nick.clone(),
                ),
                _ => (session("user", msg.sender), String::new()),
            };
            (conv, sender, nick, card)
        }
        Kind::Discu => {
            let d = c.and_then(|c| c.discu(msg.source));
            let conv = d
                .map(|d| ContactKey::Discuss(d.name.clone()))
                .unwrap_or_else(|| session("discuss", msg.source));
            let member = d.and_then(|d| d.members.iter().find(|m| m.uin == msg.sender));
            let (sender, nick) = match (friend(msg.sender), member, d) {
                (Some(f), _, _) => f,
                (None, Some(m), Some(d)) => (
                    ContactKey::Member {
                        within: d.name.clone(),
                        name: m.nick.clone(),
                    },
                    m.nick.clone(),
                ),
                _ => (session("user", msg.sender), String::new()),
            };
            (conv, sender, nick, String::new())
        }
    }
}

fn who(msg: &Incoming, c: Option<&Contacts>, ids: &Ids) -> Result<Who, StoreError> {
    let (conv, sender, nickname, card) = keys(msg, c);
    Ok(Who {
        conv_id: ids.id_of(&conv)?,
        user_id: ids.id_of(&sender)?,
        nickname,
        card,
    })
}

/// The message event of a received message.
pub fn message_event(
    self_id: u64,
    event_id: u64,
    message_id: i32,
    msg: &Incoming,
    contacts: Option<&Contacts>,
    ids: &Ids,
    format: MessageFormat,
) -> Result<Value, StoreError> {
    let w = who(msg, contacts, ids)?;
    let segs = from_webqq_text(&msg.text);
    let raw = to_cq(&segs);
    let message = match format {
        MessageFormat::String => Value::String(raw.clone()),
        MessageFormat::Array => serde_json::to_value(&segs).unwrap_or_default(),
    };
    let time = if msg.time > 0 { msg.time } else { now_secs() };
    let mut ev = json!({
        "time": time,
        "self_id": self_id,
        "post_type": "message",
        "message_id": message_id,
        "user_id": w.user_id,
        "message": message,
        "raw_message": raw,
        "font": 0,
        "event_id": event_id.to_string(),
    });
    let o = ev.as_object_mut().expect("an object");
    match msg.kind {
        Kind::Buddy | Kind::Sess => {
            o.insert("message_type".into(), json!("private"));
            let sub = if msg.kind == Kind::Buddy {
                "friend"
            } else {
                "group"
            };
            o.insert("sub_type".into(), json!(sub));
            o.insert(
                "sender".into(),
                json!({"user_id": w.user_id, "nickname": w.nickname, "sex": "unknown", "age": 0}),
            );
        }
        Kind::Group => {
            o.insert("message_type".into(), json!("group"));
            o.insert("sub_type".into(), json!("normal"));
            o.insert("group_id".into(), json!(w.conv_id));
            o.insert("anonymous".into(), Value::Null);
            o.insert(
                "sender".into(),
                json!({"user_id": w.user_id, "nickname": w.nickname, "card": w.card,
                       "sex": "unknown", "age": 0, "role": "member"}),
            );
        }
        Kind::Discu => {
            o.insert("message_type".into(), json!("discuss"));
            // Not in the standard's discuss event, but frameworks' message models require it.
            o.insert("sub_type".into(), json!("normal"));
            o.insert("discuss_id".into(), json!(w.conv_id));
            o.insert(
                "sender".into(),
                json!({"user_id": w.user_id, "nickname": w.nickname, "sex": "unknown", "age": 0}),
            );
        }
    }
    Ok(ev)
}

/// `meta_event.lifecycle` (`connect`), the first frame of every event connection.
pub fn lifecycle(self_id: u64) -> Value {
    json!({"time": now_secs(), "self_id": self_id, "post_type": "meta_event",
           "meta_event_type": "lifecycle", "sub_type": "connect"})
}

/// `meta_event.heartbeat` with the account's status.
pub fn heartbeat(self_id: u64, online: bool, interval_ms: u64) -> Value {
    json!({"time": now_secs(), "self_id": self_id, "post_type": "meta_event",
           "meta_event_type": "heartbeat", "interval": interval_ms,
           "status": {"online": online, "good": online, "app_initialized": true,
                      "app_enabled": true, "app_good": true}})
}

/// The final outcome of a send (an extension notice: `notice_type` `qqfleet_send_outcome`,
/// `result` `delivered` | `uncertain` | `held`).
pub fn send_outcome(self_id: u64, event_id: u64, message_id: i32, result: &str) -> Value {
    json!({"time": now_secs(), "self_id": self_id, "post_type": "notice",
           "notice_type": "qqfleet_send_outcome", "message_id": message_id,
           "result": result, "event_id": event_id.to_string()})
}

/// The durable, bounded event queue of one account (sled tree `onebot_events`, keyed with
/// the account's prefix and the event id, so a replayed inbox entry lands on its own key).
pub struct EventQueue {
    tree: NamedTree,
    account: String,
    len: AtomicUsize,
    cap: usize,
}

impl EventQueue {
    pub fn open(tree: NamedTree, account: &str, cap: usize) -> Result<EventQueue, StoreError> {
        let len = tree.get()?.scan_prefix(prefix(account)).keys().count();
        Ok(EventQueue {
            tree,
            account: account.to_string(),
            len: AtomicUsize::new(len),
            cap,
        })
    }

    fn key(&self, id: u64) -> Vec<u8> {
        let mut k = prefix(&self.account);
        k.extend_from_slice(&id.to_be_bytes());
        k
    }

    /// Stores an event (flushed). `Ok(false)`: the queue is full and the event was not kept.
    pub fn push(&self, id: u64, ev: &Value) -> Result<bool, StoreError> {
        let k = self.key(id);
        let tree = self.tree.get()?;
        let exists = tree.contains_key(&k)?;
        if !exists && self.len.load(Ordering::Relaxed) >= self.cap {
            return Ok(false);
        }
        tree.insert(k, serde_json::to_vec(ev).expect("json serializes"))?;
        crate::store::flush_sled(&tree)?;
        if !exists {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
        Ok(true)
    }

    /// The oldest event not yet taken.
    pub fn head(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        match self.tree.get()?.scan_prefix(prefix(&self.account)).next() {
            Some(kv) => {
                let (k, v) = kv?;
                let mut b = [0u8; 8];
                b.copy_from_slice(&k[k.len() - 8..]);
                Ok(Some((u64::from_be_bytes(b), v.to_vec())))
            }
            None => Ok(None),
        }
    }

    /// A bot took the event. Not flushed on its own: losing this removal in a crash only
    /// delivers the event again (at least once), with the same `event_id`.
    pub fn remove(&self, id: u64) -> Result<(), StoreError> {
        if self.tree.get()?.remove(self.key(id))?.is_some() {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn queue_is_fifo_bounded_idempotent_and_durable() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let q = EventQueue::open(NamedTree::new(Arc::new(db.clone()), "q"), "a", 3).unwrap();
            assert!(q.push(5, &json!({"n": 5})).unwrap());
            assert!(q.push(2, &json!({"n": 2})).unwrap());
            assert!(q.push(2, &json!({"n": 2})).unwrap(), "a replay overwrites");
            assert!(q.push(9, &json!({"n": 9})).unwrap());
            assert!(!q.push(10, &json!({"n": 10})).unwrap(), "full");
            assert_eq!(q.len(), 3);
            assert_eq!(q.head().unwrap().unwrap().0, 2);
            q.remove(2).unwrap();
            let other =
                EventQueue::open(NamedTree::new(Arc::new(db.clone()), "q"), "b", 3).unwrap();
            assert!(other.is_empty());
            db.flush().unwrap();
        }
        let db = crate::store::tests::sled_reopen(dir.path());
        let q = EventQueue::open(NamedTree::new(Arc::new(db.clone()), "q"), "a", 3).unwrap();
        assert_eq!(q.len(), 2);
        let (id, body) = q.head().unwrap().unwrap();
        assert_eq!(id, 5);
        assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["n"], 5);
    }

    #[test]
    fn message_events_have_stable_ids() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let ids = Ids::new(NamedTree::new(Arc::new(db.clone()), "ids"), "a");
        let msg = Incoming {
            kind: Kind::Group,
            poll_type: "group_message".into(),
            source: 77,
            sender: 5,
            msg_id: 1,
            time: 100,
            text: "hi [face:2]".into(),
            self_echo: false,
        };
        let ev = message_event(10001, 3, 1, &msg, None, &ids, MessageFormat::String).unwrap();
        assert_eq!(ev["message_type"], "group");
        assert_eq!(ev["raw_message"], "hi [CQ:face,id=2]");
        assert_eq!(ev["event_id"], "3");
        assert_eq!(ev["self_id"], 10001);
        let again = message_event(10001, 3, 2, &msg, None, &ids, MessageFormat::Array).unwrap();
        assert_eq!(again["group_id"], ev["group_id"]);
        assert_eq!(again["message"][1]["type"], "face");
    }
}
