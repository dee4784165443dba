//! The Account's incoming path: a poll answer's events recorded (dedup key + inbox, one
//! flush) before the handler sees them, handled one at a time with the replies entering the
//! outbox atomically, the store's faults (polling pauses rather than lose what it cannot
//! record) and the dedup window's pruning.

use super::*;

impl Account {
    /// A message from a friend, group or discussion missing from this channel's contacts
    /// (a new friend, a group just joined) asks for a refresh, at most once a minute: the
    /// handler and the OneBot ids name contacts by the list. This is what keeps the contacts
    /// current; the periodic refresh (`contacts_refresh_secs`) is only a backstop.
    pub(super) fn refresh_if_unknown(&mut self, msg: &Incoming) {
        if msg.self_echo {
            return;
        }
        let Some(c) = self.client.as_ref().and_then(|c| c.cached_contacts()) else {
            return;
        };
        let known = match msg.kind {
            handler::Kind::Buddy => c.friend(msg.source).is_some(),
            handler::Kind::Group => c.group(msg.source).is_some(),
            handler::Kind::Discu => c.discu(msg.source).is_some(),
            handler::Kind::Sess => true,
        };
        if known
            || self
                .unknown_source_refresh
                .is_some_and(|t| t.elapsed() < UNKNOWN_SOURCE_REFRESH_GAP)
        {
            return;
        }
        self.unknown_source_refresh = Some(Instant::now());
        if let Some(me) = self.me.as_ref().and_then(|w| w.upgrade()) {
            tracing::info!(account = %self.id(), kind = msg.kind.as_str(), "a conversation not in the contacts: refreshing them");
            me.do_send(RefreshContacts);
        }
    }

    /// Forgets dedup keys older than the window, and arms the next prune for when the
    /// oldest key kept leaves it. An account whose window is empty arms none: an idle fleet
    /// does not scan the store account by account (it did once a minute each, a tenth of an
    /// idle 1,000-account fleet's CPU); the next recorded message arms one (`settle`).
    pub(super) fn prune_dedup(&mut self) {
        let now = now_secs();
        let before = now.saturating_sub(DEDUP_WINDOW_SECS);
        self.dedup_prune_at = match self.deps.store.prune_dedup(self.id(), before) {
            // Not sooner than a gap after this one: under a steady stream the oldest key
            // leaves the window every moment, and a scan each time would cost more than the
            // keys it saves.
            Ok(p) => p.oldest_kept.map(|at| {
                let due = Duration::from_secs((at + DEDUP_WINDOW_SECS).saturating_sub(now));
                Instant::now() + due.max(DEDUP_PRUNE_GAP)
            }),
            Err(e) => {
                tracing::error!(account = %self.id(), error = %e, "store");
                Some(Instant::now() + DEDUP_PRUNE_GAP)
            }
        };
    }

    /// Records a received message (flushed), then hands it to the handler; `answered`: when
    /// its poll answer came.
    pub(super) fn accept(&mut self, msg: Incoming, answered: std::time::Instant) {
        if let Some((seq, msg)) = self.record(msg, true) {
            self.handle_recorded(seq, msg, Some(answered));
        }
    }

    /// A message whose record is durable goes to the handler (the crash matrix's
    /// `before_handler` point is between the two).
    fn handle_recorded(&mut self, seq: u64, msg: Incoming, answered: Option<std::time::Instant>) {
        crate::fleet::crash::at("before_handler", self.id());
        self.handle_one(seq, msg, answered);
    }

    /// Records a received message in the inbox and the dedup window; `flush`: durable before
    /// this returns, else once the caller's [`crate::store::Store::durable_async`] resolves.
    /// `Some` for a fresh message, to be handled (only once durable); `None` for a duplicate
    /// or when the store refused it (then kept in memory until it recovers).
    pub(super) fn record(&mut self, msg: Incoming, flush: bool) -> Option<(u64, Incoming)> {
        if msg.self_echo {
            // The Sender confirms uncertain sends with these (on_uncertain = "confirm").
            if let Some(s) = &self.sender {
                s.do_send(SelfEcho {
                    kind: msg.kind,
                    source: (msg.kind != handler::Kind::Buddy).then_some(msg.source),
                    text: msg.text.clone(),
                });
            }
        }
        let payload = match serde_json::to_vec(&msg) {
            Ok(p) => p,
            Err(_) => return None,
        };
        if self.store_down {
            self.unrecorded.push_back((msg, None));
            return None;
        }
        let store = &self.deps.store;
        let (key, now) = (msg.dedup_key(), now_secs());
        let outcome = match store.record_incoming(self.id(), &key, &payload, now) {
            Ok(Some(seq)) if flush => match store.flush() {
                Ok(()) => Ok(Some(seq)),
                Err(e) => {
                    // Recorded, not durable: completed once the store recovers.
                    self.store_fault(&e.to_string());
                    self.unrecorded.push_back((msg, Some(seq)));
                    return None;
                }
            },
            other => other,
        };
        self.settle(msg, outcome, None)
    }

