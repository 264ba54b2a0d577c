//! Hostile input against real `twopc node` processes on 127.0.0.1: a flood
//! of garbage, truncated, oversized, wrong-version, unauthenticated and
//! replayed datagrams while purchases go on; forged Commit/Abort/Prepare/
//! Vote datagrams from an outside socket; and replays of real captured
//! traffic, from outside and from the very addresses of the nodes that sent
//! it, across restarts. Strangers change nothing, and every rejected
//! datagram is counted in `twopc status`.

mod common;

use common::*;
use hmac::{Hmac, Mac};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use sha2::Sha256;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};
use twopc_model::{Ballot, Msg, Op, RequestId, Storage, TxnId};
use twopc_node::runtime::storage::inspect;
use twopc_node::runtime::wire::{ClusterKey, Codec, Format, Payload, MAX_DATAGRAM};

fn addr(c: &TestCluster, name: &str) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], c.ports[name]))
}

fn key(c: &TestCluster) -> ClusterKey {
    ClusterKey::new(&std::fs::read_to_string(&c.key_file).unwrap()).unwrap()
}

fn rejected(view: &Value, reason: &str) -> u64 {
    view["counters"]["rejected"][reason].as_u64().unwrap_or(0)
}

/// A datagram with a valid MAC over an arbitrary body (so it reaches the
/// body decoder).
fn signed_body(key_text: &str, body: &[u8]) -> Vec<u8> {
    let mut out = vec![b'2', b'P', twopc_node::runtime::wire::VERSION, 0x00, 0x01];
    let mut mac = Hmac::<Sha256>::new_from_slice(key_text.trim().as_bytes()).unwrap();
    mac.update(&out);
    mac.update(body);
    out.extend_from_slice(&mac.finalize().into_bytes());
    out.extend_from_slice(body);
    out
}

/// One captured datagram: direction, peer, bytes.
struct Captured {
    dir: String,
    peer: SocketAddr,
    bytes: Vec<u8>,
}

fn read_capture(path: &Path) -> Vec<Captured> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut parts = l.split(' ');
            Some(Captured {
                dir: parts.next()?.to_string(),
                peer: parts.next()?.parse().ok()?,
                bytes: hex::decode(parts.next()?).ok()?,
            })
        })
        .collect()
}

