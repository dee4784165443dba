//! Typed events: the one place that writes a log line and moves the metrics.
//!
//! Code elsewhere never calls tracing or prometheus directly for these facts: it builds an
//! event and calls [`emit`]. Each event's `emit` knows its log line and its counters, so a
//! dashboard series and the log line that explains it can never drift apart.
//!
//! Secrets (cookies, ptwebqq, skey, psessionid, vfwebqq) never enter an event.
//!
//! # Metrics
//!
//! Every family lives in one process-wide [`Registry`] built on first use (see [`Metrics`]);
//! `docs/METRICS.md` lists them with their labels and meaning, and the dashboards and alerts in
//! `dashboards/` rely on those names. Label rules, from the cost measured per account:
//! histograms never carry `account`; per-account series are created only when something
//! happens to that account (except the few an idle account needs to be graphed at all); label
//! values are bounded (retcodes outside the known table become `other`); and
//! [`AccountRemoved`] deletes every series of the account, so a fleet that churns accounts
//! does not grow its `/metrics` forever.

use std::time::Duration;

use crate::state::AccountState;

mod per_account;
mod registry;

use per_account::Family;
pub use registry::{metrics, render_metrics, Metrics};

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
        metrics().state_changed(self.account, self.to);
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
        tracing::info!(
            account = self.account,
            last = self.last.map(|s| s.as_str()),
            "account removed"
        );
        metrics().remove_account(self.account);
    }
}

/// This shard no longer owns an account it ran (`--shard`, N changed): its state was written
/// to the handoff folder for the new owner and forgotten here.
pub struct AccountHandedOff<'a> {
    pub account: &'a str,
    pub to_shard: u32,
    /// Stored entries moved.
    pub entries: usize,
}

impl Event for AccountHandedOff<'_> {
    fn emit(self) {
        tracing::info!(
            account = self.account,
            to_shard = self.to_shard,
            entries = self.entries,
            "account handed off to its new shard"
        );
    }
}

/// A shard imported an account's handoff file before starting it: it resumes without a scan.
pub struct AccountTakenOver<'a> {
    pub account: &'a str,
    pub shard: u32,
    pub entries: usize,
}

impl Event for AccountTakenOver<'_> {
    fn emit(self) {
        tracing::info!(
            account = self.account,
            shard = self.shard,
            entries = self.entries,
            "account taken over from its previous shard (handoff imported)"
        );
    }
}

/// An account this shard owns has no saved session here while the fleet is sharded: a new
/// account, or one that moved from another shard without `--handoff`. It logs in with a scan.
pub struct AccountWithoutState<'a> {
    pub account: &'a str,
    pub shard: &'a str,
}

impl Event for AccountWithoutState<'_> {
    fn emit(self) {
        tracing::warn!(
            account = self.account,
            shard = self.shard,
            "no saved state for this account on this shard (new, or moved here from another shard without --handoff): it logs in with a QR scan"
        );
    }
}

/// A QR code waits for a scan: where to fetch its PNG. In the text format the terminal also
/// shows the code itself (small fleets); in JSON this line is the only trace of it.
pub struct QrWaiting<'a> {
    pub account: &'a str,
    /// The QQ number that must scan it.
    pub qq: u64,
}

impl Event for QrWaiting<'_> {
    fn emit(self) {
        tracing::info!(
            account = self.account,
            qq = self.qq,
            png = %format_args!("GET /api/accounts/{}/qr", self.account),
            "QR code waiting for a scan"
        );
    }
}

/// A QR code was POSTed to the account's webhook (`[notify] qr_webhook_url`), or every
/// attempt failed (`error`). The webhook's URL is never logged: it often carries a secret.
pub struct QrNotified<'a> {
    pub account: &'a str,
    pub attempts: u32,
    pub error: Option<&'a str>,
}

