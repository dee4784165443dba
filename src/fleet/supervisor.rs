//! The FleetSupervisor: starts, restarts, rebuilds and removes Account actors.
//!
//! * Accounts are spread over one Arbiter per core (`hash(id) % K`).
//! * A changed file restarts its account only after the old actor finished its graceful
//!   shutdown, so two actors never poll or send for one account at once.
//! * A panic kills an actix actor for good and its `Supervisor` does not restart it
//!   (research §1.1): every Account holds a [`DeathNotice`] that tells the supervisor when
//!   its struct is dropped, and the supervisor rebuilds an account it still expected to run;
//!   everything it needs is in the store. No timer sweeps the accounts (at 10,000 accounts a
//!   sweep a second was work for nothing while idle).
//! * An invalid file shows its account as `invalid` with the error; nothing else changes.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::account::{Account, Deps, LOGOUT_TIMEOUT};
use super::handoff::StartGate;
use super::messages::*;
use super::status::{self, rfc3339_now, AccountStatus, Transition};
use super::{AccountState, FleetError};
use crate::config::AccountFile;
use crate::events::{emit, AccountRemoved, AccountStateChanged, ActorRestarted};
use crate::shard::Shard;
use crate::store::OutMsg;

/// How long the whole fleet may take to shut down its accounts.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(4);

/// Asks again, a second later, whether a held-back account may start (see [`StartGate`]).
#[derive(Message)]
#[rtype(result = "()")]
struct RetryStart {
    id: String,
    epoch: u64,
}

struct Entry {
    fingerprint: u64,
    file: Option<AccountFile>,
    addr: Option<Addr<Account>>,
    /// Bumped on every change: a restart scheduled for an older version is dropped.
    epoch: u64,
}

/// The root of the actor tree.
pub struct FleetSupervisor {
    deps: Arc<Deps>,
    arbiters: Vec<ArbiterHandle>,
    accounts: HashMap<String, Entry>,
    shutting_down: bool,
    /// Which accounts this process runs (`--shard I/N`); the others are `elsewhere`.
    shard: Shard,
    /// Consulted before an account starts (the shard handoff).
    gate: Option<Arc<dyn StartGate>>,
    me: Option<Addr<FleetSupervisor>>,
}

impl FleetSupervisor {
    /// `arbiters` empty: accounts run on the supervisor's own arbiter (unit tests).
    pub fn new(deps: Arc<Deps>, arbiters: Vec<ArbiterHandle>) -> FleetSupervisor {
        FleetSupervisor {
            deps,
            arbiters,
            accounts: HashMap::new(),
            shutting_down: false,
            shard: Shard::ALONE,
            gate: None,
            me: None,
        }
    }

    /// Runs only the accounts of `shard`; with a `gate`, an owned account starts only once
    /// the gate lets it (its state handed over from its previous shard).
    pub fn with_shard(mut self, shard: Shard, gate: Option<Arc<dyn StartGate>>) -> Self {
        self.shard = shard;
        self.gate = gate;
        self
    }

    fn elsewhere(&self, id: &str) -> FleetError {
        FleetError::Elsewhere {
            id: id.to_string(),
            shard: self.shard.owner_of(id),
            count: self.shard.count,
        }
    }

    /// Shows an account another shard runs: read and validated here, never started.
    fn mark_elsewhere(&self, id: &str, qq: Option<u64>, error: Option<String>) {
        let owner = self.shard.owner_of(id);
        let now = rfc3339_now();
        let mut from = None;
        // What another shard's account shows here: its owner, and none of the counters this
        // process would keep for an account it ran.
        let owned_elsewhere = |s: &mut AccountStatus| {
            s.error = error.clone();
            s.shard = Some(owner);
            s.outbox = None;
            s.failures = None;
            s.restarts = None;
            s.history = None;
        };
        self.deps
            .status
            .entry(id.to_string())
            .and_modify(|s| {
                from = Some(s.state);
                s.state = AccountState::Elsewhere;
                s.since = now.clone();
                s.qq = qq;
                owned_elsewhere(s);
            })
            .or_insert_with(|| {
                let mut s = AccountStatus::new(id, qq, AccountState::Elsewhere);
                owned_elsewhere(&mut s);
                s
            });
        // The desk's live feed sees it, as it sees an invalid file (`mark_invalid`).
        status::published(&self.deps.status, id);
        if from != Some(AccountState::Elsewhere) {
            let reason = format!("runs on shard {owner}/{}", self.shard.count);
            emit(AccountStateChanged {
                account: id,
                from,
                to: AccountState::Elsewhere,
                reason: Some(&reason),
            });
        }
    }

