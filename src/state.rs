//! Account states: one word each, used by the API, the logs and the metrics.
//!
//! Only the Account actor changes an account's state; its children report to it.

use serde::{Deserialize, Serialize};

/// The state of one account, as operators see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountState {
    /// The actor exists and is deciding how to log in (resume or QR).
    Starting,
    /// A QR code is waiting to be scanned on the phone.
    AwaitingScan,
    /// Scanned (or resuming): check_sig, getvfwebqq, login2 and the warm-up are running.
    LoggingIn,
    /// Polling and sending.
    Online,
    /// A failure happened; the account waits out its backoff before trying again.
    Backoff,
    /// Too many failures in a row: waits for the account file to change or an operator.
    Parked,
    /// Kicked, logged out or disabled: waits for an operator.
    Stopped,
    /// The account file is invalid; the error says why.
    Invalid,
    /// Another shard runs it (`qqfleet run --shard I/N`): read and validated here, never
    /// started; `shard` in the API says which one.
    Elsewhere,
}

impl AccountState {
    /// Every state, in the order dashboards list them.
    pub const ALL: [AccountState; 9] = [
        AccountState::Starting,
        AccountState::AwaitingScan,
        AccountState::LoggingIn,
        AccountState::Online,
        AccountState::Backoff,
        AccountState::Parked,
        AccountState::Stopped,
        AccountState::Invalid,
        AccountState::Elsewhere,
    ];

    /// The one word used by the API, the logs and the `state` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountState::Starting => "starting",
            AccountState::AwaitingScan => "awaiting_scan",
            AccountState::LoggingIn => "logging_in",
            AccountState::Online => "online",
            AccountState::Backoff => "backoff",
            AccountState::Parked => "parked",
            AccountState::Stopped => "stopped",
            AccountState::Invalid => "invalid",
            AccountState::Elsewhere => "elsewhere",
        }
    }
}

impl std::fmt::Display for AccountState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
