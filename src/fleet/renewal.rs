//! Renewal scans inside the scan window (`[scan] window`, `qqfleet run --scan-window`).
//!
//! A web login dies about 48 h after its QR scan (WEBQQ.md §11). When that forecast falls
//! outside the operator's window, the account asks for a fresh scan at the window's last
//! opening before the expiry ([`crate::scanwin::ScanWindow::renew_at`]; at once when that
//! opening has passed) while the old session keeps polling and sending. A second Login child
//! runs the QR login on a second connection; the account stays `online` with `renewing`
//! set and the code in `qr`. The new login2 makes the server end the old channel (§12:
//! the last login wins, the old poll gets a kick or 103): from the phone's confirmation on
//! that is expected, the old poller is let go and nothing is held `stopped`. When the new
//! login completes, the old Sender finishes its send in flight (bounded), and the account
//! switches to the new connection: its msg_id counter continues above the old one's, the
//! outbox and the incoming dedup window are the account's, not the session's, so no message
//! is sent or handled twice.
//!
//! This is a child module of `account` (it reads the Account's fields); the hooks in
//! `account.rs` are one line each.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::Account;
use crate::events::LoginMethod;
use crate::events::{emit, LoginFinished, ReconnectKind, ReconnectStarted};
use crate::fleet::login::Login;
use crate::fleet::messages::{Drain, LoginReport, Stop};
use crate::fleet::status::{rfc3339, QrInfo, SESSION_LIFETIME_SECS};
use crate::fleet::webqq::WebQq;
use crate::protocol::Session;
use crate::store::now_secs;

/// Login generations of renewal attempts carry this bit: the account's own generations
/// (one per teardown) never reach it, so a report says which login it belongs to.
const RENEW_GEN: u64 = 1 << 63;
/// Pause before asking again after a renewal scan failed (a code refused, a network error).
const RETRY_AFTER_SECS: i64 = 60;
/// How long the switch waits for the old session's send in flight.
const SWITCH_DRAIN: Duration = Duration::from_secs(3);

static NEXT: AtomicU64 = AtomicU64::new(1);

/// The account's renewal bookkeeping.
#[derive(Default)]
pub(super) struct Renewal {
    /// When the current login is to be renewed (unix seconds on the renewal clock); None
    /// without a window, or when the expiry falls inside it.
    due: Option<i64>,
    /// Forecast expiry of the current login.
    expiry: i64,
    /// No new attempt before this (after a failed one).
    not_before: i64,
    active: Option<Attempt>,
}

struct Attempt {
    gen: u64,
    login: Addr<Login>,
    client: Arc<dyn WebQq>,
    /// The phone confirmed: the new login2 is on its way and the old channel ends.
    confirmed: bool,
    /// The new login completed; the old sender is draining.
    switching: bool,
}

/// The renewal clock: the wall clock, plus (debug hook only) the seconds in the file
/// `QQFLEET_DEBUG_CLOCK_OFFSET` names, so a test can jump to the window together with the
/// simulator's clock.
pub(super) fn renewal_now(offset_file: Option<&std::path::Path>) -> i64 {
    let offset = offset_file
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or(0);
    now_secs() as i64 + offset
}

impl Account {
    fn window(&self) -> Option<crate::scanwin::ScanWindow> {
        self.cfg.scan_window.or(self.deps.scan_window)
    }

    /// After each login: when the next renewal is due (shown as `session.renew_at`).
    pub(super) fn plan_renewal(&mut self, logged_in_at: u64) {
        let expiry = (logged_in_at + SESSION_LIFETIME_SECS) as i64;
        let due = match self.window() {
            Some(w) if logged_in_at > 0 => w.renew_at(expiry, crate::scanwin::local_offset),
            _ => None,
        };
        self.renewal.due = due;
        self.renewal.expiry = expiry;
        self.status(|s| {
            if let Some(info) = s.session.as_mut() {
                info.renew_at = due.map(|t| rfc3339(t, 0));
            }
        });
    }

    /// True while the old channel is expected to end (kick, 103, lost sends): the account
    /// lets its old children go quietly instead of relinking or stopping.
    pub(super) fn renewal_expects_kick(&self) -> bool {
        self.renewal.active.as_ref().is_some_and(|a| a.confirmed)
    }