    fn spawn_account(&self, file: AccountFile) -> Addr<Account> {
        let deps = self.deps.clone();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        file.id.hash(&mut h);
        let notice = self
            .me
            .clone()
            .map(|me| DeathNotice::new(&file.id, me.recipient()));
        let build = move || {
            let a = Account::new(file, deps);
            match notice {
                Some(n) => a.with_death_notice(n),
                None => a,
            }
        };
        if self.arbiters.is_empty() {
            return build().start();
        }
        let arb = &self.arbiters[(h.finish() % self.arbiters.len() as u64) as usize];
        Account::start_in_arbiter(arb, move |_| build())
    }

    /// Starts the entry's account if its file is valid and it is still the same version.
    fn start_entry(&mut self, id: &str, epoch: u64) {
        if self.shutting_down {
            return;
        }
        let Some(e) = self.accounts.get(id) else {
            return;
        };
        if e.epoch != epoch || e.addr.is_some() {
            return;
        }
        let Some(file) = e.file.clone() else { return };
        if let Some(gate) = &self.gate {
            if let Err(why) = gate.check(id) {
                self.deps
                    .status
                    .entry(id.to_string())
                    .and_modify(|s| {
                        s.error = Some(why.clone());
                        s.waiting_handoff = true;
                    })
                    .or_insert_with(|| {
                        let mut s = AccountStatus::new(id, Some(file.qq), AccountState::Starting);
                        s.error = Some(why.clone());
                        s.waiting_handoff = true;
                        s
                    });
                if let Some(me) = self.me.clone() {
                    let id = id.to_string();
                    actix::spawn(async move {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        me.do_send(RetryStart { id, epoch });
                    });
                }
                return;
            }
            if let Some(mut s) = self.deps.status.get_mut(id) {
                s.waiting_handoff = false;
            }
        }
        let addr = self.spawn_account(file);
        if let Some(e) = self.accounts.get_mut(id) {
            e.addr = Some(addr);
        }
    }

    fn mark_invalid(&self, id: &str, error: String) {
        let now = rfc3339_now();
        let mut from = None;
        self.deps
            .status
            .entry(id.to_string())
            .and_modify(|s| {
                from = Some(s.state);
                s.state = AccountState::Invalid;
                s.since = now.clone();
                s.error = Some(error.clone());
                s.qr_png = None;
                s.qrsig = None;
                s.qr = None;
                if let Some(h) = s.history.as_mut() {
                    h.push_back(Transition {
                        state: AccountState::Invalid,
                        at: now.clone(),
                        reason: Some(error.clone()),
                    });
                }
            })
            .or_insert_with(|| {
                let mut s = AccountStatus::new(id, None, AccountState::Invalid);
                s.error = Some(error.clone());
                s
            });
        status::published(&self.deps.status, id);
        if from != Some(AccountState::Invalid) {
            emit(AccountStateChanged {
                account: id,
                from,
                to: AccountState::Invalid,
                reason: Some(&error),
            });
        }
    }

    /// Replaces an account: shuts the old actor down, then applies `after`.
    fn replace(
        &mut self,
        id: String,
        ctx: &mut Context<Self>,
        after: impl FnOnce(&mut Self, &str, u64) + 'static,
    ) {
        self.replace_with(id, ctx, false, after)
    }

