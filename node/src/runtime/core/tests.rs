//! The core without sockets: feed events, assert the exact [`Ready`] out.

use super::*;
use crate::runtime::admin::{NodeView, RejectReason};
use crate::runtime::wire::Format;
use twopc_model::participant::Finished;
use twopc_model::{
    timeouts, Ballot, Hold, Op, PartStorage, Participant, RequestId, Resource, TxnId,
};

pub(super) const ME: &str = "127.0.0.1:7002";
pub(super) const COORD: &str = "127.0.0.1:7001";

pub(super) fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub(super) fn id(s: &str) -> Id {
    match addr(s) {
        SocketAddr::V4(a) => Id::from(a),
        SocketAddr::V6(_) => unreachable!(),
    }
}

pub(super) fn codec() -> Codec {
    Codec::new(None, Format::Bincode)
}

/// A 2PC coordinator between `wallet` and `order`, not started.
pub(super) fn coordinator(wallet: &str, order: &str) -> Core {
    coordinator_with(wallet, order, false)
}

/// A 2PC coordinator between `wallet` and `order`, running one write if
/// `one_write`, not started.
pub(super) fn coordinator_with(wallet: &str, order: &str, one_write: bool) -> Core {
    let actor = Node::Coordinator(twopc_model::Coordinator {
        wallet: id(wallet),
        order: id(order),
        retention: 100,
        prices: false,
        one_write,
    });
    let cfg = Config {
        name: "coordinator".into(),
        codec: codec(),
        faults: Faults::default(),
        batch_max: 64,
    };
    Core::new(actor, id(COORD), &cfg)
}

/// A started wallet holding alice's `balance`, with nothing to do yet.
pub(super) fn wallet(balance: u64) -> Core {
    let actor = Node::Participant(Participant {
        resource: Resource::Wallet,
        coordinators: vec![id(COORD)],
        initial: [("alice".into(), balance)].into(),
        prices: Default::default(),
        one_write: false,
    });
    let cfg = Config {
        name: "wallet".into(),
        codec: codec(),
        faults: Faults::default(),
        batch_max: 64,
    };
    let mut core = Core::new(actor, id(ME), &cfg);
    let now = Instant::now();
    core.handle(now, Event::Start(None));
    // A participant's first start saves nothing, sends nothing, sets nothing.
    assert_eq!(core.ready(now), Ready::default());
    core
}

pub(super) fn datagram(payload: &Payload) -> Vec<u8> {
    codec().encode(payload).unwrap().to_vec()
}

pub(super) fn from_coordinator(core: &mut Core, msg: Msg) {
    let bytes = datagram(&Payload::Protocol(msg));
    let event = Event::Datagram {
        from: addr(COORD),
        bytes: &bytes,
    };
    core.handle(Instant::now(), event);
}

pub(super) fn to_coordinator(msg: Msg) -> Outgoing {
    Outgoing::Datagram {
        to: addr(COORD),
        bytes: codec().encode(&Payload::Protocol(msg)).unwrap(),
    }
}

/// `msg` to the coordinator as it leaves after its batch's fsync: having
/// waited for that one durable write (`waited.rs`).
pub(super) fn to_coordinator_synced(msg: Msg) -> Outgoing {
    Outgoing::Datagram {
        to: addr(COORD),
        bytes: (codec().encode_waited(&Payload::Protocol(msg), None, 1)).unwrap(),
    }
}

pub(super) fn txn(n: u64) -> TxnId {
    TxnId { epoch: 1, n }
}

pub(super) fn hold(n: u64) -> Hold {
    Hold {
        req: RequestId::new(format!("{}#{}", 1, n)),
        op: Op {
            key: "alice".into(),
            amount: 1,
        },
    }
}

pub(super) fn prepare(n: u64) -> Msg {
    let Hold { req, op } = hold(n);
    Msg::Prepare {
        txn: txn(n),
        req,
        op,
        // A floor that settles nothing, so a batch of prepares all hold.
        floor: twopc_model::Floor::default(),
    }
}

pub(super) fn yes(n: u64) -> Msg {
    Msg::Vote {
        txn: txn(n),
        ballot: Ballot::Yes,
    }
}

