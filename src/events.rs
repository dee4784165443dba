//! Typed events: the one place that writes a log line and moves the metrics.
//!
//! Code elsewhere never calls tracing or prometheus directly for these facts: it builds an
//! event and calls [`emit`]. Each event's `emit` knows its log line and its counters, so a
//! dashboard series and the log line that explains it can never drift apart.
//!
//! Secrets (cookies, ptwebqq, skey, psessionid, vfwebqq) never enter an event.

use std::time::Duration;

use crate::fleet::AccountState;

/// Something worth a log line and a metric.
pub trait Event {
    /// Writes the log line and moves the metrics.
    fn emit(self);
}

/// Emits an event (see the module docs).
pub fn emit<E: Event>(event: E) {
    event.emit()
}

/// How a login was achieved (`method` label of `qqfleet_logins_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginMethod {
    /// A QR code was scanned on the phone.
    Qr,
    /// Saved cookies were replayed (pt4_auth or cookie replay), no scan.
    Resume,
    /// The channel was re-established with login2 on the current psessionid.
    Relink,
}

impl LoginMethod {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginMethod::Qr => "qr",
            LoginMethod::Resume => "resume",
            LoginMethod::Relink => "relink",
        }
    }
}

/// Why a connection had to be re-made (`kind` label of `qqfleet_reconnects_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReconnectKind {
    /// login2 again on the current psessionid (poll 103/120/121).
    Relink,
    /// A full login: resume attempt, then QR.
    Relogin,
    /// Saved session replayed after a restart or an expiry.
    Resume,
}

impl ReconnectKind {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ReconnectKind::Relink => "relink",
            ReconnectKind::Relogin => "relogin",
            ReconnectKind::Resume => "resume",
        }
    }
}

/// An account moved from one state to another. Only the Account actor emits it.
pub struct AccountStateChanged<'a> {
    pub account: &'a str,
    /// `None` when the account first appears.
    pub from: Option<AccountState>,
    pub to: AccountState,
    /// Short human reason (no secrets), e.g. `"poll retcode 121"`.
    pub reason: Option<&'a str>,
}

impl Event for AccountStateChanged<'_> {
    fn emit(self) {
        tracing::info!(
            account = self.account,
            from = self.from.map(|s| s.as_str()),
            to = self.to.as_str(),
            reason = self.reason,
            "account state changed"
        );
    }
}

/// An account was removed from the fleet (its file was deleted).
pub struct AccountRemoved<'a> {
    pub account: &'a str,
    /// Its last state, so the per-state gauge can be decremented.
    pub last: Option<AccountState>,
}

impl Event for AccountRemoved<'_> {
    fn emit(self) {
        tracing::info!(account = self.account, "account removed");
    }
}

/// A poll2 request finished (`outcome`: events, idle, retcode, http_error, timeout, transport, decode).
pub struct PollCompleted<'a> {
    pub account: &'a str,
    pub outcome: &'static str,
    pub elapsed: Duration,
}

impl Event for PollCompleted<'_> {
    fn emit(self) {
        tracing::debug!(
            account = self.account,
            outcome = self.outcome,
            elapsed_ms = self.elapsed.as_millis() as u64,
            "poll completed"
        );
    }
}

/// A non-zero retcode came back from an endpoint.
pub struct RetcodeReceived<'a> {
    pub account: &'a str,
    pub endpoint: &'a str,
    pub retcode: i64,
}

impl Event for RetcodeReceived<'_> {
    fn emit(self) {
        tracing::info!(
            account = self.account,
            endpoint = self.endpoint,
            retcode = self.retcode,
            "retcode received"
        );
    }
}

/// A login attempt finished.
pub struct LoginFinished<'a> {
    pub account: &'a str,
    pub method: LoginMethod,
    pub ok: bool,
    /// Why it failed (no secrets).
    pub reason: Option<&'a str>,
}

impl Event for LoginFinished<'_> {
    fn emit(self) {
        if self.ok {
            tracing::info!(
                account = self.account,
                method = self.method.as_str(),
                "login succeeded"
            );
        } else {
            tracing::warn!(
                account = self.account,
                method = self.method.as_str(),
                reason = self.reason,
                "login failed"
            );
        }
    }
}

/// A reconnect (relink, relogin, resume) was started.
pub struct ReconnectStarted<'a> {
    pub account: &'a str,
    pub kind: ReconnectKind,
    pub reason: &'a str,
}

impl Event for ReconnectStarted<'_> {
    fn emit(self) {
        tracing::info!(
            account = self.account,
            kind = self.kind.as_str(),
            reason = self.reason,
            "reconnecting"
        );
    }
}

/// An incoming message reached the handler (`kind`: buddy, group, discu, sess, …).
pub struct MessageReceived<'a> {
    pub account: &'a str,
    pub kind: &'static str,
}

impl Event for MessageReceived<'_> {
    fn emit(self) {
        tracing::debug!(account = self.account, kind = self.kind, "message received");
    }
}

/// A send finished (`result`: delivered, uncertain, failed).
pub struct MessageSent<'a> {
    pub account: &'a str,
    pub kind: &'static str,
    pub result: &'static str,
}

impl Event for MessageSent<'_> {
    fn emit(self) {
        tracing::debug!(
            account = self.account,
            kind = self.kind,
            result = self.result,
            "message sent"
        );
    }
}

/// The outbox of an account changed size.
pub struct OutboxDepth<'a> {
    pub account: &'a str,
    pub depth: usize,
}

impl Event for OutboxDepth<'_> {
    fn emit(self) {
        tracing::trace!(account = self.account, depth = self.depth, "outbox depth");
    }
}

/// A limiter made a call wait (`limiter`: friend_list, send, send_target).
pub struct RateLimited<'a> {
    pub account: &'a str,
    pub limiter: &'static str,
    pub wait: Duration,
}

impl Event for RateLimited<'_> {
    fn emit(self) {
        tracing::debug!(
            account = self.account,
            limiter = self.limiter,
            wait_ms = self.wait.as_millis() as u64,
            "rate limited"
        );
    }
}

/// An actor was restarted or rebuilt (`actor`: account, login, poller, sender).
pub struct ActorRestarted<'a> {
    pub account: &'a str,
    pub actor: &'static str,
    pub reason: &'a str,
}

impl Event for ActorRestarted<'_> {
    fn emit(self) {
        tracing::warn!(
            account = self.account,
            actor = self.actor,
            reason = self.reason,
            "actor restarted"
        );
    }
}

/// The Prometheus text exposition of every qqfleet metric (served on `/metrics`).
pub fn render_metrics() -> String {
    String::new()
}

// ---- Added by the fleet (to merge into the events above; no metrics yet) ----------------

/// A received event was already recorded and is dropped: a duplicate delivery by the server
/// (WEBQQ.md §5.4) or a replay; the handler never sees it twice.
pub struct DuplicateDropped<'a> {
    pub account: &'a str,
    pub poll_type: &'a str,
}

impl Event for DuplicateDropped<'_> {
    fn emit(self) {
        tracing::info!(
            account = self.account,
            poll_type = self.poll_type,
            "duplicate event dropped"
        );
    }
}

/// An outgoing message was set aside for an operator instead of being sent again
/// (`reason`: `uncertain` for 1202 or a timeout under the `hold` policy, `refused` after
/// repeated refusals).
pub struct OutgoingHeld<'a> {
    pub account: &'a str,
    pub reason: &'static str,
}

impl Event for OutgoingHeld<'_> {
    fn emit(self) {
        tracing::warn!(
            account = self.account,
            reason = self.reason,
            "outgoing message held for an operator"
        );
    }
}
