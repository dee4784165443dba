//! The three simulator deviations of issue 11 (clients of the period the simulator turned
//! away where the real service did not) and the outage control API, over real HTTP on
//! 127.0.0.1:0 with the third-party-style client of `sim_common`.

mod sim_common;

use std::time::Duration;

use serde_json::{json, Value};
use sim_common::*;

/// Scans and confirms the client's current QR code as `qq` through the control API.
async fn scan(c: &Client, qq: u64) {
    let url = decode_qr(&c.ptqrshow().await);
    let token = url.split("k=").nth(1).unwrap().split('&').next().unwrap();
    let (s, v) = control(
        c,
        "POST",
        "qr/scan",
        Some(json!({"token": token, "qq": qq, "confirm": true})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
}

/// Follows a `ptuiCB('0', …, url, …)` to check_sig and keeps the cookies.
async fn follow_check_sig(c: &mut Client, args: &[String]) {
    assert_eq!(args[0], "0", "{args:?}");
    let r = c.http.get(&args[2]).send().await.unwrap();
    assert_eq!(r.status(), 302);
    c.qq = c
        .cookie("superuin")
        .unwrap()
        .trim_start_matches('o')
        .parse()
        .unwrap();
}

async fn login2(c: &mut Client, host: &str, clientid: u64) -> Value {
    let ptwebqq = c.cookie("ptwebqq").unwrap();
    let l = c
        .post_r(
            &format!("{host}/channel/login2"),
            D_REF,
            &json!({"ptwebqq": ptwebqq, "clientid": clientid, "psessionid": "", "status": "online"}),
        )
        .await;
    assert_eq!(l["retcode"], 0, "{l}");
    c.psessionid = l["result"]["psessionid"].as_str().unwrap().to_string();
    l
}

async fn poll_as(c: &Client, host: &str, clientid: u64) -> Value {
    let ptwebqq = c.cookie("ptwebqq").unwrap_or_default();
    let t = c
        .post_raw(
            &format!("{host}/channel/poll2"),
            D_REF,
            &[(
                "r",
                json!({"ptwebqq": ptwebqq, "clientid": clientid, "psessionid": c.psessionid, "key": ""})
                    .to_string(),
            )],
        )
        .await;
    serde_json::from_str(&t).unwrap_or_else(|_| panic!("not JSON: {t}"))
}

#[tokio::test]
async fn login_page_has_the_exact_aid_markup() {
    let sim = start(cfg()).await;
    let c = Client::new(&sim.base_url());
    for path in [
        "ui.ptlogin2.qq.com/cgi-bin/login?daid=164&target=self&style=16&mibao_css=m_webqq&appid=501004106",
        "xui.ptlogin2.qq.com/cgi-bin/xlogin?appid=501004106&daid=164",
    ] {
        let (s, page) = c.get_text(path, "http://w.qq.com/").await;
        assert_eq!(s, 200);
        // The pattern the clients of the period used: the exact markup, self-closing tag.
        let needle = "<input type=\"hidden\" name=\"aid\" value=\"";
        let at = page.find(needle).expect("aid input") + needle.len();
        let rest = &page[at..];
        let end = rest.find("\" />").expect("value closed by `\" />`");
        assert_eq!(&rest[..end], "501004106");
        assert!(page.contains("<input type=\"hidden\" name=\"aid\" value=\"501004106\" />"));
    }
}

#[tokio::test]
async fn channel_calls_take_the_getvfwebqq_value_in_either_order() {
    let sim = start(cfg()).await;
    let base = sim.base_url();
    for getvf_first in [false, true] {
        let qq = if getvf_first { 70_001 } else { 70_002 };
        let mut c = Client::new(&base);
        scan(&c, qq).await;
        let args = c.ptqrlogin().await;
        follow_check_sig(&mut c, &args).await;
        let ptwebqq = c.cookie("ptwebqq").unwrap();
        let (l, vf_api) = if getvf_first {
            let v = c.getvfwebqq(&ptwebqq).await;
            let l = login2(&mut c, "d1.web2.qq.com", 53999199).await;
            (l, v)
        } else {
            let l = login2(&mut c, "d1.web2.qq.com", 53999199).await;
            let v = c.getvfwebqq(&ptwebqq).await;
            (l, v)
        };
        assert_eq!(vf_api["retcode"], 0, "{vf_api}");
        let vf_api = vf_api["result"]["vfwebqq"].as_str().unwrap().to_string();
        let vf_login2 = l["result"]["vfwebqq"].as_str().unwrap().to_string();
        if !getvf_first {
            // The case that broke: getvfwebqq after login2 hands out a value login2 did not.
            assert_ne!(vf_api, vf_login2);
        }
        // The client uses getvfwebqq's value everywhere, as clients of the period did.
        c.vfwebqq = vf_api.clone();
        let b = c.online_buddies().await;
        assert_eq!(b["retcode"], 0, "order getvf_first={getvf_first}: {b}");
        let (_, contacts) = control(&c, "GET", &format!("accounts/{qq}/contacts"), None).await;
        let did = contacts["discus"][0]["did"].as_u64().unwrap();
        for vf in [&vf_api, &vf_login2] {
            let d = c
                .get_json(
                    &format!(
                        "d1.web2.qq.com/channel/get_discu_info?did={did}&vfwebqq={vf}&clientid=53999199&psessionid={}&t=1",
                        c.psessionid
                    ),
                    D_REF,
                )
                .await;
            assert_eq!(d["retcode"], 0, "{d}");
            let r = c
                .post_r(
                    "d1.web2.qq.com/channel/get_recent_list2",
                    D_REF,
                    &json!({"vfwebqq": vf, "clientid": 53999199, "psessionid": c.psessionid}),
                )
                .await;
            assert_eq!(r["retcode"], 0, "{r}");
        }
        // Any other value is still refused.
        let wrong = "0".repeat(80);
        let d = c
            .get_json(
                &format!(
                    "d1.web2.qq.com/channel/get_discu_info?did={did}&vfwebqq={wrong}&clientid=53999199&psessionid={}&t=1",
                    c.psessionid
                ),
                D_REF,
            )
            .await;
        assert_eq!(d["retcode"], 100001, "{d}");
        // And the client gets online: its poll is not 103.
        let (s, _) = control(
            &c,
            "POST",
            "inject",
            Some(json!({"qq": qq, "kind": "buddy", "text": "hi"})),
        )
        .await;
        assert_eq!(s, 200);
        let ev = c.poll_event().await;
        assert_eq!(ev["poll_type"], "message");
    }
}

#[tokio::test]
async fn early_2016_logins_poll_without_the_warm_up() {
    let sim = start(cfg()).await;
    let base = sim.base_url();
    // (ptqrtoken sent, login2 host, clientid) → whether the first poll may skip the warm-up.
    let cases = [
        (false, "d.web2.qq.com", 97_518_388u64, true),
        (true, "d.web2.qq.com", 97_518_388, false),
        (false, "d1.web2.qq.com", 97_518_388, false),
        (false, "d.web2.qq.com", 53_999_199, false),
    ];
    for (i, (with_token, host, clientid, legacy)) in cases.into_iter().enumerate() {
        let qq = 71_000 + i as u64;
        let mut c = Client::new(&base);
        scan(&c, qq).await;
        let args = if with_token {
            c.ptqrlogin().await
        } else {
            let (_, t) = c
                .get_text(
                    "ssl.ptlogin2.qq.com/ptqrlogin?webqq_type=10&remember_uin=1&login2qq=1&aid=501004106&u1=http%3A%2F%2Fw.qq.com%2Fproxy.html%3Flogin2qq%3D1%26webqq_type%3D10&ptredirect=0&ptlang=2052&daid=164&from_ui=1&pttype=1&dumy=&fp=loginerroralert&action=0-0-1234&mibao_css=m_webqq&t=undefined&g=1&js_type=0&js_ver=10143&login_sig=&pt_randsalt=0",
                    LOGIN_PAGE_REF,
                )
                .await;
            ptui_args(&t)
        };
        follow_check_sig(&mut c, &args).await;
        login2(&mut c, host, clientid).await;
        let (s, _) = control(
            &c,
            "POST",
            "inject",
            Some(json!({"qq": qq, "kind": "buddy", "text": "early"})),
        )
        .await;
        assert_eq!(s, 200);
        let v = poll_as(&c, host, clientid).await;
        if legacy {
            assert_eq!(v["retcode"], 0, "case {i}: {v}");
            assert_eq!(v["result"][0]["poll_type"], "message", "case {i}: {v}");
        } else {
            assert_eq!(
                v["retcode"], 103,
                "case {i}: the warm-up still applies: {v}"
            );
        }
    }
}

#[tokio::test]
async fn outage_fails_every_protocol_request_and_keeps_the_world() {
    let mut conf = cfg();
    conf.hold = Duration::from_secs(1);
    let sim = start(conf).await;
    let base = sim.base_url();
    let c = login(&base, 72_001).await;
    // Bad bodies are refused with a clear error.
    for bad in [
        json!({"seconds": 5}),
        json!({"seconds": 5, "mode": "drop", "http_status": 502}),
        json!({"seconds": 5, "mode": "slow"}),
        json!({"seconds": -1, "http_status": 502}),
    ] {
        let (s, v) = control(&c, "POST", "outage", Some(bad.clone())).await;
        assert_eq!(s, 400, "{bad}: {v}");
        assert!(v["error"].is_string(), "{v}");
    }
    {
        // A poll held when the outage starts fails too, at once (a dead service drops what
        // it holds), in a simulator that would otherwise hold it 30 s.
        let mut long = cfg();
        long.hold = Duration::from_secs(30);
        let sim2 = start(long).await;
        let c2 = login(&sim2.base_url(), 72_002).await;
        let ptwebqq = c2.cookie("ptwebqq").unwrap_or_default();
        let held = {
            let (http, url) = (c2.http.clone(), c2.url("d1.web2.qq.com/channel/poll2"));
            let r = json!({"ptwebqq": ptwebqq, "clientid": 53999199, "psessionid": c2.psessionid, "key": ""});
            tokio::spawn(async move {
                let t = std::time::Instant::now();
                let resp = http
                    .post(url)
                    .header("Referer", D_REF)
                    .form(&[("r", r.to_string())])
                    .send()
                    .await
                    .unwrap();
                (resp.status().as_u16(), t.elapsed())
            })
        };
        wait_pending(&c2, 1).await;
        let (s, _) = control(
            &c2,
            "POST",
            "outage",
            Some(json!({"seconds": 5, "http_status": 503})),
        )
        .await;
        assert_eq!(s, 200);
        let (status, took) = held.await.unwrap();
        assert_eq!(status, 503);
        assert!(took < Duration::from_secs(10), "{took:?}");
    }
    let (s, v) = control(
        &c,
        "POST",
        "outage",
        Some(json!({"seconds": 1.5, "http_status": 502})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (_, st) = control(&c, "GET", "stats", None).await;
    assert_eq!(st["outage"], true);
    for path in [
        "d1.web2.qq.com/channel/poll2",
        "d1.web2.qq.com/channel/login2",
        "s.web2.qq.com/api/getvfwebqq",
        "ssl.ptlogin2.qq.com/ptqrshow",
    ] {
        let r = c.http.get(c.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 502, "{path}");
    }
    // The control API keeps working, and the world is kept.
    let (s, a) = control(&c, "GET", "accounts/72001", None).await;
    assert_eq!(s, 200);
    assert_eq!(a["online"], true, "{a}");
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let (_, st) = control(&c, "GET", "stats", None).await;
    assert_eq!(st["outage"], false);
    let (s, _) = control(
        &c,
        "POST",
        "inject",
        Some(json!({"qq": 72001, "kind": "buddy", "text": "after"})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(c.poll_event().await["poll_type"], "message");

    // Mode drop: the connection is closed without an answer.
    let (s, _) = control(
        &c,
        "POST",
        "outage",
        Some(json!({"seconds": 30, "mode": "drop"})),
    )
    .await;
    assert_eq!(s, 200);
    let r = c
        .http
        .get(c.url("d1.web2.qq.com/channel/poll2"))
        .send()
        .await;
    assert!(r.is_err(), "a dropped connection, got {r:?}");

    // DELETE /sim/faults empties the queue (and ends the outage).
    for _ in 0..3 {
        let (s, _) = control(
            &c,
            "POST",
            "faults",
            Some(json!({"endpoint": "poll2", "retcode": 121, "count": 5})),
        )
        .await;
        assert_eq!(s, 200);
    }
    let r = c
        .http
        .delete(format!("{base}/sim/faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["removed"], 3, "{v}");
    let (_, q) = control(&c, "GET", "faults", None).await;
    assert_eq!(q, json!([]));
    let (_, st) = control(&c, "GET", "stats", None).await;
    assert_eq!(st["outage"], false);
    let (s, _) = control(
        &c,
        "POST",
        "inject",
        Some(json!({"qq": 72001, "kind": "buddy", "text": "again"})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(c.poll_event().await["poll_type"], "message");
}
