//! Handler tests of the one-write protocol (docs/one-write.md): what the
//! coordinator and a participant do differently when it is on. Feed one
//! event, compare the exact commands out.

use crate::coordinator::tests::{contents, yes, CLIENT, ORDER, WALLET};
use crate::test_util::*;
use crate::*;
use std::collections::BTreeMap;

fn coord() -> Coordinator {
    Coordinator {
        one_write: true,
        ..crate::coordinator::tests::coord()
    }
}

fn wallet() -> Participant {
    Participant {
        resource: Resource::Wallet,
        coordinators: vec![Id::from(slots::COORDINATOR)],
        initial: BTreeMap::from([("alice".to_string(), 10)]),
        prices: BTreeMap::new(),
        one_write: true,
    }
}

fn to_coord(state: &CoordState, src: usize, msg: Msg) -> (CoordState, Out<Node>) {
    let mut cow = Cow::Borrowed(state);
    let mut o = Out::new();
    coord().on_msg(&mut cow, Id::from(src), msg, &mut o);
    (cow.into_owned(), o)
}

fn to_wallet(state: &PartState, msg: Msg) -> (PartState, Out<Node>) {
    let mut cow = Cow::Borrowed(state);
    let mut o = Out::new();
    wallet().on_msg(&mut cow, Id::from(slots::COORDINATOR), msg, &mut o);
    (cow.into_owned(), o)
}

fn answer(asked: u64, highest: u64, fates: Vec<(TxnId, Fate)>) -> Msg {
    Msg::Epoch {
        asked,
        highest,
        fates,
    }
}

/// Started from `storage`, its epoch learned from answers with `fates`.
fn learned(
    storage: Option<&CoordStorage>,
    fates: [Vec<(TxnId, Fate)>; 2],
) -> (CoordState, Out<Node>) {
    let s = coord().on_start(storage, &mut Out::new());
    let [w, o] = fates;
    let (s, _) = to_coord(&s, WALLET, answer(s.epoch, 0, w));
    to_coord(&s, ORDER, answer(s.epoch, 0, o))
}

/// A purchase of one unit with id `seq`, with the ticket `state` hands out.
fn buy(state: &CoordState, seq: u64) -> Msg {
    Msg::Purchase {
        req: req(seq),
        purchase: contents(1),
        ticket: Some(state.outcomes.next),
    }
}

#[test]
fn all_yes_tells_the_commit_without_saving_it() {
    let (s, _) = learned(None, [vec![], vec![]]);
    // Every start numbers in its own generation; no ticket goes stale.
    assert_eq!(s.outcomes.next, 1 << TICKET_GENERATION_BITS);
    assert_eq!(s.outcomes.forgotten_below, 0);
    let (s, _) = to_coord(&s, CLIENT, buy(&s, 1));
    let (s, _) = to_coord(&s, WALLET, yes(0));
    let (s, out) = to_coord(&s, ORDER, yes(0));
    let outcome = Outcome {
        req: req(1),
        txn: Some(txn(0)),
        verdict: Verdict::Committed,
    };
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.cancel_timer(Timer::Votes(txn(0)));
            o.send(Id::from(WALLET), Msg::Commit { txn: txn(0) });
            o.send(Id::from(ORDER), Msg::Commit { txn: txn(0) });
            o.send(Id::from(CLIENT), Msg::Outcome(outcome));
            o.set_timer(Timer::Resend(txn(0)), timeouts::RESEND);
        })
    );
    // The save that forgets the acknowledged commit records its outcome.
    let (s, _) = to_coord(&s, WALLET, Msg::Ack { txn: txn(0) });
    let (s, out) = to_coord(&s, ORDER, Msg::Ack { txn: txn(0) });
    assert!(s.storage().outcomes.by_id.contains_key(&req(1)));
    assert!(cmds(&out).contains("Save"), "{out:?}");
}

