//! How [`Client`] builds and sends a request: the URL and page headers of an endpoint
//! (`outgoing`), the url-encoded form, this account's cookies on the way out and the answer's
//! into its jar (`transmit`), and the poll's parts kept from one poll to the next.

use super::*;
use reqwest::header::HeaderName;

/// The target of the request and answer lines: the client's own, as before these moved here
/// (operators filter on it, and the log tests look for it).
const LOG_TARGET: &str = "qqfleet::protocol::client";

/// The parts of a poll2 request that do not change from one poll to the next: its URL and
/// headers for good, its form body for as long as the channel's values do. A fleet under load
/// polls once per message it receives; writing and url-encoding the `r` object alone was in
/// 82 of 2,165 samples of its profile at 1,000 accounts (3.8 %), beside the URL parsed and
/// the Referer and Origin formatted each time.
pub(super) struct PollParts {
    /// The request without its form body.
    request: Outgoing,
    /// The url-encoded form (`r=…`) and a hash of the channel values (ptwebqq, clientid,
    /// psessionid) it was written from: a new value (a relink, a 116) writes it anew.
    body: Mutex<Option<(u64, String)>>,
}

/// The hasher of the channel values a cached poll body was written from: one per process,
/// randomly keyed, so two channels' values meet on one hash only by a 2^-64 chance.
static POLL_BODY_HASH: std::sync::LazyLock<std::collections::hash_map::RandomState> =
    std::sync::LazyLock::new(Default::default);

/// A request ready to send: parsed URL, headers, url-encoded form body.
#[derive(Clone)]
pub(super) struct Outgoing {
    url: url::Url,
    referer: Option<HeaderValue>,
    origin: Option<HeaderValue>,
    form: Option<String>,
}

/// A header of the endpoint table as a header value; the table's are ASCII, so an error here
/// is a broken endpoint root.
fn header_value(ep: Endpoint, v: Option<String>) -> Result<Option<HeaderValue>, ProtocolError> {
    v.map(|v| {
        HeaderValue::try_from(v)
            .map_err(|err| ProtocolError::undecodable(ep, format!("bad header: {err}"), b""))
    })
    .transpose()
}

/// The form body `r=<r>`, url-encoded as a browser (and reqwest's `form`) sends it.
fn form_r(r: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("r", r)
        .finish()
}

impl Client {
    /// One request of `ep` to `url`, with `query` added and `form_r` as the form's `r`.
    pub(super) async fn request(
        &self,
        ep: Endpoint,
        url: &str,
        query: &[(&str, String)],
        form_r: Option<String>,
        timeout: Duration,
    ) -> Result<Answer, ProtocolError> {
        let mut out = self.outgoing(ep, url, form_r.as_deref().map(self::form_r))?;
        if !query.is_empty() {
            let mut q = out.url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        self.transmit(ep, out, timeout).await
    }

    /// A request to `url` for `ep`, with the Referer and (on a POST) the Origin the official
    /// page sent with it.
    fn outgoing(
        &self,
        ep: Endpoint,
        url: &str,
        form: Option<String>,
    ) -> Result<Outgoing, ProtocolError> {
        let e = &self.inner.endpoints;
        let origin = match ep.method() {
            Method::Post => e.origin(ep),
            Method::Get => None,
        };
        Ok(Outgoing {
            url: url::Url::parse(url)
                .map_err(|err| ProtocolError::undecodable(ep, format!("bad URL: {err}"), b""))?,
            referer: header_value(ep, e.referer(ep))?,
            origin: header_value(ep, origin)?,
            form,
        })
    }

    /// A prepared request as its URL, its form body, and the headers it carries beyond the
    /// HTTP client's own (Host, User-Agent, Accept), for both ways of sending (`transmit`,
    /// `transmit_poll`): this account's cookies for the URL (the pool is shared by every
    /// account and has no cookie store: they go on the request here, and only here), the
    /// form's Content-Type, the page's Referer and Origin.
    fn wire_parts(
        &self,
        out: Outgoing,
    ) -> (url::Url, Vec<(HeaderName, HeaderValue)>, Option<String>) {
        let Outgoing {
            url,
            referer,
            origin,
            form,
        } = out;
        let mut headers = Vec::with_capacity(4);
        if let Some(cookies) = self.inner.cookie_header.header(&self.inner.jar, &url) {
            headers.push((reqwest::header::COOKIE, cookies));
        }
        if form.is_some() {
            headers.push((
                reqwest::header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            ));
        }
        if let Some(referer) = referer {
            headers.push((reqwest::header::REFERER, referer));
        }
        if let Some(origin) = origin {
            headers.push((reqwest::header::ORIGIN, origin));
        }
        (url, headers, form)
    }

    /// Takes an answer's `Set-Cookie` values into this account's jar; nothing without any.
    fn keep_cookies<'a>(&self, values: impl Iterator<Item = &'a HeaderValue>, url: &url::Url) {
        let mut values = values.peekable();
        if values.peek().is_some() {
            // As reqwest's cookie store took them: any UTF-8, not only visible ASCII.
            let values = values.filter_map(|v| std::str::from_utf8(v.as_bytes()).ok());
            self.jar().store_all(values, url);
            self.jar_changed();
        }
    }

