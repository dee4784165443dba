//! The saved session: everything needed to resume an account without a new scan
//! (WEBQQ.md §3.10), as one serializable value for the store.

use serde::{Deserialize, Serialize};

/// Everything needed to resume an account without a new scan. Serializable for the store;
/// its `Debug` redacts every secret (only uin, clientid and msg_id are shown).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Own QQ number (= own uin, §1).
    pub uin: u64,
    /// The whole cookie jar, session cookies included (`ptwebqq` has no Expires: a plain save
    /// would drop it; research §1.3), as cookie_store's JSON array (`protocol::jar` writes
    /// and reads it).
    pub cookies: String,
    /// Input of getvfwebqq, login2, poll2 and the friend hash; rotated by poll 116 (§5.2).
    pub ptwebqq: String,
    /// Token of the `/api/*` calls (§3.6).
    pub vfwebqq: String,
    /// The channel session (§3.7).
    pub psessionid: String,
    /// 53999199 in E3 (§1).
    pub clientid: u64,
    /// Next msg_id for sends; persisted so a restart never reuses one.
    pub msg_id: u64,
    /// Set by a logout (§10): the server ended this login, its cookies are gone. Defaults
    /// to false for sessions saved before the field existed.
    #[serde(default)]
    pub logged_out: bool,
    /// Unix seconds of the QR login this session stems from (resumes and relinks keep it):
    /// the login dies about two days later whatever the client does (§11), so this is what
    /// the expiry forecast counts from. 0 when unknown (saved before the field existed).
    #[serde(default)]
    pub logged_in_at: u64,
    /// Unix milliseconds at which this channel was made by a login2 without a psessionid.
    /// A relink keeps it (and the server keeps the channel's pseudo uins, §3.7); a new
    /// channel has new pseudo uins (§1), so contacts are reused only under the same value.
    /// 0 when unknown (saved before the field existed).
    #[serde(default)]
    pub channel_since: u64,
}

/// A complete session for the tests of the layers that save and move sessions (the store,
/// the account transfer), with `msg_id` as given.
#[cfg(test)]
pub(crate) fn sample_session(msg_id: u64) -> Session {
    Session {
        uin: 10001,
        cookies: "{}".into(),
        ptwebqq: "p".into(),
        vfwebqq: "v".into(),
        psessionid: "ps".into(),
        clientid: 53999199,
        msg_id,
        logged_out: false,
        logged_in_at: 1_700_000_000,
        channel_since: 1_700_000_000_000,
    }
}

impl Session {
    /// True when the channel part (psessionid, vfwebqq) is present.
    pub fn has_channel(&self) -> bool {
        !self.psessionid.is_empty() && !self.vfwebqq.is_empty()
    }

    /// True after [`crate::protocol::Client::logout`] (§10): nothing in it can resume; only
    /// the uin, clientid and msg_id counter are left, so the next login is a QR scan that
    /// continues the msg_id counter.
    pub fn is_logged_out(&self) -> bool {
        self.logged_out
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("uin", &self.uin)
            .field("clientid", &self.clientid)
            .field("msg_id", &self.msg_id)
            .field("cookies", &format_args!("<{} bytes>", self.cookies.len()))
            .field("has_channel", &self.has_channel())
            .field("logged_out", &self.logged_out)
            .finish_non_exhaustive()
    }
}
