//! Named crash points for the crash matrix (issue 11; debug hooks, `QQFLEET_DEBUG_HOOKS=1`
//! only): with `QQFLEET_DEBUG_CRASH_AT=<point>` (or `<point>:<account>`), the process aborts
//! the first time an account (that account) reaches that point: no flush, no drain, as a
//! SIGKILL there would. `QQFLEET_DEBUG_CRASH_BEFORE_HANDLER=<account>` is the older name of
//! `before_handler:<account>`.
//!
//! Points that a hook cannot place better than the real thing (waiting for a scan, a send
//! or a contacts refresh on the wire, a hot-add) are reached in the tests by killing the
//! process while the simulator holds the request.

use std::sync::OnceLock;

/// Every named point, in the order an account meets them.
pub const POINTS: &[&str] = &[
    // check_sig answered, the scan's cookies saved; getvfwebqq and login2 not yet done.
    "after_scan",
    // A received message recorded (inbox, dedup key), its handler not yet run.
    "before_handler",
    // The handler ran; its replies not yet committed to the outbox (nor the inbox entry
    // marked done).
    "before_outbox_commit",
    // A send was answered; the answer not yet recorded (the message still at the head).
    "send_answered",
];

static HOOK: OnceLock<Option<(String, Option<String>)>> = OnceLock::new();

fn load() -> Option<(String, Option<String>)> {
    if !super::debug_hooks() {
        return None;
    }
    if let Ok(v) = std::env::var("QQFLEET_DEBUG_CRASH_AT") {
        let (point, account) = match v.split_once(':') {
            Some((p, a)) => (p.to_string(), Some(a.to_string())),
            None => (v.clone(), None),
        };
        if !POINTS.contains(&point.as_str()) {
            tracing::error!(%point, known = ?POINTS, "QQFLEET_DEBUG_CRASH_AT: unknown crash point; ignored");
            return None;
        }
        return Some((point, account));
    }
    std::env::var("QQFLEET_DEBUG_CRASH_BEFORE_HANDLER")
        .ok()
        .map(|a| ("before_handler".to_string(), Some(a)))
}

/// Aborts the process if the crash hook names this point (and account).
pub fn at(point: &'static str, account: &str) {
    debug_assert!(POINTS.contains(&point), "unlisted crash point {point}");
    if let Some((p, a)) = HOOK.get_or_init(load) {
        if p == point && a.as_deref().map_or(true, |a| a == account) {
            tracing::warn!(account, point, "debug hook: crashing here");
            std::process::abort();
        }
    }
}
