//! The one error type of the protocol layer. Every variant that comes from a call names the
//! endpoint; none ever carries a secret (cookies, ptwebqq, vfwebqq, psessionid, skey,
//! tokens): bodies are excerpted through [`redact_excerpt`] and transport errors are stripped
//! of their URL, whose query holds vfwebqq/psessionid.

use std::time::{Duration, SystemTime};

use super::endpoints::Endpoint;
use super::retcode::Action;

/// Errors of the protocol layer.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The request did not complete within its timeout.
    #[error("{endpoint}: timed out after {after:?}")]
    Timeout { endpoint: Endpoint, after: Duration },

    /// Connection refused/reset, DNS, TLS, body read failure...
    #[error("{endpoint}: transport error: {message}")]
    Transport { endpoint: Endpoint, message: String },

    /// An HTTP status the call does not expect (gateway errors on poll2 are not errors,
    /// WEBQQ.md §2 "Gateway errors").
    #[error("{endpoint}: HTTP {status}")]
    HttpStatus { endpoint: Endpoint, status: u16 },

    /// The body is not what the endpoint answers (not JSON, wrong shape, HTML error page,
    /// empty, wrong content type). `excerpt` is truncated and redacted.
    #[error("{endpoint}: undecodable answer ({reason}): {excerpt:?}")]
    Undecodable {
        endpoint: Endpoint,
        reason: String,
        excerpt: String,
    },

    /// A non-zero retcode the call cannot absorb, with what the policy table says to do.
    #[error("{endpoint}: retcode {retcode} (action {action:?})")]
    Retcode {
        endpoint: Endpoint,
        retcode: i64,
        action: Action,
    },

    /// A send was refused. `pieces_delivered` counts the pieces of a split message that
    /// went out (as Delivered or Uncertain) before this one failed; they must not be resent.
    #[error("{endpoint}: send refused with retcode {retcode} after {pieces_delivered} piece(s) (action {action:?})")]
    SendRejected {
        endpoint: Endpoint,
        retcode: i64,
        action: Action,
        pieces_delivered: usize,
    },

    /// Too frequent (retcode 6 on the friend list, 100003): do not call again before `until`.
    #[error("{endpoint}: rate limited for {retry_after:?}")]
    RateLimited {
        endpoint: Endpoint,
        retry_after: Duration,
        until: SystemTime,
    },

    /// Resuming failed: the saved ptlogin cookies are dead (WEBQQ.md §11: they expire after
    /// ~48 h and cannot be refreshed); a new QR scan is needed.
    #[error("saved session is dead ({endpoint}: {reason}); a new QR scan is needed")]
    SessionDead { endpoint: Endpoint, reason: String },

    /// The QR code was scanned by another QQ number than the account's.
    #[error("QR scanned by QQ {got}, but this account is QQ {expected}")]
    WrongAccount { expected: u64, got: u64 },

    /// The server forced this session offline (`kick_message`, WEBQQ.md §5.3).
    #[error("kicked: {reason}")]
    Kicked { reason: String },

    /// ptlogin refused the login (ptuiCB code other than 0/65/66/67, WEBQQ.md §3.4, §3.9).
    #[error("{endpoint}: login refused with code {code}: {message}")]
    LoginRefused {
        endpoint: Endpoint,
        code: i64,
        message: String,
    },

    /// A call that needs a logged-in session was made before login/resume.
    #[error("not logged in")]
    NotLoggedIn,

    /// No TLS backend was compiled in, so the real (https) hosts cannot be reached; the
    /// simulator (plain http) still works.
    #[error("https endpoints need TLS support, which this build does not have")]
    TlsUnavailable,

    /// A lookup by name matched nothing.
    #[error("no {kind} named {name:?}")]
    NotFound { kind: &'static str, name: String },

    /// A lookup by name matched several contacts.
    #[error("{kind} name {name:?} is ambiguous: {candidates:?}")]
    Ambiguous {
        kind: &'static str,
        name: String,
        candidates: Vec<String>,
    },

    /// Nothing to send (an empty text).
    #[error("refusing to send an empty message")]
    EmptyMessage,

    /// The saved session could not be loaded (broken cookie jar serialization).
    #[error("saved session is unreadable: {0}")]
    BadSession(String),
}

impl ProtocolError {
    /// True when the session is gone and the account needs a resume or a new scan.
    pub fn is_session_lost(&self) -> bool {
        match self {
            ProtocolError::SessionDead { .. } | ProtocolError::Kicked { .. } => true,
            ProtocolError::NotLoggedIn => true,
            ProtocolError::Retcode { action, .. } | ProtocolError::SendRejected { action, .. } => {
                matches!(action, Action::Relogin | Action::Stopped)
            }
            _ => false,
        }
    }

