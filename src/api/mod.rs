//! Admin HTTP server (axum, on the tokio pool): `/healthz`, `/api/accounts`, `/metrics`.
//!
//! Every `/api/...` path needs `Authorization: Bearer <token>` ([`auth`]); `/healthz` and
//! `/metrics` stay open.
//!
//! Reads come from the status snapshot (no actor is asked, so a fleet of 1,000 answers at
//! once); commands go to the FleetSupervisor with `send().await`, which gives backpressure.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/healthz` | `ok` (liveness) |
//! | GET | `/readyz` | 200 once every owned account is past `starting`, else 503 ([`ready`]) |
//! | GET | `/api/accounts` | `[{"id","qq","state","since","last_poll_at","error",...}]` |
//! | GET | `/api/accounts/{id}` | one account, with its recent transitions (`history`) |
//! | GET | `/api/accounts/{id}/qr` | the QR code to scan (PNG) while `awaiting_scan` |
//! | GET | `/api/accounts/{id}/outbox` | undelivered and held outgoing messages |
//! | POST | `/api/accounts/{id}/send` | `{"kind":"buddy|group|discu","to":uin/gid/did,"text"}` → 202 once flushed |
//! | POST | `/api/accounts/{id}/held/{seq}/resend` | put a held message back into the outbox |
//! | DELETE | `/api/accounts/{id}/held/{seq}` | drop a held message |
//! | POST | `/api/accounts/{id}/restart` | operator restart (clears `parked` / `stopped`) |
//! | POST | `/api/accounts/{id}/contacts/refresh` | refresh the contacts (friend-list limiter applies) |
//! | POST | `/api/accounts/{id}/debug/panic` | only with `QQFLEET_DEBUG_HOOKS=1`: panic the account's actor |
//! | GET | `/metrics` | Prometheus text format |
//! | GET | `/api/events` | server-sent events: every account's row, then each change ([`events`]) |
//! | GET | `/desk` | the operator's page ([`desk`]); `?token=` once, then its cookie |

pub mod auth;
pub mod desk;
pub mod events;
pub mod ready;

use std::sync::Arc;

use actix::Addr;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::fleet::messages::{EnqueueFor, PanicFor, RefreshContactsFor, ReleaseHeldFor, Restart};
use crate::fleet::status::{AccountStatus, StatusMap};
use crate::fleet::supervisor::FleetSupervisor;
use crate::fleet::FleetError;
use crate::protocol::Target;
use crate::store::Store;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub status: StatusMap,
    pub supervisor: Addr<FleetSupervisor>,
    pub store: Arc<dyn Store>,
    /// Debug endpoints enabled (`QQFLEET_DEBUG_HOOKS=1`).
    pub debug: bool,
    /// The bearer token every `/api/...` request must carry.
    pub token: auth::AdminToken,
}

/// The admin router: `/healthz` and `/metrics` open, everything under `/api/` behind the token.
pub fn router(state: ApiState) -> Router {
    let token = state.token.clone();
    let api = Router::new()
        .route("/api/accounts", get(list))
        .route("/api/summary", get(summary))
        .route("/api/accounts/{id}", get(one))
        .route("/api/accounts/{id}/qr", get(qr))
        .route("/api/accounts/{id}/outbox", get(outbox))
        .route("/api/accounts/{id}/send", post(send))
        .route("/api/accounts/{id}/held/{seq}/resend", post(resend_held))
        .route("/api/accounts/{id}/held/{seq}", delete(drop_held))
        .route("/api/accounts/{id}/restart", post(restart))
        .route("/api/accounts/{id}/contacts/refresh", post(refresh))
        .route("/api/accounts/{id}/debug/panic", post(panic))
        .route("/api/events", get(events::events))
        // An unknown path under /api/ is refused like a known one: without the token nothing
        // tells which paths exist.
        .route("/api/{*rest}", axum::routing::any(not_found))
        .route_layer(axum::middleware::from_fn_with_state(
            state.token.clone(),
            auth::require_token,
        ))
        .with_state(state);
    let desk = Router::new()
        .route("/desk", get(desk::page))
        .route("/desk/desk.css", get(desk::css))
        .route("/desk/desk.js", get(desk::js))
        .with_state(token);
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .merge(desk)
        .merge(api)
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such admin API path")
}

async fn metrics() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::events::render_metrics(),
    )
        .into_response()
}

fn error(code: StatusCode, msg: impl std::fmt::Display) -> Response {
    (code, Json(serde_json::json!({"error": msg.to_string()}))).into_response()
}

