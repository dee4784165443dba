//! The endpoint table: every WebQQ call the client makes, its host, path, method and the
//! headers the official w.qq.com page sent with it (WEBQQ.md §0, §2), mapped either to the
//! real hosts or to a simulator that serves each host under a path prefix.

use std::fmt;

/// The browser string sent on every request. A missing User-Agent got `100101` on list calls
/// (WEBQQ.md §2), and the server must not be able to tell us from the official page.
pub const USER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
(KHTML, like Gecko) Chrome/70.0.3538.110 Safari/537.36";

/// E3 constant client id (WEBQQ.md §1: "E3: constant 53999199").
pub const CLIENTID: u64 = 53999199;

/// The ptlogin application id of SmartQQ (WEBQQ.md §0).
pub const APPID: &str = "501004106";

/// The hosts of the WebQQ service (WEBQQ.md §0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// `w.qq.com`: the web app itself (target of the cookie proxy step, §3.5).
    W,
    /// `xui.ptlogin2.qq.com`: the login frame (§3.2).
    XuiPtlogin2,
    /// `ssl.ptlogin2.qq.com`: QR code and its state (§3.3, §3.4), `pt4_auth` (§3.10).
    SslPtlogin2,
    /// `ptlogin4.web2.qq.com`: `check_sig` (§3.5).
    Ptlogin4Web2,
    /// `s.web2.qq.com`: the info API (`/api/*`, §6).
    SWeb2,
    /// `d1.web2.qq.com`: the E3 channel (`/channel/*`, §5, §8).
    D1Web2,
    /// `ptlogin2.qq.com`: the ptlogin logout (§10).
    Ptlogin2,
}

impl Host {
    /// The real host name (also the simulator's path prefix).
    pub fn name(self) -> &'static str {
        match self {
            Host::W => "w.qq.com",
            Host::XuiPtlogin2 => "xui.ptlogin2.qq.com",
            Host::SslPtlogin2 => "ssl.ptlogin2.qq.com",
            Host::Ptlogin4Web2 => "ptlogin4.web2.qq.com",
            Host::SWeb2 => "s.web2.qq.com",
            Host::D1Web2 => "d1.web2.qq.com",
            Host::Ptlogin2 => "ptlogin2.qq.com",
        }
    }
}

/// HTTP method of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    /// Always `application/x-www-form-urlencoded` with one field `r=<json>` (WEBQQ.md §2).
    Post,
}

/// Every call the client makes. Errors carry one of these so an operator can see which call
/// failed; its `Display` is the protocol's own name (`poll2`, `get_user_friends2`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    Xlogin,
    Ptqrshow,
    Ptqrlogin,
    Pt4Auth,
    CheckSig,
    Proxy,
    Getvfwebqq,
    Login2,
    GetOnlineBuddies2,
    Poll2,
    GetUserFriends2,
    GetGroupNameListMask2,
    GetGroupInfoExt2,
    GetDiscusList,
    GetDiscuInfo,
    GetSelfInfo2,
    GetRecentList2,
    GetC2cmsgSig2,
    SendBuddyMsg2,
    SendQunMsg2,
    SendDiscuMsg2,
    SendSessMsg2,
    /// `change_status2?newstatus=offline`: ends the channel session (§6.11, §10).
    ChangeStatus2,
    /// The ptlogin logout (§10): ends the login and every channel on it.
    Logout,
}

impl Endpoint {
    /// Every endpoint, for tables and tests.
    pub const ALL: [Endpoint; 24] = [
        Endpoint::Xlogin,
        Endpoint::Ptqrshow,
        Endpoint::Ptqrlogin,
        Endpoint::Pt4Auth,
        Endpoint::CheckSig,
        Endpoint::Proxy,
        Endpoint::Getvfwebqq,
        Endpoint::Login2,
        Endpoint::GetOnlineBuddies2,
        Endpoint::Poll2,
        Endpoint::GetUserFriends2,
        Endpoint::GetGroupNameListMask2,
        Endpoint::GetGroupInfoExt2,
        Endpoint::GetDiscusList,
        Endpoint::GetDiscuInfo,
        Endpoint::GetSelfInfo2,
        Endpoint::GetRecentList2,
        Endpoint::GetC2cmsgSig2,
        Endpoint::SendBuddyMsg2,
        Endpoint::SendQunMsg2,
        Endpoint::SendDiscuMsg2,
        Endpoint::SendSessMsg2,
        Endpoint::ChangeStatus2,
        Endpoint::Logout,
    ];

