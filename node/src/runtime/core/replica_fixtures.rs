//! A coordinator replica's core for tests: three replicas on loopback
//! addresses, the first leading the first term, and the purchases, votes
//! and acceptances fed to it (`replica_tests.rs`, `waited_tests.rs`).

use super::*;
use crate::runtime::wire::Format;
use twopc_model::{Coordinator, Replica, Term};

pub(super) const R: [&str; 3] = ["127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"];

pub(super) fn id(s: &str) -> Id {
    Id::from(s.parse::<SocketAddrV4>().unwrap())
}

/// Replica `index` of three, started on an empty disk at `now`, recovered.
pub(super) fn replica(index: usize, faults: Faults, now: Instant) -> Core {
    let actor = Node::Replica(Replica {
        coordinator: Coordinator {
            wallet: id("127.0.0.1:7201"),
            order: id("127.0.0.1:7202"),
            retention: 100,
            prices: false,
            one_write: false,
        },
        peers: R.iter().map(|r| id(r)).collect(),
        index,
        incarnation: 0,
    });
    let cfg = Config {
        name: format!("coordinator-{}", index + 1),
        codec: Codec::new(None, Format::Bincode),
        faults,
        batch_max: 64,
    };
    recovered(Core::new(actor, id(R[index]), &cfg), index, now)
}

/// `core`, replica `index` of three, started on an empty disk at `now` in
/// a new cluster: it asks the others what they hold, and both answer that
/// they are recovering too (the first replica then leads the first term).
pub(super) fn recovered(mut core: Core, index: usize, now: Instant) -> Core {
    core.handle(now, Event::Start(None));
    let _ = core.ready(now);
    for j in (0..R.len()).filter(|j| *j != index) {
        let msg = Msg::RecoverReply {
            nonce: 0,
            acceptor: None,
        };
        let from = R[j].parse().unwrap();
        core.handle(
            now,
            Event::Peer {
                from,
                msg,
                waited: 0,
            },
        );
    }
    core
}

pub(super) fn first_term() -> Term {
    Term {
        n: 0,
        leader: id(R[0]),
    }
}

pub(super) const WALLET: &str = "127.0.0.1:7201";
pub(super) const ORDER: &str = "127.0.0.1:7202";
pub(super) const CLIENT: &str = "127.0.0.1:7301";

/// Feeds `msg` from `from` (a participant or a client) as a datagram.
pub(super) fn datagram(core: &mut Core, now: Instant, from: &str, msg: Msg) {
    let bytes = Codec::new(None, Format::Bincode)
        .encode(&Payload::Protocol(msg))
        .unwrap();
    let from = from.parse().unwrap();
    core.handle(
        now,
        Event::Datagram {
            from,
            bytes: &bytes,
        },
    );
}

/// A backup's `Accepted` of `version` of the first term.
pub(super) fn accepted_by(core: &mut Core, now: Instant, backup: usize, version: u64) {
    accepted_counting(core, now, backup, version, 0);
}

/// [`accepted_by`], the `Accepted` saying it waited for `waited` durable
/// writes.
pub(super) fn accepted_counting(
    core: &mut Core,
    now: Instant,
    backup: usize,
    version: u64,
    waited: u8,
) {
    let msg = Msg::Accepted {
        term: first_term(),
        version,
    };
    let from = R[backup].parse().unwrap();
    core.handle(now, Event::Peer { from, msg, waited });
}

/// Purchase `n` (with a ticket) and both yes votes for its attempt, the
/// `n`th of epoch 1: the leader decides commit, a save.
pub(super) fn purchase_and_votes(core: &mut Core, now: Instant, n: u64) {
    // The leader's coordinator started without a log: both participants
    // answer its question first (a new cluster: no epoch seen). Once it has
    // learned, further answers change nothing.
    for p in [WALLET, ORDER] {
        let answer = Msg::Epoch {
            asked: 1,
            highest: 0,
            fates: vec![],
        };
        datagram(core, now, p, answer);
    }
    let purchase = Msg::Purchase {
        req: twopc_model::RequestId::new(format!("order-{n}")),
        purchase: twopc_model::Purchase {
            user: "alice".into(),
            sku: "widget".into(),
            qty: 1,
            price: 5,
        },
        ticket: Some(0),
    };
    datagram(core, now, CLIENT, purchase);
    let txn = twopc_model::TxnId { epoch: 1, n };
    for voter in [WALLET, ORDER] {
        let ballot = twopc_model::Ballot::Yes;
        datagram(core, now, voter, Msg::Vote { txn, ballot });
    }
}

/// The messages of `outs`, peer messages and datagrams alike.
pub(super) fn msgs(outs: &[Outgoing]) -> Vec<Msg> {
    let codec = Codec::new(None, Format::Bincode);
    outs.iter()
        .map(|o| match o {
            Outgoing::Peer { msg, .. } => (**msg).clone(),
            Outgoing::Datagram { bytes, .. } | Outgoing::Reply { bytes, .. } => {
                match codec.decode(bytes) {
                    Ok(Payload::Protocol(m)) => m,
                    other => panic!("not a protocol message: {other:?}"),
                }
            }
        })
        .collect()
}

pub(super) fn is_accept(m: &Msg) -> bool {
    matches!(m, Msg::Accept { .. })
}

/// The first replica leading the first term, the group's first version
/// (the epoch) accepted by a backup, and purchase 0 decided: the
/// decision's `Accept`s and save are in the next `ready`.
pub(super) fn leader_deciding(now: Instant) -> Core {
    let mut leader = replica(0, Faults::default(), now);
    let _ = leader.ready(now);
    accepted_by(&mut leader, now, 1, 1);
    let _ = leader.ready(now);
    purchase_and_votes(&mut leader, now, 0);
    leader
}
