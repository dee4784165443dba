//! Routing: the control API under `/sim/`, and every real host under a path prefix equal to
//! its name (`/d1.web2.qq.com/channel/poll2`). Protocol requests go through one dispatcher
//! that counts them, applies queued faults and records per-account retcodes.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use super::channel::{self, channel_error, SendKind};
use super::control;
use super::faults::FaultAction;
use super::info::{self, api_error};
use super::ptlogin;
use super::request::{html, js, json_line, status, ConnAbort, Outcome, Req, MAX_BODY};
use super::state::Sim;

type Handler = fn(&Sim, &Req) -> Outcome;

/// Longest time a request body may take to arrive.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What a protocol path is.
#[derive(Clone, Copy)]
enum Route {
    Ptqrshow,
    Sync(Handler),
    Poll2,
    Page(&'static str),
    Empty,
}

const PTLOGIN_HOSTS: &[&str] = &[
    "ssl.ptlogin2.qq.com",
    "ptlogin2.qq.com",
    "xui.ptlogin2.qq.com",
    "ui.ptlogin2.qq.com",
];

const PROXY_PAGE: &str = "<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head><body>\
<script>document.domain=\"qq.com\";</script></body></html>";
const WQQ_PAGE: &str = "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>SmartQQ</title>\
</head><body>SmartQQ</body></html>";

fn send_buddy(s: &Sim, r: &Req) -> Outcome {
    channel::send(s, r, SendKind::Buddy)
}
fn send_qun(s: &Sim, r: &Req) -> Outcome {
    channel::send(s, r, SendKind::Qun)
}
fn send_discu(s: &Sim, r: &Req) -> Outcome {
    channel::send(s, r, SendKind::Discu)
}
fn send_sess(s: &Sim, r: &Req) -> Outcome {
    channel::send(s, r, SendKind::Sess)
}

fn route(host: &str, path: &str) -> Option<Route> {
    if PTLOGIN_HOSTS.contains(&host) {
        return Some(match path {
            "/ptqrshow" => Route::Ptqrshow,
            "/ptqrlogin" => Route::Sync(ptlogin::ptqrlogin),
            "/pt4_auth" => Route::Sync(ptlogin::pt4_auth),
            "/logout" => Route::Sync(ptlogin::logout),
            "/cgi-bin/xlogin" | "/cgi-bin/login" => Route::Sync(ptlogin::login_page),
            _ => return None,
        });
    }
    match host {
        "ptlogin4.web2.qq.com" if path == "/check_sig" => Some(Route::Sync(ptlogin::check_sig)),
        "w.qq.com" | "web2.qq.com" => match path {
            "/" | "/login.html" | "/index.html" => Some(Route::Page(WQQ_PAGE)),
            "/proxy.html" => Some(Route::Page(PROXY_PAGE)),
            _ => None,
        },
        "s.web2.qq.com" => Some(match path {
            "/proxy.html" => Route::Page(PROXY_PAGE),
            "/api/getvfwebqq" => Route::Sync(info::getvfwebqq),
            "/api/get_user_friends2" => Route::Sync(info::get_user_friends2),
            "/api/get_group_name_list_mask2" => Route::Sync(info::get_group_name_list_mask2),
            "/api/get_group_info_ext2" => Route::Sync(info::get_group_info_ext2),
            "/api/get_discus_list" => Route::Sync(info::get_discus_list),
            "/api/get_self_info2" => Route::Sync(info::get_self_info2),
            "/api/get_friend_info2" => Route::Sync(info::get_friend_info2),
            "/api/get_single_long_nick2" => Route::Sync(info::get_single_long_nick2),
            "/api/get_friend_uin2" => Route::Sync(info::get_friend_uin2),
            _ => return None,
        }),
        "d1.web2.qq.com" | "d.web2.qq.com" => Some(match path {
            "/proxy.html" | "/cfproxy.html" => Route::Page(PROXY_PAGE),
            "/channel/login2" => Route::Sync(channel::login2),
            "/channel/poll2" => Route::Poll2,
            "/channel/get_online_buddies2" => Route::Sync(channel::get_online_buddies2),
            "/channel/send_buddy_msg2" => Route::Sync(send_buddy),
            "/channel/send_qun_msg2" => Route::Sync(send_qun),
            "/channel/send_discu_msg2" => Route::Sync(send_discu),
            "/channel/send_sess_msg2" => Route::Sync(send_sess),
            "/channel/get_c2cmsg_sig2" => Route::Sync(channel::get_c2cmsg_sig2),
            "/channel/change_status2" => Route::Sync(channel::change_status2),
            "/channel/logout2" => Route::Sync(channel::logout2),
            "/channel/get_discu_info" => Route::Sync(channel::get_discu_info),
            "/channel/get_recent_list2" => Route::Sync(channel::get_recent_list2),
            _ => return None,
        }),
        "pinghot.qq.com" if path == "/pingd" => Some(Route::Empty),
        _ => None,
    }
}

/// The router of the whole simulator.
pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/sim/health", get(control::health))
        .route(
            "/sim/accounts",
            post(control::create_account).get(control::list_accounts),
        )
        .route("/sim/accounts/{qq}", get(control::get_account))
        .route("/sim/accounts/{qq}/contacts", get(control::get_contacts))
        .route("/sim/qr", get(control::list_qr))
        .route("/sim/qr/scan", post(control::qr_scan))
        .route("/sim/qr/confirm", post(control::qr_confirm))
        .route("/sim/inject", post(control::post_inject))
        .route("/sim/inject/batch", post(control::post_inject_batch))
        .route("/sim/sent", get(control::get_sent))
        .route(
            "/sim/faults",
            post(control::post_fault)
                .get(control::get_faults)
                .delete(control::delete_faults),
        )
        .route("/sim/outage", post(control::post_outage))
        .route("/sim/poll-batch", post(control::post_poll_batch))
        .route("/sim/kick", post(control::kick))
        .route("/sim/expire", post(control::expire))
        .route("/sim/clock/advance", post(control::clock_advance))
        .route("/sim/stats", get(control::stats))
        .route("/sim/sessions/bulk", post(control::sessions_bulk))
        .fallback(protocol)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(sim)
}

