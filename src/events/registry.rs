//! The process-wide registry: every metric handle, resolved once, and the `/metrics` text.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use prometheus::core::Collector;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use super::per_account::{AccountSeries, Family, PerAccount, PerAccountCollector};
use super::{
    ReconnectKind, FLUSH_BUCKETS, FLUSH_WRITES_BUCKETS, HELD_REASONS, MESSAGE_WAIT_BUCKETS,
    ONEBOT_RETCODES, POLL_BUCKETS,
};
use crate::state::AccountState;

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

/// Every metric handle, resolved once, in one process-wide registry.
///
/// A custom registry rather than the crate's default one, so that nothing a dependency
/// registers leaks onto our `/metrics`; the process collector, which the crate only adds to its
/// default registry, is registered here by hand.
pub struct Metrics {
    registry: Registry,
    /// `qqfleet_accounts{state}`, one handle per state in [`AccountState::ALL`] order.
    per_state: [IntGauge; AccountState::ALL.len()],
    pub(super) poll_duration: HistogramVec,
    pub(super) actor_restarts: IntCounterVec,
    /// Fleet-wide: the log line says which account and poll type.
    pub(super) duplicates_dropped: prometheus::IntCounter,
    /// Fleet-wide: 0 while the outage breaker is open.
    pub(super) service_up: IntGauge,
    /// The allocator's live and kept-free bytes after the last trim.
    pub(super) heap_in_use: IntGauge,
    pub(super) heap_free: IntGauge,
    /// The store's flushes: their duration and the durable writes each covered.
    pub(super) flush_duration: Histogram,
    pub(super) flush_writes: Histogram,
    /// Fleet-wide: how long received messages waited for their handler (see
    /// [`super::MessageReceived::waited`]).
    pub(super) message_wait: Histogram,
    /// The OneBot families (all fleet-wide).
    pub(super) onebot: OneBotMetrics,
    /// Every account we have heard of: its state and its own series (compact; see
    /// [`PerAccount`]), exported by a collector of the registry.
    per_account: Arc<PerAccount>,
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

