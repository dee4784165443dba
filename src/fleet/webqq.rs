//! The seam between the actors and the protocol client.
//!
//! The actors talk to a `dyn WebQq`, never to `protocol::Client` directly, so their unit tests
//! run against a scripted fake under paused tokio time (research §1.1 rule 4: a real socket
//! and a paused clock don't mix: reqwest's timeouts would fire at once).

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::protocol::{
    Client, ClientOptions, Contacts, Endpoints, PollResult, ProtocolError, Qr, QrStatus,
    SendOutcome, Session, Target,
};

/// A boxed `'static` future: actors spawn these into their context.
pub type Fut<T> = BoxFuture<'static, Result<T, ProtocolError>>;

/// One account's WebQQ connection, as the actors use it.
pub trait WebQq: Send + Sync + 'static {
    fn fetch_qr(&self) -> Fut<Qr>;
    fn check_qr(&self, qr: Qr) -> Fut<QrStatus>;
    /// check_sig → getvfwebqq → login2 → warm-up; refuses a scan by another QQ number.
    fn complete_login(&self, check_sig_url: String, expect_qq: u64) -> Fut<()>;
    /// The first half of `complete_login` (check_sig: the scan's cookies are then in
    /// `session()`); `finish_login` does the rest. By default all of it happens here.
    fn complete_scan(&self, check_sig_url: String, expect_qq: u64) -> Fut<()> {
        self.complete_login(check_sig_url, expect_qq)
    }
    /// The second half of `complete_login` (getvfwebqq, login2, warm-up).
    fn finish_login(&self, _expect_qq: u64) -> Fut<()> {
        Box::pin(async { Ok(()) })
    }
    /// Log in again from the saved cookies, without a scan (WEBQQ.md §3.10).
    fn resume(&self) -> Fut<()>;
    /// login2 again on the current session (§3.7).
    fn relink(&self) -> Fut<()>;
    fn poll(&self) -> Fut<PollResult>;
    /// Is the channel alive? (get_online_buddies2, the answer to a doubtful 103, §5.2)
    fn probe(&self) -> Fut<bool>;
    /// Sends `text` (split in pieces by the client); the first piece takes `msg_id`, the
    /// next ones the ids after it, and the session's counter moves past them. The Sender
    /// picks the id and records it with the message, so a resend reuses it.
    fn send(&self, target: Target, text: String, msg_id: u64) -> Fut<SendOutcome>;
    fn contacts(&self) -> Fut<Contacts>;
    /// The contacts of this session, once `contacts()` has fetched them.
    fn cached_contacts(&self) -> Option<Arc<Contacts>>;
    /// A tag of the current channel, 0 without one (see `Client::channel_tag`). Required,
    /// like every method here, so that no wrapper forgets to pass it through.
    fn channel_tag(&self) -> u64;
    /// Contacts fetched earlier in this same channel, kept in the store.
    fn seed_contacts(&self, contacts: Contacts);
    /// Everything needed to resume later (saved to the store after each login).
    fn session(&self) -> Session;
    /// Ends the channel and the login (WEBQQ.md §10); afterwards `session()` holds no secret.
    fn logout(&self) -> Fut<()>;
}

/// Makes a connection for an account: fresh (QR login) or from a saved session.
pub trait Connector: Send + Sync + 'static {
    fn connect(&self, session: Option<Session>) -> Result<Arc<dyn WebQq>, ProtocolError>;
}

/// A connection whose every call runs inside the account's span
/// ([`crate::logging::account_span`]): the protocol client's own lines (request, answer,
/// retcode, retries) know nothing of accounts, and inherit the id from the span. The Account
/// wraps each connection it makes, so every future its Login, Poller and Sender, the
/// contacts refresh, the probe and the logout hand to the client is instrumented.
pub struct InSpan {
    inner: Arc<dyn WebQq>,
    span: tracing::Span,
}

impl InSpan {
    pub fn wrap(inner: Arc<dyn WebQq>, account: &str) -> Arc<dyn WebQq> {
        Arc::new(InSpan {
            inner,
            span: crate::logging::account_span(account),
        })
    }