#[test]
fn the_vote_timer_fences_the_missing_voter_and_waits_for_its_answer() {
    let (s, _) = learned(None, [vec![], vec![]]);
    let (s, _) = to_coord(&s, CLIENT, buy(&s, 1));
    let (s, _) = to_coord(&s, WALLET, yes(0));
    let mut cow = Cow::Borrowed(&s);
    let mut out = Out::new();
    coord().on_timeout(&mut cow, &Timer::Votes(txn(0)), &mut out);
    assert_eq!(cow.as_ref(), &s, "no abort on the timer");
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.send(Id::from(ORDER), Msg::Fence { txn: txn(0) });
            o.set_timer(Timer::Votes(txn(0)), timeouts::VOTES);
        })
    );
    // The fence granted: aborted (vote timeout), saved before it is told
    // (a restart could not rebuild it: the fenced party never heard what
    // was asked).
    let fenced = Msg::Vote {
        txn: txn(0),
        ballot: Ballot::No(Refusal::Fenced),
    };
    let (s, out) = to_coord(&s, ORDER, fenced);
    let told = &s.outcomes.by_id[&req(1)];
    assert_eq!(told.verdict, Verdict::Aborted(AbortReason::VoteTimeout));
    let text = cmds(&out);
    let save = text.find("Save").expect("the abort is saved");
    assert!(save < text.find("Outcome").expect("and told"), "{text}");
    // The fence lost the race: a yes answers it, and commits.
    let (fresh, _) = learned(None, [vec![], vec![]]);
    let (s, _) = to_coord(&fresh, CLIENT, buy(&fresh, 2));
    let (s, _) = to_coord(&s, WALLET, yes(0));
    let (s, _) = to_coord(&s, ORDER, yes(0));
    assert_eq!(s.outcomes.by_id[&req(2)].verdict, Verdict::Committed);
}

#[test]
fn a_restart_commits_what_every_participant_holds_and_aborts_what_one_never_saw() {
    let held = |n| (txn(n), Fate::Held(req(n + 1)));
    let stored = CoordStorage {
        epoch: 1,
        ..CoordStorage::default()
    };
    let (s, out) = learned(Some(&stored), [vec![held(0), held(1)], vec![held(0)]]);
    assert_eq!(s.epoch, 2);
    assert!(s.commits.contains_key(&txn(0)), "both hold it: committed");
    assert!(s.doubts.is_empty(), "nothing in doubt under one write");
    assert!(!s.commits.contains_key(&txn(1)), "the order never saw it");
    assert_eq!(s.outcomes.next, 2 << TICKET_GENERATION_BITS);
    assert_eq!(s.outcomes.forgotten_below, 0, "tickets stay good");
    let text = cmds(&out);
    let save = text.find("Save").expect("the resolution is saved");
    let commit = text.find("Commit").expect("the commit is owed");
    assert!(save < commit, "saved before it is sent: {text}");
    assert!(
        text.contains("Abort { txn: TxnId { epoch: 1, n: 1 } }"),
        "{text}"
    );
}

#[test]
fn a_participant_answers_a_question_behind_a_durable_fence() {
    let s = wallet().on_start(None, &mut Out::new());
    let (s, out) = to_wallet(&s, Msg::AskEpoch { epoch: 3 });
    assert_eq!(s.data.floor, TxnId { epoch: 3, n: 0 });
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.save(Storage::Participant(s.data.clone()));
            o.send(Id::from(slots::COORDINATOR), answer(3, 0, vec![]));
        })
    );
    // Asked again: the fence is not an epoch it saw used (it counts as
    // the one before it, below the asker's: the asker does not move on).
    let (again, out) = to_wallet(&s, Msg::AskEpoch { epoch: 3 });
    assert_eq!(again, s);
    assert_eq!(
        cmds(&out),
        expect(|o| o.send(Id::from(slots::COORDINATOR), answer(3, 2, vec![])))
    );
    // A prepare of an earlier epoch arriving late is ignored.
    let late = Msg::Prepare {
        txn: TxnId { epoch: 2, n: 0 },
        req: req(1),
        op: Op {
            key: "alice".into(),
            amount: 6,
        },
        floor: Floor::default(),
    };
    let (after, out) = to_wallet(&s, late);
    assert_eq!(after, s);
    assert!(out.is_empty());
}

#[test]
fn a_fence_refuses_what_was_never_prepared_and_keeps_a_saved_yes() {
    let s = wallet().on_start(None, &mut Out::new());
    let (fenced, out) = to_wallet(&s, Msg::Fence { txn: txn(0) });
    assert!(fenced
        .data
        .finished
        .get(&txn(0))
        .is_some_and(|f| !f.committed));
    let no = Msg::Vote {
        txn: txn(0),
        ballot: Ballot::No(Refusal::Fenced),
    };
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.save(Storage::Participant(fenced.data.clone()));
            o.send(Id::from(slots::COORDINATOR), no.clone());
        })
    );
    // The prepare that comes after the fence is refused without a vote.
    let prepare = Msg::Prepare {
        txn: txn(0),
        req: req(1),
        op: Op {
            key: "alice".into(),
            amount: 6,
        },
        floor: Floor::default(),
    };
    let (after, out) = to_wallet(&fenced, prepare.clone());
    assert_eq!(after, fenced);
    assert!(out.is_empty());
    // A yes saved before the fence stays a yes.
    let (held, _) = to_wallet(&s, prepare);
    let (same, out) = to_wallet(&held, Msg::Fence { txn: txn(0) });
    assert_eq!(same, held);
    assert_eq!(
        cmds(&out),
        expect(|o| o.send(Id::from(slots::COORDINATOR), yes(0)))
    );
}