impl Event for QrNotified<'_> {
    fn emit(self) {
        match self.error {
            None => tracing::info!(
                account = self.account,
                attempts = self.attempts,
                "QR code sent to the webhook"
            ),
            Some(e) => tracing::warn!(
                account = self.account,
                attempts = self.attempts,
                error = e,
                "QR code not delivered to the webhook; giving up on this code"
            ),
        }
    }
}

/// A removed account was logged out (WEBQQ.md §10), or the attempt failed (`error`; the
/// saved session is then kept as it was).
pub struct LoggedOut<'a> {
    pub account: &'a str,
    pub error: Option<&'a str>,
}

impl Event for LoggedOut<'_> {
    fn emit(self) {
        match self.error {
            None => tracing::info!(account = self.account, "logged out"),
            Some(e) => tracing::warn!(account = self.account, error = e, "logout failed"),
        }
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
        metrics()
            .poll_duration
            .with_label_values(&[self.outcome])
            .observe(self.elapsed.as_secs_f64());
    }
}

/// A poll2 request failed in transport or decoding and is tried again after `pause`: the
/// error says why (a refused connect, a connection the server closed), which the poll's
/// outcome label alone does not.
pub struct PollRetried<'a> {
    pub account: &'a str,
    /// 1 for the first retry.
    pub attempt: u32,
    pub error: &'a str,
    pub pause: Duration,
}

impl Event for PollRetried<'_> {
    fn emit(self) {
        tracing::info!(
            account = self.account,
            attempt = self.attempt,
            error = self.error,
            pause_ms = self.pause.as_millis() as u64,
            "poll failed, retrying"
        );
    }
}

/// A non-zero retcode came back from an endpoint.
pub struct RetcodeReceived<'a> {
    pub account: &'a str,
    /// One of the protocol's endpoint names (a static string: it is kept as a label value).
    pub endpoint: &'static str,
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
        let m = metrics();
        m.inc(
            Family::Retcodes,
            self.account,
            &[self.endpoint, retcode_label(self.retcode)],
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
        let result = if self.ok { "ok" } else { "failed" };
        let m = metrics();
        m.inc(
            Family::Logins,
            self.account,
            &[self.method.as_str(), result],
        );
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
        let m = metrics();
        m.inc(Family::Reconnects, self.account, &[self.kind.as_str()]);
    }
}

/// An incoming message reached the handler (`kind`: buddy, group, discu, sess, …).
///
/// Logged at info with the start of its text: an operator (and a new user of the demo) sees
/// the conversation in the default log. Message texts are not secrets.
pub struct MessageReceived<'a> {
    pub account: &'a str,
    pub kind: &'static str,
    pub text: &'a str,
    /// The account's own send coming back (WEBQQ.md §5.4): counted, but logged at debug
    /// only, or every answer would show twice in the conversation.
    pub self_echo: bool,
    /// How long the message waited between its poll answer reaching the account and its
    /// handler: its durable record (the flush, shared with other accounts) and the account's
    /// turn on its thread. `None` for a message handled later than that on purpose: a replay
    /// of the inbox after a restart, or one kept in memory while the store was down.
    pub waited: Option<Duration>,
}

impl Event for MessageReceived<'_> {
    fn emit(self) {
        // `waited_us` is written only when known (tracing leaves out a `None`).
        let waited_us = self.waited.map(|w| w.as_micros() as u64);
        if self.self_echo {
            tracing::debug!(
                account = self.account,
                kind = self.kind,
                text = %Excerpt(self.text),
                waited_us,
                "own message echoed back"
            );
        } else {
            tracing::info!(
                account = self.account,
                kind = self.kind,
                text = %Excerpt(self.text),
                waited_us,
                "message received"
            );
        }
        let m = metrics();
        m.inc(Family::MessagesReceived, self.account, &[self.kind]);
        if let Some(w) = self.waited {
            m.message_wait.observe(w.as_secs_f64());
        }
    }
}

