//! `server.rs`: which connection gives its place at the cap, and when the
//! watchdog closes one.

use super::*;
use crate::ops::http::limits::open_files_limit;
use std::io::Write;
use std::os::fd::AsRawFd;

/// A connection accepted `ago`, on no socket (fd -1: nothing waiting).
fn conn(ago: Duration) -> Conn {
    let mut c = Conn::new(-1);
    c.accepted = Instant::now() - ago;
    c
}

fn limits() -> Limits {
    Limits {
        max_connections: 2,
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
    }
}

#[test]
fn at_the_cap_the_oldest_waiting_connection_gives_its_place() {
    let mut open = Open::default();
    // Just opened: their requests may be on their way, so none gives its
    // place yet.
    for _ in 0..2 {
        assert!(matches!(
            open.admit(2, -1),
            Admit::In { evicted: false, .. }
        ));
    }
    assert!(matches!(open.admit(2, -1), Admit::Full));
    // Silent for seconds: the oldest goes.
    open.conns = [
        (0, Arc::new(conn(Duration::from_secs(9)))),
        (1, Arc::new(conn(Duration::from_secs(5)))),
    ]
    .into();
    match open.admit(2, -1) {
        Admit::In { evicted, .. } => assert!(evicted),
        Admit::Full => panic!("an idle one gives its place"),
    }
    assert!(!open.conns.contains_key(&0), "the oldest left");
    assert!(open.conns.contains_key(&1));
    // Every one in a request: refused.
    for c in open.conns.values() {
        c.busy.store(1, Ordering::SeqCst);
    }
    assert!(matches!(open.admit(2, -1), Admit::Full));
    assert_eq!(open.conns.len(), 2);
}

#[test]
fn a_connection_whose_request_is_arriving_keeps_its_place() {
    assert!(!conn(Duration::ZERO).evictable(), "just opened");
    let c = conn(Duration::from_secs(5));
    assert!(c.evictable(), "silent since it opened");
    // Headers began to arrive just now: not evictable; over a second ago:
    // a slow sender, evictable.
    c.reading.store(c.millis() + 1, Ordering::SeqCst);
    assert!(!c.evictable());
    c.reading.store(1, Ordering::SeqCst);
    assert!(c.evictable());
    // A request sent but not yet read (bytes in the kernel): kept.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    let mut sock = Conn::new(server.as_raw_fd());
    assert!(
        !sock.evictable(),
        "just opened: its request may be on its way"
    );
    sock.accepted = Instant::now() - Duration::from_secs(5);
    assert!(sock.evictable(), "silent for seconds");
    client.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
    let waited = std::time::Instant::now();
    while !sock.bytes_waiting() {
        assert!(waited.elapsed() < Duration::from_secs(10), "bytes arrive");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(!sock.evictable());
}

#[test]
fn the_watchdog_closes_by_the_right_clock() {
    let l = limits();
    // A new connection: its first headers within the header timeout.
    let c = conn(Duration::ZERO);
    let (at, why) = c.deadline(&l).unwrap();
    assert_eq!(why, Close::HeaderTimeout);
    assert_eq!(at, c.accepted + l.header_timeout);
    // In a request: no deadline.
    c.busy.store(1, Ordering::SeqCst);
    c.served.store(true, Ordering::SeqCst);
    assert!(c.deadline(&l).is_none());
    // Answered at 3 s and kept alive: the idle timeout from then.
    c.busy.store(0, Ordering::SeqCst);
    c.idle.store(3000, Ordering::SeqCst);
    assert_eq!(
        c.deadline(&l).unwrap(),
        (
            c.accepted + Duration::from_millis(3000) + l.idle_timeout,
            Close::IdleTimeout
        )
    );
    // The next request's first bytes at 4 s: its headers by 14 s.
    c.reading.store(4001, Ordering::SeqCst);
    assert_eq!(
        c.deadline(&l).unwrap(),
        (
            c.accepted + Duration::from_millis(4000) + l.header_timeout,
            Close::HeaderTimeout
        )
    );
}

#[test]
fn limits_are_checked() {
    let ok = Limits::default();
    if open_files_limit().is_none_or(|n| n >= 640) {
        assert!(ok.check().is_ok(), "512 fits in the usual 1,024");
    }
    let none = Limits {
        max_connections: 0,
        ..ok
    };
    assert!(none.check().is_err());
    let zero = Limits {
        header_timeout: Duration::ZERO,
        ..ok
    };
    assert!(zero.check().is_err());
    let huge = Limits {
        max_connections: usize::MAX / 2,
        ..ok
    };
    let err = huge.check().unwrap_err();
    assert!(err.contains("LimitNOFILE"), "{err}");
}
