//! The UDP socket a runtime reads and writes, behind a small trait so tests
//! can observe what leaves and when.

use crate::error::{Error, Result};
use std::future::Future;
use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use tokio::net::UdpSocket;

/// Datagrams in and out.
pub trait Transport: Send {
    /// Waits for the next datagram.
    fn recv(&self, buf: &mut [u8]) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send;
    /// The next datagram if one is already waiting (`WouldBlock` if not).
    fn try_recv(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)>;
    /// Sends one datagram.
    fn send(&self, bytes: &[u8], to: SocketAddr) -> impl Future<Output = io::Result<()>> + Send;
    /// The address this transport is bound to.
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// A UDP socket.
#[derive(Debug)]
pub struct UdpTransport {
    socket: UdpSocket,
}

impl UdpTransport {
    /// Binds `addr`.
    pub async fn bind(addr: SocketAddr) -> Result<Self> {
        let socket = UdpSocket::bind(addr).await.map_err(|source| Error::Net {
            addr: addr.to_string(),
            source,
        })?;
        Ok(UdpTransport { socket })
    }

    /// Wraps a socket bound already (the demo binds all its sockets first).
    pub fn from_std(socket: std::net::UdpSocket) -> Result<Self> {
        let addr = socket
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let net = |source| Error::Net {
            addr: addr.clone(),
            source,
        };
        socket.set_nonblocking(true).map_err(net)?;
        let socket = UdpSocket::from_std(socket).map_err(net)?;
        Ok(UdpTransport { socket })
    }

    /// The bound address, if it is IPv4.
    pub fn local_addr_v4(&self) -> Option<SocketAddrV4> {
        match self.socket.local_addr() {
            Ok(SocketAddr::V4(a)) => Some(a),
            _ => None,
        }
    }
}

impl Transport for UdpTransport {
    fn recv(&self, buf: &mut [u8]) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send {
        self.socket.recv_from(buf)
    }

    fn try_recv(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.socket.try_recv_from(buf)
    }

    async fn send(&self, bytes: &[u8], to: SocketAddr) -> io::Result<()> {
        self.socket.send_to(bytes, to).await.map(|_| ())
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }
}
