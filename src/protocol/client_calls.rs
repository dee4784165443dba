//! The calls of [`Client`] on an open channel besides poll: sends (split into pieces, with
//! the session signature a temporary session needs) and the contacts (friends, groups,
//! discussions and their members). Requests are built by `Client::request` (`client_request.rs`).

use super::*;

impl Client {
    /// Sends a text (faces as `[face:N]`), split into pieces of ≤ 720 bytes (§7.2). Returns
    /// `Uncertain` if any piece got 1202. A refusal of piece k is `SendRejected` with
    /// `pieces_delivered = k`. A timeout or transport error on a send may also have been
    /// delivered: treat it like `Uncertain` (do not resend blindly).
    pub async fn send(&self, target: &Target, text: &str) -> Result<SendOutcome, ProtocolError> {
        let pieces = split_text(text);
        // Reserve every piece's msg_id at once: a concurrent send never takes one of them.
        let first = self
            .inner
            .msg_id
            .fetch_add(pieces.len() as u64, Ordering::SeqCst);
        self.send_pieces(target, text, pieces, first).await
    }

    /// [`Client::send`] with the msg_id of the first piece chosen by the caller (piece k
    /// takes `msg_id + k`). A caller that recorded the msg_id of an attempt that may have
    /// arrived (a transport error, a crash) resends with the same ids, and a deduplicating
    /// server acknowledges the repeat without delivering it twice. The session's counter
    /// moves past the ids used, so a later `send` never reuses them.
    pub async fn send_with_msg_id(
        &self,
        target: &Target,
        text: &str,
        msg_id: u64,
    ) -> Result<SendOutcome, ProtocolError> {
        let pieces = split_text(text);
        self.inner
            .msg_id
            .fetch_max(msg_id.saturating_add(pieces.len() as u64), Ordering::SeqCst);
        self.send_pieces(target, text, pieces, msg_id).await
    }

    pub(super) async fn send_pieces(
        &self,
        target: &Target,
        text: &str,
        pieces: Vec<String>,
        first_msg_id: u64,
    ) -> Result<SendOutcome, ProtocolError> {
        self.check_kicked()?;
        if text.is_empty() {
            return Err(ProtocolError::EmptyMessage);
        }
        let ep = target.endpoint();
        let (_, _, psessionid, clientid) = self.channel()?;
        let group_sig = match target {
            Target::Sess { to, via } => Some(self.sess_sig(*to, *via).await?),
            _ => None,
        };
        let face = self
            .state()
            .contacts
            .as_ref()
            .map(|c| c.self_info.face)
            .filter(|&f| f != 0)
            .unwrap_or(522);
        let mut outcome = SendOutcome::Delivered;
        for (i, piece) in pieces.iter().enumerate() {
            let msg_id = first_msg_id + i as u64;
            let content = encode_send(piece);
            let mut fields: Vec<(&str, Value)> = match target {
                Target::Buddy(uin) => vec![("to", json!(uin))],
                Target::Group(gid) => vec![("group_uin", json!(gid))],
                Target::Discu(did) => vec![("did", json!(did))],
                Target::Sess { to, via } => vec![
                    ("to", json!(to)),
                    ("group_sig", json!(group_sig.clone().unwrap_or_default())),
                    (
                        "service_type",
                        json!(match via {
                            SessVia::Group(_) => 0,
                            SessVia::Discu(_) => 1,
                        }),
                    ),
                ],
            };
            fields.extend([
                ("content", json!(content)),
                ("face", json!(face)),
                ("clientid", json!(clientid)),
                ("msg_id", json!(msg_id)),
                ("psessionid", json!(psessionid)),
            ]);
            {
                // Noted before the request goes out: the echo (§5.4) can come back in the
                // poll before this call's answer does, and an echo not known as ours would
                // be answered (a reply loop). An answer-less attempt (a timeout) may have
                // been delivered and echoed too.
                let mut st = self.state();
                st.recent_sends
                    .push_back((Instant::now(), target.clone(), piece.clone()));
                while st.recent_sends.len() > 256 {
                    st.recent_sends.pop_front();
                }
            }
            let v = self.call_json(ep, &[], Some(ordered(&fields))).await?;
            match classify_send(&v, ep, &self.inner.opts.retcodes) {
                Ok(o) => {
                    if o == SendOutcome::Uncertain {
                        outcome = SendOutcome::Uncertain;
                    }
                }
                Err((retcode, action)) => {
                    return Err(ProtocolError::SendRejected {
                        endpoint: ep,
                        retcode,
                        action,
                        pieces_delivered: i,
                    })
                }
            }
        }
        Ok(outcome)
    }

