//! The Account actor: the state machine of one QQ account, and the only writer of its state.
//!
//! It owns the connection (`dyn WebQq`), the handler, the friend-list limiter and three
//! children: Login (one attempt at a time), Poller (poll2) and Sender (outbox). Children
//! report; the Account decides:
//!
//! * start: a saved session → resume (no scan); otherwise a QR code (`awaiting_scan`);
//! * poll retcodes (the client's table, overridable per account): idle → poll again; 116 →
//!   save the new ptwebqq; 103/120/121 → relink, then resume, then a new scan; a kick →
//!   `stopped` until an operator acts;
//! * failures → `backoff` with full jitter (base 1 s, doubling, cap 5 min), reset after a
//!   healthy period; too many in a row → `parked`;
//! * a watchdog restarts a Poller whose poll has been silent too long, and any child that
//!   died (a panic kills an actix actor for good, research §1.1).
//!
//! Received messages are recorded in the store (dedup key + inbox, flushed) before the
//! handler sees them, and marked handled atomically with the handler's replies entering the
//! outbox: a duplicate delivery or a crash never reaches the handler twice.
//!
//! Three child modules hold the rest of the Account: `account_handlers.rs` (its actor
//! messages), `account_incoming.rs` (the incoming path) and `renewal.rs` (renewal scans).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use rand::Rng;
use tokio::time::Instant;

use super::handler::{self, Decoded, Incoming};
use super::login::Login;
use super::messages::*;
use super::poller::Poller;
use super::sender::Sender;
use super::status::{
    rfc3339, rfc3339_now, AccountStatus, QrInfo, SessionInfo, StatusMap, Transition, HISTORY,
    QR_LIFETIME_SECS, SESSION_LIFETIME_SECS,
};
use super::webqq::{Connector, InSpan, WebQq};
use super::{AccountState, FleetError};
use crate::config::{AccountFile, HandlerKind, RetcodeAction};
use crate::events::{
    emit, AccountStateChanged, ActorRestarted, DuplicateDropped, LoggedOut, LoginFinished,
    LoginMethod, MessageReceived, OutboxDepth, QrWaiting, RateLimited, ReconnectKind,
    ReconnectStarted, RetcodeReceived, SessionForecast,
};
use crate::limits::{Limiter, Limits};
use crate::protocol::{Action, ProtocolError, Session};
use crate::store::{now_secs, NewOut, Store};

/// How long received-event keys are remembered. Duplicates came within seconds (§5.4), and a
/// message recorded but not handled before a crash is replayed from the inbox, not found
/// again through this window; so five minutes is ample. Each remembered key costs about 190
/// bytes of sled's memory: with one hour, 20 messages a second kept the fleet's memory
/// climbing for the whole hour (docs/RELIABILITY.md).
const DEDUP_WINDOW_SECS: u64 = 300;
/// How long a shutdown waits for the send in flight.
const DRAIN_DEADLINE: Duration = Duration::from_secs(3);
/// Pause before polling again after an ignorable non-zero retcode (no hot loop against a
/// server that answers instantly).
const IGNORED_RETCODE_PAUSE: Duration = Duration::from_millis(200);
/// Cool-down after a friend-list retcode 6 when the client does not say how long.
const FRIEND_LIST_COOLDOWN: Duration = Duration::from_secs(120);
/// How long a removed account's logout (two calls, §10) may take.
pub const LOGOUT_TIMEOUT: Duration = Duration::from_secs(3);

/// What every account shares.
pub struct Deps {
    pub store: Arc<dyn Store>,
    pub connector: Arc<dyn Connector>,
    pub status: StatusMap,
    /// Where the `log` handler writes by default (`<data>/handled/<id>.jsonl`).
    pub data_dir: PathBuf,
    /// Print QR codes to the terminal (small fleets and the demo).
    pub show_qr: bool,
    /// The fleet-wide outage breaker every connection goes through.
    pub breaker: Arc<super::breaker::Breaker>,
    /// The fleet's QR webhook (`qqfleet run --qr-webhook-url`); an account file's
    /// `[notify] qr_webhook_url` overrides it.
    pub qr_webhook_url: Option<String>,
    /// The desk's address, for the webhook's link.
    pub desk_url: Option<String>,
    /// Builds the handlers of the layers above the fleet (`handler = "onebot"`).
    pub handlers: Option<Arc<dyn handler::MakeHandler>>,
    /// The fleet's scan window (`qqfleet run --scan-window`); `[scan] window` overrides it.
    pub scan_window: Option<crate::scanwin::ScanWindow>,
    /// Debug hook for the scan-window test: a file holding seconds by which the renewal
    /// clock runs ahead of the wall clock (in step with the simulator's). Set only through
    /// `QQFLEET_DEBUG_HOOKS=1` + `QQFLEET_DEBUG_CLOCK_OFFSET=<file>`.
    pub clock_offset_file: Option<PathBuf>,
    /// The fleet-wide bound on logins in progress and pace of new QR codes.
    pub gate: Arc<super::gate::LoginGate>,
}

