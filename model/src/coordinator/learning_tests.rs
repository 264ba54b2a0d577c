//! Handler tests of [`super`]: a coordinator without a log learns the
//! participants' epoch and what its lost log may have decided.

use crate::coordinator::tests::*;
use crate::coordinator::*;
use crate::coordinator::{resolve, Heard};
use crate::test_util::*;
use crate::{Node, Storage};
use stateright::actor::{Id, Out};
use std::borrow::Cow;

#[test]
fn start_without_a_log_asks_the_participants_then_bumps_the_epoch_durably() {
    let mut o = Out::new();
    let s = coord().on_start(None, &mut o);
    assert_eq!(s.epoch, 1);
    let participants = [Id::from(WALLET), Id::from(ORDER)];
    assert_eq!(
        cmds(&o),
        expect(|o| {
            o.broadcast(&participants, &Msg::AskEpoch { epoch: 1 });
            o.set_timer(Timer::Learn, crate::timeouts::LEARN);
            o.save(Storage::Coordinator(s.storage()));
        })
    );
    // With a log of its own it asks too: the log may be a restored backup.
    let mut o = Out::new();
    let s2 = coord().on_start(Some(&s.storage()), &mut o);
    assert_eq!((s2.epoch, &s2.learning), (2, &Learning::Asking(Map::new())));
    assert_eq!(
        cmds(&o),
        expect(|o| {
            o.broadcast(&participants, &Msg::AskEpoch { epoch: 2 });
            o.set_timer(Timer::Learn, crate::timeouts::LEARN);
            o.save(Storage::Coordinator(s2.storage()));
        })
    );
    // A new leader of a replica group takes over from the state a majority
    // accepted, the group's latest: it asks nothing.
    let mut o = Out::new();
    let s3 = coord().take_over(Some(&s.storage()), &mut o);
    assert_eq!((s3.epoch, &s3.learning), (2, &Learning::Learned));
    assert_eq!(
        cmds(&o),
        expect(|o| o.save(Storage::Coordinator(s3.storage())))
    );
}

/// A log that is the latest (the participants saw no epoch above the one
/// it used last) knows every decision: what both participants hold of its
/// last epoch was still voting, and is presumed aborted, not left in doubt.
#[test]
fn a_restart_on_its_own_log_presumes_abort_for_what_it_does_not_know() {
    let (s, _) = deliver(&started(), CLIENT, purchase(1, 1));
    let held = vec![(txn(0), Fate::Held(req(1)))];
    let r = coord().on_start(Some(&s.storage()), &mut Out::new());
    assert_eq!(r.epoch, 2);
    let (r, _) = deliver(&r, WALLET, answer_to(2, 1, held.clone()));
    let (r, out) = deliver(&r, ORDER, answer_to(2, 1, held));
    assert_eq!(
        (r.epoch, r.doubts.len()),
        (2, 0),
        "not moved, nothing in doubt"
    );
    assert_eq!(cmds(&out), expect(|o| o.cancel_timer(Timer::Learn)));
    let (_, out) = deliver(&r, WALLET, Msg::QueryDecision { txn: txn(0) });
    assert_eq!(
        cmds(&out),
        expect(|o| o.send(Id::from(WALLET), Msg::Abort { txn: txn(0) }))
    );
}

