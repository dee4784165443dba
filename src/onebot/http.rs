//! The OneBot routes on the admin listener (merged in `crate::run`):
//!
//! | method | path | what |
//! |---|---|---|
//! | GET, POST | `/onebot/v11/{id}/{action}` | HTTP API: JSON body, form or query parameters |
//! | GET (upgrade) | `/onebot/v11/{id}/ws` | forward WebSocket, universal (events and API) |
//! | GET (upgrade) | `/onebot/v11/{id}/ws/api` | forward WebSocket, API only |
//! | GET (upgrade) | `/onebot/v11/{id}/ws/event` | forward WebSocket, events only |
//!
//! Each checks the account's `access_token` as the standard says: in `Authorization: Bearer`
//! (or `Token`) or the `access_token` query parameter; missing → 401, wrong → 403. These
//! paths do not take the admin token: a bot gets only its own account's API.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::{SinkExt, StreamExt};
use serde_json::{Map, Value};

use super::action::Answer;
use super::ws::{In, Role, MAX_FRAME};
use super::{Bot, OneBot};

/// The OneBot router (stateless outside: merge it into the admin router).
pub fn router(ob: Arc<OneBot>) -> Router {
    Router::new()
        .route("/onebot/v11/{id}/ws", get(ws_universal))
        .route("/onebot/v11/{id}/ws/api", get(ws_api))
        .route("/onebot/v11/{id}/ws/event", get(ws_event))
        .route(
            "/onebot/v11/{id}/{action}",
            get(http_action).post(http_action),
        )
        .with_state(ob)
}

fn answer(code: StatusCode, a: Answer) -> Response {
    (code, Json(a.to_json(None))).into_response()
}

fn query_map(q: Option<&str>) -> HashMap<String, String> {
    q.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .collect()
    })
    .unwrap_or_default()
}

/// The bot of a path, after the access-token check.
fn authorized(
    ob: &OneBot,
    id: &str,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<Arc<Bot>, Box<Response>> {
    let Some(bot) = ob.bots.get(id).map(|b| b.clone()) else {
        return Err(Box::new(answer(
            StatusCode::NOT_FOUND,
            Answer::fail(1404, format!("no onebot account `{id}`")),
        )));
    };
    let Some(want) = &bot.settings.access_token else {
        return Ok(bot);
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("Token "))
                .unwrap_or(v)
                .trim()
                .to_string()
        })
        .or_else(|| query.get("access_token").cloned());
    match given {
        None => Err(Box::new(answer(
            StatusCode::UNAUTHORIZED,
            Answer::fail(1401, "access token missing"),
        ))),
        Some(g) if !same(g.as_bytes(), want.as_bytes()) => Err(Box::new(answer(
            StatusCode::FORBIDDEN,
            Answer::fail(1403, "access token wrong"),
        ))),
        Some(_) => Ok(bot),
    }
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn http_action(
    State(ob): State<Arc<OneBot>>,
    Path((id, action)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = query_map(q.as_deref());
    let bot = match authorized(&ob, &id, &headers, &query) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let mut params: Map<String, Value> = query
        .into_iter()
        .filter(|(k, _)| k != "access_token")
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !body.iter().all(|b| b.is_ascii_whitespace()) {
        if ctype.starts_with("application/x-www-form-urlencoded") {
            for (k, v) in url::form_urlencoded::parse(&body) {
                params.insert(k.into_owned(), Value::String(v.into_owned()));
            }
        } else if ctype.is_empty() || ctype.starts_with("application/json") {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(m)) => params.extend(m),
                Ok(_) => {
                    return answer(
                        StatusCode::BAD_REQUEST,
                        Answer::fail(1400, "the JSON body must be an object of parameters"),
                    )
                }
                Err(e) => {
                    return answer(
                        StatusCode::BAD_REQUEST,
                        Answer::fail(1400, format!("malformed JSON body: {e}")),
                    )
                }
            }
        } else {
            return answer(
                StatusCode::NOT_ACCEPTABLE,
                Answer::fail(1406, format!("content type `{ctype}`: use JSON or a form")),
            );
        }
    }
    let a = super::action::call(&ob, &bot, &action, &params).await;
    let code = if a.retcode == 1404 {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    answer(code, a)
}

async fn ws_universal(
    st: State<Arc<OneBot>>,
    p: Path<String>,
    q: RawQuery,
    h: HeaderMap,
    up: WebSocketUpgrade,
) -> Response {
    upgrade(st, p, q, h, up, Role::Universal)
}

async fn ws_api(
    st: State<Arc<OneBot>>,
    p: Path<String>,
    q: RawQuery,
    h: HeaderMap,
    up: WebSocketUpgrade,
) -> Response {
    upgrade(st, p, q, h, up, Role::Api)
}

async fn ws_event(
    st: State<Arc<OneBot>>,
    p: Path<String>,
    q: RawQuery,
    h: HeaderMap,
    up: WebSocketUpgrade,
) -> Response {
    upgrade(st, p, q, h, up, Role::Event)
}

fn upgrade(
    State(ob): State<Arc<OneBot>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    up: WebSocketUpgrade,
    role: Role,
) -> Response {
    let bot = match authorized(&ob, &id, &headers, &query_map(q.as_deref())) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let ob2 = ob.clone();
    let bot2 = bot.clone();
    up.max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .on_upgrade(move |socket: WebSocket| async move {
            let (si, st) = socket.split();
            let si =
                si.with(|t: String| async move { Ok::<_, axum::Error>(Message::Text(t.into())) });
            let st = st.map(|m| {
                m.map(|m| match m {
                    Message::Text(t) => In::Text(t.to_string()),
                    Message::Close(_) => In::Close,
                    _ => In::Other,
                })
            });
            // The connection belongs to the bot: replacing the bot closes it.
            let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(async move {
                super::ws::serve(ob2, bot2, role, "ws_forward", Box::pin(si), Box::pin(st)).await;
                let _ = done_tx.send(());
            });
            bot.adopt(task.abort_handle());
            let _ = done_rx.await;
        })
}
