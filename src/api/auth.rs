//! The admin API's bearer token: where it comes from and the check in front of `/api/...`.
//!
//! The admin API can restart accounts, send messages and read outboxes, so it is never open:
//! every `/api/...` request carries `Authorization: Bearer <token>`. `/healthz` and `/metrics`
//! stay open (a liveness probe and a Prometheus scrape carry no token, and neither shows a
//! secret). The token comes from `--admin-token-file FILE`, or is created on first start as
//! `<data>/admin.token` (random, mode 0600) and kept, so tools on the same machine read it from
//! there. Its value is never logged; only its path is printed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// File name of the token created in the data directory when no `--admin-token-file` is given.
pub const TOKEN_FILE: &str = "admin.token";

/// Why the admin token could not be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file could not be read or written.
    #[error("admin token file {path}: {message}")]
    Io { path: PathBuf, message: String },
    /// The file holds no usable token.
    #[error("admin token file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The admin token. `Debug` never shows the value.
#[derive(Clone)]
pub struct AdminToken(Arc<str>);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

impl AdminToken {
    /// A token with a known value (tests, tools).
    pub fn new(value: &str) -> AdminToken {
        AdminToken(Arc::from(value))
    }

    /// Reads `file` when given; otherwise reads `<data>/admin.token`, creating it (random,
    /// 0600) on first start. Returns the token and the path it lives at.
    pub fn load_or_create(
        file: Option<&Path>,
        data: &Path,
    ) -> Result<(AdminToken, PathBuf), TokenError> {
        if let Some(path) = file {
            return Ok((read(path)?, path.to_path_buf()));
        }
        let path = data.join(TOKEN_FILE);
        if path.exists() {
            return Ok((read(&path)?, path));
        }
        let value = random_token();
        write_private(&path, &value).map_err(|e| TokenError::Io {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Ok((AdminToken::new(&value), path))
    }

    /// Compares in constant time, so the answer's timing tells nothing about the token.
    pub fn matches(&self, given: &str) -> bool {
        let a = self.0.as_bytes();
        let b = given.as_bytes();
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// The value, for code that must hand it on (the desk's cookie). Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

fn read(path: &Path) -> Result<AdminToken, TokenError> {
    let text = std::fs::read_to_string(path).map_err(|e| TokenError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let value = text.trim();
    if value.len() < 16 {
        return Err(TokenError::Invalid {
            path: path.to_path_buf(),
            message: "the token must be at least 16 characters".into(),
        });
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(TokenError::Invalid {
            path: path.to_path_buf(),
            message: "the token must be one line without spaces".into(),
        });
    }
    Ok(AdminToken::new(value))
}

/// 32 random bytes as 64 hex digits.
fn random_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_private(path: &Path, value: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(value.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

/// The bearer token of a request, if it has one.
pub fn bearer(req: &Request) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Name of the desk's cookie, which carries the admin token for the page (`/desk`).
pub const DESK_COOKIE: &str = "qqfleet_desk";
/// Header the desk's script sets on every state-changing request. A page on another site can
/// make the browser send the cookie (well, not with `SameSite=Strict`, but old browsers) but
/// cannot set a custom header without a CORS preflight, which this server never grants.
pub const DESK_HEADER: &str = "x-qqfleet-desk";

/// The desk cookie's value in a request, if it has one.
pub fn desk_cookie(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == DESK_COOKIE)
        .map(|(_, v)| v.trim())
}

/// The `Set-Cookie` value that hands the token to the desk: `HttpOnly` (no script reads it),
/// `SameSite=Strict` (no other site's page sends it), for the whole server, for 30 days.
pub fn desk_set_cookie(token: &AdminToken) -> String {
    format!(
        "{DESK_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age=2592000",
        token.expose()
    )
}

/// Middleware in front of `/api/...`: the Bearer header, or the desk's cookie; a request that
/// changes something on the strength of the cookie alone also needs [`DESK_HEADER`]. A missing
/// or wrong token is answered 401 with nothing but that fact.
pub async fn require_token(State(token): State<AdminToken>, req: Request, next: Next) -> Response {
    if let Some(given) = bearer(&req) {
        return if token.matches(given) {
            next.run(req).await
        } else {
            unauthorized()
        };
    }
    match desk_cookie(req.headers()) {
        Some(given) if token.matches(given) => {
            let safe = matches!(
                *req.method(),
                axum::http::Method::GET | axum::http::Method::HEAD
            );
            if safe || req.headers().get(DESK_HEADER).is_some_and(|v| v == "1") {
                next.run(req).await
            } else {
                (
                    StatusCode::FORBIDDEN,
                    axum::Json(serde_json::json!({
                        "error": format!("a change made with the desk's cookie needs the `{DESK_HEADER}: 1` header")
                    })),
                )
                    .into_response()
            }
        }
        _ => unauthorized(),
    }
}

/// The 401 answer: the same for a missing and a wrong token.
pub fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        axum::Json(serde_json::json!({"error": "missing or wrong admin token (Authorization: Bearer <token>)"})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_token_is_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (t1, p1) = AdminToken::load_or_create(None, dir.path()).unwrap();
        assert_eq!(p1, dir.path().join(TOKEN_FILE));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p1).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(t1.expose().len(), 64);
        let (t2, _) = AdminToken::load_or_create(None, dir.path()).unwrap();
        assert_eq!(
            t1.expose(),
            t2.expose(),
            "the second start reads the same token"
        );
        assert!(t1.matches(t2.expose()));
        assert!(!t1.matches("x"));
        assert!(!format!("{t1:?}").contains(t1.expose()));
    }

    #[test]
    fn desk_cookie_is_found_among_others() {
        let mut h = axum::http::HeaderMap::new();
        h.append(
            header::COOKIE,
            "a=1; qqfleet_desk=abc; b=2".parse().unwrap(),
        );
        assert_eq!(desk_cookie(&h), Some("abc"));
        let mut h = axum::http::HeaderMap::new();
        h.append(header::COOKIE, "qqfleet_desk_x=abc".parse().unwrap());
        assert_eq!(desk_cookie(&h), None);
        let c = desk_set_cookie(&AdminToken::new("tok"));
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Strict"),
            "{c}"
        );
    }

    #[test]
    fn a_short_or_missing_token_file_is_an_error_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tok");
        std::fs::write(&f, "short\n").unwrap();
        let e = AdminToken::load_or_create(Some(&f), dir.path()).unwrap_err();
        assert!(e.to_string().contains("tok"), "{e}");
        let e = AdminToken::load_or_create(Some(&dir.path().join("none")), dir.path()).unwrap_err();
        assert!(e.to_string().contains("none"), "{e}");
    }
}
