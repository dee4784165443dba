//! One account's cookie jar, kept small: each cookie is one boxed string and a few numbers.
//!
//! Why not cookie_store's `CookieStore`: an idle account holds its jar for the whole life of
//! its session, and that jar (three levels of hash maps, each cookie a parsed `cookie::Cookie`
//! of about 500 B) held a 8,496 B table and about 1.9 KiB of strings for the 14 cookies of a
//! WebQQ login: about 10 KiB per account, a third of what an idle account kept live
//! (PERFORMANCE.md). Here each cookie is 48 B and its text: about 1.5 KiB for the same 14.
//!
//! What stays cookie_store's: reading a `Set-Cookie` (RFC 6265 §5.2: the Domain, Path,
//! Max-Age and Expires attributes against the request's URL), and the saved form, its JSON
//! array, so a session saved by an older build resumes, and one saved here loads in
//! cookie_store. What is here: the storage model (§5.3: a cookie replaces the one with the
//! same name, domain and path; an expired one removes it) and which cookies a request
//! carries (§5.4: domain-match, path-match, Secure, expiry).

use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderValue;
use serde_json::{json, Value};

/// The cookie is sent to its exact host only (no Domain attribute).
const HOST_ONLY: u8 = 1;
/// Sent over https (or to a loopback host, as cookie_store allows) only.
const SECURE: u8 = 2;
/// Not for scripts; kept so the saved form says it.
const HTTP_ONLY: u8 = 4;
/// The path came from a Path attribute (not the request's default path); kept for the
/// saved form.
const PATH_FROM_ATTR: u8 = 8;

/// One cookie: `text` is its name, value, domain and path back to back.
struct Kept {
    text: Box<str>,
    name_end: u32,
    value_end: u32,
    domain_end: u32,
    flags: u8,
    /// Unix seconds after which it is gone; `None` for a session cookie.
    expires: Option<i64>,
}

impl Kept {
    fn name(&self) -> &str {
        &self.text[..self.name_end as usize]
    }
    fn value(&self) -> &str {
        &self.text[self.name_end as usize..self.value_end as usize]
    }
    fn domain(&self) -> &str {
        &self.text[self.value_end as usize..self.domain_end as usize]
    }
    fn path(&self) -> &str {
        &self.text[self.domain_end as usize..]
    }
    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    fn expired(&self, now: i64) -> bool {
        self.expires.is_some_and(|t| t <= now)
    }

    /// RFC 6265 §5.4: whether a request to `url` carries this cookie.
    fn matches(&self, url: &url::Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let domain = self.domain();
        let domain_ok = if self.has(HOST_ONLY) {
            host == domain
        } else {
            host == domain
                || (matches!(url.host(), Some(url::Host::Domain(_)))
                    && host.len() > domain.len()
                    && host.ends_with(domain)
                    && host.as_bytes()[host.len() - domain.len() - 1] == b'.')
        };
        domain_ok
            && path_matches(self.path(), url.path())
            && (!self.has(SECURE) || is_secure(url))
            && (!self.has(HTTP_ONLY) || url.scheme().starts_with("http"))
    }

    /// The entry of cookie_store's saved form (its `Cookie`'s serde shape).
    fn saved(&self) -> Value {
        let mut raw = format!("{}={}", self.name(), self.value());
        if self.has(HTTP_ONLY) {
            raw.push_str("; HttpOnly");
        }
        if self.has(SECURE) {
            raw.push_str("; Secure");
        }
        if self.has(PATH_FROM_ATTR) {
            raw.push_str("; Path=");
            raw.push_str(self.path());
        }
        let domain = if self.has(HOST_ONLY) {
            json!({ "HostOnly": self.domain() })
        } else {
            raw.push_str("; Domain=");
            raw.push_str(self.domain());
            json!({ "Suffix": self.domain() })
        };
        let expires = match self.expires {
            None => json!("SessionEnd"),
            Some(t) => {
                let at = time::OffsetDateTime::from_unix_timestamp(t)
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
                let at = at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default();
                json!({ "AtUtc": at })
            }
        };
        json!({
            "raw_cookie": raw,
            "path": [self.path(), self.has(PATH_FROM_ATTR)],
            "domain": domain,
            "expires": expires,
        })
    }
}

