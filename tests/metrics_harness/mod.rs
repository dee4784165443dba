//! Shared helpers of the observability tests: the Prometheus tools, a real Prometheus server
//! on loopback, a minimal HTTP client, and the metric text helpers.
//!
//! The Prometheus tools are required, never optional: a test that silently passes when
//! `promtool` is missing would prove nothing in CI, which installs the `prometheus` package.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to get the tools, repeated in every failure so the fix is one line away.
const INSTALL: &str =
    "install Prometheus and promtool: apt-get install --no-install-recommends prometheus";

/// Finds a Prometheus tool (`prometheus`, `promtool`) on PATH or in /usr/bin; panics if absent.
pub fn tool(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.push(PathBuf::from("/usr/bin"));
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found; {INSTALL}"))
}

/// Runs promtool with `args` and `stdin`, returns (success, stdout + stderr).
pub fn promtool(args: &[&str], stdin: Option<&str>, dir: Option<&Path>) -> (bool, String) {
    let mut cmd = Command::new(tool("promtool"));
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let mut child = cmd.spawn().expect("promtool starts");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .expect("write to promtool");
    }
    let out = child.wait_with_output().expect("promtool finishes");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The crate's root folder (dashboards, docs).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[path = "../ports/mod.rs"]
mod ports;
pub use ports::free_port;

/// An HTTP answer: status code and body.
pub struct Response {
    pub status: u16,
    /// The status line and headers.
    pub head: String,
    pub body: String,
}

/// One HTTP/1.0 request over a fresh connection. HTTP/1.0 keeps the answer unchunked and the
/// connection closed at its end, so reading to EOF is the whole body.
/// The admin token of the fleets started by [`Qqfleet::start`]; [`http`] sends it on every
/// request (the simulator and `/metrics` ignore it).
pub const ADMIN_TOKEN: &str = "qqfleet-test-admin-token-0123456789";

pub fn http(method: &str, addr: &str, path: &str, body: Option<&str>) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no HTTP head in {raw:?}")))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    Ok(Response {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}

