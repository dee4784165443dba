//! `s.web2.qq.com/api/*` (§3.6, §6.1-§6.7): getvfwebqq and the contact and profile calls.
//! Errors are `{"retcode":N}`; cookie, Referer and vfwebqq problems give 100000.

use serde_json::{json, Value};

use super::auth::{api_session, api_session_opt_vf, cookie_login, SessionCtx};
use super::request::{json_line, Outcome, Req};
use super::state::Sim;
use super::world::{rand_hex, Session, World};
use crate::protocol::hash::friend_hash;

/// Error shape of the info API (fixtures `get_user_friends2_retcode6`, `_100101`).
pub fn api_error(code: i64) -> Value {
    json!({ "retcode": code })
}

fn err(code: i64, qq: Option<u64>) -> Outcome {
    Outcome::new(json_line(&api_error(code)), qq, Some(code))
}

fn ok(result: Value, qq: u64) -> Outcome {
    Outcome::new(
        json_line(&json!({"retcode": 0, "result": result})),
        Some(qq),
        Some(0),
    )
}

/// `getvfwebqq` (§3.6): a fresh vfwebqq for the login named by the cookies.
pub fn getvfwebqq(sim: &Sim, req: &Req) -> Outcome {
    let hint = req.qq_hint();
    if !req.referer_ok() {
        return err(100_000, hint);
    }
    let mut w = sim.world();
    let Ok(lid) = cookie_login(sim, &w, req) else {
        return err(100_000, hint);
    };
    let l = w.logins.get_mut(&lid).expect("found");
    let p = req.q("ptwebqq").unwrap_or("");
    if !p.is_empty() && p != l.ptwebqq {
        return err(100_000, Some(l.qq));
    }
    let vf = rand_hex(80);
    l.vfwebqq = Some(vf.clone());
    let qq = l.qq;
    ok(json!({ "vfwebqq": vf }), qq)
}

/// Parses `r` for the POST list calls (a GET with `r` in the query works too, §16).
fn r_of(req: &Req) -> Result<Value, i64> {
    req.r_json().map_err(|_| 100_000)
}

/// The `hash` check (§4.4, variant P). Accepted over the current ptwebqq or over `""`, as
/// clients computed it once the cookie went empty in 2018 (§15.7). A wrong hash answers 50,
/// the only code ever seen for it.
fn hash_ok(w: &World, ctx: SessionCtx, r: &Value) -> bool {
    let Some(h) = r.get("hash").and_then(Value::as_str) else {
        return false;
    };
    let l = &w.logins[&ctx.login_id];
    h.eq_ignore_ascii_case(&friend_hash(ctx.qq, &l.ptwebqq)) || h == friend_hash(ctx.qq, "")
}

fn with_session<T>(
    w: &mut World,
    ctx: SessionCtx,
    f: impl FnOnce(&mut Session, &super::world::Contacts) -> T,
) -> T {
    let contacts = w.accounts[&ctx.qq].contacts.clone();
    let s = w.sessions.get_mut(&ctx.sid).expect("authenticated");
    f(s, &contacts)
}

/// `get_user_friends2` (§6.1) with the friend-list lockout (§8.3): more than
/// `friend_list_limit` calls in the window → retcode 6 for the cool-down.
pub fn get_user_friends2(sim: &Sim, req: &Req) -> Outcome {
    let r = match r_of(req) {
        Ok(r) => r,
        Err(c) => return err(c, req.qq_hint()),
    };
    let now = sim.now();
    let mut w = sim.world();
    let ctx = match api_session(sim, &w, req, Some(&r)) {
        Ok(c) => c,
        Err(c) => return err(c, req.qq_hint()),
    };
    if !hash_ok(&w, ctx, &r) {
        return err(50, Some(ctx.qq));
    }
    let acc = w.accounts.get_mut(&ctx.qq).expect("exists");
    if now < acc.friend_locked_until {
        return err(6, Some(ctx.qq));
    }
    let window = sim.cfg.friend_list_window.as_millis() as u64;
    while acc
        .friend_calls
        .front()
        .is_some_and(|t| now.saturating_sub(*t) >= window)
    {
        acc.friend_calls.pop_front();
    }
    acc.friend_calls.push_back(now);
    if acc.friend_calls.len() > sim.cfg.friend_list_limit as usize {
        acc.friend_locked_until = now + sim.cfg.friend_list_lockout.as_millis() as u64;
        acc.friend_calls.clear();
        return err(6, Some(ctx.qq));
    }
    let result = with_session(&mut w, ctx, |s, c| {
        let mut friends = Vec::new();
        let mut marknames = Vec::new();
        let mut vipinfo = Vec::new();
        let mut info = Vec::new();
        for f in &c.friends {
            let u = s.uin_of(f.qq);
            friends.push(json!({"flag": f.category * 4, "uin": u, "categories": f.category}));
            if let Some(m) = &f.markname {
                marknames.push(json!({"uin": u, "markname": m, "type": 0}));
            }
            vipinfo.push(json!({"vip_level": 0, "u": u, "is_vip": 0}));
            info.push(json!({"face": f.face, "flag": 17_334_848, "nick": f.nick, "uin": u}));
        }
        let categories: Vec<Value> = c
            .categories
            .iter()
            .map(|(i, n)| json!({"index": i, "sort": i, "name": n}))
            .collect();
        json!({"friends": friends, "marknames": marknames, "categories": categories,
               "vipinfo": vipinfo, "info": info})
    });
    ok(result, ctx.qq)
}