        let per_account = Arc::new(PerAccount::new());
        reg(Box::new(PerAccountCollector(per_account.clone())));
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
            "Bytes held by live objects (counted by the process, to within 32 KiB per thread), read after each heap trim (every 30 s). Includes large zeroed tables mapped but never written, which are not resident (about 27 MB of the store's). Grows with a leak; RSS also grows with freed memory kept for reuse.",
        ))
        .expect("valid metric");
        reg(Box::new(heap_in_use.clone()));
        let heap_free = IntGauge::with_opts(opts(
            "qqfleet_heap_free_bytes",
            "Bytes the allocator has committed beyond the live objects after each heap trim: free room kept for reuse, its metadata, and arena memory committed ahead of use (not resident until touched).",
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

        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
                .expect("valid metric");
            reg(Box::new(h.clone()));
            h
        };
        let flush_duration = histogram(
            "qqfleet_store_flush_duration_seconds",
            "Duration of the store's flushes to disk (each makes a group of durable writes durable: received messages before their handler, accepted sends before their answer).",
            &FLUSH_BUCKETS,
        );
        let flush_writes = histogram(
            "qqfleet_store_flush_writes",
            "Durable writes each flush of the store covered (the group commit: writes of several accounts share one flush).",
            &FLUSH_WRITES_BUCKETS,
        );
        let message_wait = histogram(
            "qqfleet_message_wait_seconds",
            "Time from a poll answer reaching its account to the handler's turn for each of its messages, fleet-wide: the durable record (the flush it waits for) and the account's turn on its thread. Inbox replays after a restart or a store outage are not counted.",
            &MESSAGE_WAIT_BUCKETS,
        );
        // The crate registers its process collector only on its default registry.
        #[cfg(target_os = "linux")]
        reg(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));

        Metrics {
            registry,
            per_state: accounts,
            poll_duration,
            actor_restarts,
            duplicates_dropped,
            service_up,
            heap_in_use,
            heap_free,
            flush_duration,
            flush_writes,
            message_wait,
            onebot,
            per_account,
        }
    }

    fn state_index(state: AccountState) -> usize {
        AccountState::ALL
            .iter()
            .position(|&s| s == state)
            .expect("ALL lists every state")
    }

    /// Adds one to the series `family{account, rest}`, creating it if new.
    pub(super) fn inc(&self, family: Family, account: &str, rest: &[&'static str]) {
        self.per_account.update(account, |e| e.add(family, rest, 1));
    }

    /// Sets `qqfleet_outbox_messages{account}`.
    pub(super) fn set_outbox(&self, account: &str, depth: i64) {
        self.per_account.update(account, |e| e.outbox = Some(depth));
    }

    /// Sets (or, with `None`, deletes) the account's expiry forecast.
    pub(super) fn set_session_expiry(&self, account: &str, at: Option<i64>) {
        self.per_account.update(account, |e| e.session_expiry = at);
    }

    /// Moves the per-state counts and the account's own series to `to` (under the account
    /// lock, so a removal cannot interleave).
    pub(super) fn state_changed(&self, account: &str, to: AccountState) {
        self.per_account
            .update(account, |entry| self.move_state(entry, to));
    }

    fn move_state(&self, entry: &mut AccountSeries, to: AccountState) {
        let previous = entry.state.replace(to);
        if previous == Some(to) {
            return;
        }
        if let Some(p) = previous {
            self.per_state[Self::state_index(p)].dec();
        }
        self.per_state[Self::state_index(to)].inc();
        if to == AccountState::Elsewhere {
            // Another shard runs it and exports its series: here it only counts in
            // `qqfleet_accounts{state="elsewhere"}`, so fleet-wide sums and the per-account
            // alerts see each account once, from its owner.
            entry.clear_series();
            return;
        }
        if previous.map_or(true, |p| p == AccountState::Elsewhere) {
            // A new account (here): the series an operator graphs for every account exist
            // from its first moment, so that the first reconnect or held message shows in
            // increase() and the backlog table lists idle accounts at 0.
            for kind in [
                ReconnectKind::Relink,
                ReconnectKind::Relogin,
                ReconnectKind::Resume,
            ] {
                entry.add(Family::Reconnects, &[kind.as_str()], 0);
            }
            for reason in HELD_REASONS {
                entry.add(Family::MessagesHeld, &[reason], 0);
            }
            entry.outbox = Some(0);
        }
    }

    /// Forgets an account: its state leaves the per-state counts and every series labelled
    /// with it is deleted.
    pub(super) fn remove_account(&self, account: &str) {
        let Some(entry) = self.per_account.lock().remove(account) else {
            return;
        };
        if let Some(p) = entry.state {
            self.per_state[Self::state_index(p)].dec();
        }
    }
}

/// The OneBot families: fleet-wide (a label per account would cost more series than the
/// per-account budget allows); the log lines name the account.
pub(super) struct OneBotMetrics {
    pub(super) queued: prometheus::IntCounter,
    pub(super) dropped: prometheus::IntCounter,
    pub(super) delivered: IntCounterVec,
    pub(super) failures: IntCounterVec,
    pub(super) connections: IntGaugeVec,
    pub(super) actions: IntCounterVec,
    pub(super) queue_depth: IntGauge,
    /// Last known queue depth of each account, so the fleet-wide gauge is their sum.
    pub(super) depths: Mutex<HashMap<String, usize>>,
}

impl OneBotMetrics {
    pub(super) fn depth(&self, account: &str, depth: usize) {
        let mut d = self.depths.lock().unwrap_or_else(|p| p.into_inner());
        let old = d.insert(account.to_owned(), depth).unwrap_or(0);
        self.queue_depth.add(depth as i64 - old as i64);
    }
}