/// Percent-encodes a query parameter value.
pub fn encode(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// Polls `f` every 100 ms until it returns `Some`, or panics with `what` after `limit`.
pub fn poll_until<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A real Prometheus server on loopback, with its own data folder, killed on drop.
pub struct Prometheus {
    child: Child,
    /// `127.0.0.1:PORT` of its HTTP API.
    pub addr: String,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (`host:port`) every second and evaluating
    /// `rule_files` every second, and waits until it is ready.
    ///
    /// Runs as the current user: the Debian build runs fine as root, and the data folder is a
    /// fresh temporary one.
    pub fn start(targets: &[String], rule_files: &[PathBuf]) -> Prometheus {
        let mut dir = tempfile::tempdir().expect("temp dir");
        let targets = targets
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let rules = rule_files
            .iter()
            .map(|r| format!("  - '{}'\n", r.display()))
            .collect::<String>();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n{rules}\
             scrape_configs:\n  - job_name: qqfleet\n    static_configs:\n      - targets: [{targets}]\n"
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, &config).expect("write prometheus.yml");
        let (ok, out) = promtool(
            &["check", "config", config_path.to_str().unwrap()],
            None,
            None,
        );
        assert!(ok, "promtool check config:\n{out}\n{config}");

        // The port is chosen before the bind; retry on the rare race with another process.
        for _ in 0..5 {
            let addr = format!("127.0.0.1:{}", free_port());
            let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
            let child = Command::new(tool("prometheus"))
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .arg("--log.level=warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("prometheus starts");
            let mut p = Prometheus { child, addr, dir };
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok(Some(_)) = p.child.try_wait() {
                    break; // exited: most likely the port was taken; try another
                }
                if let Ok(r) = http("GET", &p.addr, "/-/ready", None) {
                    if r.status == 200 {
                        return p;
                    }
                }
                if Instant::now() > deadline {
                    panic!("prometheus not ready after 20 s:\n{}", p.log());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            eprintln!("prometheus exited early, retrying:\n{}", p.log());
            dir = std::mem::replace(&mut p.dir, tempfile::tempdir().unwrap());
        }
        panic!("prometheus did not start in 5 attempts");
    }

    /// Its log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `/api/v1/query` at the current time: `Ok(data)` on `status: success`, else `Err(error)`.
    pub fn query(&self, expr: &str) -> Result<serde_json::Value, String> {
        let r = http(
            "GET",
            &self.addr,
            &format!("/api/v1/query?query={}", encode(expr)),
            None,
        )
        .map_err(|e| e.to_string())?;
        let v: serde_json::Value = serde_json::from_str(&r.body)
            .map_err(|e| format!("HTTP {}: {e}: {}", r.status, r.body))?;
        if v["status"] == "success" {
            Ok(v["data"].clone())
        } else {
            Err(format!("{}: {}", v["errorType"], v["error"]))
        }
    }

    /// The result vector of an instant query (panics on a query error).
    pub fn vector(&self, expr: &str) -> Vec<serde_json::Value> {
        let data = self
            .query(expr)
            .unwrap_or_else(|e| panic!("query {expr:?} failed: {e}"));
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until `expr` returns at least one series, and returns them.
    pub fn wait_for(&self, expr: &str, limit: Duration) -> Vec<serde_json::Value> {
        poll_until(limit, &format!("{expr} to return data"), || {
            let v = self.vector(expr);
            (!v.is_empty()).then_some(v)
        })
    }

    /// `/api/v1/targets` health of every active target.
    pub fn target_health(&self) -> Vec<String> {
        let r = http("GET", &self.addr, "/api/v1/targets", None).expect("targets");
        let v: serde_json::Value = serde_json::from_str(&r.body).expect("targets json");
        v["data"]["activeTargets"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|t| format!("{} {} {}", t["scrapeUrl"], t["health"], t["lastError"]))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The exposition lines (one per series) of a `/metrics` text, comments dropped.
pub fn series_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// The metric name of an exposition line.
pub fn series_name(line: &str) -> &str {
    let end = line.find(['{', ' ']).unwrap_or(line.len());
    &line[..end]
}

/// Whether an exposition line carries `label="value"`.
pub fn has_label(line: &str, label: &str, value: &str) -> bool {
    let (Some(open), Some(close)) = (line.find('{'), line.rfind('}')) else {
        return false;
    };
    line[open + 1..close]
        .split(',')
        .any(|pair| pair == format!("{label}=\"{value}\""))
}

/// One query of one dashboard panel.
#[derive(Clone, Debug)]
pub struct PanelQuery {
    pub panel_id: u64,
    pub title: String,
    pub ref_id: String,
    /// The expression as written in the dashboard, with Grafana variables.
    pub expr: String,
    /// Grafana runs it as an instant query (tables), else as a range query.
    pub instant: bool,
}

/// `dashboards/qqfleet.json`, parsed.
pub fn dashboard() -> serde_json::Value {
    let path = repo().join("dashboards/qqfleet.json");
    let text = std::fs::read_to_string(&path).expect("read dashboards/qqfleet.json");
    serde_json::from_str(&text).expect("dashboards/qqfleet.json is JSON")
}

/// Every panel of a dashboard, with the panels nested in collapsed rows.
pub fn all_panels(dash: &serde_json::Value) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for p in dash["panels"].as_array().expect("panels array") {
        out.push(p.clone());
        if let Some(inner) = p["panels"].as_array() {
            out.extend(inner.iter().cloned());
        }
    }
    out
}

/// Every query of every panel of the dashboard.
pub fn panel_queries(dash: &serde_json::Value) -> Vec<PanelQuery> {
    let mut out = Vec::new();
    for p in all_panels(dash) {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push(PanelQuery {
                panel_id: p["id"].as_u64().expect("panel id"),
                title: p["title"].as_str().unwrap_or_default().to_owned(),
                ref_id: t["refId"].as_str().unwrap_or_default().to_owned(),
                expr: t["expr"].as_str().unwrap_or_default().to_owned(),
                instant: t["instant"].as_bool().unwrap_or(false),
            });
        }
    }
    out
}

/// Values for the Grafana variables and macros a dashboard expression may use.
pub struct Macros {
    /// `$__rate_interval`: Grafana makes it at least four scrape intervals.
    pub rate_interval: String,
    /// `$__interval`: the step of a range query.
    pub interval: String,
    /// `$__range`: the dashboard's time range.
    pub range: String,
    /// `$account`: a regex of account ids (`.*` for All).
    pub account: String,
}

/// Substitutes the Grafana variables of `expr` (both `$x` and `${x}` forms), longest names
/// first so `$__rate_interval` is not read as `$__range` plus text.
pub fn substitute(expr: &str, m: &Macros) -> String {
    let mut s = expr.to_owned();
    // Every shard (the dashboard's `instance` variable at "All").
    let all_instances = ".*".to_string();
    for (name, value) in [
        ("instance", &all_instances),
        ("__rate_interval", &m.rate_interval),
        ("__interval", &m.interval),
        ("__range", &m.range),
        ("account", &m.account),
    ] {
        s = s.replace(&format!("${{{name}}}"), value);
        s = s.replace(&format!("${name}"), value);
    }
    s
}

/// The metric names an expression reads: identifiers starting with `qqfleet_` or `process_`
/// (the only families the dashboards and alerts may use).
pub fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < bytes.len()
                && ((bytes[i] as char).is_ascii_alphanumeric()
                    || bytes[i] == b'_'
                    || bytes[i] == b':')
            {
                i += 1;
            }
            let word = &expr[start..i];
            // Skip label values and matchers: a word inside quotes is preceded by a quote.
            let quoted = start > 0 && bytes[start - 1] == b'"';
            if !quoted && (word.starts_with("qqfleet_") || word.starts_with("process_")) {
                out.push(word.to_owned());
            }
        } else {
            i += 1;
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Seconds since the Unix epoch, as Prometheus' API takes times.
pub fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

impl Prometheus {
    /// `/api/v1/query_range` from `start` to now with a 1 s step: the result matrix.
    pub fn query_range(&self, expr: &str, start: f64) -> Result<Vec<serde_json::Value>, String> {
        let end = now_unix();
        let path = format!(
            "/api/v1/query_range?query={}&start={start:.3}&end={end:.3}&step=1",
            encode(expr)
        );
        let r = http("GET", &self.addr, &path, None).map_err(|e| e.to_string())?;
        let v: serde_json::Value = serde_json::from_str(&r.body)
            .map_err(|e| format!("HTTP {}: {e}: {}", r.status, r.body))?;
        if v["status"] == "success" {
            Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
        } else {
            Err(format!("{}: {}", v["errorType"], v["error"]))
        }
    }

    /// Evaluates every panel query of the dashboard the way Grafana would (instant for
    /// tables, range from `start` otherwise), with `macros` substituted. Returns the problems:
    /// a query Prometheus rejects, or one that returns no data unless its panel title is in
    /// `may_be_empty`.
    pub fn dashboard_problems(
        &self,
        macros: &Macros,
        start: f64,
        may_be_empty: &[&str],
    ) -> Vec<String> {
        let mut problems = Vec::new();
        for q in panel_queries(&dashboard()) {
            let expr = substitute(&q.expr, macros);
            let result = if q.instant {
                self.query(&expr)
                    .map(|d| d["result"].as_array().cloned().unwrap_or_default())
            } else {
                self.query_range(&expr, start)
            };
            match result {
                Err(e) => problems.push(format!(
                    "panel {} {:?} {}: {expr}: {e}",
                    q.panel_id, q.title, q.ref_id
                )),
                Ok(r) if r.is_empty() && !may_be_empty.contains(&q.title.as_str()) => problems
                    .push(format!(
                        "panel {} {:?} {}: no data: {expr}",
                        q.panel_id, q.title, q.ref_id
                    )),
                Ok(_) => {}
            }
        }
        problems
    }

    /// Polls until every panel query returns data under each set of macros (with the panel
    /// titles that may be empty under it), or panics with the problems left at the deadline.
    pub fn wait_dashboard_ok(&self, sets: &[(&Macros, &[&str])], start: f64, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let problems: Vec<String> = sets
                .iter()
                .flat_map(|(m, empty)| self.dashboard_problems(m, start, empty))
                .collect();
            if problems.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                panic!("dashboard panels after {limit:?}:\n{}", problems.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Every alerting rule Prometheus loaded, as `/api/v1/rules` reports it, once each has been
    /// evaluated at least once.
    pub fn evaluated_alert_rules(&self, limit: Duration) -> Vec<serde_json::Value> {
        poll_until(limit, "every rule evaluated", || {
            let r = http("GET", &self.addr, "/api/v1/rules?type=alert", None).ok()?;
            let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
            let rules: Vec<serde_json::Value> = v["data"]["groups"]
                .as_array()?
                .iter()
                .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                .collect();
            let evaluated = !rules.is_empty()
                && rules.iter().all(|r| {
                    r["lastEvaluation"]
                        .as_str()
                        .is_some_and(|t| !t.starts_with("0001-"))
                });
            evaluated.then_some(rules)
        })
    }

    /// The active alerts (pending or firing): (alertname, state, labels).
    pub fn alerts(&self) -> Vec<(String, String, serde_json::Value)> {
        let r = http("GET", &self.addr, "/api/v1/alerts", None).expect("alerts");
        let v: serde_json::Value = serde_json::from_str(&r.body).expect("alerts json");
        v["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                (
                    a["labels"]["alertname"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    a["state"].as_str().unwrap_or_default().to_owned(),
                    a["labels"].clone(),
                )
            })
            .collect()
    }
}

/// Checks every loaded alerting rule: healthy in Prometheus, and its expression accepted by
/// the query API. Returns the problems.
pub fn alert_rule_problems(prom: &Prometheus, rules: &[serde_json::Value]) -> Vec<String> {
    let mut problems = Vec::new();
    for r in rules {
        let name = r["name"].as_str().unwrap_or_default();
        if r["health"] != "ok" {
            problems.push(format!(
                "rule {name}: health {} {}",
                r["health"], r["lastError"]
            ));
        }
        let expr = r["query"].as_str().unwrap_or_default();
        if let Err(e) = prom.query(expr) {
            problems.push(format!("rule {name}: {e}: {expr}"));
        }
    }
    problems
}

/// Serves `body()` on `/metrics` of a fresh 127.0.0.1 port (an axum server on its own
/// thread, for the life of the test process); returns `host:port`.
pub fn serve_metrics(body: fn() -> String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let app = axum::Router::new().route(
                "/metrics",
                axum::routing::get(move || async move { body() }),
            );
            axum::serve(listener, app).await.unwrap();
        });
    });
    addr
}

