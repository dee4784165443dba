//! The `Cookie` header of one account, reused while its jar is unchanged.
//!
//! Building the header matches every cookie of the jar against the URL (domain, path,
//! expiry), which was 5 % of the fleet's CPU at 10,000 accounts under load; a long poll asks
//! for the same URL again and again, and its answers seldom set a cookie. The header last
//! built is kept for its URL (scheme, host, port and path: all that cookie matching looks at)
//! and given again while the jar is the same (every change of the jar bumps a generation,
//! [`CookieCache::changed`]) and until the first cookie of the jar expires, so it is always
//! the header the jar would give.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use reqwest::header::HeaderValue;

use super::jar::Jar;

/// The header last built, for one URL.
struct Built {
    gen: u64,
    url: String,
    until: Option<SystemTime>,
    value: Option<HeaderValue>,
}

/// One account's cached `Cookie` header (see the module doc).
#[derive(Default)]
pub(super) struct CookieCache {
    /// Bumped by every change of the jar.
    gen: AtomicU64,
    last: Mutex<Option<Built>>,
}

impl CookieCache {
    /// To be called after every change of the jar: the header kept is stale.
    pub(super) fn changed(&self) {
        self.gen.fetch_add(1, Ordering::SeqCst);
    }

    /// The `Cookie` header of `jar` for `url`, as the jar gives it.
    pub(super) fn header(&self, jar: &Mutex<Jar>, url: &url::Url) -> Option<HeaderValue> {
        let key = &url[..url::Position::AfterPath];
        let gen = self.gen.load(Ordering::SeqCst);
        let now = SystemTime::now();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = last.as_ref() {
            if b.gen == gen && b.url == key && b.until.map_or(true, |t| now < t) {
                return b.value.clone();
            }
        }
        // `gen` was read before the jar: a change from here on leaves this entry stale.
        let (value, until) = {
            let jar = jar.lock().unwrap_or_else(|p| p.into_inner());
            (jar.header(url), jar.first_expiry())
        };
        *last = Some(Built {
            gen,
            url: key.to_string(),
            until,
            value: value.clone(),
        });
        value
    }
}
