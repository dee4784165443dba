//! Shared by the simulator's integration tests: a third-party-style WebQQ client (reqwest with
//! a cookie jar, sending what WEBQQ.md says the official page sent) and small helpers. No
//! qqfleet client code is used; the hash functions are the crate's (checked against the §4.6
//! vectors in `src/protocol/hash.rs`).
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use qqfleet::sim::{serve, SimConfig, SimHandle};
use reqwest::redirect::Policy;
use reqwest_cookie_store::CookieStoreMutex;
use serde_json::{json, Value};

pub const S_REF: &str = "http://s.web2.qq.com/proxy.html?v=20130916001&callback=1&id=1";
pub const D_REF: &str = "http://d1.web2.qq.com/proxy.html?v=20151105001&callback=1&id=2";
pub const LOGIN_PAGE_REF: &str = "https://xui.ptlogin2.qq.com/cgi-bin/xlogin?daid=164&target=self&style=40&pt_disable_pwd=1&mibao_css=m_webqq&appid=501004106";

/// The protocol's hashes (§4): the crate's own, whose unit tests pin every §4.6 vector, so a
/// simulator test that computes a ptqrtoken or friend-list hash uses the reference values.
#[allow(unused_imports)] // each test binary uses some of them
pub use qqfleet::protocol::hash::{friend_hash as hash_p, hash33, time33};

pub fn cfg() -> SimConfig {
    SimConfig {
        hold: Duration::from_secs(1),
        send_min_interval: Duration::ZERO,
        target_burst_per_min: 0,
        ..SimConfig::default()
    }
}

pub async fn start(c: SimConfig) -> SimHandle {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve(c, l).await.unwrap()
}

/// One browser: a cookie jar and the values the page kept.
pub struct Client {
    pub http: reqwest::Client,
    pub jar: Arc<CookieStoreMutex>,
    pub base: String,
    pub qq: u64,
    pub vfwebqq: String,
    pub psessionid: String,
    pub msg_id: i64,
}

