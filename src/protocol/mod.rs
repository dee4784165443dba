//! The WebQQ / SmartQQ client for one account, with no actors in it.
//!
//! The public names re-exported here are the contract the fleet builds on.

pub mod client;
pub mod hash;
pub mod login_cli;

pub use client::{
    Action, Client, Contacts, Endpoints, PollEvent, PollResult, ProtocolError, Qr, QrStatus,
    SendOutcome, Session, Target,
};
