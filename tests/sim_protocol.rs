//! The simulator over real HTTP on 127.0.0.1:0, driven the way a third-party client drove
//! the real service: plain reqwest with a cookie jar, sending what WEBQQ.md says the official
//! page sent (no qqfleet client code). Hash functions are re-implemented here from §4 so the
//! test checks the simulator independently.

mod sim_common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use qqfleet::sim::SimConfig;
use serde_json::{json, Value};
use sim_common::*;

#[test]
fn hash_p_matches_the_captured_vector() {
    assert_eq!(hash_p(294717557, ""), "005400D20047003E");
    assert_eq!(hash33("abc"), 108966);
}

#[tokio::test]
async fn qr_login_states_and_png() {
    let sim = start(cfg()).await;
    let base = sim.base_url();
    let c = Client::new(&base);
    // The login page is optional but served, with the pt_login_sig cookie.
    let (s, page) = c
        .get_text(
            "xui.ptlogin2.qq.com/cgi-bin/xlogin?appid=501004106&daid=164",
            "http://w.qq.com/",
        )
        .await;
    assert_eq!(s, 200);
    assert!(page.contains("g_login_sig"));
    assert!(c.cookie("pt_login_sig").is_some());
    assert!(c.cookie("qrsig").is_none());

    let png = c.ptqrshow().await;
    let url = decode_qr(&png);
    let qrsig = c.cookie("qrsig").unwrap();
    let (_, qrs) = control(&c, "GET", "qr", None).await;
    let entry = qrs
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["qrsig"] == qrsig.as_str())
        .unwrap()
        .clone();
    assert_eq!(entry["state"], "waiting");
    assert_eq!(entry["qq"], Value::Null);
    assert!(
        url.contains(&format!("k={}", entry["token"].as_str().unwrap())),
        "{url}"
    );

    let a = c.ptqrlogin().await;
    assert_eq!(a[0], "66");
    assert!(a[4].starts_with("二维码未失效"));
    // Wrong token: refused; missing token: the pre-2017 era, accepted.
    let (_, t) = c
        .get_text(
            "ssl.ptlogin2.qq.com/ptqrlogin?ptqrtoken=1&webqq_type=10",
            LOGIN_PAGE_REF,
        )
        .await;
    assert_ne!(ptui_args(&t)[0], "66");
    let (_, t) = c
        .get_text(
            "ssl.ptlogin2.qq.com/ptqrlogin?webqq_type=10&t=1",
            LOGIN_PAGE_REF,
        )
        .await;
    assert_eq!(ptui_args(&t)[0], "66");

    let (s, _) = control(
        &c,
        "POST",
        "qr/scan",
        Some(json!({"qrsig": qrsig, "qq": 2345678, "confirm": false})),
    )
    .await;
    assert_eq!(s, 200);
    let a = c.ptqrlogin().await;
    assert_eq!(a[0], "67");
    assert!(a[4].starts_with("二维码认证中"));
    let (s, _) = control(&c, "POST", "qr/confirm", Some(json!({"qrsig": qrsig}))).await;
    assert_eq!(s, 200);
    let a = c.ptqrlogin().await;
    assert_eq!(a.len(), 6, "no comma inside the arguments: {a:?}");
    assert_eq!(a[0], "0");
    assert_eq!(a[4], "登录成功！");
    assert!(a[2].starts_with("http://"));
    assert_eq!(c.cookie("superuin").unwrap(), "o0002345678");
    assert_eq!(c.cookie("ptwebqq").unwrap().len(), 64);
    // Used now.
    assert_eq!(c.ptqrlogin().await[0], "65");

    // A new QR invalidates the old one; a QR expires after 120 s of simulated time.
    let c2 = Client::new(&base);
    c2.ptqrshow().await;
    let old = c2.cookie("qrsig").unwrap();
    c2.ptqrshow().await;
    let (_, qrs) = control(&c2, "GET", "qr", None).await;
    let st = |sig: &str| {
        qrs.as_array()
            .unwrap()
            .iter()
            .find(|q| q["qrsig"] == sig)
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(st(&old), "expired");
    assert_eq!(c2.ptqrlogin().await[0], "66");
    control(&c2, "POST", "clock/advance", Some(json!({"seconds": 121}))).await;
    assert_eq!(c2.ptqrlogin().await[0], "65");
    let new = c2.cookie("qrsig").unwrap();
    let (s, _) = control(&c2, "POST", "qr/scan", Some(json!({"qrsig": new}))).await;
    assert_eq!(s, 409);
    let (s, _) = control(&c2, "POST", "qr/scan", Some(json!({"qrsig": "nope"}))).await;
    assert_eq!(s, 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn auto_scan_logs_in_a_fresh_account() {
    let sim = start(SimConfig {
        auto_scan: Some(Duration::from_millis(1000)),
        ..cfg()
    })
    .await;
    let mut c = Client::new(&sim.base_url());
    c.ptqrshow().await;
    assert_eq!(c.ptqrlogin().await[0], "66");
    wait_qr_confirmed(&c).await;
    c.finish_login().await;
    let (s, a) = control(&c, "GET", &format!("accounts/{}", c.qq), None).await;
    assert_eq!(s, 200);
    assert_eq!(a["logins"], 1);
    assert_eq!(a["online"], true);
    sim.shutdown().await;
}

#[tokio::test]
async fn full_life_inject_poll_send_sent() {
    let sim = start(cfg()).await;
    let base = sim.base_url();
    let probe = Client::new(&base);
    let (s, acc) = control(
        &probe,
        "POST",
        "accounts",
        Some(json!({"qq": 1234567, "nick": "bot", "friends": 3, "groups": 2, "discus": 1})),
    )
    .await;
    assert_eq!(s, 200, "{acc}");
    assert_eq!(acc["online"], false);
    let mut c = login(&base, 1234567).await;

    // Lists, in the page's order.
    let f = c.friends().await;
    assert_eq!(f["retcode"], 0, "{f}");
    assert_eq!(f["result"]["friends"].as_array().unwrap().len(), 3);
    assert!(f["result"]["marknames"].is_array());
    let ptwebqq = c.cookie("ptwebqq").unwrap();
    let g = c
        .post_r(
            "s.web2.qq.com/api/get_group_name_list_mask2",
            S_REF,
            &json!({"vfwebqq": c.vfwebqq, "hash": hash_p(c.qq, &ptwebqq)}),
        )
        .await;
    assert_eq!(g["retcode"], 0, "{g}");
    let groups = g["result"]["gnamelist"].as_array().unwrap().clone();
    assert_eq!(groups.len(), 2);
    // The same call as a GET with r in the query string (§16).
    let r = json!({"vfwebqq": c.vfwebqq, "hash": hash_p(c.qq, &ptwebqq)}).to_string();
    let g2 = c
        .get_json(
            &format!(
                "s.web2.qq.com/api/get_group_name_list_mask2?r={}",
                url::form_urlencoded::byte_serialize(r.as_bytes()).collect::<String>()
            ),
            D_REF,
        )
        .await;
    assert_eq!(g2["result"]["gnamelist"], g["result"]["gnamelist"]);
    let code = groups[0]["code"].as_u64().unwrap();
    let gid = groups[0]["gid"].as_u64().unwrap();
    let info = c
        .get_json(
            &format!(
                "s.web2.qq.com/api/get_group_info_ext2?gcode={code}&vfwebqq={}&t=1",
                c.vfwebqq
            ),
            S_REF,
        )
        .await;
    assert_eq!(info["retcode"], 0, "{info}");
    assert_eq!(info["result"]["ginfo"]["gid"], gid);
    // gid instead of code → 6 (§6.3).
    let bad = c
        .get_json(
            &format!(
                "s.web2.qq.com/api/get_group_info_ext2?gcode={gid}&vfwebqq={}&t=1",
                c.vfwebqq
            ),
            S_REF,
        )
        .await;
    assert_eq!(bad, json!({"retcode": 6}));
    let dl = c
        .get_json(
            &format!(
                "s.web2.qq.com/api/get_discus_list?clientid=53999199&psessionid={}&vfwebqq={}&t=1",
                c.psessionid, c.vfwebqq
            ),
            S_REF,
        )
        .await;
    let did = dl["result"]["dnamelist"][0]["did"].as_u64().unwrap();
    let di = c
        .get_json(
            &format!(
                "d1.web2.qq.com/channel/get_discu_info?did={did}&vfwebqq={}&clientid=53999199&psessionid={}&t=1",
                c.vfwebqq, c.psessionid
            ),
            D_REF,
        )
        .await;
    assert_eq!(di["result"]["info"]["did"], did, "{di}");
    let me = c
        .get_json("s.web2.qq.com/api/get_self_info2?t=1", S_REF)
        .await;
    assert_eq!(me["result"]["account"], 1234567);
    assert!(me["result"]["birthday"].is_object());
    let fuin = f["result"]["friends"][0]["uin"].as_u64().unwrap();
    let fi = c
        .get_json(
            &format!(
                "s.web2.qq.com/api/get_friend_info2?tuin={fuin}&vfwebqq={}&clientid=53999199&psessionid={}&t=1",
                c.vfwebqq, c.psessionid
            ),
            S_REF,
        )
        .await;
    assert_eq!(fi["result"]["uin"], fuin, "{fi}");
    let ln = c
        .get_json(
            &format!(
                "s.web2.qq.com/api/get_single_long_nick2?tuin={fuin}&vfwebqq={}&t=1",
                c.vfwebqq
            ),
            S_REF,
        )
        .await;
    assert_eq!(ln["result"][0]["uin"], fuin);
    let rl = c
        .post_r(
            "d1.web2.qq.com/channel/get_recent_list2",
            D_REF,
            &json!({"vfwebqq": c.vfwebqq, "clientid": 53999199, "psessionid": c.psessionid}),
        )
        .await;
    assert_eq!(rl["retcode"], 0, "{rl}");

    // Unknown ids: 6 on the info API, 100001 on the channel.
    for path in [
        format!("s.web2.qq.com/api/get_friend_info2?tuin=1&vfwebqq={}&clientid=53999199&psessionid={}&t=1", c.vfwebqq, c.psessionid),
        format!("s.web2.qq.com/api/get_single_long_nick2?tuin=1&vfwebqq={}&t=1", c.vfwebqq),
        format!("s.web2.qq.com/api/get_friend_uin2?tuin=1&type=1&vfwebqq={}&t=1", c.vfwebqq),
    ] {
        assert_eq!(c.get_json(&path, S_REF).await, json!({"retcode": 6}), "{path}");
    }
    let v = c
        .get_json(&format!("d1.web2.qq.com/channel/get_discu_info?did=1&vfwebqq={}&clientid=53999199&psessionid={}&t=1", c.vfwebqq, c.psessionid), D_REF)
        .await;
    assert_eq!(v["retcode"], 6);
    let v = c
        .get_json(&format!("d1.web2.qq.com/channel/get_c2cmsg_sig2?id=1&to_uin=1&service_type=0&clientid=53999199&psessionid={}&t=1", c.psessionid), D_REF)
        .await;
    assert_eq!(v["retcode"], 100001);

    // Contacts from the control API carry this session's uins.
    let (_, contacts) = control(&c, "GET", "accounts/1234567/contacts", None).await;
    assert_eq!(contacts["friends"][0]["uin"], fuin);
    assert_eq!(contacts["groups"][0]["gid"], gid);
    let friend_qq = contacts["friends"][0]["qq"].as_u64().unwrap();
    let group_no = contacts["groups"][0]["number"].as_u64().unwrap();

    // Inject each kind and poll it.
    let (s, inj) = control(
        &c,
        "POST",
        "inject",
        Some(json!({"qq": 1234567, "kind": "buddy", "text": "hi <you> [face:14]"})),
    )
    .await;
    assert_eq!(s, 200, "{inj}");
    let ev = c.poll_event().await;
    assert_eq!(ev["poll_type"], "message");
    assert_eq!(ev["value"]["msg_id"], inj["msg_id"]);
    assert_eq!(ev["value"]["from_uin"], fuin);
    assert_eq!(ev["value"]["to_uin"], 1234567);
    assert_eq!(ev["value"]["content"][0][0], "font");
    assert_eq!(ev["value"]["content"][1], "hi &lt;you&gt; ");
    assert_eq!(ev["value"]["content"][2], json!(["face", 14]));

    control(
        &c,
        "POST",
        "inject",
        Some(json!({"qq": 1234567, "kind": "group", "group": group_no, "text": "g"})),
    )
    .await;
    let ev = c.poll_event().await;
    assert_eq!(ev["poll_type"], "group_message");
    assert_eq!(ev["value"]["from_uin"], gid);
    assert_eq!(ev["value"]["group_code"], gid);
    let member_uin = ev["value"]["send_uin"].as_u64().unwrap();
    assert_ne!(member_uin, 1234567);

    control(
        &c,
        "POST",
        "inject",
        Some(json!({"qq": 1234567, "kind": "discu", "text": "d"})),
    )
    .await;
    let ev = c.poll_event().await;
    assert_eq!(ev["poll_type"], "discu_message");
    assert_eq!(ev["value"]["did"], did);
    assert_eq!(ev["value"]["from_uin"], did);

    control(
        &c,
        "POST",
        "inject",
        Some(json!({"qq": 1234567, "kind": "sess", "text": "s"})),
    )
    .await;
    let ev = c.poll_event().await;
    assert_eq!(ev["poll_type"], "sess_message");
    assert_eq!(ev["value"]["id"], code);
    let sess_uin = ev["value"]["from_uin"].as_u64().unwrap();

    control(
        &c,
        "POST",
        "inject",
        Some(json!({"qq": 1234567, "kind": "input_notify"})),
    )
    .await;
    assert_eq!(c.poll_event().await["poll_type"], "input_notify");
    control(
        &c,
        "POST",
        "inject",
        Some(json!({"qq": 1234567, "kind": "status", "status": "away"})),
    )
    .await;
    let ev = c.poll_event().await;
    assert_eq!(ev["poll_type"], "buddies_status_change");
    assert_eq!(ev["value"]["status"], "away");

    let (s, _) = control(
        &c,
        "POST",
        "inject",
        Some(json!({"qq": 1234567, "kind": "buddy", "from": 1, "text": "x"})),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = control(
        &c,
        "POST",
        "inject",
        Some(json!({"qq": 999999, "kind": "buddy", "text": "x"})),
    )
    .await;
    assert_eq!(s, 404);

    // Send each kind; each comes back as an echo with the own uin as sender.
    let ok = json!({"errCode": 0, "msg": "send ok"});
    assert_eq!(
        c.send(
            "send_buddy_msg2",
            ("to", json!(fuin)),
            &[json!("hello "), json!(["face", 5])]
        )
        .await,
        ok
    );
    let echo = c.poll_event().await;
    assert_eq!(echo["poll_type"], "message");
    assert_eq!(echo["value"]["from_uin"], 1234567);
    assert_eq!(
        c.send(
            "send_qun_msg2",
            ("group_uin", json!(gid)),
            &[json!("to group")]
        )
        .await,
        ok
    );
    let echo = c.poll_event().await;
    // §5.4: a group echo comes from the session's pseudo echo uin, not the own uin.
    assert_ne!(echo["value"]["send_uin"], 1234567);
    assert!(echo["value"]["send_uin"].as_u64().is_some());
    assert_eq!(echo["value"]["from_uin"], gid);
    // did as a string is accepted (§2).
    assert_eq!(
        c.send(
            "send_discu_msg2",
            ("did", json!(did.to_string())),
            &[json!("to discu")]
        )
        .await,
        ok
    );
    assert_eq!(c.poll_event().await["poll_type"], "discu_message");
    let sig = c
        .get_json(
            &format!(
                "d1.web2.qq.com/channel/get_c2cmsg_sig2?id={code}&to_uin={sess_uin}&service_type=0&clientid=53999199&psessionid={}&t=1",
                c.psessionid
            ),
            D_REF,
        )
        .await;
    assert_eq!(sig["retcode"], 0, "{sig}");
    let group_sig = sig["result"]["value"].as_str().unwrap().to_string();
    assert_eq!(group_sig.len(), 96);
    c.msg_id += 1;
    let r = c
        .post_r(
            "d1.web2.qq.com/channel/send_sess_msg2",
            D_REF,
            &json!({"to": sess_uin, "group_sig": group_sig, "service_type": 0,
                    "content": Client::content(&[json!("to sess")]), "face": 522,
                    "clientid": "53999199", "msg_id": c.msg_id, "psessionid": c.psessionid}),
        )
        .await;
    assert_eq!(r, ok);
    // Unknown target → error, not delivered.
    let r = c
        .send("send_buddy_msg2", ("to", json!(12345)), &[json!("x")])
        .await;
    assert_eq!(r["retcode"], 100001);

    let (_, sent) = control(&c, "GET", "sent?qq=1234567", None).await;
    let sent = sent.as_array().unwrap();
    assert_eq!(sent.len(), 4, "{sent:?}");
    assert_eq!(sent[0]["kind"], "buddy");
    assert_eq!(sent[0]["to"], friend_qq);
    assert_eq!(sent[0]["text"], "hello [face:5]");
    assert_eq!(sent[0]["msg_id"], 6_000_001);
    assert_eq!(sent[1]["kind"], "group");
    assert_eq!(sent[1]["to"], group_no);
    assert_eq!(sent[2]["kind"], "discu");
    assert_eq!(sent[2]["to"], did);
    assert_eq!(sent[3]["kind"], "sess");
    assert!(sent[3]["time"].as_u64().unwrap() > 1_500_000_000);

    let (_, a) = control(&c, "GET", "accounts/1234567", None).await;
    assert_eq!(a["logins"], 1);
    assert_eq!(a["online"], true);
    assert_eq!(a["sessions"], 1);
    assert_eq!(a["calls"]["send_buddy_msg2"], 2);
    assert_eq!(a["retcodes"]["send_buddy_msg2"]["100001"], 1);
    let (_, st) = control(&c, "GET", "stats", None).await;
    assert_eq!(st["accounts"], 1);
    assert!(st["requests"]["poll2"].as_u64().unwrap() >= 9);
    sim.shutdown().await;
}

#[tokio::test]
async fn poll_hold_warmup_two_pollers_and_duplicate() {
    let sim = start(cfg()).await;
    let base = sim.base_url();
    let mut c = Client::new(&base);
    c.ptqrshow().await;
    let qrsig = c.cookie("qrsig").unwrap();
    control(
        &c,
        "POST",
        "qr/scan",
        Some(json!({"qrsig": qrsig, "qq": 3456789})),
    )
    .await;
    let args = c.ptqrlogin().await;
    c.http.get(&args[2]).send().await.unwrap();
    c.qq = 3456789;
    let ptwebqq = c.cookie("ptwebqq").unwrap();
    c.vfwebqq = c.getvfwebqq(&ptwebqq).await["result"]["vfwebqq"]
        .as_str()
        .unwrap()
        .to_string();
    let l = c
        .post_r("d1.web2.qq.com/channel/login2", D_REF, &json!({"ptwebqq": ptwebqq, "clientid": 53999199, "psessionid": "", "status": "online"}))
        .await;
    c.psessionid = l["result"]["psessionid"].as_str().unwrap().to_string();
    // Before the warm-up: 103 at once (§3.8).
    let t0 = Instant::now();
    assert_eq!(c.poll().await, json!({"errmsg": "error", "retcode": 103}));
    assert!(t0.elapsed() < Duration::from_millis(900));
    c.online_buddies().await;
    // The hold is real, then the idle answer exactly as §16 chose.
    let t0 = Instant::now();
    assert_eq!(c.poll_text().await, "{\"retcode\":0,\"result\":[]}\n");
    let held = t0.elapsed();
    assert!(
        held >= Duration::from_millis(900) && held < Duration::from_secs(3),
        "{held:?}"
    );

    // Two pollers: the older is answered at once (long before the hold ends), the newer gets
    // the event. Uses a second simulator with a long hold so "at once" is measurable.
    let sim5 = start(SimConfig {
        hold: Duration::from_secs(8),
        ..cfg()
    })
    .await;
    let p = Arc::new(login(&sim5.base_url(), 3456780).await);
    let p1 = p.clone();
    let first = tokio::spawn(async move { (p1.poll().await, Instant::now()) });
    wait_pending(&p, 1).await;
    let p2 = p.clone();
    let started = Instant::now();
    let second = tokio::spawn(async move { p2.poll().await });
    let (older, answered) = tokio::time::timeout(Duration::from_secs(6), first)
        .await
        .expect("older poll answered before the hold ends")
        .unwrap();
    assert_eq!(older, json!({"retcode": 0, "result": []}));
    assert!(answered.duration_since(started) < Duration::from_secs(6));
    wait_pending(&p, 1).await;
    let (_, inj) = control(
        &p,
        "POST",
        "inject",
        Some(json!({"qq": 3456780, "kind": "buddy", "text": "x"})),
    )
    .await;
    let newer = second.await.unwrap();
    assert_eq!(newer["result"][0]["value"]["msg_id"], inj["msg_id"]);
    sim5.shutdown().await;
    let c = Arc::new(c);

    // Duplicate fault: the next event comes in two consecutive answers with one msg_id.
    let (s, _) = control(
        &c,
        "POST",
        "faults",
        Some(json!({"qq": 3456789, "endpoint": "poll2", "duplicate": true})),
    )
    .await;
    assert_eq!(s, 200);
    let (_, inj) = control(
        &c,
        "POST",
        "inject",
        Some(json!({"qq": 3456789, "kind": "buddy", "text": "dup"})),
    )
    .await;
    let a = c.poll().await;
    let b = c.poll().await;
    assert_eq!(a["result"][0]["value"]["msg_id"], inj["msg_id"]);
    assert_eq!(a, b);
    assert_eq!(c.poll().await, json!({"retcode": 0, "result": []}));
    sim.shutdown().await;
}

#[tokio::test]
async fn second_login_kick_expiry_and_clock() {
    let sim = start(cfg()).await;
    let base = sim.base_url();
    let old = Arc::new(login(&base, 4567890).await);
    let o2 = old.clone();
    let pending = tokio::spawn(async move { o2.poll().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A second login of the same QQ kicks the first session (§12).
    let new = login(&base, 4567890).await;
    let kicked = pending.await.unwrap();
    assert_eq!(kicked["result"][0]["poll_type"], "kick_message", "{kicked}");
    assert_eq!(old.poll().await["retcode"], 103);
    assert_eq!(new.poll().await, json!({"retcode": 0, "result": []}));
    let (_, a) = control(&new, "GET", "accounts/4567890", None).await;
    assert_eq!(a["logins"], 2);
    assert_eq!(a["sessions"], 1);

    // /sim/kick: kick_message to the active poll, session dead.
    let (s, _) = control(&new, "POST", "kick", Some(json!({"qq": 4567890}))).await;
    assert_eq!(s, 200);
    assert_eq!(new.poll().await["result"][0]["poll_type"], "kick_message");
    assert_eq!(new.poll().await["retcode"], 103);

    // Session lifetime on the simulated clock: after 48 h everything is dead.
    let mut c = login(&base, 5678901).await;
    assert_eq!(c.friends().await["retcode"], 0);
    control(
        &c,
        "POST",
        "clock/advance",
        Some(json!({"seconds": 47 * 3600})),
    )
    .await;
    assert_eq!(c.friends().await["retcode"], 0);
    control(&c, "POST", "clock/advance", Some(json!({"seconds": 3601}))).await;
    assert_eq!(c.poll().await["retcode"], 103);
    let (_, a) = control(&c, "GET", "accounts/5678901", None).await;
    assert_eq!(a["online"], false);
    let (s, _) = control(
        &c,
        "POST",
        "inject",
        Some(json!({"qq": 5678901, "kind": "buddy", "text": "x"})),
    )
    .await;
    assert_eq!(s, 409);
    assert_eq!(c.friends().await, json!({"retcode": 100000}));
    let r = c
        .send("send_buddy_msg2", ("to", json!(1)), &[json!("x")])
        .await;
    assert_eq!(r["retcode"], 100001);
    let t = c
        .get_text(
            &format!(
                "ssl.ptlogin2.qq.com/pt4_auth?daid=164&appid=501004106&auth_token={}",
                time33(&c.cookie("supertoken").unwrap())
            ),
            LOGIN_PAGE_REF,
        )
        .await
        .1;
    assert!(!t.contains("check_sig"), "{t}");

    // /sim/expire: the same, at once; a held poll is answered.
    let d = Arc::new(login(&base, 6789012).await);
    let d2 = d.clone();
    let pending = tokio::spawn(async move { d2.poll().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    control(&d, "POST", "expire", Some(json!({"qq": 6789012}))).await;
    assert_eq!(pending.await.unwrap()["retcode"], 103);
    assert_eq!(d.online_buddies().await["retcode"], 103);
    let ptwebqq = d.cookie("ptwebqq").unwrap();
    let v = d.getvfwebqq(&ptwebqq).await;
    assert_eq!(v, json!({"retcode": 100000}));
    let (s, _) = control(&d, "POST", "expire", Some(json!({"qq": 1}))).await;
    assert_eq!(s, 404);
    sim.shutdown().await;
}

async fn first_friend_uin(c: &Client) -> Value {
    let (_, k) = control(c, "GET", &format!("accounts/{}/contacts", c.qq), None).await;
    k["friends"][0]["uin"].clone()
}

/// A buddy send with a fixed msg_id and text, as a client resending after a crash would.
async fn send_fixed(c: &Client, to: Value) -> Value {
    let r = json!({"to": to, "content": Client::content(&[json!("exactly once")]), "face": 0,
                   "clientid": 53999199, "msg_id": 7_000_001, "psessionid": c.psessionid});
    c.post_r("d1.web2.qq.com/channel/send_buddy_msg2", D_REF, &r)
        .await
}

#[tokio::test]
async fn resume_pt4_auth_cookie_replay_and_relink() {
    let sim = start(cfg()).await;
    let mut c = login(&sim.base_url(), 7890123).await;
    // pt4_auth (§3.10): check_sig URL without a scan.
    let tok = time33(&c.cookie("supertoken").unwrap());
    let (_, t) = c
        .get_text(
            &format!("ssl.ptlogin2.qq.com/pt4_auth?daid=164&appid=501004106&auth_token={tok}"),
            LOGIN_PAGE_REF,
        )
        .await;
    assert!(t.starts_with("ptui_auth_CB('0','http://"), "{t}");
    let url = t.split('\'').nth(3).unwrap().to_string();
    let url = format!("{url}&regmaster=&aid=501004106&s_url=http%3A%2F%2Fw.qq.com%2Fproxy.html");
    assert_eq!(c.http.get(&url).send().await.unwrap().status(), 302);
    c.channel_login().await;
    // Cookie replay: getvfwebqq + login2 with the stored cookies.
    c.channel_login().await;
    let (_, a) = control(&c, "GET", "accounts/7890123", None).await;
    assert_eq!(a["logins"], 1);
    assert_eq!(a["resumes"], 2);
    // Wrong auth_token → no check_sig.
    let (_, t) = c
        .get_text(
            "ssl.ptlogin2.qq.com/pt4_auth?daid=164&appid=501004106&auth_token=1",
            LOGIN_PAGE_REF,
        )
        .await;
    assert!(!t.contains("check_sig"));

    // Relink with the current psessionid (§3.7): a new psessionid, the old one is gone.
    let old = c.psessionid.clone();
    let ptwebqq = c.cookie("ptwebqq").unwrap();
    let l = c
        .post_r(
            "d1.web2.qq.com/channel/login2",
            D_REF,
            &json!({"status": "online", "key": "", "ptwebqq": ptwebqq, "clientid": 53999199, "psessionid": old}),
        )
        .await;
    assert_eq!(l["retcode"], 0);
    c.psessionid = l["result"]["psessionid"].as_str().unwrap().to_string();
    assert_ne!(c.psessionid, old);
    assert_eq!(c.poll().await, json!({"retcode": 0, "result": []}));
    let (_, a) = control(&c, "GET", "accounts/7890123", None).await;
    assert_eq!(a["relinks"], 1);

    // Exactly-once across a crash and a new login: the resend carries the friend's new
    // pseudo uin, the same msg_id and text, and is acknowledged without a second delivery.
    let ok = json!({"errCode": 0, "msg": "send ok"});
    let first_uin = first_friend_uin(&c).await;
    assert_eq!(send_fixed(&c, first_uin.clone()).await, ok);
    c.channel_login().await;
    let second_uin = first_friend_uin(&c).await;
    assert_ne!(first_uin, second_uin);
    assert_eq!(send_fixed(&c, second_uin).await, ok);
    let (_, sent) = control(&c, "GET", "sent?qq=7890123", None).await;
    assert_eq!(sent.as_array().unwrap().len(), 1);
    let (_, a) = control(&c, "GET", "accounts/7890123", None).await;
    assert_eq!(a["duplicates_dropped"], 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn friend_list_lockout_and_anti_spam_and_dedup() {
    let sim = start(SimConfig {
        send_min_interval: Duration::from_millis(1000),
        target_burst_per_min: 3,
        ..cfg()
    })
    .await;
    let mut c = login(&sim.base_url(), 8901234).await;
    for i in 0..15 {
        assert_eq!(c.friends().await["retcode"], 0, "call {i}");
    }
    assert_eq!(c.friends().await, json!({"retcode": 6}));
    control(&c, "POST", "clock/advance", Some(json!({"seconds": 300}))).await;
    assert_eq!(c.friends().await, json!({"retcode": 6}));
    control(&c, "POST", "clock/advance", Some(json!({"seconds": 301}))).await;
    assert_eq!(c.friends().await["retcode"], 0);
    // Wrong hash.
    let h = c
        .post_r(
            "s.web2.qq.com/api/get_user_friends2",
            S_REF,
            &json!({"vfwebqq": c.vfwebqq, "hash": "0000000000000000"}),
        )
        .await;
    assert_eq!(h, json!({"retcode": 50}));

    let (_, contacts) = control(&c, "GET", "accounts/8901234/contacts", None).await;
    let fuin = contacts["friends"][0]["uin"].clone();
    let ok = json!({"errCode": 0, "msg": "send ok"});
    assert_eq!(
        c.send("send_buddy_msg2", ("to", fuin.clone()), &[json!("a")])
            .await,
        ok
    );
    // Too fast → 1202.
    assert_eq!(
        c.send("send_buddy_msg2", ("to", fuin.clone()), &[json!("b")])
            .await,
        json!({"retcode": 1202, "errmsg": ""})
    );
    control(&c, "POST", "clock/advance", Some(json!({"seconds": 2}))).await;
    // A resend of an accepted message (same msg_id and content) is acknowledged, not delivered.
    let r = json!({"to": fuin, "content": Client::content(&[json!("a")]), "face": 522,
                   "clientid": 53999199, "msg_id": 6_000_001, "psessionid": c.psessionid});
    assert_eq!(
        c.post_r("d1.web2.qq.com/channel/send_buddy_msg2", D_REF, &r)
            .await,
        ok
    );
    assert_eq!(
        c.send("send_buddy_msg2", ("to", fuin.clone()), &[json!("c")])
            .await,
        ok
    );
    control(&c, "POST", "clock/advance", Some(json!({"seconds": 2}))).await;
    assert_eq!(
        c.send("send_buddy_msg2", ("to", fuin.clone()), &[json!("d")])
            .await,
        ok
    );
    control(&c, "POST", "clock/advance", Some(json!({"seconds": 2}))).await;
    // Fourth to one target inside a minute → 1202.
    assert_eq!(
        c.send("send_buddy_msg2", ("to", fuin.clone()), &[json!("e")])
            .await["retcode"],
        1202
    );
    // Over 720 bytes → refused.
    control(&c, "POST", "clock/advance", Some(json!({"seconds": 61}))).await;
    let long = "字".repeat(241);
    assert_eq!(
        c.send("send_buddy_msg2", ("to", fuin.clone()), &[json!(long)])
            .await["retcode"],
        1202
    );
    let (_, sent) = control(&c, "GET", "sent?qq=8901234", None).await;
    let texts: Vec<&str> = sent
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, vec!["a", "c", "d"]);
    let (_, a) = control(&c, "GET", "accounts/8901234", None).await;
    assert_eq!(a["duplicates_dropped"], 1);
    assert_eq!(a["retcodes"]["get_user_friends2"]["6"], 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn fault_queue() {
    let sim = start(cfg()).await;
    let base = sim.base_url();
    let c = login(&base, 9012345).await;
    let other = login(&base, 9123456).await;
    let fault = |v: Value| {
        let c = &c;
        async move {
            let (s, r) = control(c, "POST", "faults", Some(v)).await;
            assert_eq!(s, 200, "{r}");
        }
    };
    fault(json!({"qq": 9012345, "endpoint": "poll2", "retcode": 121, "count": 2})).await;
    assert_eq!(other.poll().await, json!({"retcode": 0, "result": []}));
    assert_eq!(c.poll().await, json!({"retcode": 121, "t": "0"}));
    assert_eq!(c.poll().await, json!({"retcode": 121, "t": "0"}));
    // 116 really rotates ptwebqq: the old one stops working, the new one works.
    let old = c.cookie("ptwebqq").unwrap();
    fault(json!({"qq": 9012345, "endpoint": "poll2", "retcode": 116})).await;
    let r = c.poll().await;
    assert_eq!(r["retcode"], 116);
    let p = r["p"].as_str().unwrap().to_string();
    assert_ne!(p, old);
    let v = c.getvfwebqq(&old).await;
    assert_eq!(v["retcode"], 100000);
    let h = c
        .post_r(
            "s.web2.qq.com/api/get_user_friends2",
            S_REF,
            &json!({"vfwebqq": c.vfwebqq, "hash": hash_p(c.qq, &p)}),
        )
        .await;
    assert_eq!(h["retcode"], 0, "{h}");
    // A client that ignores the rotation still polls (the body's ptwebqq is not checked).
    assert_eq!(c.poll().await, json!({"retcode": 0, "result": []}));
    // HTTP status, delay, drop; "*" and qq null.
    fault(json!({"qq": null, "endpoint": "get_online_buddies2", "http_status": 502})).await;
    let (s, _) = c
        .get_text(&format!("d1.web2.qq.com/channel/get_online_buddies2?vfwebqq={}&clientid=53999199&psessionid={}&t=1", c.vfwebqq, c.psessionid), D_REF)
        .await;
    assert_eq!(s, 502);
    fault(json!({"qq": 9012345, "endpoint": "*", "delay_ms": 300})).await;
    let t0 = Instant::now();
    assert_eq!(c.online_buddies().await["retcode"], 0);
    assert!(t0.elapsed() >= Duration::from_millis(300));
    fault(json!({"qq": 9012345, "endpoint": "send_buddy_msg2", "drop": true})).await;
    let err = c
        .http
        .post(c.url("d1.web2.qq.com/channel/send_buddy_msg2"))
        .header("Referer", D_REF)
        .form(&[("r", "{}")])
        .send()
        .await;
    assert!(err.is_err(), "dropped connection gives no answer");
    fault(json!({"qq": 9012345, "endpoint": "send_qun_msg2", "retcode": 1202})).await;
    let r = c
        .post_r("d1.web2.qq.com/channel/send_qun_msg2", D_REF, &json!({}))
        .await;
    assert_eq!(r, json!({"retcode": 1202, "errmsg": ""}));
    // 1202 but delivered anyway (§8.2): the answer is an error, the message arrives, and a
    // resend with the same msg_id is acknowledged without a second delivery.
    fault(json!({"qq": 9012345, "endpoint": "send_buddy_msg2", "retcode": 1202, "deliver": true}))
        .await;
    let fuin = first_friend_uin(&c).await;
    assert_eq!(
        send_fixed(&c, fuin.clone()).await,
        json!({"retcode": 1202, "errmsg": ""})
    );
    assert_eq!(
        send_fixed(&c, fuin).await,
        json!({"errCode": 0, "msg": "send ok"})
    );
    let (_, sent) = control(&c, "GET", "sent?qq=9012345", None).await;
    assert_eq!(sent.as_array().unwrap().len(), 1);
    fault(json!({"qq": 9012345, "endpoint": "get_user_friends2", "retcode": 100003})).await;
    assert_eq!(c.friends().await, json!({"retcode": 100003}));
    // Bad fault bodies.
    let (s, _) = control(&c, "POST", "faults", Some(json!({"endpoint": "poll2"}))).await;
    assert_eq!(s, 400);
    let (s, _) = control(
        &c,
        "POST",
        "faults",
        Some(json!({"endpoint": "poll2", "retcode": 1, "drop": true})),
    )
    .await;
    assert_eq!(s, 400);
    let (_, a) = control(&c, "GET", "accounts/9012345", None).await;
    assert_eq!(a["retcodes"]["poll2"]["121"], 2);
    assert_eq!(other.poll().await, json!({"retcode": 0, "result": []}));
    sim.shutdown().await;
}

#[tokio::test]
async fn referer_cookie_and_bad_input_checks() {
    let sim = start(cfg()).await;
    let base = sim.base_url();
    let c = login(&base, 1357924).await;
    let other = Arc::new(login(&base, 2468013).await);
    let o2 = other.clone();
    let held = tokio::spawn(async move { o2.poll().await });

    // Missing Referer: 100001 on the channel, 100000 on the API.
    let no_ref = c
        .http
        .post(c.url("d1.web2.qq.com/channel/poll2"))
        .form(&[(
            "r",
            json!({"clientid": 53999199, "psessionid": c.psessionid, "key": ""}).to_string(),
        )])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&no_ref).unwrap(),
        json!({"errmsg": "error", "retcode": 100001})
    );
    let (_, t) = c.get_text("s.web2.qq.com/api/get_self_info2?t=1", "").await;
    assert_eq!(
        serde_json::from_str::<Value>(&t).unwrap(),
        json!({"retcode": 100000})
    );
    // The https cfproxy Referer and a stale d1 Referer on s.web2 are fine (§16).
    assert_eq!(
        c.get_json(
            "s.web2.qq.com/api/get_self_info2?t=1",
            "https://d1.web2.qq.com/cfproxy.html?v=20151105001&callback=1"
        )
        .await["retcode"],
        0
    );
    // Without cookies: a fresh jar.
    let stranger = Client::new(&base);
    let v = stranger
        .post_r(
            "d1.web2.qq.com/channel/login2",
            D_REF,
            &json!({"ptwebqq": "", "clientid": 53999199, "psessionid": "", "status": "online"}),
        )
        .await;
    assert_eq!(v["retcode"], 100001);
    // Wrong vfwebqq, wrong clientid, clientid as string.
    let v = c
        .get_json(
            &format!(
                "s.web2.qq.com/api/get_discus_list?clientid=53999199&psessionid={}&vfwebqq=abc&t=1",
                c.psessionid
            ),
            S_REF,
        )
        .await;
    assert_eq!(v, json!({"retcode": 100000}));
    let v = c
        .post_r(
            "d1.web2.qq.com/channel/poll2",
            D_REF,
            &json!({"clientid": 1, "psessionid": c.psessionid, "key": ""}),
        )
        .await;
    assert_eq!(v["retcode"], 103);
    let t0 = Instant::now();
    let v = c
        .post_r(
            "d1.web2.qq.com/channel/poll2",
            D_REF,
            &json!({"clientid": "53999199", "psessionid": c.psessionid, "key": ""}),
        )
        .await;
    assert_eq!(v, json!({"retcode": 0, "result": []}));
    assert!(t0.elapsed() >= Duration::from_millis(900));

    // Missing r, broken JSON, wrong types.
    let e100006 = json!({"retcode": 100006, "errmsg": ""});
    let t = c.post_raw("d1.web2.qq.com/channel/poll2", D_REF, &[]).await;
    assert_eq!(serde_json::from_str::<Value>(&t).unwrap(), e100006);
    let t = c
        .post_raw(
            "d1.web2.qq.com/channel/poll2",
            D_REF,
            &[("r", "{\"clientid\":".into())],
        )
        .await;
    assert_eq!(serde_json::from_str::<Value>(&t).unwrap(), e100006);
    let v: Value = serde_json::from_str(
        &c.post_raw(
            "d1.web2.qq.com/channel/send_buddy_msg2",
            D_REF,
            &[("r", "[1,2]".into())],
        )
        .await,
    )
    .unwrap();
    assert_eq!(v["retcode"], 100001);
    let v = c.post_r("d1.web2.qq.com/channel/send_buddy_msg2", D_REF, &json!({"to": {"x": 1}, "content": ["not a string"], "clientid": [53999199], "msg_id": "x", "psessionid": 5})).await;
    assert_eq!(v["retcode"], 100001);
    let v = c.post_r("d1.web2.qq.com/channel/send_buddy_msg2", D_REF, &json!({"to": 1, "content": ["not a string"], "clientid": 53999199, "msg_id": 1, "psessionid": c.psessionid})).await;
    assert_eq!(v["retcode"], 100001);
    let v: Value = serde_json::from_str(
        &c.post_raw(
            "s.web2.qq.com/api/get_user_friends2",
            S_REF,
            &[("x", "1".into())],
        )
        .await,
    )
    .unwrap();
    assert_eq!(v, json!({"retcode": 100000}));
    let v = c
        .post_r(
            "s.web2.qq.com/api/get_user_friends2",
            S_REF,
            &json!({"vfwebqq": 7, "hash": null}),
        )
        .await;
    assert_eq!(v, json!({"retcode": 100000}));
    let v = c
        .get_json(
            &format!(
                "s.web2.qq.com/api/get_group_info_ext2?gcode=abc&vfwebqq={}",
                c.vfwebqq
            ),
            S_REF,
        )
        .await;
    assert_eq!(v, json!({"retcode": 6}));
    // Non-UTF-8 body and a body over 1 MiB.
    let r = c
        .http
        .post(c.url("d1.web2.qq.com/channel/poll2"))
        .header("Referer", D_REF)
        .body(vec![0xff, 0xfe, b'r', b'='])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let big = "r=".to_string() + &"a".repeat(1_100_000);
    let r = c
        .http
        .post(c.url("d1.web2.qq.com/channel/poll2"))
        .header("Referer", D_REF)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await;
    if let Ok(r) = r {
        assert_eq!(r.status(), 413);
    }
    let r = c
        .http
        .post(format!("{base}/sim/inject"))
        .header("content-type", "application/json")
        .body(vec![b'{'; 2_000_000])
        .send()
        .await;
    if let Ok(r) = r {
        assert!(r.status().is_client_error());
    }
    // Unknown paths and hosts; broken control JSON; wrong control types.
    assert_eq!(
        c.get_text("d1.web2.qq.com/channel/nope", D_REF).await.0,
        404
    );
    assert_eq!(c.get_text("example.com/x", D_REF).await.0, 404);
    assert_eq!(c.get_text("", D_REF).await.0, 404);
    let r = c
        .http
        .post(format!("{base}/sim/inject"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    let (s, _) = control(
        &c,
        "POST",
        "inject",
        Some(json!({"qq": "x", "kind": "buddy"})),
    )
    .await;
    assert!((400..500).contains(&s));
    let (s, _) = control(&c, "POST", "clock/advance", Some(json!({"seconds": -5}))).await;
    assert_eq!(s, 400);
    let (s, _) = control(&c, "GET", "sent?qq=abc", None).await;
    assert_eq!(s, 400);
    let (s, _) = control(&c, "GET", "accounts/abc", None).await;
    assert_eq!(s, 400);

    // Through all this the other session kept being served.
    let answered = held.await.unwrap();
    assert_eq!(answered, json!({"retcode": 0, "result": []}));
    control(
        &c,
        "POST",
        "inject",
        Some(json!({"qq": 2468013, "kind": "buddy", "text": "still here"})),
    )
    .await;
    assert_eq!(other.poll_event().await["poll_type"], "message");
    let (s, h) = control(&c, "GET", "health", None).await;
    assert_eq!((s, h), (200, json!({"ok": true})));
    sim.shutdown().await;
}

#[tokio::test]
async fn ptwebqq_rotation_knob() {
    let sim = start(SimConfig {
        ptwebqq_rotation: Some(Duration::from_secs(3600)),
        ..cfg()
    })
    .await;
    let c = login(&sim.base_url(), 1122334).await;
    assert_eq!(c.poll().await, json!({"retcode": 0, "result": []}));
    control(&c, "POST", "clock/advance", Some(json!({"seconds": 3600}))).await;
    let r = c.poll().await;
    assert_eq!(r["retcode"], 116);
    // The client stores p as its ptwebqq cookie (§5.2) and goes on.
    let p = r["p"].as_str().unwrap();
    let poll = c
        .post_raw(
            "d1.web2.qq.com/channel/poll2",
            D_REF,
            &[(
                "r",
                json!({"ptwebqq": p, "clientid": 53999199, "psessionid": c.psessionid, "key": ""})
                    .to_string(),
            )],
        )
        .await;
    assert_eq!(poll, "{\"retcode\":0,\"result\":[]}\n");
    sim.shutdown().await;
}

#[tokio::test]
async fn pages_status_and_logouts() {
    let sim = start(cfg()).await;
    let base = sim.base_url();
    let mut c = login(&base, 3213213).await;
    for page in [
        "w.qq.com/",
        "w.qq.com/proxy.html",
        "d1.web2.qq.com/proxy.html",
        "d1.web2.qq.com/cfproxy.html",
        "s.web2.qq.com/proxy.html",
    ] {
        assert_eq!(c.get_text(page, "").await.0, 200, "{page}");
    }
    let st = |s: &str, c: &Client| {
        format!(
            "d1.web2.qq.com/channel/change_status2?newstatus={s}&clientid=53999199&psessionid={}&t=1",
            c.psessionid
        )
    };
    assert_eq!(
        c.get_json(&st("busy", &c), D_REF).await,
        json!({"retcode": 0, "result": "ok"})
    );
    assert_eq!(
        c.get_json(&st("sleepy", &c), D_REF).await["retcode"],
        100001
    );
    assert_eq!(
        c.get_json(&st("offline", &c), D_REF).await,
        json!({"retcode": 0, "result": "ok"})
    );
    assert_eq!(c.poll().await["retcode"], 103);
    // A new channel session on the same cookies, then logout2.
    c.channel_login().await;
    let out = c
        .get_json(
            &format!(
                "d1.web2.qq.com/channel/logout2?ids=&clientid=53999199&psessionid={}&t=1",
                c.psessionid
            ),
            D_REF,
        )
        .await;
    assert_eq!(out, json!({"retcode": 0, "result": "ok"}));
    assert_eq!(c.poll().await["retcode"], 103);
    // ptlogin logout kills the login: no more cookie replay.
    c.channel_login().await;
    let (s, _) = c
        .get_text("ptlogin2.qq.com/logout?deep_logout=1", "http://w.qq.com/")
        .await;
    assert_eq!(s, 200);
    assert_eq!(c.poll().await["retcode"], 103);
    let ptwebqq = c.cookie("ptwebqq").unwrap();
    let v = c.getvfwebqq(&ptwebqq).await;
    assert_eq!(v, json!({"retcode": 100000}));
    sim.shutdown().await;
}

#[tokio::test]
async fn dropping_the_handle_stops_the_simulator() {
    let sim = start(cfg()).await;
    let c = Client::new(&sim.base_url());
    assert_eq!(control(&c, "GET", "health", None).await.0, 200);
    drop(sim);
    let mut stopped = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let fresh = reqwest::Client::new();
        if fresh
            .get(format!("{}/sim/health", c.base))
            .send()
            .await
            .is_err()
        {
            stopped = true;
            break;
        }
    }
    assert!(stopped);
}

#[tokio::test]
async fn chatter_writes_to_online_accounts() {
    let sim = start(SimConfig {
        chatter: Some(Duration::from_millis(200)),
        hold: Duration::from_secs(2),
        ..cfg()
    })
    .await;
    let c = login(&sim.base_url(), 1231231).await;
    let ev = c.poll_event().await;
    assert!(
        ["message", "group_message"].contains(&ev["poll_type"].as_str().unwrap()),
        "{ev}"
    );
    assert_eq!(ev["value"]["to_uin"], 1231231);
    sim.shutdown().await;
}

#[tokio::test]
async fn cli_prints_listening_first() {
    use std::io::BufRead;
    /// Kills the simulator on every path out of the test, a failed assertion included.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_qqfleet"))
        .args([
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--hold",
            "1",
            "--auto-scan",
            "0.1",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let child = KillOnDrop(child);
    let first = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(out).read_line(&mut line).unwrap();
        line
    });
    let first = tokio::time::timeout(Duration::from_secs(20), first).await;
    let first = match first {
        Ok(Ok(l)) => l,
        _ => panic!("no first line"),
    };
    let base = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or("")
        .to_string();
    let result = async {
        assert!(base.starts_with("http://127.0.0.1:"), "{first}");
        let mut c = Client::new(&base);
        c.ptqrshow().await;
        wait_qr_confirmed(&c).await;
        c.finish_login().await;
        c.poll().await
    };
    let v = tokio::time::timeout(Duration::from_secs(20), result).await;
    drop(child);
    assert_eq!(v.unwrap(), json!({"retcode": 0, "result": []}));
    // Loopback only.
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_qqfleet"))
        .args(["sim", "--listen", "0.0.0.0:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!st.success());
}

#[tokio::test]
async fn inject_batch_queues_each_message_in_order_and_judges_each_alone() {
    let sim = start(cfg()).await;
    let base = sim.base_url();
    let c = login(&base, 4564564).await;
    c.online_buddies().await;
    let body = json!([
        {"qq": 4564564, "kind": "buddy", "text": "one"},
        {"qq": 999, "kind": "buddy", "text": "nobody"},
        {"qq": 4564564, "kind": "buddy", "text": "two"},
    ]);
    let (s, v) = control(&c, "POST", "inject/batch", Some(body)).await;
    assert_eq!(s, 200, "{v}");
    let a = v.as_array().unwrap();
    assert_eq!(a.len(), 3, "{v}");
    assert!(a[0]["msg_id"].is_u64() && a[2]["msg_id"].is_u64(), "{v}");
    assert_eq!(a[1], json!({"error": "unknown account"}));
    for want in ["one", "two"] {
        let ev = c.poll_event().await;
        assert_eq!(ev["poll_type"], "message", "{ev}");
        assert_eq!(ev["value"]["content"][1], want, "{ev}");
    }
    let (s, _) = control(&c, "POST", "inject/batch", Some(json!({"qq": 4564564}))).await;
    assert!((400..500).contains(&s), "{s}");
    sim.shutdown().await;
}

/// `poll_batch`: events that queued up come in one answer, oldest first, at most that many;
/// the default answers one event per poll (§5.1).
#[tokio::test]
async fn poll_batch_answers_queued_events_together_oldest_first() {
    let sim = start(SimConfig {
        poll_batch: 2,
        ..cfg()
    })
    .await;
    let c = login(&sim.base_url(), 4565656).await;
    c.online_buddies().await;
    let body = json!([
        {"qq": 4565656, "kind": "buddy", "text": "one"},
        {"qq": 4565656, "kind": "group", "text": "two"},
        {"qq": 4565656, "kind": "buddy", "text": "three"},
    ]);
    let (s, v) = control(&c, "POST", "inject/batch", Some(body)).await;
    assert_eq!(s, 200, "{v}");
    let texts = |r: &Value| -> Vec<(String, String)> {
        r["result"]
            .as_array()
            .unwrap_or_else(|| panic!("events: {r}"))
            .iter()
            .map(|e| {
                (
                    e["poll_type"].as_str().unwrap().to_string(),
                    e["value"]["content"][1].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let first = c.poll().await;
    assert_eq!(first["retcode"], 0, "{first}");
    assert_eq!(
        texts(&first),
        [
            ("message".to_string(), "one".to_string()),
            ("group_message".to_string(), "two".to_string())
        ],
        "{first}"
    );
    let second = c.poll().await;
    assert_eq!(
        texts(&second),
        [("message".to_string(), "three".to_string())],
        "{second}"
    );
    sim.shutdown().await;

    // The default: one event per answer, even with several queued; `POST /sim/poll-batch`
    // changes it while the simulator runs.
    let sim = start(cfg()).await;
    let c = login(&sim.base_url(), 4565657).await;
    c.online_buddies().await;
    let body = json!([
        {"qq": 4565657, "kind": "buddy", "text": "a"},
        {"qq": 4565657, "kind": "buddy", "text": "b"},
        {"qq": 4565657, "kind": "buddy", "text": "c"},
    ]);
    control(&c, "POST", "inject/batch", Some(body)).await;
    let r = c.poll().await;
    assert_eq!(texts(&r), [("message".to_string(), "a".to_string())], "{r}");
    let (s, v) = control(&c, "POST", "poll-batch", Some(json!({"poll_batch": 5}))).await;
    assert_eq!((s, v), (200, json!({"poll_batch": 5})));
    let r = c.poll().await;
    assert_eq!(
        texts(&r),
        [
            ("message".to_string(), "b".to_string()),
            ("message".to_string(), "c".to_string())
        ],
        "{r}"
    );
    for bad in [
        json!({"poll_batch": 0}),
        json!({"poll_batch": 101}),
        json!({}),
    ] {
        let (s, v) = control(&c, "POST", "poll-batch", Some(bad.clone())).await;
        assert!((400..500).contains(&s), "{bad} → {s} {v}");
    }
    sim.shutdown().await;
}
