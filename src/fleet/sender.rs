//! The Sender actor: delivers the durable outbox of one account, one message at a time.
//!
//! * The head of the outbox is sent only when the account and target limiters allow it
//!   (`check()` + a timer, research §1.5); waiting never blocks the actor.
//! * Delivered → removed from the outbox (flushed). A crash before that resends the same
//!   entry with the same msg_id after the restart, which a deduplicating server (the
//!   simulator, for 600 s) answers without delivering twice.
//! * `Uncertain` (1202, "maybe not sent", often delivered, WEBQQ.md §8.2) is never resent:
//!   it is counted as delivered or held aside, as the account file says.
//! * Every attempt of a message uses the msg_id recorded with it at its first attempt
//!   (`WebQq::send` with a given msg_id), so a resend after a transport error or a crash is
//!   deduplicated by the server without rebuilding the client.
//! * Transport trouble → the same entry again after a growing pause; a lost session → the
//!   Account reconnects and a new Sender takes over.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use actix::prelude::*;

use super::account::Account;
use super::messages::{Drain, SenderReport, Stop, Wake};
use super::webqq::WebQq;
use crate::config::UncertainPolicy;
use crate::events::{emit, MessageSent, OutgoingHeld, RateLimited, RetcodeReceived};
use crate::limits::Limits;
use crate::protocol::content::split_text;
use crate::protocol::{ProtocolError, SendOutcome, Target};
use crate::store::{OutMsg, Store};

/// Longest pause between two attempts of one message after transport errors.
const MAX_RETRY: Duration = Duration::from_secs(60);
/// How long a message accepted in another session waits for this session's contacts.
const CONTACTS_WAIT: Duration = Duration::from_secs(10);
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
    pub account: Addr<Account>,
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
}

impl Sender {
    pub fn new(
        gen: u64,
        id: String,
        client: Arc<dyn WebQq>,
        store: Arc<dyn Store>,
        limits: Limits,
        on_uncertain: UncertainPolicy,
        account: Addr<Account>,
    ) -> Sender {
        Sender {
            gen,
            id,
            client,
            store,
            limits,
            on_uncertain,
            account,
            in_flight: false,
            timer: None,
            draining: false,
            drained: Vec::new(),
            waiting_contacts: None,
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
        if self.in_flight || self.draining || self.timer.is_some() {
            return;
        }
        let mut head = match self.store.outbox_head(&self.id) {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(account = %self.id, error = %e, "outbox unreadable; retrying");
                self.later(Duration::from_secs(1), ctx);
                return;
            }
        };
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
                    tracing::error!(account = %self.id, error = %e,
                        "cannot record the attempt; retrying");
                    self.later(Duration::from_secs(1), ctx);
                    return;
                }
                first
            }
        };
        self.in_flight = true;
        let fut = self
            .client
            .send(head.target.clone(), head.text.clone(), msg_id);
        ctx.spawn(
            fut.into_actor(self)
                .map(move |res, act, ctx| act.sent(head, res, ctx)),
        );
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
        res: Result<SendOutcome, ProtocolError>,
        ctx: &mut Context<Self>,
    ) {
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
        self.pump(ctx);
    }
}

impl Handler<Wake> for Sender {
    type Result = ();
    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        self.pump(ctx);
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
