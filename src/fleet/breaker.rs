//! The outage breaker: one per fleet, shared by every account through [`Deps`].
//!
//! When the service itself fails (most accounts that called it within a short window got a
//! transport error, a timeout or a 5xx), a thousand accounts each retrying on their own
//! backoff still send thousands of requests into a dead service, and every relogin attempt
//! they make may end in a QR code nobody asked for. The breaker opens instead: every call an
//! account makes through its connection waits at the gate (polls, sends, relinks, resumes,
//! QR fetches all pause; no account sees a failure, so none is parked for it), and one probe
//! at a time asks the service whether it is back, with backoff between probes. When a probe
//! gets an answer the breaker closes and each waiting call goes on after its own random
//! delay ([`BreakerConfig::jitter`]), so the fleet comes back within seconds without a
//! thundering herd.
//!
//! A call that was already in flight when the breaker opened finishes normally. The breaker
//! counts accounts, not requests, so one account in a retry loop cannot open it alone.
//!
//! [`Deps`]: super::account::Deps

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use rand::Rng;
use tokio::sync::watch;
use tokio::time::Instant;

use super::webqq::{Fut, WebQq};
use crate::events::{emit, ServiceHealth};
use crate::protocol::{
    Contacts, PollResult, ProtocolError, Qr, QrStatus, SendOutcome, Session, Target,
};

/// Asks the service whether it answers at all (true: it gave any answer below 500).
pub type ProbeFn = Arc<dyn Fn() -> BoxFuture<'static, bool> + Send + Sync>;

/// The breaker's knobs. Defaults are what the fleet runs with.
#[derive(Debug, Clone)]
pub struct BreakerConfig {
    /// How far back an account's last outcome counts.
    pub window: Duration,
    /// At least this many accounts must have failed within the window (fewer when the
    /// fleet has fewer accounts: one account alone can open it).
    pub min_failing: usize,
    /// First pause before a probe, doubled after each failed probe up to `probe_cap` (so the
    /// fleet is back at most `probe_cap` + `jitter` after the service).
    pub probe_base: Duration,
    pub probe_cap: Duration,
    /// Once closed, each waiting call goes on after a uniform random delay up to this.
    pub jitter: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            window: Duration::from_secs(10),
            min_failing: 3,
            probe_base: Duration::from_secs(1),
            probe_cap: Duration::from_secs(5),
            jitter: Duration::from_secs(3),
        }
    }
}

#[derive(Default)]
struct Inner {
    /// Each account's last outcome: (when, ok).
    last: HashMap<String, (Instant, bool)>,
    /// Accounts that made a connection: the fleet's size, for small fleets.
    known: std::collections::HashSet<String>,
}

/// The fleet-wide breaker.
pub struct Breaker {
    enabled: bool,
    cfg: BreakerConfig,
    inner: Mutex<Inner>,
    /// true while the service is believed up.
    up: watch::Sender<bool>,
    probe: Option<ProbeFn>,
    /// Times the breaker opened (for tests and the soak report).
    opened: std::sync::atomic::AtomicU64,
}

impl Breaker {
    /// A breaker that opens on an outage and probes with `probe`.
    pub fn new(cfg: BreakerConfig, probe: ProbeFn) -> Arc<Breaker> {
        emit(ServiceHealth { up: true });
        Arc::new(Breaker {
            enabled: true,
            cfg,
            inner: Mutex::new(Inner::default()),
            up: watch::channel(true).0,
            probe: Some(probe),
            opened: Default::default(),
        })
    }

    /// A breaker that never opens (`--no-outage-breaker`, and unit tests of the actors).
    pub fn disabled() -> Arc<Breaker> {
        Arc::new(Breaker {
            enabled: false,
            cfg: BreakerConfig::default(),
            inner: Mutex::new(Inner::default()),
            up: watch::channel(true).0,
            probe: None,
            opened: Default::default(),
        })
    }

