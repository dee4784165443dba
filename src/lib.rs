//! # qqfleet
//!
//! Runs a fleet of QQ bot accounts over the WebQQ / SmartQQ web protocol (w.qq.com) from one
//! process, and ships a faithful simulator of the WebQQ servers, which closed on 2019-01-01.
//!
//! # Layout
//!
//! | module | owns |
//! |---|---|
//! | [`protocol`] | the WebQQ client for one account, with no actors: endpoint table, login steps, poll, send, contacts, [`protocol::hash`] (hash33, bkn, time33, friend-list hash), content codec, retcode policy |
//! | [`sim`] | the simulator (`qqfleet sim`): every real host under a path prefix, the world (accounts, generated contacts, sessions), ptlogin, channel, info API, control API under `/sim/`, faults, clock |
//! | [`fleet`] | the actors, one file each: supervisor, account, login, poller, sender, watcher, and every actor message |
//! | [`store`] | `trait Store` and its sled implementation: sessions, msg_id counters, outbox, dedup window, contacts |
//! | [`limits`] | governor limiters with named quotas (friend-list guard, sends per account and per target) |
//! | [`config`] | account files (`accounts/<id>.toml`) and their validation |
//! | [`events`] | typed events; each `emit()` writes its log line and moves its metrics |
//! | [`api`] | the admin HTTP server: `/healthz`, `/api/accounts`, `/metrics` |
//! | [`logging`] | tracing setup (human or JSON) shared by every subcommand |
//!
//! The binary `qqfleet` (`src/main.rs`) is thin: it parses the command line and calls into
//! these modules.

pub mod api;
pub mod config;
pub mod events;
pub mod fleet;
pub mod limits;
pub mod logging;
pub mod protocol;
pub mod sim;
pub mod store;
