//! Account files (`accounts/<id>.toml`) and their validation.
//!
//! One file per account; the file stem is the account id. A broken file never stops the
//! others: it shows up as `invalid` with an error that names the file, the line and the key,
//! taken from toml's span information (WEBQQ.md has nothing to say here; this is ours).
//!
//! ```toml
//! qq = 10001            # the number the QR scan must match
//! enabled = true
//! handler = "echo"      # echo | log
//!
//! [limits]
//! send_per_minute = 20
//! ```
//! Every key is documented in `accounts/README.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod scan;
pub use scan::{scan_dir, DirScan, Scanned};

/// Command-line arguments of `qqfleet check`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// Folder of account files.
    #[arg(long, default_value = "accounts")]
    pub accounts: std::path::PathBuf,
}

/// Errors of the config layer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConfigError {
    /// The folder or a file could not be read.
    #[error("cannot read {path}: {message}")]
    Io { path: PathBuf, message: String },
    /// A key is unknown, missing or has a bad value.
    #[error("{file}:{line}: key `{key}`: {message}")]
    Invalid {
        file: PathBuf,
        /// 1-based line of the offending key or value.
        line: usize,
        /// Dotted key path (`limits.send_per_minute`).
        key: String,
        message: String,
    },
}

/// What the account does with the messages it receives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HandlerKind {
    /// Answers every message with its own text (the demo bot).
    #[default]
    Echo,
    /// Appends every message as one JSON line to a file (`log_path`).
    Log,
    /// Serves OneBot v11 for this account (`[onebot]`, docs/ONEBOT.md).
    Onebot,
}

impl HandlerKind {
    /// The name in account files.
    pub fn as_str(self) -> &'static str {
        match self {
            HandlerKind::Echo => "echo",
            HandlerKind::Log => "log",
            HandlerKind::Onebot => "onebot",
        }
    }
}

/// How message events carry their message (OneBot v11 `post_message_format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageFormat {
    /// A string with CQ codes.
    #[default]
    String,
    /// An array of segments.
    Array,
}

/// The `[onebot]` section (issue 8's exact key names). Every key is optional: an unset key
/// takes the fleet-wide default of `qqfleet run` (`--onebot-ws-reverse`,
/// `--onebot-http-post`, `--onebot-token-file`) or the built-in one; a key set here wins.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct OneBotConfig {
    /// Token every OneBot request must carry (and that qqfleet sends to a reverse WebSocket).
    pub access_token: Option<String>,
    /// HMAC-SHA1 key of the webhook's `X-Signature`.
    pub secret: Option<String>,
    /// Webhook (HTTP POST) that receives the events.
    pub http_post_url: Option<String>,
    /// How long a webhook call may take before it counts as failed (default 5000).
    pub http_post_timeout_ms: Option<u64>,
    /// Reverse WebSocket (universal role) qqfleet connects to.
    pub ws_reverse_url: Option<String>,
    /// First reconnect delay of the reverse WebSocket (default 3000; doubles, cap 60 s).
    pub ws_reverse_reconnect_ms: Option<u64>,
    /// `string` (CQ codes, default) or `array` (segments).
    pub post_message_format: Option<MessageFormat>,
    /// Seconds between heartbeat meta events on WebSockets (default 15; 0 turns them off).
    pub heartbeat_secs: Option<u64>,
}

