//! The desk in a real headless Chromium (Debian's `chromium`, driven over WebDriver by
//! `chromedriver`): the real `qqfleet run` binary against the real simulator, on 127.0.0.1.
//!
//! What an operator checks: every account has its row; an account waiting for a scan shows a
//! QR code that decodes (as rendered by the browser) to the simulator's URL; scanning it turns
//! the row `online` without a reload; no token, no data. Screenshots are kept under
//! `target/desk-artifacts/`.

use std::time::Duration;

use serde_json::Value;

mod desk_common;
use desk_common::*;

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