impl Client {
    pub fn new(base: &str) -> Client {
        let jar = Arc::new(CookieStoreMutex::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Client {
            http,
            jar,
            base: base.to_string(),
            qq: 0,
            vfwebqq: String::new(),
            psessionid: String::new(),
            msg_id: 6_000_000,
        }
    }

    pub fn url(&self, host_path: &str) -> String {
        format!("{}/{}", self.base, host_path)
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        let jar = self.jar.lock().unwrap();
        jar.get("127.0.0.1", "/", name)
            .map(|c| c.value().to_string())
    }

    pub async fn get_text(&self, host_path: &str, referer: &str) -> (u16, String) {
        let r = self
            .http
            .get(self.url(host_path))
            .header("Referer", referer)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    pub async fn get_json(&self, host_path: &str, referer: &str) -> Value {
        let (_, t) = self.get_text(host_path, referer).await;
        serde_json::from_str(&t).unwrap_or_else(|_| panic!("not JSON: {t}"))
    }

    pub async fn post_r(&self, host_path: &str, referer: &str, r: &Value) -> Value {
        let t = self
            .post_raw(host_path, referer, &[("r", r.to_string())])
            .await;
        serde_json::from_str(&t).unwrap_or_else(|_| panic!("not JSON: {t}"))
    }

    pub async fn post_raw(
        &self,
        host_path: &str,
        referer: &str,
        form: &[(&str, String)],
    ) -> String {
        self.http
            .post(self.url(host_path))
            .header("Referer", referer)
            .header("Origin", "http://d1.web2.qq.com")
            .form(form)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn ptqrshow(&self) -> Vec<u8> {
        let r =
            self.http
                .get(self.url(
                    "ssl.ptlogin2.qq.com/ptqrshow?appid=501004106&e=0&l=M&s=5&d=72&v=4&t=0.4713",
                ))
                .header("Referer", LOGIN_PAGE_REF)
                .send()
                .await
                .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "image/png");
        r.bytes().await.unwrap().to_vec()
    }

    pub async fn ptqrlogin(&self) -> Vec<String> {
        let qrsig = self.cookie("qrsig").expect("qrsig cookie");
        let path = format!(
            "ssl.ptlogin2.qq.com/ptqrlogin?ptqrtoken={}&webqq_type=10&remember_uin=1&login2qq=1&aid=501004106&u1=http%3A%2F%2Fw.qq.com%2Fproxy.html%3Flogin2qq%3D1%26webqq_type%3D10&ptredirect=0&ptlang=2052&daid=164&from_ui=1&pttype=1&dumy=&fp=loginerroralert&action=0-0-1234&mibao_css=m_webqq&t=undefined&g=1&js_type=0&js_ver=10233&login_sig=&pt_randsalt=0",
            hash33(&qrsig)
        );
        let (_, t) = self.get_text(&path, LOGIN_PAGE_REF).await;
        ptui_args(&t)
    }

    /// Everything after the scan: ptqrlogin → check_sig → getvfwebqq → login2 → warm-up.
    pub async fn finish_login(&mut self) {
        let args = self.ptqrlogin().await;
        assert_eq!(args[0], "0", "{args:?}");
        let url = args[2].clone();
        assert!(url.starts_with(&format!("{}/ptlogin4.web2.qq.com/check_sig?", self.base)));
        let r = self.http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 302);
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        assert!(
            loc.starts_with(&format!("{}/w.qq.com/proxy.html", self.base)),
            "{loc}"
        );
        assert!(self.cookie("p_skey").is_some());
        let uin = self.cookie("superuin").unwrap();
        assert_eq!(self.cookie("uin").unwrap(), uin);
        self.qq = uin.trim_start_matches('o').parse().unwrap();
        self.channel_login().await;
    }

    /// `getvfwebqq` (§3.6) with the given ptwebqq, as the page sent it.
    pub async fn getvfwebqq(&self, ptwebqq: &str) -> Value {
        self.get_json(
            &format!(
                "s.web2.qq.com/api/getvfwebqq?ptwebqq={ptwebqq}&clientid=53999199&psessionid=&t=1"
            ),
            S_REF,
        )
        .await
    }

    /// getvfwebqq + login2 + get_online_buddies2 with the jar's ptwebqq (also cookie replay).
    pub async fn channel_login(&mut self) -> Value {
        let ptwebqq = self.cookie("ptwebqq").unwrap();
        let v = self.getvfwebqq(&ptwebqq).await;
        assert_eq!(v["retcode"], 0, "{v}");
        self.vfwebqq = v["result"]["vfwebqq"].as_str().unwrap().to_string();
        assert_eq!(self.vfwebqq.len(), 80);
        let l = self
            .post_r(
                "d1.web2.qq.com/channel/login2",
                D_REF,
                &json!({"ptwebqq": ptwebqq, "clientid": 53999199, "psessionid": "", "status": "online"}),
            )
            .await;
        assert_eq!(l["retcode"], 0, "{l}");
        assert_eq!(l["result"]["uin"], self.qq);
        self.psessionid = l["result"]["psessionid"].as_str().unwrap().to_string();
        let b = self.online_buddies().await;
        assert_eq!(b["retcode"], 0, "{b}");
        l
    }

    pub async fn online_buddies(&self) -> Value {
        self.get_json(
            &format!(
                "d1.web2.qq.com/channel/get_online_buddies2?vfwebqq={}&clientid=53999199&psessionid={}&t=1",
                self.vfwebqq, self.psessionid
            ),
            D_REF,
        )
        .await
    }

    pub async fn poll_text(&self) -> String {
        let ptwebqq = self.cookie("ptwebqq").unwrap_or_default();
        self.post_raw(
            "d1.web2.qq.com/channel/poll2",
            D_REF,
            &[(
                "r",
                json!({"ptwebqq": ptwebqq, "clientid": 53999199, "psessionid": self.psessionid, "key": ""})
                    .to_string(),
            )],
        )
        .await
    }

    pub async fn poll(&self) -> Value {
        let t = self.poll_text().await;
        serde_json::from_str(&t).unwrap_or_else(|_| panic!("not JSON: {t}"))
    }

    /// Polls until an event arrives (idle answers skipped), bounded.
    pub async fn poll_event(&self) -> Value {
        for _ in 0..5 {
            let v = self.poll().await;
            if v["result"].as_array().is_some_and(|a| !a.is_empty()) {
                return v["result"][0].clone();
            }
            assert_eq!(
                v,
                json!({"retcode":0,"result":[]}),
                "unexpected poll answer"
            );
        }
        panic!("no event");
    }

    pub fn content(parts: &[Value]) -> String {
        let mut items = parts.to_vec();
        items.push(
            json!(["font", {"name": "宋体", "size": 10, "style": [0, 0, 0], "color": "000000"}]),
        );
        Value::Array(items).to_string()
    }

    pub async fn send(&mut self, endpoint: &str, target: (&str, Value), parts: &[Value]) -> Value {
        self.msg_id += 1;
        let mut r = json!({"content": Self::content(parts), "face": 522, "clientid": 53999199,
                           "msg_id": self.msg_id, "psessionid": self.psessionid});
        r[target.0] = target.1;
        self.post_r(&format!("d1.web2.qq.com/channel/{endpoint}"), D_REF, &r)
            .await
    }

    pub async fn friends(&self) -> Value {
        let ptwebqq = self.cookie("ptwebqq").unwrap();
        self.post_r(
            "s.web2.qq.com/api/get_user_friends2",
            S_REF,
            &json!({"vfwebqq": self.vfwebqq, "hash": hash_p(self.qq, &ptwebqq)}),
        )
        .await
    }
}

/// Splits `ptuiCB('a','b','url','c','msg', 'nick');` the way clients did.
pub fn ptui_args(t: &str) -> Vec<String> {
    assert!(t.ends_with("\r\n"), "{t:?}");
    let inner = t
        .trim_end()
        .trim_start_matches("ptuiCB(")
        .trim_end_matches(");");
    inner
        .split(',')
        .map(|a| a.trim().trim_matches('\'').to_string())
        .collect()
}

pub async fn control(c: &Client, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("{}/sim/{path}", c.base);
    let rb = match method {
        "GET" => c.http.get(url),
        _ => c.http.post(url),
    };
    let rb = match body {
        Some(b) => rb.json(&b),
        None => rb,
    };
    let r = rb.send().await.unwrap();
    let s = r.status().as_u16();
    let t = r.text().await.unwrap();
    (s, serde_json::from_str(&t).unwrap_or(Value::String(t)))
}

/// Decodes the QR PNG and returns the URL it encodes.
pub fn decode_qr(png: &[u8]) -> String {
    let img = image::load_from_memory(png).unwrap().to_luma8();
    let (w, h) = img.dimensions();
    let mut prepared =
        rqrr::PreparedImage::prepare_from_greyscale(w as usize, h as usize, |x, y| {
            img.get_pixel(x as u32, y as u32).0[0]
        });
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().unwrap().1
}

/// Logs a fresh client in through the QR path as `qq`, scanning via the control API with the
/// token read from the PNG.
pub async fn login(base: &str, qq: u64) -> Client {
    let mut c = Client::new(base);
    let png = c.ptqrshow().await;
    let url = decode_qr(&png);
    let token = url
        .split("k=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string();
    let (s, v) = control(
        &c,
        "POST",
        "qr/scan",
        Some(json!({"token": token, "qq": qq, "confirm": true})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    c.finish_login().await;
    assert_eq!(c.qq, qq);
    c
}

/// Waits (bounded) until the simulator holds `n` polls.
pub async fn wait_pending(c: &Client, n: u64) {
    for _ in 0..100 {
        let (_, st) = control(c, "GET", "stats", None).await;
        if st["pending_polls"] == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("pending_polls never reached {n}");
}

/// Waits (bounded) until the client's QR is confirmed (auto-scan).
pub async fn wait_qr_confirmed(c: &Client) {
    let qrsig = c.cookie("qrsig").expect("qrsig");
    for _ in 0..100 {
        let (_, qrs) = control(c, "GET", "qr", None).await;
        let confirmed = qrs.as_array().is_some_and(|a| {
            a.iter()
                .any(|q| q["qrsig"] == qrsig.as_str() && q["state"] == "confirmed")
        });
        if confirmed {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("QR never confirmed");
}