impl OneBotConfig {
    /// Checks the values that deserialization lets through: `(key, message)` of the first
    /// bad one. Shared by `qqfleet check` and the command-line defaults.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if let Some(u) = &self.http_post_url {
            if let Err(m) = check_url(u, &["http", "https"]) {
                return Some(("http_post_url", m));
            }
        }
        if let Some(u) = &self.ws_reverse_url {
            if let Err(m) = check_url(u, &["ws"]) {
                return Some(("ws_reverse_url", m));
            }
        }
        match self.http_post_timeout_ms {
            Some(t) if !(100..=600_000).contains(&t) => {
                return Some(("http_post_timeout_ms", "must be 100..=600000".into()))
            }
            _ => {}
        }
        match self.ws_reverse_reconnect_ms {
            Some(t) if !(100..=600_000).contains(&t) => {
                return Some(("ws_reverse_reconnect_ms", "must be 100..=600000".into()))
            }
            _ => {}
        }
        if self.heartbeat_secs.is_some_and(|h| h > 3600) {
            return Some((
                "heartbeat_secs",
                "must be 0..=3600 (0: no heartbeat)".into(),
            ));
        }
        for (key, v) in [
            ("access_token", &self.access_token),
            ("secret", &self.secret),
        ] {
            if v.as_deref()
                .is_some_and(|t| t.is_empty() || t.chars().any(|c| c.is_control()))
            {
                return Some((key, "must be non-empty printable text".into()));
            }
        }
        None
    }
}

/// A URL with one of `schemes`, or why not.
pub fn check_url(u: &str, schemes: &[&str]) -> Result<(), String> {
    let url = url::Url::parse(u).map_err(|e| format!("`{u}` is not a URL: {e}"))?;
    if !schemes.contains(&url.scheme()) {
        return Err(format!(
            "`{u}`: scheme must be {} (for wss, put a TLS proxy in front)",
            schemes.join(" or ")
        ));
    }
    if url.host_str().is_none() {
        return Err(format!("`{u}` has no host"));
    }
    Ok(())
}

/// Operator override of what a poll retcode means (the client's table is the default).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RetcodeAction {
    /// Poll again at once (treat as idle).
    Repoll,
    /// login2 again on the current session (§3.7).
    Relink,
    /// Resume with the saved cookies, else a new QR scan.
    Relogin,
    /// Stop the account until an operator acts (like a kick).
    Stop,
    /// Count a failure and wait out the backoff.
    Backoff,
}

/// What to do with an outgoing message the server answered with 1202 ("maybe not sent",
/// WEBQQ.md §8.2): it was very often delivered, so it is never resent blindly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UncertainPolicy {
    /// Find out (the default): wait a bounded time for the account's own echo of the message
    /// in poll2 (WEBQQ.md §5.4); seen → delivered; not seen → resent once with the same
    /// msg_id (a deduplicating server acknowledges it without delivering twice); still not
    /// confirmed → the account's `on_unconfirmed` fallback.
    #[default]
    Confirm,
    /// Count it as delivered (what most long-lived clients ended up doing).
    AssumeDelivered,
    /// Move it aside (kept in the store, shown by the API) for an operator to decide.
    Hold,
}

/// The fallback of `on_uncertain = "confirm"` when neither the echo nor the one resend
/// confirmed a message (`on_unconfirmed` in the account file).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnconfirmedPolicy {
    /// Move it aside for an operator (the default: nothing is dropped silently).
    #[default]
    Hold,
    /// Count it as delivered.
    AssumeDelivered,
}

/// Rate limits of one account (governor quotas). Defaults follow WEBQQ.md §8.3.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Sends per minute for the whole account (Mojo's one per 3 s).
    pub send_per_minute: u32,
    /// Sends allowed back to back before the rate applies.
    pub send_burst: u32,
    /// Sends per minute to one friend, group or discussion (about 10 a minute got 1202).
    pub target_per_minute: u32,
    /// Sends to one target allowed back to back.
    pub target_burst: u32,
    /// `get_user_friends2` calls per minute: more than 15 in 60 s gives retcode 6.
    pub friend_list_per_minute: u32,
    /// Friend-list calls allowed back to back; `burst + per_minute` must stay under 15.
    pub friend_list_burst: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            send_per_minute: 20,
            send_burst: 1,
            target_per_minute: 6,
            target_burst: 2,
            friend_list_per_minute: 8,
            friend_list_burst: 2,
        }
    }
}

