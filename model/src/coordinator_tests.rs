//! Handler tests of [`super`]: feed one event, compare the exact commands out.

use super::*;
use crate::test_util::*;

pub(crate) const WALLET: usize = 1;
pub(crate) const ORDER: usize = 2;
pub(crate) const CLIENT: usize = 3;

pub(crate) fn coord() -> Coordinator {
    Coordinator {
        wallet: Id::from(WALLET),
        order: Id::from(ORDER),
        retention: 2,
        prices: false,
        one_write: false,
    }
}

pub(crate) fn contents(qty: u64) -> Purchase {
    Purchase {
        user: "alice".into(),
        sku: "widget".into(),
        qty,
        price: 6,
    }
}

/// A purchase with a ticket no older than anything forgotten.
pub(crate) fn purchase(seq: u64, qty: u64) -> Msg {
    Msg::Purchase {
        req: req(seq),
        purchase: contents(qty),
        ticket: Some(0),
    }
}

pub(crate) fn deliver(state: &CoordState, src: usize, msg: Msg) -> (CoordState, Out<Node>) {
    let mut cow = Cow::Borrowed(state);
    let mut o = Out::new();
    coord().on_msg(&mut cow, Id::from(src), msg, &mut o);
    (cow.into_owned(), o)
}

pub(crate) fn yes(n: u64) -> Msg {
    Msg::Vote {
        txn: txn(n),
        ballot: Ballot::Yes,
    }
}

/// An answer to the question of the coordinator at epoch 1.
pub(crate) fn epoch(highest: u64) -> Msg {
    Msg::Epoch {
        asked: 1,
        highest,
        fates: vec![],
    }
}

/// Started on a fresh cluster, its epoch learned from both participants.
pub(crate) fn started() -> CoordState {
    let mut s = coord().on_start(None, &mut Out::new());
    for p in [WALLET, ORDER] {
        s = deliver(&s, p, epoch(0)).0;
    }
    assert_eq!(s.learning, Learning::Learned);
    s
}

#[test]
fn purchase_prepares_both_participants() {
    let (s, out) = deliver(&started(), CLIENT, purchase(1, 2));
    assert!(s.voting.contains_key(&txn(0)));
    assert_eq!(
        cmds(&out),
        expect(|o| {
            let op = |key: &str, amount| Op {
                key: key.into(),
                amount,
            };
            // Nothing is settled yet: the floor is this very attempt.
            let floor = Floor {
                below: txn(0),
                owed: vec![],
            };
            let prepare = |op| Msg::Prepare {
                txn: txn(0),
                req: req(1),
                op,
                floor: floor.clone(),
            };
            o.send(Id::from(WALLET), prepare(op("alice", 12)));
            o.send(Id::from(ORDER), prepare(op("widget", 2)));
            o.set_timer(Timer::Votes(txn(0)), crate::timeouts::VOTES);
        })
    );
    // A retry while voting changes nothing.
    let (again, out) = deliver(&s, CLIENT, purchase(1, 2));
    assert_eq!(again, s);
    assert!(out.is_empty());
}

#[test]
fn all_yes_saves_the_decision_before_revealing_it() {
    let (s, _) = deliver(&started(), CLIENT, purchase(1, 1));
    let (s, out) = deliver(&s, WALLET, yes(0));
    assert!(out.is_empty());
    let (s, out) = deliver(&s, ORDER, yes(0));
    let outcome = Outcome {
        req: req(1),
        txn: Some(txn(0)),
        verdict: Verdict::Committed,
    };
    assert_eq!(s.outcomes.by_id[&req(1)].outcome(&req(1)), outcome);
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.save(Storage::Coordinator(s.storage()));
            o.cancel_timer(Timer::Votes(txn(0)));
            o.send(Id::from(WALLET), Msg::Commit { txn: txn(0) });
            o.send(Id::from(ORDER), Msg::Commit { txn: txn(0) });
            o.send(Id::from(CLIENT), Msg::Outcome(outcome.clone()));
            o.set_timer(Timer::Resend(txn(0)), crate::timeouts::RESEND);
        })
    );
    // A retry of the decided request gets the saved answer.
    let (_, out) = deliver(&s, CLIENT, purchase(1, 1));
    assert_eq!(
        cmds(&out),
        expect(|o| o.send(Id::from(CLIENT), Msg::Outcome(outcome)))
    );
}

