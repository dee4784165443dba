//! The HTTP connection pool every account of the process shares.
//!
//! Each account used to build its own `reqwest::Client`: its own hyper pool, connector,
//! resolver and idle connections (two idle per host, per account). Now every account sends
//! through one `reqwest::Client` per tokio runtime (and per connect timeout, the only
//! [`ClientOptions`](super::ClientOptions) value reqwest fixes when it builds a client). That
//! client has NO cookie store: each account keeps its own jar, and
//! [`Client`](super::Client) puts the jar's `Cookie` header on every request and stores every
//! answer's `Set-Cookie` into it (redirects are taken by hand, so every hop passes there).
//!
//! # Why sharing connections between accounts is sound
//!
//! A WebQQ connection carries no identity. The protocol is HTTP/1.1 (reqwest is built without
//! HTTP/2 here), one request at a time on a connection, no client certificate, no
//! connection-bound authentication: who is asking is only in the cookies (`skey`, `p_skey`,
//! `uin`, `ptwebqq`, `qrsig`, ...) and in query or form fields (`psessionid`, `vfwebqq`,
//! `clientid`, `ptqrtoken`), all of which come from the account's own jar and state on every
//! request. The servers tell accounts apart by those values only (the simulator checks that
//! the cookies' login and the psessionid's session are the same QQ number, WEBQQ.md §14.3),
//! and every account of a process comes from the same address anyway. A connection reused by
//! another account is therefore indistinguishable, to the server, from a new one.
//!
//! # Why one pool per runtime
//!
//! hyper drives each connection in a task spawned on the runtime that opened it. Handed to a
//! request of another runtime, it would run that request's I/O on the first runtime's thread
//! and die with that runtime ("dispatch task is gone"). The fleet runs its accounts on one
//! actix Arbiter (one runtime) per core, so it has one pool per core; tests and commands with
//! their own runtimes get their own pool. When a runtime shuts down, its pool is forgotten.
//!
//! # Limits, for thousands of accounts on one pool
//!
//! The long polls do not use this pool: each account keeps its own poll connection
//! ([`super::poll_conn`], which holds no buffer while the server holds the poll). The pool
//! carries everything else: logins, sends, contacts, relinks. Bursts are what idle
//! connections come from: when many requests start together (a fleet resuming, logins, a
//! storm of replies), every request that finds no idle connection opens one, and hyper pools
//! the extra ones that lost the race. Per runtime and host at most [`POOL_IDLE_PER_HOST`] are
//! kept, so a burst leaves descriptors beyond the connections in use only up to what the
//! burst itself opened; they close after [`POOL_IDLE_TIMEOUT`].
//!
//! The cap is high on purpose. While the polls went through this pool, with a cap of 256, a
//! wave of 10,000 answered polls closed all but 512 of the connections coming back, and every
//! re-poll opened a new one (a connect and an accept, and a TIME_WAIT port each). With 65,536
//! the waves found their connections again:
//! the quick `make bench` at 10,000 accounts handled 4,069 and 3,960 messages a second,
//! against 2,781 and 2,527 with 256 (same hour, same machine), and no poll failed to connect.
//! A wave of replies (the echo handler) meets the same cap now.
//! The cost, sampled every 2 s through that run: at most 12,333 connections for 10,000
//! accounts (1.23 per account), back to 10,000 within 20 s; [`crate::fdlimit::needed`]
//! counts a quarter more per account for it.
//!
//! (An earlier round blamed this cap for a fleet stuck at its 20,000 open-file limit after
//! such a wave. The other 10,000 descriptors were the `log` handlers' files, one per account;
//! they are now shared, and only as many stay open as the open-file limit leaves room for.)
//!
//! One pool per runtime also means one idle-connection reaper (hyper's interval task) per
//! runtime; with a pool per account, each account had its own timer waking every 90 s.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use super::endpoints::{Endpoint, USER_AGENT};
use super::error::ProtocolError;

/// How long an unused pooled connection is kept. Below the simulator's 30 s (hyper's header
/// read timeout, which also closes an idle keep-alive connection) and common server
/// keep-alive windows, so the pool drops a connection before the server does, not while a
/// request is being written on it.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(20);

/// Idle connections kept per host in one runtime's pool (see the module doc).
pub const POOL_IDLE_PER_HOST: usize = 65_536;

/// A runtime (None: called outside of one) and a connect timeout.
type Key = (Option<tokio::runtime::Id>, Duration);

fn pools() -> MutexGuard<'static, HashMap<Key, reqwest::Client>> {
    static POOLS: OnceLock<Mutex<HashMap<Key, reqwest::Client>>> = OnceLock::new();
    POOLS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// Removes a runtime's pool when the runtime drops its tasks (at shutdown).
struct Forget(Key);

impl Drop for Forget {
    fn drop(&mut self) {
        let gone = pools().remove(&self.0);
        // dropped after the lock is released
        drop(gone);
    }
}

