//! The read-only status snapshot the admin API serves: one entry per account, written only by
//! that account's actor (and by the FleetSupervisor for accounts whose file is invalid).
//!
//! A `DashMap` so HTTP handlers on the tokio pool read it without messaging 1,000 actors;
//! never hold one of its references across an `.await`.

use std::collections::VecDeque;
use std::sync::Arc;

use dashmap::DashMap;
use serde::Serialize;

use super::AccountState;

/// Transitions kept per account for `GET /api/accounts/{id}`.
pub const HISTORY: usize = 32;

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
        }
    }

    /// The list view: without history.
    pub fn summary(&self) -> AccountStatus {
        AccountStatus {
            history: None,
            ..self.clone()
        }
    }
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
    fn rfc3339_known_points() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(1_546_300_800, 0), "2019-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_450_686_775, 999), "2015-12-21T08:32:55.999Z");
    }
}