    /// The group_sig of a temporary session (get_c2cmsg_sig2, §8.1), cached.
    pub(super) async fn sess_sig(&self, to: u64, via: SessVia) -> Result<String, ProtocolError> {
        let ttl = self.inner.opts.sess_sig_ttl;
        if let Some((at, sig)) = self.state().sess_sigs.get(&(to, via)) {
            if at.elapsed() < ttl {
                return Ok(sig.clone());
            }
        }
        let ep = Endpoint::GetC2cmsgSig2;
        let (_, _, psessionid, clientid) = self.channel()?;
        let (id, st) = match via {
            SessVia::Group(code) => (code, 0),
            SessVia::Discu(did) => (did, 1),
        };
        let r = self
            .call_result(
                ep,
                &[
                    ("id", id.to_string()),
                    ("to_uin", to.to_string()),
                    ("service_type", st.to_string()),
                    ("clientid", clientid.to_string()),
                    ("psessionid", psessionid),
                    ("t", now_ms().to_string()),
                ],
                None,
            )
            .await?;
        let sig = r
            .get("value")
            .and_then(Value::as_str)
            .ok_or_else(|| ProtocolError::undecodable(ep, "no value", b""))?
            .to_string();
        self.state()
            .sess_sigs
            .insert((to, via), (Instant::now(), sig.clone()));
        Ok(sig)
    }

    // ---------------------------------------------------------------- contacts (§6)

    /// Fetches the whole contact snapshot in the official page's order (§3.8: friends,
    /// groups, discussions, self info, online buddies, recent list), then the members of
    /// every group (by `code`, §6.3) and discussion.
    pub async fn contacts(&self) -> Result<Contacts, ProtocolError> {
        self.check_kicked()?;
        let (ptwebqq, vfwebqq, psessionid, clientid) = self.channel()?;
        let uin = self.state().uin;
        let h = hash::friend_hash(uin, &ptwebqq);
        let list_r = ordered(&[("vfwebqq", json!(vfwebqq)), ("hash", json!(h))]);

        let ep = Endpoint::GetUserFriends2;
        let r = self.call_result(ep, &[], Some(list_r.clone())).await?;
        let (friends, categories) =
            contacts::decode_friends(&r).map_err(|e| ProtocolError::undecodable(ep, e, b""))?;

        let ep = Endpoint::GetGroupNameListMask2;
        let r = self.call_result(ep, &[], Some(list_r)).await?;
        let mut groups =
            contacts::decode_groups(&r).map_err(|e| ProtocolError::undecodable(ep, e, b""))?;

        let ep = Endpoint::GetDiscusList;
        let r = self
            .call_result(
                ep,
                &[
                    ("clientid", clientid.to_string()),
                    ("psessionid", psessionid.clone()),
                    ("vfwebqq", vfwebqq.clone()),
                    ("t", now_ms().to_string()),
                ],
                None,
            )
            .await?;
        let mut discus =
            contacts::decode_discus(&r).map_err(|e| ProtocolError::undecodable(ep, e, b""))?;

        let ep = Endpoint::GetSelfInfo2;
        let r = self
            .call_result(ep, &[("t", now_ms().to_string())], None)
            .await?;
        let self_info =
            contacts::decode_self_info(&r).map_err(|e| ProtocolError::undecodable(ep, e, b""))?;

        let online = self.online_buddies().await?;

        let ep = Endpoint::GetRecentList2;
        let r = self
            .call_result(
                ep,
                &[],
                Some(ordered(&[
                    ("vfwebqq", json!(vfwebqq)),
                    ("clientid", json!(clientid)),
                    ("psessionid", json!(psessionid)),
                ])),
            )
            .await?;
        let recent =
            contacts::decode_recent(&r).map_err(|e| ProtocolError::undecodable(ep, e, b""))?;

        for g in &mut groups {
            let ep = Endpoint::GetGroupInfoExt2;
            let res = self
                .call_result(
                    ep,
                    &[
                        ("gcode", g.code.to_string()),
                        ("vfwebqq", vfwebqq.clone()),
                        ("t", now_ms().to_string()),
                    ],
                    None,
                )
                .await;
            if let Some(r) = members_or_skip(res, "group", g.gid)? {
                let (owner, members) = contacts::decode_group_info(&r)
                    .map_err(|e| ProtocolError::undecodable(ep, e, b""))?;
                g.owner = owner;
                g.members = members;
            }
        }
        for d in &mut discus {
            let ep = Endpoint::GetDiscuInfo;
            let res = self
                .call_result(
                    ep,
                    &[
                        ("did", d.did.to_string()),
                        ("vfwebqq", vfwebqq.clone()),
                        ("clientid", clientid.to_string()),
                        ("psessionid", psessionid.clone()),
                        ("t", now_ms().to_string()),
                    ],
                    None,
                )
                .await;
            if let Some(r) = members_or_skip(res, "discussion", d.did)? {
                let (name, owner, members) = contacts::decode_discu_info(&r)
                    .map_err(|e| ProtocolError::undecodable(ep, e, b""))?;
                if let Some(n) = name.filter(|n| !n.is_empty()) {
                    d.name = n;
                }
                d.owner = owner;
                d.members = members;
            }
        }
        let c = Contacts {
            self_info,
            friends,
            categories,
            groups,
            discus,
            online,
            recent,
        };
        self.state().contacts = Some(Arc::new(c.clone()));
        Ok(c)
    }
}
