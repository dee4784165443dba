//! Structural comparator: every simulator answer has the same JSON structure (keys, nesting,
//! value types) as the real captured payload in `tests/fixtures/` (copied from the protocol
//! reference, provenance in its README). ptlogin answers are compared argument by argument,
//! the check_sig 302 by its cookies and Location. The test fails if a fixture in the folder
//! is not compared, so the folder is the list of what the comparator covers.

mod sim_common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use qqfleet::sim::{IdleAnswer, SimConfig};
use serde_json::{json, Value};
use sim_common::*;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Shape {
    Null,
    Bool,
    Number,
    Str,
    Array(BTreeSet<Shape>),
    Object(BTreeMap<String, Shape>),
}

fn shape(v: &Value) -> Shape {
    match v {
        Value::Null => Shape::Null,
        Value::Bool(_) => Shape::Bool,
        Value::Number(_) => Shape::Number,
        Value::String(_) => Shape::Str,
        Value::Array(a) => Shape::Array(a.iter().map(shape).collect()),
        Value::Object(o) => Shape::Object(o.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
    }
}

/// Whether two shapes agree. An empty array on either side says nothing about its elements
/// and matches any array; otherwise every element shape on each side must match one on the
/// other (arrays such as `content` mix a font item and strings).
fn agree(a: &Shape, b: &Shape, path: &str) -> Result<(), String> {
    match (a, b) {
        (Shape::Object(x), Shape::Object(y)) => {
            let kx: BTreeSet<&String> = x.keys().collect();
            let ky: BTreeSet<&String> = y.keys().collect();
            if kx != ky {
                return Err(format!(
                    "{path}: keys differ; only ours {:?}, only fixture {:?}",
                    kx.difference(&ky).collect::<Vec<_>>(),
                    ky.difference(&kx).collect::<Vec<_>>()
                ));
            }
            for k in kx {
                agree(&x[k], &y[k], &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        (Shape::Array(x), Shape::Array(y)) => {
            if x.is_empty() || y.is_empty() {
                return Ok(());
            }
            for (from, to, side) in [(x, y, "ours"), (y, x, "fixture")] {
                for e in from {
                    if !to.iter().any(|f| agree(e, f, path).is_ok()) {
                        let why = to
                            .iter()
                            .map(|f| agree(e, f, &format!("{path}[]")).unwrap_err())
                            .collect::<Vec<_>>();
                        return Err(format!(
                            "{path}[]: an element of {side} matches nothing: {why:?}"
                        ));
                    }
                }
            }
            Ok(())
        }
        (x, y) if x == y => Ok(()),
        (x, y) => Err(format!("{path}: {x:?} vs {y:?}")),
    }
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fixture_text(name: &str) -> String {
    std::fs::read_to_string(fixture_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

struct Checker {
    covered: BTreeSet<String>,
}

impl Checker {
    fn json(&mut self, name: &str, ours: &Value) {
        let theirs: Value = serde_json::from_str(&fixture_text(name)).unwrap();
        if let Err(e) = agree(&shape(ours), &shape(&theirs), "$") {
            panic!("{name}: {e}\nours: {ours}");
        }
        self.covered.insert(name.to_string());
    }

    /// ptuiCB answers: same number of arguments, same code and fixed arguments, same message
    /// text up to the opaque number, the nick argument present; for 0 the check_sig URL has
    /// the same path and the same query keys in the same order.
    fn ptui(&mut self, name: &str, ours: &str, base: &str) {
        let theirs = fixture_text(name);
        let a = ptui_args(ours);
        // One fixture was reassembled from a log without its CRLF.
        let b = ptui_args(&format!("{}\r\n", theirs.trim_end()));
        assert_eq!(a.len(), b.len(), "{name}: {ours}");
        assert_eq!(a[0], b[0], "{name}");
        assert_eq!(a[1], b[1], "{name}");
        assert_eq!(a[3], b[3], "{name}");
        let msg = |m: &str| m.split('(').next().unwrap().to_string();
        assert_eq!(msg(&a[4]), msg(&b[4]), "{name}");
        if b[2].is_empty() {
            assert!(a[2].is_empty(), "{name}");
        } else {
            let ours_url = url::Url::parse(&a[2]).unwrap();
            let real = url::Url::parse(&b[2]).unwrap();
            assert!(
                a[2].starts_with(base),
                "{name}: points back into the simulator"
            );
            assert_eq!(
                ours_url.path(),
                format!("/{}{}", real.host_str().unwrap(), real.path()),
                "{name}"
            );
            let keys = |u: &url::Url| {
                u.query_pairs()
                    .map(|(k, _)| k.into_owned())
                    .collect::<Vec<_>>()
            };
            assert_eq!(keys(&ours_url), keys(&real), "{name}");
            assert!(!a[5].is_empty(), "{name}: nickname");
        }
        self.covered.insert(name.to_string());
    }
}

/// The real number of the account's n-th group, from the control API.
async fn code_number(c: &Client, n: usize) -> u64 {
    let (_, contacts) = control(c, "GET", &format!("accounts/{}/contacts", c.qq), None).await;
    contacts["groups"][n]["number"].as_u64().unwrap()
}

fn cfg() -> SimConfig {
    SimConfig {
        hold: Duration::from_millis(300),
        send_min_interval: Duration::ZERO,
        target_burst_per_min: 0,
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn every_answer_has_the_structure_of_its_fixture() {
    let mut ck = Checker {
        covered: BTreeSet::new(),
    };
    let sim = start(cfg()).await;
    let base = sim.base_url();

    // ptlogin.
    let mut c = Client::new(&base);
    c.ptqrshow().await;
    let qrsig = c.cookie("qrsig").unwrap();
    let (_, t) = c
        .get_text(
            &format!("ssl.ptlogin2.qq.com/ptqrlogin?ptqrtoken={}", hash33(&qrsig)),
            "",
        )
        .await;
    ck.ptui("ptqrlogin_66.txt", &t, &base);
    ck.ptui("ptqrlogin_66_b.txt", &t, &base);
    control(
        &c,
        "POST",
        "qr/scan",
        Some(json!({"qrsig": qrsig, "qq": 1029384756u64, "confirm": false})),
    )
    .await;
    let (_, t) = c
        .get_text(
            &format!("ssl.ptlogin2.qq.com/ptqrlogin?ptqrtoken={}", hash33(&qrsig)),
            "",
        )
        .await;
    ck.ptui("ptqrlogin_67.txt", &t, &base);
    control(&c, "POST", "qr/confirm", Some(json!({"qrsig": qrsig}))).await;
    let (_, t) = c
        .get_text(
            &format!("ssl.ptlogin2.qq.com/ptqrlogin?ptqrtoken={}", hash33(&qrsig)),
            "",
        )
        .await;
    ck.ptui("ptqrlogin_0_success.txt", &t, &base);
    ck.ptui("ptqrlogin_0_success_sanitised.txt", &t, &base);
    let url = ptui_args(&t)[2].clone();
    let (_, t) = c
        .get_text(
            &format!("ssl.ptlogin2.qq.com/ptqrlogin?ptqrtoken={}", hash33(&qrsig)),
            "",
        )
        .await;
    ck.ptui("ptqrlogin_65.txt", &t, &base);
    ck.ptui("ptqrlogin_65_b.txt", &t, &base);

    // check_sig: a 302 with the same cookies set and the same Location (inside the simulator).
    let r = c.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let ours_cookies: BTreeSet<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split('=').next().unwrap().to_string())
        .collect();
    let fixture = fixture_text("check_sig_302_headers.txt");
    let real_cookies: BTreeSet<String> = fixture
        .lines()
        .filter_map(|l| l.strip_prefix("Set-Cookie:"))
        .filter(|l| !l.contains("EXPIRES=Fri, 02-Jan-1970"))
        .map(|l| l.split('=').next().unwrap().trim().to_string())
        .collect();
    assert_eq!(ours_cookies, real_cookies);
    let real_loc = fixture
        .lines()
        .find_map(|l| l.strip_prefix("Location:"))
        .unwrap()
        .trim()
        .trim_start_matches("http://");
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("{base}/{real_loc}")
    );
    ck.covered.insert("check_sig_302_headers.txt".into());
    c.qq = 1029384756;

    // Channel login.
    let ptwebqq = c.cookie("ptwebqq").unwrap();
    let v = c.getvfwebqq(&ptwebqq).await;
    ck.json("getvfwebqq_ok_2017.json", &v);
    ck.json("getvfwebqq_ok_2015.json", &v);
    c.vfwebqq = v["result"]["vfwebqq"].as_str().unwrap().to_string();
    let stranger = Client::new(&base);
    let e = stranger
        .post_r(
            "d1.web2.qq.com/channel/login2",
            D_REF,
            &json!({"ptwebqq": "", "clientid": 53999199, "psessionid": "", "status": "online"}),
        )
        .await;
    ck.json("login2_error_108.json", &e);
    let l = c
        .post_r("d1.web2.qq.com/channel/login2", D_REF, &json!({"ptwebqq": ptwebqq, "clientid": 53999199, "psessionid": "", "status": "online"}))
        .await;
    for f in [
        "login2_ok_2017.json",
        "login2_ok_2013.json",
        "login2_ok_2013b.json",
        "login2_ok_2013c.json",
    ] {
        ck.json(f, &l);
    }
    c.psessionid = l["result"]["psessionid"].as_str().unwrap().to_string();
    // Before the warm-up poll answers 103.
    let p103 = c.poll().await;
    ck.json("poll2_103.json", &p103);
    ck.json("poll2_103_e1.json", &p103);
    let ob = c.online_buddies().await;
    ck.json("get_online_buddies2_ok.json", &ob);

    // Lists and profiles.
    let f = c.friends().await;
    ck.json("get_user_friends2_ok_scienjus.json", &f);
    ck.json("get_user_friends2_ok_2015.json", &f);
    let g = c
        .post_r(
            "s.web2.qq.com/api/get_group_name_list_mask2",
            S_REF,
            &json!({"vfwebqq": c.vfwebqq, "hash": hash_p(c.qq, &ptwebqq)}),
        )
        .await;
    ck.json("get_group_name_list_mask2_ok_scienjus.json", &g);
    let code = g["result"]["gnamelist"][0]["code"].as_u64().unwrap();
    let gi = c
        .get_json(
            &format!(
                "s.web2.qq.com/api/get_group_info_ext2?gcode={code}&vfwebqq={}&t=1",
                c.vfwebqq
            ),
            S_REF,
        )
        .await;
    ck.json("get_group_info_ext2_ok_scienjus.json", &gi);
    ck.json("get_group_info_ext2_ok_2017.json", &gi);
    let dl = c
        .get_json(
            &format!(
                "s.web2.qq.com/api/get_discus_list?clientid=53999199&psessionid={}&vfwebqq={}&t=1",
                c.psessionid, c.vfwebqq
            ),
            S_REF,
        )
        .await;
    ck.json("get_discus_list_ok_2015.json", &dl);
    ck.json("get_discus_list_ok_2014.json", &dl);
    let did = dl["result"]["dnamelist"][0]["did"].as_u64().unwrap();
    let di = c
        .get_json(&format!("d1.web2.qq.com/channel/get_discu_info?did={did}&vfwebqq={}&clientid=53999199&psessionid={}&t=1", c.vfwebqq, c.psessionid), D_REF)
        .await;
    ck.json("get_discu_info_ok_2014.json", &di);
    let me = c
        .get_json("s.web2.qq.com/api/get_self_info2?t=1", S_REF)
        .await;
    ck.json("get_self_info2_ok_2017.json", &me);
    ck.json("get_self_info2_ok_2015.json", &me);
    let fuin = f["result"]["friends"][0]["uin"].as_u64().unwrap();
    let fi = c
        .get_json(&format!("s.web2.qq.com/api/get_friend_info2?tuin={fuin}&vfwebqq={}&clientid=53999199&psessionid={}&t=1", c.vfwebqq, c.psessionid), S_REF)
        .await;
    ck.json("get_friend_info2_ok_2017.json", &fi);
    ck.json("get_friend_info2_ok_scienjus.json", &fi);
    let ln = c
        .get_json(
            &format!(
                "s.web2.qq.com/api/get_single_long_nick2?tuin={fuin}&vfwebqq={}&t=1",
                c.vfwebqq
            ),
            S_REF,
        )
        .await;
    for f in [
        "get_single_long_nick2_ok_2017.json",
        "get_single_long_nick2_ok_mojo.json",
        "get_single_long_nick2_ok_scienjus.json",
    ] {
        ck.json(f, &ln);
    }
    let fu = c
        .get_json(
            &format!(
                "s.web2.qq.com/api/get_friend_uin2?tuin={fuin}&type=1&vfwebqq={}&t=1",
                c.vfwebqq
            ),
            S_REF,
        )
        .await;
    ck.json("get_friend_uin2_user_ok.json", &fu);
    let gid = g["result"]["gnamelist"][0]["gid"].as_u64().unwrap();
    let gu = c
        .get_json(
            &format!(
                "s.web2.qq.com/api/get_friend_uin2?tuin={gid}&type=4&vfwebqq={}&t=1",
                c.vfwebqq
            ),
            S_REF,
        )
        .await;
    assert_eq!(gu["result"]["account"], json!(code_number(&c, 0).await));
    ck.json("get_friend_uin2_group_ok.json", &gu);
    let rl = c
        .post_r(
            "d1.web2.qq.com/channel/get_recent_list2",
            D_REF,
            &json!({"vfwebqq": c.vfwebqq, "clientid": 53999199, "psessionid": c.psessionid}),
        )
        .await;
    ck.json("get_recent_list2_ok_DISPUTED.json", &rl);

    // Events.
    let qq = c.qq;
    let inject = |kind: &str, text: &str| json!({"qq": qq, "kind": kind, "text": text});
    control(&c, "POST", "inject", Some(inject("buddy", "好啊"))).await;
    ck.json("poll2_message_2015.json", &c.poll().await);
    control(&c, "POST", "inject", Some(inject("group", "好啊"))).await;
    ck.json("poll2_group_message_2015.json", &c.poll().await);
    control(&c, "POST", "inject", Some(inject("discu", "好啊"))).await;
    ck.json("poll2_discu_message_2015.json", &c.poll().await);
    control(&c, "POST", "inject", Some(inject("sess", "2载3 [face:1] "))).await;
    let sess = c.poll().await;
    ck.json("poll2_sess_message_2013.json", &sess);
    control(&c, "POST", "inject", Some(inject("input_notify", ""))).await;
    ck.json("poll2_input_notify.json", &c.poll().await);
    control(&c, "POST", "inject", Some(inject("status", ""))).await;
    ck.json("poll2_buddies_status_change_2013.json", &c.poll().await);

    // Sends and their errors.
    let sess_uin = sess["result"][0]["value"]["from_uin"].as_u64().unwrap();
    let sig = c
        .get_json(&format!("d1.web2.qq.com/channel/get_c2cmsg_sig2?id={code}&to_uin={sess_uin}&service_type=0&clientid=53999199&psessionid={}&t=1", c.psessionid), D_REF)
        .await;
    ck.json("get_c2cmsg_sig2_ok_PLACEHOLDER.json", &sig);
    let ok = c
        .send("send_buddy_msg2", ("to", json!(fuin)), &[json!("hi")])
        .await;
    ck.json("send_ok_errcode0.json", &ok);
    let _echo = c.poll().await;
    let long = "a".repeat(800);
    let e = c
        .send("send_buddy_msg2", ("to", json!(fuin)), &[json!(long)])
        .await;
    ck.json("send_1202_b.json", &e);
    ck.json("send_1202.json", &e);
    control(
        &c,
        "POST",
        "faults",
        Some(json!({"qq": qq, "endpoint": "send_buddy_msg2", "retcode": 100100})),
    )
    .await;
    let e = c
        .send("send_buddy_msg2", ("to", json!(fuin)), &[json!("x")])
        .await;
    ck.json("send_100100.json", &e);
    let cs = c
        .get_json(&format!("d1.web2.qq.com/channel/change_status2?newstatus=away&clientid=53999199&psessionid={}&t=1", c.psessionid), D_REF)
        .await;
    ck.json("change_status2_ok.json", &cs);

    // Poll errors.
    control(
        &c,
        "POST",
        "faults",
        Some(json!({"qq": qq, "endpoint": "poll2", "retcode": 121})),
    )
    .await;
    ck.json("poll2_121.json", &c.poll().await);
    control(
        &c,
        "POST",
        "faults",
        Some(json!({"qq": qq, "endpoint": "poll2", "retcode": 116})),
    )
    .await;
    let p = c.poll().await;
    ck.json("poll2_116.json", &p);
    let no_ref = c
        .http
        .post(c.url("d1.web2.qq.com/channel/poll2"))
        .form(&[("r", "{}")])
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    ck.json("poll2_100001.json", &no_ref);
    let bad: Value =
        serde_json::from_str(&c.post_raw("d1.web2.qq.com/channel/poll2", D_REF, &[]).await)
            .unwrap();
    ck.json("poll2_100006.json", &bad);
    // Friend-list lockout.
    control(&c, "POST", "clock/advance", Some(json!({"seconds": 1}))).await;
    let mut last = Value::Null;
    for _ in 0..16 {
        last = c
            .post_r(
                "s.web2.qq.com/api/get_user_friends2",
                S_REF,
                &json!({"vfwebqq": c.vfwebqq, "hash": hash_p(c.qq, p["p"].as_str().unwrap())}),
            )
            .await;
    }
    ck.json("get_user_friends2_retcode6.json", &last);
    // Kick.
    control(&c, "POST", "kick", Some(json!({"qq": qq}))).await;
    ck.json("poll2_kick_message_2012.json", &c.poll().await);
    sim.shutdown().await;

    // The other idle answers, chosen by the idle_answer knob.
    for (answer, name) in [
        (IdleAnswer::Errmsg, "poll2_idle_e3.json"),
        (IdleAnswer::Retcode102, "poll2_102.json"),
    ] {
        let sim = start(SimConfig {
            idle_answer: answer,
            ..cfg()
        })
        .await;
        // An account with no friends and no groups gives the empty list answers.
        let probe = Client::new(&sim.base_url());
        control(
            &probe,
            "POST",
            "accounts",
            Some(json!({"qq": 1122339, "friends": 0, "groups": 0})),
        )
        .await;
        let c = login(&sim.base_url(), 1122339).await;
        ck.json(name, &c.poll().await);
        let ob = c.online_buddies().await;
        assert_eq!(ob["result"], json!([]));
        ck.json("get_online_buddies2_empty.json", &ob);
        let ptwebqq = c.cookie("ptwebqq").unwrap();
        let g = c
            .post_r(
                "s.web2.qq.com/api/get_group_name_list_mask2",
                S_REF,
                &json!({"vfwebqq": c.vfwebqq, "hash": hash_p(c.qq, &ptwebqq)}),
            )
            .await;
        assert_eq!(g["result"]["gnamelist"], json!([]));
        ck.json("get_group_name_list_mask2_ok_empty_2015.json", &g);
        sim.shutdown().await;
    }

    // Every fixture of the README's simulator section was compared (the folder also holds
    // samples only the protocol client decodes, listed in a later section).
    let readme = std::fs::read_to_string(fixture_dir().join("README.md")).unwrap();
    let section = readme
        .split("## ")
        .find(|s| s.starts_with("Compared with the simulator's answers"))
        .expect("README section of the simulator's fixtures");
    let all: BTreeSet<String> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect();
    assert!(all.len() >= 40, "README lists {} fixtures", all.len());
    let missing: Vec<_> = all.difference(&ck.covered).collect();
    assert!(missing.is_empty(), "fixtures not compared: {missing:?}");
}

#[test]
fn comparator_catches_differences() {
    let a = shape(&json!({"retcode": 0, "result": {"x": [1, 2]}}));
    assert!(agree(&a, &shape(&json!({"retcode": 5, "result": {"x": []}})), "$").is_ok());
    assert!(agree(
        &a,
        &shape(&json!({"retcode": "0", "result": {"x": [1]}})),
        "$"
    )
    .is_err());
    assert!(agree(
        &a,
        &shape(&json!({"retcode": 0, "result": {"y": [1]}})),
        "$"
    )
    .is_err());
    assert!(agree(
        &a,
        &shape(&json!({"retcode": 0, "result": {"x": ["s"]}})),
        "$"
    )
    .is_err());
    assert!(agree(&a, &shape(&json!({"retcode": 0})), "$").is_err());
}