    /// The protocol's name of the call (the last path segment).
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Xlogin => "xlogin",
            Endpoint::Ptqrshow => "ptqrshow",
            Endpoint::Ptqrlogin => "ptqrlogin",
            Endpoint::Pt4Auth => "pt4_auth",
            Endpoint::CheckSig => "check_sig",
            Endpoint::Proxy => "proxy.html",
            Endpoint::Getvfwebqq => "getvfwebqq",
            Endpoint::Login2 => "login2",
            Endpoint::GetOnlineBuddies2 => "get_online_buddies2",
            Endpoint::Poll2 => "poll2",
            Endpoint::GetUserFriends2 => "get_user_friends2",
            Endpoint::GetGroupNameListMask2 => "get_group_name_list_mask2",
            Endpoint::GetGroupInfoExt2 => "get_group_info_ext2",
            Endpoint::GetDiscusList => "get_discus_list",
            Endpoint::GetDiscuInfo => "get_discu_info",
            Endpoint::GetSelfInfo2 => "get_self_info2",
            Endpoint::GetRecentList2 => "get_recent_list2",
            Endpoint::GetC2cmsgSig2 => "get_c2cmsg_sig2",
            Endpoint::SendBuddyMsg2 => "send_buddy_msg2",
            Endpoint::SendQunMsg2 => "send_qun_msg2",
            Endpoint::SendDiscuMsg2 => "send_discu_msg2",
            Endpoint::SendSessMsg2 => "send_sess_msg2",
            Endpoint::ChangeStatus2 => "change_status2",
            Endpoint::Logout => "logout",
        }
    }

    /// Parses a protocol name back (used by retcode overrides).
    pub fn from_name(name: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.name() == name)
    }

    /// Host of the call (WEBQQ.md §3, §5, §6, §8).
    pub fn host(self) -> Host {
        match self {
            Endpoint::Xlogin => Host::XuiPtlogin2,
            Endpoint::Ptqrshow | Endpoint::Ptqrlogin | Endpoint::Pt4Auth => Host::SslPtlogin2,
            Endpoint::CheckSig => Host::Ptlogin4Web2,
            Endpoint::Proxy => Host::W,
            Endpoint::Getvfwebqq
            | Endpoint::GetUserFriends2
            | Endpoint::GetGroupNameListMask2
            | Endpoint::GetGroupInfoExt2
            | Endpoint::GetDiscusList
            | Endpoint::GetSelfInfo2 => Host::SWeb2,
            Endpoint::Login2
            | Endpoint::GetOnlineBuddies2
            | Endpoint::Poll2
            | Endpoint::GetDiscuInfo
            | Endpoint::GetRecentList2
            | Endpoint::GetC2cmsgSig2
            | Endpoint::SendBuddyMsg2
            | Endpoint::SendQunMsg2
            | Endpoint::SendDiscuMsg2
            | Endpoint::SendSessMsg2
            | Endpoint::ChangeStatus2 => Host::D1Web2,
            Endpoint::Logout => Host::Ptlogin2,
        }
    }

    /// Path on its host.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Xlogin => "/cgi-bin/xlogin",
            Endpoint::Ptqrshow => "/ptqrshow",
            Endpoint::Ptqrlogin => "/ptqrlogin",
            Endpoint::Pt4Auth => "/pt4_auth",
            Endpoint::CheckSig => "/check_sig",
            Endpoint::Proxy => "/proxy.html",
            Endpoint::Getvfwebqq => "/api/getvfwebqq",
            Endpoint::Login2 => "/channel/login2",
            Endpoint::GetOnlineBuddies2 => "/channel/get_online_buddies2",
            Endpoint::Poll2 => "/channel/poll2",
            Endpoint::GetUserFriends2 => "/api/get_user_friends2",
            Endpoint::GetGroupNameListMask2 => "/api/get_group_name_list_mask2",
            Endpoint::GetGroupInfoExt2 => "/api/get_group_info_ext2",
            Endpoint::GetDiscusList => "/api/get_discus_list",
            Endpoint::GetDiscuInfo => "/channel/get_discu_info",
            Endpoint::GetSelfInfo2 => "/api/get_self_info2",
            Endpoint::GetRecentList2 => "/channel/get_recent_list2",
            Endpoint::GetC2cmsgSig2 => "/channel/get_c2cmsg_sig2",
            Endpoint::SendBuddyMsg2 => "/channel/send_buddy_msg2",
            Endpoint::SendQunMsg2 => "/channel/send_qun_msg2",
            Endpoint::SendDiscuMsg2 => "/channel/send_discu_msg2",
            Endpoint::SendSessMsg2 => "/channel/send_sess_msg2",
            Endpoint::ChangeStatus2 => "/channel/change_status2",
            Endpoint::Logout => "/logout",
        }
    }

    /// GET or POST `r=` (WEBQQ.md §2, §3-§8).
    pub fn method(self) -> Method {
        match self {
            Endpoint::Login2
            | Endpoint::Poll2
            | Endpoint::GetUserFriends2
            | Endpoint::GetGroupNameListMask2
            | Endpoint::GetRecentList2
            | Endpoint::SendBuddyMsg2
            | Endpoint::SendQunMsg2
            | Endpoint::SendDiscuMsg2
            | Endpoint::SendSessMsg2 => Method::Post,
            _ => Method::Get,
        }
    }

    /// True for the channel's send calls.
    pub fn is_send(self) -> bool {
        matches!(
            self,
            Endpoint::SendBuddyMsg2
                | Endpoint::SendQunMsg2
                | Endpoint::SendDiscuMsg2
                | Endpoint::SendSessMsg2
        )
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The query of the login frame; it doubles as the Referer of `ptqrshow`/`ptqrlogin`/
/// `pt4_auth` (WEBQQ.md §3.2).
pub const XLOGIN_QUERY: &str = "daid=164&target=self&style=40&pt_disable_pwd=1&mibao_css=m_webqq\
&appid=501004106&enable_qlogin=0&no_verifyimg=1&s_url=http%3A%2F%2Fw.qq.com%2Fproxy.html\
&f_url=loginerroralert&strong_login=1&login_state=10&t=20131024001";

/// Where each WebQQ host lives: the real hosts over https, or a simulator base URL with the
/// host names as path prefixes (`http://127.0.0.1:PORT/s.web2.qq.com/api/...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// `None` for the real hosts; `Some("http://127.0.0.1:PORT")` for a simulator.
    pub sim_base: Option<String>,
}

