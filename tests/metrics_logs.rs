//! The log lines of the events: each carries the account's id, in the human format and in
//! JSON, and lines logged inside an account's span inherit it.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qqfleet::events::{
    emit, AccountRemoved, AccountStateChanged, ActorRestarted, LoginFinished, LoginMethod,
    MessageReceived, MessageSent, OutboxDepth, PollCompleted, PollRetried, RateLimited,
    ReconnectKind, ReconnectStarted, RetcodeReceived,
};
use qqfleet::fleet::AccountState;
use qqfleet::logging::{account_span, subscriber, LogFormat};
use tracing_subscriber::EnvFilter;

/// A writer that keeps what it is given, so the test reads the exact lines a run prints.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

/// Emits one of every event for `account`; returns how many events that was.
fn emit_all(account: &str) -> usize {
    emit(AccountStateChanged {
        account,
        from: None,
        to: AccountState::Starting,
        reason: None,
    });
    emit(AccountStateChanged {
        account,
        from: Some(AccountState::Starting),
        to: AccountState::Online,
        reason: Some("resumed"),
    });
    emit(PollCompleted {
        account,
        outcome: "idle",
        elapsed: Duration::from_secs(60),
    });
    emit(PollRetried {
        account,
        attempt: 1,
        error: "poll2: transport error: tcp open error: Too many open files (os error 24)",
        pause: Duration::from_millis(500),
    });
    emit(RetcodeReceived {
        account,
        endpoint: "poll2",
        retcode: 121,
    });
    emit(LoginFinished {
        account,
        method: LoginMethod::Resume,
        ok: true,
        reason: None,
    });
    emit(LoginFinished {
        account,
        method: LoginMethod::Qr,
        ok: false,
        reason: Some("qr expired"),
    });
    emit(ReconnectStarted {
        account,
        kind: ReconnectKind::Relink,
        reason: "poll retcode 121",
    });
    emit(MessageReceived {
        account,
        kind: "group",
        text: "hello",
        self_echo: false,
        waited: None,
    });
    emit(MessageSent {
        account,
        kind: "group",
        text: "hello",
        result: "uncertain",
    });
    emit(OutboxDepth { account, depth: 2 });
    emit(RateLimited {
        account,
        limiter: "friend_list",
        wait: Duration::from_secs(3),
    });
    emit(ActorRestarted {
        account,
        actor: "sender",
        reason: "panic",
    });
    emit(AccountRemoved {
        account,
        last: Some(AccountState::Online),
    });
    14
}

fn capture(format: LogFormat, f: impl FnOnce()) -> Vec<String> {
    let out = Capture::default();
    let sub = subscriber(format, EnvFilter::new("trace"), out.clone(), false);
    tracing::subscriber::with_default(sub, f);
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    text.lines().map(str::to_owned).collect()
}

#[test]
fn every_event_line_carries_the_account_in_text() {
    let mut n = 0;
    let lines = capture(LogFormat::Text, || n = emit_all("log-text-a"));
    assert_eq!(lines.len(), n, "{lines:#?}");
    for l in &lines {
        assert!(
            l.contains("account=\"log-text-a\"") || l.contains("account=log-text-a"),
            "{l}"
        );
    }
}

/// A retried poll says why, when and for how long, so an operator can tell a file-descriptor
/// limit from a server closing connections without turning on debug.
#[test]
fn a_retried_poll_names_its_error_and_pause() {
    let lines = capture(LogFormat::Json, || {
        emit(PollRetried {
            account: "log-retry-a",
            attempt: 2,
            error: "poll2: transport error: connection closed before message completed",
            pause: Duration::from_millis(1000),
        })
    });
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(v["level"], "INFO", "{v}");
    assert_eq!(v["fields"]["message"], "poll failed, retrying", "{v}");
    assert_eq!(v["fields"]["account"], "log-retry-a", "{v}");
    assert_eq!(v["fields"]["attempt"], 2, "{v}");
    assert_eq!(v["fields"]["pause_ms"], 1000, "{v}");
    assert_eq!(
        v["fields"]["error"], "poll2: transport error: connection closed before message completed",
        "{v}"
    );
}

#[test]
fn every_event_line_is_json_with_the_account_field() {
    let mut n = 0;
    let lines = capture(LogFormat::Json, || n = emit_all("log-json-a"));
    assert_eq!(lines.len(), n, "{lines:#?}");
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert_eq!(v["fields"]["account"], "log-json-a", "{l}");
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{l}");
    }
}

