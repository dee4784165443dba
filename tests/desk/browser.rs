//! The desk in a real headless Chromium (Debian's `chromium`, driven over WebDriver by
//! `chromedriver`): the real `qqfleet run` binary against the real simulator, on 127.0.0.1.
//!
//! What an operator checks: every account has its row; an account waiting for a scan shows a
//! QR code that decodes (as rendered by the browser) to the simulator's URL; scanning it turns
//! the row `online` without a reload; no token, no data. Screenshots are kept under
//! `target/desk-artifacts/`.

use std::time::Duration;

use serde_json::Value;

use crate::common::*;

const ACCOUNTS: [(&str, u64); 3] = [("alpha", 30001), ("bravo", 30002), ("charlie", 30003)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desk_shows_every_account_and_a_scan_turns_its_row_online_live() {
    let dir = tempfile::tempdir().unwrap();
    for (id, qq) in ACCOUNTS {
        write_account(dir.path(), id, &account_toml(qq));
    }
    let sim = sim().await;
    let fleet = start_fleet(dir.path(), &sim, &[]);
    let mut urls = Vec::new();
    for (id, _) in ACCOUNTS {
        let a = wait_state(&fleet, id, "awaiting_scan").await;
        urls.push(a["qr"]["url"].as_str().expect("qr.url").to_string());
    }

    // Without the token: 401 and no data, on the page and on the API.
    let bare = reqwest::Client::new();
    for path in [
        "/desk",
        "/desk?token=wrong-token-wrong-token",
        "/api/events",
        "/api/accounts",
    ] {
        let r = bare
            .get(format!("{}{path}", fleet.api))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
        let body = r.text().await.unwrap();
        for (id, qq) in ACCOUNTS {
            assert!(
                !body.contains(id) && !body.contains(&qq.to_string()),
                "{path}: {body}"
            );
        }
    }

    let browser = Browser::start(1280, 1000).await;
    // The browser without the cookie sees the 401 page and no account.
    browser.goto(&format!("{}/desk", fleet.api)).await;
    let text = browser.eval("return document.body.innerText").await;
    assert!(
        text.as_str()
            .unwrap()
            .contains("missing or wrong admin token"),
        "{text}"
    );
    assert!(!text.as_str().unwrap().contains("alpha"));

    // The token once in the URL: redirected to /desk, the token gone from the address.
    browser
        .goto(&format!("{}/desk?token={ADMIN_TOKEN}", fleet.api))
        .await;
    let href = browser.eval("return location.href").await;
    assert_eq!(href, format!("{}/desk", fleet.api));
    let rows = eventually("three rows", Duration::from_secs(15), || async {
        let v = browser
            .eval("return [...document.querySelectorAll('#rows tr')].map(r => [r.dataset.account, r.dataset.state])")
            .await;
        (v.as_array().map_or(0, |a| a.len()) == 3).then_some(v)
    })
    .await;
    for (id, _) in ACCOUNTS {
        assert!(
            rows.as_array()
                .unwrap()
                .iter()
                .any(|r| r[0] == id && r[1] == "awaiting_scan"),
            "{id} in {rows}"
        );
    }
    // No secret reaches the page: the cookie is HttpOnly, the token appears nowhere.
    let page = browser
        .eval("return document.cookie + '\\n' + document.documentElement.outerHTML")
        .await;
    assert!(!page.as_str().unwrap().contains(ADMIN_TOKEN));

    // Each waiting account's QR, as the browser renders it, decodes to the simulator's URL.
    for ((id, _), url) in ACCOUNTS.iter().zip(&urls) {
        let sel = format!(".scan[data-account=\"{id}\"] img");
        let decoded = eventually(&format!("{id}'s QR decodes"), Duration::from_secs(10), || {
            let sel = sel.clone();
            let browser = &browser;
            async move {
                let loaded = browser
                    .eval(&format!(
                        "const i = document.querySelector('{}'); return !!i && i.complete && i.naturalWidth > 0",
                        sel.replace('\'', "\\'")
                    ))
                    .await;
                if loaded != Value::Bool(true) {
                    return None;
                }
                decode_qr(&browser.element_screenshot(&sel).await?)
            }
        })
        .await;
        assert_eq!(&decoded, url, "{id}");
        assert!(decoded.starts_with("https://txz.qq.com/p?k="), "{decoded}");
    }
    let countdown = browser
        .eval("return document.querySelector('.scan .countdown').textContent")
        .await;
    assert!(
        countdown.as_str().unwrap().starts_with("expires in "),
        "{countdown}"
    );
    let shot = browser.screenshot().await;
    std::fs::write(artifacts().join("desk-awaiting-scan.png"), &shot).unwrap();

    // Scan alpha through the simulator: its row turns online with no reload.
    browser
        .eval("window.__sameDocument = 42; return null")
        .await;
    scan(&sim, &urls[0], ACCOUNTS[0].1).await;
    eventually("alpha online on the page", Duration::from_secs(20), || async {
        let v = browser
            .eval("return document.querySelector('#rows tr[data-account=\"alpha\"]')?.dataset.state ?? null")
            .await;
        (v == "online").then_some(())
    })
    .await;
    assert_eq!(
        browser.eval("return window.__sameDocument ?? null").await,
        42,
        "the page was not reloaded"
    );
    let alpha_qr = browser
        .eval("return document.querySelectorAll('.scan[data-account=\"alpha\"]').length")
        .await;
    assert_eq!(alpha_qr, 0, "alpha's QR code is gone once it is online");
    let forecast = browser
        .eval("return document.querySelector('#rows tr[data-account=\"alpha\"]').innerText")
        .await;
    assert!(
        forecast
            .as_str()
            .unwrap()
            .contains("needs a scan in about 48 h"),
        "{forecast}"
    );
    let shot = browser.screenshot().await;
    std::fs::write(artifacts().join("desk-after-scan.png"), &shot).unwrap();

    // The API agrees: alpha has a session forecast 48 h after its login and no QR; bravo
    // still has its QR and no session; the forecast gauge is alpha's alone.
    let alpha = account(&fleet, "alpha").await.unwrap();
    assert!(alpha.get("qr").is_none(), "{alpha}");
    let session = &alpha["session"];
    let t = |v: &Value| chrono_secs(v.as_str().unwrap_or_else(|| panic!("a time in {alpha}")));
    assert_eq!(
        t(&session["expires_at_estimate"]) - t(&session["logged_in_at"]),
        48 * 3600
    );
    let bravo = account(&fleet, "bravo").await.unwrap();
    assert!(
        bravo.get("session").is_none() && bravo["qr"]["url"] == urls[1],
        "{bravo}"
    );
    let metrics = reqwest::get(format!("{}/metrics", fleet.api))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let forecasts: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("qqfleet_session_expiry_forecast_timestamp_seconds{"))
        .collect();
    assert_eq!(forecasts.len(), 1, "{forecasts:?}");
    assert!(forecasts[0].contains("account=\"alpha\""), "{forecasts:?}");
    let value: i64 = forecasts[0].rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(value, t(&session["expires_at_estimate"]));

    // An action from the page: restart bravo, confirmed in the page's dialog. The restart
    // asks for a new scan, so bravo's code changes.
    browser
        .eval("document.querySelector('#rows tr[data-account=\"bravo\"] td[data-label=\"actions\"] button').click(); return null")
        .await;
    let question = browser
        .eval("const d = document.getElementById('confirm'); return d.open ? document.getElementById('confirm-text').textContent : null")
        .await;
    assert_eq!(question, "Restart bravo?");
    browser
        .eval("document.getElementById('confirm-yes').click(); return null")
        .await;
    eventually(
        "bravo restarted with a new code",
        Duration::from_secs(20),
        || async {
            let b = account(&fleet, "bravo").await?;
            (b["state"] == "awaiting_scan"
                && b["qr"]["url"].is_string()
                && b["qr"]["url"] != urls[1].as_str())
            .then_some(())
        },
    )
    .await;
    // The cookie alone does not act: a change needs the page's header too.
    let cookie = format!("qqfleet_desk={ADMIN_TOKEN}");
    let r = bare
        .post(format!("{}/api/accounts/charlie/restart", fleet.api))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = bare
        .get(format!("{}/api/accounts/charlie", fleet.api))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "reads work with the cookie");

    // A phone's width: the rows become cards (no table header), still every account.
    browser.set_size(390, 844).await;
    let layout = eventually("phone layout", Duration::from_secs(5), || async {
        let v = browser
            .eval("return [getComputedStyle(document.querySelector('thead')).display, document.querySelectorAll('#rows tr').length, document.documentElement.scrollWidth]")
            .await;
        (v[0] == "none").then_some(v)
    })
    .await;
    assert_eq!(layout[1], 3, "{layout}");
    assert!(
        layout[2].as_u64().unwrap() <= 400,
        "no sideways scrolling: {layout}"
    );
    let shot = browser.screenshot().await;
    std::fs::write(artifacts().join("desk-phone.png"), &shot).unwrap();
}

/// Unix seconds of an RFC 3339 UTC time as the API writes it (`2026-11-30T11:17:19.000Z`).
fn chrono_secs(t: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| t[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let (hh, mm, ss) = (n(11..13), n(14..16), n(17..19));
    // days from civil (proleptic Gregorian)
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + hh * 3600 + mm * 60 + ss
}
