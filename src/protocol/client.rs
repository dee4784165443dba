//! One account's WebQQ client: its own cookie jar and session state, sending through the
//! connection pool every account shares ([`super::pool`]).
//!
//! `Client` is cheap to clone and shared inside: the fleet polls from one actor and sends and
//! lists from others on clones of the same value. State sits behind std mutexes that are
//! only held for short, synchronous sections, never across an `.await`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderValue;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::contacts::{self, Contacts};
use super::content::{encode_send, split_text};
use super::cookie_cache::CookieCache;
use super::endpoints::{Endpoint, Endpoints, Host, Method, CLIENTID};
use super::error::ProtocolError;
use super::events::{decode_event, num, PollEvent};
use super::hash;
use super::jar::Jar;
use super::poll_conn;
use super::pool;
use super::ptlogin::{self, QrAnswer};
use super::retcode::{Action, RetcodeTable};
use super::session::Session;

/// A QR code to scan.
#[derive(Clone)]
pub struct Qr {
    /// The PNG bytes served by ptqrshow.
    pub png: Vec<u8>,
    /// The qrsig cookie value (its hash33 is the ptqrtoken). Secret-ish: not in `Debug`.
    pub qrsig: String,
}

impl std::fmt::Debug for Qr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qr")
            .field("png_bytes", &self.png.len())
            .finish_non_exhaustive()
    }
}

/// Where a QR code stands (ptqrlogin, WEBQQ.md §3.4).
#[derive(Clone, PartialEq, Eq)]
pub enum QrStatus {
    /// 66: not scanned yet.
    Waiting,
    /// 67: scanned, waiting for the confirmation on the phone.
    Scanned,
    /// 65: expired; fetch a new one.
    Expired,
    /// 0: confirmed. `qq` comes from the `uin`/`superuin` cookies set with the answer (0 if
    /// absent). The URL carries the ptsigx token, so `Debug` hides it.
    Confirmed {
        check_sig_url: String,
        nick: String,
        qq: u64,
    },
}

impl std::fmt::Debug for QrStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QrStatus::Waiting => f.write_str("Waiting"),
            QrStatus::Scanned => f.write_str("Scanned"),
            QrStatus::Expired => f.write_str("Expired"),
            QrStatus::Confirmed { nick, qq, .. } => f
                .debug_struct("Confirmed")
                .field("nick", nick)
                .field("qq", qq)
                .finish_non_exhaustive(),
        }
    }
}

/// The outcome of one poll2.
#[derive(Clone, Debug, PartialEq)]
pub enum PollResult {
    /// Events, in the order the server listed them (the simulator sends one per answer).
    Events(Vec<PollEvent>),
    /// Nothing happened (E3 idle answer, 102, empty result, gateway 502/504: §5.2).
    Idle,
    /// A retcode and what the policy table says to do. For 116 the client has already
    /// stored the new ptwebqq: persist `session()` and poll again.
    Retcode { retcode: i64, action: Action },
}

/// Through which group/discussion a temporary session goes (WEBQQ.md §8.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SessVia {
    /// The group's code (E3 poll messages: group_code == gid).
    Group(u64),
    /// The discussion id.
    Discu(u64),
}

/// Whom to send to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Target {
    /// A friend's uin.
    Buddy(u64),
    /// A group's gid.
    Group(u64),
    /// A discussion's did.
    Discu(u64),
    /// A member through a group or discussion (temporary session; blocked by Tencent from
    /// ~2016-02, §8.1).
    Sess { to: u64, via: SessVia },
}

impl Target {
    /// The send endpoint of the target.
    pub fn endpoint(&self) -> Endpoint {
        match self {
            Target::Buddy(_) => Endpoint::SendBuddyMsg2,
            Target::Group(_) => Endpoint::SendQunMsg2,
            Target::Discu(_) => Endpoint::SendDiscuMsg2,
            Target::Sess { .. } => Endpoint::SendSessMsg2,
        }
    }
}

/// How a send ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SendOutcome {
    /// errCode 0, retcode 0 or 100100 for every piece (§8.2).
    Delivered,
    /// At least one piece got 1202: it may well have arrived. Never resend blindly.
    Uncertain,
}

