//! `qqfleet login`: logs one account in by hand (a smoke path for operators).

/// Command-line arguments of `qqfleet login`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoginArgs {
    /// Base URL of a simulator (`http://127.0.0.1:PORT`); without it, the real hosts.
    #[arg(long)]
    pub sim_url: Option<String>,
    /// The QQ number the scan must match.
    #[arg(long)]
    pub qq: Option<u64>,
}

/// Runs `qqfleet login`.
pub async fn run(args: LoginArgs) -> Result<(), super::ProtocolError> {
    let _ = args;
    Ok(())
}
