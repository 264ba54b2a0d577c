//! Handler tests of refunds at the coordinator (see docs/shop.md,
//! "Refund"): looked up in the remembered outcomes, refused durably for
//! each reason, a transaction of two credits otherwise, and counted in the
//! same state change as the commit decision.

use crate::coordinator::tests::*;
use crate::coordinator::*;
use crate::test_util::*;

/// A coordinator that remembers 8 outcomes (2 for the retention test).
fn deliver_r(
    retention: usize,
    state: &CoordState,
    src: usize,
    msg: Msg,
) -> (CoordState, Out<Node>) {
    let c = Coordinator {
        retention,
        ..coord()
    };
    let mut cow = Cow::Borrowed(state);
    let mut o = Out::new();
    c.on_msg(&mut cow, Id::from(src), msg, &mut o);
    (cow.into_owned(), o)
}

fn deliver8(state: &CoordState, src: usize, msg: Msg) -> (CoordState, Out<Node>) {
    deliver_r(8, state, src, msg)
}

fn refund(seq: u64, of: u64, qty: Option<u64>) -> Msg {
    Msg::Request {
        req: req(seq),
        op: Operation::Refund {
            purchase: req(of),
            qty,
        },
        ticket: Some(0),
    }
}

/// The attempt the commands out started, if any.
fn attempt(out: &Out<Node>) -> Option<TxnId> {
    out.iter().find_map(|c| match c {
        stateright::actor::Command::Send(_, Msg::Prepare { txn, .. })
        | stateright::actor::Command::Send(_, Msg::PrepareCredit { txn, .. }) => Some(*txn),
        _ => None,
    })
}

/// Both participants vote yes on `txn`.
fn both_yes(s: &CoordState, txn: TxnId) -> (CoordState, Out<Node>) {
    let vote = Msg::Vote {
        txn,
        ballot: Ballot::Yes,
    };
    let (s, _) = deliver8(s, WALLET, vote.clone());
    deliver8(&s, ORDER, vote)
}

/// `msg` started and committed (acks not in).
fn committed(s: &CoordState, msg: Msg) -> CoordState {
    let (s, out) = deliver8(s, CLIENT, msg);
    let txn = attempt(&out).expect("an attempt");
    let (s, _) = both_yes(&s, txn);
    assert!(s.commits.contains_key(&txn), "committed");
    s
}

/// Purchase `order-1` of 3 widgets at 6, committed.
fn bought() -> CoordState {
    committed(&started(), purchase(1, 3))
}

fn aborted(seq: u64, why: AbortReason) -> Msg {
    Msg::Outcome(Outcome {
        req: req(seq),
        txn: None,
        verdict: Verdict::Aborted(why),
    })
}

fn credit(key: &str, amount: u64, n: u64, seq: u64) -> Msg {
    Msg::PrepareCredit {
        txn: txn(n),
        req: req(seq),
        op: Op {
            key: key.into(),
            amount,
        },
        floor: Floor {
            below: txn(n),
            owed: vec![txn(0)],
        },
        parties: vec![Id::from(WALLET), Id::from(ORDER)],
    }
}

#[test]
fn a_refund_credits_the_buyer_and_the_sku_at_both_participants() {
    let (s, out) = deliver8(&bought(), CLIENT, refund(2, 1, Some(2)));
    assert_eq!(s.reserved(&req(1)), 2, "in flight, it reserves its qty");
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.send(Id::from(WALLET), credit("alice", 12, 1, 2));
            o.send(Id::from(ORDER), credit("widget", 2, 1, 2));
            o.set_timer(Timer::Votes(txn(1)), crate::timeouts::VOTES);
        })
    );
    // One yes is not enough: both participants are parties.
    let vote = |src| (src, yes(1));
    let (one, out) = deliver8(&s, vote(WALLET).0, vote(WALLET).1);
    assert!(out.is_empty() && one.refunded.is_empty());
    let (s, out) = deliver8(&one, ORDER, yes(1));
    // The count rises in the state the decision's save writes.
    assert_eq!(s.refunded.get(&req(1)), Some(&2));
    assert_eq!(s.reserved(&req(1)), 0);
    let outcome = Outcome {
        req: req(2),
        txn: Some(txn(1)),
        verdict: Verdict::Committed,
    };
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.save(Storage::Coordinator(s.storage()));
            o.cancel_timer(Timer::Votes(txn(1)));
            o.broadcast(
                &[Id::from(WALLET), Id::from(ORDER)],
                &Msg::Commit { txn: txn(1) },
            );
            o.send(Id::from(CLIENT), Msg::Outcome(outcome));
            o.set_timer(Timer::Resend(txn(1)), crate::timeouts::RESEND);
        })
    );
    assert_eq!(s.storage().refunded.get(&req(1)), Some(&2));
    // Both acks finish it; the count stays.
    let (s, _) = deliver8(&s, WALLET, Msg::Ack { txn: txn(1) });
    let (s, _) = deliver8(&s, ORDER, Msg::Ack { txn: txn(1) });
    assert!(s.commits.get(&txn(1)).is_none());
    assert_eq!(s.refunded.get(&req(1)), Some(&2));
}

