//! The `poll2` event catalogue (WEBQQ.md §5.3) as a typed enum, and its decoder.
//!
//! Decoding never fails on a single event: an unknown `poll_type`, or a known one whose value
//! lacks the fields we need, becomes [`PollEvent::Unknown`] with the raw JSON.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::{SessVia, Target};
use super::content::Content;

/// A friend message (`message`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BuddyMessage {
    /// The friend's session pseudo uin: reply to it (`Target::Buddy`).
    pub from_uin: u64,
    pub to_uin: u64,
    /// Server message id (small, wraps): the dedup key with the source (§5.4).
    pub msg_id: u64,
    /// Unix seconds.
    pub time: u64,
    pub content: Content,
    /// True when this is an echo of our own send (§5.4).
    pub self_echo: bool,
}

/// A group message (`group_message`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupMessage {
    /// The group's gid (E3: `from_uin` == `group_code`): reply to it (`Target::Group`).
    pub gid: u64,
    /// `group_code` as sent (equal to gid in E3, §1).
    pub group_code: u64,
    /// The member's pseudo uin.
    pub send_uin: u64,
    pub msg_id: u64,
    /// Per-group sequence (E1/E2 only), to detect gaps.
    pub seq: Option<u64>,
    /// The real group number (E1/E2 only).
    pub info_seq: Option<u64>,
    pub time: u64,
    pub content: Content,
    pub self_echo: bool,
}

/// A discussion message (`discu_message`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiscuMessage {
    /// The discussion id: reply to it (`Target::Discu`).
    pub did: u64,
    pub send_uin: u64,
    pub msg_id: u64,
    pub time: u64,
    pub content: Content,
    pub self_echo: bool,
}

/// A temporary-session message (`sess_message`) from a group or discussion member.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessMessage {
    pub from_uin: u64,
    /// Group code (service_type 0) or did (1) the session goes through.
    pub id: u64,
    /// 0 = via group, 1 = via discussion.
    pub service_type: u8,
    /// Sender's real QQ number, when given.
    pub ruin: Option<u64>,
    pub msg_id: u64,
    pub time: u64,
    pub content: Content,
    pub self_echo: bool,
}

/// A decoded poll2 event, one variant per `poll_type` of WEBQQ.md §5.3.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PollEvent {
    Message(BuddyMessage),
    GroupMessage(GroupMessage),
    DiscuMessage(DiscuMessage),
    SessMessage(SessMessage),
    /// Forced offline (`kick_message`): stop and require a new scan.
    Kick {
        reason: String,
        show_reason: bool,
    },
    /// `buddies_status_change`.
    BuddyStatus {
        uin: u64,
        status: String,
        client_type: Option<u64>,
    },
    /// `input_notify`: a friend is typing.
    InputNotify {
        from_uin: u64,
    },
    /// `shake_message`: window shake.
    Shake {
        from_uin: u64,
    },
    /// `file_message` (direct file offer; mode recv / refuse / send_ack).
    File {
        mode: String,
        from_uin: u64,
        session_id: Option<u64>,
        name: Option<String>,
    },
    /// `push_offfile`: an offline file to download.
    PushOffFile {
        from_uin: u64,
        name: String,
        size: Option<u64>,
    },
    /// `notify_offfile`.
    NotifyOffFile {
        from_uin: Option<u64>,
        filename: String,
    },
    /// `filesrv_transfer`.
    FilesrvTransfer {
        raw: Value,
    },
    /// `system_message` (friend requests): `kind` is `verify_required`, `added_buddy_sig`...
    System {
        kind: String,
        from_uin: Option<u64>,
        account: Option<u64>,
        msg: Option<String>,
    },
    /// `sys_g_msg` (group admin events): `kind` is `group_join`, `group_leave`...
    GroupSystem {
        kind: String,
        gcode: Option<u64>,
        /// The real group number.
        t_gcode: Option<u64>,
        /// new_member / old_member / request_uin, whichever the kind carries.
        member_uin: Option<u64>,
        admin_uin: Option<u64>,
        admin_nick: Option<String>,
        msg: Option<String>,
    },
    /// `buddylist_change`.
    BuddyListChange {
        added: Vec<u64>,
        removed: Vec<u64>,
    },
    /// `group_web_message` (share/file notices) with its XML.
    GroupWeb {
        group_code: u64,
        send_uin: Option<u64>,
        xml: String,
    },
    /// `tips`: no sample exists; kept opaque.
    Tips {
        raw: Value,
    },
    /// Anything else, with the raw event.
    Unknown(Value),
}