    /// What the store said of a message's record: `Some((seq, msg))` to be handled; a
    /// duplicate dropped (and counted); an error keeps it until the store takes writes again
    /// (not handled without its record: a crash could then handle it twice), with `made`, the
    /// seq of a record already made; polling pauses.
    fn settle(
        &mut self,
        msg: Incoming,
        outcome: Result<Option<u64>, crate::store::StoreError>,
        made: Option<u64>,
    ) -> Option<(u64, Incoming)> {
        match outcome {
            Ok(Some(seq)) => {
                // A key entered the window: it leaves it a window from now.
                if self.dedup_prune_at.is_none() {
                    self.dedup_prune_at =
                        Some(Instant::now() + Duration::from_secs(DEDUP_WINDOW_SECS));
                }
                Some((seq, msg))
            }
            Ok(None) => {
                emit(DuplicateDropped {
                    account: self.id(),
                    poll_type: &msg.poll_type,
                });
                None
            }
            Err(e) => {
                self.store_fault(&e.to_string());
                self.unrecorded.push_back((msg, made));
                None
            }
        }
    }

    /// A poll answer of messages only (the usual one): each recorded without a flush of its
    /// own, then one flush awaited, shared with every account writing meanwhile, before the
    /// handler sees them, in order. The flush blocked the Arbiter thread before, holding up
    /// every account of that thread, and at most one writer per thread could join a flush.
    /// The mailbox still waits ([`PollAnswer::Atomic`]): nothing else of this account runs
    /// between the record and the handler.
    pub(super) fn record_answer(
        &mut self,
        events: Vec<Decoded>,
        answered: std::time::Instant,
        ctx: &mut Context<Self>,
    ) -> PollAnswer {
        let mut recorded = Vec::new();
        for ev in events {
            if let Decoded::Message(m) = ev {
                recorded.extend(self.record(m, false));
            }
        }
        if recorded.is_empty() {
            return PollAnswer::Now(self.after_events(ctx));
        }
        let durable = self.deps.store.durable_async();
        PollAnswer::Atomic(Box::pin(durable.into_actor(self).map(
            move |res, act, ctx| {
                match res {
                    Ok(()) => {
                        for (seq, msg) in recorded {
                            act.handle_recorded(seq, msg, Some(answered));
                        }
                    }
                    Err(e) => {
                        // As `accept`: kept until the store takes writes again, with the seqs
                        // of their records (completed then, and handled in order).
                        act.store_fault(&e.to_string());
                        act.unrecorded
                            .extend(recorded.into_iter().map(|(seq, m)| (m, Some(seq))));
                    }
                }
                act.after_events(ctx)
            },
        )))
    }

    /// A message whose record was made under `seq` but never became durable: its record is
    /// completed (the dedup key may have reached the disk alone). `Some` as [`Self::record`]
    /// with a flush: to be handled, in its place among the messages kept meanwhile.
    fn restore(&mut self, msg: Incoming, seq: u64) -> Option<(u64, Incoming)> {
        let payload = serde_json::to_vec(&msg).ok()?;
        let outcome = self.deps.store.restore_incoming(
            self.id(),
            &msg.dedup_key(),
            seq,
            &payload,
            now_secs(),
        );
        self.settle(msg, outcome, Some(seq))
    }

    /// What the Poller does after a poll answer's events were taken.
    pub(super) fn after_events(&mut self, ctx: &mut Context<Self>) -> PollDirective {
        if self.store_down {
            // Paused: what was received is kept until the store recovers.
            self.watch_store(ctx);
            return PollDirective::Stop;
        }
        PollDirective::Continue(Duration::ZERO)
    }

