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

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::state::AccountState;

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
        let m = metrics();
        m.inc_tracked(
            &m.retcodes,
            Family::Retcodes,
            &[self.account, self.endpoint, retcode_label(self.retcode)],
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
        m.inc_tracked(
            &m.logins,
            Family::Logins,
            &[self.account, self.method.as_str(), result],
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
        m.inc_tracked(
            &m.reconnects,
            Family::Reconnects,
            &[self.account, self.kind.as_str()],
        );
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
}

impl Event for MessageReceived<'_> {
    fn emit(self) {
        if self.self_echo {
            tracing::debug!(
                account = self.account,
                kind = self.kind,
                text = %Excerpt(self.text),
                "own message echoed back"
            );
        } else {
            tracing::info!(
                account = self.account,
                kind = self.kind,
                text = %Excerpt(self.text),
                "message received"
            );
        }
        let m = metrics();
        m.inc_tracked(
            &m.messages_received,
            Family::MessagesReceived,
            &[self.account, self.kind],
        );
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
        m.inc_tracked(
            &m.messages_sent,
            Family::MessagesSent,
            &[self.account, self.kind, self.result],
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
        let m = metrics();
        let mut accounts = m.lock();
        accounts.entry(self.account.to_owned()).or_default();
        m.outbox
            .with_label_values(&[self.account])
            .set(i64::try_from(self.depth).unwrap_or(i64::MAX));
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
        let mut accounts = m.lock();
        accounts.entry(self.account.to_owned()).or_default();
        match self.expires_at {
            Some(t) => m
                .session_expiry
                .with_label_values(&[self.account])
                .set(i64::try_from(t).unwrap_or(i64::MAX)),
            None => {
                let _ = m.session_expiry.remove_label_values(&[self.account]);
            }
        }
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
        m.inc_tracked(
            &m.rate_limited,
            Family::RateLimited,
            &[self.account, self.limiter],
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
        m.inc_tracked(
            &m.messages_held,
            Family::MessagesHeld,
            &[self.account, self.reason],
        );
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

/// The Prometheus text exposition of every qqfleet metric (served on `/metrics`).
///
/// Includes the process metrics (`process_*`) read from `/proc` at each call.
pub fn render_metrics() -> String {
    let families = metrics().registry.gather();
    TextEncoder::new()
        .encode_to_string(&families)
        .unwrap_or_else(|e| {
            // Encoding our own well-formed families cannot fail; if it ever does, the scrape
            // must say so rather than serve a truncated page that looks healthy.
            tracing::error!(error = %e, "encoding metrics failed");
            String::new()
        })
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

/// Every metric handle, resolved once, in one process-wide registry.
///
/// A custom registry rather than the crate's default one, so that nothing a dependency
/// registers leaks onto our `/metrics`; the process collector, which the crate only adds to its
/// default registry, is registered here by hand.
pub struct Metrics {
    registry: Registry,
    /// `qqfleet_accounts{state}`, one handle per state in [`AccountState::ALL`] order.
    per_state: [IntGauge; AccountState::ALL.len()],
    account_up: IntGaugeVec,
    account_state: IntGaugeVec,
    poll_duration: HistogramVec,
    reconnects: IntCounterVec,
    retcodes: IntCounterVec,
    logins: IntCounterVec,
    messages_received: IntCounterVec,
    messages_sent: IntCounterVec,
    outbox: IntGaugeVec,
    session_expiry: IntGaugeVec,
    rate_limited: IntCounterVec,
    actor_restarts: IntCounterVec,
    /// Fleet-wide: the log line says which account and poll type.
    duplicates_dropped: prometheus::IntCounter,
    messages_held: IntCounterVec,
    /// Fleet-wide: 0 while the outage breaker is open.
    service_up: IntGauge,
    /// The allocator's live and kept-free bytes after the last trim.
    heap_in_use: IntGauge,
    heap_free: IntGauge,
    /// The OneBot families (all fleet-wide).
    onebot: OneBotMetrics,
    /// Every account we have heard of: its current state and the label values of its series
    /// (see [`AccountSeries`]).
    accounts: Mutex<HashMap<String, AccountSeries>>,
}

/// The process-wide metrics (built and registered on first use).
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        let reg = |c: Box<dyn Collector>| {
            registry
                .register(c)
                .expect("qqfleet metric names are unique and valid");
        };

        let accounts_vec = IntGaugeVec::new(
            opts("qqfleet_accounts", "Accounts in each state."),
            &["state"],
        )
        .expect("valid metric");
        reg(Box::new(accounts_vec.clone()));
        // Every state is present from the start (at 0), so "how many are parked" is a number,
        // never an empty result.
        let accounts = AccountState::ALL.map(|s| accounts_vec.with_label_values(&[s.as_str()]));

        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let v = IntGaugeVec::new(opts(name, help), labels).expect("valid metric");
            reg(Box::new(v.clone()));
            v
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let v = IntCounterVec::new(opts(name, help), labels).expect("valid metric");
            reg(Box::new(v.clone()));
            v
        };

        let account_up = gauge_vec(
            "qqfleet_account_up",
            "1 while the account is online (polling and able to send), else 0.",
            &["account"],
        );
        let account_state = gauge_vec(
            "qqfleet_account_state",
            "1 for the current state of each account (one series per account).",
            &["account", "state"],
        );
        let poll_duration = HistogramVec::new(
            HistogramOpts::new(
                "qqfleet_poll_duration_seconds",
                "Duration of poll2 long polls, fleet-wide, by outcome.",
            )
            .buckets(POLL_BUCKETS.to_vec()),
            &["outcome"],
        )
        .expect("valid metric");
        reg(Box::new(poll_duration.clone()));
        let reconnects = counter_vec(
            "qqfleet_reconnects_total",
            "Reconnects started, by kind (relink, relogin, resume).",
            &["account", "kind"],
        );
        let retcodes = counter_vec(
            "qqfleet_retcodes_total",
            "Non-zero retcodes received, by endpoint and code (unknown codes as other).",
            &["account", "endpoint", "retcode"],
        );
        let logins = counter_vec(
            "qqfleet_logins_total",
            "Login attempts finished, by method (qr, resume, relink) and result (ok, failed).",
            &["account", "method", "result"],
        );
        let messages_received = counter_vec(
            "qqfleet_messages_received_total",
            "Incoming messages handed to the account's handler, by kind.",
            &["account", "kind"],
        );
        let messages_sent = counter_vec(
            "qqfleet_messages_sent_total",
            "Outgoing messages finished, by kind and result (delivered, uncertain, failed).",
            &["account", "kind", "result"],
        );
        let outbox = gauge_vec(
            "qqfleet_outbox_messages",
            "Messages accepted into the account's durable outbox and not yet finished.",
            &["account"],
        );
        let session_expiry = gauge_vec(
            "qqfleet_session_expiry_forecast_timestamp_seconds",
            "When the account's QR login is expected to die (unix seconds; about 48 h after the scan): a new scan is needed by then. Absent while no login is held.",
            &["account"],
        );
        let rate_limited = counter_vec(
            "qqfleet_rate_limited_total",
            "Calls a limiter made wait, by limiter (friend_list, send, send_target).",
            &["account", "limiter"],
        );
        let actor_restarts = counter_vec(
            "qqfleet_actor_restarts_total",
            "Actors restarted or rebuilt, by actor (account, login, poller, sender).",
            &["actor"],
        );
        let duplicates_dropped = prometheus::IntCounter::with_opts(opts(
            "qqfleet_duplicates_dropped_total",
            "Received events dropped because they were already recorded (a duplicate delivery or a replay).",
        ))
        .expect("valid metric");
        reg(Box::new(duplicates_dropped.clone()));
        let messages_held = counter_vec(
            "qqfleet_messages_held_total",
            "Outgoing messages set aside for an operator instead of being sent again, by reason (uncertain, refused).",
            &["account", "reason"],
        );
        // Fleet-wide and few: every actor kind exists at 0, so the restarts panel and rate()
        // see the first restart.
        for actor in ["account", "login", "poller", "sender"] {
            actor_restarts.with_label_values(&[actor]).inc_by(0);
        }
        let service_up = IntGauge::with_opts(opts(
            "qqfleet_service_up",
            "1 while the WebQQ service answers; 0 while the outage breaker is open (most accounts saw transport errors or 5xx, calls pause, one probe at a time tests the service).",
        ))
        .expect("valid metric");
        service_up.set(1);
        reg(Box::new(service_up.clone()));
        let heap_in_use = IntGauge::with_opts(opts(
            "qqfleet_heap_in_use_bytes",
            "Bytes the allocator holds for live objects, read after each heap trim (every 30 s). Grows with a leak; RSS also grows with freed memory kept for reuse.",
        ))
        .expect("valid metric");
        reg(Box::new(heap_in_use.clone()));
        let heap_free = IntGauge::with_opts(opts(
            "qqfleet_heap_free_bytes",
            "Bytes the allocator keeps free for reuse after each heap trim (fragmentation: freed memory it could not give back).",
        ))
        .expect("valid metric");
        reg(Box::new(heap_free.clone()));
        let build_info = gauge_vec(
            "qqfleet_build_info",
            "Always 1; the version label says which qqfleet is running.",
            &["version"],
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);

        let onebot = OneBotMetrics {
            queued: counter_vec(
                "qqfleet_onebot_events_queued_total",
                "OneBot events written to an account's durable queue, fleet-wide.",
                &[],
            )
            .with_label_values::<&str>(&[]),
            dropped: counter_vec(
                "qqfleet_onebot_events_dropped_total",
                "OneBot events dropped because the account's queue was full, fleet-wide.",
                &[],
            )
            .with_label_values::<&str>(&[]),
            delivered: counter_vec(
                "qqfleet_onebot_events_delivered_total",
                "OneBot events a bot took, by transport (ws, http_post).",
                &["transport"],
            ),
            failures: counter_vec(
                "qqfleet_onebot_delivery_failures_total",
                "OneBot delivery attempts that failed, by transport (ws, http_post, ws_reverse_connect).",
                &["transport"],
            ),
            connections: gauge_vec(
                "qqfleet_onebot_connections",
                "OneBot WebSocket connections open now, by transport (ws_forward, ws_reverse).",
                &["transport"],
            ),
            actions: counter_vec(
                "qqfleet_onebot_actions_total",
                "OneBot actions answered, by retcode (0 ok, 1 async, 100, 103, 1400, 1404, other).",
                &["retcode"],
            ),
            queue_depth: gauge_vec(
                "qqfleet_onebot_queue_events",
                "OneBot events waiting in the durable queues of all accounts.",
                &[],
            )
            .with_label_values::<&str>(&[]),
            depths: Mutex::new(HashMap::new()),
        };
        for t in ["ws", "http_post"] {
            onebot.delivered.with_label_values(&[t]).inc_by(0);
        }
        for t in ["ws", "http_post", "ws_reverse_connect"] {
            onebot.failures.with_label_values(&[t]).inc_by(0);
        }
        for t in ["ws_forward", "ws_reverse"] {
            onebot.connections.with_label_values(&[t]).set(0);
        }
        for r in ONEBOT_RETCODES {
            onebot.actions.with_label_values(&[r]).inc_by(0);
        }

        // The crate registers its process collector only on its default registry.
        #[cfg(target_os = "linux")]
        reg(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));

        Metrics {
            registry,
            per_state: accounts,
            account_up,
            account_state,
            poll_duration,
            reconnects,
            retcodes,
            logins,
            messages_received,
            messages_sent,
            outbox,
            session_expiry,
            rate_limited,
            actor_restarts,
            duplicates_dropped,
            messages_held,
            service_up,
            heap_in_use,
            heap_free,
            onebot,
            accounts: Mutex::new(HashMap::new()),
        }
    }

    fn state_index(state: AccountState) -> usize {
        AccountState::ALL
            .iter()
            .position(|&s| s == state)
            .expect("ALL lists every state")
    }

    /// The account map, even after a panic elsewhere poisoned it (its data stays consistent:
    /// every update is a single insert or remove).
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, AccountSeries>> {
        self.accounts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Increments the series `labels` (account first) of `vec`, noting its label values for
    /// the account's removal. Under the account lock, so a removal cannot miss a series being
    /// created at the same moment.
    fn inc_tracked(&self, vec: &IntCounterVec, family: Family, labels: &[&str]) {
        let mut accounts = self.lock();
        let entry = accounts.entry(labels[0].to_owned()).or_default();
        entry.note(family, &labels[1..]);
        vec.with_label_values(labels).inc();
    }

    /// Moves the per-state counts and the account's own series to `to`.
    fn state_changed(&self, account: &str, to: AccountState) {
        let mut accounts = self.lock();
        let entry = accounts.entry(account.to_owned()).or_default();
        let previous = entry.state.replace(to);
        if previous == Some(to) {
            return;
        }
        if to == AccountState::Elsewhere {
            // Another shard runs it and exports its series: here it only counts in
            // `qqfleet_accounts{state="elsewhere"}`, so fleet-wide sums and the per-account
            // alerts see each account once, from its owner.
            let series = std::mem::take(&mut entry.series);
            if let Some(p) = previous {
                self.per_state[Self::state_index(p)].dec();
            }
            self.per_state[Self::state_index(to)].inc();
            self.remove_series(account, previous, &series);
            return;
        }
        match previous.filter(|&p| p != AccountState::Elsewhere) {
            Some(p) => {
                self.per_state[Self::state_index(p)].dec();
                let _ = self
                    .account_state
                    .remove_label_values(&[account, p.as_str()]);
            }
            None => {
                // A new account: the series an operator graphs for every account exist from
                // its first moment, so that the first reconnect or held message shows in
                // increase() and the backlog table lists idle accounts at 0.
                for kind in [
                    ReconnectKind::Relink,
                    ReconnectKind::Relogin,
                    ReconnectKind::Resume,
                ] {
                    entry.note(Family::Reconnects, &[kind.as_str()]);
                    self.reconnects
                        .with_label_values(&[account, kind.as_str()])
                        .inc_by(0);
                }
                for reason in HELD_REASONS {
                    entry.note(Family::MessagesHeld, &[reason]);
                    self.messages_held
                        .with_label_values(&[account, reason])
                        .inc_by(0);
                }
                self.outbox.with_label_values(&[account]).set(0);
            }
        }
        self.per_state[Self::state_index(to)].inc();
        self.account_state
            .with_label_values(&[account, to.as_str()])
            .set(1);
        self.account_up
            .with_label_values(&[account])
            .set(i64::from(to == AccountState::Online));
    }

    /// Forgets an account: its state leaves the per-state counts and every series labelled
    /// with it is deleted, by the label values noted when each was created (the crate can
    /// only delete a series by its full label set; scanning every family instead cost 87 ms
    /// per removal at 10,000 accounts).
    fn remove_account(&self, account: &str) {
        let mut accounts = self.lock();
        let Some(entry) = accounts.remove(account) else {
            return;
        };
        if let Some(p) = entry.state {
            self.per_state[Self::state_index(p)].dec();
        }
        self.remove_series(account, entry.state, &entry.series);
    }

    /// Deletes the per-account series of `account` (in state `state`), by their noted labels.
    fn remove_series(
        &self,
        account: &str,
        state: Option<AccountState>,
        series: &[(Family, Vec<String>)],
    ) {
        if let Some(p) = state {
            let _ = self
                .account_state
                .remove_label_values(&[account, p.as_str()]);
        }
        let _ = self.account_up.remove_label_values(&[account]);
        let _ = self.outbox.remove_label_values(&[account]);
        let _ = self.session_expiry.remove_label_values(&[account]);
        for (family, rest) in series {
            let mut labels: Vec<&str> = Vec::with_capacity(rest.len() + 1);
            labels.push(account);
            labels.extend(rest.iter().map(String::as_str));
            let vec = match family {
                Family::Reconnects => &self.reconnects,
                Family::Retcodes => &self.retcodes,
                Family::Logins => &self.logins,
                Family::MessagesReceived => &self.messages_received,
                Family::MessagesSent => &self.messages_sent,
                Family::RateLimited => &self.rate_limited,
                Family::MessagesHeld => &self.messages_held,
            };
            let _ = vec.remove_label_values(&labels);
        }
    }
}

/// The OneBot families: fleet-wide (a label per account would cost more series than the
/// per-account budget allows); the log lines name the account.
struct OneBotMetrics {
    queued: prometheus::IntCounter,
    dropped: prometheus::IntCounter,
    delivered: IntCounterVec,
    failures: IntCounterVec,
    connections: IntGaugeVec,
    actions: IntCounterVec,
    queue_depth: IntGauge,
    /// Last known queue depth of each account, so the fleet-wide gauge is their sum.
    depths: Mutex<HashMap<String, usize>>,
}

impl OneBotMetrics {
    fn depth(&self, account: &str, depth: usize) {
        let mut d = self.depths.lock().unwrap_or_else(|p| p.into_inner());
        let old = d.insert(account.to_owned(), depth).unwrap_or(0);
        self.queue_depth.add(depth as i64 - old as i64);
    }
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

/// The per-account counter families whose other label values are open-ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Reconnects,
    Retcodes,
    Logins,
    MessagesReceived,
    MessagesSent,
    RateLimited,
    MessagesHeld,
}

/// What the registry knows of one account.
#[derive(Default)]
struct AccountSeries {
    /// The current state. The per-state counts are derived from it, not from the `from` field
    /// of the events, so they stay exact even if an event is lost or arrives twice.
    state: Option<AccountState>,
    /// The label values (after `account`) of each counter series of the account: at most a
    /// few dozen, so a linear scan is cheaper than hashing.
    series: Vec<(Family, Vec<String>)>,
}

impl AccountSeries {
    fn note(&mut self, family: Family, rest: &[&str]) {
        let known = self
            .series
            .iter()
            .any(|(f, l)| *f == family && l.iter().map(String::as_str).eq(rest.iter().copied()));
        if !known {
            self.series
                .push((family, rest.iter().map(|s| (*s).to_owned()).collect()));
        }
    }
}
