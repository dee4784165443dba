//! The processes a benchmark runs and what it reads of them from /proc: shared by
//! `fleet_scale` and `pool_scale` (and `onebot_latency`'s `Kill`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A child killed (and reaped) when dropped, so that no bench leaves a process behind.
pub struct Kill(pub Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A KiB field of /proc/PID/status (`VmRSS:`, `RssAnon:`), 0 if unreadable.
fn status_kib(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Resident memory of a process, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// Anonymous resident memory of a process (heap, stacks; not the program's code and other
/// file pages), KiB.
pub fn rss_anon_kib(pid: u32) -> u64 {
    status_kib(pid, "RssAnon:")
}

/// utime + stime in clock ticks (100 a second: ticks/s = % of one core).
pub fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

/// Open file descriptors of a process.
pub fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// `qqfleet sim` on a free loopback port, holding polls 60 s as the service did, with no
/// send pacing (the bench measures the fleet); returns it and its base URL.
pub fn start_sim(bin: &str) -> (Kill, String) {
    start_sim_with(bin, &["--hold", "60", "--send-min-interval-ms", "0"])
}

/// `qqfleet sim` on a free loopback port with these knobs; returns it and its base URL.
pub fn start_sim_with(bin: &str, knobs: &[&str]) -> (Kill, String) {
    let mut c = Command::new(bin)
        .args(["sim", "--listen", "127.0.0.1:0"])
        .args(knobs)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(c.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .expect("simulator listening line")
        .to_string();
    (Kill(c), base)
}