impl PollEvent {
    /// The `poll_type` string of the event (`"unknown"` for [`PollEvent::Unknown`]).
    pub fn poll_type(&self) -> &'static str {
        match self {
            PollEvent::Message(_) => "message",
            PollEvent::GroupMessage(_) => "group_message",
            PollEvent::DiscuMessage(_) => "discu_message",
            PollEvent::SessMessage(_) => "sess_message",
            PollEvent::Kick { .. } => "kick_message",
            PollEvent::BuddyStatus { .. } => "buddies_status_change",
            PollEvent::InputNotify { .. } => "input_notify",
            PollEvent::Shake { .. } => "shake_message",
            PollEvent::File { .. } => "file_message",
            PollEvent::PushOffFile { .. } => "push_offfile",
            PollEvent::NotifyOffFile { .. } => "notify_offfile",
            PollEvent::FilesrvTransfer { .. } => "filesrv_transfer",
            PollEvent::System { .. } => "system_message",
            PollEvent::GroupSystem { .. } => "sys_g_msg",
            PollEvent::BuddyListChange { .. } => "buddylist_change",
            PollEvent::GroupWeb { .. } => "group_web_message",
            PollEvent::Tips { .. } => "tips",
            PollEvent::Unknown(_) => "unknown",
        }
    }

    /// The deduplication key of a message event: (poll_type, source id, msg_id) (§5.4).
    pub fn dedup_key(&self) -> Option<(&'static str, u64, u64)> {
        match self {
            PollEvent::Message(m) => Some(("message", m.from_uin, m.msg_id)),
            PollEvent::GroupMessage(m) => Some(("group_message", m.gid, m.msg_id)),
            PollEvent::DiscuMessage(m) => Some(("discu_message", m.did, m.msg_id)),
            PollEvent::SessMessage(m) => Some(("sess_message", m.from_uin, m.msg_id)),
            _ => None,
        }
    }

    /// The message text, for the four message kinds.
    pub fn text(&self) -> Option<String> {
        match self {
            PollEvent::Message(m) => Some(m.content.text()),
            PollEvent::GroupMessage(m) => Some(m.content.text()),
            PollEvent::DiscuMessage(m) => Some(m.content.text()),
            PollEvent::SessMessage(m) => Some(m.content.text()),
            _ => None,
        }
    }

    /// Whom to answer: the friend, the group (gid), the discussion (did) or the temporary
    /// session the message came from (§5.3: reply with the event's own ids).
    pub fn reply_target(&self) -> Option<Target> {
        match self {
            PollEvent::Message(m) => Some(Target::Buddy(m.from_uin)),
            PollEvent::GroupMessage(m) => Some(Target::Group(m.gid)),
            PollEvent::DiscuMessage(m) => Some(Target::Discu(m.did)),
            PollEvent::SessMessage(m) => Some(Target::Sess {
                to: m.from_uin,
                via: if m.service_type == 1 {
                    SessVia::Discu(m.id)
                } else {
                    SessVia::Group(m.id)
                },
            }),
            _ => None,
        }
    }

    /// True for an echo of our own send (§5.4).
    pub fn is_self_echo(&self) -> bool {
        match self {
            PollEvent::Message(m) => m.self_echo,
            PollEvent::GroupMessage(m) => m.self_echo,
            PollEvent::DiscuMessage(m) => m.self_echo,
            PollEvent::SessMessage(m) => m.self_echo,
            _ => false,
        }
    }
}