/// The answer a retcode fault gives, in the endpoint's real error shape. A 116 on poll2
/// really rotates the login's ptwebqq.
fn fault_answer(sim: &Sim, req: &Req, endpoint: &str, code: i64) -> Outcome {
    let qq = req.qq_hint();
    let resp = match req.host.as_str() {
        "s.web2.qq.com" => json_line(&api_error(code)),
        "d1.web2.qq.com" | "d.web2.qq.com" => {
            if endpoint == "poll2" && code == 116 {
                let login = {
                    let w = sim.world();
                    req.cookie("skey")
                        .and_then(|s| w.login_by_skey.get(s).copied())
                };
                let p = match login {
                    Some(l) => channel::rotate_ptwebqq(sim, l),
                    None => super::world::rand_hex(48),
                };
                json_line(&serde_json::json!({"retcode": 116, "p": p}))
            } else if endpoint.starts_with("send_") && code == 0 {
                json_line(&serde_json::json!({"errCode": 0, "msg": "send ok"}))
            } else {
                json_line(&channel_error(endpoint, code))
            }
        }
        h if PTLOGIN_HOSTS.contains(&h) => js(format!(
            "ptuiCB('{code}','0','','0','很遗憾，网络连接出现异常，请您稍后再试。', '');"
        )),
        _ => json_line(&api_error(code)),
    };
    Outcome::new(resp, qq, Some(code))
}

/// Counts the answer for its account and logs it. Only the endpoint, the QQ number, the code
/// and the HTTP status are logged, never a cookie, token or session id.
fn record(sim: &Sim, endpoint: &str, o: &Outcome) {
    tracing::debug!(endpoint, qq = ?o.qq, retcode = ?o.retcode, status = o.resp.status().as_u16(), "sim request");
    let Some(qq) = o.qq else {
        return;
    };
    let mut w = sim.world();
    if let Some(a) = w.accounts.get_mut(&qq) {
        *counter(&mut a.calls, endpoint) += 1;
        if let Some(code) = o.retcode {
            *counter(counter(&mut a.retcodes, endpoint), &code.to_string()) += 1;
        }
    }
}

