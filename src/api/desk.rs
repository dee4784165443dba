//! The desk: the whole fleet on one page (`GET /desk`), for the operator who scans QR codes.
//!
//! The page, its stylesheet and its script are compiled into the binary (no build step, no
//! CDN, nothing fetched from elsewhere). It holds no data of its own: the script opens
//! `GET /api/events` (server-sent events, [`super::events`]) whose first events are every
//! account's row and whose next ones are the changes, so rows change without a reload and
//! without a polling loop.
//!
//! Access: the admin token once in the URL (`/desk?token=...`), answered by a redirect to
//! `/desk` that sets the token as a cookie (`HttpOnly`, so no script reads it; `SameSite=Strict`,
//! so no other site's page sends it) and drops it from the address bar and the history. The
//! API accepts that cookie ([`super::auth::require_token`]); the script adds the
//! [`super::auth::DESK_HEADER`] header to every action. Nothing the page receives carries a
//! secret: the status rows hold none, and the cookie is out of the script's reach.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::{self, AdminToken};

const HTML: &str = include_str!("desk/desk.html");
const CSS: &str = include_str!("desk/desk.css");
const JS: &str = include_str!("desk/desk.js");

/// Headers of every desk answer: no caching, no framing, no referrer, and only this server's
/// own script, style and images (QR codes are PNGs from `/api/accounts/{id}/qr`).
fn hardened(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

#[derive(Deserialize)]
pub struct DeskQuery {
    token: Option<String>,
}

/// `GET /desk`: the page for a holder of the cookie; a redirect that sets the cookie for a
/// right `?token=`; 401 (and no data) for anyone else.
pub async fn page(
    State(token): State<AdminToken>,
    Query(q): Query<DeskQuery>,
    headers: HeaderMap,
) -> Response {
    if let Some(given) = q.token.as_deref() {
        if !token.matches(given.trim()) {
            return denied();
        }
        let r = (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, "/desk".to_string()),
                (header::SET_COOKIE, auth::desk_set_cookie(&token)),
            ],
        )
            .into_response();
        return hardened(r);
    }
    match auth::desk_cookie(&headers) {
        Some(given) if token.matches(given) => {
            hardened(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], HTML).into_response())
        }
        _ => denied(),
    }
}

/// The 401 page: how to get in, and nothing else.
fn denied() -> Response {
    hardened(
        (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "qqfleet desk: missing or wrong admin token. Open /desk?token=<the admin token> \
             (the path of its file is printed when qqfleet run starts).\n",
        )
            .into_response(),
    )
}

/// `GET /desk/desk.css` (no data in it, so no token needed).
pub async fn css() -> Response {
    hardened(([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response())
}

/// `GET /desk/desk.js` (no data in it, so no token needed).
pub async fn js() -> Response {
    hardened(
        (
            [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
            JS,
        )
            .into_response(),
    )
}
