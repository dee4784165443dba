//! Loopback ports for servers that cannot bind port 0 and report what they got (Prometheus,
//! chromedriver, NoneBot) or whose address a test must know before they start.
//!
//! A port found free by binding port 0 comes from the kernel's ephemeral range, the same range
//! every outgoing connection takes its local port from. In a test run that opens thousands of
//! connections, one of them can take that port between the check and the server's bind
//! ("Address already in use"). So the port is drawn below that range, where only an explicit
//! bind can take it, and checked free before it is handed out.

use std::net::TcpListener;

/// Where the kernel's ephemeral range starts (`/proc/sys/net/ipv4/ip_local_port_range`).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// A loopback port below the ephemeral range that was free a moment ago.
pub fn free_port() -> u16 {
    let high = ephemeral_start().max(20_001);
    for _ in 0..200 {
        let port = rand::random_range(20_000..high);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in 20000..{high} after 200 tries");
}