    fn run<T: Send + 'static>(&self, fut: Fut<T>) -> Fut<T> {
        Box::pin(tracing::Instrument::instrument(fut, self.span.clone()))
    }
}

impl WebQq for InSpan {
    fn fetch_qr(&self) -> Fut<Qr> {
        self.run(self.inner.fetch_qr())
    }
    fn check_qr(&self, qr: Qr) -> Fut<QrStatus> {
        self.run(self.inner.check_qr(qr))
    }
    fn complete_login(&self, check_sig_url: String, expect_qq: u64) -> Fut<()> {
        self.run(self.inner.complete_login(check_sig_url, expect_qq))
    }
    fn complete_scan(&self, check_sig_url: String, expect_qq: u64) -> Fut<()> {
        self.run(self.inner.complete_scan(check_sig_url, expect_qq))
    }
    fn finish_login(&self, expect_qq: u64) -> Fut<()> {
        self.run(self.inner.finish_login(expect_qq))
    }
    fn resume(&self) -> Fut<()> {
        self.run(self.inner.resume())
    }
    fn relink(&self) -> Fut<()> {
        self.run(self.inner.relink())
    }
    fn poll(&self) -> Fut<PollResult> {
        self.run(self.inner.poll())
    }
    fn probe(&self) -> Fut<bool> {
        self.run(self.inner.probe())
    }
    fn send(&self, target: Target, text: String, msg_id: u64) -> Fut<SendOutcome> {
        self.run(self.inner.send(target, text, msg_id))
    }
    fn contacts(&self) -> Fut<Contacts> {
        self.run(self.inner.contacts())
    }
    fn cached_contacts(&self) -> Option<Arc<Contacts>> {
        self.inner.cached_contacts()
    }
    fn channel_tag(&self) -> u64 {
        self.inner.channel_tag()
    }
    fn seed_contacts(&self, contacts: Contacts) {
        self.inner.seed_contacts(contacts)
    }
    fn session(&self) -> Session {
        self.inner.session()
    }
    fn logout(&self) -> Fut<()> {
        self.run(self.inner.logout())
    }
}

/// The real protocol client, at the real hosts or a simulator.
pub struct ClientConnector {
    pub endpoints: Endpoints,
    /// The tunables every client of this fleet gets (`qqfleet run --poll-timeout-secs`).
    pub options: ClientOptions,
}

impl Connector for ClientConnector {
    fn connect(&self, session: Option<Session>) -> Result<Arc<dyn WebQq>, ProtocolError> {
        let client = Client::with_options(self.endpoints.clone(), session, self.options.clone())?;
        Ok(Arc::new(client))
    }
}

impl WebQq for Client {
    fn fetch_qr(&self) -> Fut<Qr> {
        let c = self.clone();
        Box::pin(async move { c.fetch_qr().await })
    }
    fn check_qr(&self, qr: Qr) -> Fut<QrStatus> {
        let c = self.clone();
        Box::pin(async move { c.check_qr(&qr).await })
    }
    fn complete_login(&self, check_sig_url: String, expect_qq: u64) -> Fut<()> {
        let c = self.clone();
        Box::pin(async move { c.complete_login(&check_sig_url, Some(expect_qq)).await })
    }
    fn complete_scan(&self, check_sig_url: String, expect_qq: u64) -> Fut<()> {
        let c = self.clone();
        Box::pin(async move { c.complete_scan(&check_sig_url, Some(expect_qq)).await })
    }
    fn finish_login(&self, expect_qq: u64) -> Fut<()> {
        let c = self.clone();
        Box::pin(async move { c.finish_login(Some(expect_qq)).await })
    }
    fn resume(&self) -> Fut<()> {
        let c = self.clone();
        Box::pin(async move { c.resume().await })
    }
    fn relink(&self) -> Fut<()> {
        let c = self.clone();
        Box::pin(async move { c.relink().await })
    }
    fn poll(&self) -> Fut<PollResult> {
        let c = self.clone();
        Box::pin(async move { c.poll().await })
    }
    fn probe(&self) -> Fut<bool> {
        let c = self.clone();
        Box::pin(async move { c.probe().await })
    }
    fn send(&self, target: Target, text: String, msg_id: u64) -> Fut<SendOutcome> {
        let c = self.clone();
        Box::pin(async move { c.send_with_msg_id(&target, &text, msg_id).await })
    }
    fn contacts(&self) -> Fut<Contacts> {
        let c = self.clone();
        Box::pin(async move { c.contacts().await })
    }
    fn cached_contacts(&self) -> Option<Arc<Contacts>> {
        Client::cached_contacts(self)
    }
    fn channel_tag(&self) -> u64 {
        Client::channel_tag(self)
    }
    fn seed_contacts(&self, contacts: Contacts) {
        Client::seed_contacts(self, contacts)
    }
    fn session(&self) -> Session {
        Client::session(self)
    }
    fn logout(&self) -> Fut<()> {
        let c = self.clone();
        Box::pin(async move { c.logout().await })
    }
}