/// Ten prepares in one batch: ten saves, of which the newest (holding all
/// ten holds) is staged, one sync, and every vote held back behind it, in
/// the order the actor emitted them.
#[test]
fn a_batch_whose_saves_hold_back_every_send() {
    let mut core = wallet(100);
    for n in 0..10 {
        from_coordinator(&mut core, prepare(n));
    }
    let ready = core.ready(Instant::now());
    let mut s = PartStorage {
        levels: [("alice".to_string(), 100u64)].into_iter().collect(),
        ..PartStorage::default()
    };
    for n in 0..10 {
        s.holds.insert(txn(n), hold(n));
    }
    assert_eq!(
        ready,
        Ready {
            sends: vec![],
            save: Some(Storage::Participant(s)),
            sync: true,
            sends_after_sync: (0..10).map(|n| to_coordinator_synced(yes(n))).collect(),
            timers: (0..10)
                .map(|n| TimerCmd::Set(Timer::Query(txn(n)), timeouts::QUERY))
                .collect(),
            fired: vec![],
        }
    );
    assert_eq!(core.counters().msgs_handled, 10);
    assert_eq!(core.counters().saves, 10);
}

/// An abort of a transaction never prepared is saved and sends nothing: no
/// sync is asked for, the save stays staged, and the next batch that sends
/// makes it durable (with its own) before its vote leaves.
#[test]
fn a_batch_with_nothing_to_send_leaves_its_save_staged() {
    let mut core = wallet(10);
    from_coordinator(&mut core, Msg::Abort { txn: txn(7) });
    let aborted = Finished {
        req: None,
        op: None,
        committed: false,
    };
    let mut s = PartStorage {
        levels: [("alice".to_string(), 10u64)].into_iter().collect(),
        ..PartStorage::default()
    };
    s.finished.insert(txn(7), aborted);
    assert_eq!(
        core.ready(Instant::now()),
        Ready {
            save: Some(Storage::Participant(s.clone())),
            sync: false,
            timers: vec![TimerCmd::Cancel(Timer::Query(txn(7)))],
            ..Ready::default()
        }
    );
    // A duplicate of the abort changes nothing: an empty batch.
    from_coordinator(&mut core, Msg::Abort { txn: txn(7) });
    assert_eq!(core.ready(Instant::now()), Ready::default());
    // A prepare: its vote waits for a sync covering both saves.
    from_coordinator(&mut core, prepare(8));
    s.holds.insert(txn(8), hold(8));
    assert_eq!(
        core.ready(Instant::now()),
        Ready {
            save: Some(Storage::Participant(s)),
            sync: true,
            sends_after_sync: vec![to_coordinator_synced(yes(8))],
            timers: vec![TimerCmd::Set(Timer::Query(txn(8)), timeouts::QUERY)],
            ..Ready::default()
        }
    );
    // Synced: the vote re-sent for a duplicate prepare needs no sync.
    from_coordinator(&mut core, prepare(8));
    assert_eq!(
        core.ready(Instant::now()),
        Ready {
            sync: false,
            sends_after_sync: vec![to_coordinator(yes(8))],
            ..Ready::default()
        }
    );
}

