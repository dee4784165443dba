//! The read-only status snapshot the admin API serves: one entry per account, written only by
//! that account's actor (and by the FleetSupervisor for accounts whose file is invalid).
//!
//! A `DashMap` so HTTP handlers on the tokio pool read it without messaging 1,000 actors;
//! never hold one of its references across an `.await`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use dashmap::DashMap;
use serde::Serialize;

use super::AccountState;

/// Transitions kept per account for `GET /api/accounts/{id}`.
pub const HISTORY: usize = 32;
/// How long a QR code can be scanned (WEBQQ.md §3.3: about 120 s); the countdown shown.
pub const QR_LIFETIME_SECS: u64 = 120;
/// How long a QR login lives whatever the client does (WEBQQ.md §11: about 48 h).
pub const SESSION_LIFETIME_SECS: u64 = 48 * 3600;
/// Retcode times kept per account (for "retcodes in the last hour").
const RETCODE_TIMES: usize = 256;

/// One state transition, for operators reading how an account got where it is.
#[derive(Clone, Debug, Serialize)]
pub struct Transition {
    pub state: AccountState,
    pub at: String,
    pub reason: Option<String>,
}

/// What the API shows about one account.
#[derive(Clone, Debug, Serialize)]
pub struct AccountStatus {
    pub id: String,
    /// `None` when the file is too broken to say.
    pub qq: Option<u64>,
    pub state: AccountState,
    /// When the current state began (RFC 3339, UTC).
    pub since: String,
    /// When the last poll2 answered (RFC 3339, UTC).
    pub last_poll_at: Option<String>,
    /// The last error (no secrets): why it is invalid, parked, stopped or backing off.
    pub error: Option<String>,
    /// Accepted outgoing messages not yet delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outbox: Option<usize>,
    /// While `elsewhere`: the shard (`I` of `--shard I/N`) that runs the account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<u32>,
    /// Consecutive failures (drives the backoff; reset after a healthy period).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failures: Option<u32>,
    /// How often the watchdog or a crash restarted a child or the account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restarts: Option<Restarts>,
    /// Recent transitions, oldest first (detail view only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<VecDeque<Transition>>,
    /// The QR code to scan while `awaiting_scan` (served as PNG, never as JSON).
    #[serde(skip)]
    pub qr_png: Option<Arc<Vec<u8>>>,
    /// The qrsig of that QR: the in-process demo phone scans by it. Never shown.
    #[serde(skip)]
    pub qrsig: Option<String>,
    /// When the QR appeared (for the demo phone's delay).
    #[serde(skip)]
    pub qr_at: Option<std::time::Instant>,
    /// Held in `starting` until its previous shard hands its state over (`--handoff`):
    /// `/readyz` does not wait for it, as it waits on another process.
    #[serde(skip)]
    pub waiting_handoff: bool,
    /// The QR code to scan while `awaiting_scan`: the URL it carries and until when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr: Option<QrInfo>,
    /// The current login and when it is expected to die (§11).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionInfo>,
    /// True while a renewal scan is asked for (the window's opening came, `qr` shows the
    /// code) and the old session still serves: the account stays `online`.
    pub renewing: bool,
    /// Held messages (set aside for an operator: resend or drop).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<usize>,
    /// Non-zero poll retcodes in the last hour (computed from `retcode_at` when shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retcodes_last_hour: Option<usize>,
    /// Unix seconds of recent non-zero poll retcodes, oldest first.
    #[serde(skip)]
    pub retcode_at: VecDeque<u64>,
}

/// The QR code an account waits on, as the API and the desk show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QrInfo {
    /// What the code encodes (the phone-side URL).
    pub url: String,
    /// When the code expires (RFC 3339, UTC).
    pub expires_at: String,
}

/// The current login's age and forecast.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    /// When the QR login this session stems from completed (RFC 3339, UTC).
    pub logged_in_at: String,
    /// `logged_in_at` + 48 h (§11): when a new scan will be needed at the latest.
    pub expires_at_estimate: String,
    /// When a renewal scan will be asked for (the scan window's last opening before the
    /// expiry); absent without a window or when the expiry falls inside it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renew_at: Option<String>,
}

impl SessionInfo {
    /// The info of a login made at `logged_in_at` (unix seconds).
    pub fn from_login(logged_in_at: u64) -> SessionInfo {
        SessionInfo {
            logged_in_at: rfc3339(logged_in_at as i64, 0),
            expires_at_estimate: rfc3339((logged_in_at + SESSION_LIFETIME_SECS) as i64, 0),
            renew_at: None,
        }
    }
}

/// Restart counters of one account.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Restarts {
    pub account: u32,
    pub poller: u32,
    pub login: u32,
    pub sender: u32,
}

