//! The WebQQ simulator.

/// Command-line arguments of `qqfleet sim`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8900")]
    pub listen: std::net::SocketAddr,
}

/// Errors of the simulator layer.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Runs `qqfleet sim` until interrupted.
pub async fn run_cli(args: SimArgs) -> Result<(), SimError> {
    let _ = args;
    Ok(())
}