/// Restart and watchdog knobs (issue 3: base 1 s, cap 5 min, parked after repeated failures).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisionConfig {
    /// First backoff ceiling; doubles per consecutive failure, with full jitter.
    pub backoff_base_ms: u64,
    /// Backoff ceiling never exceeds this.
    pub backoff_cap_secs: u64,
    /// Online this long without a failure resets the failure count.
    pub healthy_secs: u64,
    /// This many consecutive refusals by the server park the account (transport failures
    /// only back off: an outage must not park the whole fleet).
    pub park_after: u32,
    /// A poll silent for this long gets its Poller restarted (the server holds 60 s).
    pub watchdog_secs: u64,
    /// Seconds between two QR status checks (ptqrlogin).
    pub qr_check_secs: u64,
}

impl Default for SupervisionConfig {
    fn default() -> Self {
        SupervisionConfig {
            backoff_base_ms: 1000,
            backoff_cap_secs: 300,
            healthy_secs: 600,
            park_after: 8,
            watchdog_secs: 150,
            qr_check_secs: 2,
        }
    }
}

/// `[notify]`: where the account's QR codes are sent besides the desk and the terminal.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Each new QR code is POSTed here as JSON (account, QQ, desk link, PNG in base64,
    /// expiry), with bounded retries. Overrides `qqfleet run --qr-webhook-url`.
    pub qr_webhook_url: Option<String>,
}

/// Checks a webhook URL: absolute http or https. The error never repeats the URL (it may
/// carry a secret in its path or query).
pub fn check_webhook_url(url: &str) -> Result<(), String> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        Ok(_) => Err("must be an http:// or https:// URL with a host".into()),
        Err(e) => Err(format!("not a URL: {e}")),
    }
}

/// The file as written (serde shape).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccountFile {
    qq: i64,
    #[serde(default = "default_true")]
    enabled: bool,
    #[serde(default)]
    handler: HandlerKind,
    #[serde(default)]
    log_path: Option<PathBuf>,
    #[serde(default = "default_contacts_refresh")]
    contacts_refresh_secs: u64,
    #[serde(default)]
    on_uncertain: UncertainPolicy,
    #[serde(default)]
    on_unconfirmed: UnconfirmedPolicy,
    #[serde(default)]
    limits: LimitsConfig,
    #[serde(default)]
    supervision: SupervisionConfig,
    #[serde(default)]
    retcodes: BTreeMap<String, RetcodeAction>,
    #[serde(default)]
    notify: NotifyConfig,
    onebot: Option<OneBotConfig>,
    #[serde(default)]
    scan: RawScan,
}

/// `[scan]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScan {
    window: Option<String>,
}

fn default_true() -> bool {
    true
}

/// An hour: a message from a conversation missing from the contacts refreshes them at once
/// (the Account), so the timer is only a backstop for renames and removals; at 10,000
/// accounts a 10-minute timer was 17 friend-list refreshes a second while idle.
fn default_contacts_refresh() -> u64 {
    3600
}

/// One validated account file.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AccountFile {
    /// The file stem: the account's name everywhere (API, logs, store).
    pub id: String,
    /// The QQ number the scan must match.
    pub qq: u64,
    /// A disabled account is kept `stopped`.
    pub enabled: bool,
    pub handler: HandlerKind,
    /// Where the `log` handler writes; `None` means `<data>/handled/<id>.jsonl`.
    pub log_path: Option<PathBuf>,
    /// Contacts cache refresh period (Mojo refreshed every 600 s).
    pub contacts_refresh_secs: u64,
    pub on_uncertain: UncertainPolicy,
    /// The fallback of `on_uncertain = "confirm"`.
    pub on_unconfirmed: UnconfirmedPolicy,
    pub limits: LimitsConfig,
    pub supervision: SupervisionConfig,
    /// Poll retcode overrides, by retcode.
    pub retcodes: BTreeMap<i64, RetcodeAction>,
    pub notify: NotifyConfig,
    /// The `[onebot]` section (only with `handler = "onebot"`).
    pub onebot: OneBotConfig,
    /// `[scan] window`: the hours (local time) in which this account's renewal scans are
    /// asked for; overrides `qqfleet run --scan-window`.
    pub scan_window: Option<crate::scanwin::ScanWindow>,
}

