//! Public API skeleton of the per-account WebQQ client (to be implemented).

use serde::{Deserialize, Serialize};

/// Where each WebQQ host lives: the real hosts over https, or a simulator base URL with the
/// host names as path prefixes (`http://127.0.0.1:PORT/s.web2.qq.com/api/...`).
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// `None` for the real hosts; `Some("http://127.0.0.1:PORT")` for a simulator.
    pub sim_base: Option<String>,
}

impl Endpoints {
    /// The real WebQQ hosts.
    pub fn real() -> Self {
        Endpoints { sim_base: None }
    }
    /// A simulator at `base` (`http://127.0.0.1:PORT`).
    pub fn sim(base: &str) -> Self {
        Endpoints {
            sim_base: Some(base.trim_end_matches('/').to_string()),
        }
    }
}

/// Everything needed to resume an account without a new scan. Serializable for the store;
/// its `Debug` redacts every secret.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Session {
    /// Own QQ number (= own uin).
    pub uin: u64,
    /// The whole cookie jar, session cookies included (serialized).
    pub cookies: String,
    pub ptwebqq: String,
    pub vfwebqq: String,
    pub psessionid: String,
    pub clientid: u64,
    /// Next msg_id for sends; persisted so a restart never reuses one.
    pub msg_id: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("uin", &self.uin)
            .field("clientid", &self.clientid)
            .field("msg_id", &self.msg_id)
            .finish_non_exhaustive()
    }
}

/// A QR code to scan.
#[derive(Clone, Debug)]
pub struct Qr {
    /// The PNG bytes served by ptqrshow.
    pub png: Vec<u8>,
    /// The qrsig cookie value (its hash33 is the ptqrtoken).
    pub qrsig: String,
}

/// Where a QR code stands (ptqrlogin).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QrStatus {
    /// 66: not scanned yet.
    Waiting,
    /// 67: scanned, waiting for the confirmation on the phone.
    Scanned,
    /// 65: expired; fetch a new one.
    Expired,
    /// 0: confirmed.
    Confirmed {
        check_sig_url: String,
        nick: String,
        qq: u64,
    },
}

/// What to do after a retcode (the retcode policy table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Continue,
    Repoll,
    RefreshPtwebqq(String),
    Relink,
    Relogin,
    Stopped,
    RateLimitedFor(std::time::Duration),
    Fatal,
}

/// A decoded poll2 event.
#[derive(Clone, Debug, PartialEq)]
pub enum PollEvent {
    Unknown(serde_json::Value),
}

/// The outcome of one poll2.
#[derive(Clone, Debug, PartialEq)]
pub enum PollResult {
    Events(Vec<PollEvent>),
    Idle,
    Retcode { retcode: i64, action: Action },
}

/// Whom to send to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Target {
    Buddy(u64),
    Group(u64),
    Discu(u64),
}

/// How a send ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    Delivered,
    Uncertain,
}

/// A snapshot of the contacts.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Contacts {}

/// Errors of the protocol layer.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// Not built yet.
    #[error("not built yet")]
    NotYet,
}

/// One account's WebQQ client: one reqwest Client and one cookie jar. Cheap to clone (shared
/// inside), so the Poller and the Sender use the same session.
#[derive(Clone)]
pub struct Client {
    _endpoints: Endpoints,
}

impl Client {
    pub fn new(endpoints: Endpoints) -> Result<Client, ProtocolError> {
        Ok(Client {
            _endpoints: endpoints,
        })
    }
    pub fn with_session(endpoints: Endpoints, _session: Session) -> Result<Client, ProtocolError> {
        Self::new(endpoints)
    }
    pub fn session(&self) -> Session {
        Session::default()
    }
    pub async fn fetch_qr(&self) -> Result<Qr, ProtocolError> {
        Err(ProtocolError::NotYet)
    }
    pub async fn check_qr(&self, _qr: &Qr) -> Result<QrStatus, ProtocolError> {
        Err(ProtocolError::NotYet)
    }
    pub async fn complete_login(
        &self,
        _check_sig_url: &str,
        _expect_qq: Option<u64>,
    ) -> Result<(), ProtocolError> {
        Err(ProtocolError::NotYet)
    }
    pub async fn resume(&self) -> Result<(), ProtocolError> {
        Err(ProtocolError::NotYet)
    }
    pub async fn relink(&self) -> Result<(), ProtocolError> {
        Err(ProtocolError::NotYet)
    }
    pub async fn poll(&self) -> Result<PollResult, ProtocolError> {
        Err(ProtocolError::NotYet)
    }
    pub async fn send(&self, _target: &Target, _text: &str) -> Result<SendOutcome, ProtocolError> {
        Err(ProtocolError::NotYet)
    }
    pub async fn contacts(&self) -> Result<Contacts, ProtocolError> {
        Err(ProtocolError::NotYet)
    }
}