    /// True while the switch waits for the old sender: the watchdog must not restart it.
    pub(super) fn renewal_switching(&self) -> bool {
        self.renewal.active.as_ref().is_some_and(|a| a.switching)
    }

    /// Every tick while online: starts the renewal when its instant has come.
    /// How long until the renewal can be due, for the account's next tick (an idle account
    /// ticks only when something can be due). With the test clock (debug hook) the clock can
    /// jump at any time, so every second.
    /// A renewal login is under way (its QR waits, or it switches over).
    pub(super) fn renewal_active(&self) -> bool {
        self.renewal.active.is_some()
    }

    pub(super) fn renewal_wait(&self) -> Option<Duration> {
        let due = self.renewal.due?;
        if self.deps.clock_offset_file.is_some() {
            return Some(Duration::from_secs(1));
        }
        let now = renewal_now(None);
        let at = due.max(self.renewal.not_before);
        Some(Duration::from_secs(at.saturating_sub(now).max(1) as u64))
    }

    pub(super) fn renewal_tick(&mut self, ctx: &mut Context<Self>) {
        let Some(due) = self.renewal.due else {
            return;
        };
        if self.renewal.active.is_some() {
            return;
        }
        let now = renewal_now(self.deps.clock_offset_file.as_deref());
        if now < due || now >= self.renewal.expiry || now < self.renewal.not_before {
            return;
        }
        let Some(old) = self.client.as_ref().map(|c| c.session()) else {
            return;
        };
        // A fresh connection that continues the msg_id counter (like a QR login after a
        // logout): no secret of the old login goes into it.
        let fresh = Session {
            uin: old.uin,
            clientid: old.clientid,
            msg_id: old.msg_id,
            logged_out: true,
            ..Session::default()
        };
        let client = match self.connect(Some(fresh)) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(account = %self.id(), error = %e, "renewal: no client");
                self.renewal.not_before = now + RETRY_AFTER_SECS;
                return;
            }
        };
        emit(ReconnectStarted {
            account: self.id(),
            kind: ReconnectKind::Relogin,
            reason: "renewal scan in the scan window",
        });
        let gen = RENEW_GEN | NEXT.fetch_add(1, Ordering::Relaxed);
        let login = Login {
            gen,
            method: LoginMethod::Qr,
            client: client.clone(),
            qq: self.cfg.qq,
            qr_check: Duration::from_secs(self.cfg.supervision.qr_check_secs),
            account: ctx.address(),
            // A renewal scan is a login like any other: it takes its turn at the fleet's gate.
            gate: self.deps.gate.clone(),
            slot: self.deps.gate.try_enter(),
        }
        .start();
        self.renewal.active = Some(Attempt {
            gen,
            login,
            client,
            confirmed: false,
            switching: false,
        });
        self.status(|s| s.renewing = true);
    }

    /// Ends a renewal attempt (a teardown, a shutdown, a failure): its Login stops, its code
    /// leaves the status.
    pub(super) fn cancel_renewal(&mut self) {
        if let Some(a) = self.renewal.active.take() {
            a.login.do_send(Stop);
            self.status(|s| {
                s.renewing = false;
                s.qr = None;
                s.qr_png = None;
                s.qrsig = None;
                s.qr_at = None;
            });
        }
    }

    /// Takes the reports of renewal logins; hands back any other report.
    pub(super) fn renewal_report(
        &mut self,
        r: LoginReport,
        ctx: &mut Context<Self>,
    ) -> Option<LoginReport> {
        let gen = match &r {
            LoginReport::QrReady { gen, .. }
            | LoginReport::Confirmed { gen }
            | LoginReport::Scanned { gen }
            | LoginReport::Admitted { gen }
            | LoginReport::Queued { gen }
            | LoginReport::Done { gen, .. }
            | LoginReport::Failed { gen, .. } => *gen,
        };
        if gen & RENEW_GEN == 0 {
            return Some(r);
        }
        if self.renewal.active.as_ref().map(|a| a.gen) != Some(gen) {
            return None;
        }
        match r {
            LoginReport::QrReady { png, qrsig, .. } => self.renewal_qr(png, qrsig),
            LoginReport::Confirmed { .. } => {
                if let Some(a) = self.renewal.active.as_mut() {
                    a.confirmed = true;
                }
            }
            // The old session still serves and stays the saved one until the switch: a crash
            // before it resumes the old session (or scans anew if the server dropped it).
            LoginReport::Scanned { .. } => {}
            // Waiting at (or let through) the fleet's login gate: the account stays online.
            LoginReport::Admitted { .. } | LoginReport::Queued { .. } => {}
            LoginReport::Done { .. } => self.renewal_switch(ctx),
            LoginReport::Failed {
                reason, rejected, ..
            } => {
                emit(LoginFinished {
                    account: self.id(),
                    method: LoginMethod::Qr,
                    ok: false,
                    reason: Some(&reason),
                });
                let confirmed = self.renewal_expects_kick();
                self.cancel_renewal();
                self.renewal.not_before = renewal_now(self.deps.clock_offset_file.as_deref())
                    + if rejected { RETRY_AFTER_SECS } else { 5 };
                if confirmed {
                    // The old channel may be gone already: the ordinary way back.
                    self.reconnect(ctx, LoginMethod::Relink);
                }
            }
        }
        None
    }

    /// A renewal QR code: shown like any other (terminal, webhook, API, desk), while the
    /// account stays `online`.
    fn renewal_qr(&mut self, png: Vec<u8>, qrsig: String) {
        let (url, expires_at) = self.announce_qr(&png);
        let png = Arc::new(png);
        self.status(|s| {
            s.renewing = true;
            s.qr_png = Some(png);
            s.qrsig = Some(qrsig);
            s.qr_at = Some(std::time::Instant::now());
            s.qr = url.map(|url| QrInfo { url, expires_at });
        });
    }

    /// The new login is complete: let the old sender finish, then serve on the new one.
    fn renewal_switch(&mut self, ctx: &mut Context<Self>) {
        if let Some(a) = self.renewal.active.as_mut() {
            a.switching = true;
        }
        if let Some(p) = self.poller.take() {
            p.do_send(Stop);
        }
        let sender = self.sender.take();
        let drained = async move {
            if let Some(s) = sender {
                let _ = s
                    .send(Drain {
                        deadline: SWITCH_DRAIN,
                    })
                    .await;
                s.do_send(Stop);
            }
        };
        ctx.spawn(
            drained
                .into_actor(self)
                .map(|_, act, ctx| act.renewal_finish(ctx)),
        );
    }

    fn renewal_finish(&mut self, ctx: &mut Context<Self>) {
        let Some(a) = self.renewal.active.take() else {
            return;
        };
        if self.shutting_down {
            return;
        }
        let old_msg_id = self.client.as_ref().map_or(0, |c| c.session().msg_id);
        let mut session = a.client.session();
        // Above every id the old session used, its last sends included.
        session.msg_id = session.msg_id.max(old_msg_id);
        emit(LoginFinished {
            account: self.id(),
            method: LoginMethod::Qr,
            ok: true,
            reason: None,
        });
        if let Err(e) = self.deps.store.save_session(self.id(), &session) {
            tracing::error!(account = %self.id(), error = %e, "session not saved");
        }
        self.teardown();
        self.status(|s| {
            s.renewing = false;
            s.qr = None;
            s.qr_png = None;
            s.qrsig = None;
            s.qr_at = None;
        });
        match self.connect(Some(session)) {
            Ok(c) => {
                self.client = Some(c);
                self.go_online(ctx);
            }
            Err(e) => {
                tracing::warn!(account = %self.id(), error = %e, "renewal: switch failed");
                self.login(ctx, LoginMethod::Resume);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_renewal_clock_reads_its_offset_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("offset");
        let base = renewal_now(None);
        std::fs::write(&f, "7200\n").unwrap();
        let ahead = renewal_now(Some(&f));
        assert!(
            (7200..7200 + 5).contains(&(ahead - base)),
            "{}",
            ahead - base
        );
        std::fs::write(&f, "not a number").unwrap();
        assert!(renewal_now(Some(&f)) - base < 5);
    }
}
