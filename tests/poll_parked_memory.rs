//! What a poll costs while the server holds it: the state of an idle account.
//!
//! Every idle account has one poll2 request parked at the server for up to 60 s (WEBQQ.md
//! §5.1). Sent through reqwest, a parked request kept hyper's read and write buffers and its
//! dispatch channel, about 25 KiB; the poll's own connection (`src/protocol/poll_conn.rs`)
//! holds its socket and no buffer. This test parks the same number of polls both ways against
//! a server that never answers, and compares what each left on the heap.
//!
//! Its own test binary, so the process's heap count (`qqfleet::heap::live_bytes`, the figure
//! `/metrics` reports as `qqfleet_heap_in_use_bytes`) holds this test's allocations alone.

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use qqfleet::protocol::{Client, Endpoints, Session};

const POLLS: usize = 200;

/// A server that takes each connection's first bytes (a request) and never answers; returns
/// its base URL and the count of requests taken. It allocates nothing per connection beyond
/// the room made before the polls start.
fn silent_server() -> (String, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let taken = Arc::new(AtomicUsize::new(0));
    let t = taken.clone();
    std::thread::spawn(move || {
        let mut held = Vec::with_capacity(4 * POLLS);
        let mut buf = [0u8; 8192];
        for sock in listener.incoming() {
            let Ok(mut sock) = sock else { continue };
            if sock.read(&mut buf).unwrap_or(0) > 0 {
                t.fetch_add(1, Ordering::SeqCst);
            }
            held.push(sock);
        }
    });
    (base, taken)
}

async fn until_taken(taken: &AtomicUsize, n: usize) {
    for _ in 0..500 {
        if taken.load(Ordering::SeqCst) >= n {
            // Let every request settle into its wait.
            tokio::time::sleep(Duration::from_millis(200)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "the server took {} requests of {n}",
        taken.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn a_parked_poll_holds_far_less_than_a_parked_reqwest_request() {
    let (base, taken) = silent_server();
    let session = Session {
        uin: 10001,
        ptwebqq: "p".repeat(64),
        vfwebqq: "v".repeat(80),
        psessionid: "s".repeat(64),
        clientid: 53999199,
        ..Session::default()
    };
    let clients: Vec<Client> = (0..POLLS)
        .map(|_| Client::with_session(Endpoints::sim(&base), session.clone()).unwrap())
        .collect();
    let http = reqwest::Client::builder().build().unwrap();
    let url = format!("{base}/d1.web2.qq.com/channel/poll2");
    let form = format!("r={}", "x".repeat(200));

    // The accounts' polls.
    let before = qqfleet::heap::live_bytes();
    let polls: Vec<_> = clients
        .iter()
        .cloned()
        .map(|c| tokio::spawn(async move { c.poll().await }))
        .collect();
    until_taken(&taken, POLLS).await;
    let ours = qqfleet::heap::live_bytes().saturating_sub(before) as f64 / POLLS as f64;
    for p in &polls {
        assert!(!p.is_finished(), "a poll ended without an answer");
    }
    for p in polls {
        p.abort();
    }

    // The same requests through reqwest.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = qqfleet::heap::live_bytes();
    let sent: Vec<_> = (0..POLLS)
        .map(|_| {
            let req = http
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("referer", "http://d1.web2.qq.com/proxy.html?v=20151105001")
                .body(form.clone());
            tokio::spawn(async move { req.send().await })
        })
        .collect();
    until_taken(&taken, 2 * POLLS).await;
    let reqwest = qqfleet::heap::live_bytes().saturating_sub(before) as f64 / POLLS as f64;
    for s in sent {
        s.abort();
    }

    println!(
        "per parked request: the poll's own connection {:.0} B, reqwest {:.0} B",
        ours, reqwest
    );
    assert!(
        ours * 4.0 < reqwest,
        "a parked poll holds {ours:.0} B, a parked reqwest request {reqwest:.0} B"
    );
}