/// A number given as a JSON number or a decimal string (§2: the server mixed both).
pub(crate) fn num(v: &Value, key: &str) -> Option<u64> {
    match v.get(key)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(crate) fn string(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

fn content(v: &Value) -> Option<Content> {
    Content::from_json(v.get("content")?).ok()
}

/// Decodes one `{"poll_type":..,"value":{..}}` item.
pub fn decode_event(raw: &Value) -> PollEvent {
    decode_known(raw).unwrap_or_else(|| PollEvent::Unknown(raw.clone()))
}

fn decode_known(raw: &Value) -> Option<PollEvent> {
    let kind = raw.get("poll_type")?.as_str()?;
    let v = raw.get("value")?;
    if !v.is_object() {
        return None;
    }
    let time = num(v, "time").unwrap_or(0);
    let msg_id = num(v, "msg_id").unwrap_or(0);
    Some(match kind {
        "message" => PollEvent::Message(BuddyMessage {
            from_uin: num(v, "from_uin")?,
            to_uin: num(v, "to_uin").unwrap_or(0),
            msg_id,
            time,
            content: content(v)?,
            self_echo: false,
        }),
        "group_message" => {
            let gid = num(v, "from_uin")?;
            PollEvent::GroupMessage(GroupMessage {
                gid,
                group_code: num(v, "group_code").unwrap_or(gid),
                send_uin: num(v, "send_uin")?,
                msg_id,
                seq: num(v, "seq"),
                info_seq: num(v, "info_seq"),
                time,
                content: content(v)?,
                self_echo: false,
            })
        }
        "discu_message" => PollEvent::DiscuMessage(DiscuMessage {
            // E2 put 10000 in from_uin; did is the real id in every era (§5.3)
            did: num(v, "did").or_else(|| num(v, "from_uin"))?,
            send_uin: num(v, "send_uin")?,
            msg_id,
            time,
            content: content(v)?,
            self_echo: false,
        }),
        "sess_message" => PollEvent::SessMessage(SessMessage {
            from_uin: num(v, "from_uin")?,
            id: num(v, "id").unwrap_or(0),
            service_type: num(v, "service_type").unwrap_or(0).min(255) as u8,
            ruin: num(v, "ruin"),
            msg_id,
            time,
            content: content(v)?,
            self_echo: false,
        }),
        "kick_message" => PollEvent::Kick {
            reason: string(v, "reason").unwrap_or_default(),
            show_reason: num(v, "show_reason").unwrap_or(0) != 0,
        },
        "buddies_status_change" => PollEvent::BuddyStatus {
            uin: num(v, "uin")?,
            status: string(v, "status").unwrap_or_default(),
            client_type: num(v, "client_type"),
        },
        "input_notify" => PollEvent::InputNotify {
            from_uin: num(v, "from_uin")?,
        },
        "shake_message" => PollEvent::Shake {
            from_uin: num(v, "from_uin")?,
        },
        "file_message" => PollEvent::File {
            mode: string(v, "mode").unwrap_or_default(),
            from_uin: num(v, "from_uin")?,
            session_id: num(v, "session_id"),
            name: string(v, "name"),
        },
        "push_offfile" => PollEvent::PushOffFile {
            from_uin: num(v, "from_uin")?,
            name: string(v, "name").unwrap_or_default(),
            size: num(v, "size"),
        },
        "notify_offfile" => PollEvent::NotifyOffFile {
            from_uin: num(v, "from_uin"),
            filename: string(v, "filename").unwrap_or_default(),
        },
        "filesrv_transfer" => PollEvent::FilesrvTransfer { raw: v.clone() },
        "system_message" => PollEvent::System {
            kind: string(v, "type").unwrap_or_default(),
            from_uin: num(v, "from_uin"),
            account: num(v, "account"),
            msg: string(v, "msg"),
        },
        "sys_g_msg" => PollEvent::GroupSystem {
            kind: string(v, "type").unwrap_or_default(),
            gcode: num(v, "gcode"),
            t_gcode: num(v, "t_gcode"),
            member_uin: num(v, "new_member")
                .or_else(|| num(v, "old_member"))
                .or_else(|| num(v, "request_uin")),
            admin_uin: num(v, "admin_uin"),
            admin_nick: string(v, "admin_nick"),
            msg: string(v, "msg"),
        },
        "buddylist_change" => {
            let uins = |key: &str| -> Vec<u64> {
                v.get(key)
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|x| num(x, "uin")).collect())
                    .unwrap_or_default()
            };
            PollEvent::BuddyListChange {
                added: uins("added_friends"),
                removed: uins("removed_friends"),
            }
        }
        "group_web_message" => PollEvent::GroupWeb {
            group_code: num(v, "group_code").or_else(|| num(v, "from_uin"))?,
            send_uin: num(v, "send_uin"),
            xml: string(v, "xml").unwrap_or_default(),
        },
        "tips" => PollEvent::Tips { raw: v.clone() },
        _ => return None,
    })
}
