//! # qqfleet
//!
//! Runs a fleet of QQ bot accounts over the WebQQ / SmartQQ web protocol (w.qq.com) from one
//! process, and ships a faithful simulator of the WebQQ servers, which closed on 2019-01-01.
//!
//! # Layout
//!
//! Where to look first: a request is built in [`protocol::endpoints`] (hosts, paths, Referer,
//! Origin) and [`protocol::client`]; a retcode is decided in [`protocol::retcode`] (one table);
//! state is saved in [`store`] (sled, behind `trait Store`); an account's state changes only in
//! [`fleet::account`]; every log line and metric of an event is written in [`events`].
//!
//! | module | owns |
//! |---|---|
//! | [`protocol`] | the WebQQ client for one account, with no actors: `endpoints` (the endpoint table), `client` (login steps, poll, send, contacts over one reqwest client and cookie jar), `session` (what is saved to resume), `ptlogin` (the `ptuiCB` callbacks), `events` (the poll2 event catalogue), `content` (message codec and 720-byte splitter), `contacts`, `retcode` (the policy table), `hash` (hash33, bkn, time33, friend-list hash), `error`, `login_cli` (`qqfleet login`) |
//! | [`sim`] | the simulator (`qqfleet sim`): `server` (accept loop), `routes` (every real host under a path prefix, the control API under `/sim/`), `ptlogin`, `qrbook` (the QR codes, by qrsig or token, no small cap), `channel`, `info`, `control`, `auth` (the §14.3 checks), `world` (accounts, generated contacts, sessions), `events`, `content`, `qr`, `faults`, `clock`, `config`, `state`, `request` |
//! | [`fleet`] | the actors, one file each: `supervisor` (FleetSupervisor), `account` (the state machine), `gate` (the fleet-wide bound on logins in progress and pace of new QR codes), `login`, `poller`, `sender`, `watcher` (`accounts/` hot-add); `messages` (every actor message), `status` (the snapshot the API reads), `handler` (echo, log), `webqq` (the seam to the client), `phone` (the demo phone of `--sim`) |
//! | [`state`] | `AccountState`: the one word per account state, on the floor so the store, the events and the actors share it |
//! | [`store`] | `trait Store` and its sled implementation: session, msg_id counter, outbox, dedup window, contacts |
//! | [`group_commit`] | one flush shared by the durable writes of several accounts (the store's group commit) |
//! | [`fdlimit`] | the open-file limit: raised to the hard limit at start, a fleet that cannot fit refused |
//! | [`limits`] | governor limiters with named quotas: the friend-list guard, sends per account and per target |
//! | [`config`] | account files (`accounts/<id>.toml`), their validation and `qqfleet check` |
//! | [`events`] | typed events; each `emit()` writes its log line and moves its Prometheus metrics |
//! | [`api`] | the admin HTTP server: `/healthz`, `/api/accounts`, `/metrics`; `auth` (the admin bearer token) |
//! | [`run`] | `qqfleet run`: the process wiring (store, actix System, one Arbiter per core, supervisor, admin API, watcher, `--sim`, signals), above both the actors and the API |
//! | [`logging`] | tracing setup (text or JSON) shared by every subcommand |
//!
//! The binary `qqfleet` (`src/main.rs`) is thin: it parses the command line and calls into
//! these modules. More in `docs/ARCHITECTURE.md`.

pub mod api;
pub mod config;
pub mod events;
pub mod fdlimit;
pub mod fleet;
pub mod group_commit;
pub mod limits;
pub mod logging;
pub mod protocol;
pub mod run;
pub mod sim;
pub mod state;
pub mod store;
