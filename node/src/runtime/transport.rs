//! The UDP socket a runtime reads and writes, behind a small trait so tests
//! can observe what leaves and when.

use crate::runtime::error::{Error, Result};
use std::future::Future;
use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use tokio::net::UdpSocket;

/// The receive buffer a node asks for (the kernel caps it at
/// `net.core.rmem_max`). With the default (about 208 KiB, a few hundred
/// small datagrams once the kernel's per-datagram overhead is counted),
/// 320 bench clients overflowed it: the kernel dropped prepares and votes
/// (`RcvbufErrors` in `/proc/net/snmp`), and each loss became an abort by
/// vote timeout one to one and a half seconds later.
pub const RECV_BUFFER: usize = 4 << 20;

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
        grow_receive_buffer(&socket);
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
        grow_receive_buffer(&socket);
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

/// Asks for a [`RECV_BUFFER`]-byte receive buffer. A refusal is not an
/// error: the socket keeps the system's default, and a datagram it cannot
/// hold is lost, which the protocol tolerates.
fn grow_receive_buffer(socket: &UdpSocket) {
    let size = RECV_BUFFER as libc::c_int;
    // SAFETY: a valid socket descriptor, and a pointer to a c_int of the
    // length passed, for the duration of the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        tracing::debug!("cannot grow the UDP receive buffer: {e}");
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
