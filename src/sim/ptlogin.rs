//! ptlogin2 (§3.2-§3.5, §3.10, §10): login pages, `ptqrshow`, `ptqrlogin`, `check_sig`,
//! `pt4_auth` and logout.

use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use rand::Rng;

use super::qr;
use super::request::{html, js, set_cookie, status, Outcome, Req};
use super::state::Sim;
use super::world::{o_uin, rand_hex, rand_token, Qr, QrState, TOKEN_ALPHABET};
use crate::protocol::hash::{hash33, time33};

/// The opaque number ptlogin appended to its messages.
fn opaque() -> u32 {
    rand::rng().random_range(100_000_000..4_000_000_000u32)
}

/// `ptuiCB(...)` with the exact spacing of the real answers (space before the last argument).
fn ptui_cb(code: &str, url: &str, msg: &str, nick: &str) -> String {
    format!("ptuiCB('{code}','0','{url}','0','{msg}', '{nick}');")
}

/// Nicks go into a comma-split, quote-delimited argument (§16): no ASCII comma or quote.
fn js_safe(s: &str) -> String {
    s.replace(',', "，")
        .replace('\'', "’")
        .replace('\\', "＼")
        .replace(['\r', '\n'], " ")
}

/// Login page (`ui.ptlogin2.qq.com/cgi-bin/login`, `xui.ptlogin2.qq.com/cgi-bin/xlogin`):
/// the variables older clients scraped, and the `pt_login_sig` cookie (§3.2).
pub fn login_page(_sim: &Sim, _req: &Req) -> Outcome {
    let sig = rand_token(64, TOKEN_ALPHABET);
    let page = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>QQ帐号安全登录</title>\
<script>var g_pt_version=encodeURIComponent(\"10233\"),g_login_sig=encodeURIComponent(\"{sig}\"),\
g_mibao_css=encodeURIComponent(\"m_webqq\"),g_appid=encodeURIComponent(\"501004106\");</script>\
</head><body><form><input type=\"hidden\" name=\"aid\" value=\"501004106\" /></form></body></html>"
    );
    let mut r = html(page);
    set_cookie(&mut r, "pt_login_sig", &sig);
    Outcome::new(r, None, None)
}

/// `ptqrshow`: a new QR (PNG) and its `qrsig` cookie; the QR named by the request's old
/// `qrsig` cookie is invalidated (§3.3).
pub fn ptqrshow(sim: &Arc<Sim>, req: &Req) -> Outcome {
    let module: u32 = req.q("s").and_then(|v| v.parse().ok()).unwrap_or(3);
    let margin: u32 = req.q("e").and_then(|v| v.parse().ok()).unwrap_or(2);
    let level = req.q("l").unwrap_or("M").to_string();
    let qrsig = rand_token(64, TOKEN_ALPHABET);
    let token = rand_hex(32);
    let png = match qr::png(&qr::qr_url(&token), module, margin, &level) {
        Ok(p) => p,
        Err(_) => return Outcome::new(status(StatusCode::INTERNAL_SERVER_ERROR, "qr"), None, None),
    };
    {
        let now = sim.now();
        let lifetime = sim.cfg.qr_lifetime.as_millis() as u64;
        let mut w = sim.world();
        if let Some(old) = req.cookie("qrsig") {
            if let Some(q) = w.qr_mut(old, now, lifetime) {
                if matches!(q.state, QrState::Waiting | QrState::Scanned) {
                    q.state = QrState::Expired;
                }
            }
        }
        w.add_qr(Qr {
            qrsig: qrsig.clone(),
            token,
            state: QrState::Waiting,
            qq: None,
            created_ms: sim.now(),
        });
    }
    if let Some(delay) = sim.cfg.auto_scan {
        let sim2 = sim.clone();
        let qrsig2 = qrsig.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = scan(&sim2, &qrsig2, None, true);
        });
    }
    let mut r = axum::response::Response::new(axum::body::Body::from(png));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    set_cookie(&mut r, "qrsig", &qrsig);
    Outcome::new(r, None, None)
}

/// Why a scan through the control API failed.
#[derive(Debug, PartialEq, Eq)]
pub enum ScanError {
    UnknownQr,
    NotWaiting(QrState),
}

