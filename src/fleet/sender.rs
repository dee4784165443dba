//! The Sender actor: delivers the durable outbox of one account, one message at a time.
//!
//! * The head of the outbox is sent only when the account and target limiters allow it
//!   (`check()` + a timer, research §1.5); waiting never blocks the actor.
//! * Delivered → removed from the outbox (flushed). A crash before that resends the same
//!   entry with the same msg_id after the restart, which a deduplicating server (the
//!   simulator, for 600 s) answers without delivering twice.
//! * `Uncertain` (1202, "maybe not sent", often delivered, WEBQQ.md §8.2) is never resent
//!   blindly. Under `on_uncertain = "confirm"` (the default) the Sender waits up to
//!   `CONFIRM_WAIT` for the account's own echo of every piece in poll2 (§5.4; the Account
//!   forwards echoes as `SelfEcho`): seen → delivered; not seen → resent once with the same
//!   msg_id (acknowledged without a second delivery by a deduplicating server), then
//!   `on_unconfirmed` (hold, or assume delivered). Other messages wait meanwhile, so order and
//!   pacing hold. `assume_delivered` and `hold` decide at once.
//! * Every attempt of a message uses the msg_id recorded with it at its first attempt
//!   (`WebQq::send` with a given msg_id), so a resend after a transport error or a crash is
//!   deduplicated by the server without rebuilding the client.
//! * Pacing survives a restart: every attempt's time is recorded before it goes out, and a
//!   new Sender (after a relink, a restart or a crash) waits a full quota interval after the
//!   recorded ones (`Limits::restore`): the account never sends faster than its limits.
//! * Transport trouble → the same entry again after a growing pause; a lost session → the
//!   Account reconnects and a new Sender takes over.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use actix::prelude::*;

use super::account::Account;
use super::handler::Kind;
use super::messages::{Drain, SelfEcho, SenderReport, Stop, Wake};
use super::webqq::WebQq;
use crate::config::{UncertainPolicy, UnconfirmedPolicy};
use crate::events::{
    emit, MessageSent, OutgoingHeld, RateLimited, RetcodeReceived, UncertainResolved,
};
use crate::limits::Limits;
use crate::protocol::content::split_text;
use crate::protocol::{ProtocolError, SendOutcome, Target};
use crate::store::{now_ms, OutMsg, Store};

/// Longest pause between two attempts of one message after transport errors.
const MAX_RETRY: Duration = Duration::from_secs(60);
/// How long a message accepted in another session waits for this session's contacts.
const CONTACTS_WAIT: Duration = Duration::from_secs(10);
/// How long an uncertain send waits for its echo (§5.4) before the one resend, and again
/// after it. The echo is pushed to the held poll at once, so seconds are plenty.
pub const CONFIRM_WAIT: Duration = Duration::from_secs(5);
/// How long received echoes are kept for a confirmation that starts after they came (the
/// echo can overtake the send's own answer).
const ECHO_KEEP: Duration = Duration::from_secs(60);
/// At most this many echoes are kept.
const ECHO_MAX: usize = 256;

/// Refusals (not transport trouble, not a lost session) before a message is held.
const MAX_REJECTIONS: u32 = 3;

/// The outbox pump of one account.
pub struct Sender {
    pub gen: u64,
    pub id: String,
    pub client: Arc<dyn WebQq>,
    pub store: Arc<dyn Store>,
    pub limits: Limits,
    pub on_uncertain: UncertainPolicy,
    pub on_unconfirmed: UnconfirmedPolicy,
    pub account: Addr<Account>,
    /// The account's own messages seen in poll2 lately: (when, kind, conversation, text).
    echoes: std::collections::VecDeque<(Instant, Kind, Option<u64>, String)>,
    /// An uncertain message waiting for its echo (see `confirm`).
    confirming: Option<Confirming>,
    /// A send is on the wire: never two at once (order, and the anti-spam rules).
    in_flight: bool,
    /// A timer will call `pump` again (rate limit or retry pause).
    timer: Option<SpawnHandle>,
    /// No new sends (shutdown, or the session is lost).
    draining: bool,
    /// Who waits for the send in flight to end.
    drained: Vec<tokio::sync::oneshot::Sender<()>>,
    /// Since when a message waits for this session's contacts (see `resolve`).
    waiting_contacts: Option<Instant>,
    /// The store failed the last time it was asked (see `store_trouble`).
    store_failing: bool,
}

