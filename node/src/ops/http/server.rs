//! The HTTP API's accept loop, with bounds: a connection cap, a header
//! timeout and an idle timeout, so that connections nobody uses cannot
//! exhaust the node's file descriptors (issue 19: 1,100 idle connections,
//! which need no token, used to stop every POST of a node limited to 1,024
//! descriptors, with nothing logged).
//!
//! - **Header timeout**: a request's headers must arrive within it, counted
//!   from the connection's start (its first request) or from the first byte
//!   of the next request on a kept-alive connection.
//! - **Idle timeout**: a kept-alive connection with no request in progress is
//!   closed after it.
//! - **Cap**: at most `max_connections` open at once. A connection beyond it
//!   takes the place of the oldest one that is waiting for a request (open
//!   for [`SLOW_HEADERS`] at least with nothing unread, or its headers
//!   started longer than that ago): an idle connection holds nothing a
//!   client cannot get back by connecting again, so a caller with work to do
//!   gets in. When none may give its place (every one in a request, or
//!   opened within [`SLOW_HEADERS`]) the new one is refused: `503` with the
//!   JSON error `too_many_connections`, then closed.
//!
//! Every close and refusal is counted by reason in `/metrics`
//! (`twopc_http_connections_closed_total{reason}`,
//! `twopc_http_connections_refused_total{reason}`) and logged at WARN, at
//! most once per [`WARN_EVERY`] per reason (idle timeouts, the normal end of
//! a kept-alive connection, at DEBUG).

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

/// How long a request's headers may have been arriving, or a new
/// connection have sent nothing, before its place may be taken by a new
/// one: honest clients send their request at once, in one packet.
pub const SLOW_HEADERS: Duration = Duration::from_secs(1);

/// Refusals (`503 too_many_connections`) being written at once; beyond
/// them a refused connection is closed without an answer.
const REFUSING_MAX: usize = 32;

pub use super::limits::{Close, Connections, Limits, Reason, RESERVED_DESCRIPTORS, WARN_EVERY};

/// One open connection, as the accept loop and the watchdog see it.
#[derive(Debug)]
struct Conn {
    accepted: Instant,
    /// Requests being handled.
    busy: AtomicUsize,
    /// Whether a request was ever handled.
    served: AtomicBool,
    /// Milliseconds after `accepted` (plus 1; 0: none) when the bytes of a
    /// request not yet handled began to arrive.
    reading: AtomicU64,
    /// Milliseconds after `accepted` when the last request was answered.
    idle: AtomicU64,
    /// Told to close (evicted).
    close: Notify,
    /// Told that a request began or ended, or bytes of one arrived: the
    /// watchdog's deadline moved.
    changed: Notify,
    /// The socket (for [`Conn::bytes_waiting`]); the entry leaves the
    /// open connections before the socket closes.
    fd: std::os::fd::RawFd,
}

impl Conn {
    fn new(fd: std::os::fd::RawFd) -> Conn {
        Conn {
            fd,
            changed: Notify::new(),
            accepted: Instant::now(),
            busy: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            reading: AtomicU64::new(0),
            idle: AtomicU64::new(0),
            close: Notify::new(),
        }
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.accepted.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn at(&self, millis: u64) -> Instant {
        self.accepted + Duration::from_millis(millis)
    }

    /// Whether it waits for a request and may give its place to a new
    /// connection: no request in progress, and none arriving (bytes in the
    /// kernel not yet read, headers started less than [`SLOW_HEADERS`]
    /// ago, or a connection opened less than that ago whose client may not
    /// have sent its request yet).
    fn evictable(&self) -> bool {
        if self.busy.load(Ordering::SeqCst) > 0 {
            return false;
        }
        match self.reading.load(Ordering::SeqCst) {
            0 if !self.served.load(Ordering::SeqCst) && self.accepted.elapsed() < SLOW_HEADERS => {
                false
            }
            0 => !self.bytes_waiting(),
            r => self.at(r - 1).elapsed() >= SLOW_HEADERS,
        }
    }

    /// Whether bytes the server has not read yet wait in the kernel (a
    /// request sent before the server polled the connection).
    fn bytes_waiting(&self) -> bool {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int; the fd is open while the entry
        // is among the open connections (it leaves them before the close),
        // and an error (a closed fd) is read as "nothing waiting".
        let ok = unsafe { libc::ioctl(self.fd, libc::FIONREAD, &mut n) } == 0;
        ok && n > 0
    }

    /// When the watchdog must look again, and the close due then if
    /// nothing changes (`None`: a request is in progress).
    fn deadline(&self, limits: &Limits) -> Option<(Instant, Close)> {
        if self.busy.load(Ordering::SeqCst) > 0 {
            return None;
        }
        match self.reading.load(Ordering::SeqCst) {
            r if r > 0 => Some((self.at(r - 1) + limits.header_timeout, Close::HeaderTimeout)),
            _ if !self.served.load(Ordering::SeqCst) => {
                Some((self.accepted + limits.header_timeout, Close::HeaderTimeout))
            }
            _ => Some((
                self.at(self.idle.load(Ordering::SeqCst)) + limits.idle_timeout,
                Close::IdleTimeout,
            )),
        }
    }
}

/// The open connections, oldest first.
#[derive(Debug, Default)]
struct Open {
    next: u64,
    conns: BTreeMap<u64, Arc<Conn>>,
}

enum Admit {
    /// Take this place (and the oldest waiting connection was told to
    /// close, if `evicted`).
    In {
        id: u64,
        conn: Arc<Conn>,
        evicted: bool,
    },
    /// Every place is busy.
    Full,
}

impl Open {
    fn admit(&mut self, max: usize, fd: std::os::fd::RawFd) -> Admit {
        let mut evicted = false;
        if self.conns.len() >= max {
            let oldest = self
                .conns
                .iter()
                .find(|(_, c)| c.evictable())
                .map(|(id, _)| *id);
            match oldest.and_then(|id| self.conns.remove(&id)) {
                Some(old) => {
                    old.close.notify_one();
                    evicted = true;
                }
                None => return Admit::Full,
            }
        }
        let id = self.next;
        self.next += 1;
        let conn = Arc::new(Conn::new(fd));
        self.conns.insert(id, conn.clone());
        Admit::In { id, conn, evicted }
    }
}

/// Serves `router` on `listener` within `limits`, counting into
/// `connections`, until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    connections: Arc<Connections>,
) -> std::io::Result<()> {
    let open = Arc::new(Mutex::new(Open::default()));
    let refusing = Arc::new(Semaphore::new(REFUSING_MAX));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                connections.count(
                    Close::AcceptError,
                    &format!("cannot accept a connection: {e}"),
                );
                // Out of descriptors, most likely: give closes a moment.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
        let admitted = open
            .lock()
            .expect("not poisoned")
            .admit(limits.max_connections, fd);
        match admitted {
            Admit::In { id, conn, evicted } => {
                if evicted {
                    connections.count(
                        Close::Evicted,
                        &format!(
                            "{} connections open: closed the oldest one waiting for a request \
                             to take a new one",
                            limits.max_connections
                        ),
                    );
                }
                connections.open.inc();
                let leave = {
                    let open = open.clone();
                    move || {
                        open.lock().expect("not poisoned").conns.remove(&id);
                    }
                };
                tokio::spawn(connection(
                    stream,
                    router.clone(),
                    conn,
                    limits,
                    connections.clone(),
                    leave,
                ));
            }
            Admit::Full => {
                connections.count(
                    Close::TooManyConnections,
                    &format!(
                        "{} connections open, none waiting long enough to give its place: refused a new one (503)",
                        limits.max_connections
                    ),
                );
                if let Ok(permit) = refusing.clone().try_acquire_owned() {
                    tokio::spawn(async move {
                        refuse(stream).await;
                        drop(permit);
                    });
                }
            }
        }
    }
}

