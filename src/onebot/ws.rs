//! OneBot WebSocket connections, forward (a bot connects to `/onebot/v11/{id}/ws...`) and
//! reverse (qqfleet connects to the bot's `ws_reverse_url`, universal role), served by one
//! loop.
//!
//! Bounds: frames over 1 MiB close the connection (tungstenite's limits); a writer that cannot
//! hand a frame to the peer within 10 s (a client that never reads) closes it; at most 16 API
//! calls per connection run at once, and reading waits beyond that. Events a closed
//! connection did not take stay in the queue.

use std::sync::Arc;
use std::time::Duration;

use futures::{Sink, SinkExt, Stream, StreamExt};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, Semaphore};

use super::{action, event, Bot, Frame, OneBot};
use crate::events::{emit, OneBotConnectFailed, OneBotConnection};

/// Largest frame or message accepted from a bot.
pub const MAX_FRAME: usize = 1 << 20;
/// How long one frame may take to be written.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// API calls in flight per connection.
const CALLS_IN_FLIGHT: usize = 16;
/// Longest pause between two reverse connection attempts.
const RECONNECT_CAP: Duration = Duration::from_secs(60);

/// What a connection carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Events and API calls.
    Universal,
    /// API calls only.
    Api,
    /// Events only.
    Event,
}

/// A frame from the bot, whatever the WebSocket library.
pub enum In {
    Text(String),
    /// Ping, pong, binary: nothing to do.
    Other,
    Close,
}

/// Serves one connection until it closes.
pub async fn serve<Si, St, E1, E2>(
    ob: Arc<OneBot>,
    bot: Arc<Bot>,
    role: Role,
    transport: &'static str,
    mut sink: Si,
    mut stream: St,
) where
    Si: Sink<String, Error = E1> + Unpin + Send + 'static,
    St: Stream<Item = Result<In, E2>> + Unpin + Send + 'static,
    E1: std::fmt::Display,
    E2: std::fmt::Display,
{
    let conn = bot.conn_id();
    emit(OneBotConnection {
        account: &bot.id,
        transport,
        up: true,
        error: None,
    });
    let (tx, mut rx) = mpsc::channel::<Frame>(64);
    let writer = async move {
        while let Some(f) = rx.recv().await {
            match tokio::time::timeout(WRITE_TIMEOUT, sink.send(f.text)).await {
                Ok(Ok(())) => {
                    if let Some(a) = f.ack {
                        let _ = a.send(());
                    }
                }
                Ok(Err(e)) => return format!("write: {e}"),
                Err(_) => return "the peer did not read for 10 s".to_string(),
            }
        }
        "closed".to_string()
    };
    if role != Role::Api {
        let _ = tx.try_send(Frame {
            text: event::lifecycle(bot.self_id).to_string(),
            ack: None,
        });
        bot.sinks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((conn, tx.clone()));
        bot.wake.notify_one();
    }
    let heartbeat = {
        let (tx, bot, ob) = (tx.clone(), bot.clone(), ob.clone());
        async move {
            let Some(every) = bot.settings.heartbeat.filter(|_| role != Role::Api) else {
                return std::future::pending::<()>().await;
            };
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let hb =
                    event::heartbeat(bot.self_id, ob.online(&bot.id), every.as_millis() as u64);
                // A full writer skips a heartbeat rather than queue them up.
                let _ = tx.try_send(Frame {
                    text: hb.to_string(),
                    ack: None,
                });
            }
        }
    };
    let reader = {
        let (tx, bot, ob) = (tx.clone(), bot.clone(), ob.clone());
        async move {
            let calls = Arc::new(Semaphore::new(CALLS_IN_FLIGHT));
            loop {
                let text = match stream.next().await {
                    Some(Ok(In::Text(t))) => t,
                    Some(Ok(In::Other)) => continue,
                    Some(Ok(In::Close)) | None => return "closed by the peer".to_string(),
                    Some(Err(e)) => return format!("read: {e}"),
                };
                if role == Role::Event {
                    continue;
                }
                let Ok(permit) = calls.clone().acquire_owned().await else {
                    return "closed".into();
                };
                let (tx, bot, ob) = (tx.clone(), bot.clone(), ob.clone());
                tokio::spawn(async move {
                    let answer = call(&ob, &bot, &text).await;
                    let _ = tokio::time::timeout(
                        WRITE_TIMEOUT,
                        tx.send(Frame {
                            text: answer.to_string(),
                            ack: None,
                        }),
                    )
                    .await;
                    drop(permit);
                });
            }
        }
    };
    drop(tx);
    let why = tokio::select! {
        w = writer => w,
        r = reader => r,
        _ = heartbeat => "heartbeat ended".to_string(),
    };
    bot.sinks
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(c, _)| *c != conn);
    emit(OneBotConnection {
        account: &bot.id,
        transport,
        up: false,
        error: Some(&why),
    });
}

