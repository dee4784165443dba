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
    account, debug_hooks, messages, phone, status, supervisor, watcher, FleetError,
};
use crate::protocol::Endpoints;
use crate::store::{SledStore, Store};

/// Seconds between two full rescans of the accounts folder (repairs missed file events).
const RESCAN: Duration = Duration::from_secs(5);

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
    /// Fleet-wide bound on logins in progress (QR, resume, relink); accounts beyond it wait
    /// their turn as `starting`.
    #[arg(long, default_value_t = crate::fleet::gate::DEFAULT_MAX_LOGINS as u32, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_logins: u32,
    /// Fleet-wide pace of new QR codes, per second (0: no pace).
    #[arg(long, default_value_t = crate::fleet::gate::DEFAULT_QR_PER_SECOND, value_parser = parse_rate)]
    pub qr_per_second: f64,
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
    let accounts = crate::config::scan_dir(&args.accounts)
        .map(|s| s.len() as u64)
        .unwrap_or(0);
    match crate::fdlimit::raise() {
        Ok((before, after)) => {
            tracing::info!(
                soft_before = before.soft,
                soft = after.soft,
                hard = after.hard,
                accounts,
                needed = crate::fdlimit::needed(accounts, u64::from(args.max_logins)),
                "open-file limit"
            );
            if let Some(why) = crate::fdlimit::misfit(accounts, u64::from(args.max_logins), after) {
                return Err(FleetError::DoesNotFit(why));
            }
        }
        Err(e) => tracing::warn!(error = %e, "open-file limit unreadable; not raised"),
    }
    // Open (and lock) the store before anything else: a second process fails right here.
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&args.data)?);
    // The store has created the data directory (0700); the token lives beside it.
    let (token, token_path) =
        AdminToken::load_or_create(args.admin_token_file.as_deref(), &args.data)
            .map_err(|e| FleetError::AdminToken(e.to_string()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("qqfleet-worker")
        .build()
        .map_err(|e| FleetError::Runtime(e.to_string()))?;
    let sys = actix::System::with_tokio_rt(move || rt);
    let result = sys.block_on(serve(args, store.clone(), token, token_path));
    let _ = store.flush();
    result
}

async fn serve(
    args: RunArgs,
    store: Arc<dyn Store>,
    token: AdminToken,
    token_path: std::path::PathBuf,
) -> Result<(), FleetError> {
    let status: status::StatusMap = Default::default();
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
    let account_count = crate::config::scan_dir(&args.accounts)
        .map(|s| s.len())
        .unwrap_or(0);
    let deps = Arc::new(account::Deps {
        store: store.clone(),
        connector: Arc::new(crate::fleet::webqq::ClientConnector { endpoints }),
        status: status.clone(),
        data_dir: args.data.clone(),
        crash_before_handler: if debug_hooks() {
            std::env::var("QQFLEET_DEBUG_CRASH_BEFORE_HANDLER").ok()
        } else {
            None
        },
        // The art is for people at a terminal; in JSON every stderr line must stay JSON (the
        // `QrWaiting` event says where the PNG is instead).
        show_qr: account_count <= 10 && crate::logging::format() == crate::logging::LogFormat::Text,
        gate: Arc::new(crate::fleet::gate::LoginGate::new(
            args.max_logins as usize,
            args.qr_per_second,
        )),
    });
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let arbiters: Vec<Arbiter> = (0..cores).map(|_| Arbiter::new()).collect();
    let handles = arbiters.iter().map(|a| a.handle()).collect();
    let sup = supervisor::FleetSupervisor::new(deps, handles).start();

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| FleetError::Listen {
            addr: args.listen,
            message: e.to_string(),
        })?;
    let local = listener.local_addr().unwrap_or(args.listen);
    let api = crate::api::router(crate::api::ApiState {
        status: status.clone(),
        supervisor: sup.clone(),
        store: store.clone(),
        debug: debug_hooks(),
        token,
    });
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

    let _watcher = watcher::spawn(args.accounts.clone(), sup.clone(), RESCAN).map_err(|e| {
        FleetError::Accounts {
            path: args.accounts.clone(),
            message: e.to_string(),
        }
    })?;

    wait_for_signal().await?;
    tracing::info!("shutting down: stopping polls, finishing sends in flight, flushing");
    let _ = tokio::time::timeout(
        Duration::from_millis(4500),
        sup.send(messages::ShutdownFleet),
    )
    .await;
    store.flush()?;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_millis(300), server).await;
    for a in &arbiters {
        a.stop();
    }
    System::current().stop();
    Ok(())
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
