//! Handler tests of operations other than purchases at the coordinator: a
//! top-up or a restock is a one-participant transaction through the same
//! path (see docs/shop.md).

use crate::coordinator::tests::*;
use crate::coordinator::*;
use crate::test_util::*;

fn topup(seq: u64, amount: u64) -> Msg {
    Msg::Request {
        req: req(seq),
        op: Operation::TopUp {
            user: "bob".into(),
            amount,
        },
        ticket: Some(0),
    }
}

fn credit_to(key: &str, amount: u64, n: u64, parties: Vec<Id>) -> Msg {
    Msg::PrepareCredit {
        txn: txn(n),
        req: req(n + 1),
        op: Op {
            key: key.into(),
            amount,
        },
        floor: Floor {
            below: txn(n),
            owed: vec![],
        },
        parties,
    }
}

#[test]
fn a_topup_prepares_a_credit_at_the_wallet_only() {
    let (s, out) = deliver(&started(), CLIENT, topup(1, 5));
    assert!(s.voting.contains_key(&txn(0)));
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.send(
                Id::from(WALLET),
                credit_to("bob", 5, 0, vec![Id::from(WALLET)]),
            );
            o.set_timer(Timer::Votes(txn(0)), crate::timeouts::VOTES);
        })
    );
}

#[test]
fn a_restock_prepares_a_credit_at_the_order_service_only() {
    let restock = Msg::Request {
        req: req(1),
        op: Operation::Restock {
            sku: "gadget".into(),
            qty: 3,
        },
        ticket: Some(0),
    };
    let (_, out) = deliver(&started(), CLIENT, restock);
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.send(
                Id::from(ORDER),
                credit_to("gadget", 3, 0, vec![Id::from(ORDER)]),
            );
            o.set_timer(Timer::Votes(txn(0)), crate::timeouts::VOTES);
        })
    );
}

#[test]
fn the_wallets_yes_commits_a_topup_and_its_ack_finishes_it() {
    let (s, _) = deliver(&started(), CLIENT, topup(1, 5));
    // The order service is no party: its vote is ignored.
    let (same, out) = deliver(&s, ORDER, yes(0));
    assert_eq!(same, s);
    assert!(out.is_empty());
    let (s, out) = deliver(&s, WALLET, yes(0));
    let outcome = Outcome {
        req: req(1),
        txn: Some(txn(0)),
        verdict: Verdict::Committed,
    };
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.save(Storage::Coordinator(s.storage()));
            o.cancel_timer(Timer::Votes(txn(0)));
            o.send(Id::from(WALLET), Msg::Commit { txn: txn(0) });
            o.send(Id::from(CLIENT), Msg::Outcome(outcome.clone()));
            o.set_timer(Timer::Resend(txn(0)), crate::timeouts::RESEND);
        })
    );
    // Durable: what it asked, and that only the wallet owes an ack.
    let stored = s.storage();
    assert!(matches!(
        stored.flows.get(&req(1)),
        Some(Operation::TopUp { .. })
    ));
    assert_eq!(stored.partial.get(&txn(0)), Some(&vec![Id::from(WALLET)]));
    // A restart re-sends the commit to the wallet only.
    let mut o = Out::new();
    let restarted = coord().on_start(Some(&stored), &mut o);
    let commits: Vec<_> = o
        .iter()
        .filter(|c| format!("{c:?}").starts_with("Send(") && format!("{c:?}").contains("Commit"))
        .collect();
    assert_eq!(commits.len(), 1, "{o:?}");
    assert!(format!("{o:?}").contains(&format!("Send(Id({WALLET}), Commit")));
    assert_eq!(
        restarted.parties_of(&coord(), &txn(0)),
        vec![Id::from(WALLET)]
    );
    // The wallet's ack finishes it.
    let (s, _) = deliver(&s, WALLET, Msg::Ack { txn: txn(0) });
    assert!(s.commits.is_empty());
    assert!(s.partial.is_empty());
    // A retry gets the same outcome; the same id with other contents is
    // refused; a purchase under it too.
    let (_, out) = deliver(&s, CLIENT, topup(1, 5));
    assert_eq!(
        cmds(&out),
        expect(|o| o.send(Id::from(CLIENT), Msg::Outcome(outcome)))
    );
    let (_, out) = deliver(&s, CLIENT, topup(1, 6));
    assert!(cmds(&out).contains("KeyReused"), "{}", cmds(&out));
    let (_, out) = deliver(&s, CLIENT, purchase(1, 1));
    assert!(cmds(&out).contains("KeyReused"), "{}", cmds(&out));
}

#[test]
fn an_overflow_refusal_aborts_with_its_own_reason() {
    let (s, _) = deliver(&started(), CLIENT, topup(1, 5));
    let no = Msg::Vote {
        txn: txn(0),
        ballot: Ballot::No(Refusal::Overflow),
    };
    let (s, out) = deliver(&s, WALLET, no);
    let verdict = s.outcomes.by_id[&req(1)].verdict;
    assert_eq!(verdict, Verdict::Aborted(AbortReason::Overflow));
    assert!(cmds(&out).contains(&format!("Send(Id({WALLET}), Abort")));
    assert!(!cmds(&out).contains(&format!("Send(Id({ORDER})")));
}

