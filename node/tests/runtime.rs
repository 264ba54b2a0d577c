//! Persist before send through the whole runtime (core and shell), over
//! real UDP sockets, with a store and a transport that record the order in
//! which saves become durable and datagrams leave. The core's own unit tests
//! (`core/tests.rs`) assert the same rules without sockets.

use stateright::actor::Id;
use std::future::Future;
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use twopc_model::{
    Ballot, Coordinator, Msg, Node, Participant, Purchase, RequestId, Resource, State, Storage,
    TxnId,
};
use twopc_node::runtime::core::Config;
use twopc_node::runtime::error::Result;
use twopc_node::runtime::faults::Faults;
use twopc_node::runtime::shell::Shell;
use twopc_node::runtime::storage::{Store, StoreStats};
use twopc_node::runtime::transport::{Transport, UdpTransport};
use twopc_node::runtime::wire::{Codec, Format, MsgKind, Payload};

type Log = Arc<Mutex<Vec<String>>>;

/// A store that records when saves become durable.
struct RecordingStore {
    log: Log,
    staged: usize,
    stats: StoreStats,
}

impl Store for RecordingStore {
    fn stage(&mut self, _: Storage) -> Result<()> {
        self.staged += 1;
        self.log.lock().unwrap().push("staged".into());
        Ok(())
    }
    fn needs_sync(&self) -> bool {
        self.staged > 0
    }
    fn sync(&mut self) -> Result<()> {
        self.log
            .lock()
            .unwrap()
            .push(format!("durable({})", self.staged));
        self.staged = 0;
        self.stats.fsyncs += 1;
        Ok(())
    }
    fn stats(&self) -> StoreStats {
        self.stats
    }
}

/// A UDP transport that records what it sends.
struct RecordingTransport {
    inner: UdpTransport,
    log: Log,
    codec: Codec,
}

