//! OneBot v11 end to end: the real `qqfleet run` binary against the real simulator, with the
//! bot side played by this test over real sockets on 127.0.0.1: a forward WebSocket client, a
//! reverse WebSocket server (that goes down while messages arrive, across a fleet restart)
//! and a webhook that fails, hangs, then answers with a quick reply.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

mod onebot_common;
use onebot_common::*;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type SrvWs = WebSocketStream<TcpStream>;

/// The next JSON frame that is not a heartbeat.
async fn next_json<S>(ws: &mut S, what: &str) -> Value
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let m = tokio::time::timeout(Duration::from_secs(40), ws.next())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .unwrap_or_else(|| panic!("connection closed waiting for {what}"))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["meta_event_type"] == "heartbeat" {
                continue;
            }
            return v;
        }
    }
}

/// Sends an API frame and returns the answer with the same echo (events in between are
/// returned in `events`).
async fn api<S>(ws: &mut S, events: &mut Vec<Value>, frame: Value) -> Value
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + futures::Sink<Message, Error = tokio_tungstenite::tungstenite::Error>
        + Unpin,
{
    let echo = frame["echo"].clone();
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
    loop {
        let v = next_json(ws, "an API answer").await;
        if v.get("post_type").is_some() {
            events.push(v);
            continue;
        }
        assert_eq!(v["echo"], echo, "{v}");
        return v;
    }
}

async fn connect(url: &str, token: Option<&str>) -> Result<Ws, u16> {
    let mut req = url.into_client_request().unwrap();
    if let Some(t) = token {
        req.headers_mut()
            .insert("Authorization", format!("Bearer {t}").parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("connect {url}: {e}"),
    }
}

/// Accepts one reverse connection, returning it with its handshake headers.
async fn accept_reverse(l: &TcpListener) -> (SrvWs, Vec<(String, String)>) {
    let (tcp, _) = tokio::time::timeout(Duration::from_secs(20), l.accept())
        .await
        .expect("the fleet connects back")
        .unwrap();
    let headers = Arc::new(Mutex::new(Vec::new()));
    let h2 = headers.clone();
    #[allow(clippy::result_large_err)]
    let cb = move |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                   resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
        let mut h = h2.lock().unwrap();
        for (k, v) in req.headers() {
            h.push((
                k.as_str().to_lowercase(),
                v.to_str().unwrap_or("").to_string(),
            ));
        }
        Ok(resp)
    };
    let ws = tokio_tungstenite::accept_hdr_async(tcp, cb).await.unwrap();
    let h = headers.lock().unwrap().clone();
    (ws, h)
}

fn header<'a>(h: &'a [(String, String)], k: &str) -> Option<&'a str> {
    h.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// What the test webhook saw and does.
#[derive(Default)]
struct Hook {
    /// (X-Self-ID, X-Signature, body) of every POST.
    posts: Vec<(String, String, Vec<u8>)>,
}

async fn start_hook(state: Arc<Mutex<Hook>>) -> SocketAddr {
    use axum::http::HeaderMap;
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            |axum::extract::State(st): axum::extract::State<Arc<Mutex<Hook>>>,
             headers: HeaderMap,
             body: axum::body::Bytes| async move {
                let n = {
                    let mut s = st.lock().unwrap();
                    let h = |k: &str| {
                        headers
                            .get(k)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string()
                    };
                    s.posts
                        .push((h("x-self-id"), h("x-signature"), body.to_vec()));
                    s.posts.len()
                };
                match n {
                    // First a failure, then a hang past the account's timeout, then a reply.
                    1 => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, String::new()),
                    2 => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        (axum::http::StatusCode::OK, String::new())
                    }
                    _ => (
                        axum::http::StatusCode::OK,
                        json!({"reply": "pong [CQ:face,id=14]", "auto_escape": false}).to_string(),
                    ),
                }
            },
        ),
    );
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(l, app.with_state(state)).await.unwrap();
    });
    addr
}