fn prepare(n: u64, amount: u64) -> Msg {
    Msg::Prepare {
        txn: txn(n),
        req: req(n),
        op: Op {
            key: "alice".into(),
            amount,
        },
        floor: Floor::default(),
    }
}

fn fire(state: &PartState, timer: Timer) -> (PartState, Out<Node>) {
    let mut cow = Cow::Borrowed(state);
    let mut o = Out::new();
    wallet().on_timeout(&mut cow, &timer, &mut o);
    (cow.into_owned(), o)
}

#[test]
fn a_commit_is_applied_in_memory_and_acknowledged_after_the_next_save() {
    let coordinator = Id::from(slots::COORDINATOR);
    let s = wallet().on_start(None, &mut Out::new());
    let (held, _) = to_wallet(&s, prepare(0, 6));
    // The commit: applied, not saved, no ack yet; the flush timer set.
    let (applied, out) = to_wallet(&held, Msg::Commit { txn: txn(0) });
    assert_eq!(applied.data.levels["alice"], 4);
    assert!(applied.data.holds.is_empty());
    assert_eq!(applied.acks_after_save.get(&txn(0)), Some(&coordinator));
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.cancel_timer(Timer::Query(txn(0)));
            o.set_timer(Timer::Flush, crate::timeouts::FLUSH);
        })
    );
    // A re-sent commit while the ack waits changes nothing, sends nothing.
    let (same, out) = to_wallet(&applied, Msg::Commit { txn: txn(0) });
    assert_eq!(same, applied);
    assert!(out.is_empty());
    // The next prepare's save carries the commit: its vote and the ack
    // leave after it.
    let (next, out) = to_wallet(&applied, prepare(1, 3));
    assert!(next.acks_after_save.is_empty());
    assert_eq!(next.data.levels["alice"], 4, "the commit is in the save");
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.set_timer(Timer::Query(txn(1)), crate::timeouts::QUERY);
            o.save(Storage::Participant(next.data.clone()));
            o.send(coordinator, yes(1));
            o.send(coordinator, Msg::Ack { txn: txn(0) });
            o.cancel_timer(Timer::Flush);
        })
    );
    // Acknowledged: a re-sent commit is acknowledged again at once.
    let (_, out) = to_wallet(&next, Msg::Commit { txn: txn(0) });
    assert_eq!(
        cmds(&out),
        expect(|o| o.send(coordinator, Msg::Ack { txn: txn(0) }))
    );
    // With no prepare coming, the flush timer saves and acknowledges.
    let (flushed, out) = fire(&applied, Timer::Flush);
    assert!(flushed.acks_after_save.is_empty());
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.save(Storage::Participant(applied.data.clone()));
            o.send(coordinator, Msg::Ack { txn: txn(0) });
            o.cancel_timer(Timer::Flush);
        })
    );
    // Fired with nothing owed, it does nothing.
    let (same, out) = fire(&flushed, Timer::Flush);
    assert_eq!(same, flushed);
    assert!(out.is_empty());
    // A crash before any save loses the commit, not the hold, which asks
    // again for its decision.
    let mut o = Out::new();
    let restarted = wallet().on_start(Some(&held.data), &mut o);
    assert!(restarted.data.prepared(&txn(0)));
    assert!(restarted.acks_after_save.is_empty());
    assert_eq!(
        cmds(&o),
        expect(|o| o.set_timer(Timer::Query(txn(0)), crate::timeouts::QUERY))
    );
}

/// The debits a one-write participant names: `alice` pays 6 a unit, the
/// order service gives units of `widget`.
fn debit_of(n: u64, wallet: bool, committed: bool) -> (TxnId, Fate) {
    let op = match wallet {
        true => Op {
            key: "alice".into(),
            amount: 6,
        },
        false => Op {
            key: "widget".into(),
            amount: 1,
        },
    };
    match committed {
        true => (txn(n), Fate::CommittedFor(req(n + 1), op)),
        false => (txn(n), Fate::HeldFor(req(n + 1), op)),
    }
}