/// The body of a `503 too_many_connections`.
pub const TOO_MANY: &str = r#"{"error":{"code":"too_many_connections","message":"the node serves as many HTTP connections as it may (--http-max-connections) and none is idle; try again"}}"#;

/// Answers `503 too_many_connections` and closes, within a second.
async fn refuse(mut stream: TcpStream) {
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{TOO_MANY}",
        TOO_MANY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        // Read what the client sent until it closes, so that closing does
        // not reset the connection before the client read the answer.
        let mut sink = [0u8; 1024];
        while tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// Serves one connection until it ends, is told to close, or times out;
/// then `leave`s the open connections, before its socket closes.
async fn connection(
    stream: TcpStream,
    router: Router,
    conn: Arc<Conn>,
    limits: Limits,
    connections: Arc<Connections>,
    leave: impl FnOnce(),
) {
    let io = TokioIo::new(Watched {
        inner: stream,
        conn: conn.clone(),
    });
    let service = Tracked {
        router,
        conn: conn.clone(),
    };
    let served = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    tokio::pin!(served);
    let closed = loop {
        // A request in progress is bounded by its handler: no deadline
        // until it ends (which `changed` tells).
        let at = conn.deadline(&limits).map(|(at, _)| at);
        let far = Instant::now() + Duration::from_secs(3600);
        tokio::select! {
            _ = &mut served => break None,
            _ = conn.close.notified() => break Some(Close::Evicted),
            _ = conn.changed.notified() => {}
            _ = tokio::time::sleep_until(at.unwrap_or(far)) => {
                if let Some((due, why)) = conn.deadline(&limits) {
                    if due <= Instant::now() {
                        break Some(why);
                    }
                }
            }
        }
    };
    leave();
    connections.open.dec();
    match closed {
        // Counted when it was evicted.
        None | Some(Close::Evicted) => {}
        Some(why) => connections.count(why, &format!("closed a connection: {}", why.name())),
    }
}

/// The router, marking its connection busy while it handles a request.
struct Tracked {
    router: Router,
    conn: Arc<Conn>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for Tracked {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        let conn = self.conn.clone();
        conn.busy.fetch_add(1, Ordering::SeqCst);
        conn.served.store(true, Ordering::SeqCst);
        conn.reading.store(0, Ordering::SeqCst);
        conn.changed.notify_one();
        let mut router = self.router.clone();
        let handled = tower_service::Service::call(&mut router, request.map(Body::new));
        Box::pin(async move {
            let response = handled.await;
            conn.idle.store(conn.millis(), Ordering::SeqCst);
            conn.busy.fetch_sub(1, Ordering::SeqCst);
            conn.changed.notify_one();
            response
        })
    }
}

/// The socket, noting when the bytes of a request begin to arrive.
struct Watched {
    inner: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let conn = &self.conn;
        if buf.filled().len() > before
            && conn.busy.load(Ordering::SeqCst) == 0
            && conn.reading.load(Ordering::SeqCst) == 0
        {
            conn.reading.store(conn.millis() + 1, Ordering::SeqCst);
            conn.changed.notify_one();
        }
        polled
    }
}

impl tokio::io::AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
