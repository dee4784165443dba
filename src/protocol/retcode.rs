//! The retcode policy: ONE table `(endpoint, retcode) → action`, each row citing the
//! WEBQQ.md section it comes from, with operator overrides from config.
//!
//! Sources disagree on several codes (§15.3 100012, §15.4 103); the decisions taken here are
//! written next to the rows.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::endpoints::Endpoint;

/// What to do after a retcode (the value handed to the fleet). Its `Debug` never shows the
/// new ptwebqq of a 116.
#[derive(Clone, PartialEq, Eq)]
pub enum Action {
    /// Success or harmless: carry on.
    Continue,
    /// Poll again at once (idle answers, ignorable codes).
    Repoll,
    /// 116: the server rotated `ptwebqq`; the client has already stored the new value (kept
    /// out of `Debug` output by the caller's redaction: only its length is meaningful).
    RefreshPtwebqq(String),
    /// Probe the session with `get_online_buddies2` (`Client::probe`): if it answers 0 keep
    /// polling, else relink (§5.2: Yinzo/pandolia on 103 and on the 2018 `errmsg:error`).
    Probe,
    /// Re-establish the channel with `login2` and the current psessionid (§3.7).
    Relink,
    /// The session is gone: resume without a scan if possible, else a new scan.
    Relogin,
    /// Kicked / stopped: needs an operator or a new scan; do not retry automatically.
    Stopped,
    /// Too frequent: do not call this endpoint again for the duration.
    RateLimitedFor(Duration),
    /// A request we built is wrong or the code is unknown: surface it, do not loop.
    Fatal,
}

impl std::fmt::Debug for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::RefreshPtwebqq(_) => f.write_str("RefreshPtwebqq(<redacted>)"),
            Action::RateLimitedFor(d) => write!(f, "RateLimitedFor({d:?})"),
            other => write!(f, "{:?}", other.kind()),
        }
    }
}

impl Action {
    /// The data-free kind of the action.
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::Continue => ActionKind::Continue,
            Action::Repoll => ActionKind::Repoll,
            Action::RefreshPtwebqq(_) => ActionKind::RefreshPtwebqq,
            Action::Probe => ActionKind::Probe,
            Action::Relink => ActionKind::Relink,
            Action::Relogin => ActionKind::Relogin,
            Action::Stopped => ActionKind::Stopped,
            Action::RateLimitedFor(_) => ActionKind::RateLimited,
            Action::Fatal => ActionKind::Fatal,
        }
    }
}

/// An action without its data, as written in the table and in operator config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Continue,
    Repoll,
    RefreshPtwebqq,
    Probe,
    Relink,
    Relogin,
    Stopped,
    RateLimited,
    Fatal,
}

/// Which endpoints a row applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    One(Endpoint),
    /// The four send calls.
    Sends,
    /// Any endpoint (used when no more specific row matches).
    Any,
}

/// One row of the default table.
#[derive(Clone, Copy, Debug)]
pub struct Row {
    pub scope: Scope,
    pub retcode: i64,
    pub action: ActionKind,
    /// The WEBQQ.md section the row comes from.
    pub section: &'static str,
}

const fn row(scope: Scope, retcode: i64, action: ActionKind, section: &'static str) -> Row {
    Row {
        scope,
        retcode,
        action,
        section,
    }
}

use ActionKind as K;
use Endpoint as E;
use Scope::{Any, One, Sends};