/// A status request is answered by the core (not the actor) with the node's
/// view, queued behind the batch's sync like any send.
#[test]
fn a_status_request_is_answered_with_the_view() {
    let mut core = wallet(10);
    core.storage_stats(StoreStats {
        fsyncs: 3,
        bytes_written: 120,
        compactions: 0,
    });
    let client = addr("127.0.0.1:9000");
    let ask = datagram(&Payload::StatusRequest { nonce: 42 });
    let now = Instant::now();
    core.handle(
        now,
        Event::Datagram {
            from: client,
            bytes: &ask,
        },
    );
    let ready = core.ready(now);
    let [reply] = ready.sends_after_sync.as_slice() else {
        panic!("one reply: {ready:?}")
    };
    let Ok(Payload::StatusReply { nonce: 42, view }) = codec().decode(reply.datagram().unwrap())
    else {
        panic!("a status reply: {reply:?}")
    };
    let mut counters = Counters {
        datagrams_in: 1,
        fsyncs: 3,
        bytes_written: 120,
        batches: 1, // the start's
        ..Counters::default()
    };
    assert_eq!(*view, NodeView::of("wallet", core.state(), &counters));
    assert_eq!(view.levels, [("alice".to_string(), 10)].into());
    assert_eq!(
        ready,
        Ready {
            sends_after_sync: vec![Outgoing::Reply {
                to: client,
                bytes: reply.datagram().unwrap().clone(),
            }],
            ..Ready::default()
        }
    );
    // The same answer for the decoded event.
    core.handle(
        now,
        Event::StatusAsk {
            from: client,
            nonce: 42,
        },
    );
    counters.batches = 2;
    let view = NodeView::of("wallet", core.state(), &counters);
    let again = codec()
        .encode(&Payload::StatusReply {
            nonce: 42,
            view: Box::new(view),
        })
        .unwrap();
    assert_eq!(core.ready(now).sends_after_sync[0].datagram(), Some(&again));
    // The view may reveal a staged hold: it waits for the batch's sync.
    from_coordinator(&mut core, prepare(1));
    core.handle(
        now,
        Event::StatusAsk {
            from: client,
            nonce: 43,
        },
    );
    let ready = core.ready(now);
    assert!(ready.sync && ready.sends.is_empty(), "{ready:?}");
    assert_eq!(ready.sends_after_sync.len(), 2, "{ready:?}");
    assert_eq!(ready.sends_after_sync[0], to_coordinator_synced(yes(1)));
    let Ok(Payload::StatusReply { nonce: 43, view }) =
        codec().decode(ready.sends_after_sync[1].datagram().unwrap())
    else {
        panic!("a status reply: {ready:?}")
    };
    assert_eq!(view.holds.len(), 1);
}

/// A datagram that does not decode is counted by reason and dropped: no
/// save, no send, no call into the actor.
#[test]
fn a_rejected_datagram_is_counted_and_changes_nothing() {
    let mut core = wallet(10);
    let before = core.state().clone();
    let stranger = addr("10.9.9.9:5");
    for bytes in [&b"hello"[..], &[0u8; MAX_DATAGRAM + 1][..]] {
        core.handle(
            Instant::now(),
            Event::Datagram {
                from: stranger,
                bytes,
            },
        );
    }
    // A key this node does not have.
    let signed = Codec::new(
        Some(crate::runtime::wire::ClusterKey::new(&"0123456789abcdef".repeat(4)).unwrap()),
        Format::Bincode,
    )
    .encode(&Payload::Protocol(prepare(1)))
    .unwrap();
    core.handle(
        Instant::now(),
        Event::Datagram {
            from: addr(COORD),
            bytes: &signed,
        },
    );
    assert_eq!(core.ready(Instant::now()), Ready::default());
    assert_eq!(core.state(), &before);
    let c = core.counters();
    assert_eq!((c.datagrams_in, c.msgs_handled, c.saves), (3, 0, 0));
    assert_eq!(
        c.rejected,
        [
            (RejectReason::Oversized, 1),
            (RejectReason::BadMagic, 1),
            (RejectReason::UnexpectedMac, 1)
        ]
        .into()
    );
}

/// A timer fires only once due, and runs the actor's `on_timeout`.
#[test]
fn a_due_timer_fires_and_its_sends_follow_the_sync() {
    let mut core = wallet(10);
    from_coordinator(&mut core, prepare(1));
    let start = Instant::now();
    let first = core.ready(start);
    assert!(first.sync);
    let due = core.next_timer().expect("a query timer");
    assert!(due >= start + timeouts::QUERY.start && due <= start + timeouts::QUERY.end);
    core.handle(due - Duration::from_millis(1), Event::TimerDue);
    assert_eq!(core.ready(due).timers, vec![]);
    core.handle(due, Event::TimerDue);
    assert_eq!(
        core.ready(due),
        Ready {
            sends_after_sync: vec![to_coordinator(Msg::QueryDecision { txn: txn(1) })],
            timers: vec![TimerCmd::Set(Timer::Query(txn(1)), timeouts::QUERY)],
            fired: vec![Timer::Query(txn(1))],
            ..Ready::default()
        }
    );
    assert_eq!(core.counters().timers_fired, 1);
}
