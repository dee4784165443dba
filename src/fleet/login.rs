//! The Login actor: one login attempt (QR, resume or relink), reported to its Account.
//!
//! The whole attempt is one future spawned into the actor's context (never `ctx.wait`: the
//! mailbox stays free), so stopping the actor drops the attempt mid-way.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::account::Account;
use super::gate::{LoginGate, Slot};
use super::messages::{LoginReport, Stop};
use super::webqq::WebQq;
use crate::events::LoginMethod;
use crate::protocol::{ProtocolError, QrStatus};

/// How long a QR code is kept while its status checks fail (the server unreachable): the
/// code's own lifetime (two minutes, WEBQQ.md §3.3) and a margin. A failed check is retried
/// on the same code; only a code the server calls expired, or one this old, is replaced.
const QR_KEEP: Duration = Duration::from_secs(130);
/// The longest pause between two checks of a code whose checks fail.
const QR_CHECK_BACKOFF_CAP: Duration = Duration::from_secs(8);

/// One login attempt.
pub struct Login {
    pub gen: u64,
    pub method: LoginMethod,
    pub client: Arc<dyn WebQq>,
    /// The QQ number the scan must match.
    pub qq: u64,
    /// Pause between two ptqrlogin checks.
    pub qr_check: Duration,
    pub account: Addr<Account>,
    /// The fleet-wide gate every attempt passes through.
    pub gate: Arc<LoginGate>,
    /// The gate's slot, when the Account got one at once; otherwise the attempt waits for
    /// one first (the account shows `starting` meanwhile).
    pub slot: Option<Slot>,
}

impl Actor for Login {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let (gen, method) = (self.gen, self.method);
        let client = self.client.clone();
        let account = self.account.clone();
        let (qq, every) = (self.qq, self.qr_check);
        let gate = self.gate.clone();
        let slot = self.slot.take();
        let attempt = async move {
            let slot = match slot {
                Some(s) => s,
                None => {
                    let s = gate.enter().await;
                    account.do_send(LoginReport::Admitted { gen });
                    s
                }
            };
            // The slot is held until the attempt ends (dropped with this future).
            match method {
                LoginMethod::Qr => qr_login(client, account, gen, qq, every, &gate, slot).await,
                LoginMethod::Resume => client.resume().await,
                LoginMethod::Relink => client.relink().await,
            }
        };
        ctx.spawn(attempt.into_actor(self).map(move |res, act, ctx| {
            let report = match res {
                Ok(()) => LoginReport::Done { gen, method },
                Err(e) => LoginReport::Failed {
                    gen,
                    method,
                    rejected: rejected(&e),
                    reason: e.to_string(),
                },
            };
            act.account.do_send(report);
            ctx.stop();
        }));
    }
}

impl Handler<Stop> for Login {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// True when the server refused (retrying the same way is pointless), false for transport
/// trouble (worth the same attempt again after a backoff).
pub fn rejected(e: &ProtocolError) -> bool {
    !e.is_transient()
}

/// QR login: show a code, wait for the scan by `qq`, then finish the login. A code is kept
/// until the server says it expired (a failed check is retried on the same code); an expired
/// code gives the gate's slot back, queues again, and waits its turn for a new code.
async fn qr_login(
    client: Arc<dyn WebQq>,
    account: Addr<Account>,
    gen: u64,
    qq: u64,
    every: Duration,
    gate: &LoginGate,
    slot: Slot,
) -> Result<(), ProtocolError> {
    let mut slot = Some(slot);
    loop {
        if slot.is_none() {
            slot = Some(match gate.try_enter() {
                Some(s) => s,
                None => {
                    account.do_send(LoginReport::Queued { gen });
                    let s = gate.enter().await;
                    account.do_send(LoginReport::Admitted { gen });
                    s
                }
            });
        }
        gate.qr_turn().await;
        let qr = client.fetch_qr().await?;
        let fetched = tokio::time::Instant::now();
        account.do_send(LoginReport::QrReady {
            gen,
            png: qr.png.clone(),
            qrsig: qr.qrsig.clone(),
        });
        let mut pause = every;
        loop {
            tokio::time::sleep(pause).await;
            match client.check_qr(qr.clone()).await {
                Ok(QrStatus::Waiting) | Ok(QrStatus::Scanned) => pause = every,
                Ok(QrStatus::Expired) => break,
                Ok(QrStatus::Confirmed {
                    check_sig_url,
                    qq: by,
                    ..
                }) => {
                    if by != qq {
                        return Err(ProtocolError::WrongAccount {
                            expected: qq,
                            got: by,
                        });
                    }
                    account.do_send(LoginReport::Confirmed { gen });
                    client.complete_scan(check_sig_url, qq).await?;
                    // The scan's cookies are in: the Account saves them before the rest, so
                    // a crash from here on resumes without a new scan. `send` waits for it.
                    let _ = account.send(LoginReport::Scanned { gen }).await;
                    return client.finish_login(qq).await;
                }
                Err(e) if e.is_transient() => {
                    if fetched.elapsed() >= QR_KEEP {
                        // The code has expired on the server by now.
                        break;
                    }
                    tracing::debug!(error = %e, "QR check failed; the same code is checked again");
                    pause = (pause * 2).clamp(Duration::from_secs(1), QR_CHECK_BACKOFF_CAP);
                }
                Err(e) => return Err(e),
            }
        }
        // Expired unscanned: let the logins queued behind this one in first.
        drop(slot.take());
    }
}

/// Shows a QR code in the terminal for a human with a phone: the PNG is decoded back to
/// the URL it carries and redrawn with half-block characters. Anything undecodable is
/// skipped (the PNG stays available at `GET /api/accounts/{id}/qr`).
pub fn print_qr(id: &str, qq: u64, png: &[u8]) {
    let art = decode_qr(png)
        .and_then(|url| qrcode::QrCode::new(url.as_bytes()).ok())
        .map(|code| {
            code.render::<qrcode::render::unicode::Dense1x2>()
                .quiet_zone(true)
                .build()
        });
    let text = match art {
        Some(art) => format!("[{id}] scan with the QQ app logged in as {qq}:\n{art}\n"),
        None => format!("[{id}] QR code ready for QQ {qq}: GET /api/accounts/{id}/qr\n"),
    };
    // Not eprintln!: a closed stderr must not panic the account.
    use std::io::Write;
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// The text a QR PNG encodes.
pub fn decode_qr(png: &[u8]) -> Option<String> {
    let img = image::load_from_memory(png).ok()?.to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let grids = prepared.detect_grids();
    let (_, content) = grids.first()?.decode().ok()?;
    Some(content)
}
