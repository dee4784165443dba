//! The contact snapshot (WEBQQ.md §6) and the decoders of the list answers.
//!
//! Every uin/gid/did here is a session pseudo id (§1): it changes on every login, so a
//! snapshot belongs to one session. Names are HTML-unescaped (§6.1).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::content::html_unescape;
use super::error::ProtocolError;
use super::events::{num, string};

/// A friend (`get_user_friends2`, §6.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Friend {
    pub uin: u64,
    pub nick: String,
    pub markname: Option<String>,
    /// Category index (0 = "我的好友", implicit when absent).
    pub category: u64,
    pub face: u64,
    pub is_vip: bool,
}

impl Friend {
    /// Markname if set, else nick (what the official page displayed).
    pub fn display_name(&self) -> &str {
        self.markname.as_deref().unwrap_or(&self.nick)
    }
}

/// A friend category.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    pub index: u64,
    pub name: String,
}

/// A group member (`get_group_info_ext2`, §6.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMember {
    pub uin: u64,
    pub nick: String,
    /// Group card (group nickname), if set.
    pub card: Option<String>,
    /// `mflag & 1`.
    pub is_admin: bool,
    pub client_type: Option<u64>,
    /// Status code (10 online, 20 offline...), if reported.
    pub stat: Option<u64>,
}

impl GroupMember {
    /// Card if set, else nick.
    pub fn display_name(&self) -> &str {
        self.card.as_deref().unwrap_or(&self.nick)
    }
}

/// A group (`get_group_name_list_mask2` + `get_group_info_ext2`, §6.2, §6.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Send target (`send_qun_msg2 group_uin`) and `from_uin` of its messages.
    pub gid: u64,
    /// Key of `get_group_info_ext2` (`gcode`); using the gid there gives retcode 6.
    pub code: u64,
    pub name: String,
    pub markname: Option<String>,
    pub owner: Option<u64>,
    pub members: Vec<GroupMember>,
}

impl Group {
    /// A member by uin.
    pub fn member(&self, uin: u64) -> Option<&GroupMember> {
        self.members.iter().find(|m| m.uin == uin)
    }
}

/// A discussion member (`get_discu_info`, §6.5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscuMember {
    pub uin: u64,
    /// Real QQ number.
    pub ruin: Option<u64>,
    pub nick: String,
    pub status: Option<String>,
}

/// A discussion (`get_discus_list` + `get_discu_info`, §6.4, §6.5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discu {
    pub did: u64,
    pub name: String,
    pub owner: Option<u64>,
    pub members: Vec<DiscuMember>,
}

/// Own profile (`get_self_info2`, §6.6). The embedded `vfwebqq` is deliberately dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelfInfo {
    pub uin: u64,
    /// Own QQ number.
    pub account: u64,
    pub nick: String,
    pub face: u64,
    pub lnick: String,
}

/// An online friend (`get_online_buddies2`, §6.8).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnlineBuddy {
    pub uin: u64,
    pub status: String,
    pub client_type: Option<u64>,
}

/// A recent conversation (`get_recent_list2`, §6.9). `kind` is the raw `type`: 0 friend,
/// 1 group, 2 discussion per two clients, 1/2/3 in one published sample (§15.8), so it is
/// kept raw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recent {
    pub kind: u64,
    pub uin: u64,
}

/// A snapshot of the contacts of one session, with lookups.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contacts {
    pub self_info: SelfInfo,
    pub friends: Vec<Friend>,
    pub categories: Vec<Category>,
    pub groups: Vec<Group>,
    pub discus: Vec<Discu>,
    pub online: Vec<OnlineBuddy>,
    pub recent: Vec<Recent>,
}

impl Contacts {
    /// A friend by uin.
    pub fn friend(&self, uin: u64) -> Option<&Friend> {
        self.friends.iter().find(|f| f.uin == uin)
    }

    /// A group by gid.
    pub fn group(&self, gid: u64) -> Option<&Group> {
        self.groups.iter().find(|g| g.gid == gid)
    }

