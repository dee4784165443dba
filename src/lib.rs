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
//! | [`protocol`] | the WebQQ client for one account, with no actors: `endpoints` (the endpoint table), `client` (the account's session and poll; its children `client_request.rs`: how a request is built and sent, with the account's cookies, and the poll's parts kept between polls; `client_login.rs`: the login steps; `client_calls.rs`: send, contacts), `pool` (the HTTP connection pool every account shares, one per runtime, no cookie store: why that is sound), `poll_conn` (each account's own long-poll connection, which holds no buffer while the server holds the poll), `jar` (the account's cookie jar, one short string per cookie, saved in cookie_store's JSON form), `session` (what is saved to resume), `ptlogin` (the `ptuiCB` callbacks), `events` (the poll2 event catalogue), `content` (message codec and 720-byte splitter), `contacts`, `retcode` (the policy table), `hash` (hash33, bkn, time33, friend-list hash), `error`, `login_cli` (`qqfleet login`) |
//! | [`sim`] | the simulator (`qqfleet sim`): `server` (accept loop), `routes` (every real host under a path prefix, the control API under `/sim/`), `ptlogin`, `qrbook` (the QR codes, by qrsig or token, no small cap), `channel`, `info`, `control`, `auth` (the §14.3 checks), `world` (accounts, generated contacts, sessions), `events`, `content`, `qr`, `faults`, `clock`, `config`, `state`, `request` |
//! | [`fleet`] | the actors, one file each: `supervisor` (FleetSupervisor), `account` (the state machine; its children `handlers` (the actor's messages, in `account_handlers.rs`), `incoming` (record, handle, store faults, in `account_incoming.rs`) and `renewal` (renewal scans inside the scan window)), `gate` (the fleet-wide bound on logins in progress and pace of new QR codes), `login`, `poller`, `sender`, `watcher` (`accounts/` hot-add); `breaker` (the fleet-wide outage breaker every connection goes through); `handoff` (accounts moving between shards); `crash` (named crash points of the debug hooks); `messages` (every actor message), `status` (the snapshot the API reads, and the feed of its changes), `handler` (echo, log, and the `MakeHandler` seam the layers above plug into), `webqq` (the seam to the client), `phone` (the demo phone of `--sim`) |
//! | [`state`] | `AccountState`: the one word per account state, on the floor so the store, the events and the actors share it |
//! | [`shard`] | `--shard I/N`: the owner of each account among N processes (jump hash of a fixed FNV-1a of the id) |
//! | [`store`] | `trait Store` and its sled implementation: session, msg_id counter, outbox, dedup window, contacts; its children `keys` (in `store_keys.rs`): the key convention every tree follows and the byte forms of keys and values, and `named` (in `store_named.rs`): `NamedTree`, the trees of the layers above, looked up on every use |
//! | [`transfer`] | one account's whole durable state as one checked file: `qqfleet account export/import`, the shard handoff |
//! | [`group_commit`] | one flush shared by the durable writes of several accounts (the store's group commit), waited for by a blocked thread or, without holding one, by an actor |
//! | [`fdlimit`] | the open-file limit: raised to the hard limit at start, a fleet that cannot fit refused |
//! | [`limits`] | governor limiters with named quotas: the friend-list guard, sends per account and per target |
//! | [`scanwin`] | the scan window (`[scan] window`, `--scan-window`): its parsing and the arithmetic of a renewal's instant, in local time |
//! | [`config`] | account files (`accounts/<id>.toml`), their validation and `qqfleet check` |
//! | [`events`] | typed events; each `emit()` writes its log line and moves its Prometheus metrics: `registry` (the process-wide registry, `/metrics` text), `per_account` (every account's own series, kept compactly and exported by one collector) |
//! | [`onebot`] | OneBot v11 for `handler = "onebot"` accounts, beside `api`: `ids` (stable user/group ids, message ids), `message` (CQ codes, segments), `event` (event shapes, the durable per-account queue), `action` (the API), `delivery` (delivery loop, webhook), `ws` (forward and reverse WebSockets), `http` (routes, access token) |
//! | [`api`] | the admin HTTP server: `/healthz`, `/api/accounts`, `/metrics`; `auth` (the admin bearer token, and the desk's cookie); `ready` (`/readyz`); `events` (`/api/events`, server-sent events of the status snapshot's changes), `desk` (`/desk`, the operator's page, embedded from `src/api/desk/`) |
//! | [`run`] | `qqfleet run`: the process wiring (store, actix System, one Arbiter per core, supervisor, admin API with the OneBot routes merged, watcher, `--sim`, signals), above both the actors and the API |
//! | [`status_cli`] | `qqfleet status` (the fleet as a table or JSON; `--watch` follows `/api/events`; `--check` for monitors) and `qqfleet qr ID` (a QR code in the terminal), clients of the admin API |
//! | [`heap`] | the process's allocator (mimalloc) and its count of live bytes, which mimalloc does not keep; zeroed blocks of 256 KiB or more mapped apart, so a table never written costs no memory |
//! | [`memtrim`] | gives freed heap memory back to the system twice a minute (each of the process's threads collecting its own heap) and reports the heap's live and kept-free bytes |
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
pub mod heap;
pub mod limits;
pub mod logging;
pub mod memtrim;
pub mod onebot;
pub mod protocol;
pub mod run;
pub mod scanwin;
pub mod shard;
pub mod sim;
pub mod state;
pub mod status_cli;
pub mod store;
pub mod transfer;