impl Transport for RecordingTransport {
    fn recv(
        &self,
        buf: &mut [u8],
    ) -> impl Future<Output = std::io::Result<(usize, SocketAddr)>> + Send {
        self.inner.recv(buf)
    }
    fn try_recv(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        self.inner.try_recv(buf)
    }
    async fn send(&self, bytes: &[u8], to: SocketAddr) -> std::io::Result<()> {
        if let Ok(Payload::Protocol(msg)) = self.codec.decode(bytes) {
            self.log
                .lock()
                .unwrap()
                .push(format!("sent({})", MsgKind::of(&msg)));
        }
        self.inner.send(bytes, to).await
    }
    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

fn v4(s: &std::net::UdpSocket) -> SocketAddrV4 {
    match s.local_addr().unwrap() {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => unreachable!(),
    }
}

async fn recv_msg(s: &tokio::net::UdpSocket, codec: &Codec) -> Msg {
    let mut buf = vec![0; 65536];
    loop {
        let (n, _) = tokio::time::timeout(Duration::from_secs(30), s.recv_from(&mut buf))
            .await
            .expect("a message within 30s")
            .unwrap();
        if let Ok(Payload::Protocol(m)) = codec.decode(&buf[..n]) {
            return m;
        }
    }
}

/// Spawns `actor` on `sock` with a recording transport and store that
/// write to `log`. Returns its id, the shutdown trigger and the task.
fn spawn_recorded(
    actor: Node,
    name: &str,
    sock: std::net::UdpSocket,
    codec: &Codec,
    log: &Log,
) -> (
    Id,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<State>>,
) {
    let id = Id::from(v4(&sock));
    let transport = RecordingTransport {
        inner: UdpTransport::from_std(sock).unwrap(),
        log: log.clone(),
        codec: codec.clone(),
    };
    let store = RecordingStore {
        log: log.clone(),
        staged: 0,
        stats: StoreStats::default(),
    };
    let cfg = Config {
        name: name.into(),
        codec: codec.clone(),
        faults: Faults::default(),
        batch_max: 64,
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let rt = Shell::new(actor, id, transport, store, None, cfg);
    let task = tokio::spawn(rt.run(async {
        let _ = stop_rx.await;
    }));
    (id, stop_tx, task)
}

/// The coordinator's commit decision is durable before Commit or the
/// client's Outcome leave, and a participant's hold before its vote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persist_before_send() {
    let codec = Codec::new(None, Format::Bincode);
    let log: Log = Arc::default();
    let coord_sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let peers: Vec<tokio::net::UdpSocket> = (0..3)
        .map(|_| {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_nonblocking(true).unwrap();
            tokio::net::UdpSocket::from_std(s).unwrap()
        })
        .collect();
    let addr = |s: &tokio::net::UdpSocket| match s.local_addr().unwrap() {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => unreachable!(),
    };
    let (wallet, order, client) = (&peers[0], &peers[1], &peers[2]);
    let actor = Node::Coordinator(Coordinator {
        wallet: Id::from(addr(wallet)),
        order: Id::from(addr(order)),
        retention: 10,
        prices: false,
        one_write: false,
    });
    let (coord_id, stop_tx, task) = spawn_recorded(actor, "coordinator", coord_sock, &codec, &log);
    let coord_addr = SocketAddr::V4(SocketAddrV4::from(coord_id));
    async fn send(s: &tokio::net::UdpSocket, codec: &Codec, to: SocketAddr, msg: Msg) {
        let bytes = codec.encode(&Payload::Protocol(msg)).unwrap();
        s.send_to(&bytes, to).await.unwrap();
    }
    let req = RequestId::new(format!("{}#{}", 1, 1));
    let purchase = Purchase {
        user: "alice".into(),
        sku: "widget".into(),
        qty: 1,
        price: 5,
    };
    // A ticket no older than anything forgotten (nothing is): the purchase
    // starts at once.
    let ticket = Some(0);
    let msg = Msg::Purchase {
        req,
        purchase,
        ticket,
    };
    // Started on an empty log, the coordinator first asks both participants
    // the epoch they have seen (none: a new cluster).
    for p in [wallet, order] {
        let Msg::AskEpoch { epoch } = recv_msg(p, &codec).await else {
            panic!("expected AskEpoch")
        };
        let answer = Msg::Epoch {
            asked: epoch,
            highest: 0,
            fates: vec![],
        };
        send(p, &codec, coord_addr, answer).await;
    }
    // (Let the answers arrive first: a purchase before them is ignored.)
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    send(client, &codec, coord_addr, msg).await;
    let Msg::Prepare { txn, .. } = recv_msg(wallet, &codec).await else {
        panic!("expected a prepare")
    };
    recv_msg(order, &codec).await;
    for p in [wallet, order] {
        let ballot = Ballot::Yes;
        send(p, &codec, coord_addr, Msg::Vote { txn, ballot }).await;
    }
    assert!(matches!(recv_msg(client, &codec).await, Msg::Outcome(_)));
    stop_tx.send(()).unwrap();
    task.await.unwrap().unwrap();

    let log = log.lock().unwrap().clone();
    let pos = |what: &str| log.iter().position(|e| e == what);
    let durable_after = |i: usize| log[..i].iter().rposition(|e| e.starts_with("durable"));
    let staged_before = |i: usize| log[..i].iter().rposition(|e| e == "staged");
    // Every send is preceded by a durable point after the last staged save.
    for (i, e) in log.iter().enumerate() {
        if e.starts_with("sent") {
            if let Some(s) = staged_before(i) {
                assert!(
                    durable_after(i).is_some_and(|d| d > s),
                    "{e} at {i} overtook the save at {s}: {log:?}"
                );
            }
        }
    }
    let commit = pos("sent(commit)").expect("commit sent");
    let outcome = pos("sent(outcome)").expect("outcome sent");
    assert!(staged_before(commit).is_some() && staged_before(outcome).is_some());
    assert!(log.iter().any(|e| e.starts_with("durable")), "{log:?}");
}

/// A participant's hold is durable before its yes vote leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_is_durable_before_the_vote() {
    let codec = Codec::new(None, Format::Bincode);
    let log: Log = Arc::default();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let coord = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    coord.set_nonblocking(true).unwrap();
    let coord = tokio::net::UdpSocket::from_std(coord).unwrap();
    let coord_id = Id::from(match coord.local_addr().unwrap() {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => unreachable!(),
    });
    let actor = Node::Participant(Participant {
        resource: Resource::Wallet,
        coordinators: vec![coord_id],
        initial: [("alice".to_string(), 10)].into(),
        prices: Default::default(),
        one_write: false,
    });
    let (my_id, stop_tx, task) = spawn_recorded(actor, "wallet", sock, &codec, &log);
    let txn = TxnId { epoch: 1, n: 0 };
    let req = RequestId::new(format!("{}#{}", 1, 1));
    let op = twopc_model::Op {
        key: "alice".into(),
        amount: 4,
    };
    let bytes = codec
        .encode(&Payload::Protocol(Msg::Prepare {
            txn,
            req,
            op,
            floor: Default::default(),
        }))
        .unwrap();
    coord
        .send_to(&bytes, SocketAddr::V4(SocketAddrV4::from(my_id)))
        .await
        .unwrap();
    let vote = recv_msg(&coord, &codec).await;
    assert_eq!(
        vote,
        Msg::Vote {
            txn,
            ballot: Ballot::Yes
        }
    );
    stop_tx.send(()).unwrap();
    task.await.unwrap().unwrap();
    let log = log.lock().unwrap().clone();
    assert_eq!(log, ["staged", "durable(1)", "sent(vote)"]);
}