#[cfg(test)]
impl Deps {
    /// The deps of a unit test: its store, scripted connector, status map and data folder;
    /// no breaker, webhook, handlers above the fleet or scan window, the default login gate.
    /// One place, so a new field is not written into every test harness.
    pub(crate) fn for_tests(
        store: Arc<dyn Store>,
        connector: Arc<dyn super::webqq::Connector>,
        status: StatusMap,
        data_dir: PathBuf,
    ) -> Deps {
        Deps {
            store,
            connector,
            status,
            data_dir,
            show_qr: false,
            breaker: super::breaker::Breaker::disabled(),
            qr_webhook_url: None,
            desk_url: None,
            handlers: None,
            scan_window: None,
            clock_offset_file: None,
            gate: Arc::new(super::gate::LoginGate::with_defaults()),
        }
    }
}

/// The least time between two contacts refreshes asked for by unknown conversations.
const UNKNOWN_SOURCE_REFRESH_GAP: Duration = Duration::from_secs(60);

/// The key of the channel tag in the stored contacts JSON (see `reuse_stored_contacts`).
const CHANNEL_KEY: &str = "qqfleet_channel";

/// One QQ account.
pub struct Account {
    cfg: AccountFile,
    deps: Arc<Deps>,
    state: Option<AccountState>,
    /// Generation of the current children; reports from older ones are ignored.
    gen: u64,
    client: Option<Arc<dyn WebQq>>,
    login: Option<Addr<Login>>,
    /// The method of the current login attempt.
    login_method: Option<LoginMethod>,
    /// Ticks the Login child has been found dead while a login was expected.
    login_dead_ticks: u32,
    poller: Option<Addr<Poller>>,
    sender: Option<Addr<Sender>>,
    /// Consecutive failures of any kind (the backoff exponent).
    failures: u32,
    /// Consecutive refusals by the server (parks the account at `park_after`).
    refusals: u32,
    online_since: Option<Instant>,
    last_poll: Instant,
    backoff: Option<SpawnHandle>,
    handler: Box<dyn handler::Handler>,
    friend_list: Limiter,
    friend_list_blocked_until: Option<Instant>,
    /// A contacts refresh is in flight or scheduled: more requests coalesce into it.
    contacts_pending: bool,
    shutting_down: bool,
    /// Whether this account was online before (a new QR login is then a relogin).
    was_online: bool,
    /// The store refused a write (a full disk, a read-only data directory): sends are
    /// refused (503), polling pauses, and every tick asks the store to recover.
    store_down: bool,
    /// Events received but not recorded while the store was down, recorded (in order) once
    /// it is back: polling pauses rather than losing them. With the seq of a record that was
    /// made but whose flush failed (completed by `Store::restore_incoming`).
    unrecorded: std::collections::VecDeque<(Incoming, Option<u64>)>,
    /// A recovery check is armed (1 s after a store fault, again while it lasts): an idle
    /// account has no periodic tick to notice the disk taking writes again.
    store_watch: bool,
    /// The pending [`Self::tick`] (see [`Self::arm_tick`]).
    tick_handle: Option<SpawnHandle>,
    /// Renewal scans inside the scan window (`renewal.rs`).
    renewal: renewal::Renewal,
    /// Tells the supervisor when this actor is gone (set by the supervisor).
    death_notice: Option<DeathNotice>,
    /// This actor's own address (weak: it must not keep its own mailbox open), for a
    /// contacts refresh asked for from code that has no context at hand.
    me: Option<actix::WeakAddr<Account>>,
    /// When a message from a conversation missing from the contacts last asked for a refresh.
    unknown_source_refresh: Option<Instant>,
    /// When the oldest dedup key leaves the window and a prune is due; `None`: the window
    /// is empty, and an idle account scans nothing (see [`Self::prune_dedup`]).
    dedup_prune_at: Option<Instant>,
}