/// A log restored from a backup taken in epoch 1, while the participants
/// have seen epoch 3 since: it moves past epoch 3 (numbering from its own
/// log would reuse attempt numbers the participants hold). What it decided
/// itself stands; what it never knew is learned from the participants.
#[test]
fn a_restored_backup_moves_past_the_participants_epoch_and_keeps_its_own_decisions() {
    // The backup: epoch 1, the commit of txn 1.0 owed (decided, not acked).
    let (s, _) = deliver(&started(), CLIENT, purchase(1, 1));
    let (s, _) = deliver(&s, WALLET, yes(0));
    let (backup, _) = deliver(&s, ORDER, yes(0));
    assert!(backup.commits.contains_key(&txn(0)));
    let r = coord().on_start(Some(&backup.storage()), &mut Out::new());
    // Since the backup: 1.0 applied at the wallet, still held at the order
    // service; 3.0 committed at the wallet only; 3.1 held by both.
    let wallet = vec![
        (t(1, 0), Fate::Committed),
        (t(3, 0), Fate::Committed),
        (t(3, 1), Fate::Held(req(7))),
    ];
    let order = vec![
        (t(1, 0), Fate::Held(req(1))),
        (t(3, 0), Fate::Held(req(6))),
        (t(3, 1), Fate::Held(req(7))),
    ];
    let (r, _) = deliver(&r, WALLET, answer_to(2, 3, wallet));
    let (r, _) = deliver(&r, ORDER, answer_to(2, 3, order));
    assert_eq!(r.epoch, 4, "past what the participants saw");
    assert_eq!(r.outcomes.next, 4 << TICKET_GENERATION_BITS);
    let owed: Vec<TxnId> = r.commits.keys().copied().collect();
    assert_eq!(
        owed,
        [t(1, 0), t(3, 0)],
        "its own commit and the learned one"
    );
    assert_eq!(r.commits[&t(1, 0)].req, req(1));
    assert_eq!(r.doubts.keys().copied().collect::<Vec<_>>(), [t(3, 1)]);
    let (r, _) = deliver(&r, CLIENT, fresh(8, 1, r.outcomes.next));
    assert!(r.voting.contains_key(&t(4, 0)), "a number nobody has seen");
}

fn answer_to(asked: u64, highest: u64, fates: Vec<(TxnId, Fate)>) -> Msg {
    Msg::Epoch {
        asked,
        highest,
        fates,
    }
}

fn fresh(id: u64, qty: u64, ticket: u64) -> Msg {
    Msg::Purchase {
        req: req(id),
        purchase: contents(qty),
        ticket: Some(ticket),
    }
}

#[test]
fn nothing_starts_until_both_participants_have_answered() {
    let s = coord().on_start(None, &mut Out::new());
    let (s, out) = deliver(&s, WALLET, epoch(0));
    assert!(out.is_empty(), "one answer is not enough");
    // Before both answered, a purchase starts nothing and gets no ticket.
    let (same, out) = deliver(&s, CLIENT, purchase(1, 2));
    assert_eq!((same, out.is_empty()), (s.clone(), true));
    let (same, out) = deliver(&s, WALLET, epoch(5));
    assert_eq!((same, out.is_empty()), (s.clone(), true), "one answer each");
    let stale = Msg::Epoch {
        asked: 0,
        highest: 0,
        fates: vec![],
    };
    let (same, out) = deliver(&s, ORDER, stale);
    assert_eq!(
        (same, out.is_empty()),
        (s.clone(), true),
        "another incarnation's"
    );
    let (s, out) = deliver(&s, ORDER, epoch(0));
    assert_eq!(s.learning, Learning::Learned);
    assert_eq!(s.epoch, 1, "nothing seen above epoch 1: it stays");
    assert_eq!(cmds(&out), expect(|o| o.cancel_timer(Timer::Learn)));
    assert!(deliver(&s, CLIENT, purchase(1, 2))
        .0
        .voting
        .contains_key(&txn(0)));
    // Late answers change nothing.
    let (same, out) = deliver(&s, ORDER, epoch(9));
    assert_eq!((same, out.is_empty()), (s.clone(), true));
}

#[test]
fn an_empty_log_learns_the_participants_epoch_and_moves_past_it() {
    // The directory was replaced: the participants have seen epoch 3.
    let s = coord().on_start(None, &mut Out::new());
    let (s, _) = deliver(&s, WALLET, epoch(3));
    let (s, out) = deliver(&s, ORDER, epoch(2));
    assert_eq!(s.epoch, 4);
    // Every ticket of the lost log is stale: a new generation.
    assert_eq!(s.outcomes.next, 4 << TICKET_GENERATION_BITS);
    assert_eq!(s.outcomes.forgotten_below, s.outcomes.next);
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.cancel_timer(Timer::Learn);
            o.save(Storage::Coordinator(s.storage()));
        })
    );
    let fresh = Msg::Purchase {
        req: req(1),
        purchase: contents(2),
        ticket: Some(s.outcomes.next),
    };
    let (s, _) = deliver(&s, CLIENT, fresh);
    assert!(s.voting.contains_key(&TxnId { epoch: 4, n: 0 }));
    // A ticket of the lost log starts nothing.
    let (s, out) = deliver(&s, CLIENT, purchase(2, 2));
    assert!(!s.voting.values().any(|v| v.req == req(2)));
    assert!(format!("{out:?}").contains("Unknown"), "{out:?}");
}