#[test]
fn a_flood_of_hostile_datagrams_is_counted_and_purchases_go_on() {
    let mut c = TestCluster::new(&[("alice", 10_000)], &[("widget", 10_000)]);
    let capture = c.dir.path().join("coordinator.capture");
    let cap = capture.to_str().unwrap().to_string();
    c.start("coordinator", &["--fault-capture", &cap]);
    c.start("wallet", &[]);
    c.start("order", &[]);
    let (r, _) = c.purchase("alice", "widget", 1, 5);
    assert_eq!(r["outcome"], "committed", "{r}");
    // Authentic traffic to replay: what the coordinator received.
    let replays: Vec<Vec<u8>> = read_capture(&capture)
        .into_iter()
        .filter(|d| d.dir == "in")
        .map(|d| d.bytes)
        .collect();
    assert!(!replays.is_empty(), "captured the coordinator's traffic");
    let key_text = std::fs::read_to_string(&c.key_file).unwrap();
    let authentic = Codec::new(Some(key(&c)), Format::Bincode)
        .encode(&Payload::Protocol(Msg::Commit {
            txn: TxnId { epoch: 1, n: 0 },
        }))
        .unwrap()
        .to_vec();
    let stranger = Codec::new(
        Some(ClusterKey::new(&"0badc0de".repeat(8)).unwrap()),
        Format::Bincode,
    );
    let open = Codec::new(None, Format::Bincode);
    let forged = Payload::Protocol(Msg::Abort {
        txn: TxnId { epoch: 1, n: 0 },
    });
    let targets = [
        addr(&c, "coordinator"),
        addr(&c, "wallet"),
        addr(&c, "order"),
    ];

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_flood = stop.clone();
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let flood_progress = progress.clone();
    let flood = std::thread::spawn(move || {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut rng = StdRng::seed_from_u64(4);
        let mut sent = 0u64;
        let until = Instant::now() + Duration::from_secs(90);
        // Until the purchases are done, bounded in count and time; bursts
        // with pauses, so a loaded two-core machine keeps breathing.
        while !stop_flood.load(std::sync::atomic::Ordering::Relaxed)
            && sent < 500_000
            && Instant::now() < until
        {
            for _ in 0..100 {
                let d: Vec<u8> = match rng.random_range(0..8) {
                    // Oversized datagrams fill a socket buffer fastest: rarer.
                    2 if rng.random_bool(0.8) => authentic.clone(),
                    0 => (0..rng.random_range(0..200))
                        .map(|_| rng.random())
                        .collect(),
                    1 => authentic[..rng.random_range(0..authentic.len())].to_vec(),
                    2 => {
                        let mut big =
                            vec![b'2', b'P', twopc_node::runtime::wire::VERSION, 0x00, 0x01];
                        big.resize(MAX_DATAGRAM + 1 + rng.random_range(0..2000), 0xAB);
                        big
                    }
                    3 => {
                        let mut v = authentic.clone();
                        v[2] = rng.random_range(twopc_node::runtime::wire::VERSION + 1..=255);
                        v
                    }
                    4 => stranger.encode(&forged).unwrap().to_vec(),
                    5 => open.encode(&forged).unwrap().to_vec(),
                    6 => signed_body(&key_text, &[0xff; 12]),
                    _ => replays[rng.random_range(0..replays.len())].clone(),
                };
                let to = targets[rng.random_range(0..targets.len())];
                let _ = sock.send_to(&d, to);
                sent += 1;
                flood_progress.store(sent, std::sync::atomic::Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        sent
    });
    // Purchases go on meanwhile. A flood costs datagrams: when a socket's
    // buffer is full the kernel drops whatever arrives, a vote included, and
    // the coordinator then aborts by vote timeout. So every purchase must get
    // an outcome, and commits must still happen, but not every one.
    let mut committed = 1;
    let mut timeouts = 0;
    let started = Instant::now();
    let mut made = 0;
    while made < 8
        || (progress.load(std::sync::atomic::Ordering::Relaxed) < 30_000
            && started.elapsed() < Duration::from_secs(60))
    {
        made += 1;
        let (r, _) = c.purchase_once("alice", "widget", 1, 5);
        match (r["outcome"].as_str(), r["reason"].as_str()) {
            (Some("committed"), _) => committed += 1,
            (Some("aborted"), Some("vote_timeout")) => timeouts += 1,
            _ => panic!("every purchase gets an outcome under a flood: {r}"),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = flood.join().unwrap();
    assert!(committed > 1, "purchases commit during the flood");
    // And once it is over, everything commits again.
    for _ in 0..3 {
        let (r, code) = c.purchase("alice", "widget", 1, 5);
        assert_eq!((r["outcome"].as_str(), code), (Some("committed"), 0), "{r}");
        committed += 1;
    }
    c.settle();
    assert_eq!(c.levels("wallet")["alice"], 10_000 - 5 * committed);
    assert_eq!(c.levels("order")["widget"], 10_000 - committed);
    let mut total = 0;
    for n in ["coordinator", "wallet", "order"] {
        let v = c.status(n).unwrap();
        println!("{n}: rejected {}", v["counters"]["rejected"]);
        for reason in [
            "bad_magic",
            "bad_version",
            "oversized",
            "missing_mac",
            "bad_mac",
            "undecodable",
        ] {
            let count = rejected(&v, reason);
            assert!(count > 0, "{n} counts {reason} rejects: {v}");
            total += count;
        }
    }
    // (The kernel may drop part of a flood when a socket's buffer is full;
    // those never reach the node and are not counted by it.)
    println!(
        "flood: {sent} hostile datagrams sent, {total} rejected and counted; {committed} purchases \
         committed, {timeouts} aborted by vote timeout (a vote lost to the flood)"
    );
}

#[test]
fn forged_commit_abort_prepare_and_vote_from_outside_change_nothing() {
    let mut c = TestCluster::new(&[("alice", 100)], &[("widget", 10)]);
    c.start("coordinator", &[]);
    c.start("order", &[]);
    // The wallet never hears the decision: its hold stays in doubt, the
    // perfect target for a forged Abort or Commit.
    c.start("wallet", &["--fault-drop-in", "commit,abort"]);
    let (r, _) = c.purchase("alice", "widget", 2, 10);
    assert_eq!(r["outcome"], "committed", "{r}");
    let txn: TxnId = {
        let t = r["txn"].as_str().unwrap();
        let (e, n) = t.split_once('.').unwrap();
        TxnId {
            epoch: e.parse().unwrap(),
            n: n.parse().unwrap(),
        }
    };
    wait_for("the wallet's hold", || {
        (c.holds("wallet") == 1).then_some(())
    });
    let before: Vec<Value> = ["coordinator", "wallet", "order"]
        .iter()
        .map(|n| c.status(n).unwrap())
        .collect();

    let right = key(&c);
    let wrong = ClusterKey::new(&"a77acce5".repeat(8)).unwrap();
    let outsider = UdpSocket::bind("127.0.0.1:0").unwrap();
    let req = RequestId::new(format!("{}#{}", 666, 1));
    let mut forged = 0;
    for codec in [
        Codec::new(None, Format::Bincode),
        Codec::new(None, Format::Json),
        Codec::new(Some(wrong), Format::Bincode),
        // Even with the key (stolen), an outside address is not the
        // coordinator's or a participant's: the actors ignore it.
        Codec::new(Some(right), Format::Bincode),
    ] {
        for n in 0..5 {
            let t = TxnId {
                epoch: txn.epoch,
                n: txn.n + n,
            };
            let op = |key: &str, amount| Op {
                key: key.into(),
                amount,
            };
            let to_participants = [
                Msg::Abort { txn: t },
                Msg::Commit { txn: t },
                Msg::Prepare {
                    txn: TxnId { epoch: 99, n },
                    req: req.clone(),
                    op: op("alice", 100),
                    floor: Default::default(),
                },
                Msg::Prepare {
                    txn: TxnId { epoch: 99, n },
                    req: req.clone(),
                    op: op("widget", 10),
                    floor: Default::default(),
                },
            ];
            for m in to_participants {
                for p in ["wallet", "order"] {
                    let d = codec.encode(&Payload::Protocol(m.clone())).unwrap();
                    outsider.send_to(&d, addr(&c, p)).unwrap();
                    forged += 1;
                }
            }
            for m in [
                Msg::Vote {
                    txn: t,
                    ballot: Ballot::Yes,
                },
                Msg::Vote {
                    txn: t,
                    ballot: Ballot::No(twopc_model::Refusal::Insufficient),
                },
                Msg::Ack { txn: t },
            ] {
                let d = codec.encode(&Payload::Protocol(m)).unwrap();
                outsider.send_to(&d, addr(&c, "coordinator")).unwrap();
                forged += 1;
            }
        }
    }
    // Wait until every forged datagram has been received (counted).
    wait_for("the forged datagrams to arrive", || {
        let got: u64 = ["coordinator", "wallet", "order"]
            .iter()
            .zip(&before)
            .map(|(n, b)| {
                let v = c.status(n).unwrap();
                v["counters"]["datagrams_in"].as_u64().unwrap()
                    - b["counters"]["datagrams_in"].as_u64().unwrap()
            })
            .sum();
        (got >= forged).then_some(())
    });
    let after: Vec<Value> = ["coordinator", "wallet", "order"]
        .iter()
        .map(|n| c.status(n).unwrap())
        .collect();
    for (b, a) in before.iter().zip(&after) {
        for field in [
            "levels",
            "holds",
            "finished",
            "unacked_commits",
            "voting",
            "epoch",
        ] {
            assert_eq!(b[field], a[field], "{field} changed: before {b}, after {a}");
        }
    }
    // Three of four senders lacked the key: rejected and counted.
    let unauth: u64 = after
        .iter()
        .map(|v| rejected(v, "missing_mac") + rejected(v, "bad_mac"))
        .sum();
    assert_eq!(
        unauth,
        forged * 3 / 4,
        "every unauthenticated forgery counted"
    );
    // The decision stands: once the wallet hears it, the purchase commits.
    c.kill9("wallet");
    c.start("wallet", &[]);
    c.settle();
    assert_eq!(c.levels("wallet")["alice"], 80);
    assert_eq!(c.levels("order")["widget"], 8);
}

/// Durable states of the three nodes (they must be stopped).
fn durable(c: &TestCluster) -> Vec<Option<Storage>> {
    ["coordinator", "wallet", "order"]
        .iter()
        .map(|n| inspect(&c.data_dir(n)).unwrap())
        .collect()
}

/// Sends `datagrams` from `from` (bound to that exact address) to `to`.
fn replay_from(from: SocketAddr, datagrams: &[(SocketAddr, Vec<u8>)]) -> usize {
    let sock = wait_for(&format!("{from} to be free"), || UdpSocket::bind(from).ok());
    send_all(&sock, datagrams)
}

fn send_all(sock: &UdpSocket, datagrams: &[(SocketAddr, Vec<u8>)]) -> usize {
    for (to, d) in datagrams {
        sock.send_to(d, to).unwrap();
        std::thread::sleep(Duration::from_micros(200));
    }
    datagrams.len()
}

#[test]
fn replayed_traffic_changes_nothing_even_from_the_senders_addresses_after_restarts() {
    let mut c = TestCluster::new(&[("alice", 100), ("bob", 30)], &[("widget", 10)]);
    let names = ["coordinator", "wallet", "order"];
    let dir = c.dir.path().to_path_buf();
    let cap = |n: &str| dir.join(format!("{n}.capture"));
    let caps: Vec<String> = names
        .iter()
        .map(|n| cap(n).to_str().unwrap().to_string())
        .collect();
    for (n, f) in names.iter().zip(&caps) {
        c.start(n, &["--fault-capture", f]);
    }
    // Real traffic: commits, an abort for funds, an abort for stock.
    for (user, qty, price) in [
        ("alice", 2, 10),
        ("bob", 1, 40),
        ("alice", 20, 1),
        ("bob", 1, 5),
    ] {
        let (r, _) = c.purchase(user, "widget", qty, price);
        assert!(
            r["outcome"] == "committed" || r["outcome"] == "aborted",
            "{r}"
        );
    }
    c.settle();
    for n in names {
        assert!(c.terminate(n).success());
    }
    let truth = durable(&c);
    let captured: Vec<Vec<Captured>> = names.iter().map(|n| read_capture(&cap(n))).collect();
    let node_addrs: Vec<SocketAddr> = names.iter().map(|n| addr(&c, n)).collect();
    let mut rng = StdRng::seed_from_u64(9);
    // What each node sent, to whom, shuffled: out of turn, every which way.
    let sent_by = |i: usize, rng: &mut StdRng| {
        let mut v: Vec<(SocketAddr, Vec<u8>)> = captured[i]
            .iter()
            .filter(|d| d.dir == "out")
            .map(|d| (d.peer, d.bytes.clone()))
            .collect();
        let mut reversed = v.clone();
        reversed.reverse();
        v.shuffle(rng);
        v.extend(reversed);
        v
    };
    let mut replayed = 0;

    // 1. The coordinator is down; its address replays every Prepare, Commit,
    //    Abort and Outcome it ever sent to the restarted participants.
    c.start("wallet", &[]);
    c.start("order", &[]);
    replayed += replay_from(node_addrs[0], &sent_by(0, &mut rng));
    // 2. Each participant in turn is down; its address replays every Vote,
    //    Ack and QueryDecision it sent to the restarted coordinator (a new
    //    epoch) — and the clients' purchases are replayed from their own
    //    addresses (long gone) to it too.
    c.start("coordinator", &[]);
    for (i, p) in [(1, "wallet"), (2, "order")] {
        c.terminate(p);
        replayed += replay_from(node_addrs[i], &sent_by(i, &mut rng));
        c.start(p, &[]);
    }
    let mut by_client: std::collections::BTreeMap<SocketAddr, Vec<(SocketAddr, Vec<u8>)>> =
        Default::default();
    for d in captured[0].iter().filter(|d| d.dir == "in") {
        if !node_addrs.contains(&d.peer) {
            by_client
                .entry(d.peer)
                .or_default()
                .push((node_addrs[0], d.bytes.clone()));
        }
    }
    assert!(!by_client.is_empty(), "client traffic was captured");
    for (client, datagrams) in &by_client {
        // A client's ephemeral port is normally free again; if some other
        // process took it meanwhile, that client's replay is skipped.
        match UdpSocket::bind(client) {
            Ok(sock) => replayed += send_all(&sock, datagrams),
            Err(e) => println!("replay: cannot bind {client} ({e}): skipped"),
        }
    }
    // 3. Everything anyone received, replayed from an outside socket.
    let outsider = UdpSocket::bind("127.0.0.1:0").unwrap();
    for (i, caps) in captured.iter().enumerate() {
        for d in caps.iter().filter(|d| d.dir == "in") {
            outsider.send_to(&d.bytes, node_addrs[i]).unwrap();
            replayed += 1;
        }
    }
    // Give the replays time to be handled, then settle and compare.
    wait_for("the replays to be handled", || {
        let v = c.status("wallet")?;
        (v["counters"]["datagrams_in"].as_u64()? > 0).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    c.settle();
    // Every replayed Commit is one the participant has a record of (held,
    // finished or below its floor): no false alarm.
    // (What was replayed from the outside socket is dropped as coming
    // from an address not in the cluster file, counted and named: the only
    // alarm.)
    for n in ["wallet", "order"] {
        let v = c.status(n).unwrap();
        assert_eq!(v["counters"]["unknown_decisions"], 0, "{n}: {v}");
        let alarms = v["alarms"].as_array().unwrap();
        assert!(
            alarms.iter().all(|a| a
                .as_str()
                .unwrap()
                .contains("from addresses that are not in the cluster file")),
            "{n}: {v}"
        );
        assert!(
            v["counters"]["rejected"]["unknown_sender"].as_u64() > Some(0),
            "{n}: {v}"
        );
    }
    for n in names {
        assert!(c.terminate(n).success());
    }
    let now = durable(&c);
    assert_eq!(now[1], truth[1], "the wallet's durable state changed");
    assert_eq!(
        now[2], truth[2],
        "the order service's durable state changed"
    );
    let (Some(Storage::Coordinator(a)), Some(Storage::Coordinator(b))) = (&truth[0], &now[0])
    else {
        panic!("coordinator state")
    };
    assert_eq!(a.outcomes, b.outcomes, "no purchase outcome changed");
    assert!(b.commits.is_empty());
    println!(
        "replay: {replayed} captured datagrams replayed; participants' durable state unchanged"
    );
    // And the cluster still works.
    c.start_all();
    let (r, _) = c.purchase("bob", "widget", 1, 1);
    assert_eq!(r["outcome"], "committed", "{r}");
}