impl Sender {
    pub fn new(
        gen: u64,
        id: String,
        client: Arc<dyn WebQq>,
        store: Arc<dyn Store>,
        limits: Limits,
        (on_uncertain, on_unconfirmed): (UncertainPolicy, UnconfirmedPolicy),
        account: Addr<Account>,
    ) -> Sender {
        Sender {
            gen,
            id,
            client,
            store,
            limits,
            on_uncertain,
            on_unconfirmed,
            account,
            echoes: Default::default(),
            confirming: None,
            in_flight: false,
            timer: None,
            draining: false,
            drained: Vec::new(),
            waiting_contacts: None,
            store_failing: false,
        }
    }

    fn later(&mut self, wait: Duration, ctx: &mut Context<Self>) {
        if self.timer.is_none() {
            self.timer = Some(ctx.run_later(wait, |act, ctx| {
                act.timer = None;
                act.pump(ctx);
            }));
        }
    }

    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight || self.draining || self.timer.is_some() || self.confirming.is_some() {
            return;
        }
        let mut head = match self.store.outbox_head(&self.id) {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(e) => {
                self.store_trouble(&e, "outbox unreadable; retrying");
                self.later(Duration::from_secs(1), ctx);
                return;
            }
        };
        self.store_failing = false;
        if !self.resolve(&mut head, ctx) {
            return;
        }
        if let Err((limiter, wait)) = self.limits.check_send(&target_key(&head.target)) {
            emit(RateLimited {
                account: &self.id,
                limiter,
                wait,
            });
            self.later(wait, ctx);
            return;
        }
        // A message keeps one msg_id for all its attempts. The first attempt takes the
        // client's next ids and records them, in the outbox entry and in the saved session
        // (the counter moved past them), before it goes out: every later attempt (after a
        // transport error, a crash, a reconnect) sends with the same id, and a deduplicating
        // server delivers it once.
        let msg_id = match head.msg_id {
            Some(id) => id,
            None => {
                let mut session = self.client.session();
                let first = session.msg_id;
                session.msg_id = first + split_text(&head.text).len().max(1) as u64;
                head.msg_id = Some(first);
                let saved = self
                    .store
                    .save_session(&self.id, &session)
                    .and_then(|()| self.store.update_outbox(&self.id, &head));
                if let Err(e) = saved {
                    self.store_trouble(&e, "cannot record the attempt; retrying");
                    self.later(Duration::from_secs(1), ctx);
                    return;
                }
                first
            }
        };
        // The attempt counts against the limits from now on, across a crash or a restart
        // (the server counts it when it arrives): recorded before it goes out.
        if let Err(e) = self
            .store
            .record_send(&self.id, &target_key(&head.target), now_ms())
        {
            self.store_trouble(&e, "cannot record the send time; retrying");
            self.later(Duration::from_secs(1), ctx);
            return;
        }
        self.in_flight = true;
        let started = Instant::now();
        let fut = self
            .client
            .send(head.target.clone(), head.text.clone(), msg_id);
        ctx.spawn(
            fut.into_actor(self)
                .map(move |res, act, ctx| act.sent(head, started, res, ctx)),
        );
    }

    /// A store error on the way to a send: logged as an error once, then quietly while it
    /// lasts (a full disk would otherwise log every account every second).
    fn store_trouble(&mut self, e: &crate::store::StoreError, what: &str) {
        if std::mem::replace(&mut self.store_failing, true) {
            tracing::debug!(account = %self.id, error = %e, "{what}");
        } else {
            tracing::error!(account = %self.id, error = %e, "{what}");
        }
    }

    /// Maps a message accepted in an earlier session to this session's pseudo uin by the
    /// name kept with it. Returns false when it should wait a little for the contacts.
    fn resolve(&mut self, msg: &mut OutMsg, ctx: &mut Context<Self>) -> bool {
        let Some(name) = msg.to_name.clone() else {
            return true;
        };
        let Some(c) = self.client.cached_contacts() else {
            // A fresh session fetches its contacts right after login: give it a moment.
            let since = *self.waiting_contacts.get_or_insert_with(Instant::now);
            if since.elapsed() < CONTACTS_WAIT {
                self.later(Duration::from_millis(500), ctx);
                return false;
            }
            return true;
        };
        let known = match &msg.target {
            Target::Buddy(uin) => c.friend(*uin).is_some(),
            Target::Group(gid) => c.group(*gid).is_some(),
            Target::Discu(did) => c.discu(*did).is_some(),
            Target::Sess { .. } => true,
        };
        if known {
            return true;
        }
        let found = match &msg.target {
            Target::Buddy(_) => c.friend_by_name(&name).map(|f| Target::Buddy(f.uin)),
            Target::Group(_) => c.group_by_name(&name).map(|g| Target::Group(g.gid)),
            Target::Discu(_) => c.discu_by_name(&name).map(|d| Target::Discu(d.did)),
            Target::Sess { .. } => return true,
        };
        match found {
            Ok(t) => {
                tracing::info!(account = %self.id, seq = msg.seq,
                    "target re-resolved by name in the new session");
                msg.target = t;
            }
            Err(e) => {
                tracing::warn!(account = %self.id, seq = msg.seq, error = %e,
                    "target unknown in this session; sending as accepted");
            }
        }
        true
    }

    fn sent(
        &mut self,
        mut msg: OutMsg,
        started: Instant,
        res: Result<SendOutcome, ProtocolError>,
        ctx: &mut Context<Self>,
    ) {
        super::crash::at("send_answered", &self.id);
        self.in_flight = false;
        let kind = kind_of(&msg.target);
        // A timed-out send may well have been delivered (the request was on the wire): it
        // gets the uncertain policy, never a blind resend.
        let res = match res {
            Err(ProtocolError::Timeout { .. }) => Ok(SendOutcome::Uncertain),
            other => other,
        };
        let stored = match res {
            Ok(SendOutcome::Delivered) => {
                emit(MessageSent {
                    account: &self.id,
                    kind,
                    text: &msg.text,
                    result: "delivered",
                });
                self.outcome(msg.seq, "delivered");
                self.store.ack(&self.id, msg.seq)
            }
            Ok(SendOutcome::Uncertain) => {
                emit(MessageSent {
                    account: &self.id,
                    kind,
                    text: &msg.text,
                    result: "uncertain",
                });
                match self.on_uncertain {
                    UncertainPolicy::Confirm => {
                        self.confirm(msg, started, ctx);
                        return;
                    }
                    UncertainPolicy::AssumeDelivered => {
                        self.outcome(msg.seq, "uncertain");
                        self.store.ack(&self.id, msg.seq)
                    }
                    UncertainPolicy::Hold => {
                        self.outcome(msg.seq, "held");
                        emit(OutgoingHeld {
                            account: &self.id,
                            reason: "uncertain",
                        });
                        self.store.hold_outgoing(&self.id, &msg)
                    }
                }
            }
            Err(e) => {
                emit(MessageSent {
                    account: &self.id,
                    kind,
                    text: &msg.text,
                    result: "failed",
                });
                if let ProtocolError::SendRejected { retcode, .. } = &e {
                    emit(RetcodeReceived {
                        account: &self.id,
                        endpoint: endpoint_of(&msg.target),
                        retcode: *retcode,
                    });
                }
                msg.attempts += 1;
                if !e.is_transient() {
                    msg.rejections += 1;
                }
                if msg.rejections >= MAX_REJECTIONS {
                    // Refused again and again, across reconnects (a stale uin draws 100001,
                    // a session error, on every fresh session): it is the message, not the
                    // session. Set it aside so it cannot block the messages behind it.
                    tracing::warn!(account = %self.id, seq = msg.seq, error = %e,
                        "send refused {MAX_REJECTIONS} times");
                    emit(OutgoingHeld {
                        account: &self.id,
                        reason: "refused",
                    });
                    self.outcome(msg.seq, "held");
                    let r = self.store.hold_outgoing(&self.id, &msg);
                    if let Err(e) = r {
                        tracing::error!(account = %self.id, error = %e, "outbox update failed");
                    }
                    self.after_send(ctx);
                    return;
                }
                if let Err(e) = self.store.update_outbox(&self.id, &msg) {
                    tracing::error!(account = %self.id, error = %e, "outbox update failed");
                }
                if e.is_session_lost() || needs_relink(&e) {
                    // The message stays at the head; the next Sender sends it after the
                    // reconnect, with its recorded msg_id.
                    self.draining = true;
                    self.account.do_send(SenderReport::SessionLost {
                        gen: self.gen,
                        reason: e.to_string(),
                    });
                    self.notify_drained();
                    return;
                }
                // A transport error (the request may have arrived) or a refusal: the same
                // message again after a growing pause, with the same msg_id, on the same
                // session (a lost session shows in the Poller, which reconnects).
                let wait = match &e {
                    ProtocolError::RateLimited { retry_after, .. } => *retry_after,
                    _ => Duration::from_secs(1) * 2u32.saturating_pow(msg.attempts.min(6)),
                }
                .min(MAX_RETRY);
                tracing::warn!(account = %self.id, seq = msg.seq, attempts = msg.attempts,
                    error = %e, "send failed; will retry the same message");
                self.later(wait, ctx);
                Ok(())
            }
        };
        if let Err(e) = stored {
            tracing::error!(account = %self.id, error = %e, "outbox update failed");
        }
        self.after_send(ctx);
    }

    /// Starts waiting for the echo of an uncertain message sent at `since`.
    fn confirm(&mut self, msg: OutMsg, since: Instant, ctx: &mut Context<Self>) {
        let timer = ctx.run_later(CONFIRM_WAIT, |act, ctx| act.unconfirmed(ctx));
        self.confirming = Some(Confirming { msg, since, timer });
        self.check_confirmed(ctx);
    }

    /// Whether every piece of the message waiting for confirmation came back as an echo
    /// since it was sent; if so it is delivered.
    fn check_confirmed(&mut self, ctx: &mut Context<Self>) {
        let Some(c) = &self.confirming else {
            return;
        };
        let (kind, source) = echo_key(&c.msg.target);
        let mut used = vec![false; self.echoes.len()];
        let all = split_text(&c.msg.text).iter().all(|piece| {
            let hit = self
                .echoes
                .iter()
                .enumerate()
                .position(|(i, (at, k, s, t))| {
                    !used[i] && *at >= c.since && *k == kind && *s == source && t == piece
                });
            hit.map(|i| used[i] = true).is_some()
        });
        if !all {
            return;
        }
        let c = self.confirming.take().expect("checked above");
        ctx.cancel_future(c.timer);
        // Each echo confirms one message only.
        let mut i = 0;
        self.echoes.retain(|_| {
            i += 1;
            !used[i - 1]
        });
        emit(UncertainResolved {
            account: &self.id,
            outcome: "echo_seen",
        });
        if let Err(e) = self.store.ack(&self.id, c.msg.seq) {
            tracing::error!(account = %self.id, error = %e, "outbox update failed");
        }
        self.after_send(ctx);
    }

    /// No echo within `CONFIRM_WAIT`: the one resend, or the fallback after it.
    fn unconfirmed(&mut self, ctx: &mut Context<Self>) {
        let Some(c) = self.confirming.take() else {
            return;
        };
        let mut msg = c.msg;
        let stored = if !msg.confirm_resent {
            // Recorded first: a crash now cannot turn the one resend into two.
            msg.confirm_resent = true;
            emit(UncertainResolved {
                account: &self.id,
                outcome: "resent",
            });
            self.store.update_outbox(&self.id, &msg)
        } else {
            match self.on_unconfirmed {
                UnconfirmedPolicy::Hold => {
                    emit(UncertainResolved {
                        account: &self.id,
                        outcome: "held",
                    });
                    emit(OutgoingHeld {
                        account: &self.id,
                        reason: "unconfirmed",
                    });
                    self.store.hold_outgoing(&self.id, &msg)
                }
                UnconfirmedPolicy::AssumeDelivered => {
                    emit(UncertainResolved {
                        account: &self.id,
                        outcome: "assumed_delivered",
                    });
                    self.store.ack(&self.id, msg.seq)
                }
            }
        };
        if let Err(e) = stored {
            tracing::error!(account = %self.id, error = %e, "outbox update failed");
        }
        self.after_send(ctx);
    }

    fn after_send(&mut self, ctx: &mut Context<Self>) {
        if let Ok(depth) = self.store.outbox_len(&self.id) {
            self.account.do_send(SenderReport::Depth {
                gen: self.gen,
                depth,
            });
        }
        if self.draining {
            self.notify_drained();
        } else {
            self.pump(ctx);
        }
    }

    fn notify_drained(&mut self) {
        if !self.in_flight {
            for tx in self.drained.drain(..) {
                let _ = tx.send(());
            }
        }
    }
}