impl AccountFile {
    /// How often the contacts are refreshed.
    pub fn contacts_refresh(&self) -> Duration {
        Duration::from_secs(self.contacts_refresh_secs)
    }

    /// A valid file for tests and tools.
    pub fn new(id: &str, qq: u64) -> AccountFile {
        AccountFile {
            id: id.to_string(),
            qq,
            enabled: true,
            handler: HandlerKind::Echo,
            log_path: None,
            contacts_refresh_secs: default_contacts_refresh(),
            on_uncertain: UncertainPolicy::Confirm,
            on_unconfirmed: UnconfirmedPolicy::Hold,
            limits: LimitsConfig::default(),
            supervision: SupervisionConfig::default(),
            retcodes: BTreeMap::new(),
            notify: NotifyConfig::default(),
            onebot: OneBotConfig::default(),
            scan_window: None,
        }
    }
}

/// Whether a file stem is usable as an account id (it names sled keys and URL paths).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The account id of a path, if it is an account file (`<id>.toml`).
pub fn id_of(path: &Path) -> Option<String> {
    if path.extension()? != "toml" {
        return None;
    }
    Some(path.file_stem()?.to_str()?.to_string())
}

/// Parses and validates one account file's text.
pub fn parse(file: &Path, text: &str) -> Result<AccountFile, ConfigError> {
    let id = id_of(file).unwrap_or_default();
    if !valid_id(&id) {
        return Err(ConfigError::Invalid {
            file: file.to_path_buf(),
            line: 1,
            key: "(file name)".into(),
            message: "the file stem is the account id: use 1-64 of A-Z a-z 0-9 - _".into(),
        });
    }
    let raw: RawAccountFile = toml::from_str(text).map_err(|e| toml_error(file, text, &e))?;
    let bad = |table: &str, key: &str, message: String| {
        let line = locate(text, table, key).unwrap_or(1);
        let key = if table.is_empty() {
            key.to_string()
        } else {
            format!("{table}.{key}")
        };
        ConfigError::Invalid {
            file: file.to_path_buf(),
            line,
            key,
            message,
        }
    };
    // QQ numbers start at 10000 (5 digits) and fit in 32 bits (WEBQQ.md §1).
    if !(10000..=4_294_967_295).contains(&raw.qq) {
        return Err(bad(
            "",
            "qq",
            format!("{} is not a QQ number (10000..=4294967295)", raw.qq),
        ));
    }
    let l = &raw.limits;
    for (key, v) in [
        ("send_per_minute", l.send_per_minute),
        ("send_burst", l.send_burst),
        ("target_per_minute", l.target_per_minute),
        ("target_burst", l.target_burst),
        ("friend_list_per_minute", l.friend_list_per_minute),
        ("friend_list_burst", l.friend_list_burst),
    ] {
        if v == 0 {
            return Err(bad("limits", key, "must be at least 1".into()));
        }
    }
    if l.friend_list_per_minute + l.friend_list_burst > 15 {
        return Err(bad(
            "limits",
            "friend_list_per_minute",
            format!(
                "friend_list_per_minute + friend_list_burst = {} can exceed the server's 15 calls \
                 per 60 s and trip retcode 6",
                l.friend_list_per_minute + l.friend_list_burst
            ),
        ));
    }
    let s = &raw.supervision;
    if s.backoff_base_ms == 0 {
        return Err(bad(
            "supervision",
            "backoff_base_ms",
            "must be at least 1".into(),
        ));
    }
    if s.backoff_cap_secs * 1000 < s.backoff_base_ms {
        return Err(bad(
            "supervision",
            "backoff_cap_secs",
            "must not be below backoff_base_ms".into(),
        ));
    }
    if s.park_after == 0 {
        return Err(bad(
            "supervision",
            "park_after",
            "must be at least 1".into(),
        ));
    }
    if s.watchdog_secs == 0 {
        return Err(bad(
            "supervision",
            "watchdog_secs",
            "must be at least 1".into(),
        ));
    }
    if s.qr_check_secs == 0 {
        return Err(bad(
            "supervision",
            "qr_check_secs",
            "must be at least 1".into(),
        ));
    }
    if raw.contacts_refresh_secs < 60 {
        return Err(bad(
            "",
            "contacts_refresh_secs",
            "must be at least 60 (the friend list locks out after 15 calls a minute)".into(),
        ));
    }
    if raw.handler == HandlerKind::Echo && raw.log_path.is_some() {
        return Err(bad(
            "",
            "log_path",
            "only the `log` handler writes a log".into(),
        ));
    }
    if let Some(url) = &raw.notify.qr_webhook_url {
        if let Err(m) = check_webhook_url(url) {
            return Err(bad("notify", "qr_webhook_url", m));
        }
    }
    if raw.onebot.is_some() && raw.handler != HandlerKind::Onebot {
        return Err(bad(
            "",
            "onebot",
            "only `handler = \"onebot\"` reads the [onebot] section".into(),
        ));
    }
    let onebot = raw.onebot.unwrap_or_default();
    if let Some((key, message)) = onebot.problem() {
        return Err(bad("onebot", key, message));
    }
    let scan_window = match &raw.scan.window {
        None => None,
        Some(w) => Some(w.parse().map_err(|m| bad("scan", "window", m))?),
    };
    let mut retcodes = BTreeMap::new();
    for (k, v) in raw.retcodes {
        match k.trim().parse::<i64>() {
            Ok(code) => {
                retcodes.insert(code, v);
            }
            Err(_) => {
                let line = locate(text, "retcodes", &k)
                    .or_else(|| locate(text, "retcodes", &format!("\"{k}\"")))
                    .unwrap_or(1);
                return Err(ConfigError::Invalid {
                    file: file.to_path_buf(),
                    line,
                    key: format!("retcodes.{k}"),
                    message: "retcode keys are integers, e.g. \"103\" = \"relink\"".into(),
                });
            }
        }
    }
    Ok(AccountFile {
        id,
        qq: raw.qq as u64,
        enabled: raw.enabled,
        handler: raw.handler,
        log_path: raw.log_path,
        contacts_refresh_secs: raw.contacts_refresh_secs,
        on_uncertain: raw.on_uncertain,
        on_unconfirmed: raw.on_unconfirmed,
        limits: raw.limits,
        supervision: raw.supervision,
        retcodes,
        notify: raw.notify,
        onebot,
        scan_window,
    })
}

