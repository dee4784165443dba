//! Secrets never reach the logs. The recording proxy learns every secret value a server hands
//! out (cookies, ptwebqq, vfwebqq, psessionid, skey) by sitting between the client and the
//! server, so a test can grep a run's logs for the real values.

mod metrics_harness;

use metrics_harness::{http, RecordingProxy};

/// A stand-in upstream with the shapes of the WebQQ answers that carry secrets.
fn upstream() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let me = addr.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let app = axum::Router::new()
                .route(
                    "/check_sig",
                    axum::routing::get(move || async move {
                        axum::http::Response::builder()
                            .status(302)
                            .header("set-cookie", "skey=@Zx81kPq0a; Path=/; Domain=qq.com")
                            .header("set-cookie", "ptwebqq=7f3c9e11aa22bb33; Path=/")
                            .header("location", format!("http://{me}/proxy.html"))
                            .body(axum::body::Body::empty())
                            .unwrap()
                    }),
                )
                .route(
                    "/login2",
                    axum::routing::post(|body: String| async move {
                        assert!(body.contains("r="), "body forwarded: {body}");
                        r#"{"retcode":0,"result":{"uin":1,"psessionid":"8368046764001d636f6e","vfwebqq":"ac3000e2378f8cc6"}}"#
                    }),
                );
            axum::serve(listener, app).await.unwrap();
        });
    });
    addr
}

#[test]
fn the_recording_proxy_forwards_and_records_every_secret() {
    let up = upstream();
    let proxy = RecordingProxy::start(&up);
    let r = http("GET", &proxy.addr, "/check_sig?ptsigx=1", None).unwrap();
    assert_eq!(r.status, 302);
    assert!(
        r.head
            .contains(&format!("http://{}/proxy.html", proxy.addr)),
        "redirect points back into the proxy: {}",
        r.head
    );
    let r = http("POST", &proxy.addr, "/login2", Some("r=%7B%7D")).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.contains("psessionid"));
    let secrets: Vec<String> = proxy.secrets().into_values().collect();
    for want in [
        "@Zx81kPq0a",
        "7f3c9e11aa22bb33",
        "8368046764001d636f6e",
        "ac3000e2378f8cc6",
    ] {
        assert!(
            secrets.iter().any(|s| s == want),
            "{want} not recorded: {secrets:?}"
        );
    }
}
