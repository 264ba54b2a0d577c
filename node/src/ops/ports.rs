//! Free loopback ports for the nodes of a local cluster (and of the tests).
//!
//! A port is picked below the kernel's range of ephemeral ports
//! (`/proc/sys/net/ipv4/ip_local_port_range`). A port from that range,
//! released for a node to bind, can be handed by the kernel to any socket
//! that binds port 0 or connects out: a client's, a replica link's. Then a
//! node killed and restarted finds its port taken, and a stranger's
//! datagrams carry the node's address (a chaos run's trace replay read a
//! client's purchase as sent by a node that was down at the time).

use std::net::{TcpListener, UdpSocket};

/// Where the search starts when the ephemeral range starts higher.
const LOWEST: u16 = 10_000;

/// A UDP socket on a free loopback port outside the ephemeral range whose
/// TCP port is free too (a coordinator replica listens on both); a port
/// from the kernel (port 0) if none is free there.
pub fn free_loopback_socket() -> std::io::Result<UdpSocket> {
    let low = ephemeral_low();
    let from = LOWEST.min(low / 2);
    let span = u32::from(low - from).max(1);
    let start = rand::random::<u32>() % span;
    for i in 0..span {
        let port = from + ((start + i) % span) as u16;
        if let Ok(socket) = UdpSocket::bind(("127.0.0.1", port)) {
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(socket);
            }
        }
    }
    loop {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        let port = socket.local_addr()?.port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(socket);
        }
    }
}

/// The first port of the kernel's ephemeral range (32768 if unreadable).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .filter(|&p: &u16| p > 1024)
        .unwrap_or(32_768)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_port_is_below_the_ephemeral_range_and_bindable_for_tcp() {
        let socket = free_loopback_socket().unwrap();
        let port = socket.local_addr().unwrap().port();
        assert!(port < ephemeral_low(), "port {port}");
        // Its TCP twin is free: the check released it.
        TcpListener::bind(("127.0.0.1", port)).unwrap();
        // Nobody else gets it while it is held.
        assert!(UdpSocket::bind(("127.0.0.1", port)).is_err());
    }
}
