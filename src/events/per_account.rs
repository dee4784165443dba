//! The per-account metric families, kept compactly and exported by one collector.
//!
//! The crate's metric vectors give each series its own copy of the family's description
//! (name, help text, label names) and of its label pairs: 1,032 bytes a series, measured with
//! the note of its label values that removal needed. An idle account has a dozen series, and
//! more appear as accounts meet new retcodes, kinds and reconnects (a climb the 1,000-account
//! chaos soak saw all through its run). Here a series is its family, its label values (static
//! strings: every per-account label value is one of a fixed set) and its value, 48 bytes; the
//! account's state, outbox depth and expiry forecast are plain fields, and
//! `qqfleet_account_up` / `qqfleet_account_state` are derived from the state at each scrape.
//! The exposition is the same as the vectors gave.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};

use crate::state::AccountState;

/// The per-account counter families.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Reconnects,
    Retcodes,
    Logins,
    MessagesReceived,
    MessagesSent,
    RateLimited,
    MessagesHeld,
}

impl Family {
    /// In declaration order, so a family's index here is `family as usize`.
    const ALL: [Family; 7] = [
        Family::Reconnects,
        Family::Retcodes,
        Family::Logins,
        Family::MessagesReceived,
        Family::MessagesSent,
        Family::RateLimited,
        Family::MessagesHeld,
    ];

    /// Name, help, and the label names after `account` (in alphabetical order, as the
    /// exposition sorts them).
    fn spec(self) -> (&'static str, &'static str, &'static [&'static str]) {
        match self {
            Family::Reconnects => (
                "qqfleet_reconnects_total",
                "Reconnects started, by kind (relink, relogin, resume).",
                &["kind"],
            ),
            Family::Retcodes => (
                "qqfleet_retcodes_total",
                "Non-zero retcodes received, by endpoint and code (unknown codes as other).",
                &["endpoint", "retcode"],
            ),
            Family::Logins => (
                "qqfleet_logins_total",
                "Login attempts finished, by method (qr, resume, relink) and result (ok, failed).",
                &["method", "result"],
            ),
            Family::MessagesReceived => (
                "qqfleet_messages_received_total",
                "Incoming messages handed to the account's handler, by kind.",
                &["kind"],
            ),
            Family::MessagesSent => (
                "qqfleet_messages_sent_total",
                "Outgoing messages finished, by kind and result (delivered, uncertain, failed).",
                &["kind", "result"],
            ),
            Family::RateLimited => (
                "qqfleet_rate_limited_total",
                "Calls a limiter made wait, by limiter (friend_list, send, send_target).",
                &["limiter"],
            ),
            Family::MessagesHeld => (
                "qqfleet_messages_held_total",
                "Outgoing messages set aside for an operator instead of being sent again, by reason (uncertain, refused).",
                &["reason"],
            ),
        }
    }
}

/// The per-account gauge families, in the order of [`PerAccount::descs`] after the counters.
const GAUGES: [(&str, &str, &[&str]); 4] = [
    (
        "qqfleet_account_up",
        "1 while the account is online (polling and able to send), else 0.",
        &[],
    ),
    (
        "qqfleet_account_state",
        "1 for the current state of each account (one series per account).",
        &["state"],
    ),
    (
        "qqfleet_outbox_messages",
        "Messages accepted into the account's durable outbox and not yet finished.",
        &[],
    ),
    (
        "qqfleet_session_expiry_forecast_timestamp_seconds",
        "When the account's QR login is expected to die (unix seconds; about 48 h after the scan): a new scan is needed by then. Absent while no login is held.",
        &[],
    ),
];