impl Account {
    pub fn new(cfg: AccountFile, deps: Arc<Deps>) -> Account {
        // Every account is shown to the maker, so that one whose file no longer names a kind
        // it serves has what the maker kept for it (a OneBot connection) dropped.
        let made = deps.handlers.as_ref().and_then(|m| m.make(&cfg));
        let handler: Box<dyn handler::Handler> = match cfg.handler {
            HandlerKind::Echo => Box::new(handler::Echo),
            HandlerKind::Log => Box::new(handler::Log::new(cfg.log_path.clone().unwrap_or_else(
                || {
                    deps.data_dir
                        .join("handled")
                        .join(format!("{}.jsonl", cfg.id))
                },
            ))),
            HandlerKind::Onebot => made.unwrap_or_else(|| {
                Box::new(handler::Unavailable(
                    "the onebot handler is not available in this process".into(),
                ))
            }),
        };
        let l = &cfg.limits;
        Account {
            friend_list: Limiter::new("friend_list", l.friend_list_per_minute, l.friend_list_burst),
            handler,
            cfg,
            deps,
            state: None,
            gen: 0,
            client: None,
            login: None,
            login_method: None,
            login_dead_ticks: 0,
            poller: None,
            sender: None,
            failures: 0,
            refusals: 0,
            online_since: None,
            last_poll: Instant::now(),
            backoff: None,
            friend_list_blocked_until: None,
            contacts_pending: false,
            shutting_down: false,
            was_online: false,
            store_down: false,
            unrecorded: Default::default(),
            store_watch: false,
            tick_handle: None,
            renewal: Default::default(),
            death_notice: None,
            me: None,
            unknown_source_refresh: None,
            dedup_prune_at: None,
        }
    }

    /// Tells the supervisor when this actor is gone (see [`DeathNotice`]).
    pub fn with_death_notice(mut self, notice: DeathNotice) -> Account {
        self.death_notice = Some(notice);
        self
    }

    fn id(&self) -> &str {
        &self.cfg.id
    }

    /// A connection for this account, every call of which logs inside the account's span.
    fn connect(&self, session: Option<Session>) -> Result<Arc<dyn WebQq>, ProtocolError> {
        let c = self.deps.connector.connect(session)?;
        Ok(InSpan::wrap(
            self.deps.breaker.wrap(c, self.id()),
            self.id(),
        ))
    }

    /// Updates this account's status entry (if it still exists: a removed account's late
    /// writes must not resurrect it).
    fn status(&self, f: impl FnOnce(&mut AccountStatus)) {
        super::status::update(&self.deps.status, self.id(), f);
    }

    fn set_state(&mut self, to: AccountState, reason: Option<String>) {
        let from = self.state;
        if from == Some(to) {
            if to != AccountState::Online {
                self.status(|s| s.error = reason);
            }
            return;
        }
        self.state = Some(to);
        emit(AccountStateChanged {
            account: self.id(),
            from,
            to,
            reason: reason.as_deref(),
        });
        if to == AccountState::AwaitingScan {
            emit(SessionForecast {
                account: self.id(),
                expires_at: None,
            });
        }
        let now = rfc3339_now();
        let keep_error = matches!(
            to,
            AccountState::Backoff | AccountState::Parked | AccountState::Stopped
        );
        self.status(|s| {
            s.state = to;
            s.since = now.clone();
            if keep_error || to == AccountState::Online {
                s.error = if to == AccountState::Online {
                    None
                } else {
                    reason.clone()
                };
            }
            if to != AccountState::AwaitingScan {
                s.qr_png = None;
                s.qrsig = None;
                s.qr_at = None;
                s.qr = None;
            } else {
                // A QR login is asked for: the old login is gone.
                s.session = None;
            }
            let h = s.history.get_or_insert_with(Default::default);
            h.push_back(Transition {
                state: to,
                at: now,
                reason,
            });
            while h.len() > HISTORY {
                h.pop_front();
            }
        });
    }

    /// Stops every child and invalidates their late reports.
    fn teardown(&mut self) {
        self.gen += 1;
        self.cancel_renewal();
        if let Some(a) = self.login.take() {
            a.do_send(Stop);
        }
        if let Some(a) = self.poller.take() {
            a.do_send(Stop);
        }
        if let Some(a) = self.sender.take() {
            a.do_send(Stop);
        }
        self.online_since = None;
        self.login_dead_ticks = 0;
    }

    fn cancel_backoff(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.backoff.take() {
            ctx.cancel_future(h);
        }
    }

