//! `muster-netprobe`: a tiny UDP multicast sender and receiver that the harness's self-tests
//! run inside lab hosts (a thread of the test process cannot enter another namespace without
//! `unsafe`, so the probe is a separate program started with `ip netns exec`).
//!
//! ```text
//! muster-netprobe mcast-recv GROUP:PORT IFACE_IP TIMEOUT_MS
//!     join GROUP on IFACE_IP, print the first datagram, exit 0; exit 1 on timeout
//! muster-netprobe mcast-send GROUP:PORT IFACE_IP PAYLOAD COUNT INTERVAL_MS
//!     send PAYLOAD to GROUP COUNT times from IFACE_IP
//! ```

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match words.as_slice() {
        ["mcast-recv", group, iface, timeout_ms] => receive(group, iface, timeout_ms),
        ["mcast-send", group, iface, payload, count, interval_ms] => {
            send(group, iface, payload, count, interval_ms)
        }
        _ => Err(
            "usage: muster-netprobe mcast-recv GROUP:PORT IFACE_IP TIMEOUT_MS | \
                  mcast-send GROUP:PORT IFACE_IP PAYLOAD COUNT INTERVAL_MS"
                .to_owned(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("muster-netprobe: {message}");
            ExitCode::FAILURE
        }
    }
}

fn parse<T: std::str::FromStr>(what: &str, text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{what}: cannot parse {text:?}"))
}

fn receive(group: &str, iface: &str, timeout_ms: &str) -> Result<(), String> {
    let group: SocketAddrV4 = parse("group", group)?;
    let iface: Ipv4Addr = parse("interface address", iface)?;
    let timeout = Duration::from_millis(parse("timeout", timeout_ms)?);
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, group.port()))
        .map_err(|e| format!("bind port {}: {e}", group.port()))?;
    socket
        .join_multicast_v4(group.ip(), &iface)
        .map_err(|e| format!("join {} on {iface}: {e}", group.ip()))?;
    println!("joined {} on {iface}", group.ip());
    let deadline = Instant::now() + timeout;
    let mut buf = [0_u8; 1500];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("nothing received on {group} within {timeout:?}"));
        }
        socket
            .set_read_timeout(Some(left))
            .map_err(|e| format!("set timeout: {e}"))?;
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                println!(
                    "received from {from}: {}",
                    String::from_utf8_lossy(&buf[..n])
                );
                return Ok(());
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(format!("receive: {e}")),
        }
    }
}

fn send(
    group: &str,
    iface: &str,
    payload: &str,
    count: &str,
    interval_ms: &str,
) -> Result<(), String> {
    let group: SocketAddrV4 = parse("group", group)?;
    let iface: Ipv4Addr = parse("interface address", iface)?;
    let count: u32 = parse("count", count)?;
    let interval = Duration::from_millis(parse("interval", interval_ms)?);
    let socket = UdpSocket::bind((iface, 0)).map_err(|e| format!("bind {iface}: {e}"))?;
    // Link-local scope, like mDNS: the datagram must cross the bridge and go no further.
    socket
        .set_multicast_ttl_v4(1)
        .map_err(|e| format!("set ttl: {e}"))?;
    for i in 0..count {
        socket
            .send_to(payload.as_bytes(), group)
            .map_err(|e| format!("send to {group}: {e}"))?;
        if i + 1 < count {
            std::thread::sleep(interval);
        }
    }
    println!("sent {count} datagrams to {group}");
    Ok(())
}
