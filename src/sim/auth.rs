//! The checks of §14.3 in their suggested order: Referer → cookies → vfwebqq/psessionid →
//! clientid. Each returns the retcode the real service answered for that failure, so the
//! handler only chooses the error shape.

use serde_json::Value;

use super::request::{num, text, Req};
use super::state::Sim;
use super::world::{CookieError, SessionState, World};

/// A channel call's authenticated session.
#[derive(Debug, Clone, Copy)]
pub struct SessionCtx {
    pub sid: u64,
    pub qq: u64,
    pub login_id: u64,
}

/// A parameter from `r` when present, else from the query string.
pub fn param<'a>(req: &'a Req, r: Option<&'a Value>, name: &str) -> Option<Value> {
    if let Some(v) = r.and_then(|r| r.get(name)) {
        return Some(v.clone());
    }
    req.q(name).map(|s| Value::String(s.to_string()))
}

/// Cookie login of a web2 call (`skey` + `uin` + `p_skey`).
pub fn cookie_login(sim: &Sim, w: &World, req: &Req) -> Result<u64, CookieError> {
    w.login_from_cookies(
        req.cookie("skey"),
        req.cookie("uin"),
        req.cookie("p_skey"),
        true,
        sim.now(),
        sim.lifetime_ms(),
    )
}

/// Authenticates a `d1.web2.qq.com/channel/*` call that names its session.
///
/// `bad_cookie`: code for a missing Referer or cookie; `bad_session`: code for an unknown,
/// dead, expired or mismatched session (`poll2` answers 103, sends 100001).
pub fn channel_session(
    sim: &Sim,
    w: &World,
    req: &Req,
    r: Option<&Value>,
    bad_cookie: i64,
    bad_session: i64,
) -> Result<SessionCtx, i64> {
    if !req.referer_ok() {
        return Err(bad_cookie);
    }
    let psid = param(req, r, "psessionid")
        .and_then(|v| text(Some(&v)))
        .unwrap_or_default();
    let sid = *w.session_by_psid.get(&psid).ok_or(bad_session)?;
    let s = &w.sessions[&sid];
    if s.state != SessionState::Alive {
        return Err(bad_session);
    }
    if !w.login_alive(s.login_id, sim.now(), sim.lifetime_ms()) {
        return Err(bad_session);
    }
    let login = match cookie_login(sim, w, req) {
        Ok(l) => l,
        Err(CookieError::Expired) => return Err(bad_session),
        Err(_) => return Err(bad_cookie),
    };
    if w.logins[&login].qq != s.qq {
        return Err(bad_cookie);
    }
    let clientid = param(req, r, "clientid").and_then(|v| num(Some(&v)));
    if clientid.map(|c| c.to_string()) != Some(s.clientid.clone()) {
        return Err(bad_session);
    }
    Ok(SessionCtx {
        sid,
        qq: s.qq,
        login_id: s.login_id,
    })
}

/// Authenticates an `s.web2.qq.com/api/*` call: Referer, cookies and `vfwebqq`. Answers the
/// account's active session (pseudo uins live there). Failures are `100000` (§3.6, §11).
pub fn api_session(sim: &Sim, w: &World, req: &Req, r: Option<&Value>) -> Result<SessionCtx, i64> {
    api_session_opt_vf(sim, w, req, r, true)
}

/// Like [`api_session`]; `need_vfwebqq = false` for `get_self_info2`, which only sends `t`.
pub fn api_session_opt_vf(
    sim: &Sim,
    w: &World,
    req: &Req,
    r: Option<&Value>,
    need_vfwebqq: bool,
) -> Result<SessionCtx, i64> {
    const E: i64 = 100_000;
    if !req.referer_ok() {
        return Err(E);
    }
    let login_id = cookie_login(sim, w, req).map_err(|_| E)?;
    let login = &w.logins[&login_id];
    let sid = w
        .accounts
        .get(&login.qq)
        .and_then(|a| a.active_session)
        .ok_or(E)?;
    let s = w.sessions.get(&sid).ok_or(E)?;
    if s.state != SessionState::Alive {
        return Err(E);
    }
    if need_vfwebqq {
        let vf = param(req, r, "vfwebqq")
            .and_then(|v| text(Some(&v)))
            .unwrap_or_default();
        if vf.is_empty() || (vf != s.vfwebqq && Some(&vf) != login.vfwebqq.as_ref()) {
            return Err(E);
        }
    }
    Ok(SessionCtx {
        sid,
        qq: login.qq,
        login_id,
    })
}
