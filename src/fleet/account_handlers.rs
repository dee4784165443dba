//! The Account's actor life and its messages: start, the children's reports (login, poll,
//! sender), the operator's requests and the shutdown. What each decides is in the methods of
//! [`Account`] (`account.rs`); here is only who calls them, and when.

use super::*;

impl Actor for Account {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.me = Some(ctx.address().downgrade());
        let id = self.cfg.id.clone();
        let qq = self.cfg.qq;
        self.deps
            .status
            .entry(id.clone())
            .and_modify(|s| {
                s.qq = Some(qq);
                s.error = None;
            })
            .or_insert_with(|| AccountStatus::new(&id, Some(qq), AccountState::Starting));
        crate::fleet::status::published(&self.deps.status, &id);
        // Keys left from before this start are pruned once; after that, a prune is armed
        // only while the window holds keys (`dedup_prune_at`, run by the tick).
        self.dedup_prune_at = Some(Instant::now() + jittered(DEDUP_PRUNE_GAP));
        self.arm_tick(ctx);
        // The periodic chores start at a random point of their period: accounts started
        // together (every start of a fleet) would otherwise all refresh and prune in the same
        // second, a burst whose memory the allocator keeps (the 1,000-account soak grew 25 %
        // in one step when 1,000 contacts refreshes fell due at once).
        let refresh = self.cfg.contacts_refresh();
        ctx.run_later(jittered(refresh), move |_, ctx| {
            ctx.run_interval(refresh, |act, ctx| act.refresh_contacts(ctx));
        });
        if let Ok(depth) = self.deps.store.outbox_len(&id) {
            self.set_depth(depth);
        }
        // Messages recorded but not handled before a crash: handle them first, in order.
        ctx.notify(ReplayInbox);
        if !self.cfg.enabled {
            self.set_state(
                AccountState::Stopped,
                Some("disabled in the account file".into()),
            );
            return;
        }
        match self.deps.store.load_hold(&id) {
            Ok(Some((state, reason))) => {
                self.set_state(state, Some(reason));
            }
            _ => self.begin(ctx),
        }
    }
}

impl Handler<ReplayInbox> for Account {
    type Result = ();
    fn handle(&mut self, _: ReplayInbox, _: &mut Context<Self>) {
        let pending = match self.deps.store.inbox(self.id()) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(account = %self.id(), error = %e, "inbox unreadable");
                return;
            }
        };
        for (seq, payload) in pending {
            match serde_json::from_slice::<Incoming>(&payload) {
                Ok(msg) => self.handle_one(seq, msg, None),
                Err(e) => {
                    tracing::error!(account = %self.id(), error = %e, "inbox entry unreadable; dropped");
                    let _ = self.deps.store.inbox_done(self.id(), seq, &[]);
                }
            }
        }
    }
}

