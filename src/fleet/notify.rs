//! The QR webhook (`[notify] qr_webhook_url`, fleet default `qqfleet run --qr-webhook-url`):
//! each new QR code POSTed as JSON, so it can land in a chat or a mail gateway, as older
//! clients mailed their codes.
//!
//! One task per code, off the account's actor (a slow receiver never delays the login), with
//! a bounded number of attempts: a code lives about two minutes, so retrying longer is
//! pointless, and the next code gets its own POST anyway.

use std::sync::LazyLock;
use std::time::Duration;

use serde::Serialize;

use crate::events::{emit, QrNotified};

/// Attempts per code (the first and three retries).
pub const ATTEMPTS: u32 = 4;
/// Pause before retry n (1-based): 1 s, 2 s, 4 s.
fn retry_delay(n: u32) -> Duration {
    Duration::from_secs(1u64 << (n - 1).min(4))
}
/// How long one POST may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The JSON body of a QR notice.
#[derive(Clone, Debug, Serialize)]
pub struct QrNotice {
    pub account: String,
    pub qq: u64,
    /// Where the operator sees (and scans) it among the others.
    pub desk_url: Option<String>,
    /// The text the code carries.
    pub qr_url: Option<String>,
    /// The PNG, base64 (standard alphabet, padded).
    pub png_base64: String,
    /// When the code expires (RFC 3339, UTC).
    pub expires_at: String,
}

impl QrNotice {
    pub fn png(png: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(png)
    }
}

/// The process's one client for operators' webhooks: these QR notices and the OneBot HTTP
/// POST events (`onebot::delivery`, which sets its own timeout on each request). Made at the
/// first POST: it trusts the system's roots (an operator's endpoint may carry a private CA),
/// and loading them into a TLS config costs about 250 KiB of a fleet that posts nothing.
pub fn webhook_client() -> &'static reqwest::Client {
    static CLIENT: LazyLock<reqwest::Client> = LazyLock::new(|| {
        reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default()
    });
    &CLIENT
}

/// POSTs `notice` to `url` until a 2xx answer or [`ATTEMPTS`] attempts; reports the outcome
/// as a [`QrNotified`] event. Returns the number of attempts made and whether one succeeded.
pub async fn post_qr(url: String, notice: QrNotice) -> (u32, bool) {
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        if attempt > 1 {
            tokio::time::sleep(retry_delay(attempt - 1)).await;
        }
        match webhook_client().post(&url).json(&notice).send().await {
            Ok(r) if r.status().is_success() => {
                emit(QrNotified {
                    account: &notice.account,
                    attempts: attempt,
                    error: None,
                });
                return (attempt, true);
            }
            Ok(r) => last = format!("HTTP {}", r.status().as_u16()),
            // Without the URL: it may carry the receiver's secret.
            Err(e) => last = e.without_url().to_string(),
        }
    }
    emit(QrNotified {
        account: &notice.account,
        attempts: ATTEMPTS,
        error: Some(&last),
    });
    (ATTEMPTS, false)
}
