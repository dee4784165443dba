//! `qqfleet status` and `qqfleet qr ID`: the admin API from a terminal, for operators on SSH
//! and for scripts and monitors (`--check`).
//!
//! Both read the admin token from a file (`--token-file`, default `data/admin.token`, the
//! file `qqfleet run` creates) and send it as `Authorization: Bearer`; its value is never
//! printed. `--watch` follows `GET /api/events` (the server pushes each change; nothing here
//! polls) and redraws the table on each.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

/// Exit code of `--check` when an account is not online.
pub const EXIT_NOT_ONLINE: i32 = 1;
/// Exit code when the fleet cannot be asked (unreachable, refused token, bad answer).
pub const EXIT_ERROR: i32 = 2;

/// Where and how to reach the admin API.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiArgs {
    /// Base URL of the fleet's admin API (`qqfleet run --listen`).
    #[arg(long, env = "QQFLEET_URL", default_value = "http://127.0.0.1:9400")]
    pub url: String,
    /// File holding the admin token (`qqfleet run --admin-token-file`, or the
    /// `<data>/admin.token` it created).
    #[arg(long, env = "QQFLEET_TOKEN_FILE", default_value = "data/admin.token")]
    pub token_file: PathBuf,
}

/// Command-line arguments of `qqfleet status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Print the accounts as JSON (the API's list) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Keep the table on screen, redrawn as the server pushes changes (Ctrl-C ends it).
    #[arg(long, conflicts_with = "check")]
    pub watch: bool,
    /// Exit 1 when an account is not online (2 when the fleet cannot be asked).
    #[arg(long)]
    pub check: bool,
}

/// Command-line arguments of `qqfleet qr`.
#[derive(Debug, Clone, clap::Args)]
pub struct QrArgs {
    /// The account (its file name without `.toml`).
    pub id: String,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Why the API could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("admin token file {path}: {message}")]
    Token { path: PathBuf, message: String },
    #[error("{url}: {message}")]
    Request { url: String, message: String },
    #[error("{url}: {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    fn new(args: &ApiArgs, timeout: Option<Duration>) -> Result<Api, CliError> {
        let token = std::fs::read_to_string(&args.token_file).map_err(|e| CliError::Token {
            path: args.token_file.clone(),
            message: e.to_string(),
        })?;
        let mut headers = reqwest::header::HeaderMap::new();
        let value = format!("Bearer {}", token.trim())
            .parse()
            .map_err(|_| CliError::Token {
                path: args.token_file.clone(),
                message: "not a usable token (one line of printable characters)".into(),
            })?;
        headers.insert(reqwest::header::AUTHORIZATION, value);
        let mut b = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(5));
        if let Some(t) = timeout {
            b = b.timeout(t);
        }
        let http = b.build().map_err(|e| CliError::Request {
            url: args.url.clone(),
            message: e.to_string(),
        })?;
        Ok(Api {
            base: args.url.trim_end_matches('/').to_string(),
            http,
        })
    }

    async fn get(&self, path: &str) -> Result<reqwest::Response, CliError> {
        let url = format!("{}{path}", self.base);
        let r = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| CliError::Request {
                url: url.clone(),
                message: e.without_url().to_string(),
            })?;
        if !r.status().is_success() {
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            let message = body["error"]
                .as_str()
                .unwrap_or("unexpected answer")
                .to_string();
            return Err(CliError::Status {
                url,
                status,
                message,
            });
        }
        Ok(r)
    }

    async fn json(&self, path: &str) -> Result<Value, CliError> {
        let url = format!("{}{path}", self.base);
        self.get(path)
            .await?
            .json()
            .await
            .map_err(|e| CliError::Request {
                url,
                message: format!("not JSON: {}", e.without_url()),
            })
    }
}

/// Runs `qqfleet status`; returns the process exit code.
pub async fn status(args: StatusArgs) -> i32 {
    match status_inner(&args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("qqfleet status: {e}");
            EXIT_ERROR
        }
    }
}

async fn status_inner(args: &StatusArgs) -> Result<i32, CliError> {
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    if args.watch {
        return watch(args, color).await;
    }
    let api = Api::new(&args.api, Some(Duration::from_secs(10)))?;
    let list = api.json("/api/accounts").await?;
    let rows = list.as_array().cloned().unwrap_or_default();
    let mut out = std::io::stdout().lock();
    if args.json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&list).unwrap_or_default()
        );
    } else {
        let _ = out.write_all(table(&rows, color, now_secs()).as_bytes());
    }
    let _ = out.flush();
    if args.check && rows.iter().any(|r| r["state"] != "online") {
        return Ok(EXIT_NOT_ONLINE);
    }
    Ok(0)
}

