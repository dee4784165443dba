//! `qqfleet run`: the wiring of the whole process, one floor above the actors.
//!
//! It opens (and locks) the store, builds the actix System on a multi-thread tokio runtime with
//! one Arbiter per core for the accounts, starts the FleetSupervisor, the admin API (axum, on
//! the tokio pool), the accounts-folder watcher and, with `--sim`, the simulator and its demo
//! phone; then waits for SIGINT/SIGTERM and shuts down in order. Living here (not in `fleet`)
//! keeps the layer rule: the actors never import the API that faces people.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::api::auth::AdminToken;
use crate::fleet::{
    account, breaker, debug_hooks, messages, phone, status, supervisor, watcher, FleetError,
};
use crate::protocol::Endpoints;
use crate::store::{SledStore, Store};

/// Time between two rescans of the accounts folder, which repair missed file events (an
/// inotify queue overflow, a network filesystem). File events act at once; a rescan only
/// stats the files (reading the changed ones), yet at 10,000 files that is 10,000 `statx`
/// calls, so it runs twice a minute rather than every few seconds.
const RESCAN: Duration = Duration::from_secs(30);

/// Command-line arguments of `qqfleet run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Folder of account files (`<id>.toml`).
    #[arg(long, default_value = "accounts")]
    pub accounts: std::path::PathBuf,
    /// Folder of durable state (sled).
    #[arg(long, default_value = "data")]
    pub data: std::path::PathBuf,
    /// Address of the admin API and /metrics.
    #[arg(long, default_value = "127.0.0.1:9400")]
    pub listen: std::net::SocketAddr,
    /// Start the simulator inside the process, with a demo phone that scans every QR.
    #[arg(long, conflicts_with = "sim_url")]
    pub sim: bool,
    /// Point every account at a simulator running elsewhere.
    #[arg(long)]
    pub sim_url: Option<String>,
    /// File holding the admin API's bearer token. Without it the token is read from (or
    /// created on first start as) `<data>/admin.token`, mode 0600.
    #[arg(long)]
    pub admin_token_file: Option<std::path::PathBuf>,
    /// Turn the outage breaker off: every account then retries on its own backoff through
    /// an outage of the whole service (for comparison; see docs/RELIABILITY.md).
    #[arg(long)]
    pub no_outage_breaker: bool,
    /// Run only shard I of N (`I/N`, e.g. `0/3`): the accounts whose id hashes to I; the
    /// others are listed as `elsewhere` with their shard, never started.
    #[arg(long, conflicts_with = "shard_from_hostname")]
    pub shard: Option<crate::shard::Shard>,
    /// Take I from the host name's ordinal (a StatefulSet pod `qqfleet-2` is shard 2); N
    /// comes from `--shards`.
    #[arg(long, requires = "shards")]
    pub shard_from_hostname: bool,
    /// N for `--shard-from-hostname` (the StatefulSet's replicas).
    #[arg(long)]
    pub shards: Option<u32>,
    /// Shared folder for moving accounts between shards when N changes: accounts this shard
    /// no longer owns are exported there (at start, and at shutdown), accounts it now owns
    /// are imported from there before they start.
    #[arg(long)]
    pub handoff: Option<std::path::PathBuf>,
    /// How long an account another shard still lists as its own waits for its handoff file
    /// before it starts anyway (with a QR scan).
    #[arg(long, default_value_t = 600)]
    pub handoff_wait_secs: u64,
    /// POST each new QR code here as JSON (account, QQ, desk link, PNG in base64, expiry),
    /// for every account whose file has no `[notify] qr_webhook_url` of its own.
    #[arg(long, env = "QQFLEET_QR_WEBHOOK_URL")]
    pub qr_webhook_url: Option<String>,
    /// Fleet-wide default `ws_reverse_url` of every `handler = "onebot"` account (a key in the
    /// account file wins).
    #[arg(long, value_name = "URL")]
    pub onebot_ws_reverse: Option<String>,
    /// Fleet-wide default `http_post_url` of every onebot account.
    #[arg(long, value_name = "URL")]
    pub onebot_http_post: Option<String>,
    /// File holding the fleet-wide default `access_token` of every onebot account.
    #[arg(long, value_name = "FILE")]
    pub onebot_token_file: Option<std::path::PathBuf>,
    /// Hours of the day (local time, "HH:MM-HH:MM", may wrap midnight) in which renewal
    /// scans are asked for: a login forecast to die outside them is renewed at the window's
    /// last opening before. An account file's `[scan] window` overrides it.
    #[arg(long)]
    pub scan_window: Option<crate::scanwin::ScanWindow>,
    /// Fleet-wide bound on logins in progress (QR, resume, relink); accounts beyond it wait
    /// their turn as `starting`.
    #[arg(long, default_value_t = crate::fleet::gate::DEFAULT_MAX_LOGINS as u32, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_logins: u32,
    /// Fleet-wide pace of new QR codes, per second (0: no pace).
    #[arg(long, default_value_t = crate::fleet::gate::DEFAULT_QR_PER_SECOND, value_parser = parse_rate)]
    pub qr_per_second: f64,
    /// How long a poll2 may take before the client gives it up and polls again, in seconds.
    /// Above the server's hold (60 s, WEBQQ.md §5.1; clients of the period used 70-120 s);
    /// lower only against a simulator that holds less (`qqfleet sim --hold`).
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u64).range(5..=600))]
    pub poll_timeout_secs: u64,
    /// Bound of the store's page cache (sled), in MiB: what the store keeps in memory
    /// beyond what the accounts are doing now.
    #[arg(long, default_value_t = crate::store::DEFAULT_CACHE_MB, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub store_cache_mb: u64,
}

