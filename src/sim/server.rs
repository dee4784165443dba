//! The accept loop. The simulator serves HTTP/1.1 with hyper directly (rather than
//! `axum::serve`) so that a `drop` fault can close one connection without an answer: each
//! connection gets a [`ConnAbort`] in its requests' extensions and is dropped when it fires.

use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::Service;

use super::request::ConnAbort;

/// Pending connections the kernel may queue before accept (capped by `net.core.somaxconn`).
/// tokio's default of 1,024 refused connections when thousands of accounts started at once.
pub const BACKLOG: u32 = 8192;

/// Binds a listener with a [`BACKLOG`] deep enough for a fleet starting at once.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Accepts connections until `shutdown` turns true.
pub async fn accept_loop(
    listener: TcpListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of file descriptors and similar: back off instead of spinning.
                tracing::warn!(error = %e, "simulator accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let abort = ConnAbort::default();
            let abort_in = abort.clone();
            let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(abort_in.clone());
                let mut r = router.clone();
                r.call(req.map(axum::body::Body::new))
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = abort.0.notified() => {}
                _ = shutdown.changed() => {}
            }
        });
    }
}