impl AccountStatus {
    /// Counts a restart of `actor` (`account`, `poller`, `login`, `sender`, the values of
    /// the `ActorRestarted` event).
    pub fn count_restart(&mut self, actor: &str) {
        if let Some(r) = self.restarts.as_mut() {
            match actor {
                "account" => r.account += 1,
                "poller" => r.poller += 1,
                "login" => r.login += 1,
                "sender" => r.sender += 1,
                _ => {}
            }
        }
    }

    /// A fresh entry.
    pub fn new(id: &str, qq: Option<u64>, state: AccountState) -> AccountStatus {
        AccountStatus {
            id: id.to_string(),
            qq,
            state,
            since: rfc3339_now(),
            last_poll_at: None,
            error: None,
            outbox: Some(0),
            shard: None,
            failures: Some(0),
            restarts: Some(Restarts::default()),
            history: Some(VecDeque::new()),
            qr_png: None,
            qrsig: None,
            qr_at: None,
            waiting_handoff: false,
            qr: None,
            session: None,
            renewing: false,
            held: Some(0),
            retcodes_last_hour: None,
            retcode_at: VecDeque::new(),
        }
    }

    /// The list view: without history.
    pub fn summary(&self) -> AccountStatus {
        AccountStatus {
            history: None,
            ..self.detail()
        }
    }

    /// The detail view: with history and the derived counts as of now.
    pub fn detail(&self) -> AccountStatus {
        let mut s = self.clone();
        let hour_ago = now_secs().saturating_sub(3600);
        s.retcodes_last_hour = Some(self.retcode_at.iter().filter(|&&t| t >= hour_ago).count());
        s
    }

    /// Counts a non-zero poll retcode now.
    pub fn count_retcode(&mut self) {
        if self.retcode_at.len() >= RETCODE_TIMES {
            self.retcode_at.pop_front();
        }
        self.retcode_at.push_back(now_secs());
    }
}

/// One change of the status snapshot, as `GET /api/events` sends it.
#[derive(Clone, Debug, Serialize)]
pub struct Change {
    /// Increasing within the process (the SSE `id:`).
    pub id: u64,
    pub account: String,
    /// `changed`, `removed` (the stream's first events, one per account, are `snapshot`).
    pub kind: &'static str,
    /// The top-level fields of the account's status that changed.
    pub changed: Vec<String>,
    /// The account's status (list view) after the change; absent when removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

/// The feed of snapshot changes: a broadcast every writer of the snapshot publishes into,
/// through [`update`], [`published`] and [`removed`].
///
/// Process-wide, like the metrics registry: one process runs one fleet, and the writers
/// (every account actor, the supervisor) already share the map, not a handle beside it.
/// Nothing is computed while nobody listens, and nothing is held either: the broadcast's
/// ring of [`FEED_DEPTH`] slots (512 KiB, every slot written when it is made) exists only
/// while someone listens (the desk, `/api/events`). A fleet nobody watches used to carry it
/// from its first account on.
pub struct Feed {
    tx: std::sync::RwLock<Option<tokio::sync::broadcast::Sender<Change>>>,
    seq: AtomicU64,
}

/// Changes the feed keeps for a slow listener: deep enough for a burst of a whole fleet
/// changing at once; a listener that falls further behind is told so and starts again from
/// a snapshot.
pub const FEED_DEPTH: usize = 4096;

impl Feed {
    /// A receiver of the changes from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change> {
        let mut tx = self.tx.write().unwrap_or_else(|p| p.into_inner());
        tx.get_or_insert_with(|| tokio::sync::broadcast::channel(FEED_DEPTH).0)
            .subscribe()
    }