    /// First login of this actor: resume a saved session, else a QR code.
    fn begin(&mut self, ctx: &mut Context<Self>) {
        let method = match self.deps.store.load_session(self.id()) {
            // Logged out when its file was removed (§10): nothing in it can resume.
            Ok(Some(s)) if s.is_logged_out() => LoginMethod::Qr,
            Ok(Some(s)) if s.uin == self.cfg.qq || s.uin == 0 => {
                // First try login2 on the saved channel (a crash leaves it alive on the
                // server, with its pseudo uins and queued events), then a resume, then a
                // new scan.
                match self.connect(Some(s)) {
                    Ok(c) => {
                        self.client = Some(c);
                        LoginMethod::Relink
                    }
                    Err(_) => LoginMethod::Resume,
                }
            }
            Ok(Some(_)) => {
                // The file now names another QQ number: that session is not this account's.
                let _ = self.deps.store.delete_session(self.id());
                LoginMethod::Qr
            }
            Ok(None) => LoginMethod::Qr,
            Err(e) => {
                tracing::error!(account = %self.id(), error = %e, "session unreadable; QR login");
                LoginMethod::Qr
            }
        };
        self.login(ctx, method);
    }

    /// Starts one login attempt with fresh children.
    fn login(&mut self, ctx: &mut Context<Self>, method: LoginMethod) {
        if self.shutting_down {
            return;
        }
        self.teardown();
        self.cancel_backoff(ctx);
        let client = match method {
            LoginMethod::Relink => match &self.client {
                Some(c) => Ok(c.clone()),
                None => return self.login(ctx, LoginMethod::Resume),
            },
            LoginMethod::Resume => match self.deps.store.load_session(self.id()) {
                Ok(Some(s)) => self.connect(Some(s)),
                _ => return self.login(ctx, LoginMethod::Qr),
            },
            LoginMethod::Qr => {
                // A session left by a logout keeps the msg_id counter: the new login continues
                // it, so no msg_id is ever used twice (the server deduplicates on it).
                let kept = self
                    .deps
                    .store
                    .load_session(self.id())
                    .ok()
                    .flatten()
                    .filter(|s| s.is_logged_out() && (s.uin == self.cfg.qq || s.uin == 0));
                self.connect(kept)
            }
        };
        let client = match client {
            Ok(c) => c,
            Err(e) => return self.fail(ctx, format!("client: {e}"), method),
        };
        match method {
            LoginMethod::Qr => {
                if self.was_online {
                    emit(ReconnectStarted {
                        account: self.id(),
                        kind: ReconnectKind::Relogin,
                        reason: "new QR login",
                    });
                }
            }
            LoginMethod::Resume => {
                emit(ReconnectStarted {
                    account: self.id(),
                    kind: ReconnectKind::Resume,
                    reason: "saved session",
                });
            }
            LoginMethod::Relink => {
                emit(ReconnectStarted {
                    account: self.id(),
                    kind: ReconnectKind::Relink,
                    reason: "channel lost",
                });
            }
        }
        // A slot of the fleet-wide gate now, or `starting` until the Login child gets one.
        let slot = self.deps.gate.try_enter();
        if slot.is_some() {
            self.show_attempt(method);
        } else {
            let why = format!(
                "waiting for a login slot ({} logins in progress)",
                self.deps.gate.in_progress()
            );
            self.set_state(AccountState::Starting, Some(why));
        }
        self.client = Some(client.clone());
        self.login_method = Some(method);
        let login = Login {
            gen: self.gen,
            method,
            client,
            qq: self.cfg.qq,
            qr_check: Duration::from_secs(self.cfg.supervision.qr_check_secs),
            account: ctx.address(),
            gate: self.deps.gate.clone(),
            slot,
        };
        self.login = Some(login.start());
        // A login is watched every few seconds (a dead Login child is noticed).
        self.arm_tick(ctx);
    }

    /// The state of a login attempt that holds its gate slot.
    fn show_attempt(&mut self, method: LoginMethod) {
        match method {
            LoginMethod::Qr => self.set_state(AccountState::Starting, Some("QR login".into())),
            LoginMethod::Resume => self.set_state(
                AccountState::LoggingIn,
                Some("resuming saved session".into()),
            ),
            LoginMethod::Relink => self.set_state(AccountState::LoggingIn, Some("relink".into())),
        }
    }

