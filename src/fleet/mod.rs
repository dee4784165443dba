//! The fleet: one supervised actix actor per QQ account, with Login, Poller and Sender
//! children.
//!
//! ```text
//! accounts/*.toml ─watcher─▶ FleetSupervisor ─▶ Account ─┬─ Login   (QR / resume / relink)
//!                                 (1 s sweep            ├─ Poller  (poll2)
//!                                  rebuilds the dead)   └─ Sender  (durable outbox)
//! ```
//!
//! The process around it (the actix System, the Arbiters, the admin API, signals) is wired in
//! [`crate::run`], one floor up, so the actors never import what faces people.

pub mod account;
pub mod breaker;
pub mod crash;
pub mod gate;
pub mod handler;
pub mod handoff;
pub mod login;
#[cfg(test)]
mod login_tests;
pub mod messages;
pub mod notify;
pub mod phone;
pub mod poller;
pub mod sender;
pub mod status;
pub mod supervisor;
pub mod watcher;
pub mod webqq;

/// The account states live on the crate's floor (`crate::state`) so the store and the events
/// can name them without importing the actors.
pub use crate::state::AccountState;

use crate::store::StoreError;

/// Errors of the fleet layer.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The accounts folder is missing or unreadable.
    #[error("accounts folder {path}: {message}")]
    Accounts {
        path: std::path::PathBuf,
        message: String,
    },
    /// The admin API could not listen.
    #[error("cannot listen on {addr}: {message}")]
    Listen {
        addr: std::net::SocketAddr,
        message: String,
    },
    /// The in-process simulator failed to start.
    #[error("simulator: {0}")]
    Sim(String),
    /// The admin token file could not be read or created (the message names the file).
    #[error("{0}")]
    AdminToken(String),
    /// The runtime could not be built or a signal handler installed.
    #[error("runtime: {0}")]
    Runtime(String),
    /// The account's store refuses writes (a full disk, a read-only data directory): no
    /// message can be accepted until it recovers, which the account notices by itself.
    #[error("account `{id}` cannot accept messages now: its data directory refuses writes ({message}); it recovers by itself once the disk takes writes again")]
    StoreUnavailable { id: String, message: String },
    /// The accounts cannot fit in the open-file limit (the message says what to raise).
    #[error("{0}")]
    DoesNotFit(String),
    /// No account file with this id.
    #[error("no account `{0}`")]
    UnknownAccount(String),
    /// The account exists but is not running (invalid file, or shutting down).
    #[error("account `{0}` is not running")]
    NotRunning(String),
    /// Another shard runs the account (`--shard I/N`): ask that process.
    #[error("account `{id}` runs on shard {shard}/{count}, not in this process")]
    Elsewhere { id: String, shard: u32, count: u32 },
}

/// Debug hooks are enabled only with `QQFLEET_DEBUG_HOOKS=1` (tests of crash handling).
pub fn debug_hooks() -> bool {
    std::env::var("QQFLEET_DEBUG_HOOKS").is_ok_and(|v| v == "1")
}