/// A reverse proxy on loopback that forwards every request to `upstream` and records every
/// secret the upstream hands out: each `Set-Cookie` value, and the `ptwebqq`, `vfwebqq`,
/// `psessionid`, `skey` and `p` (a rotated ptwebqq) values of JSON answers, plus the cookie
/// values clients send. URLs in answers that point at the upstream are rewritten to point at
/// the proxy, so a client never leaves it.
///
/// This is how the log test learns the real secret values of a run without the server
/// having to expose them.
pub struct RecordingProxy {
    /// `host:port` to point clients at.
    pub addr: String,
    secrets: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, String>>>,
}

impl RecordingProxy {
    pub fn start(upstream: &str) -> RecordingProxy {
        use std::sync::{Arc, Mutex};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let secrets = Arc::new(Mutex::new(std::collections::BTreeMap::new()));
        let state = ProxyState {
            upstream: upstream.to_owned(),
            me: addr.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .build()
                .unwrap(),
            secrets: secrets.clone(),
        };
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new()
                    .fallback(forward)
                    .with_state(Arc::new(state));
                axum::serve(listener, app).await.unwrap();
            });
        });
        RecordingProxy { addr, secrets }
    }

    /// Every secret recorded so far: `where it was seen` → value.
    pub fn secrets(&self) -> std::collections::BTreeMap<String, String> {
        self.secrets.lock().unwrap().clone()
    }
}