/// Reads and validates one account file.
pub fn load(file: &Path) -> Result<AccountFile, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|e| ConfigError::Io {
        path: file.to_path_buf(),
        message: e.to_string(),
    })?;
    parse(file, &text)
}

/// Validates every account file; prints one line per error; returns the number of invalid
/// files (0 = all good).
pub fn check_cli(args: CheckArgs) -> Result<usize, ConfigError> {
    let scanned = scan_dir(&args.accounts)?;
    let mut bad = 0;
    for s in &scanned {
        match &s.file {
            Ok(f) => println!(
                "ok       {} (qq {}, handler {})",
                s.id,
                f.qq,
                f.handler.as_str()
            ),
            Err(e) => {
                bad += 1;
                eprintln!("invalid  {e}");
            }
        }
    }
    println!(
        "{} account file(s), {} valid, {} invalid",
        scanned.len(),
        scanned.len() - bad,
        bad
    );
    Ok(bad)
}

/// Turns a toml error into one naming file, line and key.
fn toml_error(file: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let message = e.message().trim().to_string();
    let (line, key) = match e.span() {
        Some(span) => {
            let line = line_of(text, span.start);
            let key = key_at(text, line).or_else(|| quoted_in(&message));
            (line, key)
        }
        None => (1, quoted_in(&message)),
    };
    // A missing field's span is the enclosing table: name the missing key instead.
    let key = if message.starts_with("missing field") {
        quoted_in(&message).or(key)
    } else {
        key
    };
    ConfigError::Invalid {
        file: file.to_path_buf(),
        line,
        key: key.unwrap_or_else(|| "(syntax)".into()),
        message,
    }
}