#[test]
fn a_zero_topup_is_an_invalid_request() {
    let (s, out) = deliver(&started(), CLIENT, topup(1, 0));
    assert!(s.voting.is_empty());
    assert_eq!(
        s.outcomes.by_id[&req(1)].verdict,
        Verdict::Aborted(AbortReason::InvalidRequest)
    );
    assert!(!cmds(&out).contains("Prepare"));
}

#[test]
fn forgetting_a_topups_outcome_forgets_what_it_asked() {
    // Retention 2: three decided requests forget the first.
    let mut s = started();
    for seq in 1..=3 {
        s = deliver(&s, CLIENT, topup(seq, 0)).0;
    }
    assert!(!s.outcomes.by_id.contains_key(&req(1)));
    assert!(!s.flows.contains_key(&req(1)));
    assert_eq!(s.flows.len(), 2);
}

#[test]
fn a_lost_logs_topup_held_by_its_only_party_is_in_doubt_not_aborted() {
    let held = Fate::HeldAmong(req(1), vec![Id::from(WALLET)]);
    let wallet = Heard {
        highest: 3,
        fates: vec![(TxnId { epoch: 3, n: 0 }, held)],
    };
    let order = Heard {
        highest: 3,
        fates: vec![],
    };
    let r = resolve_among(&[(Id::from(WALLET), &wallet), (Id::from(ORDER), &order)]);
    let t = TxnId { epoch: 3, n: 0 };
    assert!(r.doubt.contains_key(&t), "{r:?}");
    assert!(r.abort.is_empty());
    assert_eq!(r.parties.get(&t), Some(&vec![Id::from(WALLET)]));
    // A purchase held at one participant and unknown to the other is
    // still aborted (it cannot have committed).
    let purchase = Heard {
        highest: 3,
        fates: vec![(t, Fate::Held(req(1)))],
    };
    let r = resolve_among(&[(Id::from(WALLET), &purchase), (Id::from(ORDER), &order)]);
    assert_eq!(r.abort, vec![t]);
}

/// With prices on, a purchase's order hold carries the buyer's price
/// (the wallet's is the plain `Prepare` of before); a `PriceChanged` no
/// aborts it with that reason; a priced restock always carries its price,
/// and a price of 0 is refused before anything is prepared.
#[test]
fn prices_ride_on_prepare_priced_to_the_order_service() {
    let priced = Coordinator {
        prices: true,
        ..coord()
    };
    let run = |s: &CoordState, src: usize, msg: Msg| {
        let mut cow = std::borrow::Cow::Borrowed(s);
        let mut o = Out::new();
        priced.on_msg(&mut cow, Id::from(src), msg, &mut o);
        (cow.into_owned(), o)
    };
    let (s, out) = run(&started(), CLIENT, purchase(1, 2));
    let parties = vec![Id::from(WALLET), Id::from(ORDER)];
    let floor = Floor {
        below: txn(0),
        owed: vec![],
    };
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.send(
                Id::from(WALLET),
                Msg::Prepare {
                    txn: txn(0),
                    req: req(1),
                    op: Op {
                        key: "alice".into(),
                        amount: 12,
                    },
                    floor: floor.clone(),
                },
            );
            o.send(
                Id::from(ORDER),
                Msg::PreparePriced {
                    txn: txn(0),
                    req: req(1),
                    change: Change::Hold(Op {
                        key: "widget".into(),
                        amount: 2,
                    }),
                    price: 6,
                    floor: floor.clone(),
                    parties: parties.clone(),
                },
            );
            o.set_timer(Timer::Votes(txn(0)), crate::timeouts::VOTES);
        })
    );
    let no = Msg::Vote {
        txn: txn(0),
        ballot: Ballot::No(Refusal::PriceChanged),
    };
    let (s, out) = run(&s, ORDER, no);
    assert!(s.voting.is_empty());
    assert!(
        cmds(&out).contains("Aborted(PriceChanged)"),
        "{}",
        cmds(&out)
    );
    let restock = |price| Msg::Request {
        req: req(2),
        op: Operation::PricedRestock {
            sku: "widget".into(),
            qty: 0,
            price,
        },
        ticket: Some(1),
    };
    let (_, out) = run(&s, CLIENT, restock(0));
    assert!(
        cmds(&out).contains("Aborted(InvalidRequest)"),
        "{}",
        cmds(&out)
    );
    let (_, out) = run(&s, CLIENT, restock(9));
    assert!(cmds(&out).contains("PreparePriced"), "{}", cmds(&out));
    assert!(cmds(&out).contains("price: 9"), "{}", cmds(&out));
    // Without prices, a purchase keeps its bytes of before.
    let (_, out) = deliver(&started(), CLIENT, purchase(1, 2));
    assert!(!cmds(&out).contains("PreparePriced"), "{}", cmds(&out));
}
