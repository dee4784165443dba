//! The WebQQ simulator (`qqfleet sim`): every real host of the era-E3 service under a path
//! prefix equal to its name, with the checks and answers of WEBQQ.md §3-§10 and §14, and a
//! JSON control API under `/sim/`. See docs/SIMULATOR.md.
//!
//! Others embed it with [`serve`]:
//! ```no_run
//! # async fn f() -> Result<(), qqfleet::sim::SimError> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let sim = qqfleet::sim::serve(qqfleet::sim::SimConfig::default(), listener).await?;
//! println!("{}", sim.base_url());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

mod auth;
mod channel;
pub mod clock;
pub mod config;
pub mod content;
mod control;
pub mod events;
pub mod faults;
mod info;
mod ptlogin;
pub mod qr;
pub mod qrbook;
mod request;
mod routes;
mod server;
mod state;
pub mod world;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{IdleAnswer, SimConfig};
pub use server::bind;

/// Command-line arguments of `qqfleet sim`. Flags override the `--config` file.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Address to listen on (port 0 picks a free port). Keep it on loopback.
    #[arg(long, default_value = "127.0.0.1:8900")]
    pub listen: SocketAddr,
    /// TOML file with simulator knobs (docs/SIMULATOR.md); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Seconds poll2 holds a request without events (default 60).
    #[arg(long)]
    pub hold: Option<f64>,
    /// Scan and confirm every new QR after this many seconds, as a fresh account.
    #[arg(long)]
    pub auto_scan: Option<f64>,
    /// Minimum ms between two sends of one account before 1202 (default 1000; 0 disables).
    #[arg(long)]
    pub send_min_interval_ms: Option<u64>,
    /// Sends per target per minute before 1202 (default 10; 0 disables).
    #[arg(long)]
    pub target_burst_per_min: Option<u32>,
    /// Answer poll2 with 116 and a new ptwebqq once the current one is this many seconds old.
    #[arg(long)]
    pub ptwebqq_rotation: Option<f64>,
    /// Simulated friends and groups write to online accounts about every this many seconds.
    #[arg(long)]
    pub chatter: Option<f64>,
    /// What an idle poll answers after the hold.
    #[arg(long, value_enum)]
    pub idle_answer: Option<IdleAnswer>,
    /// Do not echo an account's own sends back to its poll.
    #[arg(long)]
    pub no_echo: bool,
    /// At most this many queued events in one poll2 answer, oldest first (default 1, the
    /// usual answer; the real service batched events that had queued up).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=config::MAX_POLL_BATCH as u64))]
    pub poll_batch: Option<u64>,
}

/// Errors of the simulator layer.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The listener's own address could not be read.
    #[error("cannot read the listening address: {0}")]
    LocalAddr(std::io::Error),
    /// The config file could not be read.
    #[error("cannot read {path}: {source}")]
    ConfigRead {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The config file is not valid.
    #[error("invalid simulator config {path}: {message}")]
    ConfigParse { path: PathBuf, message: String },
    /// A command-line value is not valid.
    #[error("invalid argument: {0}")]
    BadArgument(String),
    /// Waiting for Ctrl-C failed.
    #[error("cannot wait for a signal: {0}")]
    Signal(std::io::Error),
}

