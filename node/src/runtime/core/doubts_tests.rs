//! Transactions in doubt at a coordinator's core and a leading replica's:
//! shown, decided by an operator's request, the answer sent only once the
//! decision is durable (a replica: chosen).

use super::super::*;
use crate::runtime::in_doubt::{DecideAnswer, Decision};
use crate::runtime::wire::Format;
use twopc_model::{Coordinator, Fate, Replica, RequestId, Term, TxnId};

const WALLET: &str = "127.0.0.1:7201";
const ORDER: &str = "127.0.0.1:7202";
const ADMIN: &str = "127.0.0.1:7999";
const R: [&str; 3] = ["127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"];

fn id(s: &str) -> Id {
    Id::from(s.parse::<SocketAddrV4>().unwrap())
}

fn codec() -> Codec {
    Codec::new(None, Format::Bincode)
}

fn coordinator() -> Coordinator {
    Coordinator {
        wallet: id(WALLET),
        order: id(ORDER),
        retention: 100,
        prices: false,
        one_write: false,
    }
}

fn cfg(name: &str) -> Config {
    Config {
        name: name.into(),
        codec: codec(),
        faults: Faults::default(),
        batch_max: 64,
    }
}

/// The transaction both participants hold.
const TXN: TxnId = TxnId { epoch: 0, n: 7 };

fn req() -> RequestId {
    RequestId::new("ORDER-1")
}

fn feed(core: &mut Core, now: Instant, from: &str, payload: &Payload) {
    let bytes = codec().encode(payload).unwrap();
    let from = from.parse().unwrap();
    core.handle(
        now,
        Event::Datagram {
            from,
            bytes: &bytes,
        },
    );
}

/// Both participants answer the question of an empty log: they hold `TXN`.
fn both_hold(core: &mut Core, now: Instant) {
    for p in [WALLET, ORDER] {
        let fates = vec![(TXN, Fate::Held(req()))];
        // Seen epoch 1: the log that decided TXN was lost (an empty log
        // learns what it lacks only when it is behind them).
        let msg = Msg::Epoch {
            asked: 1,
            highest: 1,
            fates,
        };
        feed(core, now, p, &Payload::Protocol(msg));
    }
}

fn decide(core: &mut Core, now: Instant, nonce: u64, txn: TxnId, decision: Decision) {
    let request = Payload::DecideRequest {
        nonce,
        txn,
        decision,
    };
    feed(core, now, ADMIN, &request);
}

/// What a batch sends: protocol messages and decide answers, in order.
fn sent(outs: &[Outgoing]) -> Vec<Result<Msg, (u64, DecideAnswer)>> {
    outs.iter()
        .filter_map(Outgoing::datagram)
        .map(|bytes| match codec().decode(bytes) {
            Ok(Payload::Protocol(m)) => Ok(m),
            Ok(Payload::DecideReply { nonce, answer }) => Err((nonce, answer)),
            other => panic!("unexpected: {other:?}"),
        })
        .collect()
}

fn decided() -> DecideAnswer {
    DecideAnswer::Decided {
        req: "ORDER-1".into(),
    }
}

#[test]
fn a_coordinator_answers_an_operators_decision_after_it_is_durable() {
    let now = Instant::now();
    let mut core = Core::new(
        Node::Coordinator(coordinator()),
        id("127.0.0.1:7001"),
        &cfg("c"),
    );
    core.handle(now, Event::Start(None));
    // Before the participants answered, nothing is known to be in doubt.
    decide(&mut core, now, 1, TXN, Decision::Commit);
    let ready = core.ready(now);
    assert_eq!(
        sent(&ready.sends_after_sync).pop(),
        Some(Err((1, DecideAnswer::Learning)))
    );
    both_hold(&mut core, now);
    let _ = core.ready(now);
    let view = core.view(now);
    assert_eq!(view.doubts.total, 1);
    assert_eq!(view.doubts.listed[0].txn, "0.7");
    assert!(
        view.alarms.iter().any(|a| a.contains("in doubt")),
        "{view:?}"
    );
    // Decided: saved, then the commits and the answer, behind the fsync.
    decide(&mut core, now, 2, TXN, Decision::Commit);
    let ready = core.ready(now);
    let Some(Storage::Coordinator(saved)) = &ready.save else {
        panic!("{ready:?}")
    };
    assert!(saved.doubts.is_empty() && saved.commits.contains_key(&TXN));
    assert!(ready.sync && ready.sends.is_empty());
    let commit = Ok(Msg::Commit { txn: TXN });
    assert_eq!(
        sent(&ready.sends_after_sync),
        vec![commit.clone(), commit, Err((2, decided()))]
    );
    assert_eq!(core.counters().heuristic_decisions["commit"], 1);
    assert_eq!(core.take_heuristics(), vec![(TXN, req(), Decision::Commit)]);
    assert!(core.take_heuristics().is_empty());
    // The same request again: the same answer, nothing decided twice.
    decide(&mut core, now, 2, TXN, Decision::Commit);
    let ready = core.ready(now);
    assert_eq!(ready.save, None);
    assert_eq!(sent(&ready.sends_after_sync), vec![Err((2, decided()))]);
    // Another request: not in doubt any more.
    decide(&mut core, now, 3, TXN, Decision::Abort);
    let ready = core.ready(now);
    assert_eq!(ready.save, None);
    let Some(Err((3, DecideAnswer::NotInDoubt { in_doubt }))) = sent(&ready.sends_after_sync).pop()
    else {
        panic!("{ready:?}")
    };
    assert_eq!(in_doubt.total, 0);
    assert_eq!(core.counters().heuristic_decisions.len(), 1);
    assert!(core.view(now).alarms.is_empty());
}