fn hmac_sha1(key: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut m = Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes()).unwrap();
    m.update(body);
    let b = m.finalize().into_bytes();
    format!(
        "sha1={}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onebot_transports_ids_delivery_and_bad_input() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let rev = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rev_addr = rev.local_addr().unwrap();
    let hook = Arc::new(Mutex::new(Hook::default()));
    let hook_addr = start_hook(hook.clone()).await;
    write_account(
        dir.path(),
        "a",
        &account_toml(30001, "access_token = \"tok-a\"\nheartbeat_secs = 1"),
    );
    write_account(
        dir.path(),
        "b",
        &account_toml(
            30002,
            &format!(
                "ws_reverse_url = \"ws://{rev_addr}/onebot/v11/ws\"\nws_reverse_reconnect_ms = 200"
            ),
        ),
    );
    write_account(
        dir.path(),
        "c",
        &account_toml(
            30003,
            &format!(
                "http_post_url = \"http://{hook_addr}/hook\"\nhttp_post_timeout_ms = 1000\nsecret = \"sek\"\npost_message_format = \"array\""
            ),
        ),
    );
    // The fleet-wide token applies to b (which sets none); a's own key wins.
    let fleet_token = dir.path().join("onebot-token");
    std::fs::write(&fleet_token, "tok-fleet\n").unwrap();
    let token_arg = fleet_token.to_str().unwrap().to_string();
    let extra = ["--onebot-token-file", token_arg.as_str()];
    let mut f = start_fleet(dir.path(), &sim, &extra);
    login(&f, &sim, "a", 30001).await;
    login(&f, &sim, "b", 30002).await;
    login(&f, &sim, "c", 30003).await;
    let base = f.api.replace("http://", "ws://");

    // ---- a: forward WebSocket, access token -------------------------------------------
    let r = reqwest::get(format!("{}/onebot/v11/a/get_status", f.api))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = reqwest::get(format!("{}/onebot/v11/a/get_status?access_token=no", f.api))
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        connect(&format!("{base}/onebot/v11/a/ws"), None)
            .await
            .err(),
        Some(401)
    );
    assert_eq!(
        connect(&format!("{base}/onebot/v11/a/ws"), Some("tok-fleet"))
            .await
            .err(),
        Some(403)
    );
    let mut ws = connect(&format!("{base}/onebot/v11/a/ws"), Some("tok-a"))
        .await
        .unwrap();
    let first = next_json(&mut ws, "lifecycle").await;
    assert_eq!(first["meta_event_type"], "lifecycle", "{first}");
    assert_eq!(first["self_id"], 30001);
    // Contacts are loaded shortly after login.
    let mut evs = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let friends = loop {
        let v = api(
            &mut ws,
            &mut evs,
            json!({"action":"get_friend_list","echo":"fl"}),
        )
        .await;
        if v["retcode"] == 0 && v["data"].as_array().is_some_and(|a| !a.is_empty()) {
            break v["data"].clone();
        }
        assert!(std::time::Instant::now() < deadline, "a's friend list: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    inject(
        &sim,
        json!({"qq": 30001, "kind": "buddy", "text": "ping [a]&b"}),
    )
    .await;
    let ev = loop {
        let v = match evs.pop() {
            Some(v) => v,
            None => next_json(&mut ws, "a's message event").await,
        };
        if v["post_type"] == "message" {
            break v;
        }
    };
    assert_eq!(ev["message_type"], "private", "{ev}");
    assert_eq!(ev["sub_type"], "friend");
    assert_eq!(ev["self_id"], 30001);
    assert_eq!(ev["raw_message"], "ping &#91;a&#93;&amp;b");
    assert!(ev["event_id"].is_string(), "{ev}");
    let uid = ev["user_id"].as_i64().expect("int64 user_id");
    assert!(
        friends
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["user_id"] == uid),
        "the sender is in the friend list with the same id: {friends}"
    );
    let v = api(
        &mut ws,
        &mut evs,
        json!({"action":"send_private_msg","params":{"user_id":uid,"message":"pong [CQ:face,id=14]"},"echo":{"n":1}}),
    )
    .await;
    assert_eq!(v["status"], "ok", "{v}");
    assert!(v["data"]["message_id"].is_i64());
    eventually(
        "a's answer in /sim/sent",
        Duration::from_secs(15),
        || async {
            sent(&sim, 30001)
                .await
                .iter()
                .any(|m| {
                    m["kind"] == "buddy" && m["text"].as_str().unwrap_or("").starts_with("pong")
                })
                .then_some(())
        },
    )
    .await;
    // The outcome comes back as an event.
    let outcome = loop {
        let v = match evs.pop() {
            Some(v) => v,
            None => next_json(&mut ws, "the send outcome").await,
        };
        if v["notice_type"] == "qqfleet_send_outcome" {
            break v;
        }
    };
    assert_eq!(outcome["message_id"], v["data"]["message_id"]);
    assert_eq!(outcome["result"], "delivered");
    let v = api(
        &mut ws,
        &mut evs,
        json!({"action":"get_login_info","echo":1}),
    )
    .await;
    assert_eq!(v["data"]["user_id"], 30001);
    // Bad input: unknown action, wrong types, malformed JSON, an image.
    let v = api(
        &mut ws,
        &mut evs,
        json!({"action":"no_such_thing","echo":2}),
    )
    .await;
    assert_eq!(
        (v["status"].as_str(), v["retcode"].as_i64()),
        (Some("failed"), Some(1404))
    );
    let v = api(
        &mut ws,
        &mut evs,
        json!({"action":"send_private_msg","params":{"user_id":{"x":1},"message":"x"},"echo":3}),
    )
    .await;
    assert_eq!(v["retcode"], 1400, "{v}");
    let v = api(
        &mut ws,
        &mut evs,
        json!({"action":"send_private_msg","params":{"user_id":uid,"message":[{"type":"image","data":{"file":"a.png"}}]},"echo":4}),
    )
    .await;
    assert_eq!(v["status"], "failed");
    assert!(v["message"].as_str().unwrap().contains("image"), "{v}");
    ws.send(Message::Text("{not json".into())).await.unwrap();
    let v = next_json(&mut ws, "the malformed-JSON answer").await;
    assert_eq!(v["retcode"], 1400, "{v}");
    let v = api(
        &mut ws,
        &mut evs,
        json!({"action":"send_msg_async","params":{"user_id":uid,"message":"later"},"echo":5}),
    )
    .await;
    assert_eq!(v["retcode"], 1, "{v}");
    // A frame over 1 MiB closes the connection; the account keeps working.
    let big = format!(
        "{{\"action\":\"get_status\",\"params\":{{\"x\":\"{}\"}}}}",
        "x".repeat(2 << 20)
    );
    let _ = ws.send(Message::Text(big.into())).await;
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return true,
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(closed, Ok(true), "a 2 MiB frame closes the connection");

    // ---- b: reverse WebSocket with the fleet-wide token --------------------------------
    let (mut rws, h) = accept_reverse(&rev).await;
    assert_eq!(header(&h, "x-self-id"), Some("30002"));
    assert_eq!(header(&h, "x-client-role"), Some("Universal"));
    assert_eq!(header(&h, "authorization"), Some("Bearer tok-fleet"));
    let first = next_json(&mut rws, "b's lifecycle").await;
    assert_eq!(first["meta_event_type"], "lifecycle");
    inject(
        &sim,
        json!({"qq": 30002, "kind": "group", "text": "ping group"}),
    )
    .await;
    let ev = next_json(&mut rws, "b's group event").await;
    assert_eq!(ev["message_type"], "group", "{ev}");
    let gid = ev["group_id"].as_i64().unwrap();
    let mut evs = Vec::new();
    let v = api(
        &mut rws,
        &mut evs,
        json!({"action":"send_group_msg","params":{"group_id":gid,"message":"pong group"},"echo":"g"}),
    )
    .await;
    assert_eq!(v["status"], "ok", "{v}");
    eventually("b's group answer", Duration::from_secs(15), || async {
        sent(&sim, 30002)
            .await
            .iter()
            .any(|m| m["kind"] == "group" && m["text"] == "pong group")
            .then_some(())
    })
    .await;
    // The bot goes away (refused connections from now on) while messages arrive, and the
    // fleet restarts meanwhile: nothing is lost.
    drop(rws);
    drop(rev);
    inject(
        &sim,
        json!({"qq": 30002, "kind": "buddy", "text": "while down 1"}),
    )
    .await;
    inject(
        &sim,
        json!({"qq": 30002, "kind": "discu", "text": "while down 2"}),
    )
    .await;
    let status_b = format!("{}/onebot/v11/b/get_status?access_token=tok-fleet", f.api);
    eventually("both queued", Duration::from_secs(15), || async {
        let v: Value = reqwest::get(&status_b).await.ok()?.json().await.ok()?;
        (v["data"]["stat"]["events_queued"].as_u64()? >= 2).then_some(())
    })
    .await;

    // ---- c: webhook (500, then a hang, then a quick reply), HTTP API ---------------------
    inject(
        &sim,
        json!({"qq": 30003, "kind": "buddy", "text": "ping c"}),
    )
    .await;
    eventually(
        "c's quick reply in /sim/sent",
        Duration::from_secs(20),
        || async {
            sent(&sim, 30003)
                .await
                .iter()
                .any(|m| m["text"] == "pong [face:14]" && m["kind"] == "buddy")
                .then_some(())
        },
    )
    .await;
    {
        let h = hook.lock().unwrap();
        assert!(h.posts.len() >= 3, "retried after a 500 and a hang");
        let bodies: Vec<Value> = h.posts[..3]
            .iter()
            .map(|(_, _, b)| serde_json::from_slice(b).unwrap())
            .collect();
        assert_eq!(
            bodies[0]["event_id"], bodies[2]["event_id"],
            "the same event again"
        );
        assert_eq!(bodies[0]["message"][0]["type"], "text", "array format");
        for (id, sig, body) in &h.posts {
            assert_eq!(id, "30003");
            assert_eq!(sig, &hmac_sha1("sek", body));
        }
    }
    // c sets no token either: the fleet-wide one applies.
    let mut th = reqwest::header::HeaderMap::new();
    th.insert("Authorization", "Bearer tok-fleet".parse().unwrap());
    let hc = reqwest::Client::builder()
        .default_headers(th)
        .build()
        .unwrap();
    let r = hc
        .post(format!("{}/onebot/v11/c/get_login_info", f.api))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"]["user_id"], 30003, "{v}");
    let v: Value = hc
        .get(format!("{}/onebot/v11/c/get_friend_list", f.api))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cuid = v["data"][0]["user_id"].as_i64().unwrap();
    let r = hc
        .post(format!("{}/onebot/v11/c/send_private_msg", f.api))
        .form(&[
            ("user_id", cuid.to_string()),
            ("message", "form &#91;ok&#93;".into()),
        ])
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "ok", "{v}");
    eventually("the form send", Duration::from_secs(15), || async {
        sent(&sim, 30003)
            .await
            .iter()
            .any(|m| m["text"] == "form [ok]")
            .then_some(())
    })
    .await;
    // A long message goes out in pieces by the 720-byte rule.
    let long = "y".repeat(2000);
    let r = hc
        .post(format!("{}/onebot/v11/c/send_private_msg", f.api))
        .json(&json!({"user_id": cuid, "message": long, "auto_escape": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "ok");
    eventually(
        "the long message in pieces",
        Duration::from_secs(15),
        || async {
            let pieces: Vec<String> = sent(&sim, 30003)
                .await
                .iter()
                .filter_map(|m| m["text"].as_str().map(String::from))
                .filter(|t| t.starts_with('y'))
                .collect();
            (pieces.concat() == long && pieces.len() >= 3 && pieces.iter().all(|p| p.len() <= 720))
                .then_some(())
        },
    )
    .await;
    let r = hc
        .post(format!("{}/onebot/v11/c/get_status", f.api))
        .header("Content-Type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["retcode"], 1400);
    let r = hc
        .get(format!("{}/onebot/v11/c/fly", f.api))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["retcode"], 1404);
    let r = hc
        .get(format!(
            "{}/onebot/v11/c/get_group_info?group_id=abc",
            f.api
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["retcode"], 1400);

    // ---- restart: queued events survive, ids stay ---------------------------------------
    sigterm(&f.child);
    assert!(wait_exit(&mut f.child, Duration::from_secs(10)).is_some());
    drop(f);
    let f = start_fleet(dir.path(), &sim, &extra);
    wait_state(&f, "b", "online", Duration::from_secs(20)).await;
    wait_state(&f, "a", "online", Duration::from_secs(20)).await;
    let rev = TcpListener::bind(rev_addr).await.unwrap();
    let (mut rws, _) = accept_reverse(&rev).await;
    assert_eq!(
        next_json(&mut rws, "lifecycle").await["meta_event_type"],
        "lifecycle"
    );
    // (The outcome of the group answer may come first: it may have been queued after the
    // drop.)
    let mut msgs = Vec::new();
    while msgs.len() < 2 {
        let v = next_json(&mut rws, "the queued events").await;
        if v["post_type"] == "message" {
            msgs.push(v);
        } else {
            assert_eq!(v["notice_type"], "qqfleet_send_outcome", "{v}");
        }
    }
    let (e1, e2) = (&msgs[0], &msgs[1]);
    assert_eq!(e1["raw_message"], "while down 1", "{e1}");
    assert_eq!(e2["raw_message"], "while down 2", "{e2}");
    assert_eq!(e2["message_type"], "discuss");
    let base = f.api.replace("http://", "ws://");
    let mut ws = connect(
        &format!("{base}/onebot/v11/a/ws/event?access_token=tok-a"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        next_json(&mut ws, "lifecycle").await["meta_event_type"],
        "lifecycle"
    );
    inject(&sim, json!({"qq": 30001, "kind": "buddy", "text": "again"})).await;
    let ev = loop {
        let v = next_json(&mut ws, "a's message after the restart").await;
        if v["post_type"] == "message" {
            break v;
        }
    };
    assert_eq!(ev["raw_message"], "again");
    assert_eq!(
        ev["user_id"], uid,
        "the same friend keeps its id in a new process"
    );
    let m = reqwest::get(format!("{}/metrics", f.api))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("qqfleet_onebot_events_delivered_total{transport=\"ws\"}"),
        "{m}"
    );
}

/// Peers that misbehave: a reverse WebSocket server that refuses every handshake (403), then
/// accepts; a forward client that sends API calls and never reads the answers. Reconnects
/// are paced, the stuck connection is closed, events wait, and the account keeps polling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onebot_refusing_and_stuck_peers() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let rev = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rev_addr = rev.local_addr().unwrap();
    write_account(
        dir.path(),
        "d",
        &account_toml(
            30011,
            &format!("ws_reverse_url = \"ws://{rev_addr}/\"\nws_reverse_reconnect_ms = 300"),
        ),
    );
    write_account(dir.path(), "e", &account_toml(30012, ""));
    let f = start_fleet(dir.path(), &sim, &[]);
    login(&f, &sim, "d", 30011).await;
    login(&f, &sim, "e", 30012).await;
    // Refuse every handshake for 3 s, counting the attempts.
    let attempts = tokio::time::timeout(Duration::from_secs(3), async {
        let mut n = 0u32;
        loop {
            let (mut tcp, _) = rev.accept().await.unwrap();
            n += 1;
            let mut buf = [0u8; 4096];
            let _ = tcp.read(&mut buf).await;
            let _ = tcp
                .write_all(
                    b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
            if n > 50 {
                return n;
            }
        }
    })
    .await;
    assert!(attempts.is_err(), "reconnects are paced, not a hot loop");
    inject(
        &sim,
        json!({"qq": 30011, "kind": "buddy", "text": "wait for me"}),
    )
    .await;
    let log = || std::fs::read_to_string(&f.stderr).unwrap_or_default();
    eventually("refusals logged", Duration::from_secs(10), || async {
        let t = log();
        (t.matches("reverse WebSocket connect failed").count() >= 2).then_some(())
    })
    .await;
    let fails = log().matches("reverse WebSocket connect failed").count();
    assert!(fails <= 12, "{fails} attempts in ~3 s: the backoff doubles");
    // Now it accepts: the waiting event arrives.
    let (mut rws, _) = accept_reverse(&rev).await;
    assert_eq!(
        next_json(&mut rws, "lifecycle").await["meta_event_type"],
        "lifecycle"
    );
    let ev = next_json(&mut rws, "the waiting event").await;
    assert_eq!(ev["raw_message"], "wait for me");

    // e: a client that calls the API without ever reading the answers (raw TCP: after the
    // handshake it only writes masked frames, so nothing below it reads either).
    let addr = f.api.trim_start_matches("http://").to_string();
    let mut raw = TcpStream::connect(&addr).await.unwrap();
    raw.write_all(
        format!(
            "GET /onebot/v11/e/ws/api HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        raw.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let flood = tokio::spawn(async move {
        // Each answer carries the 512 KiB echo back: the socket buffers fill after a few dozen.
        let body = json!({"action":"get_status","echo":"x".repeat(512 << 10)}).to_string();
        let mut frame = vec![0x81u8, 0x80 | 127];
        frame.extend_from_slice(&(body.len() as u64).to_be_bytes());
        frame.extend_from_slice(&[0, 0, 0, 0]); // a zero mask leaves the payload as is
        frame.extend_from_slice(body.as_bytes());
        for _ in 0..400 {
            let w = tokio::time::timeout(Duration::from_secs(20), raw.write_all(&frame)).await;
            if !matches!(w, Ok(Ok(()))) {
                return raw;
            }
        }
        raw
    });
    // Meanwhile e keeps polling and another client gets its events.
    let base = f.api.replace("http://", "ws://");
    let mut good = connect(&format!("{base}/onebot/v11/e/ws/event"), None)
        .await
        .unwrap();
    assert_eq!(
        next_json(&mut good, "lifecycle").await["meta_event_type"],
        "lifecycle"
    );
    inject(
        &sim,
        json!({"qq": 30012, "kind": "buddy", "text": "still here"}),
    )
    .await;
    let ev = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let v = next_json(&mut good, "e's event beside the stuck client").await;
            if v["post_type"] == "message" {
                return v;
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        let _ = std::fs::copy(&f.stderr, "/tmp/onebot_stuck.log");
        panic!("no event beside the stuck client (log in /tmp/onebot_stuck.log)")
    });
    assert_eq!(ev["raw_message"], "still here");
    // The stuck connection is closed by the fleet (its writer could not write for 10 s).
    eventually(
        "the fleet closed the stuck connection",
        Duration::from_secs(45),
        || async {
            log()
                .contains("the peer did not read for 10 s")
                .then_some(())
        },
    )
    .await;
    flood.abort();
    assert_eq!(state_of(&f, "e").await.as_deref(), Some("online"));
    // e stops being a bot: its OneBot endpoints go away with it.
    write_account(
        dir.path(),
        "e",
        "qq = 30012\nhandler = \"echo\"\n[supervision]\nqr_check_secs = 1\n",
    );
    let status_e = format!("{}/onebot/v11/e/get_status", f.api);
    eventually(
        "e's OneBot API removed",
        Duration::from_secs(20),
        || async {
            let r = reqwest::get(&status_e).await.ok()?;
            (r.status() == 404).then_some(())
        },
    )
    .await;
}
