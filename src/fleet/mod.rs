//! The fleet: one supervised actix actor per QQ account, with Login, Poller and Sender children.

pub mod state;

pub use state::AccountState;

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
}

/// Errors of the fleet layer.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// Not built yet.
    #[error("qqfleet run is not available yet")]
    NotYet,
}

/// Runs `qqfleet run` until SIGINT or SIGTERM.
pub fn run(args: RunArgs) -> Result<(), FleetError> {
    let _ = args;
    Err(FleetError::NotYet)
}