    fn go_online(&mut self, ctx: &mut Context<Self>) {
        let Some(client) = self.client.clone() else {
            return self.login(ctx, LoginMethod::Qr);
        };
        self.login = None;
        self.was_online = true;
        self.online_since = Some(Instant::now());
        self.last_poll = Instant::now();
        if let Err(e) = self.deps.store.set_hold(self.id(), None) {
            tracing::error!(account = %self.id(), error = %e, "store");
        }
        self.set_state(AccountState::Online, None);
        let logged_in_at = client.session().logged_in_at;
        let known = logged_in_at > 0;
        emit(SessionForecast {
            account: self.id(),
            expires_at: known.then_some(logged_in_at + SESSION_LIFETIME_SECS),
        });
        self.status(|s| {
            s.session = known.then(|| SessionInfo::from_login(logged_in_at));
        });
        self.plan_renewal(logged_in_at);
        // Online: the next tick moves out to the watchdog's deadline (or the renewal's).
        self.arm_tick(ctx);
        self.start_poller(ctx, &client);
        self.start_sender(ctx, &client);
        // A new channel has new pseudo uins: its contacts are needed at once (the Sender
        // maps queued messages to them by name), whatever the age of the stored cache. A
        // resumed channel keeps its uins: contacts stored from it are reused (at 10,000
        // accounts a restart otherwise makes 10,000 friend-list calls).
        if client.cached_contacts().is_none() {
            self.reuse_stored_contacts(&client);
        }
        let stale = client.cached_contacts().is_none()
            || match self.deps.store.load_contacts(self.id()) {
                Ok(Some((_, at))) => {
                    now_secs().saturating_sub(at) >= self.cfg.contacts_refresh_secs
                }
                _ => true,
            };
        if stale {
            self.refresh_contacts(ctx);
        }
    }