    /// The next event id.
    pub fn next_id(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn listening(&self) -> bool {
        let tx = self.tx.read().unwrap_or_else(|p| p.into_inner());
        tx.as_ref().is_some_and(|tx| tx.receiver_count() > 0)
    }

    /// Whether the ring exists (tests).
    #[cfg(test)]
    fn holds_ring(&self) -> bool {
        self.tx.read().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    fn send(
        &self,
        account: &str,
        kind: &'static str,
        changed: Vec<String>,
        status: Option<serde_json::Value>,
    ) {
        let change = Change {
            id: self.next_id(),
            account: account.to_string(),
            kind,
            changed,
            status,
        };
        let unheard = {
            let tx = self.tx.read().unwrap_or_else(|p| p.into_inner());
            match tx.as_ref() {
                Some(tx) => tx.send(change).is_err(),
                None => false,
            }
        };
        if unheard {
            // The last listener left: give the ring back, unless one came meanwhile.
            let mut tx = self.tx.write().unwrap_or_else(|p| p.into_inner());
            if tx.as_ref().is_some_and(|t| t.receiver_count() == 0) {
                *tx = None;
            }
        }
    }
}

/// The process's feed.
pub fn feed() -> &'static Feed {
    static FEED: LazyLock<Feed> = LazyLock::new(|| Feed {
        tx: std::sync::RwLock::new(None),
        seq: AtomicU64::new(0),
    });
    &FEED
}

/// The list view of an account as JSON (what the feed and the desk show).
pub fn view(s: &AccountStatus) -> serde_json::Value {
    serde_json::to_value(s.summary()).unwrap_or(serde_json::Value::Null)
}

/// Applies `f` to `id`'s entry (if it exists) and publishes what changed.
pub fn update(map: &StatusMap, id: &str, f: impl FnOnce(&mut AccountStatus)) {
    let Some(mut e) = map.get_mut(id) else {
        return;
    };
    if !feed().listening() {
        f(&mut e);
        return;
    }
    let before = view(&e);
    f(&mut e);
    let after = view(&e);
    drop(e);
    let changed = diff(&before, &after);
    if !changed.is_empty() {
        feed().send(id, "changed", changed, Some(after));
    }
}

/// Publishes `id`'s entry as a whole (after an insert or a change made without [`update`]).
pub fn published(map: &StatusMap, id: &str) {
    if !feed().listening() {
        return;
    }
    let Some(after) = map.get(id).map(|e| view(&e)) else {
        return;
    };
    let changed = after
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    feed().send(id, "changed", changed, Some(after));
}

/// Publishes the removal of `id`.
pub fn removed(id: &str) {
    if feed().listening() {
        feed().send(id, "removed", Vec::new(), None);
    }
}

/// The top-level keys whose values differ.
fn diff(before: &serde_json::Value, after: &serde_json::Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let b = before.as_object().unwrap_or(&empty);
    let a = after.as_object().unwrap_or(&empty);
    let mut keys: Vec<String> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .collect();
    keys.extend(b.keys().filter(|k| !a.contains_key(*k)).cloned());
    keys
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// All accounts' status, shared by the actors and the API.
pub type StatusMap = Arc<DashMap<String, AccountStatus>>;

/// RFC 3339 UTC timestamp with milliseconds, e.g. `2026-11-28T18:40:00.123Z`.
pub fn rfc3339_now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_millis())
}

/// Formats unix seconds (civil-from-days, proleptic Gregorian).
pub fn rfc3339(secs: i64, millis: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_publishes_the_fields_that_changed() {
        let map: StatusMap = Default::default();
        map.insert(
            "a".into(),
            AccountStatus::new("a", Some(1), AccountState::Starting),
        );
        let mut rx = feed().subscribe();
        update(&map, "a", |s| s.outbox = Some(3));
        // Other tests in this process may publish too: find ours.
        let c = loop {
            let c = rx.try_recv().expect("a change was published");
            if c.account == "a" && c.kind == "changed" {
                break c;
            }
        };
        assert_eq!(c.changed, vec!["outbox".to_string()]);
        assert_eq!(c.status.unwrap()["outbox"], 3);
        update(&map, "a", |s| s.outbox = Some(3));
        assert!(
            std::iter::from_fn(|| rx.try_recv().ok()).all(|c| c.account != "a"),
            "no change, no event"
        );
    }

    #[test]
    fn the_feed_holds_its_ring_only_while_someone_listens() {
        let feed = Feed {
            tx: std::sync::RwLock::new(None),
            seq: AtomicU64::new(0),
        };
        feed.send("a", "changed", vec!["outbox".into()], None);
        assert!(!feed.holds_ring(), "a change nobody hears made the ring");
        assert!(!feed.listening());
        let mut rx = feed.subscribe();
        assert!(feed.listening());
        feed.send("a", "changed", vec!["outbox".into()], None);
        let c = rx.try_recv().unwrap();
        assert_eq!((c.account.as_str(), c.id), ("a", 2));
        drop(rx);
        feed.send("a", "removed", Vec::new(), None);
        assert!(
            !feed.holds_ring(),
            "the ring stays after its last listener left"
        );
        // A new listener gets a new ring and the changes from then on.
        let mut rx = feed.subscribe();
        feed.send("b", "changed", Vec::new(), None);
        assert_eq!(rx.try_recv().unwrap().account, "b");
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn session_forecast_is_two_days_after_the_login() {
        let s = SessionInfo::from_login(1_546_300_800);
        assert_eq!(s.logged_in_at, "2019-01-01T00:00:00.000Z");
        assert_eq!(s.expires_at_estimate, "2019-01-03T00:00:00.000Z");
    }

    #[test]
    fn rfc3339_known_points() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(1_546_300_800, 0), "2019-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_450_686_775, 999), "2015-12-21T08:32:55.999Z");
    }
}