/// Tunables of a client.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Read timeout of poll2: above the server's hold (60 s, §5.1; clients used 70-120 s).
    pub poll_timeout: Duration,
    /// Timeout of every other call.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// The retcode policy (with operator overrides).
    pub retcodes: RetcodeTable,
    /// How long a sent text is remembered to recognise its echo (§5.4).
    pub echo_window: Duration,
    /// How long a get_c2cmsg_sig2 value is reused (§8.1: cache ~5 min).
    pub sess_sig_ttl: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            poll_timeout: Duration::from_secs(90),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retcodes: RetcodeTable::default(),
            echo_window: Duration::from_secs(120),
            sess_sig_ttl: Duration::from_secs(300),
        }
    }
}

#[derive(Default)]
struct State {
    uin: u64,
    ptwebqq: String,
    vfwebqq: String,
    psessionid: String,
    clientid: u64,
    kicked: Option<String>,
    rate_limited: HashMap<Endpoint, SystemTime>,
    /// (when, target, piece text) of recent sends, for echo detection.
    recent_sends: VecDeque<(Instant, Target, String)>,
    sess_sigs: HashMap<(u64, SessVia), (Instant, String)>,
    contacts: Option<Arc<Contacts>>,
    login_page_loaded: bool,
    /// `logout()` ended the login (§10); a new login clears it.
    logged_out: bool,
    /// Unix seconds of the QR login (check_sig) this session stems from; see
    /// [`Session::logged_in_at`].
    logged_in_at: u64,
    /// See [`Session::channel_since`].
    channel_since: u64,
}

struct Inner {
    endpoints: Endpoints,
    /// This account's cookies, and no one else's: the pooled HTTP client has no cookie store,
    /// `Client::transmit` (`client_request.rs`) reads and fills this jar on every request
    /// (see [`super::pool`]).
    jar: Mutex<Jar>,
    /// The jar's `Cookie` header, reused while the jar is unchanged.
    cookie_header: CookieCache,
    opts: ClientOptions,
    state: Mutex<State>,
    msg_id: AtomicU64,
    /// When the "page" was loaded: `action=0-0-<ms since>` of ptqrlogin (§3.4).
    page_loaded: Instant,
    /// What every poll2 request repeats, built at the first poll.
    poll: std::sync::OnceLock<request::PollParts>,
    /// The poll's own connection, kept between two polls (`poll_conn`).
    poll_conn: poll_conn::PollConn,
}

/// One account's WebQQ client: one cookie jar and one session, over the shared connection
/// pool. Cheap to clone (shared inside), so the Poller and the Sender use the same session.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.state();
        f.debug_struct("Client")
            .field("endpoints", &self.inner.endpoints)
            .field("uin", &st.uin)
            .field("logged_in", &!st.psessionid.is_empty())
            .finish_non_exhaustive()
    }
}

/// A raw answer.
struct Answer {
    status: u16,
    location: Option<String>,
    content_type: String,
    body: Vec<u8>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Writes a JSON object with keys in the given order (the order the official page used;
/// serde_json's map would sort them).
fn ordered(fields: &[(&str, Value)]) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&Value::String((*k).to_string()).to_string());
        s.push(':');
        s.push_str(&v.to_string());
    }
    s.push('}');
    s
}

impl Client {
    /// A fresh client with no session (log in with `fetch_qr` → `check_qr` →
    /// `complete_login`).
    pub fn new(endpoints: Endpoints) -> Result<Client, ProtocolError> {
        Self::with_options(endpoints, None, ClientOptions::default())
    }

    /// A client holding a saved session (call `resume()` or just `poll()`).
    pub fn with_session(endpoints: Endpoints, session: Session) -> Result<Client, ProtocolError> {
        Self::with_options(endpoints, Some(session), ClientOptions::default())
    }