impl Endpoints {
    /// The real WebQQ hosts (https; WEBQQ.md §2 "Scheme": https was required from 2018-12).
    pub fn real() -> Self {
        Endpoints { sim_base: None }
    }

    /// A simulator at `base` (`http://127.0.0.1:PORT`).
    pub fn sim(base: &str) -> Self {
        Endpoints {
            sim_base: Some(base.trim_end_matches('/').to_string()),
        }
    }

    /// `scheme://host` root of a host: `https://s.web2.qq.com` or
    /// `http://127.0.0.1:PORT/s.web2.qq.com`.
    pub fn root(&self, host: Host) -> String {
        match &self.sim_base {
            None => format!("https://{}", host.name()),
            Some(base) => format!("{base}/{}", host.name()),
        }
    }

    /// Full URL of an endpoint, without query.
    pub fn url(&self, endpoint: Endpoint) -> String {
        format!("{}{}", self.root(endpoint.host()), endpoint.path())
    }

    /// The login frame URL, used as Referer on the ptlogin2 calls (WEBQQ.md §3.2).
    pub fn login_page(&self) -> String {
        format!("{}?{}", self.url(Endpoint::Xlogin), XLOGIN_QUERY)
    }

    /// The Referer the official page sent for a call: the proxy page of the host family
    /// (WEBQQ.md §0, §2, §3.6, §3.7, §5.1, §8.1).
    pub fn referer(&self, endpoint: Endpoint) -> Option<String> {
        match endpoint.host() {
            Host::SslPtlogin2 | Host::XuiPtlogin2 => Some(match endpoint {
                Endpoint::Xlogin => format!("{}/", self.root(Host::W)),
                _ => self.login_page(),
            }),
            // §3.5: check_sig had no special headers; the browser arrived from the login frame.
            Host::Ptlogin4Web2 => None,
            // §10: the logout was called from the web app's page.
            Host::Ptlogin2 => Some(format!("{}/", self.root(Host::W))),
            Host::W => None,
            Host::SWeb2 => Some(format!(
                "{}/proxy.html?v=20130916001&callback=1&id=1",
                self.root(Host::SWeb2)
            )),
            Host::D1Web2 => Some(format!(
                "{}/proxy.html?v=20151105001&callback=1&id=2",
                self.root(Host::D1Web2)
            )),
        }
    }