    /// Whether the service is believed up (always true for a disabled breaker).
    pub fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    /// How many times the breaker opened since the start.
    pub fn times_opened(&self) -> u64 {
        self.opened.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts `account` as one of the fleet (done by [`Breaker::wrap`]).
    pub fn register(&self, account: &str) {
        if self.enabled {
            let mut g = self.lock();
            if !g.known.contains(account) {
                g.known.insert(account.to_string());
            }
        }
    }

    /// Notes the outcome of one call by `account`; may open the breaker.
    pub fn record(self: &Arc<Self>, account: &str, ok: bool) {
        if !self.enabled || !self.is_up() {
            // While open only the probe decides; late answers of calls that were in flight
            // say nothing about now.
            return;
        }
        let now = Instant::now();
        let trip = {
            let mut g = self.lock();
            match g.last.get_mut(account) {
                Some(e) => *e = (now, ok),
                None => {
                    g.last.insert(account.to_string(), (now, ok));
                }
            }
            if ok {
                false
            } else {
                let (mut failing, mut fine) = (0usize, 0usize);
                for (at, ok) in g.last.values() {
                    if now.duration_since(*at) <= self.cfg.window {
                        if *ok {
                            fine += 1
                        } else {
                            failing += 1
                        }
                    }
                }
                let need = self.cfg.min_failing.min(g.known.len()).max(1);
                failing >= need && failing > fine
            }
        };
        if trip {
            self.open();
        }
    }

    fn open(self: &Arc<Self>) {
        let was_up = self.up.send_replace(false);
        if !was_up {
            return;
        }
        self.opened
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        emit(ServiceHealth { up: false });
        let me = self.clone();
        tokio::spawn(async move { me.probe_loop().await });
    }

    /// One probe at a time, with doubling pauses, until the service answers.
    async fn probe_loop(self: Arc<Self>) {
        let Some(probe) = self.probe.clone() else {
            return self.close();
        };
        let mut pause = self.cfg.probe_base;
        loop {
            tokio::time::sleep(pause).await;
            if probe().await {
                return self.close();
            }
            tracing::debug!(next_in_ms = pause.as_millis() as u64, "outage probe failed");
            pause = (pause * 2).min(self.cfg.probe_cap);
        }
    }

    fn close(&self) {
        self.lock().last.clear();
        if !self.up.send_replace(true) {
            emit(ServiceHealth { up: true });
        }
    }

    /// Waits while the breaker is open; after it closes, a random delay up to the jitter.
    /// Immediate while the service is up.
    pub async fn gate(&self) {
        if self.is_up() {
            return;
        }
        let mut rx = self.up.subscribe();
        // The sender lives as long as the breaker, which the caller holds.
        let _ = rx.wait_for(|up| *up).await;
        let max = self.cfg.jitter.as_millis() as u64;
        let ms = rand::rng().random_range(0..=max);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    /// Wraps an account's connection: every call waits at the gate, and its outcome is
    /// recorded. A disabled breaker returns the connection as is.
    pub fn wrap(self: &Arc<Self>, inner: Arc<dyn WebQq>, account: &str) -> Arc<dyn WebQq> {
        if !self.enabled {
            return inner;
        }
        self.register(account);
        Arc::new(Guarded {
            inner,
            breaker: self.clone(),
            account: Arc::from(account),
        })
    }
}

/// Whether an error says the service is failing (rather than refusing this account).
pub fn is_outage(e: &ProtocolError) -> bool {
    match e {
        ProtocolError::Timeout { .. } | ProtocolError::Transport { .. } => true,
        ProtocolError::HttpStatus { status, .. } => *status >= 500,
        _ => false,
    }
}

/// A connection behind the breaker.
struct Guarded {
    inner: Arc<dyn WebQq>,
    breaker: Arc<Breaker>,
    account: Arc<str>,
}

impl Guarded {
    fn run<T: Send + 'static>(&self, call: impl FnOnce() -> Fut<T> + Send + 'static) -> Fut<T> {
        let (b, account) = (self.breaker.clone(), self.account.clone());
        Box::pin(async move {
            b.gate().await;
            let r = call().await;
            let ok = match &r {
                Ok(_) => true,
                Err(e) => !is_outage(e),
            };
            b.record(&account, ok);
            r
        })
    }
}

impl WebQq for Guarded {
    fn fetch_qr(&self) -> Fut<Qr> {
        let i = self.inner.clone();
        self.run(move || i.fetch_qr())
    }
    fn check_qr(&self, qr: Qr) -> Fut<QrStatus> {
        let i = self.inner.clone();
        self.run(move || i.check_qr(qr))
    }
    fn complete_login(&self, check_sig_url: String, expect_qq: u64) -> Fut<()> {
        let i = self.inner.clone();
        self.run(move || i.complete_login(check_sig_url, expect_qq))
    }
    fn resume(&self) -> Fut<()> {
        let i = self.inner.clone();
        self.run(move || i.resume())
    }
    fn relink(&self) -> Fut<()> {
        let i = self.inner.clone();
        self.run(move || i.relink())
    }
    fn poll(&self) -> Fut<PollResult> {
        let i = self.inner.clone();
        self.run(move || i.poll())
    }
    fn probe(&self) -> Fut<bool> {
        let i = self.inner.clone();
        self.run(move || i.probe())
    }
    fn send(&self, target: Target, text: String, msg_id: u64) -> Fut<SendOutcome> {
        let i = self.inner.clone();
        self.run(move || i.send(target, text, msg_id))
    }
    fn contacts(&self) -> Fut<Contacts> {
        let i = self.inner.clone();
        self.run(move || i.contacts())
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
    /// Not gated: a removed account's logout is bounded by its own timeout and must not wait
    /// for the service to come back.
    fn logout(&self) -> Fut<()> {
        self.inner.logout()
    }
}

/// The probe the fleet uses: a GET of the channel host's proxy page (a static page the
/// service kept serving while it lived; no account, no cookie, no secret), true on any answer
/// below 500.
pub fn http_probe(endpoints: &crate::protocol::Endpoints) -> ProbeFn {
    let url = format!(
        "{}/proxy.html",
        endpoints.root(crate::protocol::endpoints::Host::D1Web2)
    );
    let builder = reqwest::Client::builder();
    // The accounts' own rustls config (the same hosts, the same roots): a client of its own
    // would load the system's roots into a config of ~100 KiB at every start.
    #[cfg(feature = "tls")]
    let builder = match crate::protocol::client::shared_tls_config() {
        Some(config) => builder.tls_backend_preconfigured(config.clone()),
        None => builder,
    };
    let http = builder.timeout(Duration::from_secs(5)).build().ok();
    Arc::new(move || {
        let (url, http) = (url.clone(), http.clone());
        Box::pin(async move {
            let Some(http) = http else { return false };
            match http.get(&url).send().await {
                Ok(r) => r.status().as_u16() < 500,
                Err(_) => false,
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    fn probe_that(up: Arc<AtomicBool>, calls: Arc<AtomicU32>) -> ProbeFn {
        Arc::new(move || {
            let (up, calls) = (up.clone(), calls.clone());
            Box::pin(async move {
                calls.fetch_add(1, Ordering::SeqCst);
                up.load(Ordering::SeqCst)
            })
        })
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_most_accounts_failing_probes_with_backoff_and_closes() {
        let (up, calls) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU32::new(0)),
        );
        let b = Breaker::new(
            BreakerConfig::default(),
            probe_that(up.clone(), calls.clone()),
        );
        for a in ["ok0", "ok1", "ok2", "ok3", "ok4", "flappy", "a"] {
            b.register(a);
        }
        for i in 0..5 {
            b.record(&format!("ok{i}"), true);
        }
        // Failures of a minority do not open it, nor one account failing again and again.
        for _ in 0..10 {
            b.record("flappy", false);
        }
        b.record("a", false);
        assert!(b.is_up());
        for i in 0..5 {
            b.record(&format!("down{i}"), false);
        }
        assert!(!b.is_up(), "7 failing of 12 accounts opens it");
        assert_eq!(b.times_opened(), 1);
        // Probes at 1, 1+2, 3+4, 7+5, 12+5 s: one at a time, with backoff up to the cap.
        tokio::time::sleep(Duration::from_millis(16_000)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert!(!b.is_up());
        // A waiting call goes on only after the service is back, within the jitter.
        let waiter = {
            let b = b.clone();
            tokio::spawn(async move {
                b.gate().await;
                Instant::now()
            })
        };
        up.store(true, Ordering::SeqCst);
        let back_at = Instant::now() + Duration::from_secs(5);
        let went = waiter.await.unwrap();
        assert!(b.is_up());
        assert_eq!(calls.load(Ordering::SeqCst), 5);
        assert!(went <= back_at + BreakerConfig::default().jitter);
        // Old failures were forgotten: one new failure does not reopen it.
        b.record("down0", false);
        assert!(b.is_up());
    }

    #[tokio::test(start_paused = true)]
    async fn failures_outside_the_window_do_not_count_and_disabled_never_opens() {
        let probe = probe_that(Arc::new(AtomicBool::new(true)), Default::default());
        let b = Breaker::new(BreakerConfig::default(), probe);
        for a in ["a", "b", "c", "d", "e"] {
            b.register(a);
        }
        b.record("a", false);
        b.record("b", false);
        b.record("c", true);
        b.record("d", true);
        tokio::time::sleep(Duration::from_secs(11)).await;
        b.record("e", false);
        assert!(b.is_up(), "a and b failed too long ago");
        // One account alone is a fleet of one: its failure is the service's.
        let probe = probe_that(Arc::new(AtomicBool::new(false)), Default::default());
        let one = Breaker::new(BreakerConfig::default(), probe);
        one.register("solo");
        one.record("solo", false);
        assert!(!one.is_up());
        let d = Breaker::disabled();
        for i in 0..10 {
            d.record(&i.to_string(), false);
        }
        assert!(d.is_up());
    }

    #[test]
    fn outage_errors() {
        use crate::protocol::Endpoint;
        let ep = Endpoint::Poll2;
        assert!(is_outage(&ProtocolError::HttpStatus {
            endpoint: ep,
            status: 502
        }));
        assert!(!is_outage(&ProtocolError::HttpStatus {
            endpoint: ep,
            status: 404
        }));
        assert!(is_outage(&ProtocolError::Transport {
            endpoint: ep,
            message: "reset".into()
        }));
    }
}