    /// A discussion by did.
    pub fn discu(&self, did: u64) -> Option<&Discu> {
        self.discus.iter().find(|d| d.did == did)
    }

    /// A friend by markname or nick. A markname match wins over nick matches; several
    /// matches of the same rank are an error listing the candidates.
    pub fn friend_by_name(&self, name: &str) -> Result<&Friend, ProtocolError> {
        let by_mark: Vec<&Friend> = self
            .friends
            .iter()
            .filter(|f| f.markname.as_deref() == Some(name))
            .collect();
        let found = if by_mark.is_empty() {
            self.friends.iter().filter(|f| f.nick == name).collect()
        } else {
            by_mark
        };
        one("friend", name, found, |f| {
            format!("{} (uin {})", f.display_name(), f.uin)
        })
    }

    /// A friend by nick only.
    pub fn friend_by_nick(&self, nick: &str) -> Result<&Friend, ProtocolError> {
        let found = self.friends.iter().filter(|f| f.nick == nick).collect();
        one("friend", nick, found, |f| {
            format!("{} (uin {})", f.nick, f.uin)
        })
    }

    /// A friend by markname only.
    pub fn friend_by_markname(&self, markname: &str) -> Result<&Friend, ProtocolError> {
        let found = self
            .friends
            .iter()
            .filter(|f| f.markname.as_deref() == Some(markname))
            .collect();
        one("friend", markname, found, |f| {
            format!("{} (uin {})", f.display_name(), f.uin)
        })
    }

    /// A group by markname or name (markname first).
    pub fn group_by_name(&self, name: &str) -> Result<&Group, ProtocolError> {
        let by_mark: Vec<&Group> = self
            .groups
            .iter()
            .filter(|g| g.markname.as_deref() == Some(name))
            .collect();
        let found = if by_mark.is_empty() {
            self.groups.iter().filter(|g| g.name == name).collect()
        } else {
            by_mark
        };
        one("group", name, found, |g| {
            format!("{} (gid {})", g.name, g.gid)
        })
    }

    /// A discussion by name.
    pub fn discu_by_name(&self, name: &str) -> Result<&Discu, ProtocolError> {
        let found = self.discus.iter().filter(|d| d.name == name).collect();
        one("discussion", name, found, |d| {
            format!("{} (did {})", d.name, d.did)
        })
    }

    /// True when `uin` is a member of the group (used by self-echo detection: §5.4 echoes
    /// come from a pseudo uin that is not in the member list).
    pub fn is_group_member(&self, gid: u64, uin: u64) -> bool {
        self.group(gid).is_some_and(|g| g.member(uin).is_some())
    }
}

fn one<'a, T>(
    kind: &'static str,
    name: &str,
    found: Vec<&'a T>,
    describe: impl Fn(&T) -> String,
) -> Result<&'a T, ProtocolError> {
    match found.len() {
        0 => Err(ProtocolError::NotFound {
            kind,
            name: name.to_string(),
        }),
        1 => Ok(found[0]),
        _ => Err(ProtocolError::Ambiguous {
            kind,
            name: name.to_string(),
            candidates: found.into_iter().map(describe).collect(),
        }),
    }
}

fn name(v: &Value, key: &str) -> Option<String> {
    string(v, key).map(|s| html_unescape(&s))
}