/// A send finished (`result`: delivered, uncertain, failed). Logged at info with the start
/// of its text, like [`MessageReceived`], so a bot's answers show in the default log.
pub struct MessageSent<'a> {
    pub account: &'a str,
    pub kind: &'static str,
    pub result: &'static str,
    pub text: &'a str,
}

impl Event for MessageSent<'_> {
    fn emit(self) {
        tracing::info!(
            account = self.account,
            kind = self.kind,
            result = self.result,
            text = %Excerpt(self.text),
            "message sent"
        );
        let m = metrics();
        m.inc(
            Family::MessagesSent,
            self.account,
            &[self.kind, self.result],
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
        metrics().set_outbox(self.account, i64::try_from(self.depth).unwrap_or(i64::MAX));
    }
}

/// The account's login forecast changed: `expires_at` (unix seconds) is when its QR login is
/// expected to die (§11, about 48 h after the scan); `None` once no login is held (a scan is
/// asked for), which deletes the series.
pub struct SessionForecast<'a> {
    pub account: &'a str,
    pub expires_at: Option<u64>,
}

impl Event for SessionForecast<'_> {
    fn emit(self) {
        tracing::debug!(
            account = self.account,
            expires_at = self.expires_at,
            "session expiry forecast"
        );
        let m = metrics();
        m.set_session_expiry(
            self.account,
            self.expires_at
                .map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
        );
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
        let m = metrics();
        m.inc(Family::RateLimited, self.account, &[self.limiter]);
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
        metrics()
            .actor_restarts
            .with_label_values(&[self.actor])
            .inc();
    }
}

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
        metrics().duplicates_dropped.inc();
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
        let m = metrics();
        m.inc(Family::MessagesHeld, self.account, &[self.reason]);
    }
}

/// The outage breaker opened (`up: false`: most accounts saw the service fail, calls wait
/// while one probe at a time tests it) or closed again (`up: true`).
pub struct ServiceHealth {
    pub up: bool,
}

impl Event for ServiceHealth {
    fn emit(self) {
        if self.up {
            tracing::info!("service answers again: outage breaker closed, accounts resume");
        } else {
            tracing::warn!(
                "service outage: most accounts see transport errors or 5xx; calls pause while one probe at a time tests it"
            );
        }
        metrics().service_up.set(i64::from(self.up));
    }
}

/// The heap was trimmed (`memtrim`, twice a minute): what the allocator holds for live
/// objects, apart from what it keeps free. RSS alone cannot tell a leak (this grows) from
/// freed memory kept for reuse (this stays flat).
pub struct HeapTrimmed {
    pub in_use_bytes: u64,
    pub free_bytes: u64,
}

impl Event for HeapTrimmed {
    fn emit(self) {
        tracing::debug!(
            in_use_bytes = self.in_use_bytes,
            free_bytes = self.free_bytes,
            "heap trimmed"
        );
        let m = metrics();
        m.heap_in_use.set(self.in_use_bytes as i64);
        m.heap_free.set(self.free_bytes as i64);
    }
}

/// The store made a group of durable writes durable with one flush (see `group_commit`):
/// how long the flush took and how many writes it covered. Under load the flush's duration is
/// the disk's share of every message's latency, and the writes per flush say how well the
/// group commit shares it.
pub struct StoreFlushed {
    pub took: Duration,
    pub writes: u64,
}

impl Event for StoreFlushed {
    fn emit(self) {
        // Hundreds a second under load: trace, not debug.
        tracing::trace!(
            took_us = self.took.as_micros() as u64,
            writes = self.writes,
            "store flushed"
        );
        let m = metrics();
        m.flush_duration.observe(self.took.as_secs_f64());
        m.flush_writes.observe(self.writes as f64);
    }
}

/// Buckets of `qqfleet_store_flush_duration_seconds`: a flush of a few KiB on a local disk
/// takes a fraction of a millisecond, a slow or shared disk tens of them.
pub const FLUSH_BUCKETS: [f64; 11] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Buckets of `qqfleet_message_wait_seconds`: the flush's buckets with 3 and 4 ms between 2
/// and 5, where a local disk's slow flushes fall and the fleet's 5 ms latency goal lies, and
/// up to 10 s, for a store that stalls.
pub const MESSAGE_WAIT_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0,
];

