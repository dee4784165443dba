//! The long poll's own connection: one HTTP/1.1 connection per account, holding nothing but
//! its socket while the server holds the poll.
//!
//! # Why the poll leaves the shared pool
//!
//! An idle account spends its life in one parked poll2 request (the server holds it 60 s,
//! §5.1). Sent through reqwest, that request keeps hyper's connection state for the whole
//! hold: its read buffer (8,192 B, reserved before the first byte arrives), its write buffer
//! (8,192 B) and its dispatch channel (8,992 B). A heap profile of 100 idle accounts
//! (valgrind's massif, `docs/PERFORMANCE.md`) found exactly one of each per account: 25 KiB of
//! the about 70 KiB an idle account holds, and nothing reqwest lets a caller size.
//!
//! Here the request is written from one buffer that is freed once it is sent, the socket is
//! then awaited with no buffer at all, and the answer's buffer is taken only when the socket
//! turns readable and given up with the answer. Between two polls the connection waits in the
//! account's slot, so a busy account reuses it as it reused its pooled one.
//!
//! # What it speaks
//!
//! HTTP/1.1, one request at a time, keep-alive; an answer framed by `Content-Length`, by
//! chunks, or by the end of the connection; `100 Continue` skipped. A kept connection that the
//! server closed while it waited is noticed before it is used (as hyper's pool does) and a new
//! one is opened; a connection that closes after the request went out is an error, as it was
//! through reqwest: the poll is not sent twice by this layer. https goes through the one
//! shared rustls config ([`super::client::shared_tls_config`]).
//!
//! # When it is not used
//!
//! A proxy set in the environment (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`, in either case):
//! the poll then goes through the shared pool, whose reqwest honours them.

use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::endpoints::USER_AGENT;

/// Longest answer head (status line and headers) taken.
const MAX_HEAD: usize = 64 << 10;
/// Longest answer body taken; a poll answer is a few KiB at most.
const MAX_BODY: usize = 16 << 20;
/// Room made in the answer's buffer before each read.
const READ_CHUNK: usize = 4096;

/// Whether the environment names a proxy: then the poll goes through reqwest (module doc).
pub(super) fn proxied() -> bool {
    static PROXIED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PROXIED.get_or_init(|| {
        [
            "HTTP_PROXY",
            "http_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
        ]
        .iter()
        .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()))
    })
}

/// An answer as read off the connection.
pub(super) struct Reply {
    pub status: u16,
    pub set_cookies: Vec<HeaderValue>,
    pub location: Option<String>,
    /// Lower-cased; empty when absent.
    pub content_type: String,
    pub body: Vec<u8>,
}

/// One account's poll connection, kept between two polls (see the module doc).
#[derive(Default)]
pub(super) struct PollConn {
    slot: Mutex<Option<Kept>>,
}

/// A connection waiting for the next poll, with the runtime whose reactor it is registered
/// with: a connection is only reused on that runtime (see `pool.rs`, "one pool per runtime").
struct Kept {
    rt: Option<tokio::runtime::Id>,
    stream: Stream,
}

/// A request ready for the wire.
pub(super) struct Request<'a> {
    pub post: bool,
    pub url: &'a url::Url,
    /// Extra headers (`Cookie`, `Content-Type`, `Referer`, `Origin`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Option<&'a [u8]>,
}

