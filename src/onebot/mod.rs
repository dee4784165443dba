//! OneBot v11 for every account with `handler = "onebot"`: one bot per account, all served
//! from the one `qqfleet run` process (docs/ONEBOT.md).
//!
//! ```text
//! poll2 ─▶ Account ─inbox─▶ BotHandler ─▶ EventQueue (sled, per account, bounded)
//!                                              │ delivery: one task per bot
//!                    ┌─────────────────────────┼──────────────────────────┐
//!             forward WS (/ws, /ws/event)   reverse WS (universal)   HTTP POST webhook
//! bot ─▶ HTTP API / WS frames ─▶ action ─▶ EnqueueFor (durable outbox) ─▶ {"message_id"}
//! ```
//!
//! Files: [`ids`] (stable user/group ids, message ids), [`message`] (CQ codes and segments),
//! [`event`] (event shapes and the durable queue), [`action`] (the API), [`delivery`] (the
//! delivery loop and the webhook), [`ws`] (WebSocket connections, forward and reverse),
//! [`http`] (the routes on the admin listener and the access-token check).
//!
//! A received message leaves the account's inbox only once its event is flushed into the
//! bot's queue (same sled database, keyed by the inbox seq so a replay overwrites rather than
//! duplicates), and leaves the queue only when a bot took it: a webhook answered 2xx or the
//! frame was written to a connected WebSocket.

pub mod action;
pub mod delivery;
pub mod event;
pub mod http;
pub mod ids;
pub mod message;
pub mod ws;

use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use actix::Addr;
use dashmap::DashMap;
use tokio::sync::{mpsc, Notify};

use crate::config::{AccountFile, MessageFormat, OneBotConfig};
use crate::events::{emit, OneBotEventQueued};
use crate::fleet::handler::{Handler, Incoming, MakeHandler, Reply};
use crate::fleet::status::StatusMap;
use crate::fleet::supervisor::FleetSupervisor;
use crate::protocol::Contacts;
use crate::store::{SledStore, Store, StoreError};

pub use http::router;

/// Errors of the OneBot layer.
#[derive(Debug, thiserror::Error)]
pub enum OneBotError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A fleet-wide default from the command line is unusable (names the flag).
    #[error("{flag}: {message}")]
    Flag { flag: &'static str, message: String },
}

/// Fleet-wide defaults of every onebot account (`qqfleet run --onebot-*`).
#[derive(Clone, Debug, Default)]
pub struct Defaults {
    pub ws_reverse_url: Option<String>,
    pub http_post_url: Option<String>,
    pub access_token: Option<String>,
}

impl Defaults {
    /// Checks and reads the command-line defaults.
    pub fn from_args(
        ws_reverse: Option<&str>,
        http_post: Option<&str>,
        token_file: Option<&std::path::Path>,
    ) -> Result<Defaults, OneBotError> {
        if let Some(u) = ws_reverse {
            crate::config::check_url(u, &["ws"]).map_err(|message| OneBotError::Flag {
                flag: "--onebot-ws-reverse",
                message,
            })?;
        }
        if let Some(u) = http_post {
            crate::config::check_url(u, &["http", "https"]).map_err(|message| {
                OneBotError::Flag {
                    flag: "--onebot-http-post",
                    message,
                }
            })?;
        }
        let access_token = match token_file {
            Some(p) => {
                let t = std::fs::read_to_string(p).map_err(|e| OneBotError::Flag {
                    flag: "--onebot-token-file",
                    message: format!("{}: {e}", p.display()),
                })?;
                let t = t.trim().to_string();
                if t.is_empty() {
                    return Err(OneBotError::Flag {
                        flag: "--onebot-token-file",
                        message: format!("{} is empty", p.display()),
                    });
                }
                Some(t)
            }
            None => None,
        };
        Ok(Defaults {
            ws_reverse_url: ws_reverse.map(String::from),
            http_post_url: http_post.map(String::from),
            access_token,
        })
    }
}

/// An account's OneBot settings: its `[onebot]` keys over the fleet-wide defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub access_token: Option<String>,
    pub secret: Option<String>,
    pub http_post_url: Option<String>,
    pub http_post_timeout: Duration,
    pub ws_reverse_url: Option<String>,
    pub ws_reverse_reconnect: Duration,
    pub format: MessageFormat,
    /// `None`: no heartbeat.
    pub heartbeat: Option<Duration>,
}