/// Scans a QR as `qq` (a fresh account when `None`), optionally confirming it. Accepts the
/// qrsig or the token. Returns the QQ number.
pub fn scan(sim: &Sim, key: &str, qq: Option<u64>, confirm: bool) -> Result<u64, ScanError> {
    let now = sim.now();
    let lifetime = sim.cfg.qr_lifetime.as_millis() as u64;
    let mut w = sim.world();
    let state = w
        .qr_mut(key, now, lifetime)
        .map(|q| q.state)
        .ok_or(ScanError::UnknownQr)?;
    let qq = match qq {
        Some(q) => q,
        None => w.fresh_qq(),
    };
    let c = &sim.cfg;
    if state != QrState::Waiting {
        return Err(ScanError::NotWaiting(state));
    }
    w.upsert_account(
        qq,
        None,
        c.default_friends,
        c.default_groups,
        c.default_discus,
        c.group_members,
        false,
    );
    let q = w.qr_mut(key, now, lifetime).ok_or(ScanError::UnknownQr)?;
    q.qq = Some(qq);
    q.state = if confirm {
        QrState::Confirmed
    } else {
        QrState::Scanned
    };
    Ok(qq)
}

/// Confirms a scanned QR (the "allow" on the phone).
pub fn confirm(sim: &Sim, key: &str) -> Result<u64, ScanError> {
    let now = sim.now();
    let mut w = sim.world();
    let q = w
        .qr_mut(key, now, sim.cfg.qr_lifetime.as_millis() as u64)
        .ok_or(ScanError::UnknownQr)?;
    if q.state != QrState::Scanned {
        return Err(ScanError::NotWaiting(q.state));
    }
    q.state = QrState::Confirmed;
    Ok(q.qq.unwrap_or_default())
}

/// The check_sig URL of a login, pointing back into the simulator (plain `http://`, no
/// comma, §16).
fn check_sig_url(base: &str, qq: u64, ptsigx: &str, service: &str) -> String {
    format!(
        "{base}/ptlogin4.web2.qq.com/check_sig?pttype=1&uin={qq}&service={service}&nodirect=0\
&ptsigx={ptsigx}&s_url=http%3A%2F%2Fw.qq.com%2Fproxy.html%3Flogin2qq%3D1%26webqq_type%3D10\
&f_url=&ptlang=2052&ptredirect=100&aid=501004106&daid=164&j_later=0&low_login_hour=0\
&regmaster=0&pt_login_type=3&pt_aid=0&pt_aaid=16&pt_light=0&pt_3rd_aid=0"
    )
}

/// `ptqrlogin`: the scan state as `ptuiCB` 66 / 67 / 65 / 0 (§3.4). On 0 the ptlogin
/// cookies are set (§3.4, §16: both `uin` and `superuin`).
pub fn ptqrlogin(sim: &Sim, req: &Req) -> Outcome {
    let expired = || {
        js(ptui_cb(
            "65",
            "",
            &format!("二维码已失效。({})", opaque()),
            "",
        ))
    };
    let Some(qrsig) = req.cookie("qrsig").map(str::to_string) else {
        return Outcome::new(expired(), None, Some(65));
    };
    // A missing ptqrtoken is the pre-2017 era and accepted; a wrong one is refused with the
    // generic ptlogin "bad parameters" answer (§3.4, §16).
    let with_token = req.q("ptqrtoken").is_some();
    if let Some(tok) = req.q("ptqrtoken") {
        if tok.trim() != hash33(&qrsig).to_string() {
            let body = ptui_cb(
                "7",
                "",
                &format!("很遗憾，网络连接出现异常，请您稍后再试。({})", opaque()),
                "",
            );
            return Outcome::new(js(body), None, Some(7));
        }
    }
    let now = sim.now();
    let mut w = sim.world();
    let Some(q) = w.qr_mut(&qrsig, now, sim.cfg.qr_lifetime.as_millis() as u64) else {
        return Outcome::new(expired(), None, Some(65));
    };
    let qq = q.qq;
    match q.state {
        QrState::Waiting => {
            let body = ptui_cb("66", "", &format!("二维码未失效。({})", opaque()), "");
            Outcome::new(js(body), qq, Some(66))
        }
        QrState::Scanned => {
            let body = ptui_cb("67", "", &format!("二维码认证中。({})", opaque()), "");
            Outcome::new(js(body), qq, Some(67))
        }
        QrState::Expired | QrState::Used => Outcome::new(expired(), qq, Some(65)),
        QrState::Confirmed => {
            q.state = QrState::Used;
            let qq = qq.unwrap_or_default();
            let lid = w.create_login(qq, now);
            if let Some(l) = w.logins.get_mut(&lid) {
                l.qr_without_token = !with_token;
            }
            let l = w.logins[&lid].clone();
            let nick = w
                .accounts
                .get(&qq)
                .map(|a| a.nick.clone())
                .unwrap_or_default();
            drop(w);
            let url = check_sig_url(&req.base_url(sim.addr), qq, &l.ptsigx, "ptqrlogin");
            let mut r = js(ptui_cb("0", &url, "登录成功！", &js_safe(&nick)));
            let ouin = o_uin(qq);
            set_cookie(&mut r, "pt2gguin", &ouin);
            set_cookie(&mut r, "uin", &ouin);
            set_cookie(&mut r, "skey", &l.skey);
            set_cookie(&mut r, "superuin", &ouin);
            set_cookie(&mut r, "superkey", &l.superkey);
            set_cookie(&mut r, "supertoken", &l.supertoken);
            set_cookie(&mut r, "ptwebqq", &l.ptwebqq);
            set_cookie(&mut r, "ptcz", &rand_hex(64));
            set_cookie(&mut r, "RK", &rand_token(10, TOKEN_ALPHABET));
            Outcome::new(r, Some(qq), Some(0))
        }
    }
}