    /// The Origin the official page sent on channel and info calls (WEBQQ.md §2, §3.6, §3.7).
    /// An Origin has no path, so against a simulator it is the simulator's own origin.
    pub fn origin(&self, endpoint: Endpoint) -> Option<String> {
        match endpoint.host() {
            Host::SWeb2 | Host::D1Web2 => Some(match &self.sim_base {
                None => format!("https://{}", endpoint.host().name()),
                Some(base) => base.clone(),
            }),
            _ => None,
        }
    }

    /// True when a URL handed out by the server (check_sig URL, 302 Location) belongs to
    /// the service we talk to; a simulator's URLs must point back into it.
    pub fn owns(&self, url: &str) -> bool {
        match &self.sim_base {
            None => url::Url::parse(url)
                .ok()
                .and_then(|u| {
                    u.host_str()
                        .map(|h| h == "qq.com" || h.ends_with(".qq.com"))
                })
                .unwrap_or(false),
            Some(base) => url.starts_with(&format!("{base}/")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_urls_use_host_prefixes() {
        let e = Endpoints::sim("http://127.0.0.1:9/");
        assert_eq!(
            e.url(Endpoint::GetUserFriends2),
            "http://127.0.0.1:9/s.web2.qq.com/api/get_user_friends2"
        );
        assert_eq!(
            e.url(Endpoint::Poll2),
            "http://127.0.0.1:9/d1.web2.qq.com/channel/poll2"
        );
        assert!(e.owns("http://127.0.0.1:9/ptlogin4.web2.qq.com/check_sig?x=1"));
        assert!(!e.owns("http://127.0.0.2:9/ptlogin4.web2.qq.com/check_sig"));
    }

    #[test]
    fn real_urls_are_https() {
        let e = Endpoints::real();
        assert_eq!(
            e.url(Endpoint::Ptqrshow),
            "https://ssl.ptlogin2.qq.com/ptqrshow"
        );
        assert_eq!(
            e.referer(Endpoint::Login2).unwrap(),
            "https://d1.web2.qq.com/proxy.html?v=20151105001&callback=1&id=2"
        );
        assert_eq!(
            e.origin(Endpoint::Getvfwebqq).unwrap(),
            "https://s.web2.qq.com"
        );
        assert!(e.owns("http://ptlogin4.web2.qq.com/check_sig?a=b"));
        assert!(!e.owns("http://evil.example/check_sig"));
        for ep in Endpoint::ALL {
            assert_eq!(Endpoint::from_name(ep.name()), Some(ep));
        }
    }
}
