//! Tracing setup shared by every subcommand.
//!
//! Human-readable lines by default; `--log-format json` for machines. The filter comes from
//! `RUST_LOG` (default `info`). Logs go to stderr so that stdout stays free for the lines that
//! tools read (the simulator's `listening on ...`).
//!
//! Every line about an account carries its id as the `account` field: the events of
//! [`crate::events`] have it as a field, and work done for one account runs inside
//! [`account_span`], whose field every line within inherits (text: `account{account=..}:`
//! prefix; JSON: the `span`/`spans` objects).
//!
//! Secrets (cookies, ptwebqq, skey, psessionid, vfwebqq) are never logged: nothing logs a
//! request URL, body or header, and the events carry no such field.

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The format chosen by [`init`]: a process-wide choice made once, like the subscriber.
static FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

/// The log format of this process ([`LogFormat::Text`] before [`init`]). Whatever else
/// writes to stderr asks it: in JSON every stderr line must stay a JSON object, so the
/// terminal QR art is left out.
pub fn format() -> LogFormat {
    FORMAT.get().copied().unwrap_or_default()
}

/// Installs the global subscriber. Calling it twice is harmless (the second call is ignored),
/// which keeps tests that start several components in one process simple.
pub fn init(format: LogFormat) {
    let _ = FORMAT.set(format);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // try_init also routes the `log` records of dependencies into the same subscriber.
    // Colours only on a terminal: a log file or a pipe gets plain lines a grep can read.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = subscriber(format, filter, std::io::stderr, ansi).try_init();
}

/// The subscriber [`init`] installs, writing to `writer`: separate so tests can capture the
/// exact lines a run would print.
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(guard_secrets(filter))
        .with_writer(writer)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => Box::new(builder.finish()),
        LogFormat::Json => Box::new(builder.json().finish()),
    }
}

/// Log targets of dependencies that print secrets at debug level, with the most they may log.
/// `cookie_store` logs every `Set-Cookie` it stores, values included (skey, ptwebqq,
/// p_skey, superkey, ...), so `RUST_LOG=debug` would otherwise write every session's cookies
/// to the log; found by the full-run log test (`tests/metrics_secrets_run.rs`).
pub const SECRET_TARGETS: [&str; 2] = ["cookie_store", "reqwest_cookie_store"];

/// Caps [`SECRET_TARGETS`] at `warn`, whatever `RUST_LOG` says: a directive for the same
/// target replaces the operator's, so not even `RUST_LOG=cookie_store=trace` brings them back.
fn guard_secrets(mut filter: EnvFilter) -> EnvFilter {
    for target in SECRET_TARGETS {
        filter = filter.add_directive(format!("{target}=warn").parse().expect("valid directive"));
    }
    filter
}

/// The span to run an account's work in, so every line logged inside carries its id.
pub fn account_span(account: &str) -> tracing::Span {
    tracing::info_span!("account", account = account)
}