    /// The general constructor.
    pub fn with_options(
        endpoints: Endpoints,
        session: Option<Session>,
        opts: ClientOptions,
    ) -> Result<Client, ProtocolError> {
        #[cfg(not(feature = "tls"))]
        if endpoints.sim_base.is_none() {
            // Built without the `tls` feature (reqwest default-features off), and every real
            // host needs https from 2018-12 (§2 "Scheme").
            return Err(ProtocolError::TlsUnavailable);
        }
        let jar = match &session {
            Some(s) if !s.cookies.is_empty() => Jar::load(&s.cookies)
                .map_err(|e| ProtocolError::BadSession(format!("cookie jar: {e}")))?,
            _ => Jar::default(),
        };
        // Every account shares the one rustls config (and, per runtime, one connection pool:
        // `pool`); fail here, as before the pool existed, when TLS cannot be set up at all.
        #[cfg(feature = "tls")]
        shared_tls_config().ok_or(ProtocolError::TlsUnavailable)?;
        let mut state = State::default();
        let mut msg_id = 0;
        if let Some(s) = session {
            state.uin = s.uin;
            state.ptwebqq = s.ptwebqq;
            state.vfwebqq = s.vfwebqq;
            state.psessionid = s.psessionid;
            state.clientid = s.clientid;
            state.logged_out = s.logged_out;
            state.logged_in_at = s.logged_in_at;
            state.channel_since = s.channel_since;
            msg_id = s.msg_id;
        }
        if state.clientid == 0 {
            state.clientid = CLIENTID;
        }
        if msg_id == 0 {
            // §1: one client started at ((now_ms/1000) % 10000) * 10000.
            msg_id = ((now_ms() / 1000) % 10000) * 10000 + 1;
        }
        Ok(Client {
            inner: Arc::new(Inner {
                endpoints,
                jar: Mutex::new(jar),
                cookie_header: CookieCache::default(),
                opts,
                state: Mutex::new(state),
                msg_id: AtomicU64::new(msg_id),
                page_loaded: Instant::now(),
                poll: std::sync::OnceLock::new(),
                poll_conn: Default::default(),
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn jar(&self) -> MutexGuard<'_, Jar> {
        self.inner.jar.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Called after every change of the jar: the cached `Cookie` header is stale.
    pub(super) fn jar_changed(&self) {
        self.inner.cookie_header.changed();
    }

    /// The endpoint table in use.
    pub fn endpoints(&self) -> &Endpoints {
        &self.inner.endpoints
    }

    /// Own uin (= QQ number) once logged in, else 0.
    pub fn uin(&self) -> u64 {
        self.state().uin
    }

    /// Everything needed to resume; persist it after login, relink, 116 and sends.
    pub fn session(&self) -> Session {
        let cookies = self.jar().save();
        let st = self.state();
        Session {
            uin: st.uin,
            cookies,
            ptwebqq: st.ptwebqq.clone(),
            vfwebqq: st.vfwebqq.clone(),
            psessionid: st.psessionid.clone(),
            clientid: st.clientid,
            msg_id: self.inner.msg_id.load(Ordering::SeqCst),
            logged_out: st.logged_out,
            logged_in_at: st.logged_in_at,
            channel_since: st.channel_since,
        }
    }

    /// The last contact snapshot fetched by `contacts()`, if any.
    pub fn cached_contacts(&self) -> Option<Arc<Contacts>> {
        self.state().contacts.clone()
    }

    /// A tag of the current channel: when a login2 without psessionid made it (a relink
    /// keeps it); 0 without a channel or when unknown. Pseudo uins hold within one channel
    /// only, so contacts kept in the store are reused after a restart only under the same
    /// tag.
    pub fn channel_tag(&self) -> u64 {
        let st = self.state();
        if st.psessionid.is_empty() {
            return 0;
        }
        st.channel_since
    }

    /// Contacts fetched earlier in this same channel (see [`Client::channel_tag`]), so a
    /// resumed session needs no friend-list call.
    pub fn seed_contacts(&self, c: Contacts) {
        self.state().contacts = Some(Arc::new(c));
    }

    /// The value of a cookie by name (any domain/path), unexpired only.
    fn cookie(&self, name: &str) -> Option<String> {
        self.jar().value(name)
    }

    /// Sets a cookie as a server would have: on the real hosts with `Domain=<domain>`, on a
    /// simulator host-only (its cookies are host-only, DESIGN.md "Addressing").
    fn set_cookie(&self, host: Host, domain: &str, name: &str, value: &str) {
        let url = format!("{}/", self.inner.endpoints.root(host));
        let attrs = match &self.inner.endpoints.sim_base {
            None => format!("Path=/; Domain={domain}"),
            Some(_) => "Path=/".to_string(),
        };
        if let Ok(url) = url::Url::parse(&url) {
            self.jar().store(&format!("{name}={value}; {attrs}"), &url);
            self.jar_changed();
        }
    }

    // ---------------------------------------------------------------- HTTP

    async fn call(
        &self,
        ep: Endpoint,
        query: &[(&str, String)],
        form_r: Option<String>,
    ) -> Result<Answer, ProtocolError> {
        let url = self.inner.endpoints.url(ep);
        self.request(ep, &url, query, form_r, self.inner.opts.request_timeout)
            .await
    }

    /// A call whose answer must be HTTP 200 (ptlogin's script and image answers), else
    /// `HttpStatus`.
    async fn call_ok(
        &self,
        ep: Endpoint,
        query: &[(&str, String)],
        form_r: Option<String>,
    ) -> Result<Answer, ProtocolError> {
        let a = self.call(ep, query, form_r).await?;
        if a.status != 200 {
            return Err(ProtocolError::HttpStatus {
                endpoint: ep,
                status: a.status,
            });
        }
        Ok(a)
    }

    /// A JSON envelope call: HTTP 200 and a JSON object, else a typed error.
    async fn call_json(
        &self,
        ep: Endpoint,
        query: &[(&str, String)],
        form_r: Option<String>,
    ) -> Result<Value, ProtocolError> {
        let a = self.call(ep, query, form_r).await?;
        decode_json(ep, &a)
    }

    /// `{"retcode":0,"result":…}` → result; anything else → a typed error through the table.
    async fn call_result(
        &self,
        ep: Endpoint,
        query: &[(&str, String)],
        form_r: Option<String>,
    ) -> Result<Value, ProtocolError> {
        self.check_rate_limit(ep)?;
        let mut attempt = 1;
        let v = loop {
            match self.call_json(ep, query, form_r.clone()).await {
                Ok(v) => break v,
                Err(e) if attempt < READ_ATTEMPTS && retry_read(ep, &e) => {
                    tracing::debug!(endpoint = %ep, error = %e, attempt, "retrying");
                    tokio::time::sleep(Duration::from_millis(200 * attempt as u64)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        };
        self.result_of(ep, v)
    }

    fn result_of(&self, ep: Endpoint, v: Value) -> Result<Value, ProtocolError> {
        let Some(retcode) = retcode_of(&v) else {
            return Err(ProtocolError::undecodable(
                ep,
                "no retcode",
                v.to_string().as_bytes(),
            ));
        };
        if retcode == 0 {
            return match v.get("result") {
                Some(r) => Ok(r.clone()),
                None => Err(ProtocolError::undecodable(
                    ep,
                    "retcode 0 without result",
                    v.to_string().as_bytes(),
                )),
            };
        }
        Err(self.retcode_error(ep, retcode))
    }

    fn retcode_error(&self, ep: Endpoint, retcode: i64) -> ProtocolError {
        let action = self.inner.opts.retcodes.action(ep, retcode, None);
        tracing::warn!(endpoint = %ep, retcode, ?action, "retcode");
        if let Action::RateLimitedFor(d) = action {
            let until = SystemTime::now() + d;
            self.state().rate_limited.insert(ep, until);
            return ProtocolError::RateLimited {
                endpoint: ep,
                retry_after: d,
                until,
            };
        }
        ProtocolError::Retcode {
            endpoint: ep,
            retcode,
            action,
        }
    }

    fn check_rate_limit(&self, ep: Endpoint) -> Result<(), ProtocolError> {
        let mut st = self.state();
        if let Some(&until) = st.rate_limited.get(&ep) {
            match until.duration_since(SystemTime::now()) {
                Ok(left) if !left.is_zero() => {
                    return Err(ProtocolError::RateLimited {
                        endpoint: ep,
                        retry_after: left,
                        until,
                    })
                }
                _ => {
                    st.rate_limited.remove(&ep);
                }
            }
        }
        Ok(())
    }

    fn check_kicked(&self) -> Result<(), ProtocolError> {
        match &self.state().kicked {
            Some(reason) => Err(ProtocolError::Kicked {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    fn channel(&self) -> Result<(String, String, String, u64), ProtocolError> {
        let st = self.state();
        if st.psessionid.is_empty() {
            return Err(ProtocolError::NotLoggedIn);
        }
        Ok((
            st.ptwebqq.clone(),
            st.vfwebqq.clone(),
            st.psessionid.clone(),
            st.clientid,
        ))
    }

    // ---------------------------------------------------------------- login (§3)

    /// One long poll (§5.1). Exactly one should be outstanding per session; call again at
    /// once after every answer.
    pub async fn poll(&self) -> Result<PollResult, ProtocolError> {
        self.check_kicked()?;
        let ep = Endpoint::Poll2;
        let out = self.poll_request()?;
        let a = self
            .transmit_poll(ep, out, self.inner.opts.poll_timeout)
            .await?;
        // §2: 502/504 (and 404) were frequent on poll2 and clients treated them as empty
        if matches!(a.status, 404 | 502 | 504) {
            tracing::debug!(status = a.status, "poll2 gateway answer treated as idle");
            return Ok(PollResult::Idle);
        }
        let v = decode_json(ep, &a)?;
        if retcode_of(&v).is_none() {
            return Err(ProtocolError::undecodable(ep, "no retcode", &a.body));
        }
        Ok(self.handle_poll_answer(v))
    }

    /// Classifies a decoded poll2 answer (also used by tests and the fuzzer through
    /// [`classify_poll`]).
    fn handle_poll_answer(&self, v: Value) -> PollResult {
        let res = classify_poll(&v, &self.inner.opts.retcodes);
        match &res {
            PollResult::Retcode {
                action: Action::RefreshPtwebqq(p),
                ..
            } => {
                // §5.2: set cookie ptwebqq=<p> (domain qq.com, path /) and use it from now on
                self.state().ptwebqq = p.clone();
                self.set_cookie(Host::W, "qq.com", "ptwebqq", p);
                res
            }
            PollResult::Events(events) => {
                let events: Vec<PollEvent> =
                    events.iter().cloned().map(|e| self.mark_echo(e)).collect();
                let kicked = events.iter().find_map(|e| match e {
                    PollEvent::Kick { reason, .. } => Some(reason.clone()),
                    _ => None,
                });
                if let Some(reason) = kicked {
                    tracing::warn!("kicked by the server");
                    self.state().kicked = Some(reason);
                }
                PollResult::Events(events)
            }
            _ => res,
        }
    }

    /// Marks echoes of our own sends (§5.4): a sender equal to our uin, or — since group
    /// echoes come from a pseudo uin that is not in the member list — an unknown sender
    /// repeating a text we sent to the same conversation within the echo window.
    fn mark_echo(&self, mut e: PollEvent) -> PollEvent {
        let mut st = self.state();
        let window = self.inner.opts.echo_window;
        while st
            .recent_sends
            .front()
            .is_some_and(|(t, _, _)| t.elapsed() > window)
        {
            st.recent_sends.pop_front();
        }
        let me = st.uin;
        let contacts = st.contacts.clone();
        let mut take = |target: Target, text: String| -> bool {
            if let Some(i) = st
                .recent_sends
                .iter()
                .position(|(_, t, s)| *t == target && *s == text)
            {
                st.recent_sends.remove(i);
                true
            } else {
                false
            }
        };
        match &mut e {
            PollEvent::Message(m) => {
                let unknown = contacts
                    .as_ref()
                    .map_or(true, |c| c.friend(m.from_uin).is_none());
                m.self_echo = (me != 0 && m.from_uin == me)
                    || (unknown && take(Target::Buddy(m.from_uin), m.content.text()));
            }
            PollEvent::GroupMessage(m) => {
                let unknown = contacts
                    .as_ref()
                    .map_or(true, |c| !c.is_group_member(m.gid, m.send_uin));
                m.self_echo = (me != 0 && m.send_uin == me)
                    || (unknown && take(Target::Group(m.gid), m.content.text()));
            }
            PollEvent::DiscuMessage(m) => {
                let unknown = contacts.as_ref().map_or(true, |c| {
                    c.discu(m.did)
                        .map_or(true, |d| !d.members.iter().any(|x| x.uin == m.send_uin))
                });
                m.self_echo = (me != 0 && m.send_uin == me)
                    || (unknown && take(Target::Discu(m.did), m.content.text()));
            }
            PollEvent::SessMessage(m) => {
                m.self_echo = me != 0 && m.from_uin == me;
            }
            _ => {}
        }
        e
    }

    // ---------------------------------------------------------------- send (§7.2, §8)
}

/// The one rustls configuration every account shares (research §1.3: a config per client
/// costs ~100 KiB and 2 ms; a shared one ~4 KiB). Roots are compiled in (webpki-roots), so
/// nothing is read from the system.
#[cfg(feature = "tls")]
pub fn shared_tls_config() -> Option<&'static rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<Option<rustls::ClientConfig>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let builder = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .ok()?;
            Some(builder.with_root_certificates(roots).with_no_client_auth())
        })
        .as_ref()
}

/// The member list of one group or discussion, or `None` when the server refuses it with a
/// fatal retcode: logged and skipped, since one broken group must not hide the others (§6.3:
/// partial results exist). Any other error fails the whole snapshot.
fn members_or_skip(
    res: Result<Value, ProtocolError>,
    what: &'static str,
    id: u64,
) -> Result<Option<Value>, ProtocolError> {
    match res {
        Ok(r) => Ok(Some(r)),
        Err(ProtocolError::Retcode {
            action: Action::Fatal,
            retcode,
            ..
        }) => {
            tracing::warn!(what, id, retcode, "members unavailable");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Attempts of a read-only call on a gateway error (§2: getvfwebqq, get_self_info2 and
/// get_group_name_list_mask2 occasionally answered HTTP 404 and clients retried ≤ 3 times).
const READ_ATTEMPTS: u32 = 3;

/// Whether a failed call may simply be repeated: read-only calls only (never a send: it may
/// have arrived; never login2: it would open a second channel), on a gateway status or a
/// connection failure, not on a timeout (the caller already waited) or a retcode.
fn retry_read(ep: Endpoint, e: &ProtocolError) -> bool {
    let read_only = matches!(
        ep,
        Endpoint::Getvfwebqq
            | Endpoint::GetSelfInfo2
            | Endpoint::GetGroupNameListMask2
            | Endpoint::GetGroupInfoExt2
            | Endpoint::GetDiscusList
            | Endpoint::GetDiscuInfo
            | Endpoint::GetOnlineBuddies2
            | Endpoint::GetRecentList2
            | Endpoint::GetC2cmsgSig2
    );
    read_only
        && match e {
            ProtocolError::HttpStatus { status, .. } => matches!(status, 404 | 502 | 503 | 504),
            ProtocolError::Transport { .. } => true,
            _ => false,
        }
}

/// `retcode` as a number (it came as number or string).
fn retcode_of(v: &Value) -> Option<i64> {
    match v.get("retcode")? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Decodes a JSON answer: HTTP 200, a JSON object. HTML error pages, empty bodies and
/// truncated JSON become `Undecodable` with a redacted excerpt.
fn decode_json(ep: Endpoint, a: &Answer) -> Result<Value, ProtocolError> {
    if a.status != 200 {
        return Err(ProtocolError::HttpStatus {
            endpoint: ep,
            status: a.status,
        });
    }
    decode_json_body(ep, &a.content_type, &a.body)
}

/// The body half of [`decode_json`] (public to the crate for the fuzz tests).
pub fn decode_json_body(
    ep: Endpoint,
    content_type: &str,
    body: &[u8],
) -> Result<Value, ProtocolError> {
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Err(ProtocolError::undecodable(ep, "empty body", body));
    }
    if trimmed.starts_with(b"<") || content_type.contains("html") && !trimmed.starts_with(b"{") {
        return Err(ProtocolError::undecodable(
            ep,
            format!("HTML page instead of JSON (content type {content_type:?})"),
            body,
        ));
    }
    let v: Value = serde_json::from_slice(trimmed).map_err(|e| {
        ProtocolError::undecodable(ep, format!("bad JSON ({content_type:?}): {e}"), body)
    })?;
    if !v.is_object() {
        return Err(ProtocolError::undecodable(
            ep,
            "JSON is not an object",
            body,
        ));
    }
    Ok(v)
}

/// Classifies a decoded poll2 answer (§5.2) without side effects.
pub fn classify_poll(v: &Value, table: &RetcodeTable) -> PollResult {
    let ep = Endpoint::Poll2;
    let Some(retcode) = retcode_of(v) else {
        return PollResult::Retcode {
            retcode: -1,
            action: Action::Repoll,
        };
    };
    if retcode == 0 {
        return match v.get("result") {
            Some(Value::Array(items)) if !items.is_empty() => {
                PollResult::Events(items.iter().map(decode_event).collect())
            }
            Some(Value::Array(_)) => PollResult::Idle,
            // E1 "result":"ok"
            Some(Value::String(_)) => PollResult::Idle,
            // §5.2: {"retcode":0,"retmsg":"ok","errmsg":"error"} → probe the session
            None if v.get("errmsg").and_then(Value::as_str) == Some("error") => {
                PollResult::Retcode {
                    retcode: 0,
                    action: Action::Probe,
                }
            }
            // E3 idle: {"errmsg":"","retcode":0}
            _ => PollResult::Idle,
        };
    }
    let p = v.get("p").and_then(Value::as_str).filter(|p| !p.is_empty());
    let action = table.action(ep, retcode, p);
    if retcode == 102 && action == Action::Repoll {
        return PollResult::Idle;
    }
    PollResult::Retcode { retcode, action }
}

/// Classifies a send answer (§8.2): Ok(outcome) or Err((code, action)).
pub fn classify_send(
    v: &Value,
    ep: Endpoint,
    table: &RetcodeTable,
) -> Result<SendOutcome, (i64, Action)> {
    // E3 success: {"errCode":0,"msg":"send ok"}; an errCode ≠ 0 is a failure
    if let Some(code) = v.get("errCode").and_then(Value::as_i64) {
        if retcode_of(v).is_none() {
            return if code == 0 {
                Ok(SendOutcome::Delivered)
            } else {
                Err((code, table.action(ep, code, None)))
            };
        }
    }
    let Some(retcode) = retcode_of(v) else {
        return Err((-1, Action::Fatal));
    };
    if retcode == 1202 {
        return Ok(SendOutcome::Uncertain);
    }
    match table.action(ep, retcode, None) {
        Action::Continue => Ok(SendOutcome::Delivered),
        a => Err((retcode, a)),
    }
}

#[path = "client_calls.rs"]
mod calls;
#[path = "client_login.rs"]
mod login;
#[path = "client_request.rs"]
mod request;

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(not(feature = "tls"))]
    #[test]
    fn real_hosts_need_the_tls_feature() {
        assert!(matches!(
            Client::new(Endpoints::real()),
            Err(ProtocolError::TlsUnavailable)
        ));
        assert!(Client::new(Endpoints::sim("http://127.0.0.1:1")).is_ok());
    }

    #[cfg(feature = "tls")]
    #[test]
    fn real_hosts_share_one_tls_config() {
        let a = shared_tls_config().unwrap() as *const rustls::ClientConfig;
        let b = shared_tls_config().unwrap() as *const rustls::ClientConfig;
        assert_eq!(a, b);
        assert!(!shared_tls_config()
            .unwrap()
            .crypto_provider()
            .cipher_suites
            .is_empty());
        for _ in 0..3 {
            Client::new(Endpoints::real()).unwrap();
        }
    }
}