fn fleet_error(e: FleetError) -> Response {
    let code = match &e {
        FleetError::UnknownAccount(_) => StatusCode::NOT_FOUND,
        FleetError::NotRunning(_) | FleetError::Elsewhere { .. } => StatusCode::CONFLICT,
        // The disk is full or read-only: worth trying again later.
        FleetError::StoreUnavailable { .. } | FleetError::Store(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(code, e)
}

async fn list(State(s): State<ApiState>) -> Json<Vec<AccountStatus>> {
    let mut v: Vec<AccountStatus> = s.status.iter().map(|e| e.value().summary()).collect();
    v.sort_by(|a, b| a.id.cmp(&b.id));
    Json(v)
}

/// How many accounts are in each state: what a monitor or a benchmark polls while a large
/// fleet comes up (the list at 10,000 accounts is megabytes of JSON per call).
async fn summary(State(s): State<ApiState>) -> Json<serde_json::Value> {
    let mut states: std::collections::BTreeMap<&'static str, u64> = Default::default();
    let mut total = 0u64;
    for e in s.status.iter() {
        *states.entry(e.value().state.as_str()).or_default() += 1;
        total += 1;
    }
    Json(serde_json::json!({"accounts": total, "states": states}))
}

async fn one(State(s): State<ApiState>, Path(id): Path<String>) -> Response {
    match s.status.get(&id).map(|e| e.value().clone()) {
        Some(st) => Json(st.detail()).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no account `{id}`")),
    }
}

async fn qr(State(s): State<ApiState>, Path(id): Path<String>) -> Response {
    match s.status.get(&id).and_then(|e| e.value().qr_png.clone()) {
        Some(png) => ([(header::CONTENT_TYPE, "image/png")], png.as_ref().clone()).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no QR code waiting for `{id}`"),
        ),
    }
}

async fn outbox(State(s): State<ApiState>, Path(id): Path<String>) -> Response {
    if !s.status.contains_key(&id) {
        return error(StatusCode::NOT_FOUND, format!("no account `{id}`"));
    }
    match (s.store.outbox(&id), s.store.held(&id)) {
        (Ok(pending), Ok(held)) => {
            Json(serde_json::json!({"pending": pending, "held": held})).into_response()
        }
        (Err(e), _) | (_, Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// Body of `POST /api/accounts/{id}/send` (same words as the simulator's `/sim/sent`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    kind: String,
    /// Friend uin, group gid or discussion did (pseudo ids of the current session).
    to: u64,
    text: String,
}

async fn send(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    body: Result<Json<SendBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(b) = match body {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let target = match b.kind.as_str() {
        "buddy" => Target::Buddy(b.to),
        "group" => Target::Group(b.to),
        "discu" => Target::Discu(b.to),
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("kind `{other}`: use buddy, group or discu"),
            )
        }
    };
    if b.text.is_empty() {
        return error(StatusCode::BAD_REQUEST, "empty text");
    }
    let msg = EnqueueFor {
        id,
        target,
        text: b.text,
    };
    match s.supervisor.send(msg).await {
        Ok(Ok(m)) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({"seq": m.seq, "msg_id": m.msg_id})),
        )
            .into_response(),
        Ok(Err(e)) => fleet_error(e),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

async fn resend_held(State(s): State<ApiState>, Path((id, seq)): Path<(String, u64)>) -> Response {
    release(s, id, seq, true).await
}

async fn drop_held(State(s): State<ApiState>, Path((id, seq)): Path<(String, u64)>) -> Response {
    release(s, id, seq, false).await
}

async fn release(s: ApiState, id: String, seq: u64, resend: bool) -> Response {
    match s.supervisor.send(ReleaseHeldFor { id, seq, resend }).await {
        Ok(Ok(true)) => {
            (StatusCode::ACCEPTED, Json(serde_json::json!({"ok": true}))).into_response()
        }
        Ok(Ok(false)) => error(StatusCode::NOT_FOUND, format!("no held message {seq}")),
        Ok(Err(e)) => fleet_error(e),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

async fn restart(State(s): State<ApiState>, Path(id): Path<String>) -> Response {
    match s.supervisor.send(Restart { id }).await {
        Ok(Ok(())) => (StatusCode::ACCEPTED, Json(serde_json::json!({"ok": true}))).into_response(),
        Ok(Err(e)) => fleet_error(e),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

async fn refresh(State(s): State<ApiState>, Path(id): Path<String>) -> Response {
    match s.supervisor.send(RefreshContactsFor { id }).await {
        Ok(Ok(())) => (StatusCode::ACCEPTED, Json(serde_json::json!({"ok": true}))).into_response(),
        Ok(Err(e)) => fleet_error(e),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

async fn panic(State(s): State<ApiState>, Path(id): Path<String>) -> Response {
    if !s.debug {
        return error(StatusCode::NOT_FOUND, "debug hooks are off");
    }
    match s.supervisor.send(PanicFor { id }).await {
        Ok(Ok(())) => (StatusCode::ACCEPTED, Json(serde_json::json!({"ok": true}))).into_response(),
        Ok(Err(e)) => fleet_error(e),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}