impl Settings {
    /// The account key wins over the fleet-wide default.
    pub fn resolve(c: &OneBotConfig, d: &Defaults) -> Settings {
        Settings {
            access_token: c.access_token.clone().or_else(|| d.access_token.clone()),
            secret: c.secret.clone(),
            http_post_url: c.http_post_url.clone().or_else(|| d.http_post_url.clone()),
            http_post_timeout: Duration::from_millis(c.http_post_timeout_ms.unwrap_or(5000)),
            ws_reverse_url: c
                .ws_reverse_url
                .clone()
                .or_else(|| d.ws_reverse_url.clone()),
            ws_reverse_reconnect: Duration::from_millis(c.ws_reverse_reconnect_ms.unwrap_or(3000)),
            format: c.post_message_format.unwrap_or_default(),
            heartbeat: match c.heartbeat_secs.unwrap_or(15) {
                0 => None,
                s => Some(Duration::from_secs(s)),
            },
        }
    }
}

/// A frame for a WebSocket's writer; `ack` fires once it was written and flushed.
pub struct Frame {
    pub text: String,
    pub ack: Option<tokio::sync::oneshot::Sender<()>>,
}

/// The OneBot side of one account.
pub struct Bot {
    pub id: String,
    /// The account's QQ number: `self_id` everywhere.
    pub self_id: u64,
    pub settings: Settings,
    pub queue: event::EventQueue,
    pub ids: ids::Ids,
    /// A new event, or a new connection that takes events.
    pub wake: Notify,
    /// Connected WebSockets that take events, by connection number.
    pub sinks: Mutex<Vec<(u64, mpsc::Sender<Frame>)>>,
    next_conn: std::sync::atomic::AtomicU64,
    /// Its tasks (delivery, reverse WebSocket, connections): aborted when it is replaced.
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Bot {
    pub fn conn_id(&self) -> u64 {
        self.next_conn
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Keeps a task to abort with the bot.
    pub fn adopt(&self, h: tokio::task::AbortHandle) {
        let mut t = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        t.retain(|h| !h.is_finished());
        t.push(h);
    }

    fn stop(&self) {
        for h in self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            h.abort();
        }
    }
}

/// Every bot of the process, and what they share.
pub struct OneBot {
    me: Weak<OneBot>,
    pub store: Arc<dyn Store>,
    /// The database; each bot opens its two trees from it when it is made (the process keeps
    /// no tree handle of its own, so a store reopened after a write error is not held back).
    sled: Arc<SledStore>,
    defaults: Defaults,
    pub bots: DashMap<String, Arc<Bot>>,
    rt: OnceLock<tokio::runtime::Handle>,
    pub status: OnceLock<StatusMap>,
    pub supervisor: OnceLock<Addr<FleetSupervisor>>,
}

impl OneBot {
    pub fn new(
        store: Arc<dyn Store>,
        sled: Arc<SledStore>,
        defaults: Defaults,
    ) -> Result<Arc<OneBot>, OneBotError> {
        // Both trees exist (and the database answers) before any account starts.
        sled.open_tree("onebot_ids")?;
        sled.open_tree("onebot_events")?;
        Ok(Arc::new_cyclic(|me| OneBot {
            me: me.clone(),
            store,
            sled,
            defaults,
            bots: DashMap::new(),
            rt: OnceLock::new(),
            status: OnceLock::new(),
            supervisor: OnceLock::new(),
        }))
    }

    /// The runtime the bots' tasks run on, and the status map (before any account starts).
    pub fn set_runtime(&self, rt: tokio::runtime::Handle, status: StatusMap) {
        let _ = self.rt.set(rt);
        let _ = self.status.set(status);
    }

    /// Where sends go (set once the supervisor is started).
    pub fn set_supervisor(&self, sup: Addr<FleetSupervisor>) {
        let _ = self.supervisor.set(sup);
    }

    /// A fresh id from the database's counter (event ids of events that are not inbox
    /// entries: send outcomes).
    pub fn fresh_id(&self) -> Result<u64, StoreError> {
        self.sled.generate_id()
    }

    /// This session's contacts of an account, as last saved.
    pub fn contacts(&self, id: &str) -> Option<Contacts> {
        let (json, _) = self.store.load_contacts(id).ok().flatten()?;
        serde_json::from_slice(&json).ok()
    }

    /// Whether an account is online now.
    pub fn online(&self, id: &str) -> bool {
        self.status
            .get()
            .and_then(|s| s.get(id).map(|e| e.state))
            .is_some_and(|s| s == crate::state::AccountState::Online)
    }

    /// Spawns a task of `bot` on the bots' runtime.
    pub fn spawn<F>(&self, bot: &Bot, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let h = match self.rt.get() {
            Some(rt) => rt.spawn(fut),
            None => tokio::spawn(fut),
        };
        bot.adopt(h.abort_handle());
    }