#[test]
fn the_learn_timer_asks_again_only_who_has_not_answered() {
    let s = coord().on_start(None, &mut Out::new());
    let (s, _) = deliver(&s, WALLET, epoch(0));
    let mut cow = Cow::Borrowed(&s);
    let mut o = Out::new();
    coord().on_timeout(&mut cow, &Timer::Learn, &mut o);
    assert_eq!(
        cmds(&o),
        expect(|o| {
            o.send(Id::from(ORDER), Msg::AskEpoch { epoch: 1 });
            o.set_timer(Timer::Learn, crate::timeouts::LEARN);
        })
    );
    let mut cow = Cow::Borrowed(&started());
    let mut o = Out::new();
    coord().on_timeout(&mut cow, &Timer::Learn, &mut o);
    assert!(o.is_empty(), "learned: nothing to ask");
}

fn t(epoch: u64, n: u64) -> TxnId {
    TxnId { epoch, n }
}

fn answer(highest: u64, fates: Vec<(TxnId, Fate)>) -> Msg {
    Msg::Epoch {
        asked: 1,
        highest,
        fates,
    }
}

/// A coordinator on an empty disk, answered by both participants.
fn learned(wallet: Vec<(TxnId, Fate)>, order: Vec<(TxnId, Fate)>) -> (CoordState, Out<Node>) {
    let s = coord().on_start(None, &mut Out::new());
    let (s, _) = deliver(&s, WALLET, answer(3, wallet));
    deliver(&s, ORDER, answer(3, order))
}

fn both() -> [Id; 2] {
    [Id::from(WALLET), Id::from(ORDER)]
}

#[test]
fn a_commit_one_participant_applied_is_owed_to_the_other_durably_first() {
    // The lost log committed 3.0: the wallet applied it, the order service
    // still holds it.
    let (s, out) = learned(
        vec![(t(3, 0), Fate::Committed)],
        vec![(t(3, 0), Fate::Held(req(1)))],
    );
    assert_eq!(s.epoch, 4);
    assert_eq!(s.commits[&t(3, 0)].req, req(1));
    assert!(s.doubts.is_empty());
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.cancel_timer(Timer::Learn);
            o.save(Storage::Coordinator(s.storage()));
            o.broadcast(&both(), &Msg::Commit { txn: t(3, 0) });
            o.set_timer(Timer::Resend(t(3, 0)), crate::timeouts::RESEND);
        })
    );
    // The order service asks: commit, never presumed abort.
    let (_, out) = deliver(&s, ORDER, Msg::QueryDecision { txn: t(3, 0) });
    assert_eq!(
        cmds(&out),
        expect(|o| o.send(Id::from(ORDER), Msg::Commit { txn: t(3, 0) }))
    );
    // Its request is in progress until both acknowledged.
    assert!(matches!(s.known(&req(1)), Known::InProgress(None)));
}