/// One API frame: `{"action","params","echo"}` → the answer with the same `echo`.
pub async fn call(ob: &Arc<OneBot>, bot: &Arc<Bot>, text: &str) -> Value {
    let req: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return action::Answer::fail(1400, format!("malformed JSON: {e}")).to_json(None);
        }
    };
    let echo = req.get("echo");
    let Some(name) = req.get("action").and_then(|a| a.as_str()) else {
        return action::Answer::fail(1400, "`action` (a string) is missing").to_json(echo);
    };
    let params = match req.get("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return action::Answer::fail(1400, "`params` must be an object").to_json(echo);
        }
    };
    action::call(ob, bot, name, &params).await.to_json(echo)
}

/// The reverse WebSocket of one bot: connects (universal role), serves, and reconnects with
/// a doubling pause from `ws_reverse_reconnect_ms` up to 60 s (reset by a good connection).
pub async fn reverse(ob: Arc<OneBot>, bot: Arc<Bot>, url: String) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
    use tokio_tungstenite::tungstenite::Message;
    let base = bot.settings.ws_reverse_reconnect;
    let mut pause = base;
    loop {
        let mut req = match url.as_str().into_client_request() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(account = %bot.id, error = %e, "onebot: bad ws_reverse_url");
                return;
            }
        };
        let h = req.headers_mut();
        let mut put = |k: &'static str, v: String| {
            if let Ok(v) = v.parse() {
                h.insert(k, v);
            }
        };
        put("X-Self-ID", bot.self_id.to_string());
        put("X-Client-Role", "Universal".into());
        put(
            "User-Agent",
            concat!("qqfleet/", env!("CARGO_PKG_VERSION")).into(),
        );
        if let Some(t) = &bot.settings.access_token {
            put("Authorization", format!("Bearer {t}"));
        }
        let cfg = WebSocketConfig::default()
            .max_message_size(Some(MAX_FRAME))
            .max_frame_size(Some(MAX_FRAME));
        let conn = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async_with_config(req, Some(cfg), true),
        )
        .await;
        match conn {
            Ok(Ok((ws, _))) => {
                pause = base;
                let (si, st) = ws.split();
                let si = si.with(|t: String| async move {
                    Ok::<_, tokio_tungstenite::tungstenite::Error>(Message::Text(t.into()))
                });
                let st = st.map(|m| {
                    m.map(|m| match m {
                        Message::Text(t) => In::Text(t.to_string()),
                        Message::Close(_) => In::Close,
                        _ => In::Other,
                    })
                });
                serve(
                    ob.clone(),
                    bot.clone(),
                    Role::Universal,
                    "ws_reverse",
                    Box::pin(si),
                    Box::pin(st),
                )
                .await;
            }
            Ok(Err(e)) => emit(OneBotConnectFailed {
                account: &bot.id,
                error: &e.to_string(),
                retry_in: pause,
            }),
            Err(_) => emit(OneBotConnectFailed {
                account: &bot.id,
                error: "no answer within 10 s",
                retry_in: pause,
            }),
        }
        // Jitter keeps a fleet of bots from reconnecting in step after an outage.
        let jitter = rand::random::<f64>() * 0.25 + 0.875;
        tokio::time::sleep(pause.mul_f64(jitter)).await;
        pause = (pause * 2).min(RECONNECT_CAP);
    }
}