    /// Seeds the client with the stored contacts if they were fetched in its very channel
    /// (same [`WebQq::channel_tag`]) and are not due for a refresh.
    fn reuse_stored_contacts(&self, client: &Arc<dyn WebQq>) {
        let tag = client.channel_tag();
        if tag == 0 {
            return;
        }
        let Ok(Some((json, at))) = self.deps.store.load_contacts(self.id()) else {
            return;
        };
        if now_secs().saturating_sub(at) >= self.cfg.contacts_refresh_secs {
            return;
        }
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&json) else {
            return;
        };
        if v.get(CHANNEL_KEY).and_then(|t| t.as_u64()) != Some(tag) {
            return;
        }
        if let Ok(c) = serde_json::from_value(v) {
            client.seed_contacts(c);
        }
    }

    fn start_poller(&mut self, ctx: &mut Context<Self>, client: &Arc<dyn WebQq>) {
        if let Some(p) = self.poller.take() {
            p.do_send(Stop);
        }
        self.poller = Some(
            Poller {
                gen: self.gen,
                id: self.cfg.id.clone(),
                client: client.clone(),
                account: ctx.address(),
            }
            .start(),
        );
    }

    fn start_sender(&mut self, ctx: &mut Context<Self>, client: &Arc<dyn WebQq>) {
        if let Some(s) = self.sender.take() {
            s.do_send(Stop);
        }
        self.sender = Some(
            Sender::new(
                self.gen,
                self.cfg.id.clone(),
                client.clone(),
                self.deps.store.clone(),
                Limits::new(&self.cfg.limits),
                (self.cfg.on_uncertain, self.cfg.on_unconfirmed),
                ctx.address(),
            )
            .start(),
        );
    }

    /// A failure the server decided (a refusal): backoff, and parking after too many.
    fn fail(&mut self, ctx: &mut Context<Self>, reason: String, next: LoginMethod) {
        self.fail_with(ctx, reason, next, true)
    }

    /// A failure of the transport (server unreachable, connection reset): backoff only. An
    /// outage hits every account at once and ends by itself; parking the whole fleet after a
    /// minute of it would need an operator for each account.
    fn fail_transient(&mut self, ctx: &mut Context<Self>, reason: String, next: LoginMethod) {
        self.fail_with(ctx, reason, next, false)
    }

    /// Waits out a jittered backoff, then tries `next`; parks after `park_after` refusals in
    /// a row.
    fn fail_with(
        &mut self,
        ctx: &mut Context<Self>,
        reason: String,
        next: LoginMethod,
        refusal: bool,
    ) {
        if self.shutting_down {
            return;
        }
        let healthy = Duration::from_secs(self.cfg.supervision.healthy_secs);
        if self.online_since.is_some_and(|t| t.elapsed() >= healthy) {
            self.failures = 0;
            self.refusals = 0;
        }
        self.teardown();
        self.cancel_backoff(ctx);
        self.failures += 1;
        if refusal {
            self.refusals += 1;
        }
        let failures = self.failures;
        self.status(|s| s.failures = Some(failures));
        if self.refusals >= self.cfg.supervision.park_after {
            let why = format!(
                "parked after {} refusals in a row; last: {reason}",
                self.refusals
            );
            self.hold(AccountState::Parked, why);
            return;
        }
        let delay = backoff_delay(
            self.failures,
            self.cfg.supervision.backoff_base_ms,
            self.cfg.supervision.backoff_cap_secs,
            &mut rand::rng(),
        );
        self.set_state(
            AccountState::Backoff,
            Some(format!("{reason} (retry in {} ms)", delay.as_millis())),
        );
        self.backoff = Some(ctx.run_later(delay, move |act, ctx| {
            act.backoff = None;
            act.login(ctx, next);
        }));
    }

    /// `stopped` or `parked` until an operator acts; survives a restart of the process.
    fn hold(&mut self, state: AccountState, reason: String) {
        self.teardown();
        if let Err(e) = self
            .deps
            .store
            .set_hold(self.id(), Some(&(state, reason.clone())))
        {
            tracing::error!(account = %self.id(), error = %e, "store");
        }
        self.set_state(state, Some(reason));
    }

    fn reconnect(&mut self, ctx: &mut Context<Self>, method: LoginMethod) {
        self.login(ctx, method);
    }

    fn outbox_changed(&mut self) {
        if let Some(s) = &self.sender {
            s.do_send(Wake);
        }
        if let Ok(depth) = self.deps.store.outbox_len(self.id()) {
            self.set_depth(depth);
        }
    }

    fn set_depth(&self, depth: usize) {
        emit(OutboxDepth {
            account: self.id(),
            depth,
        });
        let held = self.deps.store.held(self.id()).ok().map(|h| h.len());
        self.status(|s| {
            s.outbox = Some(depth);
            if held.is_some() {
                s.held = held;
            }
        });
    }

    fn polled(&mut self) {
        self.last_poll = Instant::now();
        let at = rfc3339_now();
        self.status(|s| s.last_poll_at = Some(at));
    }

    /// Refreshes the contacts cache through the friend-list limiter; requests arriving
    /// while one is pending coalesce into it (a refresh storm makes one call, not many).
    fn refresh_contacts(&mut self, ctx: &mut Context<Self>) {
        if self.state != Some(AccountState::Online) || self.contacts_pending {
            return;
        }
        let Some(client) = self.client.clone() else {
            return;
        };
        if let Some(until) = self.friend_list_blocked_until {
            if until > Instant::now() {
                self.contacts_pending = true;
                ctx.run_later(until - Instant::now(), |act, ctx| {
                    act.contacts_pending = false;
                    act.refresh_contacts(ctx);
                });
                return;
            }
        }
        if let Err(wait) = self.friend_list.check() {
            emit(RateLimited {
                account: self.id(),
                limiter: self.friend_list.name,
                wait,
            });
            self.contacts_pending = true;
            ctx.run_later(wait, |act, ctx| {
                act.contacts_pending = false;
                act.refresh_contacts(ctx);
            });
            return;
        }
        self.contacts_pending = true;
        let gen = self.gen;
        let tag = client.channel_tag();
        ctx.spawn(client.contacts().into_actor(self).map(move |res, act, _| {
            act.contacts_pending = false;
            match res {
                Ok(c) => {
                    // Stored with the channel they belong to (readers of the contacts JSON
                    // ignore the extra key).
                    let record = serde_json::to_value(&c).map(|mut v| {
                        if let Some(o) = v.as_object_mut() {
                            o.insert(CHANNEL_KEY.into(), tag.into());
                        }
                        v
                    });
                    if let Ok(json) = record.and_then(|v| serde_json::to_vec(&v)) {
                        if let Err(e) = act.deps.store.save_contacts(act.id(), &json, now_secs()) {
                            tracing::error!(account = %act.id(), error = %e, "store");
                        }
                    }
                }
                Err(ProtocolError::RateLimited { retry_after, .. }) => {
                    emit(RetcodeReceived {
                        account: act.id(),
                        endpoint: "get_user_friends2",
                        retcode: 6,
                    });
                    act.friend_list_blocked_until = Some(Instant::now() + retry_after);
                }
                Err(e) if gen == act.gen && e.is_session_lost() => {
                    tracing::warn!(account = %act.id(), error = %e, "contacts: session lost");
                }
                Err(e) => {
                    tracing::warn!(account = %act.id(), error = %e, "contacts refresh failed");
                    if let ProtocolError::Retcode { retcode: 6, .. } = e {
                        act.friend_list_blocked_until = Some(Instant::now() + FRIEND_LIST_COOLDOWN);
                    }
                }
            }
        }));
    }

    /// A child was found dead or silent and is replaced: the event and the status count.
    fn restarted(&self, actor: &'static str, reason: &str) {
        emit(ActorRestarted {
            account: self.id(),
            actor,
            reason,
        });
        self.status(|s| s.count_restart(actor));
    }

    /// Arms the next [`Self::tick`] for when something can be due, so an idle account does
    /// not wake for nothing: online, at the watchdog's deadline (the last poll plus the
    /// watchdog; a poll answered meanwhile moves it on); during a login, every third of the
    /// watchdog (1-5 s, a dead Login is noticed); otherwise once a watchdog period; and,
    /// whatever the state, when the dedup window's next prune is due. Ten thousand accounts
    /// ticking every 5 s cost 2,000 wake-ups a second while idle.
    fn arm_tick(&mut self, ctx: &mut Context<Self>) {
        let watchdog = Duration::from_secs(self.cfg.supervision.watchdog_secs.max(1));
        let tick = Duration::from_secs((self.cfg.supervision.watchdog_secs / 3).clamp(1, 5));
        let next = match self.state {
            // A store that refuses writes is retried every tick; a renewal switching over
            // waits for the old Sender tick by tick.
            _ if self.store_down || self.renewal_active() => tick,
            Some(AccountState::Online) => {
                let due = self.last_poll + watchdog + Duration::from_millis(50);
                let watch = due
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_secs(1));
                self.renewal_wait().map_or(watch, |r| watch.min(r))
            }
            None
            | Some(AccountState::Starting | AccountState::AwaitingScan | AccountState::LoggingIn) => {
                tick
            }
            _ => watchdog,
        };
        // A prune due (or overdue, while the store was down) comes at least a second out.
        let next = match self.dedup_prune_at {
            Some(at) => next.min(
                at.saturating_duration_since(Instant::now())
                    .max(Duration::from_secs(1)),
            ),
            None => next,
        };
        // One pending tick at a time: a re-arm (the state changed, so something may be due
        // sooner) replaces the one armed before.
        if let Some(h) = self.tick_handle.take() {
            ctx.cancel_future(h);
        }
        self.tick_handle = Some(ctx.run_later(next, |act, ctx| {
            act.tick_handle = None;
            act.tick(ctx);
            act.arm_tick(ctx);
        }));
    }

    /// Watchdog and child liveness (armed by [`Self::arm_tick`]).
    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        if self.store_down {
            self.try_recover(ctx);
        }
        if !self.store_down && self.dedup_prune_at.is_some_and(|at| at <= Instant::now()) {
            self.prune_dedup();
        }
        if self.state == Some(AccountState::Online) && !self.store_down && !self.renewal_switching()
        {
            self.renewal_tick(ctx);
            let healthy = Duration::from_secs(self.cfg.supervision.healthy_secs);
            if self.failures > 0 && self.online_since.is_some_and(|t| t.elapsed() >= healthy) {
                self.failures = 0;
                self.refusals = 0;
                self.status(|s| s.failures = Some(0));
            }
            if !self.deps.breaker.is_up() {
                // A poll waiting at the outage breaker's gate is not a silent poll.
                self.last_poll = Instant::now();
            }
            let client = self.client.clone();
            let watchdog = Duration::from_secs(self.cfg.supervision.watchdog_secs);
            let poller_dead = self.poller.as_ref().map_or(true, |p| !p.connected());
            if let Some(client) = client {
                if poller_dead || self.last_poll.elapsed() > watchdog {
                    let reason = if poller_dead {
                        "poller died"
                    } else {
                        "poll silent longer than the watchdog"
                    };
                    self.restarted("poller", reason);
                    self.last_poll = Instant::now();
                    self.start_poller(ctx, &client);
                }
                if self.sender.as_ref().map_or(true, |s| !s.connected()) {
                    self.restarted("sender", "sender died");
                    self.start_sender(ctx, &client);
                }
            }
        }
        let logging_in = matches!(
            self.state,
            Some(AccountState::Starting | AccountState::AwaitingScan | AccountState::LoggingIn)
        );
        if logging_in && self.login.as_ref().is_some_and(|l| !l.connected()) {
            // A Login stops right after reporting; two ticks without that report mean it died.
            self.login_dead_ticks += 1;
            if self.login_dead_ticks >= 2 {
                self.restarted("login", "login died");
                self.fail(ctx, "login died".into(), LoginMethod::Resume);
            }
        } else {
            self.login_dead_ticks = 0;
        }
    }

    /// What a poll retcode makes the account do.
    fn on_retcode(
        &mut self,
        ctx: &mut Context<Self>,
        retcode: i64,
        action: Action,
    ) -> PollDirective {
        let why = format!("poll retcode {retcode}");
        // An operator's override replaces the table's answer; three of them are table
        // actions, done below like the table's own.
        let action = match self.cfg.retcodes.get(&retcode).copied() {
            None => action,
            Some(RetcodeAction::Repoll) => return PollDirective::Continue(IGNORED_RETCODE_PAUSE),
            Some(RetcodeAction::Backoff) => {
                self.fail(ctx, why, LoginMethod::Relink);
                return PollDirective::Stop;
            }
            Some(RetcodeAction::Relink) => Action::Relink,
            Some(RetcodeAction::Relogin) => Action::Relogin,
            Some(RetcodeAction::Stop) => Action::Stopped,
        };
        match action {
            Action::Continue | Action::Repoll => {
                PollDirective::Continue(if retcode == 0 || retcode == 102 {
                    Duration::ZERO
                } else {
                    IGNORED_RETCODE_PAUSE
                })
            }
            Action::RefreshPtwebqq(_) => {
                // The client already uses the new ptwebqq; keep it for the next resume.
                if let Some(c) = &self.client {
                    if let Err(e) = self.deps.store.save_session(self.id(), &c.session()) {
                        tracing::error!(account = %self.id(), error = %e, "store");
                    }
                }
                PollDirective::Continue(Duration::ZERO)
            }
            Action::Relink => {
                self.reconnect(ctx, LoginMethod::Relink);
                PollDirective::Stop
            }
            Action::Relogin => {
                self.reconnect(ctx, LoginMethod::Resume);
                PollDirective::Stop
            }
            Action::Stopped => {
                self.hold(AccountState::Stopped, why);
                PollDirective::Stop
            }
            Action::RateLimitedFor(d) => PollDirective::Continue(d),
            Action::Fatal => {
                self.fail(ctx, why, LoginMethod::Resume);
                PollDirective::Stop
            }
            Action::Probe => {
                // A doubtful 103 (§15.4): ask get_online_buddies2 whether the channel lives;
                // keep polling if it does, relink if not.
                let Some(client) = self.client.clone() else {
                    return PollDirective::Continue(IGNORED_RETCODE_PAUSE);
                };
                let gen = self.gen;
                ctx.spawn(client.probe().into_actor(self).map(move |alive, act, ctx| {
                    if gen != act.gen || act.state != Some(AccountState::Online) {
                        return;
                    }
                    match alive {
                        Ok(true) => {
                            if let Some(c) = act.client.clone() {
                                act.start_poller(ctx, &c);
                            }
                        }
                        _ => act.reconnect(ctx, LoginMethod::Relink),
                    }
                }));
                PollDirective::Stop
            }
        }
    }
}