impl Request<'_> {
    /// The request's bytes: what reqwest sent for the same call (Host, User-Agent,
    /// `Accept: */*`, the extra headers, Content-Length on a body). Encoded before the
    /// exchange, so that the form and headers are not kept while the poll is parked.
    pub(super) fn encode(self) -> Result<Vec<u8>, String> {
        let host = self.url.host_str().ok_or("URL without a host")?;
        let mut out = Vec::with_capacity(512 + self.body.map_or(0, <[u8]>::len));
        out.extend_from_slice(if self.post { b"POST " } else { b"GET " });
        out.extend_from_slice(self.url.path().as_bytes());
        if let Some(q) = self.url.query() {
            out.push(b'?');
            out.extend_from_slice(q.as_bytes());
        }
        out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        out.extend_from_slice(host.as_bytes());
        if let Some(port) = self.url.port() {
            out.extend_from_slice(format!(":{port}").as_bytes());
        }
        out.extend_from_slice(b"\r\nuser-agent: ");
        out.extend_from_slice(USER_AGENT.as_bytes());
        out.extend_from_slice(b"\r\naccept: */*\r\n");
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if let Some(body) = self.body {
            out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
            out.extend_from_slice(body);
        } else {
            out.extend_from_slice(b"\r\n");
        }
        Ok(out)
    }
}

impl PollConn {
    /// Sends a request (`Request::encode`d, for `url`) on the kept connection (or a new one)
    /// and reads its answer. The error is a transport error's message, with no URL or header
    /// in it. The caller bounds the whole exchange with its timeout; a dropped exchange drops
    /// its connection.
    pub(super) async fn exchange(
        &self,
        url: &url::Url,
        bytes: Vec<u8>,
        connect_timeout: Duration,
    ) -> Result<Reply, String> {
        let rt = tokio::runtime::Handle::try_current().ok().map(|h| h.id());
        let mut stream = match self.take(rt) {
            Some(s) => s,
            // Boxed: the connect (and TLS handshake) state is large, and inline it would be
            // part of every parked poll's future, though a parked poll is past it.
            None => Box::pin(connect(url, connect_timeout)).await?,
        };
        stream
            .write_all(&bytes)
            .await
            .map_err(|e| format!("sending the request: {e}"))?;
        stream
            .flush()
            .await
            .map_err(|e| format!("sending the request: {e}"))?;
        drop(bytes);
        let (reply, keep) = read_answer(&mut stream).await?;
        if keep {
            *self.lock() = Some(Kept { rt, stream });
        }
        Ok(reply)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Kept>> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The kept connection, if it belongs to this runtime and the server has not closed it.
    fn take(&self, rt: Option<tokio::runtime::Id>) -> Option<Stream> {
        let kept = self.lock().take()?;
        (kept.rt == rt && kept.stream.still_open()).then_some(kept.stream)
    }

    /// Whether a connection is kept (tests).
    #[cfg(test)]
    fn is_kept(&self) -> bool {
        self.lock().is_some()
    }
}

/// Opens a connection to the URL's host: TCP (no Nagle delay, as reqwest), then TLS on https.
async fn connect(url: &url::Url, timeout: Duration) -> Result<Stream, String> {
    let port = url
        .port_or_known_default()
        .ok_or("URL without a known port")?;
    let tcp = match url.host() {
        Some(url::Host::Domain(d)) => {
            tokio::time::timeout(timeout, TcpStream::connect((d, port))).await
        }
        Some(url::Host::Ipv4(a)) => {
            tokio::time::timeout(timeout, TcpStream::connect((a, port))).await
        }
        Some(url::Host::Ipv6(a)) => {
            tokio::time::timeout(timeout, TcpStream::connect((a, port))).await
        }
        None => return Err("URL without a host".into()),
    }
    .map_err(|_| format!("connect timed out after {timeout:?}"))?
    .map_err(|e| format!("tcp connect error: {e}"))?;
    let _ = tcp.set_nodelay(true);
    match url.scheme() {
        "http" => Ok(Stream::Plain(tcp)),
        #[cfg(feature = "tls")]
        "https" => {
            let config = super::client::shared_tls_config().ok_or("TLS is not available")?;
            let host = url.host_str().unwrap_or_default().to_string();
            let name = rustls::pki_types::ServerName::try_from(host)
                .map_err(|e| format!("TLS server name: {e}"))?;
            let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config.clone()))
                .connect(name, tcp);
            let tls = tokio::time::timeout(timeout, tls)
                .await
                .map_err(|_| format!("TLS handshake timed out after {timeout:?}"))?
                .map_err(|e| format!("TLS handshake: {e}"))?;
            Ok(Stream::Tls(Box::new(tls)))
        }
        other => Err(format!("unsupported scheme {other}")),
    }
}