/// The value under `key`, inserted as the default when missing. Looked up by `&str` first, so
/// the name is allocated once per account and key, not on every request.
fn counter<'m, V: Default>(m: &'m mut BTreeMap<String, V>, key: &str) -> &'m mut V {
    if !m.contains_key(key) {
        m.insert(key.to_string(), V::default());
    }
    m.get_mut(key).expect("inserted above")
}

/// Every protocol request: `/<host>/<path>`.
async fn protocol(State(sim): State<Arc<Sim>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let full = parts.uri.path();
    let trimmed = full.trim_start_matches('/');
    let (host, rest) = match trimmed.find('/') {
        Some(i) => (&trimmed[..i], &trimmed[i..]),
        None => (trimmed, "/"),
    };
    let Some(rt) = route(host, rest) else {
        return status(StatusCode::NOT_FOUND, "not found");
    };
    let endpoint = rest.rsplit('/').next().unwrap_or("").to_string();
    // A body that never finishes must not hold the connection for ever.
    let read = tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY));
    let bytes = match read.await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => return status(StatusCode::PAYLOAD_TOO_LARGE, "body too large"),
        Err(_) => return status(StatusCode::REQUEST_TIMEOUT, "body too slow"),
    };
    let abort = parts.extensions.get::<ConnAbort>().cloned();
    let req = Req::new(
        parts.method.clone(),
        host.to_string(),
        rest.to_string(),
        parts.uri.query(),
        &parts.headers,
        &bytes,
        abort,
    );
    {
        let mut w = sim.world();
        *w.requests.entry(endpoint.clone()).or_default() += 1;
    }
    let fault = sim.faults().take(req.qq_hint(), &endpoint);
    match fault {
        Some(FaultAction::DelayMs(ms)) => {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await
        }
        Some(FaultAction::HttpStatus(code)) => {
            let code = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut r = Response::new(Body::from(code.canonical_reason().unwrap_or("")));
            *r.status_mut() = code;
            let o = Outcome::new(r, req.qq_hint(), None);
            record(&sim, &endpoint, &o);
            return o.resp;
        }
        Some(FaultAction::Drop) => {
            let o = Outcome::new(Response::new(Body::empty()), req.qq_hint(), None);
            record(&sim, &endpoint, &o);
            if let Some(a) = &req.abort {
                a.abort();
                // The connection task drops this future together with the connection.
                std::future::pending::<()>().await;
            }
            return status(StatusCode::BAD_GATEWAY, "");
        }
        Some(FaultAction::Retcode(code)) => {
            let o = fault_answer(&sim, &req, &endpoint, code);
            record(&sim, &endpoint, &o);
            return o.resp;
        }
        Some(FaultAction::RetcodeAfterServing(_)) | Some(FaultAction::Duplicate) | None => {}
    }
    let after = match fault {
        Some(FaultAction::RetcodeAfterServing(code)) => {
            Some((code, req.qq_hint(), req.host.clone()))
        }
        _ => None,
    };
    let mut o = match rt {
        Route::Ptqrshow => ptlogin::ptqrshow(&sim, &req),
        Route::Sync(f) => f(&sim, &req),
        Route::Poll2 => channel::poll2(sim.clone(), req).await,
        Route::Page(p) => Outcome::new(html(p.to_string()), None, None),
        Route::Empty => Outcome::new(Response::new(Body::empty()), None, None),
    };
    if let Some((code, hint, host)) = after {
        // The work is done (a send delivered); only the answer says otherwise.
        let shape = match host.as_str() {
            "s.web2.qq.com" => api_error(code),
            _ => channel_error(&endpoint, code),
        };
        o = Outcome::new(json_line(&shape), o.qq.or(hint), Some(code));
    }
    record(&sim, &endpoint, &o);
    o.resp
}