/// `get_group_name_list_mask2` (§6.2); POST, or GET with `r` in the query.
pub fn get_group_name_list_mask2(sim: &Sim, req: &Req) -> Outcome {
    let r = match r_of(req) {
        Ok(r) => r,
        Err(c) => return err(c, req.qq_hint()),
    };
    let mut w = sim.world();
    let ctx = match api_session(sim, &w, req, Some(&r)) {
        Ok(c) => c,
        Err(c) => return err(c, req.qq_hint()),
    };
    if !hash_ok(&w, ctx, &r) {
        return err(50, Some(ctx.qq));
    }
    let result = with_session(&mut w, ctx, |s, c| {
        let mut names = Vec::new();
        let mut marks = Vec::new();
        for g in &c.groups {
            let (gid, code) = s.group_ids(g.number);
            names.push(json!({"flag": 1_090_519_041, "name": g.name, "gid": gid, "code": code}));
            if let Some(m) = &g.markname {
                marks.push(json!({"uin": gid, "markname": m}));
            }
        }
        json!({"gmasklist": [], "gnamelist": names, "gmarklist": marks})
    });
    ok(result, ctx.qq)
}

/// `get_group_info_ext2` (§6.3); a gid instead of the code gives retcode 6.
pub fn get_group_info_ext2(sim: &Sim, req: &Req) -> Outcome {
    let mut w = sim.world();
    let ctx = match api_session(sim, &w, req, None) {
        Ok(c) => c,
        Err(c) => return err(c, req.qq_hint()),
    };
    let gcode: Option<u64> = req.q("gcode").and_then(|v| v.trim().parse().ok());
    let out = with_session(&mut w, ctx, |s, c| {
        let number = gcode.and_then(|code| s.group_of_code(code))?;
        let g = c.groups.iter().find(|g| g.number == number)?;
        let (gid, code) = s.group_ids(g.number);
        let mut members = Vec::new();
        let mut minfo = Vec::new();
        let mut stats = Vec::new();
        let mut cards = Vec::new();
        let mut vip = Vec::new();
        for (i, m) in g.members.iter().enumerate() {
            let u = s.uin_of(m.qq);
            members.push(json!({"muin": u, "mflag": if m.admin { 1 } else { 0 }}));
            minfo.push(json!({"nick": m.nick, "province": "广东", "gender": if i % 2 == 0 { "male" } else { "female" },
                              "uin": u, "country": "中国", "city": "深圳"}));
            if i % 2 == 0 {
                stats.push(json!({"client_type": 1, "uin": u, "stat": 10}));
            }
            if let Some(card) = &m.card {
                cards.push(json!({"muin": u, "card": card}));
            }
            vip.push(json!({"vip_level": 0, "u": u, "is_vip": 0}));
        }
        let owner = s.uin_of(g.owner);
        Some(json!({
            "stats": stats, "minfo": minfo,
            "ginfo": {"face": 0, "memo": "", "class": 10048, "fingermemo": "", "code": code,
                      "createtime": g.createtime, "flag": 1_090_519_041, "level": 0,
                      "name": g.name, "gid": gid, "owner": owner, "members": members,
                      "option": 2},
            "cards": cards, "vipinfo": vip}))
    });
    match out {
        Some(v) => ok(v, ctx.qq),
        None => err(6, Some(ctx.qq)),
    }
}

/// `get_discus_list` (§6.4).
pub fn get_discus_list(sim: &Sim, req: &Req) -> Outcome {
    let w = sim.world();
    let ctx = match api_session(sim, &w, req, None) {
        Ok(c) => c,
        Err(c) => return err(c, req.qq_hint()),
    };
    let list: Vec<Value> = w.accounts[&ctx.qq]
        .contacts
        .discus
        .iter()
        .map(|d| json!({"name": d.name, "did": d.did}))
        .collect();
    ok(json!({ "dnamelist": list }), ctx.qq)
}

