//! The WebQQ / SmartQQ client for one account, with no actors in it.

pub mod hash;
pub mod login_cli;

/// Errors of the protocol layer.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// Not built yet.
    #[error("not built yet")]
    NotYet,
}
