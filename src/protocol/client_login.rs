//! The login steps of [`Client`]: the QR login page and code, its status, the ptlogin
//! redirect and `check_sig`, the channel login (`login2`, `getvfwebqq`, the warm-up), and the
//! ways back without a scan (relink, resume, pt4_auth), then logout. Requests are built by
//! `Client::request` (`client_request.rs`).

use super::*;

impl Client {
    /// Loads the login frame once, like the page did (§3.2; optional, so failures are only
    /// logged).
    pub(super) async fn load_login_page(&self) {
        if std::mem::replace(&mut self.state().login_page_loaded, true) {
            return;
        }
        let url = self.inner.endpoints.login_page();
        match self
            .request(
                Endpoint::Xlogin,
                &url,
                &[],
                None,
                self.inner.opts.request_timeout,
            )
            .await
        {
            Ok(a) => tracing::debug!(status = a.status, "login frame loaded"),
            Err(e) => tracing::debug!(error = %e, "login frame not loaded (optional)"),
        }
    }

    /// Fetches a new QR code (§3.3). Each fetch invalidates the previous one.
    pub async fn fetch_qr(&self) -> Result<Qr, ProtocolError> {
        self.load_login_page().await;
        let ep = Endpoint::Ptqrshow;
        let t: f64 = rand::random();
        let a = self
            .call_ok(
                ep,
                &[
                    ("appid", crate::protocol::endpoints::APPID.to_string()),
                    ("e", "2".into()),
                    ("l", "M".into()),
                    ("s", "3".into()),
                    ("d", "72".into()),
                    ("v", "4".into()),
                    // §3.3: a fixed t=0.1 gave a QR that opened a blank page; random float
                    ("t", format!("{t:.16}")),
                    ("daid", "164".into()),
                    ("pt_3rd_aid", "0".into()),
                ],
                None,
            )
            .await?;
        if !a.body.starts_with(b"\x89PNG\r\n\x1a\n") {
            return Err(ProtocolError::undecodable(
                ep,
                format!("not a PNG (content type {:?})", a.content_type),
                &a.body,
            ));
        }
        let qrsig = self
            .cookie("qrsig")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ProtocolError::undecodable(ep, "no qrsig cookie", b""))?;
        Ok(Qr { png: a.body, qrsig })
    }

    /// Asks where a QR code stands (§3.4). Call every 1-3 s.
    pub async fn check_qr(&self, qr: &Qr) -> Result<QrStatus, ProtocolError> {
        let ep = Endpoint::Ptqrlogin;
        let since_load = self.inner.page_loaded.elapsed().as_millis();
        let q: Vec<(&str, String)> = vec![
            ("ptqrtoken", hash::hash33(&qr.qrsig).to_string()),
            ("webqq_type", "10".into()),
            ("remember_uin", "1".into()),
            ("login2qq", "1".into()),
            ("aid", crate::protocol::endpoints::APPID.into()),
            (
                "u1",
                "http://w.qq.com/proxy.html?login2qq=1&webqq_type=10".into(),
            ),
            ("ptredirect", "0".into()),
            ("ptlang", "2052".into()),
            ("daid", "164".into()),
            ("from_ui", "1".into()),
            ("pttype", "1".into()),
            ("dumy", String::new()),
            ("fp", "loginerroralert".into()),
            ("action", format!("0-0-{since_load}")),
            ("mibao_css", "m_webqq".into()),
            ("t", "undefined".into()),
            ("g", "1".into()),
            ("js_type", "0".into()),
            ("js_ver", "10233".into()),
            ("login_sig", String::new()),
            ("pt_randsalt", "0".into()),
        ];
        let a = self.call_ok(ep, &q, None).await?;
        let body = String::from_utf8_lossy(&a.body);
        let ans = ptlogin::parse_ptqrlogin(&body)
            .ok_or_else(|| ProtocolError::undecodable(ep, "no ptuiCB(...)", &a.body))?;
        Ok(match ans {
            QrAnswer::Waiting => QrStatus::Waiting,
            QrAnswer::Scanned => QrStatus::Scanned,
            QrAnswer::Expired => QrStatus::Expired,
            QrAnswer::Confirmed {
                check_sig_url,
                nick,
            } => QrStatus::Confirmed {
                qq: self.ptlogin_qq().unwrap_or(0),
                check_sig_url,
                nick,
            },
            QrAnswer::Refused { code, message } => {
                return Err(ProtocolError::LoginRefused {
                    endpoint: ep,
                    code,
                    message,
                })
            }
        })
    }

    /// The QQ number ptlogin says we are (cookies `superuin`/`uin`, §3.4, §16).
    pub(super) fn ptlogin_qq(&self) -> Option<u64> {
        self.cookie("superuin")
            .and_then(|v| ptlogin::qq_from_cookie(&v))
            .or_else(|| self.cookie("uin").and_then(|v| ptlogin::qq_from_cookie(&v)))
    }

    /// Finishes a login after a confirmed scan: check_sig, cookie proxy, getvfwebqq, login2,
    /// the get_online_buddies2 warm-up (§3.5-§3.8). With `expect_qq`, a scan by another QQ
    /// number is refused with `WrongAccount` before anything else is called.
    pub async fn complete_login(
        &self,
        check_sig_url: &str,
        expect_qq: Option<u64>,
    ) -> Result<(), ProtocolError> {
        let got = self.ptlogin_qq();
        if let (Some(expected), Some(got)) = (expect_qq, got) {
            if expected != got {
                return Err(ProtocolError::WrongAccount { expected, got });
            }
        }
        self.check_sig(check_sig_url).await?;
        // The ptlogin login exists from check_sig on; its ~2-day life counts from here.
        self.state().logged_in_at = now_ms() / 1000;
        self.finish_login(expect_qq.or(got)).await
    }

    /// The first half of [`Client::complete_login`]: check_sig, after which the cookies of
    /// the completed scan are in the jar, so [`Client::session`] can be saved and a crash
    /// before the rest of the login resumes without a new scan.
    pub async fn complete_scan(
        &self,
        check_sig_url: &str,
        expect_qq: Option<u64>,
    ) -> Result<(), ProtocolError> {
        if let (Some(expected), Some(got)) = (expect_qq, self.ptlogin_qq()) {
            if expected != got {
                return Err(ProtocolError::WrongAccount { expected, got });
            }
        }
        self.check_sig(check_sig_url).await?;
        self.state().logged_in_at = now_ms() / 1000;
        Ok(())
    }

    /// The second half of [`Client::complete_login`]: getvfwebqq, login2, the warm-up.
    pub async fn finish_login(&self, expect_qq: Option<u64>) -> Result<(), ProtocolError> {
        self.channel_login(expect_qq.or(self.ptlogin_qq())).await?;
        let mut st = self.state();
        st.kicked = None;
        Ok(())
    }

    /// check_sig (§3.5): the cookies come on the 302; then follow it to proxy.html as the
    /// browser did, and copy p_skey/p_uin to w.qq.com (the cookie proxy).
    pub(super) async fn check_sig(&self, url: &str) -> Result<(), ProtocolError> {
        let ep = Endpoint::CheckSig;
        if !self.inner.endpoints.owns(url) {
            return Err(ProtocolError::undecodable(
                ep,
                "check_sig URL points outside the service",
                b"",
            ));
        }
        let a = self
            .request(ep, url, &[], None, self.inner.opts.request_timeout)
            .await?;
        match a.status {
            301 | 302 | 303 | 307 => {
                if let Some(loc) = a.location.filter(|l| self.inner.endpoints.owns(l)) {
                    // static page; harmless if it fails (§3.5)
                    if let Err(e) = self
                        .request(
                            Endpoint::Proxy,
                            &loc,
                            &[],
                            None,
                            self.inner.opts.request_timeout,
                        )
                        .await
                    {
                        tracing::debug!(error = %e, "proxy.html not loaded");
                    }
                }
            }
            200 => {}
            status => {
                return Err(ProtocolError::HttpStatus {
                    endpoint: ep,
                    status,
                })
            }
        }
        if self.cookie("p_skey").is_none() && self.cookie("skey").is_none() {
            return Err(ProtocolError::undecodable(
                ep,
                "check_sig set no p_skey/skey cookie",
                b"",
            ));
        }
        // cookie proxy (§3.5): the page copied p_skey and p_uin to w.qq.com
        for name in ["p_skey", "p_uin"] {
            if let Some(v) = self.cookie(name) {
                self.set_cookie(Host::W, "w.qq.com", name, &v);
            }
        }
        Ok(())
    }

    /// getvfwebqq + login2 + warm-up (§3.6-§3.8), from the ptlogin cookies in the jar.
    pub(super) async fn channel_login(&self, expect_qq: Option<u64>) -> Result<(), ProtocolError> {
        let ptwebqq = self.cookie("ptwebqq").unwrap_or_default();
        let clientid = self.state().clientid;
        let vf = self
            .call_result(
                Endpoint::Getvfwebqq,
                &[
                    ("ptwebqq", ptwebqq.clone()),
                    ("clientid", clientid.to_string()),
                    ("psessionid", String::new()),
                    ("t", now_ms().to_string()),
                ],
                None,
            )
            .await?;
        let vfwebqq = vf
            .get("vfwebqq")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ProtocolError::undecodable(Endpoint::Getvfwebqq, "no vfwebqq", b""))?
            .to_string();
        let r = ordered(&[
            ("ptwebqq", json!(ptwebqq)),
            ("clientid", json!(clientid)),
            ("psessionid", json!("")),
            ("status", json!("online")),
        ]);
        let res = self.call_result(Endpoint::Login2, &[], Some(r)).await?;
        let psessionid = res
            .get("psessionid")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ProtocolError::undecodable(Endpoint::Login2, "no psessionid", b""))?
            .to_string();
        let uin = num(&res, "uin")
            .ok_or_else(|| ProtocolError::undecodable(Endpoint::Login2, "no uin", b""))?;
        if let Some(expected) = expect_qq {
            // §16: one client stops unless login2's uin equals the ptlogin number
            if expected != uin {
                return Err(ProtocolError::WrongAccount { expected, got: uin });
            }
        }
        {
            let mut st = self.state();
            st.uin = uin;
            st.ptwebqq = ptwebqq;
            st.vfwebqq = vfwebqq;
            st.psessionid = psessionid;
            st.contacts = None;
            st.channel_since = now_ms();
            st.sess_sigs.clear();
            st.logged_out = false;
        }
        self.warm_up().await
    }

    /// The mandatory get_online_buddies2 after login2 (§3.8): without it poll2 answers 103.
    pub(super) async fn warm_up(&self) -> Result<(), ProtocolError> {
        self.online_buddies().await.map(|_| ())
    }

    pub(super) async fn online_buddies(&self) -> Result<Vec<contacts::OnlineBuddy>, ProtocolError> {
        let ep = Endpoint::GetOnlineBuddies2;
        let (_, vfwebqq, psessionid, clientid) = self.channel()?;
        let r = self
            .call_result(
                ep,
                &[
                    ("vfwebqq", vfwebqq),
                    ("clientid", clientid.to_string()),
                    ("psessionid", psessionid),
                    ("t", now_ms().to_string()),
                ],
                None,
            )
            .await?;
        contacts::decode_online(&r).map_err(|e| ProtocolError::undecodable(ep, e, b""))
    }

    /// Is the channel alive? get_online_buddies2 as a probe (§6.8, §5.2 on 103). `Ok(false)`
    /// when the server answers with a non-zero retcode.
    pub async fn probe(&self) -> Result<bool, ProtocolError> {
        match self.online_buddies().await {
            Ok(_) => Ok(true),
            Err(ProtocolError::Retcode { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Re-establishes the channel with the current psessionid (§3.7), then warms up again.
    /// A non-zero retcode means a relogin is needed (`Retcode` with action `Relogin`).
    pub async fn relink(&self) -> Result<(), ProtocolError> {
        self.check_kicked()?;
        let ep = Endpoint::Login2;
        let (ptwebqq, _, psessionid, clientid) = self.channel()?;
        let r = ordered(&[
            ("status", json!("online")),
            ("key", json!("")),
            ("ptwebqq", json!(ptwebqq)),
            ("clientid", json!(clientid)),
            ("psessionid", json!(psessionid)),
        ]);
        let res = match self.call_result(ep, &[], Some(r)).await {
            Ok(r) => r,
            Err(ProtocolError::Retcode { retcode, .. }) => {
                // §3.7: any non-zero retcode of a relink → full relogin
                return Err(ProtocolError::Retcode {
                    endpoint: ep,
                    retcode,
                    action: Action::Relogin,
                });
            }
            Err(e) => return Err(e),
        };
        {
            let mut st = self.state();
            if let Some(ps) = res
                .get("psessionid")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                st.psessionid = ps.to_string();
            }
            if let Some(p) = res
                .get("ptwebqq")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                st.ptwebqq = p.to_string();
            }
        }
        self.warm_up().await
    }

    /// Resumes a saved session without a scan (§3.10). In order: if the saved channel still
    /// answers `get_online_buddies2`, keep it (pandolia tested a pickled session this way);
    /// else `pt4_auth` with the supertoken → check_sig → channel login; else cookie replay
    /// (getvfwebqq + login2). When the server refuses all of them, the ptlogin cookies are
    /// dead: `SessionDead`. Transport errors stay transport errors (the session may still be
    /// fine).
    pub async fn resume(&self) -> Result<(), ProtocolError> {
        self.resume_with(true).await
    }

    /// [`Client::resume`] that always builds a new channel (skips the probe of the saved one).
    pub async fn resume_new_channel(&self) -> Result<(), ProtocolError> {
        self.resume_with(false).await
    }

    pub(super) async fn resume_with(&self, probe_first: bool) -> Result<(), ProtocolError> {
        if probe_first && self.channel().is_ok() && self.probe().await? {
            tracing::info!("saved channel still alive");
            self.state().kicked = None;
            return Ok(());
        }
        let expect = Some(self.state().uin).filter(|&u| u != 0);
        let dead = |e: ProtocolError| match e {
            ProtocolError::Retcode {
                endpoint, retcode, ..
            }
            | ProtocolError::SendRejected {
                endpoint, retcode, ..
            } => ProtocolError::SessionDead {
                endpoint,
                reason: format!("retcode {retcode}"),
            },
            ProtocolError::RateLimited { endpoint, .. } => ProtocolError::SessionDead {
                endpoint,
                reason: "rate limited".into(),
            },
            ProtocolError::Undecodable {
                endpoint, reason, ..
            } => ProtocolError::SessionDead { endpoint, reason },
            // check_sig refuses a dead ptsigx with a 4xx
            ProtocolError::HttpStatus { endpoint, status } if (400..500).contains(&status) => {
                ProtocolError::SessionDead {
                    endpoint,
                    reason: format!("HTTP {status}"),
                }
            }
            other => other,
        };
        if let (Some(supertoken), Some(_)) = (self.cookie("supertoken"), self.cookie("superuin")) {
            match self.pt4_auth(&supertoken).await {
                Ok(Some(url)) => {
                    self.check_sig(&url).await.map_err(dead)?;
                    self.channel_login(expect).await.map_err(dead)?;
                    self.state().kicked = None;
                    return Ok(());
                }
                Ok(None) => tracing::info!("pt4_auth offered no check_sig; trying cookie replay"),
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => tracing::info!(error = %e, "pt4_auth failed; trying cookie replay"),
            }
        }
        if self.cookie("skey").is_none() && self.cookie("p_skey").is_none() {
            return Err(ProtocolError::SessionDead {
                endpoint: Endpoint::Pt4Auth,
                reason: "no ptlogin cookies left".into(),
            });
        }
        self.channel_login(expect).await.map_err(dead)?;
        self.state().kicked = None;
        Ok(())
    }

    pub(super) async fn pt4_auth(&self, supertoken: &str) -> Result<Option<String>, ProtocolError> {
        let ep = Endpoint::Pt4Auth;
        let a = self
            .call_ok(
                ep,
                &[
                    ("daid", "164".into()),
                    ("appid", crate::protocol::endpoints::APPID.into()),
                    ("auth_token", hash::time33(supertoken).to_string()),
                ],
                None,
            )
            .await?;
        let url = ptlogin::parse_pt4_auth(&String::from_utf8_lossy(&a.body));
        Ok(url.filter(|u| self.inner.endpoints.owns(u)))
    }

    // ---------------------------------------------------------------- logout (§10)

    /// Logs out as the E3 clients did (§10): `change_status2?newstatus=offline` ends the
    /// channel (lwqq's logout; the server drops the session and its queue), then the ptlogin
    /// `logout?deep_logout=1` ends the login itself (Mojo 2.x, the page's own button), so the
    /// saved cookies can no longer resume it. Each step runs only when there is something to
    /// end (a psessionid, an `skey` cookie).
    ///
    /// A non-zero retcode on the first step means the channel was already gone: not an error.
    /// When the ptlogin step is confirmed (`ptui_logout_CB('0')`), every secret is dropped:
    /// the jar is emptied, ptwebqq, vfwebqq and psessionid cleared and the session marked
    /// `logged_out`, so [`Client::session`] then keeps only the uin, the clientid and the
    /// msg_id counter (a fresh QR login may
    /// start from it and never reuse a msg_id). When it fails (transport, refusal), the
    /// cookies are kept (the login may still live and resume) and the error is returned.
    pub async fn logout(&self) -> Result<(), ProtocolError> {
        let channel = self.channel().ok();
        if let Some((_, _, psessionid, clientid)) = channel {
            let ep = Endpoint::ChangeStatus2;
            let res = self
                .call_json(
                    ep,
                    &[
                        ("newstatus", "offline".into()),
                        ("clientid", clientid.to_string()),
                        ("psessionid", psessionid),
                        ("t", now_ms().to_string()),
                    ],
                    None,
                )
                .await;
            match res.map(|v| retcode_of(&v)) {
                Ok(Some(0)) => tracing::debug!(endpoint = %ep, "channel ended"),
                Ok(code) => {
                    tracing::debug!(endpoint = %ep, retcode = ?code, "channel already gone")
                }
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => tracing::debug!(endpoint = %ep, error = %e, "channel already gone"),
            }
            // The channel is over either way: nothing may poll or send on it any more.
            let mut st = self.state();
            st.psessionid.clear();
            st.vfwebqq.clear();
            st.contacts = None;
            st.sess_sigs.clear();
        }
        if let Some(skey) = self.cookie("skey").filter(|s| !s.is_empty()) {
            let ep = Endpoint::Logout;
            let a = self
                .call_ok(
                    ep,
                    &[
                        ("pt4_token", self.cookie("pt4_token").unwrap_or_default()),
                        ("pt4_hkey", hash::time33(&skey).to_string()),
                        (
                            "pt4_ptcz",
                            hash::hash33(&self.cookie("ptcz").unwrap_or_default()).to_string(),
                        ),
                        ("deep_logout", "1".into()),
                    ],
                    None,
                )
                .await?;
            let body = String::from_utf8_lossy(&a.body);
            if !body.contains("ptui_logout_CB('0')") {
                return Err(ProtocolError::undecodable(
                    ep,
                    "logout not confirmed",
                    &a.body,
                ));
            }
        }
        self.jar().clear();
        self.jar_changed();
        let mut st = self.state();
        st.ptwebqq.clear();
        st.psessionid.clear();
        st.vfwebqq.clear();
        st.contacts = None;
        st.sess_sigs.clear();
        st.logged_out = true;
        Ok(())
    }

    // ---------------------------------------------------------------- poll (§5)
}