/// The least time between two prunes of an account's dedup window: a fifth of it, so the
/// window's keys level off at most 20 % above what the window holds. Also when an account
/// first looks for keys left from before its start (at a random point of this period, so a
/// fleet's start does not scan in one burst), and how long a failed prune waits.
const DEDUP_PRUNE_GAP: Duration = Duration::from_secs(DEDUP_WINDOW_SECS / 5);

/// A first delay for a periodic chore: uniform in (period/2, period].
fn jittered(period: Duration) -> Duration {
    let ms = period.as_millis().max(2) as u64;
    Duration::from_millis(rand::rng().random_range(ms / 2 + 1..=ms))
}

/// Full-jitter exponential backoff: uniform in [0, min(cap, base·2^(n-1))].
pub fn backoff_delay(failures: u32, base_ms: u64, cap_secs: u64, rng: &mut impl Rng) -> Duration {
    let exp = failures.saturating_sub(1).min(32);
    let ceiling = base_ms
        .saturating_mul(1u64 << exp)
        .min(cap_secs.saturating_mul(1000));
    Duration::from_millis(rng.random_range(0..=ceiling))
}

#[path = "account_handlers.rs"]
mod handlers;
#[path = "account_incoming.rs"]
mod incoming;
pub use handlers::PollAnswer;

#[path = "renewal.rs"]
mod renewal;

#[cfg(test)]
#[path = "account_tests.rs"]
mod tests;
