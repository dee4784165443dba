//! The `qqfleet` command line: thin wiring from subcommands to the library.

use clap::{Parser, Subcommand};
use qqfleet::logging::{self, LogFormat};

#[derive(Parser)]
#[command(name = "qqfleet", version, about = "A fleet of QQ bot accounts over WebQQ, and its simulator")]
struct Cli {
    /// Log line format.
    #[arg(long, value_enum, global = true, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the WebQQ simulator.
    Sim(qqfleet::sim::SimArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    match cli.cmd {
        Cmd::Sim(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(qqfleet::sim::run_cli(args))?;
        }
    }
    Ok(())
}