/// A message waiting for its echo.
struct Confirming {
    msg: OutMsg,
    /// When its last attempt went out: only echoes after it count.
    since: Instant,
    timer: SpawnHandle,
}

/// What an echo of a send to `t` can show: its kind and, for a group or discussion, the
/// conversation. A friend echo carries no recipient (§5.4).
fn echo_key(t: &Target) -> (Kind, Option<u64>) {
    match t {
        Target::Buddy(_) => (Kind::Buddy, None),
        Target::Group(g) => (Kind::Group, Some(*g)),
        Target::Discu(d) => (Kind::Discu, Some(*d)),
        Target::Sess { .. } => (Kind::Sess, None),
    }
}

/// A session error on send that a relink may cure (103, 100001: §8.2).
impl Sender {
    /// Tells the Account how an outgoing message finished (its handler may report it).
    fn outcome(&self, seq: u64, result: &'static str) {
        self.account.do_send(SenderReport::Outcome { seq, result });
    }
}

fn needs_relink(e: &ProtocolError) -> bool {
    matches!(e, ProtocolError::SendRejected { retcode, .. } | ProtocolError::Retcode { retcode, .. }
        if matches!(retcode, 103 | 100001 | 100000 | 120 | 121))
}

/// The per-target limiter key.
pub fn target_key(t: &Target) -> String {
    match t {
        Target::Buddy(u) => format!("buddy:{u}"),
        Target::Group(g) => format!("group:{g}"),
        Target::Discu(d) => format!("discu:{d}"),
        Target::Sess { to, .. } => format!("sess:{to}"),
    }
}