#[test]
fn lines_inside_an_account_span_inherit_its_id() {
    let text = capture(LogFormat::Text, || {
        let _g = account_span("log-span-a").entered();
        tracing::warn!("contacts refresh failed");
    });
    assert_eq!(text.len(), 1);
    assert!(
        text[0].contains("account{account=\"log-span-a\"}")
            || text[0].contains("account=log-span-a"),
        "{}",
        text[0]
    );
    let json = capture(LogFormat::Json, || {
        let _g = account_span("log-span-b").entered();
        tracing::warn!("contacts refresh failed");
    });
    let v: serde_json::Value = serde_json::from_str(&json[0]).unwrap();
    assert_eq!(v["span"]["account"], "log-span-b", "{}", json[0]);
}

/// A dependency that logs cookie values at debug level stays silent even when the operator
/// asks for everything, by name or at large.
#[test]
fn cookie_store_debug_lines_never_reach_the_log() {
    for filter in ["trace", "cookie_store=trace", "debug,cookie_store=debug"] {
        let out = Capture::default();
        let sub = subscriber(LogFormat::Text, EnvFilter::new(filter), out.clone(), false);
        tracing::subscriber::with_default(sub, || {
            tracing::debug!(target: "cookie_store::cookie_store", "inserting Set-Cookie skey=@SECRET42");
            tracing::warn!(target: "cookie_store::cookie_store", "cookie store full");
            tracing::debug!(target: "qqfleet::fleet", "still here");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("SECRET42"), "{filter}: {text}");
        assert!(
            text.contains("cookie store full"),
            "{filter}: warnings still pass: {text}"
        );
        if filter != "cookie_store=trace" {
            assert!(text.contains("still here"), "{filter}: {text}");
        }
    }
}

/// Message lines show the start of the text: at most 80 characters (never cut inside a
/// character), `…` when cut, and a newline escaped so a text-format line stays one line.
#[test]
fn message_texts_are_excerpts_on_one_line() {
    use qqfleet::events::{Excerpt, TEXT_EXCERPT_CHARS};
    assert_eq!(Excerpt("hello").to_string(), "hello");
    let long = "晚".repeat(100);
    let cut = Excerpt(&long).to_string();
    assert_eq!(cut.chars().count(), TEXT_EXCERPT_CHARS + 1);
    assert!(cut.ends_with('…') && cut.starts_with("晚晚"));
    assert_eq!(Excerpt(&"x".repeat(80)).to_string(), "x".repeat(80));
    assert_eq!(Excerpt("a\nb").to_string(), "a\\nb");
}

/// A received message is an info line; the account's own send echoed back (§5.4) only a
/// debug one, so the default log shows each answer once.
#[test]
fn own_echoes_stay_out_of_the_info_log() {
    let at = |filter: &str| {
        let out = Capture::default();
        let sub = subscriber(LogFormat::Json, EnvFilter::new(filter), out.clone(), false);
        tracing::subscriber::with_default(sub, || {
            for self_echo in [false, true] {
                emit(MessageReceived {
                    account: "log-echo",
                    kind: "buddy",
                    text: "hi",
                    self_echo,
                    waited: None,
                });
            }
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|v| {
                (
                    v["level"].as_str().unwrap().to_owned(),
                    v["fields"]["message"].as_str().unwrap().to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    let info = |l: &str, m: &str| (l.to_owned(), m.to_owned());
    assert_eq!(at("info"), [info("INFO", "message received")]);
    assert_eq!(
        at("debug"),
        [
            info("INFO", "message received"),
            info("DEBUG", "own message echoed back")
        ]
    );
}

/// A received message's line says how long it waited for its handler, in microseconds, when
/// that is known; a replay's line (no wait measured) has no such field, not a made-up one.
#[test]
fn a_received_message_line_carries_its_wait_when_known() {
    let out = Capture::default();
    let sub = subscriber(LogFormat::Json, EnvFilter::new("info"), out.clone(), false);
    tracing::subscriber::with_default(sub, || {
        for waited in [Some(Duration::from_micros(2_345)), None] {
            emit(MessageReceived {
                account: "log-wait",
                kind: "group",
                text: "hi",
                self_echo: false,
                waited,
            });
        }
    });
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0]["fields"]["waited_us"], 2345, "{text}");
    assert!(lines[1]["fields"].get("waited_us").is_none(), "{text}");
}
