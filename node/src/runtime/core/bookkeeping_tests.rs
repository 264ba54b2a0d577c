//! The core's bookkeeping beside the protocol, without sockets: the
//! unknown-decision alarm, outcomes counted once and their latencies
//! measured, a broadcast encoded once.

use super::tests::*;
use super::*;
use crate::runtime::admin::{DecidedAs, NodeView};
use crate::runtime::wire::Format;
use twopc_model::{Ballot, RequestId, TxnId};

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
        vec![crate::runtime::admin::UnknownDecision {
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
        crate::runtime::admin::RECENT_ALARMS
    );
    assert_eq!(c.recent_unknown_decisions.last().unwrap().txn, "1.119");
}

/// A coordinator counts a purchase's outcome once, when it decides (the
/// step saves it, or under one write handles the last vote), not again
/// when it answers a retry from its log; when measuring, it records one
/// decision latency per decided attempt. It counts each decided outcome by
/// the durable writes it waited for: the votes' one (each left after its
/// participant's fsync), and under 2PC its own save's.
#[test]
fn a_decision_is_counted_once_and_its_latency_measured() {
    for one_write in [false, true] {
        decisions_counted(one_write);
    }
}

fn decisions_counted(one_write: bool) {
    const WALLET: &str = "127.0.0.1:7101";
    const ORDER: &str = "127.0.0.1:7102";
    const CLIENT: &str = "127.0.0.1:7103";
    let mut core = coordinator_with(WALLET, ORDER, one_write);
    core.measure_latency();
    let now = Instant::now();
    core.handle(now, Event::Start(None));
    let _ = core.ready(now);
    let send = |core: &mut Core, from: &str, msg: Msg| {
        // A vote leaves its participant after the fsync of its hold.
        let waited = u8::from(matches!(msg, Msg::Vote { .. }));
        let bytes = codec()
            .encode_waited(&Payload::Protocol(msg), None, waited)
            .unwrap();
        core.handle(
            Instant::now(),
            Event::Datagram {
                from: addr(from),
                bytes: &bytes,
            },
        );
        let ready = core.ready(Instant::now());
        let sent = ready.sends.iter().chain(&ready.sends_after_sync);
        sent.filter_map(|o| match codec().decode(o.datagram()?) {
            Ok(Payload::Protocol(msg)) => Some(msg),
            _ => None,
        })
        .collect::<Vec<Msg>>()
    };
    // Its ticket for `req`, then its attempt at `msg` with it.
    let begin = |core: &mut Core, req: &str, msg: &dyn Fn(Option<u64>) -> Msg| {
        let ticket = send(core, CLIENT, msg(None))
            .into_iter()
            .find_map(|m| match m {
                Msg::Status {
                    req: r,
                    status: twopc_model::Status::Unknown { ticket },
                } if r == RequestId::new(req) => Some(ticket),
                _ => None,
            });
        let sent = send(core, CLIENT, msg(Some(ticket.expect("a ticket"))));
        sent.into_iter()
            .find_map(|m| match m {
                Msg::Prepare { txn, .. } | Msg::PrepareCredit { txn, .. } => Some(txn),
                _ => None,
            })
            .expect("an attempt")
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
    let attempt = begin(&mut core, "order-1", &purchase);
    let mut decided = Vec::new();
    for voter in [WALLET, ORDER] {
        let vote = Msg::Vote {
            txn: attempt,
            ballot: Ballot::Yes,
        };
        decided = send(&mut core, voter, vote);
    }
    // The outcome leaves first, the commits after it (the model emits
    // them first): the buyer waits for the outcome alone.
    let kinds: Vec<&str> = decided
        .iter()
        .map(|m| crate::runtime::wire::MsgKind::of(m).as_str())
        .collect();
    assert_eq!(kinds, ["outcome", "commit", "commit"], "{one_write}");
    assert_eq!(core.counters().decided, [(DecidedAs::Committed, 1)].into());
    assert_eq!(core.take_latencies().len(), 1);
    let writes = if one_write { 1 } else { 2 };
    assert_eq!(*core.outcome_waited(), [(writes, 1)].into());
    // A retry (a fresh caller, no ticket): answered from the outcome
    // table, not a second decision.
    send(&mut core, CLIENT, purchase(None));
    assert_eq!(core.counters().decided, [(DecidedAs::Committed, 1)].into());
    assert!(core.take_latencies().is_empty());
    assert_eq!(*core.outcome_waited(), [(writes, 1)].into());
    let view = core.view(Instant::now());
    assert_eq!((view.one_write, view.outcome_waited.len()), (one_write, 1));
    // A top-up (the wallet alone) is counted as one, by its kind.
    let topup = |ticket| Msg::Request {
        req: RequestId::new("topup-1"),
        op: twopc_model::Operation::TopUp {
            user: "alice".into(),
            amount: 3,
        },
        ticket,
    };
    let vote = Msg::Vote {
        txn: begin(&mut core, "topup-1", &topup),
        ballot: Ballot::Yes,
    };
    send(&mut core, WALLET, vote);
    assert_eq!(core.counters().decided, [(DecidedAs::Committed, 2)].into());
    let by_op = &core.counters().decided_by_op;
    assert_eq!(
        by_op
            .iter()
            .map(|(op, o)| (op.as_str(), o[&DecidedAs::Committed]))
            .collect::<Vec<_>>(),
        [("purchase", 1), ("topup", 1)]
    );
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
        op: Purchase {
            user: "alice".into(),
            sku: "widget".into(),
            qty: 1,
            price: 6,
        }
        .into(),
        mode: Mode::New,
    };
    let actor = Node::Client(Client {
        coordinators: replicas.iter().map(|r| id(r)).collect(),
        id: 7,
        requests: vec![req(1), req(2)],
        keep_ticket: Default::default(),
    });
    let cfg = Config {
        name: "client".into(),
        codec: Codec::new(
            Some(crate::runtime::wire::ClusterKey::random()),
            Format::Bincode,
        ),
        faults: Faults::default(),
        batch_max: 64,
    };
    let key_codec = cfg.codec.clone();
    let mut core = Core::new(actor, id(ME), &cfg);
    let now = Instant::now();
    core.handle(now, Event::Start(None));
    let sent = core.ready(now).sends_after_sync;
    assert_eq!(sent.len(), 3, "{sent:?}");
    let first = match key_codec.decode(sent[0].datagram().unwrap()) {
        Ok(Payload::Protocol(msg)) => msg,
        other => panic!("{other:?}"),
    };
    let about = |msg: &Msg| match msg {
        Msg::Purchase { req, .. } | Msg::Lookup { req } => req.clone(),
        other => panic!("not a request: {other:?}"),
    };
    assert_eq!(about(&first), RequestId::new("order-1"));
    for (out, to) in sent.iter().zip(replicas) {
        assert_eq!(out.to(), addr(to));
        assert_eq!(
            out.datagram().unwrap().as_ptr(),
            sent[0].datagram().unwrap().as_ptr(),
            "encoded once"
        );
        assert_eq!(
            key_codec.decode(out.datagram().unwrap()),
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
        match key_codec.decode(out.datagram().unwrap()) {
            Ok(Payload::Protocol(msg)) => assert_eq!(about(&msg), RequestId::new("order-2")),
            other => panic!("{other:?}"),
        }
    }
}

/// A participant's `Ack` reaches a 2PC coordinator with a batch that saves,
/// or after `ACK_DELAY`, as it reaches a leading replica: the forgetting it
/// causes is a save, and a save staged alone makes the next batch that
/// sends anything (the next purchase's ticket) wait for its fsync.
#[test]
fn a_coordinator_delivers_acks_with_a_batch_that_saves_or_after_a_short_delay() {
    const WALLET: &str = "127.0.0.1:7101";
    let mut core = coordinator(WALLET, "127.0.0.1:7102");
    let now = Instant::now();
    core.handle(now, Event::Start(None));
    let _ = core.ready(now);
    let ack = datagram(&Payload::Protocol(Msg::Ack {
        txn: TxnId { epoch: 1, n: 0 },
    }));
    let handled = core.counters().msgs_handled;
    let from = addr(WALLET);
    core.handle(now, Event::Datagram { from, bytes: &ack });
    let _ = core.ready(now);
    assert_eq!(core.counters().msgs_handled, handled, "held");
    assert!(core.next_timer().unwrap() <= now + ACK_DELAY);
    let later = now + ACK_DELAY;
    core.handle(later, Event::TimerDue);
    let _ = core.ready(later);
    assert_eq!(core.counters().msgs_handled, handled + 1, "delivered");
}