/// The default policy. Order does not matter: an endpoint row beats a `Sends` row beats an
/// `Any` row.
pub const DEFAULT_ROWS: &[Row] = &[
    // poll2 (§5.2)
    row(One(E::Poll2), 0, K::Continue, "§5.2 events / E3 idle"),
    row(One(E::Poll2), 102, K::Repoll, "§5.2 E1/E2 idle timeout"),
    row(
        One(E::Poll2),
        116,
        K::RefreshPtwebqq,
        "§5.2 ptwebqq rotated",
    ),
    row(One(E::Poll2), 100, K::Relogin, "§5.2 NotReLogin, §13"),
    // §15.4 decided: probe with get_online_buddies2 first (103 was frequent and harmless in
    // 2016-17); a dead session fails the probe and then the relink.
    row(One(E::Poll2), 103, K::Probe, "§5.2, §15.4"),
    row(One(E::Poll2), 108, K::Relogin, "§5.2 missing cookies (E1)"),
    row(One(E::Poll2), 109, K::Repoll, "§5.2 Mojo ignorable set"),
    row(One(E::Poll2), 110, K::Repoll, "§5.2 Mojo ignorable set"),
    row(
        One(E::Poll2),
        114,
        K::Relink,
        "§5.2 unknown (E1), treat as error",
    ),
    row(One(E::Poll2), 120, K::Relink, "§5.2 relink failure, §3.7"),
    row(One(E::Poll2), 121, K::Relink, "§5.2 connection lost, §3.7"),
    row(
        One(E::Poll2),
        122,
        K::Fatal,
        "§5.2 wrong web client3: our request is wrong",
    ),
    row(One(E::Poll2), 1202, K::Repoll, "§5.2 seen on poll, ignore"),
    row(
        One(E::Poll2),
        100000,
        K::Relogin,
        "§5.2 login state invalid (Mojo 2.2.1+)",
    ),
    row(
        One(E::Poll2),
        100001,
        K::Relogin,
        "§5.2 missing cookie/Referer",
    ),
    row(
        One(E::Poll2),
        100003,
        K::Repoll,
        "§5.2 seen on poll, ignore",
    ),
    row(One(E::Poll2), 100006, K::Relogin, "§5.2 bad POST data"),
    // §15.3 decided: ignorable (pandolia, Mojo 2018).
    row(One(E::Poll2), 100012, K::Repoll, "§5.2, §15.3"),
    row(
        One(E::Poll2),
        100100,
        K::Repoll,
        "§5.2 seen on poll, ignore",
    ),
    // login2 and relink (§3.7)
    row(One(E::Login2), 103, K::Relogin, "§3.7 not relogin"),
    row(One(E::Login2), 108, K::Relogin, "§3.7 missing cookie (E1)"),
    row(One(E::Login2), 112, K::Relogin, "§3.7 relink failure"),
    row(One(E::Login2), 113, K::Relogin, "§3.7 relink failure"),
    row(One(E::Login2), 115, K::Relogin, "§3.7 relink failure"),
    row(
        One(E::Login2),
        100001,
        K::Relogin,
        "§3.7 cookie/Referer problem",
    ),
    row(
        One(E::Getvfwebqq),
        100000,
        K::Relogin,
        "§3.6 headers/cookies missing",
    ),
    // lists (§6, §8.3)
    row(
        One(E::GetUserFriends2),
        6,
        K::RateLimited,
        "§6.1, §8.3 ~15 rapid calls → 6",
    ),
    row(One(E::GetUserFriends2), 50, K::Fatal, "§6.1 wrong hash"),
    row(
        One(E::GetUserFriends2),
        100003,
        K::RateLimited,
        "§8.3 too frequent",
    ),
    row(
        One(E::GetUserFriends2),
        100101,
        K::Relogin,
        "§6.1 missing UA/cookie",
    ),
    row(
        One(E::GetGroupNameListMask2),
        13,
        K::Fatal,
        "§6.2 too many groups",
    ),
    row(
        One(E::GetGroupNameListMask2),
        50,
        K::Fatal,
        "§4.4 wrong hash",
    ),
    row(
        One(E::GetGroupInfoExt2),
        6,
        K::Fatal,
        "§6.3 gid given instead of code",
    ),
    // sends (§8.2)
    row(Sends, 0, K::Continue, "§8.2 success"),
    row(
        Sends,
        1202,
        K::Continue,
        "§8.2 maybe not sent: Uncertain, never resent blindly",
    ),
    row(Sends, 100100, K::Continue, "§8.2 delivered anyway"),
    row(
        Sends,
        100001,
        K::Relogin,
        "§8.2 bad cookie or session not activated",
    ),
    row(Sends, 103, K::Relogin, "§8.2 session problem"),
    // anywhere (§13)
    row(Any, 0, K::Continue, "§2 envelope"),
    row(Any, 100000, K::Relogin, "§13 login state invalid"),
    row(Any, 100001, K::Relogin, "§13 cookie/Referer/params wrong"),
    row(Any, 100003, K::RateLimited, "§13, §8.3 too frequent"),
    row(Any, 103, K::Relogin, "§13 session/cookie invalid"),
    row(Any, 108, K::Relogin, "§13 missing cookies"),
];