/// One counter series: its family, its label values after `account` (unused ones empty) and
/// its value.
#[derive(Clone, Debug)]
struct CounterSeries {
    family: Family,
    labels: [&'static str; 2],
    value: u64,
}

/// What the registry knows of one account.
#[derive(Clone, Debug, Default)]
pub struct AccountSeries {
    /// The current state. The per-state counts are derived from it, not from the `from` field
    /// of the events, so they stay exact even if an event is lost or arrives twice.
    pub state: Option<AccountState>,
    /// `qqfleet_outbox_messages`, when present.
    pub outbox: Option<i64>,
    /// `qqfleet_session_expiry_forecast_timestamp_seconds`, when present.
    pub session_expiry: Option<i64>,
    /// The counter series: at most a few dozen, so a linear scan is cheaper than hashing.
    counters: Vec<CounterSeries>,
}

impl AccountSeries {
    /// Adds `by` to the series `family{rest}`, creating it (at `by`) if new.
    pub fn add(&mut self, family: Family, rest: &[&'static str], by: u64) {
        let mut labels = [""; 2];
        for (l, v) in labels.iter_mut().zip(rest) {
            *l = v;
        }
        match self
            .counters
            .iter_mut()
            .find(|c| c.family == family && c.labels == labels)
        {
            Some(c) => c.value += by,
            None => self.counters.push(CounterSeries {
                family,
                labels,
                value: by,
            }),
        }
    }

    /// Deletes every series of the account except its state (an account another shard runs
    /// is exported by that shard).
    pub fn clear_series(&mut self) {
        self.counters = Vec::new();
        self.outbox = None;
        self.session_expiry = None;
    }

    /// The value of `family{rest}`, if the series exists.
    #[cfg(test)]
    fn get(&self, family: Family, rest: &[&'static str]) -> Option<u64> {
        self.counters
            .iter()
            .find(|c| c.family == family && c.labels[..rest.len()] == *rest)
            .map(|c| c.value)
    }
}

/// Every account's series, behind one lock.
pub struct PerAccount {
    accounts: Mutex<HashMap<Box<str>, AccountSeries>>,
    /// The counter families (in [`Family::ALL`] order), then [`GAUGES`].
    descs: Vec<Desc>,
}

impl PerAccount {
    pub fn new() -> PerAccount {
        let desc = |name: &str, help: &str, rest: &[&str]| {
            let mut labels = vec!["account".to_owned()];
            labels.extend(rest.iter().map(|s| (*s).to_owned()));
            Desc::new(name.into(), help.into(), labels, HashMap::new())
                .expect("qqfleet metric names and help are valid")
        };
        let mut descs: Vec<Desc> = Family::ALL
            .iter()
            .map(|f| {
                let (name, help, rest) = f.spec();
                desc(name, help, rest)
            })
            .collect();
        descs.extend(GAUGES.iter().map(|(n, h, r)| desc(n, h, r)));
        PerAccount {
            accounts: Mutex::new(HashMap::new()),
            descs,
        }
    }

    /// The account map, even after a panic elsewhere poisoned it (its data stays consistent:
    /// every update is a single insert, change or remove).
    pub fn lock(&self) -> MutexGuard<'_, HashMap<Box<str>, AccountSeries>> {
        self.accounts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the account's entry under the lock, the entry created empty if new
    /// (without allocating when it exists).
    pub fn update<R>(&self, account: &str, f: impl FnOnce(&mut AccountSeries) -> R) -> R {
        let mut map = self.lock();
        if !map.contains_key(account) {
            map.insert(account.into(), AccountSeries::default());
        }
        f(map.get_mut(account).expect("just inserted"))
    }

    /// Copies every account's series out of the lock (emitters wait only for the copy, not
    /// for the encoding) and builds the families, in [`PerAccount::descs`] order.
    fn families(&self) -> Vec<MetricFamily> {
        let snapshot: Vec<(Box<str>, AccountSeries)> = self
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let pair = |name: &str, value: &str| {
            let mut p = LabelPair::default();
            p.set_name(name.to_owned());
            p.set_value(value.to_owned());
            p
        };
        let counter = |labels: Vec<LabelPair>, v: u64| {
            let mut c = Counter::default();
            c.set_value(v as f64);
            let mut m = Metric::from_label(labels);
            m.set_counter(c);
            m
        };
        let gauge = |labels: Vec<LabelPair>, v: i64| {
            let mut g = Gauge::default();
            g.set_value(v as f64);
            let mut m = Metric::from_label(labels);
            m.set_gauge(g);
            m
        };
        let mut metrics: Vec<Vec<Metric>> = vec![Vec::new(); self.descs.len()];
        for (account, s) in &snapshot {
            for c in &s.counters {
                let i = c.family as usize;
                let mut labels = vec![pair("account", account)];
                for (name, value) in c.family.spec().2.iter().zip(c.labels) {
                    labels.push(pair(name, value));
                }
                metrics[i].push(counter(labels, c.value));
            }
            let g = Family::ALL.len();
            if let Some(state) = s.state.filter(|&st| st != AccountState::Elsewhere) {
                metrics[g].push(gauge(
                    vec![pair("account", account)],
                    i64::from(state == AccountState::Online),
                ));
                metrics[g + 1].push(gauge(
                    vec![pair("account", account), pair("state", state.as_str())],
                    1,
                ));
            }
            if let Some(v) = s.outbox {
                metrics[g + 2].push(gauge(vec![pair("account", account)], v));
            }
            if let Some(v) = s.session_expiry {
                metrics[g + 3].push(gauge(vec![pair("account", account)], v));
            }
        }
        self.descs
            .iter()
            .zip(metrics)
            .enumerate()
            .map(|(i, (d, ms))| {
                let mut f = MetricFamily::default();
                f.set_name(d.fq_name.clone());
                f.set_help(d.help.clone());
                f.set_field_type(if i < Family::ALL.len() {
                    MetricType::COUNTER
                } else {
                    MetricType::GAUGE
                });
                f.set_metric(ms);
                f
            })
            .collect()
    }
}

/// Registers [`PerAccount`] with a registry (which takes its collectors by value).
pub struct PerAccountCollector(pub Arc<PerAccount>);

impl Collector for PerAccountCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.0.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.0.families()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_sits_at_its_own_index() {
        for (i, f) in Family::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i, "{f:?}");
        }
    }