/// `check_sig`: 302 to the proxy page with the web2 cookies on the redirect itself (§3.5).
pub fn check_sig(sim: &Sim, req: &Req) -> Outcome {
    let now = sim.now();
    let w = sim.world();
    let found = req
        .q("ptsigx")
        .and_then(|x| w.login_by_ptsigx.get(x).copied())
        .filter(|id| w.login_alive(*id, now, sim.lifetime_ms()))
        .map(|id| w.logins[&id].clone());
    drop(w);
    let Some(l) = found else {
        return Outcome::new(
            status(
                StatusCode::FORBIDDEN,
                "check_sig: unknown or expired ptsigx",
            ),
            None,
            None,
        );
    };
    let location = format!(
        "{}/w.qq.com/proxy.html?login2qq=1&webqq_type=10",
        req.base_url(sim.addr)
    );
    let mut r = axum::response::Response::new(axum::body::Body::empty());
    *r.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    let ouin = o_uin(l.qq);
    set_cookie(&mut r, "uin", &ouin);
    set_cookie(&mut r, "skey", &l.skey);
    set_cookie(&mut r, "pt2gguin", &ouin);
    set_cookie(&mut r, "p_skey", &l.p_skey);
    set_cookie(&mut r, "pt4_token", &l.pt4_token);
    set_cookie(&mut r, "p_uin", &ouin);
    Outcome::new(r, Some(l.qq), None)
}

/// `pt4_auth` (§3.10): with valid `supertoken`/`superuin` cookies (and `auth_token` =
/// time33(supertoken) when given), a check_sig URL for the same login, skipping the scan.
pub fn pt4_auth(sim: &Sim, req: &Req) -> Outcome {
    let now = sim.now();
    let w = sim.world();
    let superuin = req.cookie("superuin").and_then(super::world::parse_o_uin);
    let found = req
        .cookie("supertoken")
        .filter(|t| match req.q("auth_token") {
            Some(a) => a.trim() == time33(t).to_string(),
            None => true,
        })
        .and_then(|t| w.login_by_supertoken.get(t).copied())
        .filter(|id| w.login_alive(*id, now, sim.lifetime_ms()))
        .map(|id| w.logins[&id].clone())
        .filter(|l| Some(l.qq) == superuin);
    drop(w);
    match found {
        Some(l) => {
            let url = check_sig_url(&req.base_url(sim.addr), l.qq, &l.ptsigx, "pt4_auth");
            Outcome::new(
                js(format!("ptui_auth_CB('0','{url}');")),
                Some(l.qq),
                Some(0),
            )
        }
        None => Outcome::new(js("ptui_auth_CB('1','');".into()), superuin, Some(1)),
    }
}

/// ptlogin logout (§10): the login named by the `skey` cookie dies with its sessions.
pub fn logout(sim: &Sim, req: &Req) -> Outcome {
    let mut w = sim.world();
    let lid = req
        .cookie("skey")
        .and_then(|s| w.login_by_skey.get(s).copied());
    let mut qq = None;
    if let Some(id) = lid {
        if let Some(l) = w.logins.get_mut(&id) {
            l.dead = true;
            qq = Some(l.qq);
        }
        let ids: Vec<u64> = w
            .sessions
            .values()
            .filter(|s| s.login_id == id)
            .map(|s| s.id)
            .collect();
        for s in ids {
            w.remove_session(s);
        }
    }
    Outcome::new(js("ptui_logout_CB('0');".into()), qq, Some(0))
}