#[test]
fn a_refund_beyond_the_purchase_is_refused_durably_and_a_retry_gets_the_same() {
    let s = committed(&bought(), refund(2, 1, Some(2)));
    let (s, out) = deliver8(&s, CLIENT, refund(3, 1, Some(2)));
    let refused = aborted(3, AbortReason::RefundExceedsPurchase);
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.save(Storage::Coordinator(s.storage()));
            o.send(Id::from(CLIENT), refused.clone());
        })
    );
    assert_eq!(s.refunded.get(&req(1)), Some(&2), "unchanged");
    // The retry: the same answer, nothing new; other contents: key_reused.
    let (same, out) = deliver8(&s, CLIENT, refund(3, 1, Some(2)));
    assert_eq!(same, s);
    assert_eq!(cmds(&out), expect(|o| o.send(Id::from(CLIENT), refused)));
    let (same, out) = deliver8(&s, CLIENT, refund(3, 1, Some(1)));
    assert_eq!(same, s);
    assert!(cmds(&out).contains("KeyReused"), "{}", cmds(&out));
    // What is left can still be refunded; the whole quantity cannot.
    let (_, out) = deliver8(&s, CLIENT, refund(4, 1, Some(1)));
    assert!(attempt(&out).is_some(), "{}", cmds(&out));
    let (_, out) = deliver8(&s, CLIENT, refund(4, 1, None));
    assert!(
        cmds(&out).contains("RefundExceedsPurchase"),
        "{}",
        cmds(&out)
    );
}

#[test]
fn refunds_in_flight_reserve_their_quantity_until_they_abort() {
    let (s, out) = deliver8(&bought(), CLIENT, refund(2, 1, None));
    let first = attempt(&out).expect("whole quantity, nothing refunded");
    let (busy, out) = deliver8(&s, CLIENT, refund(3, 1, Some(1)));
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.save(Storage::Coordinator(busy.storage()));
            o.send(
                Id::from(CLIENT),
                aborted(3, AbortReason::RefundExceedsPurchase),
            );
        })
    );
    // The first times out: its reservation goes with it, nothing counted.
    let mut cow = Cow::Borrowed(&s);
    coord().on_timeout(&mut cow, &Timer::Votes(first), &mut Out::new());
    let s = cow.into_owned();
    assert!(s.refunded.is_empty());
    let (_, out) = deliver8(&s, CLIENT, refund(4, 1, Some(3)));
    assert!(attempt(&out).is_some(), "{}", cmds(&out));
}

#[test]
fn a_refund_of_what_is_no_committed_purchase_is_refused_for_its_reason() {
    let s = bought();
    let topup = Msg::Request {
        req: req(2),
        op: Operation::TopUp {
            user: "alice".into(),
            amount: 5,
        },
        ticket: Some(0),
    };
    let s = committed(&s, topup);
    // A purchase that aborted (the wallet said no).
    let (s, out) = deliver8(&s, CLIENT, purchase(3, 1));
    let no = Msg::Vote {
        txn: attempt(&out).unwrap(),
        ballot: Ballot::No(Refusal::Insufficient),
    };
    let (s, _) = deliver8(&s, WALLET, no);
    // A purchase still voting.
    let (s, _) = deliver8(&s, CLIENT, purchase(4, 1));
    for (of, qty, why) in [
        (9, Some(1), AbortReason::UnknownPurchase), // never made
        (2, Some(1), AbortReason::UnknownPurchase), // a top-up
        (4, Some(1), AbortReason::UnknownPurchase), // not decided yet
        (3, Some(1), AbortReason::NotCommitted),    // aborted
        (3, None, AbortReason::NotCommitted),
        (1, Some(0), AbortReason::InvalidRequest), // zero
        (1, Some(u64::MAX), AbortReason::InvalidRequest), // money overflows
        (1, Some(4), AbortReason::RefundExceedsPurchase),
    ] {
        let (after, out) = deliver8(&s, CLIENT, refund(10, of, qty));
        assert_eq!(
            cmds(&out),
            expect(|o| {
                o.save(Storage::Coordinator(after.storage()));
                o.send(Id::from(CLIENT), aborted(10, why));
            }),
            "refund of order-{of} by {qty:?}"
        );
        assert_eq!(after.voting, s.voting, "nothing started");
    }
}

#[test]
fn the_count_is_forgotten_with_the_purchase_and_survives_a_restart() {
    // Retention 2: the purchase and its refund are remembered.
    let (s, out) = deliver_r(2, &bought(), CLIENT, refund(2, 1, Some(1)));
    let t = attempt(&out).unwrap();
    let (s, _) = deliver_r(
        2,
        &s,
        WALLET,
        Msg::Vote {
            txn: t,
            ballot: Ballot::Yes,
        },
    );
    let (s, _) = deliver_r(
        2,
        &s,
        ORDER,
        Msg::Vote {
            txn: t,
            ballot: Ballot::Yes,
        },
    );
    assert_eq!(s.refunded.get(&req(1)), Some(&1));
    // A restart reads it back from storage.
    let restarted = coord().on_start(Some(&s.storage()), &mut Out::new());
    assert_eq!(restarted.refunded, s.refunded);
    // A third outcome forgets the purchase, and its count with it.
    let (s, _) = deliver_r(2, &s, CLIENT, refund(3, 1, Some(0)));
    assert!(s.outcomes.by_id.get(&req(1)).is_none());
    assert!(s.refunded.is_empty());
    let Msg::Request { req, op, .. } = refund(4, 1, Some(1)) else {
        unreachable!()
    };
    let ticket = Some(s.outcomes.next);
    let (_, out) = deliver_r(2, &s, CLIENT, Msg::Request { req, op, ticket });
    assert!(cmds(&out).contains("UnknownPurchase"), "{}", cmds(&out));
}
