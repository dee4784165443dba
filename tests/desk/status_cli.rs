//! `qqfleet status` and `qqfleet qr` against a running fleet (the real binary, the real
//! simulator, 127.0.0.1): the table, `--json`, `--check` exit codes, `--watch` following the
//! server's pushes, and a QR code drawn in the terminal that is the account's own.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

fn cli(fleet: &Fleet, token: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .args(["--url", &fleet.api, "--token-file"])
        .arg(token)
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_fleet_and_check_says_whether_all_are_online() {
    let dir = tempfile::tempdir().unwrap();
    write_account(dir.path(), "alpha", &account_toml(40001));
    write_account(dir.path(), "bravo", &account_toml(40002));
    let sim = sim().await;
    let fleet = start_fleet(dir.path(), &sim, &[]);
    let token = dir.path().join("admin-token");
    let alpha = wait_state(&fleet, "alpha", "awaiting_scan").await;
    let bravo = wait_state(&fleet, "bravo", "awaiting_scan").await;

    // The table, plain when piped.
    let (code, out, err) = cli(&fleet, &token, &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains('\x1b'), "no colours when piped: {out:?}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("STATE"),
        "{out}"
    );
    for (id, qq) in [("alpha", "40001"), ("bravo", "40002")] {
        let row = lines.iter().find(|l| l.starts_with(id)).expect(id);
        assert!(row.contains(qq) && row.contains("awaiting_scan"), "{row}");
    }
    assert_eq!(*lines.last().unwrap(), "0/2 online");
    // --check: not all online → 1.
    let (code, _, _) = cli(&fleet, &token, &["status", "--check"]);
    assert_eq!(code, 1);
    // --json: the API's list.
    let (code, out, _) = cli(&fleet, &token, &["status", "--json"]);
    assert_eq!(code, 0);
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["id"], "alpha");
    assert_eq!(list[0]["qr"]["url"], alpha["qr"]["url"]);

    // `qqfleet qr alpha`: exactly the art of alpha's QR URL.
    let (code, out, err) = cli(&fleet, &token, &["qr", "alpha"]);
    assert_eq!(code, 0, "{err}");
    let url = alpha["qr"]["url"].as_str().unwrap();
    let art = qrcode::QrCode::new(url.as_bytes())
        .unwrap()
        .render::<qrcode::render::unicode::Dense1x2>()
        .quiet_zone(true)
        .build();
    assert!(out.contains("logged in as 40001"), "{out}");
    assert!(out.contains(&art), "the terminal QR is alpha's:\n{out}");

    // A wrong token: exit 2, the reason, and never the token.
    let bad = dir.path().join("bad-token");
    std::fs::write(&bad, "not-the-admin-token-at-all\n").unwrap();
    let (code, _, err) = cli(&fleet, &bad, &["status", "--check"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("401") && !err.contains("not-the-admin-token"),
        "{err}"
    );

    // --watch follows the pushes: alpha's scan shows up as a redrawn table.
    let mut watch = Command::new(BIN)
        .args(["status", "--watch", "--url", &fleet.api, "--token-file"])
        .arg(&token)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(10)).expect("a table");
    assert!(first.starts_with("ID"), "{first}");
    scan(&sim, url, 40001).await;
    let seen = (0..200).find_map(|_| {
        let l = rx.recv_timeout(Duration::from_secs(20)).ok()?;
        (l.starts_with("alpha") && l.contains("online") && l.contains("scan in 47h")).then_some(l)
    });
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(seen.is_some(), "--watch never showed alpha online");

    // qr of an account that is online: a clear refusal.
    let (code, _, err) = cli(&fleet, &token, &["qr", "alpha"]);
    assert_eq!(code, 2);
    assert!(err.contains("not waiting for a scan"), "{err}");

    // All online: --check exits 0.
    scan(&sim, bravo["qr"]["url"].as_str().unwrap(), 40002).await;
    wait_state(&fleet, "bravo", "online").await;
    let (code, out, _) = cli(&fleet, &token, &["status", "--check"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.ends_with("2/2 online\n"), "{out}");
}

/// `GET /api/events`, read as any SSE client would: one `snapshot` per account first, then
/// changes, each a JSON object with an `id` (also the SSE `id:`), the account, the fields
/// that changed and the row after the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_starts_with_a_snapshot_then_pushes_changes() {
    let dir = tempfile::tempdir().unwrap();
    write_account(dir.path(), "delta", &account_toml(40011));
    let sim = sim().await;
    let fleet = start_fleet(dir.path(), &sim, &[]);
    let delta = wait_state(&fleet, "delta", "awaiting_scan").await;
    let unauthorized = reqwest::get(format!("{}/api/events", fleet.api))
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);

    let mut resp = reqwest::Client::new()
        .get(format!("{}/api/events", fleet.api))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut buf = String::new();
    let mut events: Vec<(String, Value)> = Vec::new();
    let mut scanned = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .expect("events in time")
            .unwrap()
            .expect("the stream stays open");
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let id = block.lines().find_map(|l| l.strip_prefix("id:"));
            let data = block.lines().find_map(|l| l.strip_prefix("data:"));
            if let (Some(id), Some(data)) = (id, data) {
                events.push((
                    id.trim().to_string(),
                    serde_json::from_str(data.trim()).unwrap(),
                ));
            }
        }
        if !scanned && !events.is_empty() {
            let (sse_id, first) = &events[0];
            assert_eq!(first["kind"], "snapshot");
            assert_eq!(first["account"], "delta");
            assert_eq!(first["id"].to_string(), *sse_id);
            assert_eq!(first["status"]["state"], "awaiting_scan");
            scan(&sim, delta["qr"]["url"].as_str().unwrap(), 40011).await;
            scanned = true;
        }
        if events
            .iter()
            .any(|(_, e)| e["kind"] == "changed" && e["status"]["state"] == "online")
        {
            break;
        }
    }
    let online = events
        .iter()
        .map(|(_, e)| e)
        .find(|e| e["status"]["state"] == "online")
        .unwrap();
    assert_eq!(online["account"], "delta");
    let changed: Vec<&str> = online["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        changed.contains(&"state") && changed.contains(&"since"),
        "{online}"
    );
    let ids: Vec<u64> = events
        .iter()
        .map(|(_, e)| e["id"].as_u64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    assert!(
        events
            .iter()
            .all(|(_, e)| !e.to_string().contains("psessionid")
                && !e.to_string().contains("ptwebqq")
                && !e.to_string().contains(ADMIN_TOKEN)),
        "no secret in the stream"
    );
}