/// A running simulator. Dropping it stops the simulator (as [`SimHandle::shutdown`] does,
/// without waiting), so keep it for as long as the simulator should run.
#[derive(Debug)]
pub struct SimHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`, the base every host prefix hangs off.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, closes every connection (held polls included) and waits for the
    /// background tasks.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Starts the simulator on `listener` and returns at once; it runs on the current tokio
/// runtime until [`SimHandle::shutdown`].
pub async fn serve(config: SimConfig, listener: TcpListener) -> Result<SimHandle, SimError> {
    let addr = listener.local_addr().map_err(SimError::LocalAddr)?;
    let sim = Arc::new(state::Sim::new(config, addr));
    let router = routes::router(sim.clone());
    let (tx, rx) = watch::channel(false);
    let mut tasks = vec![tokio::spawn(server::accept_loop(
        listener,
        router,
        rx.clone(),
    ))];
    if let Some(every) = sim.cfg.chatter {
        tasks.push(tokio::spawn(chatter(sim.clone(), every, rx)));
    }
    Ok(SimHandle {
        addr,
        shutdown: tx,
        tasks,
    })
}

/// Demo traffic: now and then (every `every` ± 23 %) a friend or group writes to each online
/// account.
async fn chatter(sim: Arc<state::Sim>, every: Duration, mut stop: watch::Receiver<bool>) {
    use rand::Rng;
    let every = every.max(Duration::from_millis(100));
    const LINES: &[&str] = &[
        "在吗？",
        "今天天气不错 [face:14]",
        "hello",
        "晚上一起吃饭？",
        "收到",
    ];
    loop {
        // "About" the interval: ±23 %, so a demo conversation does not tick like a clock
        // (6.5 s gives one message every 5-8 s).
        let pause = every.mul_f64(rand::rng().random_range(0.77..=1.23));
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => return,
        }
        let now = sim.now();
        let mut w = sim.world();
        let online: Vec<u64> = w
            .accounts
            .values()
            .filter(|a| a.active_session.is_some())
            .map(|a| a.qq)
            .collect();
        let mut rng = rand::rng();
        for qq in online {
            let kind = if rng.random_bool(0.5) {
                events::InjectKind::Buddy
            } else {
                events::InjectKind::Group
            };
            let req = events::InjectRequest {
                qq,
                kind,
                from: None,
                group: None,
                did: None,
                text: Some(LINES[rng.random_range(0..LINES.len())].to_string()),
                status: None,
            };
            let _ = events::inject(&mut w, &req, now, sim.lifetime_ms());
        }
    }
}

/// SIGINT or SIGTERM.
async fn wait_for_stop() -> Result<(), SimError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).map_err(SimError::Signal)?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.map_err(SimError::Signal),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map_err(SimError::Signal)
    }
}

fn secs_arg(name: &str, v: f64) -> Result<Duration, SimError> {
    if !v.is_finite() || v < 0.0 {
        return Err(SimError::BadArgument(format!("--{name} must be >= 0")));
    }
    Ok(config::secs(v))
}

/// The effective config of `qqfleet sim`: defaults, then `--config`, then flags.
pub fn config_from_args(args: &SimArgs) -> Result<SimConfig, SimError> {
    let mut c = match &args.config {
        Some(p) => SimConfig::from_toml_file(p)?,
        None => SimConfig::default(),
    };
    if let Some(v) = args.hold {
        c.hold = secs_arg("hold", v)?;
    }
    if let Some(v) = args.auto_scan {
        c.auto_scan = Some(secs_arg("auto-scan", v)?);
    }
    if let Some(v) = args.send_min_interval_ms {
        c.send_min_interval = Duration::from_millis(v);
    }
    if let Some(v) = args.target_burst_per_min {
        c.target_burst_per_min = v;
    }
    if let Some(v) = args.ptwebqq_rotation {
        c.ptwebqq_rotation = Some(secs_arg("ptwebqq-rotation", v)?);
    }
    if let Some(v) = args.chatter {
        c.chatter = Some(secs_arg("chatter", v)?);
    }
    if let Some(v) = args.idle_answer {
        c.idle_answer = v;
    }
    if args.no_echo {
        c.echo = false;
    }
    if let Some(v) = args.poll_batch {
        c.poll_batch = v as usize;
    }
    Ok(c)
}

/// Runs `qqfleet sim` until interrupted. The first stdout line is
/// `listening on http://127.0.0.1:PORT` (tools wait for it).
pub async fn run_cli(args: SimArgs) -> Result<(), SimError> {
    let config = config_from_args(&args)?;
    // The simulator hands out cookies and sessions to anyone who asks: loopback only.
    if !args.listen.ip().is_loopback() {
        return Err(SimError::BadArgument(format!(
            "--listen {} is not a loopback address",
            args.listen
        )));
    }
    // One socket per held poll: a simulator serving 10,000 accounts needs more than the
    // usual soft limit of 1,024.
    match crate::fdlimit::raise() {
        Ok((before, after)) => tracing::info!(
            soft_before = before.soft,
            soft = after.soft,
            hard = after.hard,
            "open-file limit"
        ),
        Err(e) => tracing::warn!(error = %e, "open-file limit unreadable; not raised"),
    }
    let listener = server::bind(args.listen).map_err(|source| SimError::Bind {
        addr: args.listen,
        source,
    })?;
    let handle = serve(config, listener).await?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {}", handle.base_url());
        let _ = out.flush();
    }
    tracing::info!(addr = %handle.addr, "simulator started");
    wait_for_stop().await?;
    tracing::info!("simulator stopping");
    handle.shutdown().await;
    Ok(())
}