    /// True for errors worth retrying the same call for (timeouts, transport, gateway).
    pub fn is_transient(&self) -> bool {
        match self {
            ProtocolError::Timeout { .. } | ProtocolError::Transport { .. } => true,
            ProtocolError::HttpStatus { status, .. } => matches!(status, 404 | 500..=599),
            _ => false,
        }
    }

    /// The endpoint the error came from, if any.
    pub fn endpoint(&self) -> Option<Endpoint> {
        match self {
            ProtocolError::Timeout { endpoint, .. }
            | ProtocolError::Transport { endpoint, .. }
            | ProtocolError::HttpStatus { endpoint, .. }
            | ProtocolError::Undecodable { endpoint, .. }
            | ProtocolError::Retcode { endpoint, .. }
            | ProtocolError::SendRejected { endpoint, .. }
            | ProtocolError::RateLimited { endpoint, .. }
            | ProtocolError::SessionDead { endpoint, .. }
            | ProtocolError::LoginRefused { endpoint, .. } => Some(*endpoint),
            _ => None,
        }
    }

    pub(crate) fn undecodable(endpoint: Endpoint, reason: impl Into<String>, body: &[u8]) -> Self {
        ProtocolError::Undecodable {
            endpoint,
            reason: reason.into(),
            excerpt: redact_excerpt(body),
        }
    }

    pub(crate) fn from_reqwest(endpoint: Endpoint, err: reqwest::Error, after: Duration) -> Self {
        if err.is_timeout() {
            return ProtocolError::Timeout { endpoint, after };
        }
        // The URL carries vfwebqq/psessionid in its query: never keep it.
        let err = err.without_url();
        let mut message = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        ProtocolError::Transport {
            endpoint,
            message: redact_text(&message),
        }
    }
}

/// Longest excerpt of a body kept in an error.
pub const EXCERPT_CHARS: usize = 120;

/// A short, secret-free excerpt of a response body for error messages: lossy UTF-8, at most
/// [`EXCERPT_CHARS`] characters, every token-like run redacted.
pub fn redact_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let short: String = text.chars().take(EXCERPT_CHARS * 2).collect();
    let red = redact_text(&short);
    let mut out: String = red.chars().take(EXCERPT_CHARS).collect();
    if red.chars().count() > EXCERPT_CHARS || text.chars().count() > EXCERPT_CHARS * 2 {
        out.push('…');
    }
    out
}

/// Replaces token-like runs with `<redacted>`: any run of 16+ characters from
/// `[A-Za-z0-9*_-]` (ptwebqq 64 hex, vfwebqq 80 hex, psessionid, p_skey/pt4_token 44, qrsig
/// ~64: WEBQQ.md §1) and any `@`-prefixed skey-like run of 8+ (`@SoxMZ1bd4`). QQ numbers and
/// uins (≤ 11 digits) survive, so errors stay useful.
pub fn redact_text(s: &str) -> String {
    let is_tok = |c: char| c.is_ascii_alphanumeric() || c == '*' || c == '_' || c == '-';
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        let at = chars[i] == '@';
        let start = if at { i + 1 } else { i };
        let mut j = start;
        while j < chars.len() && is_tok(chars[j]) {
            j += 1;
        }
        let len = j - start;
        if len >= 16 || (at && len >= 8) {
            out.push_str("<redacted>");
            i = j;
        } else if j > i {
            out.extend(&chars[i..j]);
            i = j;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_hide_tokens_and_keep_numbers() {
        let body = br#"{"retcode":0,"result":{"vfwebqq":"ac3000e2378f8cc6ed71542dfbf5516ed18264d52dcba3d0aa1e052d2b0d29922bf56a7f9d62846c","uin":2769546520,"skey":"@SoxMZ1bd4"}}"#;
        let e = redact_excerpt(body);
        assert!(!e.contains("ac3000e2"), "{e}");
        assert!(!e.contains("SoxMZ1bd4"), "{e}");
        assert!(e.contains("2769546520"), "{e}");
        let long = vec![b'x'; 10_000];
        assert!(redact_excerpt(&long).chars().count() <= EXCERPT_CHARS + 1);
        assert_eq!(redact_excerpt(b""), "");
        let err = ProtocolError::undecodable(Endpoint::Poll2, "empty body", b"<html>502</html>");
        assert!(err.to_string().starts_with("poll2: undecodable"));
    }
}