fn kind_of(t: &Target) -> &'static str {
    match t {
        Target::Buddy(_) => "buddy",
        Target::Group(_) => "group",
        Target::Discu(_) => "discu",
        Target::Sess { .. } => "sess",
    }
}

fn endpoint_of(t: &Target) -> &'static str {
    t.endpoint().name()
}

impl Actor for Sender {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Sends of an earlier Sender (before a relink, a restart, a crash) still count.
        match self.store.load_pacing(&self.id) {
            Ok(p) => {
                let now = now_ms();
                let ago = |t: u64| Duration::from_millis(now.saturating_sub(t));
                self.limits.restore(
                    p.last_ms.map(ago),
                    p.targets.into_iter().map(|(k, t)| (k, ago(t))),
                );
            }
            Err(e) => tracing::error!(account = %self.id, error = %e, "pacing unreadable"),
        }
        self.pump(ctx);
    }
}

impl Handler<Wake> for Sender {
    type Result = ();
    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        self.pump(ctx);
    }
}

impl Handler<SelfEcho> for Sender {
    type Result = ();
    fn handle(&mut self, e: SelfEcho, ctx: &mut Context<Self>) {
        let now = Instant::now();
        while self
            .echoes
            .front()
            .is_some_and(|(at, ..)| now.duration_since(*at) > ECHO_KEEP)
            || self.echoes.len() >= ECHO_MAX
        {
            self.echoes.pop_front();
        }
        self.echoes.push_back((now, e.kind, e.source, e.text));
        self.check_confirmed(ctx);
    }
}

impl Handler<Drain> for Sender {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, d: Drain, _: &mut Context<Self>) -> Self::Result {
        self.draining = true;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.drained.push(tx);
        self.notify_drained();
        Box::pin(async move {
            let _ = tokio::time::timeout(d.deadline, rx).await;
        })
    }
}

impl Handler<Stop> for Sender {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