#[test]
fn a_transaction_both_hold_stays_in_doubt_until_an_operator_decides() {
    let held = || vec![(t(3, 1), Fate::Held(req(2)))];
    let (s, out) = learned(held(), held());
    assert_eq!(s.doubts.get(&t(3, 1)), Some(&req(2)));
    assert_eq!(s.storage().doubts, s.doubts, "durable");
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.cancel_timer(Timer::Learn);
            o.save(Storage::Coordinator(s.storage()));
        })
    );
    // Never presumed: a query or a late yes gets no answer.
    for msg in [
        Msg::QueryDecision { txn: t(3, 1) },
        Msg::Vote {
            txn: t(3, 1),
            ballot: Ballot::Yes,
        },
    ] {
        let (same, out) = deliver(&s, WALLET, msg);
        assert_eq!((&same, out.is_empty()), (&s, true));
    }
    // The floor of every new prepare keeps it unsettled.
    assert_eq!(s.floor().owed, vec![t(3, 1)]);
    // Its request is in progress: a retry never starts it again.
    assert!(matches!(s.known(&req(2)), Known::InProgress(None)));
    // A restart keeps it.
    let again = coord().on_start(Some(&s.storage()), &mut Out::new());
    assert_eq!(again.doubts, s.doubts);
    // An operator commits it: durable, then delivered until acknowledged.
    let mut decided = s.clone();
    let mut o = Out::new();
    assert!(coord().decide_in_doubt(&mut decided, t(3, 1), true, &mut o));
    assert!(decided.doubts.is_empty());
    assert_eq!(decided.commits[&t(3, 1)].req, req(2));
    assert_eq!(
        cmds(&o),
        expect(|o| {
            o.save(Storage::Coordinator(decided.storage()));
            o.broadcast(&both(), &Msg::Commit { txn: t(3, 1) });
            o.set_timer(Timer::Resend(t(3, 1)), crate::timeouts::RESEND);
        })
    );
    // Or aborts it: durable, then both are told; presumed from then on.
    let mut aborted = s.clone();
    let mut o = Out::new();
    assert!(coord().decide_in_doubt(&mut aborted, t(3, 1), false, &mut o));
    assert_eq!(
        cmds(&o),
        expect(|o| {
            o.save(Storage::Coordinator(aborted.storage()));
            o.broadcast(&both(), &Msg::Abort { txn: t(3, 1) });
        })
    );
    let (_, out) = deliver(&aborted, WALLET, Msg::QueryDecision { txn: t(3, 1) });
    assert_eq!(
        cmds(&out),
        expect(|o| o.send(Id::from(WALLET), Msg::Abort { txn: t(3, 1) }))
    );
    // A transaction not in doubt: nothing changes.
    let mut o = Out::new();
    assert!(!coord().decide_in_doubt(&mut aborted.clone(), t(3, 1), true, &mut o));
    assert!(o.is_empty());
}

#[test]
fn a_hold_the_other_participant_aborted_or_never_prepared_is_aborted() {
    let (s, out) = learned(
        vec![(t(3, 0), Fate::Held(req(1))), (t(3, 1), Fate::Held(req(2)))],
        vec![(t(3, 0), Fate::Aborted)],
    );
    assert!(s.doubts.is_empty() && s.commits.is_empty());
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.cancel_timer(Timer::Learn);
            o.save(Storage::Coordinator(s.storage())); // the epoch moved
            o.broadcast(&both(), &Msg::Abort { txn: t(3, 0) });
            o.broadcast(&both(), &Msg::Abort { txn: t(3, 1) });
        })
    );
    assert!(s.floor().owed.is_empty(), "settled by the next floor");
}

#[test]
fn nothing_is_presumed_before_both_participants_answered() {
    let s = coord().on_start(None, &mut Out::new());
    let (s, _) = deliver(&s, WALLET, answer(3, vec![(t(1, 0), Fate::Committed)]));
    for msg in [
        Msg::QueryDecision { txn: t(1, 0) },
        Msg::Vote {
            txn: t(1, 0),
            ballot: Ballot::Yes,
        },
        Msg::Ack { txn: t(1, 0) },
    ] {
        let (same, out) = deliver(&s, ORDER, msg);
        assert_eq!((&same, out.is_empty()), (&s, true));
    }
}

#[test]
fn resolve_sorts_each_held_transaction_by_what_the_others_know() {
    let heard = |fates| Heard { highest: 3, fates };
    let w = heard(vec![
        (t(3, 0), Fate::Held(req(0))),
        (t(3, 1), Fate::Held(req(1))),
        (t(3, 2), Fate::Committed),
        (t(3, 3), Fate::Held(req(3))),
    ]);
    let o = heard(vec![
        (t(3, 0), Fate::Held(req(0))),
        (t(3, 1), Fate::Aborted),
        (t(3, 2), Fate::Held(req(2))),
        (t(3, 4), Fate::Committed), // held by nobody: nothing to do
    ]);
    let r = resolve(&[&w, &o]);
    assert_eq!(r.doubt.keys().copied().collect::<Vec<_>>(), vec![t(3, 0)]);
    assert_eq!(r.commit.get(&t(3, 2)), Some(&req(2)));
    assert_eq!(r.commit.len(), 1);
    assert_eq!(r.abort, vec![t(3, 1), t(3, 3)]);
}
