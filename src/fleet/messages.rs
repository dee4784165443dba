//! Every actor message of the fleet, in one place.
//!
//! Children report to their Account; only the Account changes the account's state. Each
//! child report carries the `gen` (generation) of the child that sent it: when the Account
//! tears its children down and builds new ones, late reports from the old ones are ignored.

use std::time::Duration;

use actix::prelude::*;

use super::handler::Decoded;
use super::FleetError;
use crate::config::{AccountFile, ConfigError};
use crate::events::LoginMethod;
use crate::protocol::{Action, Target};
use crate::store::OutMsg;

// ---- to the FleetSupervisor -------------------------------------------------------------

/// An account file appeared or changed (from the watcher).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Upsert {
    pub id: String,
    /// Hash of the file's bytes: an unchanged file is not restarted.
    pub fingerprint: u64,
    pub file: Result<AccountFile, ConfigError>,
}

/// An account file disappeared.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Remove {
    pub id: String,
}

/// Operator restart: clears `parked`/`stopped` and starts the account again.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), FleetError>")]
pub struct Restart {
    pub id: String,
}

/// Accept an outgoing message into an account's outbox (admin API).
#[derive(Message, Debug)]
#[rtype(result = "Result<OutMsg, FleetError>")]
pub struct EnqueueFor {
    pub id: String,
    pub target: Target,
    pub text: String,
}

/// Ask an account to refresh its contacts (admin API; goes through the friend-list limiter).
#[derive(Message, Debug)]
#[rtype(result = "Result<(), FleetError>")]
pub struct RefreshContactsFor {
    pub id: String,
}

/// Debug only: make an account's actor panic (tests of panic containment).
#[derive(Message, Debug)]
#[rtype(result = "Result<(), FleetError>")]
pub struct PanicFor {
    pub id: String,
}

/// An operator's decision on a held outgoing message (admin API).
#[derive(Message, Debug)]
#[rtype(result = "Result<bool, FleetError>")]
pub struct ReleaseHeldFor {
    pub id: String,
    pub seq: u64,
    /// true: back into the outbox; false: drop it.
    pub resend: bool,
}

/// An Account actor is gone (its struct was dropped): sent by its [`DeathNotice`]. The
/// supervisor rebuilds it if it still expected it to run (a panic ends an actix actor for
/// good), so no timer has to sweep every account to find the dead ones.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AccountGone {
    pub id: String,
}

/// Held by an Account; dropping it (a panic unwinding the actor, or a normal stop) tells the
/// supervisor. A normal stop is told too: the supervisor knows it asked for it.
pub struct DeathNotice {
    id: String,
    to: Recipient<AccountGone>,
}

impl DeathNotice {
    pub fn new(id: &str, to: Recipient<AccountGone>) -> DeathNotice {
        DeathNotice {
            id: id.to_string(),
            to,
        }
    }
}

impl Drop for DeathNotice {
    fn drop(&mut self) {
        self.to.do_send(AccountGone {
            id: std::mem::take(&mut self.id),
        });
    }
}

/// Stop every account gracefully (SIGINT/SIGTERM).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ShutdownFleet;

// ---- to an Account ----------------------------------------------------------------------

/// Accept an outgoing message (flushed before the reply).
#[derive(Message, Debug)]
#[rtype(result = "Result<OutMsg, FleetError>")]
pub struct Enqueue {
    pub target: Target,
    pub text: String,
}

/// An operator's decision on a held outgoing message; answers whether it existed.
#[derive(Message, Debug)]
#[rtype(result = "Result<bool, FleetError>")]
pub struct ReleaseHeld {
    pub seq: u64,
    pub resend: bool,
}

/// Refresh the contacts cache now (still subject to the friend-list limiter).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct RefreshContacts;

/// Panic inside the actor (debug builds of tests only reach this through the API gate).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Panic;

/// Stop polling, finish or requeue the send in flight, flush, then stop.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Shutdown;

/// The account file was removed: shut down like [`Shutdown`], then log out (WEBQQ.md §10)
/// within a short deadline, keep what is left of the session, and stop.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Retire;

/// From the Login child.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub enum LoginReport {
    /// A QR code is ready to be scanned.
    QrReady {
        gen: u64,
        png: Vec<u8>,
        qrsig: String,
    },
    /// The phone confirmed: check_sig, getvfwebqq and login2 are running.
    Confirmed { gen: u64 },
    /// check_sig is done: the scan's cookies can be saved (the Login waits for this to be
    /// handled before it goes on).
    Scanned { gen: u64 },
    /// The attempt got its slot of the fleet-wide login gate after waiting for it.
    Admitted { gen: u64 },
    /// The attempt gave its slot back (its QR code expired unscanned) and waits again.
    Queued { gen: u64 },
    /// Logged in.
    Done { gen: u64, method: LoginMethod },
    /// The attempt failed.
    Failed {
        gen: u64,
        method: LoginMethod,
        reason: String,
        /// The server said no (dead session, wrong QQ number), as opposed to a transport
        /// problem worth retrying the same way.
        rejected: bool,
    },
}

/// What the Poller must do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollDirective {
    /// Poll again (after the given pause).
    Continue(Duration),
    /// Stop: the Account is reconnecting or stopping.
    Stop,
}

/// From the Poller. Sent with `send().await`, so events reach the handler in order and the
/// next poll waits for the Account's decision.
#[derive(Message, Debug)]
#[rtype(result = "PollDirective")]
pub enum PollReport {
    /// The poll answered idle (102 / empty 0).
    Idle { gen: u64 },
    /// Events arrived, answered `at` (their wait for the handler counts from there).
    Events {
        gen: u64,
        events: Vec<Decoded>,
        at: std::time::Instant,
    },
    /// A non-zero retcode with the client's suggested action.
    Retcode {
        gen: u64,
        retcode: i64,
        action: Action,
    },
    /// Several transport errors in a row.
    Failed { gen: u64, reason: String },
}

/// From the Sender.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub enum SenderReport {
    /// The outbox changed size.
    Depth { gen: u64, depth: usize },
    /// A send failed because the session is gone: reconnect.
    SessionLost { gen: u64, reason: String },
    /// An outgoing message is finished: `delivered`, `uncertain` or `held` (for the handler,
    /// whatever the generation: the outcome is final).
    Outcome { seq: u64, result: &'static str },
}

/// Re-handle inbox entries left by a crash (sent by the Account to itself at start).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ReplayInbox;

// ---- to a Sender -------------------------------------------------------------------------

/// Something was added to the outbox: try to send.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Wake;

/// The account's own message came back in poll2 (WEBQQ.md §5.4): what the Sender needs to
/// confirm an uncertain send. A friend echo carries no recipient (`source` is `None`); a
/// group or discussion echo names its conversation (`gid`, `did`).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct SelfEcho {
    pub kind: super::handler::Kind,
    pub source: Option<u64>,
    pub text: String,
}

/// Stop sending; resolves once no send is in flight (or after the deadline; the message
/// stays in the outbox and is sent after the restart).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Drain {
    pub deadline: Duration,
}

// ---- to any child ------------------------------------------------------------------------

/// Stop now (an in-flight request is dropped).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Stop;
