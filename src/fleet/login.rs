//! The Login actor: one login attempt (QR, resume or relink), reported to its Account.
//!
//! The whole attempt is one future spawned into the actor's context (never `ctx.wait`: the
//! mailbox stays free), so stopping the actor drops the attempt mid-way.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::account::Account;
use super::messages::{LoginReport, Stop};
use super::webqq::WebQq;
use crate::events::LoginMethod;
use crate::protocol::{ProtocolError, QrStatus};

/// How many transport errors in a row a QR check tolerates before the attempt fails.
const QR_CHECK_RETRIES: u32 = 3;

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
}

impl Actor for Login {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let (gen, method) = (self.gen, self.method);
        let client = self.client.clone();
        let account = self.account.clone();
        let (qq, every) = (self.qq, self.qr_check);
        let attempt = async move {
            match method {
                LoginMethod::Qr => qr_login(client, account, gen, qq, every).await,
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

/// QR login: show a code, wait for the scan by `qq`, then finish the login. An expired code
/// is replaced by a new one (a human may take a while).
async fn qr_login(
    client: Arc<dyn WebQq>,
    account: Addr<Account>,
    gen: u64,
    qq: u64,
    every: Duration,
) -> Result<(), ProtocolError> {
    loop {
        let qr = client.fetch_qr().await?;
        account.do_send(LoginReport::QrReady {
            gen,
            png: qr.png.clone(),
            qrsig: qr.qrsig.clone(),
        });
        let mut errors = 0;
        loop {
            tokio::time::sleep(every).await;
            match client.check_qr(qr.clone()).await {
                Ok(QrStatus::Waiting) | Ok(QrStatus::Scanned) => errors = 0,
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
                Err(e) if e.is_transient() && errors < QR_CHECK_RETRIES => errors += 1,
                Err(e) => return Err(e),
            }
        }
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