/// Follows `/api/events`: the first events are every account, then each change.
async fn watch(args: &StatusArgs, color: bool) -> Result<i32, CliError> {
    let api = Api::new(&args.api, None)?;
    let mut resp = api.get("/api/events").await?;
    let url = format!("{}/api/events", api.base);
    let mut rows: BTreeMap<String, Value> = BTreeMap::new();
    let mut buf = String::new();
    loop {
        let chunk = resp.chunk().await.map_err(|e| CliError::Request {
            url: url.clone(),
            message: e.without_url().to_string(),
        })?;
        let Some(chunk) = chunk else {
            eprintln!("qqfleet status: the fleet closed the event stream");
            return Ok(EXIT_ERROR);
        };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        let mut changed = false;
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            for line in block.lines() {
                let Some(data) = line.strip_prefix("data:") else {
                    continue;
                };
                let Ok(ev) = serde_json::from_str::<Value>(data.trim()) else {
                    continue;
                };
                let Some(id) = ev["account"].as_str() else {
                    continue;
                };
                if args.json {
                    println!("{ev}");
                    continue;
                }
                if ev["kind"] == "removed" {
                    rows.remove(id);
                } else if ev["status"].is_object() {
                    rows.insert(id.to_string(), ev["status"].clone());
                }
                changed = true;
            }
        }
        if changed {
            let list: Vec<Value> = rows.values().cloned().collect();
            let mut out = std::io::stdout().lock();
            if color {
                // Clear the screen and home the cursor: the table replaces itself.
                let _ = out.write_all(b"\x1b[2J\x1b[H");
            }
            let _ = out.write_all(table(&list, color, now_secs()).as_bytes());
            let _ = out.flush();
        }
    }
}

/// Runs `qqfleet qr ID`; returns the process exit code.
pub async fn qr(args: QrArgs) -> i32 {
    match qr_inner(&args).await {
        Ok(text) => {
            print!("{text}");
            0
        }
        Err(e) => {
            eprintln!("qqfleet qr: {e}");
            EXIT_ERROR
        }
    }
}

async fn qr_inner(args: &QrArgs) -> Result<String, CliError> {
    let api = Api::new(&args.api, Some(Duration::from_secs(10)))?;
    let id = &args.id;
    let acc = api.json(&format!("/api/accounts/{id}")).await?;
    let state = acc["state"].as_str().unwrap_or("?");
    if state != "awaiting_scan" {
        return Err(CliError::Status {
            url: format!("{}/api/accounts/{id}", api.base),
            status: 409,
            message: format!("account `{id}` is {state}, not waiting for a scan"),
        });
    }
    let path = format!("/api/accounts/{id}/qr");
    let url = format!("{}{path}", api.base);
    let png = api
        .get(&path)
        .await?
        .bytes()
        .await
        .map_err(|e| CliError::Request {
            url: url.clone(),
            message: e.without_url().to_string(),
        })?;
    let content = crate::fleet::login::decode_qr(&png).ok_or_else(|| CliError::Request {
        url: url.clone(),
        message: "the PNG holds no readable QR code".into(),
    })?;
    let art = qrcode::QrCode::new(content.as_bytes())
        .map_err(|e| CliError::Request {
            url,
            message: e.to_string(),
        })?
        .render::<qrcode::render::unicode::Dense1x2>()
        .quiet_zone(true)
        .build();
    let qq = acc["qq"]
        .as_u64()
        .map_or("?".to_string(), |q| q.to_string());
    let expires = acc["qr"]["expires_at"].as_str().unwrap_or("?");
    Ok(format!(
        "{id}: scan with the QQ app logged in as {qq} (expires {expires}):\n{art}\n"
    ))
}