/// A scripted WebQQ for actor unit tests (paused time).
#[cfg(test)]
pub mod fake {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;

    /// What the fake does; tests edit it while the actors run.
    #[derive(Default)]
    pub struct Script {
        /// Answers of the next polls; when empty, a poll holds `hold` then answers Idle.
        pub polls: VecDeque<Result<PollResult, ProtocolError>>,
        /// How long an idle poll is held (like the server's 60 s).
        pub hold: Duration,
        /// When true, a poll never answers (for the watchdog).
        pub hang_polls: bool,
        /// check_qr answers Confirmed after this many checks.
        pub scans_after: u32,
        /// The QQ number that "scans".
        pub scanned_by: u64,
        /// Answers of the next QR checks, before `scans_after` decides (a failed check).
        pub qr_checks: VecDeque<Result<QrStatus, ProtocolError>>,
        /// Results of the next resume calls (default Ok).
        pub resumes: VecDeque<Result<(), ProtocolError>>,
        /// Results of the next relink calls (default Ok).
        pub relinks: VecDeque<Result<(), ProtocolError>>,
        /// What `contacts()` answers and `cached_contacts()` then shows.
        pub contacts: Option<Contacts>,
        /// Whether `contacts()` was called since the last connect.
        pub contacts_fetched: bool,
        /// Results of the next probes (default Ok(true)).
        pub probes: VecDeque<Result<bool, ProtocolError>>,
        /// Results of the next sends (default Delivered).
        pub sends: VecDeque<Result<SendOutcome, ProtocolError>>,
        /// What was sent: (target, text, msg_id).
        pub sent: Vec<(Target, String, u64)>,
        /// The next msg_id (like the client's counter).
        pub msg_id: u64,
        /// `logout()` was called: `session()` then holds no secret, like the client's.
        pub logged_out: bool,
        pub counts: Counts,
    }

    /// Calls made, by kind.
    #[derive(Default, Clone, Debug)]
    pub struct Counts {
        pub fetch_qr: u32,
        pub check_qr: u32,
        pub complete_login: u32,
        pub resume: u32,
        pub relink: u32,
        pub poll: u32,
        pub contacts: u32,
        pub logout: u32,
    }

    /// The fake connection; all clones share the script.
    #[derive(Clone)]
    pub struct FakeWebQq {
        pub script: Arc<Mutex<Script>>,
        pub session: Session,
    }

