//! The desk and its companions, end to end, in one test binary (one link instead of three):
//! the page in headless Chromium (`browser`), `qqfleet status` / `qqfleet qr` and the event
//! stream (`status_cli`), the QR webhook (`webhook`), the renewal scan inside the scan window (`scanwin`). Each runs the real `qqfleet run`
//! against the real simulator on 127.0.0.1.

mod common;

mod browser;
mod scanwin;
mod status_cli;
mod webhook;