    /// [`Self::replace`]; with `retire`, the old actor also logs out (its file is gone).
    fn replace_with(
        &mut self,
        id: String,
        ctx: &mut Context<Self>,
        retire: bool,
        after: impl FnOnce(&mut Self, &str, u64) + 'static,
    ) {
        let (old, epoch) = match self.accounts.get_mut(&id) {
            Some(e) => {
                e.epoch += 1;
                (e.addr.take(), e.epoch)
            }
            None => return,
        };
        let fut = async move {
            if let Some(old) = old {
                if retire {
                    let deadline = SHUTDOWN_DEADLINE + LOGOUT_TIMEOUT;
                    let _ = tokio::time::timeout(deadline, old.send(Retire)).await;
                } else {
                    let _ = tokio::time::timeout(SHUTDOWN_DEADLINE, old.send(Shutdown)).await;
                }
            }
        };
        ctx.spawn(
            fut.into_actor(self)
                .map(move |_, act, _| after(act, &id, epoch)),
        );
    }
}

impl Actor for FleetSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(4096);
        self.me = Some(ctx.address());
    }
}

impl Handler<Upsert> for FleetSupervisor {
    type Result = ();
    fn handle(&mut self, u: Upsert, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        if let Some(e) = self.accounts.get(&u.id) {
            if e.fingerprint == u.fingerprint {
                return;
            }
        }
        // A hold (parked / stopped) is cleared by a *change* of the file seen while running,
        // not by the first reading of it at start: a kicked account stays stopped across a
        // restart of the process.
        let changed = self.accounts.contains_key(&u.id);
        let entry = self.accounts.entry(u.id.clone()).or_insert(Entry {
            fingerprint: u.fingerprint,
            file: None,
            addr: None,
            epoch: 0,
        });
        entry.fingerprint = u.fingerprint;
        if !self.shard.owns(&u.id) {
            entry.file = None;
            let (qq, error) = match &u.file {
                Ok(f) => (Some(f.qq), None),
                Err(e) => (None, Some(e.to_string())),
            };
            self.replace(u.id, ctx, move |act, id, _| {
                act.mark_elsewhere(id, qq, error)
            });
            return;
        }
        match u.file {
            Ok(file) => {
                entry.file = Some(file);
                if changed {
                    if let Err(e) = self.deps.store.set_hold(&u.id, None) {
                        tracing::error!(account = %u.id, error = %e, "store");
                    }
                }
                self.replace(u.id, ctx, |act, id, epoch| act.start_entry(id, epoch));
            }
            Err(err) => {
                entry.file = None;
                let msg = err.to_string();
                self.replace(u.id, ctx, move |act, id, _| act.mark_invalid(id, msg));
            }
        }
    }
}

impl Handler<AccountGone> for FleetSupervisor {
    type Result = ();
    fn handle(&mut self, g: AccountGone, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        // The notice is sent while the actor is being dropped, when its mailbox may not be
        // closed yet: look a moment later. A stop the supervisor asked for has replaced or
        // removed the entry's address by then; only an address that is still the entry's and
        // dead is a panic.
        ctx.run_later(Duration::from_millis(50), move |act, _| {
            act.rebuild_if_dead(&g.id)
        });
    }
}

impl FleetSupervisor {
    /// Rebuilds the account if its entry still holds a dead address (the actor panicked).
    fn rebuild_if_dead(&mut self, id: &str) {
        if self.shutting_down {
            return;
        }
        let Some(e) = self.accounts.get(id) else {
            return;
        };
        if !e.addr.as_ref().is_some_and(|a| !a.connected()) {
            return;
        }
        let Some(file) = e.file.clone() else { return };
        emit(ActorRestarted {
            account: id,
            actor: "account",
            reason: "actor died (panic); rebuilt from the store",
        });
        status::update(&self.deps.status, id, |s| s.count_restart("account"));
        let addr = self.spawn_account(file);
        if let Some(e) = self.accounts.get_mut(id) {
            e.addr = Some(addr);
        }
    }
}

impl Handler<RetryStart> for FleetSupervisor {
    type Result = ();
    fn handle(&mut self, r: RetryStart, _: &mut Context<Self>) {
        self.start_entry(&r.id, r.epoch);
    }
}

