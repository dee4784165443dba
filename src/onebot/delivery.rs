//! The delivery loop of one bot: hands the oldest queued event to a connected WebSocket, else
//! POSTs it to the webhook, and removes it only once taken (frame written; 2xx answer). One
//! event at a time per account, in order: delivery is at least once, never out of order.
//!
//! A bot that is down, slow or refusing makes events wait on disk; the webhook is retried
//! with a doubling pause (0.5 s up to 30 s), and a new connection wakes the loop at once.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::Value;

use super::{action, Bot, Frame, OneBot};
use crate::events::{emit, OneBotDelivered, OneBotDeliveryFailed};

/// How long a WebSocket writer may take to accept and write one event frame.
const WS_TAKE: Duration = Duration::from_secs(10);
/// Longest pause between two webhook attempts.
const HOOK_CAP: Duration = Duration::from_secs(30);
/// A webhook answer larger than this is not read as a quick operation.
const HOOK_ANSWER_MAX: usize = 1 << 20;

/// Runs until the bot is replaced (its task is aborted then).
pub async fn run(ob: Arc<OneBot>, bot: Arc<Bot>) {
    let mut hook_pause = Duration::from_millis(500);
    loop {
        let head = match bot.queue.head() {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(account = %bot.id, error = %e, "onebot: event queue unreadable");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Some((eid, body)) = head else {
            wait(&bot, Duration::from_secs(5)).await;
            continue;
        };
        let text = String::from_utf8_lossy(&body).into_owned();
        match to_websocket(&bot, &text).await {
            Some(true) => {
                taken(&bot, eid, "ws");
                continue;
            }
            Some(false) => {
                emit(OneBotDeliveryFailed {
                    account: &bot.id,
                    transport: "ws",
                    error: "no connected WebSocket took the frame",
                });
            }
            None => {}
        }
        if let Some(url) = bot.settings.http_post_url.clone() {
            match post(&bot, &url, &body).await {
                Ok(quick) => {
                    taken(&bot, eid, "http_post");
                    hook_pause = Duration::from_millis(500);
                    if let Some(op) = quick {
                        let ev: Value = serde_json::from_slice(&body).unwrap_or_default();
                        action::quick_operation(&ob, &bot, &ev, &op).await;
                    }
                    continue;
                }
                Err(e) => {
                    emit(OneBotDeliveryFailed {
                        account: &bot.id,
                        transport: "http_post",
                        error: &e,
                    });
                    wait(&bot, hook_pause).await;
                    hook_pause = (hook_pause * 2).min(HOOK_CAP);
                    continue;
                }
            }
        }
        // Nobody takes events right now: wait for a connection (or a second, to retry).
        wait(&bot, Duration::from_secs(1)).await;
    }
}

async fn wait(bot: &Bot, at_most: Duration) {
    tokio::select! {
        _ = bot.wake.notified() => {}
        _ = tokio::time::sleep(at_most) => {}
    }
}

fn taken(bot: &Bot, eid: u64, transport: &'static str) {
    if let Err(e) = bot.queue.remove(eid) {
        tracing::error!(account = %bot.id, error = %e, "onebot: taken event not removed");
    }
    emit(OneBotDelivered {
        account: &bot.id,
        transport,
        depth: bot.queue.len(),
    });
}

/// `None`: no WebSocket takes events; `Some(taken)` otherwise.
async fn to_websocket(bot: &Bot, text: &str) -> Option<bool> {
    let sinks: Vec<_> = bot
        .sinks
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(_, s)| s.clone())
        .collect();
    if sinks.is_empty() {
        return None;
    }
    // A connection whose writer is backed up (a peer that does not read) is tried last, so
    // one stuck client does not hold the events back from the others.
    let mut backed_up = Vec::new();
    for s in sinks {
        let (ack, done) = tokio::sync::oneshot::channel();
        let frame = Frame {
            text: text.to_string(),
            ack: Some(ack),
        };
        match s.try_send(frame) {
            Ok(()) => {
                if let Ok(Ok(())) = tokio::time::timeout(WS_TAKE, done).await {
                    return Some(true);
                }
            }
            Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => backed_up.push(s),
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
    for s in backed_up {
        let (ack, done) = tokio::sync::oneshot::channel();
        let frame = Frame {
            text: text.to_string(),
            ack: Some(ack),
        };
        if !matches!(
            tokio::time::timeout(WS_TAKE, s.send(frame)).await,
            Ok(Ok(()))
        ) {
            continue;
        }
        if let Ok(Ok(())) = tokio::time::timeout(WS_TAKE, done).await {
            return Some(true);
        }
    }
    Some(false)
}

/// The `X-Signature` value of a body: `sha1=<hex HMAC-SHA1>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(45);
    hex.push_str("sha1=");
    for b in bytes {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// POSTs one event; `Ok(quick operation)` on a 2xx answer.
async fn post(bot: &Bot, url: &str, body: &[u8]) -> Result<Option<Value>, String> {
    // The webhook client QR notices use too (no cookies, no redirects to elsewhere); this
    // request's own timeout replaces the client's.
    let mut req = crate::fleet::notify::webhook_client()
        .post(url)
        .timeout(bot.settings.http_post_timeout)
        .header("Content-Type", "application/json")
        .header("X-Self-ID", bot.self_id.to_string())
        .header(
            "User-Agent",
            concat!("qqfleet/", env!("CARGO_PKG_VERSION"), " OneBot/v11"),
        );
    if let Some(secret) = &bot.settings.secret {
        req = req.header("X-Signature", signature(secret, body));
    }
    let mut resp = req
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| format!("webhook: {}", e.without_url()))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("webhook answered HTTP {}", status.as_u16()));
    }
    // Read the answer, bounded; the event counts as taken whatever it holds.
    let mut buf = Vec::new();
    let read = tokio::time::timeout(bot.settings.http_post_timeout, async {
        while let Ok(Some(chunk)) = resp.chunk().await {
            buf.extend_from_slice(&chunk);
            if buf.len() > HOOK_ANSWER_MAX {
                return false;
            }
        }
        true
    })
    .await;
    if read != Ok(true) || buf.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    Ok(serde_json::from_slice::<Value>(&buf)
        .ok()
        .filter(|v| v.is_object()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn signature_is_hmac_sha1_hex() {
        // RFC 2202 test case 2.
        assert_eq!(
            super::signature("Jefe", b"what do ya want for nothing?"),
            "sha1=effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
    }
}
