//! Tests of the TCP links on loopback (`link.rs`, `accept.rs`).

use super::frame_tests::{accept, state};
use super::*;
use crate::runtime::wire::{ClusterKey, Codec, Format};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use twopc_model::Msg;

/// Three links on loopback: a message to a peer arrives, named by its
/// sender; a stranger's key is refused (its connection closed).
#[tokio::test]
async fn peers_exchange_messages_over_tcp() {
    let (mut links, addrs) = linked(Limits::default()).await;
    let s = state(1_000);
    // Each says it waited for as many durable writes as its version:
    // the count rides in the frame (`core/waited.rs`).
    for v in 1..=3 {
        links[0].send(SocketAddr::V4(addrs[2]), accept(v, &s), v as u8);
    }
    // In order, ending with the last; earlier ones may have been
    // coalesced away while queued behind the connection.
    let mut last = 0;
    while last < 3 {
        let (from, got, waited) = links[2].recv().await.unwrap();
        let Msg::Accept { version, .. } = got else {
            panic!("{got:?}")
        };
        assert_eq!(u64::from(waited), version, "the count its frame carried");
        assert_eq!((from, &got), (addrs[0], &accept(version, &s)));
        assert!(version > last, "{version} after {last}");
        last = version;
    }
    let stranger = Codec::new(Some(ClusterKey::random()), Format::Bincode);
    let bytes = stranger
        .encode_frame(&Encoder::default().encode(addrs[0], accept(9, &s)))
        .unwrap();
    let mut conn = TcpStream::connect(addrs[1]).await.unwrap();
    conn.write_all(&(bytes.len() as u32).to_be_bytes())
        .await
        .unwrap();
    conn.write_all(&bytes).await.unwrap();
    let mut rest = Vec::new();
    // Closed by the receiver, nothing delivered; counted by reason.
    let _ = conn.read_to_end(&mut rest).await;
    assert!(links[1].try_recv().is_none());
    assert_eq!(links[1].stats().snapshot().get("bad_mac"), Some(&1));
}

/// Where replicas connect from, read off the cluster file's addresses.
#[test]
fn sources_follow_the_bind_addresses() {
    let at = |s: &str| -> SocketAddrV4 { s.parse().unwrap() };
    let ip = |s: &str| -> Ipv4Addr { s.parse().unwrap() };
    // Each listens on its address: connections come from those.
    let plain = [
        (at("10.0.0.1:7000"), at("10.0.0.1:7000")),
        (at("10.0.0.2:7000"), at("10.0.0.2:7000")),
        (at("10.0.0.3:7000"), at("10.0.0.3:7000")),
    ];
    let s = Sources::of(ip("10.0.0.1"), &plain);
    assert_eq!(s.own, Some(ip("10.0.0.1")));
    let peers = vec![ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3")];
    assert_eq!(s.peers, Some(peers));
    // A public address translated to a private one: both are taken,
    // and it connects from the private one it can bind.
    let mut nat = plain;
    nat[1] = (at("203.0.113.5:7000"), at("10.0.0.2:7000"));
    let s = Sources::of(ip("10.0.0.2"), &nat);
    assert_eq!(s.own, Some(ip("10.0.0.2")));
    let peers = s.peers.unwrap();
    assert!(peers.contains(&ip("203.0.113.5")) && peers.contains(&ip("10.0.0.2")));
    // One listens everywhere: nobody can know where it connects from.
    let mut any = plain;
    any[2] = (at("10.0.0.3:7000"), at("0.0.0.0:7000"));
    assert_eq!(Sources::of(ip("10.0.0.1"), &any).peers, None);
    assert_eq!(Sources::of(ip("0.0.0.0"), &any).own, None);
}

/// Three linked replicas on loopback, with `limits`.
async fn linked(limits: Limits) -> (Vec<PeerLink>, Vec<SocketAddrV4>) {
    let codec = Codec::new(Some(ClusterKey::random()), Format::Bincode);
    let mut listeners = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..3 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let SocketAddr::V4(a) = l.local_addr().unwrap() else {
            unreachable!()
        };
        addrs.push(a);
        listeners.push(l);
    }
    let links = listeners
        .into_iter()
        .zip(&addrs)
        .map(|(l, a)| {
            let sources = Sources {
                own: Some(*a.ip()),
                peers: Some(vec![*a.ip()]),
            };
            PeerLink::start(l, *a, &addrs, codec.clone(), sources, limits)
        })
        .collect();
    (links, addrs)
}

/// Whether the other side closes `conn` within `within`.
async fn closed(conn: &mut TcpStream, within: Duration) -> bool {
    let mut rest = Vec::new();
    tokio::time::timeout(within, conn.read_to_end(&mut rest))
        .await
        .is_ok()
}

/// Idle connections cannot crowd the peers out. With a deadline far
/// away: one from an address that is no replica's is closed at once;
/// from a replica's address at most `unproven` are kept, the others are
/// closed at once.
#[tokio::test]
async fn strangers_are_refused_beyond_the_unproven_places() {
    let limits = Limits {
        first_frame: Duration::from_secs(120),
        unproven: 4,
    };
    let (links, addrs) = linked(limits).await;
    let soon = Duration::from_secs(20);
    // Not a replica's address (127.0.0.2 is loopback too).
    let elsewhere = tokio::net::TcpSocket::new_v4().unwrap();
    elsewhere.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut conn = elsewhere.connect(SocketAddr::V4(addrs[1])).await.unwrap();
    assert!(
        closed(&mut conn, soon).await,
        "a stranger's address is refused"
    );
    let mut idle = Vec::new();
    for _ in 0..10 {
        idle.push(TcpStream::connect(addrs[1]).await.unwrap());
    }
    for conn in &mut idle[4..] {
        assert!(closed(conn, soon).await, "beyond the places: closed");
    }
    for conn in &mut idle[..4] {
        let kept = !closed(conn, Duration::from_millis(200)).await;
        assert!(kept, "the first four wait for their deadline");
    }
    // Every refusal is counted, by reason.
    let dropped = links[1].stats().snapshot();
    assert_eq!(dropped.get("stranger"), Some(&1), "{dropped:?}");
    assert_eq!(dropped.get("unproven_limit"), Some(&6), "{dropped:?}");
}

/// With a near deadline: idle connections are closed at it, then a peer
/// gets through, and its connection, proven by its first frame, stays
/// open past the deadline.
#[tokio::test]
async fn idle_connections_are_closed_at_the_deadline_and_peers_get_through() {
    let limits = Limits {
        first_frame: Duration::from_millis(300),
        unproven: 4,
    };
    let (mut links, addrs) = linked(limits).await;
    let soon = Duration::from_secs(20);
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(addrs[1]).await.unwrap());
    }
    for conn in &mut idle {
        assert!(closed(conn, soon).await, "closed at the deadline");
    }
    let s = state(10);
    for v in [1, 2] {
        if v == 2 {
            tokio::time::sleep(limits.first_frame * 3).await;
        }
        links[0].send(SocketAddr::V4(addrs[1]), accept(v, &s), 0);
        let got = tokio::time::timeout(soon, links[1].recv()).await;
        let (from, msg, _) = got.expect("delivered").unwrap();
        assert_eq!((from, msg), (addrs[0], accept(v, &s)));
    }
}