impl Handler<LoginReport> for Account {
    type Result = ();
    fn handle(&mut self, r: LoginReport, ctx: &mut Context<Self>) {
        let Some(r) = self.renewal_report(r, ctx) else {
            return;
        };
        match r {
            LoginReport::QrReady { gen, png, qrsig } if gen == self.gen => {
                let (url, expires_at) = self.announce_qr(&png);
                let png = Arc::new(png);
                self.set_state(
                    AccountState::AwaitingScan,
                    Some(format!("scan the QR code with QQ {}", self.cfg.qq)),
                );
                self.status(|s| {
                    s.qr_png = Some(png);
                    s.qrsig = Some(qrsig);
                    s.qr_at = Some(std::time::Instant::now());
                    s.qr = url.map(|url| QrInfo { url, expires_at });
                });
            }
            LoginReport::Admitted { gen } if gen == self.gen => {
                if let Some(m) = self.login_method {
                    self.show_attempt(m);
                }
            }
            LoginReport::Queued { gen } if gen == self.gen => {
                let why = format!(
                    "QR code expired unscanned; waiting for a login slot ({} in progress)",
                    self.deps.gate.in_progress()
                );
                self.set_state(AccountState::Starting, Some(why));
            }
            LoginReport::Confirmed { gen } if gen == self.gen => {
                self.set_state(AccountState::LoggingIn, Some("QR confirmed".into()));
            }
            LoginReport::Scanned { gen } if gen == self.gen => {
                // The scan is done: from here a crash resumes with these cookies, no new scan.
                if let Some(c) = &self.client {
                    if let Err(e) = self.deps.store.save_session(self.id(), &c.session()) {
                        tracing::error!(account = %self.id(), error = %e, "session not saved");
                    }
                }
                crate::fleet::crash::at("after_scan", self.id());
            }
            LoginReport::Done { gen, method } if gen == self.gen => {
                emit(LoginFinished {
                    account: self.id(),
                    method,
                    ok: true,
                    reason: None,
                });
                if let Some(c) = &self.client {
                    if let Err(e) = self.deps.store.save_session(self.id(), &c.session()) {
                        tracing::error!(account = %self.id(), error = %e, "session not saved");
                    }
                }
                self.go_online(ctx);
            }
            LoginReport::Failed {
                gen,
                method,
                reason,
                rejected,
            } if gen == self.gen => {
                emit(LoginFinished {
                    account: self.id(),
                    method,
                    ok: false,
                    reason: Some(&reason),
                });
                match (method, rejected) {
                    // Relink refused: the session may still resume (§5.2: relink, else relogin).
                    (LoginMethod::Relink, true) => self.login(ctx, LoginMethod::Resume),
                    (LoginMethod::Relink, false) => {
                        self.fail_transient(ctx, reason, LoginMethod::Relink)
                    }
                    // Saved cookies dead (expired, §11): a new scan is the only way.
                    (LoginMethod::Resume, true) => {
                        let _ = self.deps.store.delete_session(self.id());
                        self.login(ctx, LoginMethod::Qr);
                    }
                    (LoginMethod::Resume, false) => {
                        self.fail_transient(ctx, reason, LoginMethod::Resume)
                    }
                    (LoginMethod::Qr, true) => self.fail(ctx, reason, LoginMethod::Qr),
                    (LoginMethod::Qr, false) => self.fail_transient(ctx, reason, LoginMethod::Qr),
                }
            }
            _ => {}
        }
    }
}

/// The Account's answer to a poll report: at once, or once the messages of the answer are
/// durable and handled (the mailbox waits meanwhile, the thread does not).
pub enum PollAnswer {
    Now(PollDirective),
    Atomic(ResponseActFuture<Account, PollDirective>),
}

impl actix::dev::MessageResponse<Account, PollReport> for PollAnswer {
    fn handle(
        self,
        ctx: &mut Context<Account>,
        tx: Option<actix::dev::OneshotSender<PollDirective>>,
    ) {
        match self {
            PollAnswer::Now(d) => actix::dev::MessageResponse::<Account, PollReport>::handle(
                MessageResult(d),
                ctx,
                tx,
            ),
            PollAnswer::Atomic(f) => actix::dev::MessageResponse::<Account, PollReport>::handle(
                AtomicResponse::new(f),
                ctx,
                tx,
            ),
        }
    }
}

impl Handler<PollReport> for Account {
    type Result = PollAnswer;
    fn handle(&mut self, r: PollReport, ctx: &mut Context<Self>) -> Self::Result {
        let current = match &r {
            PollReport::Idle { gen }
            | PollReport::Events { gen, .. }
            | PollReport::Retcode { gen, .. }
            | PollReport::Failed { gen, .. } => *gen == self.gen,
        };
        if !current || self.shutting_down || self.state != Some(AccountState::Online) {
            return PollAnswer::Now(PollDirective::Stop);
        }
        // The watchdog looks at the Sender only at its deadline: a dead one is restarted at
        // the next poll answer, before the replies of this one reach the outbox.
        if self.sender.as_ref().is_some_and(|s| !s.connected()) {
            if let Some(client) = self.client.clone() {
                self.restarted("sender", "sender died");
                self.start_sender(ctx, &client);
            }
        }
        PollAnswer::Now(match r {
            PollReport::Idle { .. } => {
                self.polled();
                if self.store_down {
                    // Paused until the store takes writes again (see `try_recover`).
                    self.watch_store(ctx);
                    return PollAnswer::Now(PollDirective::Stop);
                }
                PollDirective::Continue(Duration::ZERO)
            }
            PollReport::Events { events, at, .. } => {
                self.polled();
                if !self.store_down && !events.iter().any(|e| matches!(e, Decoded::Kick(_))) {
                    return self.record_answer(events, at, ctx);
                }
                for ev in events {
                    match ev {
                        Decoded::Message(m) => self.accept(m, at),
                        // The renewal's new login ended the old channel (§12): expected.
                        Decoded::Kick(_) if self.renewal_expects_kick() => {
                            return PollAnswer::Now(PollDirective::Stop);
                        }
                        Decoded::Kick(reason) => {
                            self.hold(AccountState::Stopped, format!("kicked: {reason}"));
                            return PollAnswer::Now(PollDirective::Stop);
                        }
                        Decoded::Other(_) => {}
                    }
                }
                self.after_events(ctx)
            }
            PollReport::Retcode { retcode, .. }
                if retcode != 0 && retcode != 102 && self.renewal_expects_kick() =>
            {
                PollDirective::Stop
            }
            PollReport::Failed { .. } if self.renewal_expects_kick() => PollDirective::Stop,
            PollReport::Retcode {
                retcode, action, ..
            } => {
                self.polled();
                // 102 is an ordinary idle answer (§5.2), not worth an operator's eye.
                if retcode != 0 && retcode != 102 {
                    self.status(|s| s.count_retcode());
                }
                self.on_retcode(ctx, retcode, action)
            }
            PollReport::Failed { reason, .. } => {
                self.fail_transient(ctx, format!("poll: {reason}"), LoginMethod::Relink);
                PollDirective::Stop
            }
        })
    }
}

