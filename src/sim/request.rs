//! A protocol request as the handlers see it, and the answer helpers.
//!
//! The real service took its parameters from three places: the query string, the form body
//! (`r=<JSON>` plus, in old eras, loose fields) and the cookie jar. `Req` parses all three
//! once, tolerating what real clients sent (§16: duplicate cookies → the first wins, raw
//! `Set-Cookie` attributes echoed back as cookies, `r` in the query string of a GET).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::Notify;

/// Largest accepted request body; larger ones get 413 (brief: bodies over 1 MiB).
pub const MAX_BODY: usize = 1 << 20;

/// Lets a handler close its connection without answering (fault `drop`).
#[derive(Clone, Debug, Default)]
pub struct ConnAbort(pub Arc<Notify>);

impl ConnAbort {
    /// Asks the connection task to drop the connection.
    pub fn abort(&self) {
        self.0.notify_one();
    }
}

/// A parsed protocol request.
#[derive(Debug)]
pub struct Req {
    /// Real host name taken from the path prefix, e.g. `d1.web2.qq.com`.
    pub host: String,
    pub query: HashMap<String, String>,
    pub form: HashMap<String, String>,
    cookies: Vec<(String, String)>,
    pub referer: Option<String>,
    /// `Host` header, used to build URLs that point back into the simulator.
    pub host_header: Option<String>,
    pub abort: Option<ConnAbort>,
}

/// Why `r` could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum RError {
    Missing,
    BadJson,
}

