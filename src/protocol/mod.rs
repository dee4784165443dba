//! The WebQQ / SmartQQ client for one account, with no actors in it.
//!
//! The public names re-exported here are the contract the fleet builds on:
//!
//! * [`Client`]: login (`fetch_qr` → `check_qr` → `complete_login`), `resume`, `relink`,
//!   `probe`, `poll`, `send`, `contacts`, `session`.
//! * [`Session`]: the serializable value to persist and resume from.
//! * [`PollEvent`] / [`PollResult`] / [`Action`]: what poll2 said and what to do.
//! * [`RetcodeTable`] / [`RetcodeOverrides`]: the retcode policy, overridable in config.
//! * [`ProtocolError`]: one error type carrying the endpoint.
//!
//! Module map: `endpoints` (hosts, paths, Referer/Origin), `ptlogin` (ptuiCB decoding),
//! `client` (HTTP and state), `pool` (the connections every account shares), `poll_conn` (the
//! long poll's own connection), `jar` (the cookie jar), `cookie_cache` (the jar's `Cookie` header, reused), `events`
//! (§5.3 catalogue), `content` (§7 codec and splitter), `contacts` (§6 snapshot), `retcode`
//! (policy table), `error`, `session`, `hash` (§4).

pub mod client;
pub mod contacts;
pub mod content;
mod cookie_cache;
pub mod endpoints;
pub mod error;
pub mod events;
pub mod hash;
mod jar;
pub mod login_cli;
mod poll_conn;
pub mod pool;
pub mod ptlogin;
pub mod retcode;
pub mod session;

pub use client::{
    classify_poll, classify_send, decode_json_body, Client, ClientOptions, PollResult, Qr,
    QrStatus, SendOutcome, SessVia, Target,
};
pub use contacts::{
    Category, Contacts, Discu, DiscuMember, Friend, Group, GroupMember, OnlineBuddy, Recent,
    SelfInfo,
};
pub use content::{Content, Font, Part};
pub use endpoints::{Endpoint, Endpoints, Host};
pub use error::ProtocolError;
pub use events::{BuddyMessage, DiscuMessage, GroupMessage, PollEvent, SessMessage};
pub use retcode::{Action, ActionKind, RetcodeOverrides, RetcodeTable};
pub use session::Session;
