//! The QR webhook: each new QR code POSTed as JSON to a local receiver (127.0.0.1), per
//! account (`[notify] qr_webhook_url`) or fleet-wide (`qqfleet run --qr-webhook-url`), with
//! bounded retries; the webhook's URL (which may hold a secret) never reaches the log.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;

use crate::common::*;

/// Every POST the receiver got: (path, body).
type Log = Arc<Mutex<Vec<(String, Value)>>>;

async fn hook(
    State(log): State<Log>,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> StatusCode {
    let mut l = log.lock().unwrap();
    let before = l.iter().filter(|(p, _)| *p == name).count();
    l.push((name.clone(), body));
    match name.as_str() {
        // Fails the first attempt: the fleet must retry.
        "flaky" if before == 0 => StatusCode::SERVICE_UNAVAILABLE,
        "down" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::NO_CONTENT,
    }
}

async fn receiver() -> (String, Log) {
    let log: Log = Default::default();
    let app = Router::new()
        .route("/hook/{name}", post(hook))
        .with_state(log.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    (base, log)
}

fn posts(log: &Log, name: &str) -> Vec<Value> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p == name)
        .map(|(_, b)| b.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_new_qr_is_posted_with_retries_per_account_or_fleet_wide() {
    let (hooks, log) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let with_hook = |qq: u64, name: &str| {
        format!(
            "{}[notify]\nqr_webhook_url = \"{hooks}/hook/{name}?key=sekrit-in-url\"\n",
            account_toml(qq)
        )
    };
    write_account(dir.path(), "own", &with_hook(50001, "flaky"));
    write_account(dir.path(), "broken", &with_hook(50002, "down"));
    write_account(dir.path(), "fleetwide", &account_toml(50003));
    let sim = sim().await;
    let default = format!("{hooks}/hook/default");
    let fleet = start_fleet(dir.path(), &sim, &["--qr-webhook-url", &default]);

    // The account's own webhook: one failed attempt, then delivered; the body is the code.
    let own = wait_state(&fleet, "own", "awaiting_scan").await;
    let got = eventually("own's QR delivered", Duration::from_secs(10), || async {
        let p = posts(&log, "flaky");
        (p.len() >= 2).then_some(p)
    })
    .await;
    let body = &got[1];
    assert_eq!(body, &got[0], "the retry sends the same notice");
    assert_eq!(body["account"], "own");
    assert_eq!(body["qq"], 50001);
    assert_eq!(body["desk_url"], format!("{}/desk", fleet.api));
    assert_eq!(body["qr_url"], own["qr"]["url"]);
    assert_eq!(body["expires_at"], own["qr"]["expires_at"]);
    let png = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(body["png_base64"].as_str().unwrap())
            .unwrap()
    };
    assert_eq!(
        decode_qr(&png).as_deref(),
        own["qr"]["url"].as_str(),
        "the PNG is the code to scan"
    );

    // The fleet's default for an account without its own.
    let fw = wait_state(&fleet, "fleetwide", "awaiting_scan").await;
    let got = eventually(
        "fleetwide's QR delivered",
        Duration::from_secs(10),
        || async {
            let p = posts(&log, "default");
            (!p.is_empty()).then_some(p)
        },
    )
    .await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["account"], "fleetwide");
    assert_eq!(got[0]["qr_url"], fw["qr"]["url"]);
    assert!(posts(&log, "default")
        .iter()
        .all(|b| b["account"] == "fleetwide"));

    // A receiver that always fails: 4 attempts (1 + 3 retries after 1, 2, 4 s), then quiet.
    eventually(
        "4 attempts at the broken hook",
        Duration::from_secs(12),
        || async { (posts(&log, "down").len() >= 4).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(posts(&log, "down").len(), 4, "bounded retries");
    assert_eq!(posts(&log, "flaky").len(), 2, "no POST after a success");

    let stderr = std::fs::read_to_string(&fleet.stderr).unwrap();
    assert!(
        stderr.contains("QR code not delivered to the webhook"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("sekrit-in-url"),
        "the webhook URL leaked into the log"
    );
}