/// Buckets of `qqfleet_store_flush_writes` (durable writes one flush covered).
pub const FLUSH_WRITES_BUCKETS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// An uncertain send (1202 or a timeout) under `on_uncertain = "confirm"` moved on:
/// `echo_seen` (delivered), `resent` (no echo: the one resend with the same msg_id), `held`
/// or `assumed_delivered` (no echo after the resend either: the `on_unconfirmed` fallback).
pub struct UncertainResolved<'a> {
    pub account: &'a str,
    pub outcome: &'static str,
}

impl Event for UncertainResolved<'_> {
    fn emit(self) {
        tracing::info!(
            account = self.account,
            outcome = self.outcome,
            "uncertain send resolved"
        );
    }
}

/// How many characters of a message text its log line shows.
pub const TEXT_EXCERPT_CHARS: usize = 80;

/// The first [`TEXT_EXCERPT_CHARS`] characters of a text, `…` when cut, control characters
/// (a newline) escaped so a text-format log line stays one line. Written straight into the
/// log line: a message line costs no allocation for its excerpt.
pub struct Excerpt<'a>(pub &'a str);

impl std::fmt::Display for Excerpt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write;
        let mut chars = self.0.chars();
        for c in chars.by_ref().take(TEXT_EXCERPT_CHARS) {
            if c.is_control() {
                for e in c.escape_default() {
                    f.write_char(e)?;
                }
            } else {
                f.write_char(c)?;
            }
        }
        if chars.next().is_some() {
            f.write_char('…')?;
        }
        Ok(())
    }
}

/// The `reason` values of [`OutgoingHeld`], created at 0 for every account.
pub const HELD_REASONS: [&str; 2] = ["uncertain", "refused"];

/// Buckets of `qqfleet_poll_duration_seconds`, in seconds.
///
/// A poll2 long poll is held up to 60 s by the server before the idle answer, so the buckets
/// are fine around that (55-65 s) to tell a normal idle return from a hold that ran long, and
/// reach 120 s so that a hung connection still lands in a finite bucket. The small buckets
/// show polls that return early: events waiting, errors, a dropped connection.
pub const POLL_BUCKETS: [f64; 16] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 45.0, 55.0, 60.0, 65.0, 90.0, 120.0,
];

/// Retcodes the protocol notes know (WEBQQ.md §3, §5.2, §7, §8); the `retcode` label takes
/// only these values, any other code is counted as `other`. A misbehaving server (or a
/// simulator fault with a made-up code) must not be able to create series without bound.
pub const KNOWN_RETCODES: [i64; 25] = [
    -1, 0, 6, 50, 65, 66, 67, 68, 100, 102, 103, 108, 109, 110, 114, 116, 120, 121, 122, 1202,
    100000, 100001, 100003, 100006, 100012,
];

/// The `retcode` label value of a code (see [`KNOWN_RETCODES`]).
pub fn retcode_label(code: i64) -> &'static str {
    // Static strings: the label is built on every retcode, and the table is small.
    const LABELS: [&str; 25] = [
        "-1", "0", "6", "50", "65", "66", "67", "68", "100", "102", "103", "108", "109", "110",
        "114", "116", "120", "121", "122", "1202", "100000", "100001", "100003", "100006",
        "100012",
    ];
    KNOWN_RETCODES
        .iter()
        .position(|&c| c == code)
        .map_or("other", |i| LABELS[i])
}

/// The retcode label values of `qqfleet_onebot_actions_total`.
const ONEBOT_RETCODES: [&str; 7] = ["0", "1", "100", "103", "1400", "1404", "other"];

