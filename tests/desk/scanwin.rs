//! The scan window end to end: an account whose login is forecast to die outside its
//! `[scan] window` asks for a renewal scan at the window's opening (both clocks advanced),
//! keeps serving on the old session while the code waits, switches over after the scan, and
//! no message is handled or answered twice or lost across the switch; it is never `stopped`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;

const QQ: u64 = 60001;

async fn inject(sim: &Sim, text: &str) {
    let r = reqwest::Client::new()
        .post(format!("{}/sim/inject", sim.base))
        .json(&json!({"qq": QQ, "kind": "buddy", "text": text}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "inject {text}: {}",
        r.text().await.unwrap()
    );
}

async fn sent(sim: &Sim) -> Vec<Value> {
    reqwest::Client::new()
        .get(format!("{}/sim/sent?qq={QQ}", sim.base))
        .send()
        .await
        .unwrap()
        .json::<Vec<Value>>()
        .await
        .unwrap()
}

/// The replies carrying `text` (the echo handler answers with the same text).
async fn replies(sim: &Sim, text: &str) -> Vec<Value> {
    sent(sim)
        .await
        .into_iter()
        .filter(|m| m["text"] == text)
        .collect()
}

async fn answered(sim: &Sim, text: &str) {
    eventually(
        &format!("a reply to {text}"),
        Duration::from_secs(20),
        || async { (!replies(sim, text).await.is_empty()).then_some(()) },
    )
    .await;
}

fn hhmm(min: i64) -> String {
    let m = min.rem_euclid(1440);
    format!("{:02}:{:02}", m / 60, m % 60)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_scan_inside_the_window_switches_without_loss() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    // The fleet runs in UTC; the window is placed from now: it closes an hour before the
    // time of day at which the login made now dies (48 h later), and opens three hours
    // before. The fleet-wide window contains the expiry (no renewal): the account's wins.
    let now_min = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60) as i64;
    let window = format!("{}-{}", hhmm(now_min - 180), hhmm(now_min - 60));
    let fleet_window = format!("{}-{}", hhmm(now_min - 30), hhmm(now_min + 30));
    write_account(
        dir.path(),
        "night",
        &format!("{}[scan]\nwindow = \"{window}\"\n", account_toml(QQ)),
    );
    let offset = dir.path().join("clock-offset");
    std::fs::write(&offset, "0").unwrap();
    let f = start_fleet_env(
        dir.path(),
        &sim,
        &["--scan-window", &fleet_window],
        &[
            ("TZ", "UTC"),
            ("QQFLEET_DEBUG_HOOKS", "1"),
            ("QQFLEET_DEBUG_CLOCK_OFFSET", offset.to_str().unwrap()),
        ],
    );

    let a = wait_state(&f, "night", "awaiting_scan").await;
    scan(&sim, a["qr"]["url"].as_str().unwrap(), QQ).await;
    let a = wait_state(&f, "night", "online").await;
    let first_login = a["session"]["logged_in_at"].clone();
    let renew_at = a["session"]["renew_at"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        renew_at.contains(&format!("T{}:00", hhmm(now_min - 180))),
        "renewal at the window's opening: {a}"
    );
    assert_eq!(a["renewing"], false);
    inject(&sim, "before the window").await;
    answered(&sim, "before the window").await;

    // 45.5 h later (fleet and simulator alike): inside the window's last opening before
    // the expiry, 2.5 h before the login dies.
    let jump = 45 * 3600 + 1800;
    std::fs::write(&offset, jump.to_string()).unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/sim/clock/advance", sim.base))
        .json(&json!({"seconds": jump}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let a = eventually("a renewal QR", Duration::from_secs(20), || async {
        account(&f, "night")
            .await
            .filter(|a| a["renewing"] == true && a["qr"]["url"].is_string())
    })
    .await;
    assert_eq!(a["state"], "online", "the old session still serves: {a}");
    // Served by the old session while the code waits.
    inject(&sim, "while the code waits").await;
    answered(&sim, "while the code waits").await;
    let before_switch = sent(&sim).await;
    let old_max_msg_id = before_switch
        .iter()
        .filter_map(|m| m["msg_id"].as_u64())
        .max()
        .unwrap();

    inject(&sim, "just before the scan").await;
    scan(&sim, a["qr"]["url"].as_str().unwrap(), QQ).await;
    for t in ["across the switch 1", "across the switch 2"] {
        inject(&sim, t).await;
    }
    let a = eventually("the switch", Duration::from_secs(20), || async {
        account(&f, "night").await.filter(|a| {
            a["state"] == "online"
                && a["renewing"] == false
                && a["session"]["logged_in_at"] != first_login
        })
    })
    .await;
    assert!(a["qr"].is_null(), "no code left once switched: {a}");
    inject(&sim, "after the switch").await;

    let texts = [
        "before the window",
        "while the code waits",
        "just before the scan",
        "across the switch 1",
        "across the switch 2",
        "after the switch",
    ];
    for t in texts {
        answered(&sim, t).await;
    }
    // Each message handled once and answered once; ids after the switch continue above.
    let all = sent(&sim).await;
    for t in texts {
        let n = all.iter().filter(|m| m["text"] == t).count();
        assert_eq!(n, 1, "{t} answered {n} times: {all:?}");
    }
    let mut ids: Vec<u64> = all.iter().filter_map(|m| m["msg_id"].as_u64()).collect();
    let after = replies(&sim, "after the switch").await;
    assert!(
        after[0]["msg_id"].as_u64().unwrap() > old_max_msg_id,
        "{all:?}"
    );
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all.len(), "a msg_id used twice: {all:?}");

    let a = account(&f, "night").await.unwrap();
    let states: Vec<&str> = a["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["state"].as_str())
        .collect();
    assert!(!states.contains(&"stopped"), "{states:?}");
    let waits = states.iter().filter(|s| **s == "awaiting_scan").count();
    assert_eq!(
        waits, 1,
        "only the first login waited in awaiting_scan: {states:?}"
    );
}
