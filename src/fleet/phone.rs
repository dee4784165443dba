//! The demo "phone" of `qqfleet run --sim`: scans each account's QR code as that account's
//! QQ number a few seconds after it appears, through the simulator's control API
//! (`POST /sim/qr/scan`). Only ever used with the in-process simulator.

use std::collections::HashSet;
use std::time::Duration;

use super::status::StatusMap;

/// How long the "human" takes to pick up the phone.
pub const SCAN_DELAY: Duration = Duration::from_secs(3);

/// Runs until the runtime stops.
pub async fn run(status: StatusMap, sim_base: String, delay: Duration) {
    let http = reqwest::Client::new();
    let mut scanned: HashSet<String> = HashSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        // Collect first: never hold a DashMap reference across an await.
        let due: Vec<(String, String, u64)> = status
            .iter()
            .filter_map(|e| {
                let s = e.value();
                let (qrsig, at, qq) = (s.qrsig.as_ref()?, s.qr_at?, s.qq?);
                (at.elapsed() >= delay && !scanned.contains(qrsig))
                    .then(|| (s.id.clone(), qrsig.clone(), qq))
            })
            .collect();
        for (id, qrsig, qq) in due {
            let body = serde_json::json!({"qrsig": qrsig, "qq": qq, "confirm": true});
            match http
                .post(format!("{sim_base}/sim/qr/scan"))
                .json(&body)
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => {
                    tracing::info!(account = %id, qq, "demo phone scanned the QR code");
                    scanned.insert(qrsig);
                }
                Ok(r) => {
                    tracing::warn!(account = %id, status = %r.status(), "demo phone: scan refused");
                    scanned.insert(qrsig);
                }
                Err(e) => {
                    tracing::warn!(account = %id, error = %e, "demo phone: simulator unreachable")
                }
            }
        }
        if scanned.len() > 10_000 {
            scanned.clear();
        }
    }
}