struct ProxyState {
    upstream: String,
    me: String,
    client: reqwest::Client,
    secrets: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, String>>>,
}

impl ProxyState {
    fn record(&self, name: &str, value: &str) {
        let value = value.trim_matches('"');
        if !value.is_empty() {
            self.secrets
                .lock()
                .unwrap()
                .insert(format!("{name}={value}"), value.to_owned());
        }
    }

    /// Records the secret-named fields of a JSON answer, at any depth.
    fn record_json(&self, v: &serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    if ["ptwebqq", "vfwebqq", "psessionid", "skey", "p"].contains(&k.as_str()) {
                        if let Some(s) = v.as_str() {
                            self.record(&format!("json {k}"), s);
                        }
                    }
                    self.record_json(v);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| self.record_json(v)),
            _ => {}
        }
    }
}

async fn forward(
    axum::extract::State(st): axum::extract::State<std::sync::Arc<ProxyState>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 8 << 20)
        .await
        .unwrap_or_default();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("http://{}{}", st.upstream, path);
    let mut up = st.client.request(parts.method.clone(), &url);
    for (name, value) in &parts.headers {
        if name == "host" || name == "content-length" {
            continue;
        }
        if name == "cookie" {
            for pair in value.to_str().unwrap_or_default().split(';') {
                if let Some((k, v)) = pair.trim().split_once('=') {
                    st.record(&format!("sent cookie {k}"), v);
                }
            }
        }
        let v = value
            .to_str()
            .map(|s| s.replace(&st.me, &st.upstream))
            .unwrap_or_default();
        up = up.header(name.as_str(), v);
    }
    let resp = match up.body(body.to_vec()).send().await {
        Ok(r) => r,
        Err(e) => return (axum::http::StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = resp.status();
    let mut out = axum::http::Response::builder().status(status.as_u16());
    for (name, value) in resp.headers() {
        if name == "content-length" || name == "transfer-encoding" || name == "connection" {
            continue;
        }
        let text = value.to_str().unwrap_or_default();
        if name == "set-cookie" {
            if let Some((k, v)) = text.split(';').next().and_then(|c| c.split_once('=')) {
                st.record(&format!("set-cookie {}", k.trim()), v);
            }
        }
        out = out.header(name.as_str(), text.replace(&st.upstream, &st.me));
    }
    let bytes = resp.bytes().await.unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
        st.record_json(&v);
    }
    let body = if std::str::from_utf8(&bytes).is_ok() {
        text.replace(&st.upstream, &st.me).into_bytes()
    } else {
        bytes.to_vec()
    };
    out.body(axum::body::Body::from(body)).unwrap()
}