/// 1-based line number of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

/// The dotted key defined on `line` (1-based), with its table prefix.
fn key_at(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let this = lines.get(line.checked_sub(1)?)?.trim();
    let mut table = String::new();
    for l in lines[..line - 1].iter().rev() {
        if let Some(t) = table_header(l) {
            table = t;
            break;
        }
    }
    if let Some(t) = table_header(this) {
        return Some(t);
    }
    let (k, _) = this.split_once('=')?;
    let k = k.trim().trim_matches('"').to_string();
    Some(if table.is_empty() {
        k
    } else {
        format!("{table}.{k}")
    })
}

fn table_header(line: &str) -> Option<String> {
    let l = line.trim();
    let inner = l.strip_prefix('[')?.split(']').next()?;
    Some(inner.trim().trim_matches('[').trim().to_string())
}

/// The first `backquoted` word of a message.
fn quoted_in(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let end = message[start..].find('`')? + start;
    Some(message[start..end].to_string())
}

/// The line (1-based) where `key` is set inside `table` ("" = top level).
pub(crate) fn locate(text: &str, table: &str, key: &str) -> Option<usize> {
    let mut current = String::new();
    for (i, l) in text.lines().enumerate() {
        if let Some(t) = table_header(l) {
            current = t;
            if !table.is_empty() && current == table && key.is_empty() {
                return Some(i + 1);
            }
            continue;
        }
        if current != table {
            continue;
        }
        if let Some((k, _)) = l.split_once('=') {
            if k.trim() == key || k.trim().trim_matches('"') == key.trim_matches('"') {
                return Some(i + 1);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<AccountFile, ConfigError> {
        parse(Path::new("accounts/alice.toml"), text)
    }

    fn err(text: &str) -> (usize, String, String) {
        match p(text) {
            Err(ConfigError::Invalid {
                line, key, message, ..
            }) => (line, key, message),
            other => panic!("expected an Invalid error, got {other:?}"),
        }
    }

    #[test]
    fn onebot_section_parses_and_is_validated() {
        let f = p(r#"
qq = 10001
handler = "onebot"

[onebot]
access_token = "t0k"
secret = "s"
http_post_url = "http://127.0.0.1:8080/hook"
http_post_timeout_ms = 2000
ws_reverse_url = "ws://127.0.0.1:8080/onebot/v11/ws"
ws_reverse_reconnect_ms = 500
post_message_format = "array"
heartbeat_secs = 0
"#)
        .unwrap();
        assert_eq!(f.handler, HandlerKind::Onebot);
        assert_eq!(f.onebot.access_token.as_deref(), Some("t0k"));
        assert_eq!(f.onebot.post_message_format, Some(MessageFormat::Array));
        assert_eq!(f.onebot.heartbeat_secs, Some(0));
        let base = "qq = 10001\nhandler = \"onebot\"\n[onebot]\n";
        let (line, key, msg) = err(&format!("{base}ws_reverse_url = \"http://x/\"\n"));
        assert_eq!((line, key.as_str()), (4, "onebot.ws_reverse_url"));
        assert!(msg.contains("scheme"), "{msg}");
        let (_, key, _) = err(&format!("{base}http_post_url = \"not a url\"\n"));
        assert_eq!(key, "onebot.http_post_url");
        let (_, key, _) = err(&format!("{base}http_post_timeout_ms = 0\n"));
        assert_eq!(key, "onebot.http_post_timeout_ms");
        let (_, key, _) = err(&format!("{base}post_message_format = \"xml\"\n"));
        assert_eq!(key, "onebot.post_message_format");
        let (line, key, _) = err(&format!("{base}acces_token = \"x\"\n"));
        assert_eq!((line, key.as_str()), (4, "onebot.acces_token"));
        let (_, key, msg) = err("qq = 10001\n[onebot]\naccess_token = \"x\"\n");
        assert_eq!(key, "onebot");
        assert!(msg.contains("handler"), "{msg}");
    }

    #[test]
    fn minimal_file_gets_defaults() {
        let f = p("qq = 10001\n").unwrap();
        assert_eq!(f.id, "alice");
        assert_eq!(f.qq, 10001);
        assert!(f.enabled);
        assert_eq!(f.handler, HandlerKind::Echo);
        assert_eq!(f.limits, LimitsConfig::default());
    }

    #[test]
    fn full_file_parses() {
        let f = p(r#"
qq = 20002
enabled = false
handler = "log"
log_path = "/tmp/x.jsonl"
on_uncertain = "hold"

[limits]
send_per_minute = 600
send_burst = 10

[supervision]
watchdog_secs = 5

[retcodes]
"103" = "relink"
100012 = "repoll"
"#)
        .unwrap();
        assert!(!f.enabled);
        assert_eq!(f.handler, HandlerKind::Log);
        assert_eq!(f.on_uncertain, UncertainPolicy::Hold);
        assert_eq!(f.limits.send_per_minute, 600);
        assert_eq!(f.limits.target_per_minute, 6);
        assert_eq!(f.supervision.watchdog_secs, 5);
        assert_eq!(f.retcodes[&103], RetcodeAction::Relink);
        assert_eq!(f.retcodes[&100012], RetcodeAction::Repoll);
    }

    #[test]
    fn uncertain_sends_are_confirmed_by_default_and_held_when_unconfirmed() {
        let f = p("qq = 20003\n").unwrap();
        assert_eq!(f.on_uncertain, UncertainPolicy::Confirm);
        assert_eq!(f.on_unconfirmed, UnconfirmedPolicy::Hold);
        let f =
            p("qq = 20003\non_uncertain = \"confirm\"\non_unconfirmed = \"assume_delivered\"\n")
                .unwrap();
        assert_eq!(f.on_unconfirmed, UnconfirmedPolicy::AssumeDelivered);
        let (line, key, _) = err("qq = 20003\non_unconfirmed = \"confirm\"\n");
        assert_eq!((line, key.as_str()), (2, "on_unconfirmed"));
    }

    #[test]
    fn notify_webhook_is_checked_without_echoing_the_url() {
        let f =
            p("qq = 10001\n[notify]\nqr_webhook_url = \"https://hooks.example/q?k=1\"\n").unwrap();
        assert_eq!(
            f.notify.qr_webhook_url.as_deref(),
            Some("https://hooks.example/q?k=1")
        );
        let (line, key, msg) =
            err("qq = 10001\n[notify]\nqr_webhook_url = \"ftp://secret-host/x\"\n");
        assert_eq!((line, key.as_str()), (3, "notify.qr_webhook_url"));
        assert!(
            msg.contains("http") && !msg.contains("secret-host"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let (line, key, msg) = err("qq = 10001\nenabeld = true\n");
        assert_eq!(line, 2);
        assert_eq!(key, "enabeld");
        assert!(msg.contains("unknown field"), "{msg}");
    }

    #[test]
    fn unknown_key_in_table_is_dotted() {
        let (line, key, _) =
            err("qq = 10001\n\n[limits]\nsend_per_minute = 3\nsend_per_hour = 1\n");
        assert_eq!(line, 5);
        assert_eq!(key, "limits.send_per_hour");
    }

    #[test]
    fn bad_type_names_line_and_key() {
        let (line, key, msg) = err("qq = 10001\nhandler = \"shout\"\n");
        assert_eq!(line, 2);
        assert_eq!(key, "handler");
        assert!(msg.contains("shout") || msg.contains("variant"), "{msg}");
        let (line, key, _) = err("qq = 10001\n[limits]\nsend_burst = \"many\"\n");
        assert_eq!(line, 3);
        assert_eq!(key, "limits.send_burst");
    }

    #[test]
    fn missing_qq_is_named() {
        let (_, key, msg) = err("enabled = true\n");
        assert_eq!(key, "qq");
        assert!(msg.contains("missing"), "{msg}");
    }

    #[test]
    fn semantic_errors_name_line_and_key() {
        let (line, key, _) = err("enabled = true\nqq = 12\n");
        assert_eq!((line, key.as_str()), (2, "qq"));
        let (line, key, _) = err("qq = 10001\n[limits]\nfriend_list_per_minute = 14\n");
        assert_eq!((line, key.as_str()), (3, "limits.friend_list_per_minute"));
        let (line, key, _) = err("qq = 10001\n[limits]\nsend_burst = 0\n");
        assert_eq!((line, key.as_str()), (3, "limits.send_burst"));
        let (line, key, _) = err("qq = 10001\n[retcodes]\nabc = \"relink\"\n");
        assert_eq!((line, key.as_str()), (3, "retcodes.abc"));
        let (_, key, _) = err("qq = 10001\n[retcodes]\n\"103\" = \"explode\"\n");
        assert_eq!(key, "retcodes.103");
    }

    #[test]
    fn syntax_error_has_a_line() {
        let (line, _, _) = err("qq = 10001\n[limits\n");
        assert_eq!(line, 2);
    }

    #[test]
    fn bad_stem_is_invalid() {
        let e = parse(Path::new("accounts/bad name.toml"), "qq = 10001\n").unwrap_err();
        assert!(e.to_string().contains("file name"), "{e}");
    }

    #[test]
    fn scan_window_is_checked() {
        let f = p("qq = 10001\n[scan]\nwindow = \"22:00-06:00\"\n").unwrap();
        assert_eq!(
            f.scan_window.map(|w| w.to_string()).as_deref(),
            Some("22:00-06:00")
        );
        assert_eq!(p("qq = 10001\n").unwrap().scan_window, None);
        let (line, key, msg) = err("qq = 10001\n[scan]\nwindow = \"25:00-06:00\"\n");
        assert_eq!((line, key.as_str()), (3, "scan.window"));
        assert!(msg.contains("25:00"), "{msg}");
    }

    #[test]
    fn display_names_file_line_key() {
        let e = p("qq = 10001\nbogus = 1\n").unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("accounts/alice.toml:2: key `bogus`"), "{s}");
    }

    #[test]
    fn scan_dir_flags_duplicate_qq_and_keeps_others() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), "qq = 10001\n").unwrap();
        std::fs::write(dir.path().join("b.toml"), "qq = 10001\n").unwrap();
        std::fs::write(dir.path().join("c.toml"), "qq = 10003\nx = 1\n").unwrap();
        std::fs::write(dir.path().join("d.toml"), "qq = 10004\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let s = scan_dir(dir.path()).unwrap();
        let ids: Vec<_> = s.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "d"]);
        assert!(s[0].file.is_ok());
        assert!(s[1]
            .file
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("already used"));
        assert!(s[2].file.is_err());
        assert!(s[3].file.is_ok());
        assert_ne!(s[0].fingerprint, s[3].fingerprint);
    }

    #[test]
    fn shipped_demo_accounts_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("accounts");
        let s = scan_dir(&dir).unwrap();
        assert!(s.len() >= 3, "three demo accounts ship in accounts/");
        for f in s {
            f.file.unwrap();
        }
    }
}