impl RunArgs {
    /// This process's shard: `--shard`, `--shard-from-hostname --shards N`, or the whole fleet.
    pub fn resolve_shard(&self) -> Result<crate::shard::Shard, crate::shard::ShardError> {
        if let Some(s) = self.shard {
            return Ok(s);
        }
        if self.shard_from_hostname {
            let n = self.shards.ok_or(crate::shard::ShardError::NoCount)?;
            if n == 0 {
                return Err(crate::shard::ShardError::Spec(format!("?/{n}")));
            }
            return crate::shard::Shard::from_hostname(&crate::shard::Shard::hostname(), n);
        }
        Ok(crate::shard::Shard::ALONE)
    }
}

/// A rate per second: a finite number, zero or more.
fn parse_rate(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(r),
        _ => Err(format!(
            "`{v}` is not a rate per second (a number, 0 or more)"
        )),
    }
}

/// Runs `qqfleet run` until SIGINT or SIGTERM.
pub fn run(args: RunArgs) -> Result<(), FleetError> {
    let meta = std::fs::metadata(&args.accounts).map_err(|e| FleetError::Accounts {
        path: args.accounts.clone(),
        message: e.to_string(),
    })?;
    if !meta.is_dir() {
        return Err(FleetError::Accounts {
            path: args.accounts.clone(),
            message: "not a folder".into(),
        });
    }
    // Every parked poll is a socket: the fleet meets the open-file limit first. Raise the
    // soft limit to the hard one, and refuse a fleet that cannot fit.
    // The folder is read once here: its ids serve the start, and the watcher's first sync
    // only stats the files, so a start of 10,000 accounts parses each file once.
    let mut dirscan = crate::config::DirScan::default();
    let ids: Vec<String> = dirscan
        .scan(&args.accounts)
        .map(|s| s.into_iter().map(|s| s.id).collect())
        .unwrap_or_default();
    let accounts = ids.len() as u64;
    match crate::fdlimit::raise() {
        Ok((before, after)) => {
            let log_files =
                crate::fdlimit::log_files_for(accounts, u64::from(args.max_logins), after);
            crate::fdlimit::set_log_files(log_files);
            tracing::info!(
                soft_before = before.soft,
                soft = after.soft,
                hard = after.hard,
                accounts,
                needed = crate::fdlimit::needed(accounts, u64::from(args.max_logins)),
                log_files,
                "open-file limit"
            );
            if let Some(why) = crate::fdlimit::misfit(accounts, u64::from(args.max_logins), after) {
                return Err(FleetError::DoesNotFit(why));
            }
        }
        Err(e) => tracing::warn!(error = %e, "open-file limit unreadable; not raised"),
    }
    let onebot_defaults = crate::onebot::Defaults::from_args(
        args.onebot_ws_reverse.as_deref(),
        args.onebot_http_post.as_deref(),
        args.onebot_token_file.as_deref(),
    )
    .map_err(|e| FleetError::Runtime(e.to_string()))?;
    let shard = args
        .resolve_shard()
        .map_err(|e| FleetError::Runtime(e.to_string()))?;
    if let Some(url) = &args.qr_webhook_url {
        crate::config::check_webhook_url(url)
            .map_err(|m| FleetError::Runtime(format!("--qr-webhook-url: {m}")))?;
    }
    crate::memtrim::spawn();
    // The store's flushes reach the metrics (the group commit sits below the events).
    crate::group_commit::observe_flushes(|took, writes| {
        crate::events::emit(crate::events::StoreFlushed { took, writes })
    });
    // Open (and lock) the store before anything else: a second process fails right here.
    let sled = Arc::new(SledStore::open_with_cache(
        &args.data,
        args.store_cache_mb << 20,
    )?);
    let store: Arc<dyn Store> = sled.clone();
    // Before any account runs: hand off what this shard no longer owns.
    let handoff = match &args.handoff {
        Some(dir) => {
            let h = crate::fleet::handoff::Handoff::open(
                dir,
                shard,
                sled.clone(),
                Duration::from_secs(args.handoff_wait_secs),
            )
            .map_err(|e| FleetError::Runtime(format!("--handoff: {e}")))?;
            let gone = h
                .export_unowned(&ids.iter().cloned().collect())
                .map_err(|e| FleetError::Runtime(format!("--handoff: {e}")))?;
            if !gone.is_empty() {
                tracing::info!(
                    count = gone.len(),
                    "accounts handed off to their new shards"
                );
            }
            Some(Arc::new(h))
        }
        None => None,
    };
    let onebot = crate::onebot::OneBot::new(store.clone(), sled.clone(), onebot_defaults)
        .map_err(|e| FleetError::Runtime(e.to_string()))?;
    drop(sled);
    // The store has created the data directory (0700); the token lives beside it.
    let admin_token = AdminToken::load_or_create(args.admin_token_file.as_deref(), &args.data)
        .map_err(|e| FleetError::AdminToken(e.to_string()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("qqfleet-worker")
        // A worker that served a burst (a start's API calls, its connections) and went quiet
        // gives its free pages back when it next parks after a trim (`memtrim`).
        .on_thread_park(crate::heap::collect_if_asked)
        .build()
        .map_err(|e| FleetError::Runtime(e.to_string()))?;
    {
        // Wakes the parked workers after each trim: a task each (spawned together, a woken
        // worker wakes the next), and each parks again, collecting.
        let handle = rt.handle().clone();
        let workers = rt.metrics().num_workers();
        crate::memtrim::on_every_trim(move || {
            for _ in 0..workers {
                handle.spawn(async {});
            }
        });
    }
    let sys = actix::System::with_tokio_rt(move || rt);
    let result = sys.block_on(serve(
        args,
        store.clone(),
        admin_token,
        shard,
        handoff,
        onebot,
        (dirscan, ids),
    ));
    let _ = store.flush();
    result
}

async fn serve(
    args: RunArgs,
    store: Arc<dyn Store>,
    (token, token_path): (AdminToken, std::path::PathBuf),
    shard: crate::shard::Shard,
    handoff: Option<Arc<crate::fleet::handoff::Handoff>>,
    onebot: Arc<crate::onebot::OneBot>,
    (dirscan, ids): (crate::config::DirScan, Vec<String>),
) -> Result<(), FleetError> {
    let status: status::StatusMap = Default::default();
    onebot.set_runtime(tokio::runtime::Handle::current(), status.clone());
    let mut _sim = None;
    let endpoints = if args.sim {
        let (handle, base) = start_sim().await?;
        say(&format!("simulator (in process): {base}"));
        actix::spawn(phone::run(status.clone(), base.clone(), phone::SCAN_DELAY));
        _sim = Some(handle);
        Endpoints::sim(&base)
    } else if let Some(url) = &args.sim_url {
        Endpoints::sim(url)
    } else {
        Endpoints::real()
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| FleetError::Listen {
            addr: args.listen,
            message: e.to_string(),
        })?;
    let local = listener.local_addr().unwrap_or(args.listen);
    let account_count = ids.len();
    let breaker = if args.no_outage_breaker {
        breaker::Breaker::disabled()
    } else {
        breaker::Breaker::new(
            breaker::BreakerConfig::default(),
            breaker::http_probe(&endpoints),
        )
    };
    let deps = Arc::new(account::Deps {
        breaker,
        store: store.clone(),
        connector: Arc::new(crate::fleet::webqq::ClientConnector {
            endpoints,
            options: crate::protocol::ClientOptions {
                poll_timeout: Duration::from_secs(args.poll_timeout_secs),
                ..Default::default()
            },
        }),
        status: status.clone(),
        data_dir: args.data.clone(),
        // The art is for people at a terminal; in JSON every stderr line must stay JSON (the
        // `QrWaiting` event says where the PNG is instead).
        show_qr: account_count <= 10 && crate::logging::format() == crate::logging::LogFormat::Text,
        qr_webhook_url: args.qr_webhook_url.clone(),
        desk_url: Some(format!("http://{local}/desk")),
        handlers: Some(onebot.clone()),
        gate: Arc::new(crate::fleet::gate::LoginGate::new(
            args.max_logins as usize,
            args.qr_per_second,
        )),
        scan_window: args.scan_window,
        clock_offset_file: if debug_hooks() {
            std::env::var_os("QQFLEET_DEBUG_CLOCK_OFFSET").map(Into::into)
        } else {
            None
        },
    });
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let arbiters: Vec<Arbiter> = (0..cores).map(|_| Arbiter::new()).collect();
    // The Arbiters' threads and this one (the System's) collect their heaps after each trim
    // (`memtrim`): the accounts' work is done there.
    for arbiter in arbiters
        .iter()
        .map(|a| a.handle())
        .chain([actix::System::current().arbiter().clone()])
    {
        crate::memtrim::on_every_trim(move || {
            arbiter.spawn(async { crate::heap::collect_if_asked() });
        });
    }
    let handles = arbiters.iter().map(|a| a.handle()).collect();
    let gate = handoff
        .clone()
        .map(|h| h as Arc<dyn crate::fleet::handoff::StartGate>);
    let sup = supervisor::FleetSupervisor::new(deps, handles)
        .with_shard(shard, gate)
        .start();
    onebot.set_supervisor(sup.clone());
    let owned: Vec<String> = ids.into_iter().filter(|id| shard.owns(id)).collect();
    if let Some(h) = &handoff {
        h.write_ledger(&owned)
            .map_err(|e| FleetError::Runtime(format!("--handoff: {e}")))?;
    } else if shard.count > 1 {
        let shard_s = shard.to_string();
        for id in &owned {
            if matches!(store.load_session(id), Ok(None)) {
                crate::events::emit(crate::events::AccountWithoutState {
                    account: id,
                    shard: &shard_s,
                });
            }
        }
    }
    let readiness = crate::api::ready::Readiness::new(status.clone());

    let api = crate::api::router(crate::api::ApiState {
        status: status.clone(),
        supervisor: sup.clone(),
        store: store.clone(),
        debug: debug_hooks(),
        token,
    })
    .merge(crate::api::ready::router(readiness.clone()))
    .merge(crate::onebot::router(onebot.clone()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(async move {
        let mut rx = stop_rx;
        let _ = axum::serve(listener, api)
            .with_graceful_shutdown(async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await;
    });
    say(&format!("admin API: http://{local}/api/accounts"));
    say(&format!(
        "admin token: {} (send it as Authorization: Bearer <token>)",
        token_path.display()
    ));
    say(&format!("metrics:   http://{local}/metrics"));
    if shard.count > 1 || args.shard.is_some() || args.shard_from_hostname {
        say(&format!(
            "shard:     {shard} ({} of the accounts in {} run here)",
            owned.len(),
            args.accounts.display()
        ));
    }

    let _watcher =
        watcher::spawn(args.accounts.clone(), sup.clone(), RESCAN, dirscan).map_err(|e| {
            FleetError::Accounts {
                path: args.accounts.clone(),
                message: e.to_string(),
            }
        })?;
    readiness.expect(owned);

    wait_for_signal().await?;
    tracing::info!("shutting down: stopping polls, finishing sends in flight, flushing");
    let _ = tokio::time::timeout(
        Duration::from_millis(4500),
        sup.send(messages::ShutdownFleet),
    )
    .await;
    store.flush()?;
    if let Some(h) = &handoff {
        // Anything this shard holds but does not own (normally handed off at start already).
        if let Err(e) = h.export_unowned(&account_ids(&args.accounts)) {
            tracing::error!(error = %e, "handoff at shutdown");
        }
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_millis(300), server).await;
    for a in &arbiters {
        a.stop();
    }
    System::current().stop();
    Ok(())
}

/// The ids of the account files in `dir` (valid or not).
fn account_ids(dir: &std::path::Path) -> std::collections::HashSet<String> {
    crate::config::scan_dir(dir)
        .map(|s| s.into_iter().map(|s| s.id).collect())
        .unwrap_or_default()
}

/// A line for whoever started us (tools read the admin address from stdout). A closed
/// stdout must not take the fleet down: `println!` would panic on EPIPE.
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn wait_for_signal() -> Result<(), FleetError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| FleetError::Runtime(e.to_string()))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| FleetError::Runtime(e.to_string()))?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// The in-process simulator of `--sim`, on a loopback port, with chatter on so the echo bots
/// have someone to answer.
async fn start_sim() -> Result<(crate::sim::SimHandle, String), FleetError> {
    let listener =
        crate::sim::bind(([127, 0, 0, 1], 0).into()).map_err(|e| FleetError::Sim(e.to_string()))?;
    let cfg = crate::sim::SimConfig {
        // A message to each bot every 5-8 s: a new user sees the bots answer within
        // seconds of the logins (the answers show at info level).
        chatter: Some(Duration::from_millis(6500)),
        ..crate::sim::SimConfig::default()
    };
    let handle = crate::sim::serve(cfg, listener)
        .await
        .map_err(|e| FleetError::Sim(e.to_string()))?;
    let base = handle.base_url();
    Ok((handle, base))
}