impl Handler<Remove> for FleetSupervisor {
    type Result = ();
    fn handle(&mut self, r: Remove, ctx: &mut Context<Self>) {
        if !self.accounts.contains_key(&r.id) {
            return;
        }
        // A removed file logs its account out (issue: "a removed file logs it out and stops
        // it"); its outbox, dedup window and msg_id counter stay in the store.
        self.replace_with(r.id, ctx, true, |act, id, epoch| {
            if act.accounts.get(id).is_some_and(|e| e.epoch == epoch) {
                act.accounts.remove(id);
                let last = act.deps.status.remove(id).map(|(_, s)| s.state);
                status::removed(id);
                emit(AccountRemoved { account: id, last });
            }
        });
    }
}

impl Handler<Restart> for FleetSupervisor {
    type Result = Result<(), FleetError>;
    fn handle(&mut self, r: Restart, ctx: &mut Context<Self>) -> Self::Result {
        let e = self
            .accounts
            .get(&r.id)
            .ok_or_else(|| FleetError::UnknownAccount(r.id.clone()))?;
        if !self.shard.owns(&r.id) {
            return Err(self.elsewhere(&r.id));
        }
        if e.file.is_none() {
            return Err(FleetError::NotRunning(r.id));
        }
        self.deps.store.set_hold(&r.id, None)?;
        self.replace(r.id, ctx, |act, id, epoch| act.start_entry(id, epoch));
        Ok(())
    }
}

impl FleetSupervisor {
    fn running(&self, id: &str) -> Result<Addr<Account>, FleetError> {
        let e = self
            .accounts
            .get(id)
            .ok_or_else(|| FleetError::UnknownAccount(id.to_string()))?;
        if !self.shard.owns(id) {
            return Err(self.elsewhere(id));
        }
        e.addr
            .clone()
            .ok_or_else(|| FleetError::NotRunning(id.to_string()))
    }
}

impl FleetSupervisor {
    /// Passes an operator's request to a running account and its answer back; an account
    /// that stops before answering is `NotRunning`.
    fn forward<M, R>(&self, id: String, msg: M) -> ResponseFuture<Result<R, FleetError>>
    where
        M: Message<Result = Result<R, FleetError>> + Send + 'static,
        R: Send + 'static,
        Account: Handler<M>,
    {
        let addr = self.running(&id);
        Box::pin(async move {
            addr?
                .send(msg)
                .await
                .map_err(|_| FleetError::NotRunning(id))?
        })
    }
}

impl Handler<EnqueueFor> for FleetSupervisor {
    type Result = ResponseFuture<Result<OutMsg, FleetError>>;
    fn handle(&mut self, m: EnqueueFor, _: &mut Context<Self>) -> Self::Result {
        let msg = Enqueue {
            target: m.target,
            text: m.text,
        };
        self.forward(m.id, msg)
    }
}

impl Handler<ReleaseHeldFor> for FleetSupervisor {
    type Result = ResponseFuture<Result<bool, FleetError>>;
    fn handle(&mut self, m: ReleaseHeldFor, _: &mut Context<Self>) -> Self::Result {
        let msg = ReleaseHeld {
            seq: m.seq,
            resend: m.resend,
        };
        self.forward(m.id, msg)
    }
}

impl Handler<RefreshContactsFor> for FleetSupervisor {
    type Result = Result<(), FleetError>;
    fn handle(&mut self, m: RefreshContactsFor, _: &mut Context<Self>) -> Self::Result {
        self.running(&m.id)?.do_send(RefreshContacts);
        Ok(())
    }
}

impl Handler<PanicFor> for FleetSupervisor {
    type Result = Result<(), FleetError>;
    fn handle(&mut self, m: PanicFor, _: &mut Context<Self>) -> Self::Result {
        self.running(&m.id)?.do_send(Panic);
        Ok(())
    }
}

impl Handler<ShutdownFleet> for FleetSupervisor {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _: ShutdownFleet, _: &mut Context<Self>) -> Self::Result {
        self.shutting_down = true;
        let addrs: Vec<Addr<Account>> = self
            .accounts
            .values_mut()
            .filter_map(|e| e.addr.take())
            .collect();
        Box::pin(async move {
            let all = futures::future::join_all(addrs.iter().map(|a| a.send(Shutdown)));
            let _ = tokio::time::timeout(SHUTDOWN_DEADLINE, all).await;
        })
    }
}