/// A `qqfleet` process started by a test, with its stdout and stderr kept in files; stopped
/// (SIGTERM, then SIGKILL after 10 s) on drop.
pub struct Qqfleet {
    child: Child,
    pub dir: tempfile::TempDir,
}

impl Qqfleet {
    /// Starts the real binary with `args`, in a fresh folder, with `env` added.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Qqfleet {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_qqfleet"));
        cmd.args(args);
        // Every fleet gets the known test token, which `http` sends.
        if args.contains(&"run") {
            let token = dir.path().join("admin-token");
            std::fs::write(&token, format!("{ADMIN_TOKEN}\n")).unwrap();
            cmd.arg("--admin-token-file").arg(token);
        }
        cmd.current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("stdout.log")).unwrap())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("qqfleet starts");
        Qqfleet { child, dir }
    }

    /// Everything it printed so far, stdout then stderr.
    pub fn output(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        format!("{}{}", read("stdout.log"), read("stderr.log"))
    }

    /// The last `n` log lines (QR art left out), for failure messages.
    pub fn tail(&self, n: usize) -> String {
        let out = self.output();
        let lines: Vec<&str> = out
            .lines()
            .filter(|l| {
                l.contains(" INFO ")
                    || l.contains(" WARN ")
                    || l.contains(" ERROR ")
                    || l.contains(" DEBUG ")
            })
            .collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Polls `f` every 200 ms until it returns `Some`; on timeout, panics with this process's
    /// last log lines. Fails at once if the process exits.
    pub fn until<T>(&mut self, limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + limit;
        loop {
            self.assert_running();
            if let Some(v) = f() {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {limit:?} waiting for {what}; qqfleet's last lines:\n{}",
                self.tail(40)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Fails the test if the process has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("qqfleet exited with {status}:\n{}", self.output());
        }
    }

    /// SIGTERM, and waits up to 10 s for the exit (then SIGKILL).
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        if let Ok(Some(s)) = self.child.try_wait() {
            return Some(s);
        }
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        self.child.wait().ok();
        None
    }
}

impl Drop for Qqfleet {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Writes `<id>.toml` account files (echo handler) into a new folder.
pub fn account_files(accounts: &[(&str, u64)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (id, qq) in accounts {
        std::fs::write(
            dir.path().join(format!("{id}.toml")),
            format!("qq = {qq}\nenabled = true\nhandler = \"echo\"\n"),
        )
        .unwrap();
    }
    dir
}

/// Every `http://127.0.0.1:PORT` base URL in `text`, in order of appearance.
pub fn loopback_urls(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("http://127.0.0.1:") {
        let tail = &rest[i + "http://127.0.0.1:".len()..];
        let port: String = tail.chars().take_while(|c| c.is_ascii_digit()).collect();
        if !port.is_empty() {
            let url = format!("http://127.0.0.1:{port}");
            if !out.contains(&url) {
                out.push(url);
            }
        }
        rest = tail;
    }
    out
}

/// A JSON request to a control API at `addr`; panics unless it answers 2xx.
pub fn control(method: &str, addr: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
    let body = (method != "GET").then(|| body.to_string());
    let r = http(method, addr, path, body.as_deref()).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(
        (200..300).contains(&r.status),
        "{method} {path}: HTTP {}: {}",
        r.status,
        r.body
    );
    serde_json::from_str(&r.body).unwrap_or(serde_json::Value::Null)
}