/// Prepares already waiting when the runtime wakes form one batch: one
/// fsync for all their holds, and not one vote leaves before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_shares_one_fsync_and_holds_back_every_vote() {
    const N: u64 = 10;
    let codec = Codec::new(None, Format::Bincode);
    let log: Log = Arc::default();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let coord = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let coord_id = Id::from(v4(&coord));
    // Every prepare is in the participant's socket before it starts.
    for n in 0..N {
        let msg = Msg::Prepare {
            txn: TxnId { epoch: 1, n },
            req: RequestId::new(format!("{}#{}", 1, n)),
            op: twopc_model::Op {
                key: "alice".into(),
                amount: 1,
            },
            floor: Default::default(),
        };
        let bytes = codec.encode(&Payload::Protocol(msg)).unwrap();
        coord.send_to(&bytes, v4(&sock)).unwrap();
    }
    let actor = Node::Participant(Participant {
        resource: Resource::Wallet,
        coordinators: vec![coord_id],
        initial: [("alice".to_string(), 100)].into(),
        prices: Default::default(),
        one_write: false,
    });
    coord.set_nonblocking(true).unwrap();
    let coord = tokio::net::UdpSocket::from_std(coord).unwrap();
    let (_, stop_tx, task) = spawn_recorded(actor, "wallet", sock, &codec, &log);
    for _ in 0..N {
        assert!(matches!(recv_msg(&coord, &codec).await, Msg::Vote { .. }));
    }
    stop_tx.send(()).unwrap();
    task.await.unwrap().unwrap();
    let log = log.lock().unwrap().clone();
    // One batch: its newest save (holding all ten holds) is staged, once.
    let mut expected = vec!["staged".to_string(), "durable(1)".to_string()];
    expected.extend(std::iter::repeat_n("sent(vote)".to_string(), N as usize));
    assert_eq!(log, expected);
}

/// A batch that sends nothing (an abort recorded by a participant) does
/// not fsync; the next batch that sends makes it durable before sending,
/// and shutdown makes anything still staged durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saves_nobody_depends_on_wait_for_the_next_send() {
    let codec = Codec::new(None, Format::Bincode);
    let log: Log = Arc::default();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let coord = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let coord_id = Id::from(v4(&coord));
    coord.set_nonblocking(true).unwrap();
    let coord = tokio::net::UdpSocket::from_std(coord).unwrap();
    let actor = Node::Participant(Participant {
        resource: Resource::Wallet,
        coordinators: vec![coord_id],
        initial: [("alice".to_string(), 10)].into(),
        prices: Default::default(),
        one_write: false,
    });
    let (my_id, stop_tx, task) = spawn_recorded(actor, "wallet", sock, &codec, &log);
    let to = SocketAddr::V4(SocketAddrV4::from(my_id));
    let send = |msg: Msg| codec.encode(&Payload::Protocol(msg)).unwrap();
    // An abort for a transaction never prepared: recorded, nothing sent.
    let abort = send(Msg::Abort {
        txn: TxnId { epoch: 1, n: 7 },
    });
    coord.send_to(&abort, to).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while log.lock().unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(log.lock().unwrap().clone(), ["staged"]);
    // A prepare: its vote leaves only after both saves are durable.
    let prepare = send(Msg::Prepare {
        txn: TxnId { epoch: 1, n: 8 },
        req: RequestId::new(format!("{}#{}", 1, 1)),
        op: twopc_model::Op {
            key: "alice".into(),
            amount: 4,
        },
        floor: Default::default(),
    });
    coord.send_to(&prepare, to).await.unwrap();
    assert!(matches!(recv_msg(&coord, &codec).await, Msg::Vote { .. }));
    coord.send_to(&abort, to).await.unwrap(); // a duplicate: no save
    let abort8 = send(Msg::Abort {
        txn: TxnId { epoch: 1, n: 8 },
    });
    coord.send_to(&abort8, to).await.unwrap(); // releases the hold: staged
    let deadline = Instant::now() + Duration::from_secs(10);
    while log.lock().unwrap().len() < 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop_tx.send(()).unwrap();
    task.await.unwrap().unwrap();
    let log = log.lock().unwrap().clone();
    assert_eq!(
        log,
        [
            "staged",
            "staged",
            "durable(2)",
            "sent(vote)",
            "staged",
            "durable(1)"
        ]
    );
}