#[test]
fn a_participant_decides_nothing() {
    let now = Instant::now();
    let actor = Node::Participant(twopc_model::Participant {
        resource: twopc_model::Resource::Wallet,
        coordinators: vec![id("127.0.0.1:7001")],
        initial: Default::default(),
        prices: Default::default(),
        one_write: false,
    });
    let mut core = Core::new(actor, id(WALLET), &cfg("wallet"));
    core.handle(now, Event::Start(None));
    decide(&mut core, now, 1, TXN, Decision::Abort);
    let ready = core.ready(now);
    assert_eq!(ready.save, None);
    assert_eq!(
        sent(&ready.sends_after_sync),
        vec![Err((1, DecideAnswer::NotCoordinator))]
    );
}

fn replica(index: usize, now: Instant) -> Core {
    let actor = Node::Replica(Replica {
        coordinator: coordinator(),
        peers: R.iter().map(|r| id(r)).collect(),
        index,
        incarnation: 0,
    });
    let name = format!("coordinator-{}", index + 1);
    let core = Core::new(actor, id(R[index]), &cfg(&name));
    super::super::replica_fixtures::recovered(core, index, now)
}

fn leading_version(core: &Core) -> u64 {
    let State::Replica(r) = core.state() else {
        unreachable!()
    };
    r.leading().expect("leads").version
}

/// The leader decides; the commits and the answer wait until a majority
/// accepted the version that carries the decision. A follower decides
/// nothing and names its leader.
#[test]
fn a_leading_replica_answers_once_its_decision_is_chosen() {
    let now = Instant::now();
    let mut leader = replica(0, now);
    both_hold(&mut leader, now);
    let _ = leader.ready(now);
    assert_eq!(leader.view(now).doubts.total, 1);
    decide(&mut leader, now, 5, TXN, Decision::Abort);
    let ready = leader.ready(now);
    assert!(sent(&ready.sends_after_sync).is_empty(), "{ready:?}");
    assert_eq!(leader.counters().heuristic_decisions["abort"], 1);
    let version = leading_version(&leader);
    let term = Term {
        n: 0,
        leader: id(R[0]),
    };
    let msg = Msg::Accepted { term, version };
    let from = R[1].parse().unwrap();
    leader.handle(
        now,
        Event::Peer {
            from,
            msg,
            waited: 0,
        },
    );
    let ready = leader.ready(now);
    let abort = Ok(Msg::Abort { txn: TXN });
    assert_eq!(
        sent(&ready.sends_after_sync),
        vec![abort.clone(), abort, Err((5, decided()))]
    );
    assert_eq!(leader.view(now).doubts.total, 0);

    let mut follower = replica(1, now);
    let _ = follower.ready(now);
    decide(&mut follower, now, 6, TXN, Decision::Abort);
    let ready = follower.ready(now);
    assert_eq!(ready.save, None);
    let Some(Err((6, DecideAnswer::NotLeader { leader: Some(l) }))) =
        sent(&ready.sends_after_sync).pop()
    else {
        panic!("{ready:?}")
    };
    assert!(l.contains(R[0]), "{l}");
}