/// A OneBot event was written to an account's durable queue (or dropped: the queue is full).
pub struct OneBotEventQueued<'a> {
    pub account: &'a str,
    pub dropped: bool,
    /// Events now waiting in the account's queue.
    pub depth: usize,
}

impl Event for OneBotEventQueued<'_> {
    fn emit(self) {
        let m = &metrics().onebot;
        if self.dropped {
            tracing::warn!(
                account = self.account,
                depth = self.depth,
                "onebot: event queue full; event dropped"
            );
            m.dropped.inc();
        } else {
            tracing::debug!(
                account = self.account,
                depth = self.depth,
                "onebot: event queued"
            );
            m.queued.inc();
        }
        m.depth(self.account, self.depth);
    }
}

/// A bot took an event (frame written to a WebSocket, or webhook answered 2xx).
pub struct OneBotDelivered<'a> {
    pub account: &'a str,
    pub transport: &'static str,
    pub depth: usize,
}

impl Event for OneBotDelivered<'_> {
    fn emit(self) {
        tracing::debug!(
            account = self.account,
            transport = self.transport,
            depth = self.depth,
            "onebot: event delivered"
        );
        let m = &metrics().onebot;
        m.delivered.with_label_values(&[self.transport]).inc();
        m.depth(self.account, self.depth);
    }
}

/// A delivery attempt failed; the event stays queued.
pub struct OneBotDeliveryFailed<'a> {
    pub account: &'a str,
    pub transport: &'static str,
    pub error: &'a str,
}

impl Event for OneBotDeliveryFailed<'_> {
    fn emit(self) {
        tracing::warn!(
            account = self.account,
            transport = self.transport,
            error = self.error,
            "onebot: delivery failed; the event stays queued"
        );
        metrics()
            .onebot
            .failures
            .with_label_values(&[self.transport])
            .inc();
    }
}

/// A OneBot WebSocket connection opened or closed.
pub struct OneBotConnection<'a> {
    pub account: &'a str,
    /// `ws_forward` or `ws_reverse`.
    pub transport: &'static str,
    pub up: bool,
    /// Why it closed.
    pub error: Option<&'a str>,
}

impl Event for OneBotConnection<'_> {
    fn emit(self) {
        tracing::info!(
            account = self.account,
            transport = self.transport,
            up = self.up,
            reason = self.error,
            "onebot: connection {}",
            if self.up { "open" } else { "closed" }
        );
        let g = metrics()
            .onebot
            .connections
            .with_label_values(&[self.transport]);
        if self.up {
            g.inc()
        } else {
            g.dec()
        }
    }
}

/// The reverse WebSocket could not connect (server down, handshake refused).
pub struct OneBotConnectFailed<'a> {
    pub account: &'a str,
    pub error: &'a str,
    pub retry_in: Duration,
}

impl Event for OneBotConnectFailed<'_> {
    fn emit(self) {
        tracing::warn!(
            account = self.account,
            error = self.error,
            retry_in_ms = self.retry_in.as_millis() as u64,
            "onebot: reverse WebSocket connect failed"
        );
        metrics()
            .onebot
            .failures
            .with_label_values(&["ws_reverse_connect"])
            .inc();
    }
}

/// A OneBot action was answered.
pub struct OneBotActionDone<'a> {
    pub account: &'a str,
    pub action: &'a str,
    pub retcode: i64,
    pub message: &'a str,
}

impl Event for OneBotActionDone<'_> {
    fn emit(self) {
        let code = self.retcode.to_string();
        let label = ONEBOT_RETCODES
            .iter()
            .find(|r| **r == code)
            .copied()
            .unwrap_or("other");
        if self.retcode > 1 {
            tracing::info!(
                account = self.account,
                action = %Excerpt(self.action),
                retcode = self.retcode,
                message = self.message,
                "onebot: action failed"
            );
        } else {
            tracing::debug!(account = self.account, action = %Excerpt(self.action), retcode = self.retcode, "onebot: action");
        }
        metrics().onebot.actions.with_label_values(&[label]).inc();
    }
}
