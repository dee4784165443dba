//! `qqfleet login`: logs one account in by hand (a smoke path for operators): prints the QR
//! code in the terminal and writes it to a PNG, finishes the login, shows the contacts, then
//! prints incoming messages until Ctrl-C.

use std::path::PathBuf;
use std::time::Duration;

use super::client::{Client, PollResult, QrStatus};
use super::endpoints::Endpoints;
use super::error::ProtocolError;
use super::events::PollEvent;
use super::retcode::Action;

/// Command-line arguments of `qqfleet login`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoginArgs {
    /// Base URL of a simulator (`http://127.0.0.1:PORT`); without it, the real hosts.
    #[arg(long)]
    pub sim_url: Option<String>,
    /// The QQ number the scan must match.
    #[arg(long)]
    pub qq: Option<u64>,
    /// Where to write the QR code PNG.
    #[arg(long, default_value = "qqfleet-login-qr.png")]
    pub qr_file: PathBuf,
}

/// WEBQQ.md §3.3: Mojo gave up after 10 QR refreshes.
const MAX_QR_CODES: usize = 10;
/// §3.3: a QR code lives about 120 s; poll its state every 2 s (§3.4: 1-3 s).
const QR_CHECK_INTERVAL: Duration = Duration::from_secs(2);
const QR_CHECKS_PER_CODE: usize = 90;

/// Decodes the text a QR PNG encodes (the simulator's encodes a URL with a token).
pub fn decode_qr_png(png: &[u8]) -> Option<String> {
    let img = image::load_from_memory_with_format(png, image::ImageFormat::Png).ok()?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 || w > 4096 || h > 4096 {
        return None;
    }
    let luma = img.to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| {
        luma.get_pixel(x as u32, y as u32).0[0]
    });
    let grids = prepared.detect_grids();
    grids.first()?.decode().ok().map(|(_, text)| text)
}

/// The QR code of `text` drawn with Unicode half blocks (two modules per character cell).
pub fn render_terminal(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

/// Runs `qqfleet login`.
pub async fn run(args: LoginArgs) -> Result<(), ProtocolError> {
    let endpoints = match &args.sim_url {
        Some(u) => Endpoints::sim(u),
        None => Endpoints::real(),
    };
    let client = Client::new(endpoints)?;
    let (url, qq) = scan(&client, &args).await?;
    println!("confirmed by QQ {qq}; logging in…");
    client.complete_login(&url, args.qq).await?;
    println!("online as {}", client.uin());

    let contacts = client.contacts().await?;
    println!(
        "{} friends, {} groups, {} discussions",
        contacts.friends.len(),
        contacts.groups.len(),
        contacts.discus.len()
    );
    for f in &contacts.friends {
        println!("  friend  {:>10}  {}", f.uin, f.display_name());
    }
    for g in &contacts.groups {
        println!(
            "  group   {:>10}  {} ({} members)",
            g.gid,
            g.name,
            g.members.len()
        );
    }
    for d in &contacts.discus {
        println!(
            "  discu   {:>10}  {} ({} members)",
            d.did,
            d.name,
            d.members.len()
        );
    }
    println!("waiting for messages (Ctrl-C to stop)");
    tokio::select! {
        r = listen(&client) => r,
        _ = tokio::signal::ctrl_c() => {
            println!("stopped");
            Ok(())
        }
    }
}

async fn scan(client: &Client, args: &LoginArgs) -> Result<(String, u64), ProtocolError> {
    for _ in 0..MAX_QR_CODES {
        let qr = client.fetch_qr().await?;
        match std::fs::write(&args.qr_file, &qr.png) {
            Ok(()) => println!("QR code written to {}", args.qr_file.display()),
            Err(e) => eprintln!("cannot write {}: {e}", args.qr_file.display()),
        }
        match decode_qr_png(&qr.png).and_then(|t| render_terminal(&t)) {
            Some(art) => println!("{art}"),
            None => println!("(the QR image could not be decoded; open the PNG)"),
        }
        println!("scan it with the QQ app");
        let mut last = QrStatus::Waiting;
        for _ in 0..QR_CHECKS_PER_CODE {
            tokio::time::sleep(QR_CHECK_INTERVAL).await;
            let status = client.check_qr(&qr).await?;
            if status != last {
                match &status {
                    QrStatus::Scanned => println!("scanned; confirm on the phone"),
                    QrStatus::Expired => println!("QR code expired; fetching a new one"),
                    _ => {}
                }
            }
            match status {
                QrStatus::Confirmed {
                    check_sig_url, qq, ..
                } => return Ok((check_sig_url, qq)),
                QrStatus::Expired => break,
                s => last = s,
            }
        }
    }
    Err(ProtocolError::LoginRefused {
        endpoint: super::endpoints::Endpoint::Ptqrlogin,
        code: 65,
        message: format!("no scan after {MAX_QR_CODES} QR codes"),
    })
}

async fn listen(client: &Client) -> Result<(), ProtocolError> {
    let mut failures = 0u32;
    loop {
        match client.poll().await {
            Ok(PollResult::Events(events)) => {
                failures = 0;
                for e in events {
                    print_event(&e);
                    if let PollEvent::Kick { reason, .. } = e {
                        return Err(ProtocolError::Kicked { reason });
                    }
                }
            }
            Ok(PollResult::Idle) => failures = 0,
            Ok(PollResult::Retcode { retcode, action }) => {
                println!("poll2 retcode {retcode}: {action:?}");
                match action {
                    Action::Relink => client.relink().await?,
                    Action::Probe => {
                        if !client.probe().await? {
                            client.relink().await?;
                        }
                    }
                    Action::Relogin | Action::Stopped | Action::Fatal => {
                        return Err(ProtocolError::Retcode {
                            endpoint: super::endpoints::Endpoint::Poll2,
                            retcode,
                            action,
                        })
                    }
                    Action::RateLimitedFor(d) => tokio::time::sleep(d).await,
                    Action::Continue | Action::Repoll | Action::RefreshPtwebqq(_) => {}
                }
            }
            Err(e) if e.is_transient() && failures < 3 => {
                failures += 1;
                println!("poll2: {e}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

fn print_event(e: &PollEvent) {
    match e {
        PollEvent::Message(m) => println!("[buddy {}] {}", m.from_uin, m.content.text()),
        PollEvent::GroupMessage(m) => {
            println!("[group {} / {}] {}", m.gid, m.send_uin, m.content.text())
        }
        PollEvent::DiscuMessage(m) => {
            println!("[discu {} / {}] {}", m.did, m.send_uin, m.content.text())
        }
        PollEvent::SessMessage(m) => println!("[sess {}] {}", m.from_uin, m.content.text()),
        other => println!("[{}]", other.poll_type()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rendered_png_decodes_back_and_prints() {
        let text = "http://127.0.0.1:1/qr?token=abc123";
        let code = qrcode::QrCode::new(text.as_bytes()).unwrap();
        let img = code.render::<image::Luma<u8>>().build();
        let mut png = Vec::new();
        image::DynamicImage::ImageLuma8(img)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert_eq!(decode_qr_png(&png).as_deref(), Some(text));
        let art = render_terminal(text).unwrap();
        assert!(art.contains('▀') || art.contains('▄') || art.contains('█'));
        assert_eq!(decode_qr_png(b"not a png"), None);
    }
}