fn arr<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Decodes `get_user_friends2`'s `result` (§6.1). `friends` and `info` are joined on uin;
/// a friend present in only one of them is kept with what is known.
pub fn decode_friends(result: &Value) -> Result<(Vec<Friend>, Vec<Category>), String> {
    if !result.is_object() {
        return Err("result is not an object".into());
    }
    if result.get("friends").is_some_and(|f| !f.is_array()) {
        return Err("friends is not an array".into());
    }
    let mut friends: Vec<Friend> = Vec::new();
    for f in arr(result, "friends") {
        let Some(uin) = num(f, "uin") else { continue };
        if friends.iter().any(|x| x.uin == uin) {
            continue;
        }
        friends.push(Friend {
            uin,
            nick: String::new(),
            markname: None,
            category: num(f, "categories").unwrap_or(0),
            face: 0,
            is_vip: false,
        });
    }
    for i in arr(result, "info") {
        let Some(uin) = num(i, "uin") else { continue };
        let idx = match friends.iter().position(|x| x.uin == uin) {
            Some(idx) => idx,
            None => {
                friends.push(Friend {
                    uin,
                    nick: String::new(),
                    markname: None,
                    category: 0,
                    face: 0,
                    is_vip: false,
                });
                friends.len() - 1
            }
        };
        friends[idx].nick = name(i, "nick").unwrap_or_default();
        friends[idx].face = num(i, "face").unwrap_or(0);
    }
    for m in arr(result, "marknames") {
        if let (Some(uin), Some(mark)) = (num(m, "uin"), name(m, "markname")) {
            if let Some(f) = friends.iter_mut().find(|x| x.uin == uin) {
                f.markname = Some(mark);
            }
        }
    }
    for v in arr(result, "vipinfo") {
        if let Some(u) = num(v, "u") {
            if let Some(f) = friends.iter_mut().find(|x| x.uin == u) {
                f.is_vip = num(v, "is_vip").unwrap_or(0) != 0;
            }
        }
    }
    let mut categories: Vec<Category> = arr(result, "categories")
        .iter()
        .filter_map(|c| {
            Some(Category {
                index: num(c, "index")?,
                name: name(c, "name").unwrap_or_default(),
            })
        })
        .collect();
    if !categories.iter().any(|c| c.index == 0) {
        categories.insert(
            0,
            Category {
                index: 0,
                name: "我的好友".into(),
            },
        );
    }
    Ok((friends, categories))
}

/// Decodes `get_group_name_list_mask2`'s `result` (§6.2): groups without members yet.
pub fn decode_groups(result: &Value) -> Result<Vec<Group>, String> {
    if !result.is_object() {
        return Err("result is not an object".into());
    }
    let mut groups: Vec<Group> = arr(result, "gnamelist")
        .iter()
        .filter_map(|g| {
            Some(Group {
                gid: num(g, "gid")?,
                code: num(g, "code")?,
                name: name(g, "name").unwrap_or_default(),
                markname: None,
                owner: None,
                members: Vec::new(),
            })
        })
        .collect();
    for m in arr(result, "gmarklist") {
        if let (Some(uin), Some(mark)) = (num(m, "uin"), name(m, "markname")) {
            if let Some(g) = groups.iter_mut().find(|g| g.gid == uin) {
                g.markname = Some(mark);
            }
        }
    }
    Ok(groups)
}

/// Decodes `get_group_info_ext2`'s `result` (§6.3) into (owner, members).
pub fn decode_group_info(result: &Value) -> Result<(Option<u64>, Vec<GroupMember>), String> {
    let ginfo = result
        .get("ginfo")
        .filter(|g| g.is_object())
        .ok_or("no ginfo")?;
    let mut members: Vec<GroupMember> = arr(ginfo, "members")
        .iter()
        .filter_map(|m| {
            Some(GroupMember {
                uin: num(m, "muin")?,
                nick: String::new(),
                card: None,
                is_admin: num(m, "mflag").unwrap_or(0) & 1 == 1,
                client_type: None,
                stat: None,
            })
        })
        .collect();
    let find = |members: &mut Vec<GroupMember>, uin: u64| -> usize {
        match members.iter().position(|m| m.uin == uin) {
            Some(i) => i,
            None => {
                members.push(GroupMember {
                    uin,
                    nick: String::new(),
                    card: None,
                    is_admin: false,
                    client_type: None,
                    stat: None,
                });
                members.len() - 1
            }
        }
    };
    for i in arr(result, "minfo") {
        let Some(uin) = num(i, "uin") else { continue };
        let idx = find(&mut members, uin);
        members[idx].nick = name(i, "nick").unwrap_or_default();
    }
    for c in arr(result, "cards") {
        let Some(uin) = num(c, "muin") else { continue };
        if let Some(m) = members.iter_mut().find(|m| m.uin == uin) {
            m.card = name(c, "card").filter(|s| !s.is_empty());
        }
    }
    for s in arr(result, "stats") {
        let Some(uin) = num(s, "uin") else { continue };
        if let Some(m) = members.iter_mut().find(|m| m.uin == uin) {
            m.client_type = num(s, "client_type");
            m.stat = num(s, "stat");
        }
    }
    Ok((num(ginfo, "owner"), members))
}