/// Operator overrides of table rows, from TOML or JSON config:
/// `{"poll2:103" = "relink", "*:100012" = "relogin"}`. Keys are `<endpoint name>:<retcode>`,
/// with `*` for any endpoint; values are [`ActionKind`]s in snake_case.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    try_from = "BTreeMap<String, ActionKind>",
    into = "BTreeMap<String, ActionKind>"
)]
pub struct RetcodeOverrides {
    rows: BTreeMap<(Option<Endpoint>, i64), ActionKind>,
}

impl TryFrom<BTreeMap<String, ActionKind>> for RetcodeOverrides {
    type Error = String;
    fn try_from(map: BTreeMap<String, ActionKind>) -> Result<Self, String> {
        let mut rows = BTreeMap::new();
        for (key, action) in map {
            let (ep, code) = key
                .rsplit_once(':')
                .ok_or_else(|| format!("retcode override key {key:?} is not <endpoint>:<code>"))?;
            let code: i64 = code
                .trim()
                .parse()
                .map_err(|_| format!("retcode override key {key:?}: {code:?} is not a number"))?;
            let ep = match ep.trim() {
                "*" => None,
                name => Some(Endpoint::from_name(name).ok_or_else(|| {
                    format!("retcode override key {key:?}: unknown endpoint {name:?}")
                })?),
            };
            rows.insert((ep, code), action);
        }
        Ok(RetcodeOverrides { rows })
    }
}

impl From<RetcodeOverrides> for BTreeMap<String, ActionKind> {
    fn from(o: RetcodeOverrides) -> Self {
        o.rows
            .into_iter()
            .map(|((ep, code), a)| {
                let ep = ep.map(|e| e.name()).unwrap_or("*");
                (format!("{ep}:{code}"), a)
            })
            .collect()
    }
}

impl RetcodeOverrides {
    /// Sets one row (`None` = any endpoint).
    pub fn set(&mut self, endpoint: Option<Endpoint>, retcode: i64, action: ActionKind) {
        self.rows.insert((endpoint, retcode), action);
    }
    /// True when nothing is overridden.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// The table in force: defaults plus overrides, and the rate-limit cool-down.
#[derive(Clone, Debug)]
pub struct RetcodeTable {
    overrides: RetcodeOverrides,
    /// How long to stay away from an endpoint after a rate-limit code. §8.3: Mojo refreshed
    /// lists every 600 s; the lockout length itself was never measured.
    pub rate_limit_cooldown: Duration,
}

impl Default for RetcodeTable {
    fn default() -> Self {
        RetcodeTable {
            overrides: RetcodeOverrides::default(),
            rate_limit_cooldown: Duration::from_secs(600),
        }
    }
}

impl RetcodeTable {
    /// A table with operator overrides.
    pub fn with_overrides(overrides: RetcodeOverrides, rate_limit_cooldown: Duration) -> Self {
        RetcodeTable {
            overrides,
            rate_limit_cooldown,
        }
    }