/// The fleet as a table; ANSI colours for the state when `color`.
pub fn table(rows: &[Value], color: bool, now: i64) -> String {
    let header = [
        "ID",
        "QQ",
        "STATE",
        "SINCE",
        "LAST POLL",
        "SESSION",
        "OUTBOX",
        "HELD",
        "ERROR",
    ];
    let mut cells: Vec<[String; 9]> = Vec::with_capacity(rows.len());
    for r in rows {
        let s = |k: &str| r[k].as_str().map(str::to_string);
        let n = |k: &str| r[k].as_u64().map_or("-".to_string(), |v| v.to_string());
        let session = r["session"]["expires_at_estimate"]
            .as_str()
            .and_then(parse_rfc3339)
            .map_or("-".to_string(), |t| {
                if t <= now {
                    "scan now".to_string()
                } else {
                    format!("scan in {}", span(t - now))
                }
            });
        cells.push([
            s("id").unwrap_or_default(),
            r["qq"].as_u64().map_or("?".to_string(), |v| v.to_string()),
            s("state").unwrap_or_default(),
            s("since")
                .and_then(|t| parse_rfc3339(&t))
                .map_or("-".to_string(), |t| span(now - t)),
            s("last_poll_at")
                .and_then(|t| parse_rfc3339(&t))
                .map_or("-".to_string(), |t| format!("{} ago", span(now - t))),
            session,
            n("outbox"),
            n("held"),
            s("error").unwrap_or_default().replace('\n', " "),
        ]);
    }
    let mut widths = header.map(str::len);
    for c in &cells {
        for (i, v) in c.iter().enumerate() {
            widths[i] = widths[i].max(v.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, vals: &[String], state_color: Option<&str>| {
        for (i, v) in vals.iter().enumerate() {
            let pad = widths[i].saturating_sub(v.chars().count());
            let last = i == vals.len() - 1;
            match (i, state_color) {
                (2, Some(c)) => out.push_str(&format!("\x1b[{c}m{v}\x1b[0m")),
                _ => out.push_str(v),
            }
            if !last {
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        // No trailing spaces (the error column may be empty).
        while out.ends_with(' ') {
            out.pop();
        }
        out.push('\n');
    };
    let head: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    line(&mut out, &head, None);
    for c in &cells {
        let code = color.then(|| state_color(&c[2]));
        line(&mut out, c, code);
    }
    let online = cells.iter().filter(|c| c[2] == "online").count();
    out.push_str(&format!("{online}/{} online\n", cells.len()));
    out
}

/// ANSI SGR code of a state, the desk's colours in the terminal's palette.
fn state_color(state: &str) -> &'static str {
    match state {
        "online" => "32",
        "awaiting_scan" => "33;1",
        "logging_in" | "starting" => "36",
        "backoff" => "33",
        "parked" | "invalid" => "31;1",
        "stopped" => "35",
        _ => "0",
    }
}

fn span(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=172_799 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d", s / 86_400),
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Unix seconds of an RFC 3339 UTC time as the API writes it (`2026-11-30T11:17:19.000Z`).
pub fn parse_rfc3339(t: &str) -> Option<i64> {
    let n = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::status::rfc3339;

    #[test]
    fn rfc3339_parses_back() {
        for t in [0, 951_782_400, 1_546_300_800, 1_796_000_123] {
            assert_eq!(parse_rfc3339(&rfc3339(t, 5)), Some(t));
        }
        assert_eq!(parse_rfc3339("nonsense"), None);
    }

    #[test]
    fn table_is_plain_without_color_and_colored_with_it() {
        let now = 1_800_000_000;
        let rows = vec![
            serde_json::json!({"id":"a","qq":1,"state":"online","since":rfc3339(now - 90, 0),
                "session":{"expires_at_estimate":rfc3339(now + 7 * 3600, 0)},"outbox":0,"held":0}),
            serde_json::json!({"id":"bb","qq":2,"state":"awaiting_scan","since":rfc3339(now - 5, 0),
                "error":"scan the QR code with QQ 2"}),
        ];
        let plain = table(&rows, false, now);
        assert!(!plain.contains('\x1b'), "{plain}");
        let lines: Vec<&str> = plain.lines().collect();
        assert!(lines[0].starts_with("ID  QQ  STATE"), "{plain}");
        assert!(
            lines[1].contains("online") && lines[1].contains("scan in 7h00m"),
            "{plain}"
        );
        assert!(
            lines[2].contains("awaiting_scan") && lines[2].ends_with("with QQ 2"),
            "{plain}"
        );
        assert_eq!(lines[3], "1/2 online");
        let colored = table(&rows, true, now);
        assert!(colored.contains("\x1b[32monline\x1b[0m"), "{colored}");
    }
}
