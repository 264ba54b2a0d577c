//! The core without sockets: feed events, assert the exact [`Ready`] out.

use super::*;
use crate::admin::{NodeView, RejectReason};
use crate::wire::Format;
use twopc_model::participant::Finished;
use twopc_model::{
    timeouts, Ballot, Hold, Op, PartStorage, Participant, RequestId, Resource, TxnId,
};

const ME: &str = "127.0.0.1:7002";
const COORD: &str = "127.0.0.1:7001";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn id(s: &str) -> Id {
    match addr(s) {
        SocketAddr::V4(a) => Id::from(a),
        SocketAddr::V6(_) => unreachable!(),
    }
}

fn codec() -> Codec {
    Codec::new(None, Format::Bincode)
}

/// A started wallet holding alice's `balance`, with nothing to do yet.
fn wallet(balance: u64) -> Core {
    let actor = Node::Participant(Participant {
        resource: Resource::Wallet,
        coordinators: vec![id(COORD)],
        initial: [("alice".into(), balance)].into(),
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

fn datagram(payload: &Payload) -> Vec<u8> {
    codec().encode(payload).unwrap().to_vec()
}

fn from_coordinator(core: &mut Core, msg: Msg) {
    let bytes = datagram(&Payload::Protocol(msg));
    let event = Event::Datagram {
        from: addr(COORD),
        bytes: &bytes,
    };
    core.handle(Instant::now(), event);
}

fn to_coordinator(msg: Msg) -> Outgoing {
    Outgoing {
        to: addr(COORD),
        bytes: codec().encode(&Payload::Protocol(msg)).unwrap(),
        protocol: true,
        peer: None,
    }
}

fn txn(n: u64) -> TxnId {
    TxnId { epoch: 1, n }
}

fn hold(n: u64) -> Hold {
    Hold {
        req: RequestId::new(format!("{}#{}", 1, n)),
        op: Op {
            key: "alice".into(),
            amount: 1,
        },
    }
}

fn prepare(n: u64) -> Msg {
    let Hold { req, op } = hold(n);
    Msg::Prepare {
        txn: txn(n),
        req,
        op,
        // A floor that settles nothing, so a batch of prepares all hold.
        floor: twopc_model::Floor::default(),
    }
}

fn yes(n: u64) -> Msg {
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
            sends_after_sync: (0..10).map(|n| to_coordinator(yes(n))).collect(),
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
            sends_after_sync: vec![to_coordinator(yes(8))],
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
    let Ok(Payload::StatusReply { nonce: 42, view }) = codec().decode(&reply.bytes) else {
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
            sends_after_sync: vec![Outgoing {
                to: client,
                bytes: reply.bytes.clone(),
                protocol: false,
                peer: None,
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
    assert_eq!(core.ready(now).sends_after_sync[0].bytes, again);
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
    assert_eq!(ready.sends_after_sync[0], to_coordinator(yes(1)));
    let Ok(Payload::StatusReply { nonce: 43, view }) =
        codec().decode(&ready.sends_after_sync[1].bytes)
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
        Some(crate::wire::ClusterKey::new(&"0123456789abcdef".repeat(4)).unwrap()),
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

/// A commit for a transaction the wallet has no record of (not held, not
/// finished, not below its floor) raises the alarm: counted, remembered
/// with its source, shown in the status view; the actor still changes
/// nothing and sends nothing. Commits it can account for raise nothing.
#[test]
fn a_commit_for_an_unknown_transaction_raises_the_alarm() {
    let mut core = wallet(10);
    let now = Instant::now();
    // Known: held, then finished (its duplicate is acked again).
    from_coordinator(&mut core, prepare(0));
    from_coordinator(&mut core, Msg::Commit { txn: txn(0) });
    from_coordinator(&mut core, Msg::Commit { txn: txn(0) });
    let _ = core.ready(now);
    assert_eq!(core.counters().unknown_decisions, 0);
    let before = core.state().clone();

    from_coordinator(&mut core, Msg::Commit { txn: txn(7) });
    assert_eq!(
        core.ready(now),
        Ready::default(),
        "the actor ignores it, as the model does"
    );
    assert_eq!(*core.state(), before, "and changes nothing");
    let c = core.counters();
    assert_eq!(c.unknown_decisions, 1);
    assert_eq!(
        c.recent_unknown_decisions,
        vec![crate::admin::UnknownDecision {
            txn: "1.7".into(),
            from: COORD.into(),
        }]
    );
    let view = NodeView::of("wallet", core.state(), core.counters());
    assert_eq!(view.alarms.len(), 1, "{view:?}");
    assert!(
        view.alarms[0].contains("1.7 from 127.0.0.1:7001"),
        "{view:?}"
    );
    assert!(view.render().contains("ALARM: 1 commit decision(s)"));

    // Only the last few are listed; the count covers them all.
    for n in 100..120 {
        from_coordinator(&mut core, Msg::Commit { txn: txn(n) });
    }
    let c = core.counters();
    assert_eq!(c.unknown_decisions, 21);
    assert_eq!(
        c.recent_unknown_decisions.len(),
        crate::admin::RECENT_ALARMS
    );
    assert_eq!(c.recent_unknown_decisions.last().unwrap().txn, "1.119");
}

/// A coordinator counts a purchase's outcome once, when it decides (the
/// step saves it), not again when it answers a retry from its log; when
/// measuring, it records one decision latency per decided attempt.
#[test]
fn a_decision_is_counted_once_and_its_latency_measured() {
    const WALLET: &str = "127.0.0.1:7101";
    const ORDER: &str = "127.0.0.1:7102";
    const CLIENT: &str = "127.0.0.1:7103";
    let actor = Node::Coordinator(twopc_model::Coordinator {
        wallet: id(WALLET),
        order: id(ORDER),
        retention: 100,
    });
    let cfg = Config {
        name: "coordinator".into(),
        codec: codec(),
        faults: Faults::default(),
        batch_max: 64,
    };
    let mut core = Core::new(actor, id(COORD), &cfg);
    core.measure_latency();
    let now = Instant::now();
    core.handle(now, Event::Start(None));
    let _ = core.ready(now);
    let send = |core: &mut Core, from: &str, msg: Msg| {
        let bytes = datagram(&Payload::Protocol(msg));
        core.handle(
            Instant::now(),
            Event::Datagram {
                from: addr(from),
                bytes: &bytes,
            },
        );
        let _ = core.ready(Instant::now());
    };
    // Started without a log: both participants answer its question first.
    for p in [WALLET, ORDER] {
        let answer = Msg::Epoch {
            asked: 1,
            highest: 0,
            fates: vec![],
        };
        send(&mut core, p, answer);
    }
    let purchase = |ticket| Msg::Purchase {
        req: RequestId::new("order-1"),
        purchase: twopc_model::Purchase {
            user: "alice".into(),
            sku: "widget".into(),
            qty: 1,
            price: 5,
        },
        ticket,
    };
    // With a ticket (as a client sends it once the coordinator gave one).
    send(&mut core, CLIENT, purchase(Some(0)));
    let attempt = TxnId { epoch: 1, n: 0 };
    for voter in [WALLET, ORDER] {
        let vote = Msg::Vote {
            txn: attempt,
            ballot: Ballot::Yes,
        };
        send(&mut core, voter, vote);
    }
    assert_eq!(
        core.counters().decided,
        [("committed".to_string(), 1)].into()
    );
    assert_eq!(core.take_latencies().len(), 1);
    // A retry (a fresh caller, no ticket): answered from the outcome
    // table, not a second decision.
    send(&mut core, CLIENT, purchase(None));
    assert_eq!(
        core.counters().decided,
        [("committed".to_string(), 1)].into()
    );
    assert!(core.take_latencies().is_empty());
}

/// A client asks every replica: the copies of one broadcast are encoded
/// once (the same bytes, each a datagram that decodes to the request), and
/// the next, different message is encoded anew, not served from the copy.
#[test]
fn a_broadcast_is_encoded_once_and_each_copy_decodes_to_the_message() {
    use twopc_model::{Client, Mode, Purchase, Request};
    let replicas = ["127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"];
    let req = |n: u32| Request {
        req: RequestId::new(format!("order-{n}")),
        purchase: Purchase {
            user: "alice".into(),
            sku: "widget".into(),
            qty: 1,
            price: 6,
        },
        mode: Mode::New,
    };
    let actor = Node::Client(Client {
        coordinators: replicas.iter().map(|r| id(r)).collect(),
        id: 7,
        requests: vec![req(1), req(2)],
    });
    let cfg = Config {
        name: "client".into(),
        codec: Codec::new(Some(crate::wire::ClusterKey::random()), Format::Bincode),
        faults: Faults::default(),
        batch_max: 64,
    };
    let key_codec = cfg.codec.clone();
    let mut core = Core::new(actor, id(ME), &cfg);
    let now = Instant::now();
    core.handle(now, Event::Start(None));
    let sent = core.ready(now).sends_after_sync;
    assert_eq!(sent.len(), 3, "{sent:?}");
    let first = match key_codec.decode(&sent[0].bytes) {
        Ok(Payload::Protocol(msg)) => msg,
        other => panic!("{other:?}"),
    };
    let about = |msg: &Msg| match msg {
        Msg::Purchase { req, .. } | Msg::Lookup { req } => req.clone(),
        other => panic!("not a request: {other:?}"),
    };
    assert_eq!(about(&first), RequestId::new("order-1"));
    for (out, to) in sent.iter().zip(replicas) {
        assert_eq!(out.to, addr(to));
        assert_eq!(out.bytes.as_ptr(), sent[0].bytes.as_ptr(), "encoded once");
        assert_eq!(
            key_codec.decode(&out.bytes),
            Ok(Payload::Protocol(first.clone()))
        );
    }
    // The leader's outcome for the first request: the client goes on to
    // the second, a different message, freshly encoded.
    let outcome = Msg::Outcome(twopc_model::Outcome {
        req: about(&first),
        txn: None,
        verdict: twopc_model::Verdict::Committed,
    });
    let bytes = key_codec.encode(&Payload::Protocol(outcome)).unwrap();
    let from = addr(replicas[0]);
    core.handle(
        now,
        Event::Datagram {
            from,
            bytes: &bytes,
        },
    );
    let sent = core.ready(now).sends_after_sync;
    assert_eq!(sent.len(), 3, "{sent:?}");
    for out in &sent {
        match key_codec.decode(&out.bytes) {
            Ok(Payload::Protocol(msg)) => assert_eq!(about(&msg), RequestId::new("order-2")),
            other => panic!("{other:?}"),
        }
    }
}