    /// The kind of action for a retcode, and the section (or "override") it comes from.
    pub fn lookup(&self, endpoint: Endpoint, retcode: i64) -> (ActionKind, &'static str) {
        if let Some(a) = self.overrides.rows.get(&(Some(endpoint), retcode)) {
            return (*a, "override");
        }
        if let Some(r) = DEFAULT_ROWS
            .iter()
            .find(|r| r.retcode == retcode && r.scope == One(endpoint))
        {
            return (r.action, r.section);
        }
        if endpoint.is_send() {
            if let Some(r) = DEFAULT_ROWS
                .iter()
                .find(|r| r.retcode == retcode && r.scope == Sends)
            {
                return (r.action, r.section);
            }
        }
        if let Some(a) = self.overrides.rows.get(&(None, retcode)) {
            return (*a, "override");
        }
        if let Some(r) = DEFAULT_ROWS
            .iter()
            .find(|r| r.retcode == retcode && r.scope == Any)
        {
            return (r.action, r.section);
        }
        // Unknown codes: Mojo counted them as failures and relogged in after >3 in a row
        // (§5.2); on poll we repoll and let the caller count, elsewhere we surface them.
        if endpoint == Endpoint::Poll2 {
            (ActionKind::Repoll, "§5.2 unknown code counts as a failure")
        } else {
            (ActionKind::Fatal, "§13 unknown code")
        }
    }

    /// The action with its data. `new_ptwebqq` is the `p` field of a 116 answer.
    pub fn action(&self, endpoint: Endpoint, retcode: i64, new_ptwebqq: Option<&str>) -> Action {
        match self.lookup(endpoint, retcode).0 {
            ActionKind::Continue => Action::Continue,
            ActionKind::Repoll => Action::Repoll,
            ActionKind::RefreshPtwebqq => match new_ptwebqq {
                Some(p) => Action::RefreshPtwebqq(p.to_string()),
                // 116 without `p` cannot refresh anything: the session is suspect.
                None => Action::Relink,
            },
            ActionKind::Probe => Action::Probe,
            ActionKind::Relink => Action::Relink,
            ActionKind::Relogin => Action::Relogin,
            ActionKind::Stopped => Action::Stopped,
            ActionKind::RateLimited => Action::RateLimitedFor(self.rate_limit_cooldown),
            ActionKind::Fatal => Action::Fatal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_cites_a_section_and_is_unique() {
        for (i, a) in DEFAULT_ROWS.iter().enumerate() {
            assert!(a.section.contains('§'), "{a:?}");
            for b in &DEFAULT_ROWS[i + 1..] {
                assert!(!(a.scope == b.scope && a.retcode == b.retcode), "{a:?}");
            }
        }
    }

    #[test]
    fn defaults_follow_the_document() {
        let t = RetcodeTable::default();
        assert_eq!(t.action(E::Poll2, 121, None), Action::Relink);
        assert_eq!(
            t.action(E::Poll2, 116, Some("abc")),
            Action::RefreshPtwebqq("abc".into())
        );
        assert_eq!(t.action(E::Poll2, 103, None), Action::Probe);
        assert_eq!(
            t.action(E::GetUserFriends2, 6, None),
            Action::RateLimitedFor(Duration::from_secs(600))
        );
        assert_eq!(t.action(E::SendQunMsg2, 1202, None), Action::Continue);
        assert_eq!(t.action(E::GetSelfInfo2, 100000, None), Action::Relogin);
        assert_eq!(t.action(E::GetSelfInfo2, 4242, None), Action::Fatal);
        assert_eq!(t.action(E::Poll2, 4242, None), Action::Repoll);
    }

    #[test]
    fn overrides_parse_from_toml_and_win() {
        let o: RetcodeOverrides =
            toml::from_str("\"poll2:103\" = \"relink\"\n\"*:100012\" = \"relogin\"\n").unwrap();
        let t = RetcodeTable::with_overrides(o.clone(), Duration::from_secs(5));
        assert_eq!(t.action(E::Poll2, 103, None), Action::Relink);
        assert_eq!(t.action(E::Login2, 100012, None), Action::Relogin);
        // the endpoint row of the defaults still beats a wildcard override
        assert_eq!(t.action(E::Poll2, 100012, None), Action::Repoll);
        let back: BTreeMap<String, ActionKind> = o.into();
        assert_eq!(back.get("poll2:103"), Some(&ActionKind::Relink));
        assert!(toml::from_str::<RetcodeOverrides>("\"pol:1\" = \"relink\"").is_err());
        assert!(toml::from_str::<RetcodeOverrides>("\"poll2:x\" = \"relink\"").is_err());
        assert!(toml::from_str::<RetcodeOverrides>("\"poll2:1\" = \"dance\"").is_err());
    }
}