    /// Sends a prepared request with this account's cookies, and takes the answer's cookies
    /// into its jar.
    pub(super) async fn transmit(
        &self,
        ep: Endpoint,
        out: Outgoing,
        timeout: Duration,
    ) -> Result<Answer, ProtocolError> {
        let http = pool::http(ep, self.inner.opts.connect_timeout)?;
        let (url, headers, form) = self.wire_parts(out);
        let mut req = match ep.method() {
            Method::Get => http.get(url),
            Method::Post => http.post(url),
        };
        for (name, value) in headers {
            req = req.header(name, value);
        }
        if let Some(form) = form {
            req = req.body(form);
        }
        req = req.timeout(timeout);
        tracing::debug!(target: LOG_TARGET, endpoint = %ep, "request");
        let resp = req
            .send()
            .await
            .map_err(|err| ProtocolError::from_reqwest(ep, err, timeout))?;
        // Every answer's cookies into this account's jar, before the body is read (a body
        // that fails to arrive keeps them, as reqwest's own cookie store did). Redirects are
        // followed by hand through this function, so each hop's cookies land here too (the
        // 302 of check_sig carries the login, §3.5).
        self.keep_cookies(
            resp.headers().get_all(reqwest::header::SET_COOKIE).iter(),
            resp.url(),
        );
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let body = resp
            .bytes()
            .await
            .map_err(|err| ProtocolError::from_reqwest(ep, err, timeout))?
            .to_vec();
        tracing::debug!(target: LOG_TARGET, endpoint = %ep, status, bytes = body.len(), "answer");
        Ok(Answer {
            status,
            location,
            content_type,
            body,
        })
    }

    /// Sends a poll2 request on the account's own poll connection (`poll_conn`: no buffer
    /// held while the server holds the poll), with the cookies, headers and errors of
    /// [`Client::transmit`]; through the shared pool when the environment names a proxy.
    pub(super) async fn transmit_poll(
        &self,
        ep: Endpoint,
        out: Outgoing,
        timeout: Duration,
    ) -> Result<Answer, ProtocolError> {
        if poll_conn::proxied() {
            // Boxed: inline, reqwest's request state would size every parked poll's future.
            return Box::pin(self.transmit(ep, out, timeout)).await;
        }
        let (url, headers, form) = self.wire_parts(out);
        // Encoded here, so that the parked poll keeps neither the form nor the headers.
        let bytes = poll_conn::Request {
            post: matches!(ep.method(), Method::Post),
            url: &url,
            headers,
            body: form.as_deref().map(str::as_bytes),
        }
        .encode()
        .map_err(|message| ProtocolError::Transport {
            endpoint: ep,
            message,
        })?;
        drop(form);
        tracing::debug!(target: LOG_TARGET, endpoint = %ep, "request");
        let exchange = self
            .inner
            .poll_conn
            .exchange(&url, bytes, self.inner.opts.connect_timeout);
        let reply = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ProtocolError::Timeout {
                endpoint: ep,
                after: timeout,
            })?
            .map_err(|message| ProtocolError::Transport {
                endpoint: ep,
                message: crate::protocol::error::redact_text(&message),
            })?;
        self.keep_cookies(reply.set_cookies.iter(), &url);
        tracing::debug!(target: LOG_TARGET, endpoint = %ep, status = reply.status, bytes = reply.body.len(), "answer");
        Ok(Answer {
            status: reply.status,
            location: reply.location,
            content_type: reply.content_type,
            body: reply.body,
        })
    }

    /// The poll's fixed parts (see [`PollParts`]), built at the first poll.
    fn poll_parts(&self) -> Result<&PollParts, ProtocolError> {
        if let Some(p) = self.inner.poll.get() {
            return Ok(p);
        }
        let ep = Endpoint::Poll2;
        let parts = PollParts {
            request: self.outgoing(ep, &self.inner.endpoints.url(ep), None)?,
            body: Mutex::new(None),
        };
        Ok(self.inner.poll.get_or_init(|| parts))
    }

    /// The next poll2 request: the poll's fixed parts, and the form body written for the
    /// channel's current values (again only when they changed).
    pub(super) fn poll_request(&self) -> Result<Outgoing, ProtocolError> {
        let (ptwebqq, _, psessionid, clientid) = self.channel()?;
        let parts = self.poll_parts()?;
        let channel = {
            use std::hash::BuildHasher;
            POLL_BODY_HASH.hash_one((&ptwebqq, clientid, &psessionid))
        };
        let form = {
            let mut body = parts.body.lock().unwrap_or_else(|p| p.into_inner());
            match body.as_ref() {
                Some((built_from, form)) if *built_from == channel => form.clone(),
                _ => {
                    let form = form_r(&ordered(&[
                        ("ptwebqq", json!(ptwebqq)),
                        ("clientid", json!(clientid)),
                        ("psessionid", json!(psessionid)),
                        ("key", json!("")),
                    ]));
                    *body = Some((channel, form.clone()));
                    form
                }
            }
        };
        Ok(Outgoing {
            form: Some(form),
            ..parts.request.clone()
        })
    }
}