fn parse_pairs(s: &str, into: &mut HashMap<String, String>) {
    for (k, v) in url::form_urlencoded::parse(s.as_bytes()) {
        // First value wins, as with duplicate cookies.
        into.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
}

impl Req {
    /// Builds a `Req` from the pieces of an HTTP request whose body was already read.
    pub fn new(
        method: Method,
        host: String,
        path: String,
        raw_query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
        abort: Option<ConnAbort>,
    ) -> Req {
        let mut query = HashMap::new();
        if let Some(q) = raw_query {
            parse_pairs(q, &mut query);
        }
        let mut form = HashMap::new();
        if !body.is_empty() {
            if let Ok(text) = std::str::from_utf8(body) {
                parse_pairs(text, &mut form);
            }
        }
        let mut cookies = Vec::new();
        for v in headers.get_all(header::COOKIE) {
            if let Ok(s) = v.to_str() {
                for part in s.split(';') {
                    let part = part.trim();
                    if let Some((k, v)) = part.split_once('=') {
                        cookies.push((k.trim().to_string(), v.trim().to_string()));
                    }
                }
            }
        }
        let text = |h: header::HeaderName| {
            headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let _ = (method, path);
        Req {
            host,
            query,
            form,
            cookies,
            referer: text(header::REFERER),
            host_header: text(header::HOST),
            abort,
        }
    }

    /// The first cookie of that name (§16: a client may send two `qrsig`; take the first).
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A query parameter.
    pub fn q(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// The JSON of `r`: from the form body, or (for GET contact calls, §16) the query.
    pub fn r_json(&self) -> Result<Value, RError> {
        let raw = self
            .form
            .get("r")
            .or_else(|| self.query.get("r"))
            .ok_or(RError::Missing)?;
        let v: Value = serde_json::from_str(raw).map_err(|_| RError::BadJson)?;
        if v.is_object() {
            Ok(v)
        } else {
            Err(RError::BadJson)
        }
    }

    /// Whether the Referer is a proxy page of the web2 family (§2, §16: any
    /// `*.web2.qq.com/proxy.html` or `cfproxy.html`, version not checked; the simulator's
    /// `http://127.0.0.1:PORT/d1.web2.qq.com/proxy.html` form matches too).
    pub fn referer_ok(&self) -> bool {
        let Some(r) = &self.referer else {
            return false;
        };
        let path = r.split('?').next().unwrap_or("");
        path.contains("web2.qq.com/proxy.html") || path.contains("web2.qq.com/cfproxy.html")
    }

    /// `http://HOST` of the simulator as this client reaches it. The `Host` header is used
    /// only when it names a loopback address or `localhost` (a client that sets `Host` to the
    /// real host name by hand must still get URLs that lead back here).
    pub fn base_url(&self, fallback: std::net::SocketAddr) -> String {
        if let Some(h) = &self.host_header {
            let is_local = h
                .parse::<std::net::SocketAddr>()
                .is_ok_and(|a| a.ip().is_loopback())
                || h.starts_with("localhost:");
            if is_local {
                return format!("http://{h}");
            }
        }
        let mut addr = fallback;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{addr}")
    }

    /// The account hinted by the `uin` (or `superuin`) cookie, for fault matching and
    /// per-account counters before the request is validated.
    pub fn qq_hint(&self) -> Option<u64> {
        self.cookie("uin")
            .or_else(|| self.cookie("superuin"))
            .and_then(super::world::parse_o_uin)
    }
}

/// A number given as JSON number or decimal string (§2: clientid, did).
pub fn num(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A signed number given as JSON number or decimal string (msg_id).
pub fn inum(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A string field; `null` and absent both read as empty (§16: empty or null where the page
/// sent empty values).
pub fn text(v: Option<&Value>) -> Option<String> {
    match v {
        None | Some(Value::Null) => Some(String::new()),
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// What a handler produced: the answer plus what the counters need.
pub struct Outcome {
    pub resp: Response,
    /// The account the request belonged to, once known.
    pub qq: Option<u64>,
    /// The protocol code answered (retcode / errCode / ptuiCB code).
    pub retcode: Option<i64>,
}

impl Outcome {
    pub fn new(resp: Response, qq: Option<u64>, retcode: Option<i64>) -> Outcome {
        Outcome { resp, qq, retcode }
    }
}

/// A JSON answer of the real service: `application/json`, ending with `\n` as real bodies
/// often did (§2).
pub fn json_line(v: &Value) -> Response {
    let mut body = serde_json::to_vec(v).unwrap_or_default();
    body.push(b'\n');
    let mut r = Response::new(Body::from(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    r
}

/// A JSON answer whose text is already written (exact key order).
pub fn raw_json(body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    r
}

/// A JavaScript answer of ptlogin (`ptuiCB(...)`), terminated with `\r\n` (§2).
pub fn js(text: String) -> Response {
    let mut r = Response::new(Body::from(format!("{text}\r\n")));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/javascript;charset=utf-8"),
    );
    r
}

/// An HTML page.
pub fn html(text: String) -> Response {
    let mut r = Response::new(Body::from(text));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html;charset=utf-8"),
    );
    r
}

/// A bare status answer (gateway faults, unknown paths).
pub fn status(code: StatusCode, text: &'static str) -> Response {
    (code, text).into_response()
}

/// Adds `Set-Cookie: name=value; Path=/` (host-only, one per name, §16; the attribute after
/// the value is what one client's regular expression expects).
pub fn set_cookie(resp: &mut Response, name: &str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(&format!("{name}={value}; Path=/")) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)], q: Option<&str>, body: &str) -> Req {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        Req::new(
            Method::POST,
            "d1.web2.qq.com".into(),
            "/channel/poll2".into(),
            q,
            &h,
            body.as_bytes(),
            None,
        )
    }

    #[test]
    fn first_cookie_wins_and_attributes_are_harmless() {
        let r = req(
            &[("cookie", "qrsig=A; Path=/"), ("cookie", "qrsig=B")],
            None,
            "",
        );
        assert_eq!(r.cookie("qrsig"), Some("A"));
    }

    #[test]
    fn r_from_form_or_query() {
        let r = req(&[], None, "r=%7B%22a%22%3A1%7D");
        assert_eq!(r.r_json().unwrap()["a"], 1);
        let r = req(&[], Some("r=%7B%22a%22%3A2%7D"), "");
        assert_eq!(r.r_json().unwrap()["a"], 2);
        assert_eq!(req(&[], None, "").r_json(), Err(RError::Missing));
        assert_eq!(req(&[], None, "r=%7B").r_json(), Err(RError::BadJson));
        assert_eq!(req(&[], None, "r=5").r_json(), Err(RError::BadJson));
    }

    #[test]
    fn base_url_only_trusts_loopback_hosts() {
        let fb: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
        let b = |h: &str| req(&[("host", h)], None, "").base_url(fb);
        assert_eq!(b("127.0.0.1:5"), "http://127.0.0.1:5");
        assert_eq!(b("localhost:5"), "http://localhost:5");
        assert_eq!(b("ssl.ptlogin2.qq.com"), "http://127.0.0.1:9");
        let any: std::net::SocketAddr = "0.0.0.0:7".parse().unwrap();
        assert_eq!(req(&[], None, "").base_url(any), "http://127.0.0.1:7");
    }

    #[test]
    fn referer_family() {
        let ok = |v: &str| req(&[("referer", v)], None, "").referer_ok();
        assert!(ok(
            "http://d1.web2.qq.com/proxy.html?v=20151105001&callback=1&id=2"
        ));
        assert!(ok(
            "https://d1.web2.qq.com/cfproxy.html?v=20151105001&callback=1"
        ));
        assert!(ok(
            "http://s.web2.qq.com/proxy.html?v=20130916001&callback=1&id=1"
        ));
        assert!(ok("http://127.0.0.1:1/d1.web2.qq.com/proxy.html?v=1"));
        assert!(!ok("http://w.qq.com/"));
        assert!(!ok("http://evil.com/?x=web2.qq.com/proxy.html"));
        assert!(!req(&[], None, "").referer_ok());
    }
}
