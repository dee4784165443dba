//! `/readyz`: 200 once every account this process owns is past `starting`.
//!
//! Kubernetes sends traffic (and, in a rolling update, moves on to the next pod) only to a
//! ready pod. Accounts run elsewhere, invalid ones and accounts held back waiting for their
//! handoff from another shard (which waits on another pod) do not count. Open like `/healthz`:
//! it says nothing about any account.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::fleet::status::StatusMap;
use crate::state::AccountState;

/// What `/readyz` looks at.
#[derive(Clone)]
pub struct Readiness {
    status: StatusMap,
    /// The accounts found in the folder at start; each must have shown up in the status.
    expected: Arc<Mutex<Option<HashSet<String>>>>,
    /// Latched once everything was ready (later trouble is for the liveness probe and the
    /// alerts, not a reason to take the pod out of its Service).
    ready: Arc<AtomicBool>,
}

impl Readiness {
    pub fn new(status: StatusMap) -> Readiness {
        Readiness {
            status,
            expected: Default::default(),
            ready: Default::default(),
        }
    }

    /// The ids of the first scan of the accounts folder (call once it was handed over).
    pub fn expect(&self, ids: impl IntoIterator<Item = String>) {
        *self.expected.lock().unwrap_or_else(|p| p.into_inner()) = Some(ids.into_iter().collect());
    }

    /// Whether every owned account is past `starting`; why not, if not.
    pub fn check(&self) -> Result<(), String> {
        if self.ready.load(Ordering::Relaxed) {
            return Ok(());
        }
        let expected = self.expected.lock().unwrap_or_else(|p| p.into_inner());
        let Some(expected) = expected.as_ref() else {
            return Err("accounts folder not read yet".into());
        };
        let missing = expected
            .iter()
            .filter(|id| !self.status.contains_key(*id))
            .count();
        let starting = self
            .status
            .iter()
            .filter(|e| e.state == AccountState::Starting && !e.waiting_handoff)
            .count();
        if missing + starting > 0 {
            return Err(format!("{} accounts still starting", missing + starting));
        }
        self.ready.store(true, Ordering::Relaxed);
        Ok(())
    }
}

/// The `/readyz` route.
pub fn router(r: Readiness) -> Router {
    Router::new().route("/readyz", get(readyz)).with_state(r)
}

async fn readyz(State(r): State<Readiness>) -> (StatusCode, String) {
    match r.check() {
        Ok(()) => (StatusCode::OK, "ready\n".into()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::status::AccountStatus;

    #[test]
    fn ready_once_every_owned_account_is_past_starting() {
        let status: StatusMap = Default::default();
        let r = Readiness::new(status.clone());
        assert!(r.check().unwrap_err().contains("not read yet"));
        r.expect(["a".to_string(), "b".to_string()]);
        assert!(r.check().unwrap_err().contains("2 accounts"));
        status.insert(
            "a".into(),
            AccountStatus::new("a", Some(1), AccountState::Starting),
        );
        status.insert(
            "b".into(),
            AccountStatus::new("b", Some(2), AccountState::AwaitingScan),
        );
        assert!(r.check().unwrap_err().contains("1 accounts"));
        // Elsewhere and invalid accounts, and one waiting on another shard's handoff, do not
        // hold the pod back.
        status.insert(
            "x".into(),
            AccountStatus::new("x", None, AccountState::Elsewhere),
        );
        status.insert(
            "y".into(),
            AccountStatus::new("y", None, AccountState::Invalid),
        );
        status.get_mut("a").unwrap().waiting_handoff = true;
        r.check().unwrap();
        // Latched: later trouble is for liveness and alerts.
        status.get_mut("a").unwrap().waiting_handoff = false;
        r.check().unwrap();
    }
}