#[test]
fn a_restart_records_the_purchases_it_told_and_keeps_the_tickets() {
    // The last incarnation (epoch 1) handed out tickets up to 5 of its
    // generation and told two purchases committed, neither saved: the
    // first both participants hold, the second both applied (and
    // acknowledged: nobody holds it, it is resolved from no hold).
    let old_ticket = (1 << TICKET_GENERATION_BITS) + 5;
    let stored = CoordStorage {
        epoch: 1,
        outcomes: Outcomes {
            next: 1 << TICKET_GENERATION_BITS,
            ..Outcomes::default()
        },
        ..CoordStorage::default()
    };
    let w = vec![debit_of(0, true, false), debit_of(1, true, true)];
    let o = vec![debit_of(0, false, false), debit_of(1, false, true)];
    let (s, out) = learned(Some(&stored), [w, o]);
    for n in 0..2 {
        let told = &s.outcomes.by_id[&req(n + 1)];
        assert_eq!(told.verdict, Verdict::Committed);
        assert_eq!(told.txn, Some(txn(n)));
        assert_eq!(told.purchase, contents(1));
        assert!(
            told.number >= 2 << TICKET_GENERATION_BITS,
            "above every old ticket"
        );
    }
    assert_eq!(
        s.storage().outcomes,
        s.outcomes,
        "recorded in the start's save"
    );
    assert!(cmds(&out).contains("Save"));
    assert_eq!(s.outcomes.forgotten_below, 0);
    // A copy of the first, with the ticket it was sent with: its outcome.
    let copy = Msg::Purchase {
        req: req(1),
        purchase: contents(1),
        ticket: Some(old_ticket),
    };
    let (_, out) = to_coord(&s, CLIENT, copy);
    let committed = Outcome {
        req: req(1),
        txn: Some(txn(0)),
        verdict: Verdict::Committed,
    };
    assert_eq!(
        cmds(&out),
        expect(|o| o.send(Id::from(CLIENT), Msg::Outcome(committed)))
    );
    // A new purchase with a ticket of the last incarnation: started.
    let new = Msg::Purchase {
        req: req(9),
        purchase: contents(1),
        ticket: Some(old_ticket),
    };
    let (_, out) = to_coord(&s, CLIENT, new);
    assert!(cmds(&out).contains("Prepare"), "{out:?}");
}

#[test]
fn an_outcome_recorded_again_is_numbered_above_the_tickets_given_before_it() {
    // The last incarnation (epoch 1, its log's next number `first`)
    // decided purchase 2 (txn 1) first, numbered `first`, handed out
    // ticket `first + 1`, then decided purchase 1 (txn 0), numbered
    // `first + 1`; neither saved. Recorded again in the order of their
    // attempts, then purchase 1 forgotten when one more is recorded
    // (retention 2): a copy of purchase 1 with that ticket, handed out
    // before its first decision, must find the ticket stale, as it would
    // have before the crash.
    let first = 1 << TICKET_GENERATION_BITS;
    let stored = CoordStorage {
        epoch: 1,
        outcomes: Outcomes {
            next: first,
            ..Outcomes::default()
        },
        ..CoordStorage::default()
    };
    let w = vec![debit_of(0, true, true), debit_of(1, true, true)];
    let o = vec![debit_of(0, false, true), debit_of(1, false, true)];
    let (s, _) = learned(Some(&stored), [w, o]);
    assert!(s.outcomes.by_id.contains_key(&req(1)));
    let (s, _) = to_coord(&s, CLIENT, buy(&s, 3));
    let (s, _) = to_coord(&s, WALLET, yes_at(s.epoch, 0));
    let (s, _) = to_coord(&s, ORDER, yes_at(s.epoch, 0));
    assert!(!s.outcomes.by_id.contains_key(&req(1)), "forgotten again");
    let copy = Msg::Purchase {
        req: req(1),
        purchase: contents(1),
        ticket: Some(first + 1),
    };
    let (_, out) = to_coord(&s, CLIENT, copy);
    let unknown = Outcome {
        req: req(1),
        txn: None,
        verdict: Verdict::Unknown,
    };
    assert_eq!(
        cmds(&out),
        expect(|o| o.send(Id::from(CLIENT), Msg::Outcome(unknown)))
    );
}

fn yes_at(epoch: u64, n: u64) -> Msg {
    Msg::Vote {
        txn: TxnId { epoch, n },
        ballot: Ballot::Yes,
    }
}