    #[test]
    fn a_series_is_created_once_and_counts_up() {
        let mut s = AccountSeries::default();
        s.add(Family::Retcodes, &["poll2", "103"], 1);
        s.add(Family::Retcodes, &["poll2", "103"], 1);
        s.add(Family::Retcodes, &["poll2", "121"], 1);
        s.add(Family::Reconnects, &["relink"], 0);
        assert_eq!(s.get(Family::Retcodes, &["poll2", "103"]), Some(2));
        assert_eq!(s.get(Family::Retcodes, &["poll2", "121"]), Some(1));
        assert_eq!(s.get(Family::Reconnects, &["relink"]), Some(0));
        assert_eq!(s.counters.len(), 3);
        s.clear_series();
        assert_eq!(s.get(Family::Retcodes, &["poll2", "103"]), None);
    }

    #[test]
    fn the_exposition_has_every_label_sorted_and_derives_up_and_state() {
        let p = PerAccount::new();
        p.update("a1", |a| {
            a.state = Some(AccountState::Online);
            a.add(Family::MessagesSent, &["buddy", "delivered"], 3);
            a.outbox = Some(2);
        });
        p.update("b2", |b| b.state = Some(AccountState::Elsewhere));
        let fams = p.families();
        let by_name = |n: &str| fams.iter().find(|f| f.name() == n).unwrap();
        let sent = by_name("qqfleet_messages_sent_total");
        assert_eq!(sent.get_field_type(), MetricType::COUNTER);
        let m = &sent.get_metric()[0];
        let labels: Vec<(&str, &str)> = m
            .get_label()
            .iter()
            .map(|l| (l.name(), l.value()))
            .collect();
        assert_eq!(
            labels,
            [
                ("account", "a1"),
                ("kind", "buddy"),
                ("result", "delivered")
            ]
        );
        assert_eq!(m.get_counter().get_value(), 3.0);
        // Elsewhere: counted by the fleet-wide states, no series of its own.
        let up = by_name("qqfleet_account_up");
        assert_eq!(up.get_metric().len(), 1);
        assert_eq!(up.get_metric()[0].get_gauge().get_value(), 1.0);
        let st = by_name("qqfleet_account_state");
        assert_eq!(st.get_metric()[0].get_label()[1].value(), "online");
        assert_eq!(
            by_name("qqfleet_outbox_messages").get_metric()[0]
                .get_gauge()
                .get_value(),
            2.0
        );
        assert!(by_name("qqfleet_session_expiry_forecast_timestamp_seconds")
            .get_metric()
            .is_empty());
    }
}
