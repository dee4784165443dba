//! The `qqfleet` command line: thin wiring from subcommands to the library.

use clap::{Parser, Subcommand};
use qqfleet::logging::{self, LogFormat};

#[derive(Parser)]
#[command(
    name = "qqfleet",
    version,
    about = "A fleet of QQ bot accounts over WebQQ, and its simulator"
)]
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
    /// Run the fleet of accounts in a folder.
    Run(qqfleet::run::RunArgs),
    /// Validate every account file and exit non-zero on errors.
    Check(qqfleet::config::CheckArgs),
    /// Log one account in by hand: QR in the terminal, contacts, incoming messages.
    Login(qqfleet::protocol::login_cli::LoginArgs),
    /// Move an account's durable state: `export --data DIR ID > FILE`, `import --data DIR FILE`.
    Account(qqfleet::transfer::AccountArgs),
    /// The running fleet as a table (or JSON); `--check` exits 1 unless all are online.
    Status(qqfleet::status_cli::StatusArgs),
    /// Draw an account's current QR code in the terminal.
    Qr(qqfleet::status_cli::QrArgs),
}

fn main() -> anyhow::Result<()> {
    qqfleet::heap::configure();
    let cli = Cli::parse();
    logging::init(cli.log_format);
    match cli.cmd {
        Cmd::Sim(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(qqfleet::sim::run_cli(args))?;
        }
        Cmd::Run(args) => qqfleet::run::run(args)?,
        Cmd::Account(args) => {
            let done = qqfleet::transfer::account_cli(args)?;
            eprintln!("{done}");
        }
        Cmd::Check(args) => {
            let bad = qqfleet::config::check_cli(args)?;
            if bad > 0 {
                std::process::exit(1);
            }
        }
        Cmd::Login(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(qqfleet::protocol::login_cli::run(args))?;
        }
        Cmd::Status(args) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            std::process::exit(rt.block_on(qqfleet::status_cli::status(args)));
        }
        Cmd::Qr(args) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            std::process::exit(rt.block_on(qqfleet::status_cli::qr(args)));
        }
    }
    Ok(())
}