impl Handler<SenderReport> for Account {
    type Result = ();
    fn handle(&mut self, r: SenderReport, ctx: &mut Context<Self>) {
        match r {
            SenderReport::Depth { depth, .. } => self.set_depth(depth),
            SenderReport::SessionLost { gen, .. }
                if gen == self.gen && self.renewal_expects_kick() => {}
            SenderReport::SessionLost { gen, reason } if gen == self.gen => {
                tracing::warn!(account = %self.id(), %reason, "send: session lost");
                if self.state == Some(AccountState::Online) {
                    self.reconnect(ctx, LoginMethod::Relink);
                }
            }
            SenderReport::SessionLost { .. } => {}
            SenderReport::Outcome { seq, result } => self.handler.outcome(seq, result),
        }
    }
}

impl Handler<Enqueue> for Account {
    type Result = Result<crate::store::OutMsg, FleetError>;
    fn handle(&mut self, m: Enqueue, ctx: &mut Context<Self>) -> Self::Result {
        let new = NewOut {
            to_name: self.name_of(&m.target),
            target: m.target,
            text: m.text,
        };
        let msg = match self.deps.store.enqueue(self.id(), new) {
            Ok(m) => m,
            Err(e) => {
                self.store_fault(&e.to_string());
                self.watch_store(ctx);
                return Err(FleetError::StoreUnavailable {
                    id: self.cfg.id.clone(),
                    message: e.to_string(),
                });
            }
        };
        self.outbox_changed();
        Ok(msg)
    }
}

impl Handler<ReleaseHeld> for Account {
    type Result = Result<bool, FleetError>;
    fn handle(&mut self, m: ReleaseHeld, _: &mut Context<Self>) -> Self::Result {
        let found = self
            .deps
            .store
            .release_held(self.id(), m.seq, m.resend)?
            .is_some();
        if found && m.resend {
            self.outbox_changed();
        }
        Ok(found)
    }
}

impl Handler<RefreshContacts> for Account {
    type Result = ();
    fn handle(&mut self, _: RefreshContacts, ctx: &mut Context<Self>) {
        self.refresh_contacts(ctx);
    }
}

impl Handler<Panic> for Account {
    type Result = ();
    fn handle(&mut self, _: Panic, _: &mut Context<Self>) {
        panic!("debug panic injected into account {}", self.cfg.id);
    }
}

impl Account {
    /// The first half of a shutdown: no more logins or polls; the returned future resolves
    /// once the send in flight finished (or after `DRAIN_DEADLINE`: it stays in the outbox).
    fn wind_down(&mut self, ctx: &mut Context<Self>) -> impl std::future::Future<Output = ()> {
        self.shutting_down = true;
        self.cancel_backoff(ctx);
        self.cancel_renewal();
        if let Some(a) = self.login.take() {
            a.do_send(Stop);
        }
        if let Some(a) = self.poller.take() {
            a.do_send(Stop);
        }
        let sender = self.sender.take();
        async move {
            if let Some(s) = sender {
                let _ = s
                    .send(Drain {
                        deadline: DRAIN_DEADLINE,
                    })
                    .await;
                s.do_send(Stop);
            }
        }
    }