    /// The store refused a write: stop taking sends and events until it recovers.
    pub(super) fn store_fault(&mut self, error: &str) {
        if !self.store_down {
            tracing::error!(account = %self.id(), %error,
                "the store refused a write: sends refused and polling paused until it recovers");
        }
        self.store_down = true;
        let why = format!("store unwritable: {error}");
        self.status(|s| s.error = Some(why));
    }

    /// Arms a recovery check in a second while the store is down (once; it re-arms itself
    /// until the store takes writes again).
    pub(super) fn watch_store(&mut self, ctx: &mut Context<Self>) {
        if !self.store_down || self.store_watch {
            return;
        }
        self.store_watch = true;
        ctx.run_later(Duration::from_secs(1), |act, ctx| {
            act.store_watch = false;
            if act.store_down && !act.shutting_down {
                act.try_recover(ctx);
                act.watch_store(ctx);
            }
        });
    }

    /// Every tick while the store is down: once it takes writes again, records the events
    /// kept in memory (in order), replays the inbox and resumes polling and sending.
    pub(super) fn try_recover(&mut self, ctx: &mut Context<Self>) {
        if let Err(e) = self.deps.store.recover() {
            tracing::debug!(account = %self.id(), error = %e, "store still unwritable");
            return;
        }
        self.store_down = false;
        let mut kept = std::mem::take(&mut self.unrecorded);
        while let Some((m, seq)) = kept.pop_front() {
            if self.store_down {
                self.unrecorded.push_back((m, seq));
                continue;
            }
            let fresh = match seq {
                None => self.record(m, true),
                Some(seq) => self.restore(m, seq),
            };
            if let Some((seq, m)) = fresh {
                // Kept through the outage: its wait is the outage's, not the path's.
                self.handle_recorded(seq, m, None);
            }
        }
        if self.store_down {
            return;
        }
        tracing::info!(account = %self.id(), "the store takes writes again: polling resumes");
        self.status(|s| s.error = None);
        ctx.notify(ReplayInbox);
        if self.state == Some(AccountState::Online) {
            if let Some(c) = self.client.clone() {
                self.last_poll = Instant::now();
                self.start_poller(ctx, &c);
            }
        }
        self.outbox_changed();
    }

    /// One recorded message to its handler; `answered`: when its poll answer came (`None`
    /// for a replay), for the message's wait ([`MessageReceived::waited`]).
    pub(super) fn handle_one(
        &mut self,
        seq: u64,
        msg: Incoming,
        answered: Option<std::time::Instant>,
    ) {
        self.refresh_if_unknown(&msg);
        emit(MessageReceived {
            account: self.id(),
            kind: msg.kind.as_str(),
            text: &msg.text,
            self_echo: msg.self_echo,
            waited: answered.map(|t| t.elapsed()),
        });
        let contacts = self.client.as_ref().and_then(|c| c.cached_contacts());
        let replies = match self.handler.handle_recorded(seq, &msg, contacts.as_deref()) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(account = %self.id(), error = %e, "handler failed");
                Vec::new()
            }
        };
        crate::fleet::crash::at("before_outbox_commit", self.id());
        let replies: Vec<NewOut> = replies
            .into_iter()
            .map(|r| NewOut {
                to_name: self.name_of(&r.target),
                target: r.target,
                text: r.text,
            })
            .collect();
        if replies.is_empty() {
            // Nothing waits on this mark: it rides on the next flush (see `inbox_done_quiet`).
            if let Err(e) = self.deps.store.inbox_done_quiet(self.id(), seq) {
                tracing::error!(account = %self.id(), error = %e, "store");
            }
            return;
        }
        match self.deps.store.inbox_done(self.id(), seq, &replies) {
            Ok(out) if !out.is_empty() => self.outbox_changed(),
            Ok(_) => {}
            Err(e) => tracing::error!(account = %self.id(), error = %e, "store"),
        }
    }

    /// The target's name in this session's contacts (kept with the outbox entry: pseudo
    /// uins change with each login, names survive).
    pub(super) fn name_of(&self, target: &crate::protocol::Target) -> Option<String> {
        use crate::protocol::Target;
        let c = self.client.as_ref()?.cached_contacts()?;
        match target {
            Target::Buddy(uin) => c.friend(*uin).map(|f| f.display_name().to_string()),
            Target::Group(gid) => c
                .group(*gid)
                .map(|g| g.markname.clone().unwrap_or_else(|| g.name.clone())),
            Target::Discu(did) => c.discu(*did).map(|d| d.name.clone()),
            Target::Sess { .. } => None,
        }
    }
}