/// Reads one answer; returns it and whether the connection may carry the next request.
async fn read_answer(s: &mut Stream) -> Result<(Reply, bool), String> {
    // Parked here for the server's hold, with no buffer taken yet.
    s.readable().await?;
    let mut buf: Vec<u8> = Vec::new();
    let mut head_len;
    let mut parsed;
    loop {
        let head = loop {
            match parse_head(&buf)? {
                Some(h) => break h,
                None if buf.len() >= MAX_HEAD => {
                    return Err(format!("answer head over {MAX_HEAD} bytes"))
                }
                None => {
                    if fill(s, &mut buf).await? == 0 {
                        return Err(if buf.is_empty() {
                            "connection closed before an answer".into()
                        } else {
                            "connection closed within the answer's head".into()
                        });
                    }
                }
            }
        };
        (head_len, parsed) = head;
        // An interim answer (100 Continue): the real one follows.
        if (100..200).contains(&parsed.status) && parsed.status != 101 {
            buf.drain(..head_len);
            continue;
        }
        break;
    }
    buf.drain(..head_len);
    let no_body = parsed.status == 204 || parsed.status == 304 || parsed.status < 200;
    let (body, framed) = if no_body {
        (Vec::new(), true)
    } else if parsed.chunked {
        (read_chunked(s, buf).await?, true)
    } else if let Some(len) = parsed.content_length {
        if len > MAX_BODY {
            return Err(format!("answer body of {len} bytes, over {MAX_BODY}"));
        }
        while buf.len() < len {
            if fill(s, &mut buf).await? == 0 {
                return Err("connection closed within the answer's body".into());
            }
        }
        buf.truncate(len);
        (buf, true)
    } else {
        // Framed by the end of the connection.
        while fill(s, &mut buf).await? != 0 {
            if buf.len() > MAX_BODY {
                return Err(format!("answer body over {MAX_BODY} bytes"));
            }
        }
        (buf, false)
    };
    let keep = framed && parsed.keep_alive;
    Ok((
        Reply {
            status: parsed.status,
            set_cookies: parsed.set_cookies,
            location: parsed.location,
            content_type: parsed.content_type,
            body,
        },
        keep,
    ))
}

/// What an answer's head says.
#[derive(Debug)]
struct Head {
    status: u16,
    set_cookies: Vec<HeaderValue>,
    location: Option<String>,
    content_type: String,
    content_length: Option<usize>,
    chunked: bool,
    keep_alive: bool,
}

/// The head at the start of `buf` and its length, or None while it is incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<(usize, Head)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("malformed answer head: {e}")),
    };
    let mut head = Head {
        status: resp.code.unwrap_or(0),
        set_cookies: Vec::new(),
        location: None,
        content_type: String::new(),
        content_length: None,
        chunked: false,
        // HTTP/1.1 keeps the connection unless told otherwise; HTTP/1.0 only when told.
        keep_alive: resp.version == Some(1),
    };
    for h in resp.headers.iter() {
        let value = || String::from_utf8_lossy(h.value).trim().to_string();
        if h.name.eq_ignore_ascii_case("set-cookie") {
            if let Ok(v) = HeaderValue::from_bytes(h.value) {
                head.set_cookies.push(v);
            }
        } else if h.name.eq_ignore_ascii_case("location") {
            head.location = std::str::from_utf8(h.value).ok().map(str::to_string);
        } else if h.name.eq_ignore_ascii_case("content-type") {
            head.content_type = value().to_ascii_lowercase();
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let n = value()
                .parse::<usize>()
                .map_err(|_| format!("bad content-length {:?}", value()))?;
            if head.content_length.is_some_and(|m| m != n) {
                return Err("two different content-lengths".into());
            }
            head.content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value()
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in value().split(',') {
                let token = token.trim();
                if token.eq_ignore_ascii_case("close") {
                    head.keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") && resp.version == Some(0) {
                    head.keep_alive = true;
                }
            }
        }
    }
    Ok(Some((len, head)))
}