#[test]
fn a_no_vote_aborts_and_the_outcome_is_saved_first() {
    let (s, _) = deliver(&started(), CLIENT, purchase(1, 1));
    let no = Msg::Vote {
        txn: txn(0),
        ballot: Ballot::No(Refusal::Insufficient),
    };
    let (s, out) = deliver(&s, WALLET, no);
    let outcome = Outcome {
        req: req(1),
        txn: Some(txn(0)),
        verdict: Verdict::Aborted(AbortReason::InsufficientFunds),
    };
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.save(Storage::Coordinator(s.storage()));
            o.cancel_timer(Timer::Votes(txn(0)));
            o.send(Id::from(ORDER), Msg::Abort { txn: txn(0) });
            o.send(Id::from(CLIENT), Msg::Outcome(outcome.clone()));
        })
    );
}

#[test]
fn unknown_transactions_are_presumed_aborted() {
    let (_, out) = deliver(&started(), WALLET, Msg::QueryDecision { txn: txn(5) });
    assert_eq!(
        cmds(&out),
        expect(|o| o.send(Id::from(WALLET), Msg::Abort { txn: txn(5) }))
    );
    // But a transaction still voting is not answered.
    let (s, _) = deliver(&started(), CLIENT, purchase(1, 1));
    let (_, out) = deliver(&s, WALLET, Msg::QueryDecision { txn: txn(0) });
    assert!(out.is_empty());
}

#[test]
fn acks_from_everyone_let_the_decision_go() {
    let (s, _) = deliver(&started(), CLIENT, purchase(1, 1));
    let (s, _) = deliver(&s, WALLET, yes(0));
    let (s, _) = deliver(&s, ORDER, yes(0));
    let (s, out) = deliver(&s, WALLET, Msg::Ack { txn: txn(0) });
    assert!(out.is_empty());
    let (s, out) = deliver(&s, ORDER, Msg::Ack { txn: txn(0) });
    assert!(s.commits.is_empty());
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.save(Storage::Coordinator(s.storage()));
            o.cancel_timer(Timer::Resend(txn(0)));
        })
    );
}

#[test]
fn restart_resends_unacknowledged_commits() {
    let (s, _) = deliver(&started(), CLIENT, purchase(1, 1));
    let (s, _) = deliver(&s, WALLET, yes(0));
    let (s, _) = deliver(&s, ORDER, yes(0));
    let mut o = Out::new();
    let r = coord().on_start(Some(&s.storage()), &mut o);
    assert!(r.recovered_commits);
    assert_eq!(
        cmds(&o),
        expect(|o| {
            o.broadcast(
                &[Id::from(WALLET), Id::from(ORDER)],
                &Msg::AskEpoch { epoch: 2 },
            );
            o.set_timer(Timer::Learn, crate::timeouts::LEARN);
            o.save(Storage::Coordinator(r.storage()));
            o.send(Id::from(WALLET), Msg::Commit { txn: txn(0) });
            o.send(Id::from(ORDER), Msg::Commit { txn: txn(0) });
            o.set_timer(Timer::Resend(txn(0)), crate::timeouts::RESEND);
        })
    );
}

#[test]
fn invalid_purchases_are_refused_durably() {
    let (s, out) = deliver(&started(), CLIENT, purchase(1, 0));
    let outcome = Outcome {
        req: req(1),
        txn: None,
        verdict: Verdict::Aborted(AbortReason::InvalidRequest),
    };
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.save(Storage::Coordinator(s.storage()));
            o.send(Id::from(CLIENT), Msg::Outcome(outcome));
        })
    );
}

/// Decides `seq` (committed, every ack in) on top of `s`.
fn commit_all(s: &CoordState, seq: u64) -> CoordState {
    let (s, out) = deliver(s, CLIENT, purchase(seq, 1));
    let txn = out
        .iter()
        .find_map(|c| match c {
            stateright::actor::Command::Send(_, Msg::Prepare { txn, .. }) => Some(*txn),
            _ => None,
        })
        .expect("an attempt");
    let vote = |txn| Msg::Vote {
        txn,
        ballot: Ballot::Yes,
    };
    let (s, _) = deliver(&s, WALLET, vote(txn));
    let (s, _) = deliver(&s, ORDER, vote(txn));
    let (s, _) = deliver(&s, WALLET, Msg::Ack { txn });
    deliver(&s, ORDER, Msg::Ack { txn }).0
}