/// Decodes `get_discus_list`'s `result` (§6.4).
pub fn decode_discus(result: &Value) -> Result<Vec<Discu>, String> {
    if !result.is_object() {
        return Err("result is not an object".into());
    }
    Ok(arr(result, "dnamelist")
        .iter()
        .filter_map(|d| {
            Some(Discu {
                did: num(d, "did")?,
                name: name(d, "name").unwrap_or_default(),
                owner: None,
                members: Vec::new(),
            })
        })
        .collect())
}

/// (name, owner, members) of a discussion.
pub type DiscuInfo = (Option<String>, Option<u64>, Vec<DiscuMember>);

/// Decodes `get_discu_info`'s `result` (§6.5) into (name, owner, members).
pub fn decode_discu_info(result: &Value) -> Result<DiscuInfo, String> {
    let info = result
        .get("info")
        .filter(|i| i.is_object())
        .ok_or("no info")?;
    let mut members: Vec<DiscuMember> = arr(info, "mem_list")
        .iter()
        .filter_map(|m| {
            Some(DiscuMember {
                uin: num(m, "mem_uin")?,
                ruin: num(m, "ruin"),
                nick: String::new(),
                status: None,
            })
        })
        .collect();
    for i in arr(result, "mem_info") {
        let Some(uin) = num(i, "uin") else { continue };
        if let Some(m) = members.iter_mut().find(|m| m.uin == uin) {
            m.nick = name(i, "nick").unwrap_or_default();
        }
    }
    for s in arr(result, "mem_status") {
        let Some(uin) = num(s, "uin") else { continue };
        if let Some(m) = members.iter_mut().find(|m| m.uin == uin) {
            m.status = string(s, "status");
        }
    }
    Ok((name(info, "discu_name"), num(info, "discu_owner"), members))
}

/// Decodes `get_self_info2`'s `result` (§6.6).
pub fn decode_self_info(result: &Value) -> Result<SelfInfo, String> {
    if !result.is_object() {
        return Err("result is not an object".into());
    }
    let uin = num(result, "uin").ok_or("no uin")?;
    Ok(SelfInfo {
        uin,
        account: num(result, "account").unwrap_or(uin),
        nick: name(result, "nick").unwrap_or_default(),
        face: num(result, "face").unwrap_or(0),
        lnick: name(result, "lnick").unwrap_or_default(),
    })
}

/// Decodes `get_online_buddies2`'s `result` (§6.8).
pub fn decode_online(result: &Value) -> Result<Vec<OnlineBuddy>, String> {
    let a = result.as_array().ok_or("result is not an array")?;
    Ok(a.iter()
        .filter_map(|b| {
            Some(OnlineBuddy {
                uin: num(b, "uin")?,
                status: string(b, "status").unwrap_or_default(),
                client_type: num(b, "client_type"),
            })
        })
        .collect())
}

/// Decodes `get_recent_list2`'s `result` (§6.9).
pub fn decode_recent(result: &Value) -> Result<Vec<Recent>, String> {
    let a = result.as_array().ok_or("result is not an array")?;
    Ok(a.iter()
        .filter_map(|r| {
            Some(Recent {
                kind: num(r, "type").unwrap_or(0),
                uin: num(r, "uin")?,
            })
        })
        .collect())
}