/// Decodes a chunked body; `buf` holds what was read past the head.
async fn read_chunked(s: &mut Stream, mut buf: Vec<u8>) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        // The size line.
        let size_end = line_end(s, &mut buf, at, 1024, "a chunk").await?;
        let line = std::str::from_utf8(&buf[at..size_end]).map_err(|_| "bad chunk size line")?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        at = size_end + 2;
        if size == 0 {
            // Trailers (ignored) up to the empty line.
            loop {
                let i = line_end(s, &mut buf, at, usize::MAX, "the trailers").await?;
                let empty = i == at;
                at = i + 2;
                if empty {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(format!("answer body over {MAX_BODY} bytes"));
        }
        while buf.len() < at + size + 2 {
            if fill(s, &mut buf).await? == 0 {
                return Err("connection closed within a chunk".into());
            }
        }
        body.extend_from_slice(&buf[at..at + size]);
        if &buf[at + size..at + size + 2] != b"\r\n" {
            return Err("chunk not followed by CRLF".into());
        }
        at += size + 2;
        // Keep the buffer from growing with the body.
        buf.drain(..at);
        at = 0;
    }
}

/// Where the line starting at `at` ends (its CRLF), reading more as needed; a line of more
/// than `max` bytes, or the connection's end first, is an error naming `within`.
async fn line_end(
    s: &mut Stream,
    buf: &mut Vec<u8>,
    at: usize,
    max: usize,
    within: &str,
) -> Result<usize, String> {
    loop {
        if let Some(i) = buf[at..].windows(2).position(|w| w == b"\r\n") {
            return Ok(at + i);
        }
        if buf.len() - at > max {
            return Err(format!("line too long within {within}"));
        }
        if fill(s, buf).await? == 0 {
            return Err(format!("connection closed within {within}"));
        }
    }
}

/// Reads more into `buf`; 0 at the end of the connection.
async fn fill(s: &mut Stream, buf: &mut Vec<u8>) -> Result<usize, String> {
    buf.reserve(READ_CHUNK);
    s.read_buf(buf)
        .await
        .map_err(|e| format!("reading the answer: {e}"))
}

/// A plain or TLS connection.
enum Stream {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    /// Waits until the answer starts to arrive. On a plain socket this takes no buffer; TLS
    /// reads records through its own.
    async fn readable(&self) -> Result<(), String> {
        match self {
            Stream::Plain(t) => t
                .readable()
                .await
                .map_err(|e| format!("waiting for the answer: {e}")),
            #[cfg(feature = "tls")]
            Stream::Tls(_) => Ok(()),
        }
    }