fn profile(uin: u64, nick: &str, face: u32, gender: &str) -> Value {
    json!({"face": face, "birthday": {"month": 1, "year": 1990, "day": 1}, "occupation": "",
           "phone": "", "allow": 1, "college": "", "uin": uin, "constel": 1, "blood": 0,
           "homepage": "", "vip_info": 0, "country": "中国", "city": "深圳", "personal": "",
           "nick": nick, "shengxiao": 7, "email": "", "province": "广东", "gender": gender,
           "mobile": ""})
}

/// `get_self_info2` (§6.6; §16: `result.birthday` must be an object).
pub fn get_self_info2(sim: &Sim, req: &Req) -> Outcome {
    let w = sim.world();
    let ctx = match api_session_opt_vf(sim, &w, req, None, false) {
        Ok(c) => c,
        Err(c) => return err(c, req.qq_hint()),
    };
    let acc = &w.accounts[&ctx.qq];
    let mut p = profile(ctx.qq, &acc.nick, 555, "male");
    let vf = w.sessions[&ctx.sid].vfwebqq.clone();
    p["lnick"] = json!(format!("{}的签名", acc.nick));
    p["vfwebqq"] = json!(vf);
    p["account"] = json!(ctx.qq);
    ok(p, ctx.qq)
}

/// `get_friend_info2` (§6.7): profile of a friend or member, with `stat`.
pub fn get_friend_info2(sim: &Sim, req: &Req) -> Outcome {
    let mut w = sim.world();
    let ctx = match api_session(sim, &w, req, None) {
        Ok(c) => c,
        Err(c) => return err(c, req.qq_hint()),
    };
    let tuin: Option<u64> = req.q("tuin").and_then(|v| v.trim().parse().ok());
    let out = with_session(&mut w, ctx, |s, c| {
        let qq = tuin.and_then(|u| s.qq_of_uin(u))?;
        let u = s.uin_of(qq);
        let f = c.friends.iter().find(|f| f.qq == qq);
        let nick = c.nick_of(qq)?;
        let mut p = profile(
            u,
            nick,
            f.map(|f| f.face).unwrap_or(0),
            f.map(|f| f.gender).unwrap_or("male"),
        );
        let online = f.map(|f| f.online).unwrap_or(false);
        p["stat"] = json!(if online { 10 } else { 20 });
        Some(p)
    });
    match out {
        Some(p) => ok(p, ctx.qq),
        None => err(6, Some(ctx.qq)),
    }
}

/// `get_single_long_nick2` (§6.7).
pub fn get_single_long_nick2(sim: &Sim, req: &Req) -> Outcome {
    let mut w = sim.world();
    let ctx = match api_session(sim, &w, req, None) {
        Ok(c) => c,
        Err(c) => return err(c, req.qq_hint()),
    };
    let own_nick = w.accounts[&ctx.qq].nick.clone();
    let tuin: Option<u64> = req.q("tuin").and_then(|v| v.trim().parse().ok());
    let out = with_session(&mut w, ctx, |s, c| {
        let qq = tuin.and_then(|u| s.qq_of_uin(u))?;
        let lnick = if qq == ctx.qq {
            format!("{own_nick}的签名")
        } else {
            c.friends
                .iter()
                .find(|f| f.qq == qq)
                .map(|f| f.lnick.clone())
                .or_else(|| c.nick_of(qq).map(|_| String::new()))?
        };
        Some(json!([{"uin": s.uin_of(qq), "lnick": lnick}]))
    });
    match out {
        Some(v) => ok(v, ctx.qq),
        None => err(6, Some(ctx.qq)),
    }
}

/// `get_friend_uin2` (§6.10): the real number behind a pseudo uin (`type=1`) or gid
/// (`type=4`). It worked until 2017-04; older clients still call it.
pub fn get_friend_uin2(sim: &Sim, req: &Req) -> Outcome {
    let w = sim.world();
    let ctx = match api_session(sim, &w, req, None) {
        Ok(c) => c,
        Err(c) => return err(c, req.qq_hint()),
    };
    let tuin: Option<u64> = req.q("tuin").and_then(|v| v.trim().parse().ok());
    let s = &w.sessions[&ctx.sid];
    let account = match (tuin, req.q("type")) {
        (Some(u), Some("4")) => s.group_of_gid(u),
        (Some(u), _) => s.qq_of_uin(u),
        _ => None,
    };
    match (account, tuin) {
        (Some(a), Some(u)) => ok(json!({"uiuin": "", "account": a, "uin": u}), ctx.qq),
        _ => err(6, Some(ctx.qq)),
    }
}