#[test]
fn an_unknown_id_without_a_ticket_gets_one_and_starts_nothing() {
    let ask = Msg::Purchase {
        req: req(1),
        purchase: contents(1),
        ticket: None,
    };
    let (s, out) = deliver(&started(), CLIENT, ask);
    assert_eq!(s, started());
    let status = Status::Unknown { ticket: 0 };
    assert_eq!(
        cmds(&out),
        expect(|o| o.send(
            Id::from(CLIENT),
            Msg::Status {
                req: req(1),
                status
            }
        ))
    );
}

#[test]
fn an_id_with_other_contents_is_refused_in_progress_and_decided() {
    let other = || Msg::Purchase {
        req: req(1),
        purchase: contents(2),
        ticket: Some(0),
    };
    let refused = Msg::Outcome(Outcome {
        req: req(1),
        txn: None,
        verdict: Verdict::Refused(Rejection::KeyReused),
    });
    let (voting, _) = deliver(&started(), CLIENT, purchase(1, 1));
    let (s, out) = deliver(&voting, CLIENT, other());
    assert_eq!(s, voting, "nothing remembered");
    assert_eq!(
        cmds(&out),
        expect(|o| o.send(Id::from(CLIENT), refused.clone()))
    );
    let decided = commit_all(&started(), 1);
    let (s, out) = deliver(&decided, CLIENT, other());
    assert_eq!(s, decided);
    assert_eq!(cmds(&out), expect(|o| o.send(Id::from(CLIENT), refused)));
}

#[test]
fn retention_forgets_the_oldest_and_a_stale_ticket_starts_nothing() {
    // Retention 2: the third outcome forgets the first.
    let mut s = started();
    for seq in 1..=3 {
        s = commit_all(&s, seq);
    }
    assert_eq!(s.outcomes.by_id.len(), 2);
    assert!(!s.outcomes.by_id.contains_key(&req(1)));
    assert_eq!(s.outcomes.forgotten_below, 1);
    assert_eq!(s.outcomes.next, 3);
    // A stale copy of the first purchase (ticket 0): not started again.
    let (after, out) = deliver(&s, CLIENT, purchase(1, 1));
    assert_eq!(after, s);
    let unknown = Outcome {
        req: req(1),
        txn: None,
        verdict: Verdict::Unknown,
    };
    assert_eq!(
        cmds(&out),
        expect(|o| o.send(Id::from(CLIENT), Msg::Outcome(unknown)))
    );
    // Asked, it is unknown, with a ticket that can start it anew.
    let (_, out) = deliver(&s, CLIENT, Msg::Lookup { req: req(1) });
    let status = Status::Unknown { ticket: 3 };
    assert_eq!(
        cmds(&out),
        expect(|o| o.send(
            Id::from(CLIENT),
            Msg::Status {
                req: req(1),
                status
            }
        ))
    );
    // Outcomes survive a restart, forgotten ones stay forgotten.
    let r = coord().on_start(Some(&s.storage()), &mut Out::new());
    assert_eq!(r.outcomes, s.outcomes);
}

#[test]
fn a_lookup_tells_in_progress_and_decided_and_starts_nothing() {
    let (voting, _) = deliver(&started(), CLIENT, purchase(1, 1));
    let (s, out) = deliver(&voting, CLIENT, Msg::Lookup { req: req(1) });
    assert_eq!(s, voting);
    let status = Status::InProgress;
    assert_eq!(
        cmds(&out),
        expect(|o| o.send(
            Id::from(CLIENT),
            Msg::Status {
                req: req(1),
                status
            }
        ))
    );
    let decided = commit_all(&started(), 1);
    let (_, out) = deliver(&decided, CLIENT, Msg::Lookup { req: req(1) });
    let outcome = decided.outcomes.by_id[&req(1)].outcome(&req(1));
    assert_eq!(
        cmds(&out),
        expect(|o| o.send(Id::from(CLIENT), Msg::Outcome(outcome)))
    );
}

#[test]
fn an_overlong_id_is_refused_and_not_remembered() {
    let long = Msg::Purchase {
        req: RequestId::new("x".repeat(RequestId::MAX_LEN + 1)),
        purchase: contents(1),
        ticket: Some(0),
    };
    let (s, out) = deliver(&started(), CLIENT, long);
    assert_eq!(s, started());
    assert!(format!("{out:?}").contains("InvalidId"));
}