    /// Whether a kept connection can carry a request: not closed by the server and with no
    /// stray bytes waiting. A TLS connection is trusted as hyper's pool would (its reader
    /// would have seen the close), as its records cannot be peeked at.
    fn still_open(&self) -> bool {
        match self {
            Stream::Plain(t) => {
                let mut probe = [0u8; 1];
                matches!(t.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            }
            #[cfg(feature = "tls")]
            Stream::Tls(_) => true,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(t) => Pin::new(t).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Stream::Tls(t) => Pin::new(t.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(t) => Pin::new(t).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Stream::Tls(t) => Pin::new(t.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(t) => Pin::new(t).poll_flush(cx),
            #[cfg(feature = "tls")]
            Stream::Tls(t) => Pin::new(t.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(t) => Pin::new(t).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            Stream::Tls(t) => Pin::new(t.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::net::TcpListener;

    /// A server that answers each request with the next of `answers` (raw bytes; `None`
    /// closes the connection instead; an HTTP/1.0 or `close` answer closes it after), records
    /// every request and counts the connections it accepts.
    async fn server(
        answers: Vec<Option<&'static str>>,
    ) -> (url::Url, Arc<AtomicUsize>, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = url::Url::parse(&format!(
            "http://{}/channel/poll2?x=1",
            listener.local_addr().unwrap()
        ))
        .unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(answers.into_iter()));
        let (a, s) = (accepted.clone(), seen.clone());
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                let (answers, seen) = (answers.clone(), s.clone());
                tokio::spawn(async move {
                    loop {
                        // One request: its head, then its Content-Length body.
                        let mut req = Vec::new();
                        let mut byte = [0u8; 1];
                        while !req.ends_with(b"\r\n\r\n") {
                            if sock.read(&mut byte).await.unwrap_or(0) == 0 {
                                return;
                            }
                            req.push(byte[0]);
                        }
                        let head = String::from_utf8_lossy(&req).to_string();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length: "))
                            .map_or(0, |n| n.trim().parse::<usize>().unwrap());
                        let mut body = vec![0u8; len];
                        sock.read_exact(&mut body).await.unwrap();
                        seen.lock()
                            .unwrap()
                            .push(head + &String::from_utf8_lossy(&body));
                        let next = answers.lock().unwrap().next().flatten();
                        match next {
                            Some(a) => sock.write_all(a.as_bytes()).await.unwrap(),
                            None => return,
                        }
                        // An answer that ends with its connection (HTTP/1.0 or `close`).
                        if next.is_some_and(|a| a.starts_with("HTTP/1.0") || a.contains("close")) {
                            return;
                        }
                    }
                });
            }
        });
        (url, accepted, seen)
    }

    fn request(url: &url::Url) -> Vec<u8> {
        Request {
            post: true,
            url,
            headers: vec![
                (
                    reqwest::header::COOKIE,
                    HeaderValue::from_static("a=1; b=2"),
                ),
                (
                    reqwest::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                ),
            ],
            body: Some(b"r=%7B%7D"),
        }
        .encode()
        .unwrap()
    }

    /// One exchange of the test request on `conn`.
    async fn once(conn: &PollConn, url: &url::Url) -> Result<Reply, String> {
        conn.exchange(url, request(url), Duration::from_secs(5))
            .await
    }

    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=UTF-8\r\n\
                      set-cookie: c=3; Path=/\r\ncontent-length: 13\r\n\r\n{\"retcode\":0}";

    #[tokio::test]
    async fn a_kept_connection_carries_the_next_poll() {
        let ok: &'static str = "HTTP/1.1 200 OK\r\ncontent-type: Text/Plain\r\n\
                                set-cookie: c=3; Path=/\r\nset-cookie: d=4\r\n\
                                content-length: 13\r\n\r\n{\"retcode\":0}";
        let (url, accepted, seen) = server(vec![Some(ok), Some(ok)]).await;
        let conn = PollConn::default();
        for _ in 0..2 {
            let r = once(&conn, &url).await.unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.body, b"{\"retcode\":0}");
            assert_eq!(r.content_type, "text/plain");
            assert_eq!(r.set_cookies, ["c=3; Path=/", "d=4"]);
            assert!(conn.is_kept());
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one connection for both"
        );
        let seen = seen.lock().unwrap();
        let first = &seen[0];
        assert!(
            first.starts_with("POST /channel/poll2?x=1 HTTP/1.1\r\n"),
            "{first}"
        );
        let host = format!(
            "host: {}:{}\r\n",
            url.host_str().unwrap(),
            url.port().unwrap()
        );
        for line in [
            host.as_str(),
            "cookie: a=1; b=2\r\n",
            "content-type: application/x-www-form-urlencoded\r\n",
            "content-length: 8\r\n",
            "accept: */*\r\n",
        ] {
            assert!(first.contains(line), "{line:?} missing in {first}");
        }
        assert!(first.ends_with("\r\n\r\nr=%7B%7D"), "{first}");
    }

    #[tokio::test]
    async fn a_chunked_answer_is_decoded_and_the_connection_kept() {
        let chunked: &'static str = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\
                                     transfer-encoding: chunked\r\n\r\n\
                                     5;ext=1\r\n{\"ret\r\n8\r\ncode\":0}\r\n0\r\nx-trailer: 1\r\n\r\n";
        let (url, accepted, _) = server(vec![Some(chunked), Some(OK)]).await;
        let conn = PollConn::default();
        let r = once(&conn, &url).await.unwrap();
        assert_eq!(r.body, b"{\"retcode\":0}");
        let r = once(&conn, &url).await.unwrap();
        assert_eq!(r.body, b"{\"retcode\":0}");
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn closing_answers_are_read_to_the_end_and_not_kept() {
        let close: &'static str =
            "HTTP/1.1 502 Bad Gateway\r\nconnection: close\r\ncontent-length: 3\r\n\r\nbad";
        let (url, accepted, _) = server(vec![Some(close)]).await;
        let conn = PollConn::default();
        let r = once(&conn, &url).await.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (502, &b"bad"[..]));
        assert!(!conn.is_kept());

        // No length: the body runs to the end of the connection.
        let unframed: &'static str = "HTTP/1.0 200 OK\r\n\r\n{\"retcode\":102}";
        let (url, _, _) = server(vec![Some(unframed)]).await;
        let conn = PollConn::default();
        let r = once(&conn, &url).await.unwrap();
        assert_eq!(r.body, b"{\"retcode\":102}");
        assert!(!conn.is_kept());
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_closed_after_the_request_is_an_error_not_a_resend() {
        // The first connection gets one answer, then is closed by the server (no next answer).
        let (url, accepted, seen) = server(vec![Some(OK), None, Some(OK)]).await;
        let conn = PollConn::default();
        once(&conn, &url).await.unwrap();
        assert!(conn.is_kept());
        // The server takes the next request on it, then closes it without an answer...
        let err = once(&conn, &url).await.err().unwrap();
        // ... after the request went out: an error, not a resend.
        assert_eq!(err, "connection closed before an answer");
        assert_eq!(seen.lock().unwrap().len(), 2, "the poll was sent twice");
        assert!(!conn.is_kept());
        // The next poll opens a new connection.
        once(&conn, &url).await.unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_kept_connection_closed_while_idle_is_not_used() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = url::Url::parse(&format!("http://{}/p", listener.local_addr().unwrap())).unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let a = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let n = a.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let mut got = Vec::new();
                    while !got.windows(8).any(|w| w == b"r=%7B%7D") {
                        let k = sock.read(&mut buf).await.unwrap();
                        got.extend_from_slice(&buf[..k]);
                    }
                    sock.write_all(OK.as_bytes()).await.unwrap();
                    if n == 0 {
                        // The first connection is closed by the server while it is idle.
                        drop(sock);
                    } else {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                });
            }
        });
        let conn = PollConn::default();
        once(&conn, &url).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = once(&conn, &url).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_malformed_or_refused_answer_is_a_clear_error() {
        let (url, _, _) = server(vec![Some("HTTP/1.1 abc\r\n\r\n")]).await;
        let err = once(&PollConn::default(), &url).await.err().unwrap();
        assert!(err.starts_with("malformed answer head"), "{err}");

        let bad_len: &'static str = "HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n";
        let (url, _, _) = server(vec![Some(bad_len)]).await;
        let err = once(&PollConn::default(), &url).await.err().unwrap();
        assert!(err.starts_with("bad content-length"), "{err}");

        // Nothing listens there any more.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = url::Url::parse(&format!("http://{}/p", l.local_addr().unwrap())).unwrap();
        drop(l);
        let err = once(&PollConn::default(), &url).await.err().unwrap();
        assert!(err.starts_with("tcp connect error"), "{err}");
    }
}