/// The shared client of the current runtime for this connect timeout, built on first use.
/// `ep` only names the request in an error.
pub(crate) fn http(
    ep: Endpoint,
    connect_timeout: Duration,
) -> Result<reqwest::Client, ProtocolError> {
    let rt = tokio::runtime::Handle::try_current().ok();
    let key = (rt.as_ref().map(|h| h.id()), connect_timeout);
    if let Some(c) = pools().get(&key) {
        return Ok(c.clone());
    }
    let client = build(connect_timeout).map_err(|message| ProtocolError::Transport {
        endpoint: ep,
        message,
    })?;
    let (client, fresh) = {
        let mut map = pools();
        match map.get(&key) {
            // built by another thread meanwhile
            Some(c) => (c.clone(), false),
            None => {
                map.insert(key, client.clone());
                (client, true)
            }
        }
    };
    if let (Some(rt), true) = (rt, fresh) {
        // A task that never wakes: it holds the guard that forgets the pool when the runtime
        // drops its tasks at shutdown (whether it was ever polled or not).
        let forget = Forget(key);
        rt.spawn(async move {
            let _forget = forget;
            std::future::pending::<()>().await
        });
    }
    Ok(client)
}

fn build(connect_timeout: Duration) -> Result<reqwest::Client, String> {
    let builder = reqwest::Client::builder();
    // The one rustls config every pool shares (a config per client cost ~100 KiB).
    #[cfg(feature = "tls")]
    let builder = builder.tls_backend_preconfigured(
        super::client::shared_tls_config()
            .ok_or_else(|| ProtocolError::TlsUnavailable.to_string())?
            .clone(),
    );
    builder
        // No cookie_provider: the jars are per account (see the module doc).
        // check_sig's cookies come on a 302 (§3.5): redirects are taken by hand so that
        // nothing is lost and only URLs of the service are followed.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(USER_AGENT)
        .connect_timeout(connect_timeout)
        .pool_max_idle_per_host(POOL_IDLE_PER_HOST)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build()
        .map_err(|e| e.without_url().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pool_per_runtime_forgotten_at_shutdown() {
        let t = Duration::from_millis(1234);
        let key = |rt: &tokio::runtime::Runtime| (Some(rt.handle().id()), t);
        let a = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let b = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (ka, kb) = (key(&a), key(&b));
        a.block_on(async {
            http(Endpoint::Poll2, t).unwrap();
            http(Endpoint::Poll2, t).unwrap();
        });
        b.block_on(async { http(Endpoint::Poll2, t).unwrap() });
        assert!(pools().contains_key(&ka));
        assert!(pools().contains_key(&kb));
        drop(a);
        assert!(
            !pools().contains_key(&ka),
            "the pool of a dropped runtime stays"
        );
        assert!(pools().contains_key(&kb));
        drop(b);
        assert!(!pools().contains_key(&kb));
    }

    /// A server that counts the connections it accepts and answers each request only when
    /// the test opens the gate, so a wave of requests is in flight all at once.
    async fn gated_server() -> (
        std::net::SocketAddr,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
        std::sync::Arc<tokio::sync::Semaphore>,
    ) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let arrived = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let (acc, arr, g) = (accepted.clone(), arrived.clone(), gate.clone());
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                acc.fetch_add(1, Ordering::SeqCst);
                let (arr, g) = (arr.clone(), g.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    loop {
                        // One request head (GET, no body), then the gated answer; again
                        // until the client closes the connection.
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            match sock.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => head.extend_from_slice(&buf[..n]),
                            }
                        }
                        head.clear();
                        arr.fetch_add(1, Ordering::SeqCst);
                        let Ok(permit) = g.acquire().await else {
                            return;
                        };
                        permit.forget();
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if sock.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, accepted, arrived, gate)
    }

    /// A burst of answered requests (polls) within the idle cap: every connection of the
    /// burst comes back to the pool and serves the next burst, none is opened again. (Above
    /// the cap the difference is opened again: with 300 in flight and the cap of 256, the
    /// second wave opened 44.)
    #[tokio::test]
    async fn a_burst_within_the_cap_finds_its_connections_again() {
        use std::sync::atomic::Ordering;
        const WAVE: usize = 200;
        // 400 sockets (both ends): near a soft limit of 1,024 with the other tests' files.
        let _ = crate::fdlimit::raise();
        let (addr, accepted, arrived, gate) = gated_server().await;
        let client = http(Endpoint::Poll2, Duration::from_secs(5)).unwrap();
        for wave in 1..=2 {
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..WAVE {
                let (client, url) = (client.clone(), format!("http://{addr}/poll"));
                set.spawn(async move { client.get(url).send().await?.bytes().await });
            }
            // Bounded: 10 s for the whole wave to be in flight.
            for _ in 0..2_000 {
                if arrived.load(Ordering::SeqCst) >= wave * WAVE {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            assert_eq!(
                arrived.load(Ordering::SeqCst),
                wave * WAVE,
                "wave {wave} in flight"
            );
            gate.add_permits(WAVE);
            while let Some(r) = set.join_next().await {
                assert_eq!(&r.unwrap().unwrap()[..], b"ok");
            }
            // The connections are back in the pool once their answers are read.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            WAVE,
            "the second burst opened new connections instead of reusing the first's"
        );
    }
}