    fn flush_and_stop(&mut self, ctx: &mut Context<Self>) {
        if let Err(e) = self.deps.store.flush() {
            tracing::error!(account = %self.id(), error = %e, "flush at shutdown");
        }
        if !self.unrecorded.is_empty() {
            // Held in memory only, as the store never took writes again: said, not silent.
            tracing::error!(account = %self.id(), messages = self.unrecorded.len(),
                "received messages never recorded (the store refused writes until this stop) are lost");
        }
        ctx.stop();
    }

    /// The connection to log out on removal: the live one, else one rebuilt from a saved
    /// session that may still live on the server (a `stopped` or `parked` account never
    /// built one). None when there is nothing to end.
    fn logout_client(&self) -> Option<Arc<dyn WebQq>> {
        if let Some(c) = &self.client {
            return Some(c.clone());
        }
        let saved = self.deps.store.load_session(self.id()).ok().flatten()?;
        if saved.is_logged_out() {
            return None;
        }
        self.connect(Some(saved)).ok()
    }
}

impl Handler<Shutdown> for Account {
    type Result = ResponseActFuture<Self, ()>;
    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) -> Self::Result {
        let drained = self.wind_down(ctx);
        Box::pin(
            drained
                .into_actor(self)
                .map(|_, act, ctx| act.flush_and_stop(ctx)),
        )
    }
}

impl Handler<Retire> for Account {
    type Result = ResponseActFuture<Self, ()>;
    fn handle(&mut self, _: Retire, ctx: &mut Context<Self>) -> Self::Result {
        let drained = self.wind_down(ctx);
        let client = self.logout_client();
        let fut = async move {
            drained.await;
            let client = client?;
            // Bounded: a removal must not hang on an unreachable server.
            let res = tokio::time::timeout(LOGOUT_TIMEOUT, client.logout())
                .await
                .map_err(|_| format!("no answer within {} s", LOGOUT_TIMEOUT.as_secs()))
                .and_then(|r| r.map_err(|e| e.to_string()));
            Some((client, res))
        };
        Box::pin(fut.into_actor(self).map(|done, act, ctx| {
            if let Some((client, res)) = done {
                emit(LoggedOut {
                    account: act.id(),
                    error: res.as_ref().err().map(String::as_str),
                });
                // Logged out: the session keeps no secret, only the uin and the msg_id
                // counter. Not logged out: the saved session stays as it was (the
                // login may still live; putting the file back resumes it).
                if res.is_ok() {
                    if let Err(e) = act.deps.store.save_session(act.id(), &client.session()) {
                        tracing::error!(account = %act.id(), error = %e, "store");
                    }
                }
            }
            act.flush_and_stop(ctx);
        }))
    }
}

impl Account {
    /// A new QR code, shown wherever an operator may look: the log line and metrics, the
    /// terminal (`show_qr`), the QR webhook. Returns the URL the code carries (read back from
    /// the image, for the API and the desk) and when it expires.
    pub(super) fn announce_qr(&self, png: &[u8]) -> (Option<String>, String) {
        emit(QrWaiting {
            account: self.id(),
            qq: self.cfg.qq,
        });
        if self.deps.show_qr {
            crate::fleet::login::print_qr(self.id(), self.cfg.qq, png);
        }
        let url = crate::fleet::login::decode_qr(png);
        let expires_at = rfc3339(now_secs() as i64 + QR_LIFETIME_SECS as i64, 0);
        let hook = self
            .cfg
            .notify
            .qr_webhook_url
            .clone()
            .or_else(|| self.deps.qr_webhook_url.clone());
        if let Some(hook) = hook {
            let notice = crate::fleet::notify::QrNotice {
                account: self.id().to_string(),
                qq: self.cfg.qq,
                desk_url: self.deps.desk_url.clone(),
                qr_url: url.clone(),
                png_base64: crate::fleet::notify::QrNotice::png(png),
                expires_at: expires_at.clone(),
            };
            tokio::spawn(crate::fleet::notify::post_qr(hook, notice));
        }
        (url, expires_at)
    }
}