    /// The bot of an account file, created (or rebuilt when its settings changed).
    fn bot_for(&self, cfg: &AccountFile) -> Option<Arc<Bot>> {
        let settings = Settings::resolve(&cfg.onebot, &self.defaults);
        if let Some(b) = self.bots.get(&cfg.id) {
            if b.settings == settings && b.self_id == cfg.qq {
                return Some(b.clone());
            }
        }
        // The trees are looked up on each use (`NamedTree`): the store may reopen its
        // database after a disk fault, and the bot must follow it.
        let src: Arc<dyn crate::store::TreeSource> = self.sled.clone();
        let queue = match event::EventQueue::open(
            crate::store::NamedTree::new(src.clone(), "onebot_events"),
            &cfg.id,
            event::QUEUE_CAP,
        ) {
            Ok(q) => q,
            Err(e) => {
                tracing::error!(account = %cfg.id, error = %e, "OneBot queue not opened; the account runs without its bot until it restarts");
                return None;
            }
        };
        let bot = Arc::new(Bot {
            id: cfg.id.clone(),
            self_id: cfg.qq,
            queue,
            ids: ids::Ids::new(crate::store::NamedTree::new(src, "onebot_ids"), &cfg.id),
            settings,
            wake: Notify::new(),
            sinks: Mutex::new(Vec::new()),
            next_conn: Default::default(),
            tasks: Mutex::new(Vec::new()),
        });
        if let Some(old) = self.bots.insert(cfg.id.clone(), bot.clone()) {
            old.stop();
        }
        let Some(me) = self.me.upgrade() else {
            return Some(bot);
        };
        self.spawn(&bot, delivery::run(me.clone(), bot.clone()));
        if let Some(url) = bot.settings.ws_reverse_url.clone() {
            self.spawn(&bot, ws::reverse(me, bot.clone(), url));
        }
        Some(bot)
    }
}

impl MakeHandler for OneBot {
    fn make(&self, cfg: &AccountFile) -> Option<Box<dyn Handler>> {
        if cfg.handler != crate::config::HandlerKind::Onebot {
            // No longer (or never) a bot: its connections and delivery stop; its queue and
            // ids stay on disk for a return.
            if let Some((_, old)) = self.bots.remove(&cfg.id) {
                old.stop();
            }
            return None;
        }
        let bot = self.bot_for(cfg)?;
        Some(Box::new(BotHandler {
            ob: self.me.upgrade()?,
            bot,
        }))
    }
}

/// The fleet-side handler of a onebot account: turns each received message into an event in
/// the bot's durable queue. It never answers by itself; the bot does, through the API.
pub struct BotHandler {
    ob: Arc<OneBot>,
    bot: Arc<Bot>,
}

impl BotHandler {
    fn queue(&self, event_id: u64, ev: &serde_json::Value) -> Result<(), String> {
        let kept = self
            .bot
            .queue
            .push(event_id, ev)
            .map_err(|e| e.to_string())?;
        emit(OneBotEventQueued {
            account: &self.bot.id,
            dropped: !kept,
            depth: self.bot.queue.len(),
        });
        if kept {
            self.bot.wake.notify_one();
        }
        Ok(())
    }
}

impl Handler for BotHandler {
    fn handle(&mut self, msg: &Incoming) -> Result<Vec<Reply>, String> {
        let seq = self.ob.fresh_id().map_err(|e| e.to_string())?;
        self.handle_recorded(seq, msg, None)
    }

    fn handle_recorded(
        &mut self,
        seq: u64,
        msg: &Incoming,
        contacts: Option<&Contacts>,
    ) -> Result<Vec<Reply>, String> {
        // The account's own messages coming back are not events of the bot.
        if msg.self_echo {
            return Ok(vec![]);
        }
        let b = &self.bot;
        let mid = b.ids.next_message_id().map_err(|e| e.to_string())?;
        let loaded;
        let contacts = match contacts {
            Some(c) => Some(c),
            None => {
                loaded = self.ob.contacts(&b.id);
                loaded.as_ref()
            }
        };
        let ev = event::message_event(
            b.self_id,
            seq,
            mid,
            msg,
            contacts,
            &b.ids,
            b.settings.format,
        )
        .map_err(|e| e.to_string())?;
        self.queue(seq, &ev)?;
        Ok(vec![])
    }

    fn outcome(&mut self, seq: u64, result: &'static str) {
        let b = &self.bot;
        let Ok(Some(mid)) = b.ids.take_sent(seq) else {
            return;
        };
        let Ok(eid) = self.ob.fresh_id() else {
            return;
        };
        if let Err(e) = self.queue(eid, &event::send_outcome(b.self_id, eid, mid, result)) {
            tracing::error!(account = %b.id, error = %e, "onebot: send outcome not queued");
        }
    }
}