    impl FakeWebQq {
        fn s(&self) -> std::sync::MutexGuard<'_, Script> {
            self.script.lock().unwrap()
        }
    }

    impl WebQq for FakeWebQq {
        fn fetch_qr(&self) -> Fut<Qr> {
            self.s().counts.fetch_qr += 1;
            Box::pin(async {
                Ok(Qr {
                    png: vec![0x89, b'P', b'N', b'G'],
                    qrsig: "qrsig".into(),
                })
            })
        }
        fn check_qr(&self, _qr: Qr) -> Fut<QrStatus> {
            let mut s = self.s();
            if let Some(r) = s.qr_checks.pop_front() {
                return Box::pin(async move { r });
            }
            s.counts.check_qr += 1;
            let ans = if s.counts.check_qr > s.scans_after {
                QrStatus::Confirmed {
                    check_sig_url: "http://x/check_sig".into(),
                    nick: "n".into(),
                    qq: s.scanned_by,
                }
            } else {
                QrStatus::Waiting
            };
            Box::pin(async move { Ok(ans) })
        }
        fn complete_login(&self, _url: String, _qq: u64) -> Fut<()> {
            self.s().counts.complete_login += 1;
            Box::pin(async { Ok(()) })
        }
        fn resume(&self) -> Fut<()> {
            let mut s = self.s();
            s.counts.resume += 1;
            let r = s.resumes.pop_front().unwrap_or(Ok(()));
            Box::pin(async move { r })
        }
        fn relink(&self) -> Fut<()> {
            let mut s = self.s();
            s.counts.relink += 1;
            let r = s.relinks.pop_front().unwrap_or(Ok(()));
            Box::pin(async move { r })
        }
        fn poll(&self) -> Fut<PollResult> {
            let script = self.script.clone();
            let hold = {
                let mut s = self.s();
                s.counts.poll += 1;
                s.hold.max(Duration::from_millis(10))
            };
            // Like a held long poll: answers as soon as the test queues something, idle
            // after `hold`, never while `hang_polls` is set.
            Box::pin(async move {
                let start = tokio::time::Instant::now();
                loop {
                    {
                        let mut s = script.lock().unwrap();
                        if !s.hang_polls {
                            if let Some(r) = s.polls.pop_front() {
                                return r;
                            }
                            if start.elapsed() >= hold {
                                return Ok(PollResult::Idle);
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        }
        fn probe(&self) -> Fut<bool> {
            let r = self.s().probes.pop_front().unwrap_or(Ok(true));
            Box::pin(async move { r })
        }
        fn send(&self, target: Target, text: String, msg_id: u64) -> Fut<SendOutcome> {
            let mut s = self.s();
            s.msg_id = s.msg_id.max(msg_id + 1);
            let r = s.sends.pop_front().unwrap_or(Ok(SendOutcome::Delivered));
            if r.is_ok() {
                s.sent.push((target, text, msg_id));
            }
            Box::pin(async move { r })
        }
        fn contacts(&self) -> Fut<Contacts> {
            let mut s = self.s();
            s.counts.contacts += 1;
            s.contacts_fetched = true;
            let c = s.contacts.clone().unwrap_or_default();
            Box::pin(async move { Ok(c) })
        }
        fn channel_tag(&self) -> u64 {
            0
        }
        fn seed_contacts(&self, _contacts: Contacts) {}
        fn cached_contacts(&self) -> Option<Arc<Contacts>> {
            let s = self.s();
            s.contacts_fetched
                .then(|| Arc::new(s.contacts.clone().unwrap_or_default()))
        }
        fn session(&self) -> Session {
            let s = self.s();
            if s.logged_out {
                return Session {
                    uin: self.session.uin,
                    clientid: self.session.clientid,
                    msg_id: s.msg_id,
                    logged_out: true,
                    ..Session::default()
                };
            }
            Session {
                msg_id: s.msg_id,
                logged_out: false,
                ..self.session.clone()
            }
        }
        fn logout(&self) -> Fut<()> {
            let mut s = self.s();
            s.counts.logout += 1;
            s.logged_out = true;
            Box::pin(async { Ok(()) })
        }
    }

    /// Hands out fakes sharing one script.
    pub struct FakeConnector {
        pub script: Arc<Mutex<Script>>,
        pub qq: u64,
    }

    impl Connector for FakeConnector {
        fn connect(&self, session: Option<Session>) -> Result<Arc<dyn WebQq>, ProtocolError> {
            // Like the client: a saved session brings its msg_id counter back.
            let mut script = self.script.lock().unwrap();
            script.logged_out = false;
            if let Some(s) = &session {
                if s.msg_id != 0 {
                    script.msg_id = s.msg_id;
                }
            }
            drop(script);
            Ok(Arc::new(FakeWebQq {
                script: self.script.clone(),
                session: session.unwrap_or(Session {
                    uin: self.qq,
                    psessionid: "ps".into(),
                    ..Session::default()
                }),
            }))
        }
    }
}