/// RFC 6265 §5.1.4 path-match.
fn path_matches(cookie_path: &str, request_path: &str) -> bool {
    cookie_path == request_path
        || (request_path.starts_with(cookie_path)
            && (cookie_path.ends_with('/')
                || request_path.as_bytes().get(cookie_path.len()) == Some(&b'/')))
}

/// A channel a Secure cookie may go over: https, or a loopback host (as cookie_store has
/// it, so the simulator's http on 127.0.0.1 behaves as before).
fn is_secure(url: &url::Url) -> bool {
    url.scheme() == "https"
        || match url.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The jar (see the module doc).
#[derive(Default)]
pub(super) struct Jar {
    cookies: Vec<Kept>,
}

impl Jar {
    /// A jar from its saved form (cookie_store's JSON array); expired cookies are dropped.
    pub(super) fn load(saved: &str) -> Result<Jar, String> {
        // What cookie_store's `load_all` reads, in the saved order (it would put them in a
        // hash map).
        let cookies: Vec<cookie_store::Cookie<'static>> =
            serde_json::from_str(saved).map_err(|e| e.to_string())?;
        let mut jar = Jar::default();
        for c in &cookies {
            jar.put(c);
        }
        jar.cookies.shrink_to_fit();
        Ok(jar)
    }

    /// The saved form: cookie_store's JSON array, session and expired cookies included
    /// (a plain save would drop session cookies such as ptwebqq: research §1.3).
    pub(super) fn save(&self) -> String {
        Value::Array(self.cookies.iter().map(Kept::saved).collect()).to_string()
    }

    /// Takes one `Set-Cookie` value that came in answer to a request to `url` (see
    /// [`Jar::store_all`]).
    pub(super) fn store(&mut self, set_cookie: &str, url: &url::Url) {
        self.store_all([set_cookie], url);
    }

    /// Takes the `Set-Cookie` values of one answer to a request to `url`, then gives back the
    /// room the list no longer needs, once. A value cookie_store cannot read, or whose Domain
    /// does not cover `url`'s host, is ignored, as a browser would.
    pub(super) fn store_all<'a>(
        &mut self,
        set_cookies: impl IntoIterator<Item = &'a str>,
        url: &url::Url,
    ) {
        for set_cookie in set_cookies {
            let Ok(c) = cookie_store::Cookie::parse(set_cookie, url) else {
                continue;
            };
            if c.domain.matches(url) {
                self.put(&c);
            }
        }
        self.cookies.shrink_to_fit();
    }

    /// Puts one parsed cookie in: replaces the one with its name, domain and path, or, when
    /// it is already expired, removes that one (how a server deletes a cookie).
    fn put(&mut self, c: &cookie_store::Cookie<'_>) {
        let (domain, host_only) = match &c.domain {
            cookie_store::CookieDomain::HostOnly(d) => (d.as_str(), true),
            cookie_store::CookieDomain::Suffix(d) => (d.as_str(), false),
            _ => return,
        };
        let path: &str = c.path.as_ref();
        let (name, value) = (c.name(), c.value());
        let old = self
            .cookies
            .iter()
            .position(|k| k.name() == name && k.domain() == domain && k.path() == path);
        if let Some(i) = old {
            self.cookies.remove(i);
        }
        if c.is_expired() {
            return;
        }
        let expires = match &c.expires {
            cookie_store::CookieExpiration::AtUtc(t) => Some(t.unix_timestamp()),
            cookie_store::CookieExpiration::SessionEnd => None,
        };
        let mut flags = 0;
        for (on, flag) in [
            (host_only, HOST_ONLY),
            (c.secure().unwrap_or(false), SECURE),
            (c.http_only().unwrap_or(false), HTTP_ONLY),
            (c.path.is_from_path_attr(), PATH_FROM_ATTR),
        ] {
            if on {
                flags |= flag;
            }
        }
        let text = [name, value, domain, path].concat();
        let name_end = name.len() as u32;
        let value_end = name_end + value.len() as u32;
        self.cookies.push(Kept {
            text: text.into_boxed_str(),
            name_end,
            value_end,
            domain_end: value_end + domain.len() as u32,
            flags,
            expires,
        });
    }

    /// Empties the jar (a logout).
    pub(super) fn clear(&mut self) {
        self.cookies = Vec::new();
    }

    /// The `Cookie` header of a request to `url`: every unexpired cookie it carries, as
    /// `name=value` pairs; `None` when it carries none.
    pub(super) fn header(&self, url: &url::Url) -> Option<HeaderValue> {
        let now = now_secs();
        let mut out = String::new();
        for k in self
            .cookies
            .iter()
            .filter(|k| !k.expired(now) && k.matches(url))
        {
            if !out.is_empty() {
                out.push_str("; ");
            }
            out.push_str(k.name());
            out.push('=');
            out.push_str(k.value());
        }
        if out.is_empty() {
            return None;
        }
        HeaderValue::from_str(&out).ok()
    }

    /// The value of an unexpired cookie by name, on any domain or path. The same name can
    /// live on several domains (p_skey on web2.qq.com and its cookie proxy copy on w.qq.com,
    /// §3.5) with the same value; a non-empty one is preferred.
    pub(super) fn value(&self, name: &str) -> Option<String> {
        let now = now_secs();
        let mut found: Option<String> = None;
        for k in self
            .cookies
            .iter()
            .filter(|k| k.name() == name && !k.expired(now))
        {
            if !k.value().is_empty() {
                return Some(k.value().to_string());
            }
            found.get_or_insert_with(String::new);
        }
        found
    }

    /// When the first unexpired cookie expires (`None`: none of them does).
    pub(super) fn first_expiry(&self) -> Option<SystemTime> {
        let now = now_secs();
        self.cookies
            .iter()
            .filter_map(|k| k.expires.filter(|&t| t > now))
            .min()
            .map(|t| UNIX_EPOCH + std::time::Duration::from_secs(t as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    fn header(jar: &Jar, u: &str) -> String {
        let v = jar.header(&url(u)).map(|h| h.to_str().unwrap().to_string());
        let mut pairs: Vec<String> = v
            .unwrap_or_default()
            .split("; ")
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect();
        pairs.sort();
        pairs.join("; ")
    }

    /// What cookie_store's own jar sends for the same cookies: the reference.
    fn reference(sets: &[(&str, &str)], u: &str) -> String {
        let mut store = cookie_store::CookieStore::default();
        for (set, at) in sets {
            let _ = store.parse(set, &url(at));
        }
        let mut pairs: Vec<String> = store
            .get_request_values(&url(u))
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        pairs.sort();
        pairs.join("; ")
    }

    const SETS: [(&str, &str); 10] = [
        (
            "skey=@abc; Path=/; Domain=qq.com",
            "https://ptlogin2.qq.com/check_sig",
        ),
        (
            "p_skey=ps1; Path=/; Domain=web2.qq.com; HttpOnly",
            "https://ptlogin2.web2.qq.com/x",
        ),
        (
            "p_skey=; Path=/; Domain=w.qq.com",
            "https://w.qq.com/proxy.html",
        ),
        (
            "ptwebqq=pt; Path=/; Domain=.qq.com",
            "https://ptlogin2.qq.com/check_sig",
        ),
        ("host=1", "https://d1.web2.qq.com/channel/poll2"),
        (
            "deep=1; Path=/channel",
            "https://d1.web2.qq.com/channel/poll2",
        ),
        ("deeper=1; Path=/channel/poll2/x", "https://d1.web2.qq.com/"),
        ("sec=1; Secure; Path=/", "http://w.qq.com/"),
        ("gone=1; Path=/; Max-Age=0", "https://w.qq.com/"),
        (
            "later=1; Path=/; Expires=Tue, 03 Aug 2100 00:38:37 GMT",
            "https://w.qq.com/",
        ),
    ];

    #[test]
    fn sends_what_cookie_store_sends() {
        let mut jar = Jar::default();
        for (set, at) in SETS {
            jar.store(set, &url(at));
        }
        for u in [
            "https://d1.web2.qq.com/channel/poll2",
            "https://d1.web2.qq.com/channelx",
            "https://d1.web2.qq.com/",
            "https://s.web2.qq.com/api/get_user_friends2",
            "https://w.qq.com/",
            "http://w.qq.com/",
            "https://qq.com/",
            "https://notqq.com/",
            "http://127.0.0.1:8080/channel/poll2",
        ] {
            assert_eq!(header(&jar, u), reference(&SETS, u), "{u}");
        }
        assert!(header(&jar, "https://d1.web2.qq.com/channel/poll2").contains("deep=1"));
        assert!(!header(&jar, "https://w.qq.com/").contains("gone"));
    }

    #[test]
    fn a_cookie_replaces_its_namesake_and_an_expired_one_removes_it() {
        let mut jar = Jar::default();
        let at = url("https://w.qq.com/");
        jar.store("a=1; Path=/", &at);
        jar.store("a=2; Path=/", &at);
        jar.store("a=3; Path=/other", &at);
        assert_eq!(jar.value("a").as_deref(), Some("2"));
        assert_eq!(jar.cookies.len(), 2);
        jar.store("a=; Path=/; Expires=Thu, 01 Jan 1970 00:00:01 GMT", &at);
        assert_eq!(jar.cookies.len(), 1);
        assert_eq!(header(&jar, "https://w.qq.com/"), "");
        // a Domain that does not cover the host is refused
        jar.store("b=1; Domain=example.com", &at);
        assert_eq!(jar.value("b"), None);
        jar.clear();
        assert_eq!(jar.value("a"), None);
    }

    #[test]
    fn prefers_a_non_empty_value() {
        let mut jar = Jar::default();
        jar.store(
            "p_skey=; Path=/; Domain=w.qq.com",
            &url("https://w.qq.com/"),
        );
        assert_eq!(jar.value("p_skey").as_deref(), Some(""));
        jar.store(
            "p_skey=v; Path=/; Domain=web2.qq.com",
            &url("https://ptlogin4.web2.qq.com/"),
        );
        assert_eq!(jar.value("p_skey").as_deref(), Some("v"));
    }

    #[test]
    fn the_saved_form_is_cookie_stores_both_ways() {
        let mut jar = Jar::default();
        for (set, at) in SETS {
            jar.store(set, &url(at));
        }
        let saved = jar.save();
        // cookie_store reads ours...
        let theirs = cookie_store::serde::json::load_all(saved.as_bytes()).unwrap();
        let u = url("https://d1.web2.qq.com/channel/poll2");
        let mut sent: Vec<String> = theirs
            .get_request_values(&u)
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        sent.sort();
        assert_eq!(sent.join("; "), header(&jar, u.as_str()));
        assert_eq!(theirs.iter_any().count(), jar.cookies.len());
        // ...and we read what cookie_store saved (sessions saved before this jar).
        let mut store = cookie_store::CookieStore::default();
        for (set, at) in SETS {
            let _ = store.parse(set, &url(at));
        }
        let mut old = Vec::new();
        cookie_store::serde::json::save_incl_expired_and_nonpersistent(&store, &mut old).unwrap();
        let back = Jar::load(std::str::from_utf8(&old).unwrap()).unwrap();
        for u in ["https://d1.web2.qq.com/channel/poll2", "https://w.qq.com/"] {
            assert_eq!(header(&back, u), header(&jar, u), "{u}");
        }
        // the expiry and the flags survive a round trip of our own form
        let again = Jar::load(&saved).unwrap();
        assert_eq!(again.save(), saved);
        assert_eq!(
            again.first_expiry(),
            Some(UNIX_EPOCH + std::time::Duration::from_secs(4_120_936_717))
        );
        assert!(Jar::load("not json").is_err());
    }
}
