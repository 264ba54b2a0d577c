//! Handler tests of [`super`]: feed one event, compare the exact commands out.

use super::*;
use crate::test_util::*;
use crate::Storage;

const COORD: usize = 0;

fn wallet() -> Participant {
    Participant {
        resource: Resource::Wallet,
        coordinators: vec![Id::from(COORD)],
        initial: BTreeMap::from([("alice".to_string(), 10)]),
        prices: BTreeMap::new(),
        one_write: false,
    }
}

fn start() -> PartState {
    wallet().on_start(None, &mut Out::new())
}

fn prepare(n: u64, amount: u64) -> Msg {
    prepare_with_floor(n, amount, Floor::default())
}

fn prepare_with_floor(n: u64, amount: u64, floor: Floor) -> Msg {
    Msg::Prepare {
        txn: txn(n),
        req: req(n + 1),
        op: Op {
            key: "alice".into(),
            amount,
        },
        floor,
    }
}

fn deliver(state: &PartState, msg: Msg) -> (PartState, Out<Node>) {
    let mut cow = Cow::Borrowed(state);
    let mut o = Out::new();
    wallet().on_msg(&mut cow, Id::from(COORD), msg, &mut o);
    (cow.into_owned(), o)
}

#[test]
fn asked_its_epoch_it_tells_the_highest_it_has_a_durable_trace_of_and_every_fate() {
    let ask = |s: &PartState| {
        let (same, out) = deliver(s, Msg::AskEpoch { epoch: 7 });
        assert_eq!(&same, s, "a question changes nothing");
        out
    };
    let answer = |highest, fates| {
        expect(|o| {
            o.send(
                Id::from(COORD),
                Msg::Epoch {
                    asked: 7,
                    highest,
                    fates,
                },
            )
        })
    };
    assert_eq!(cmds(&ask(&start())), answer(0, vec![]));
    // A hold of epoch 3, under a floor of epoch 2.
    let floor = Floor {
        below: t(2, 0),
        owed: vec![],
    };
    let (held, _) = deliver_prepare(&start(), t(3, 1), 1, floor);
    let holding = (t(3, 1), Fate::Held(req(7)));
    assert_eq!(cmds(&ask(&held)), answer(3, vec![holding.clone()]));
    // Finished (aborted) at epoch 4, still holding 3.1.
    let (done, _) = deliver(&held, Msg::Abort { txn: t(4, 0) });
    let aborted = (t(4, 0), Fate::Aborted);
    assert_eq!(cmds(&ask(&done)), answer(4, vec![holding, aborted.clone()]));
    // 3.1 committed: it is told as committed.
    let (done, _) = deliver(&done, Msg::Commit { txn: t(3, 1) });
    assert_eq!(
        cmds(&ask(&done)),
        answer(4, vec![(t(3, 1), Fate::Committed), aborted])
    );
}

#[test]
fn an_abort_of_a_hold_the_floor_keeps_as_owed_releases_it() {
    // 3.1 is held; a floor of epoch 5 lists it as owed (in doubt at a
    // coordinator that lost its log): the hold stays.
    let floor = Floor {
        below: t(2, 0),
        owed: vec![],
    };
    let (held, _) = deliver_prepare(&start(), t(3, 1), 4, floor);
    let owed = Floor {
        below: t(5, 0),
        owed: vec![t(3, 1)],
    };
    let (kept, _) = deliver_prepare(&held, t(5, 0), 1, owed);
    assert!(kept.data.holds.contains_key(&t(3, 1)));
    assert_eq!(kept.data.floor, t(5, 0));
    // An operator aborts it: released although below the floor.
    let (released, out) = deliver(&kept, Msg::Abort { txn: t(3, 1) });
    assert!(!released.data.holds.contains_key(&t(3, 1)));
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.save(Storage::Participant(released.data.clone()));
            o.cancel_timer(Timer::Query(t(3, 1)));
        })
    );
    // Below the floor and not held: nothing to do.
    let (same, out) = deliver(&released, Msg::Abort { txn: t(4, 9) });
    assert_eq!((&same, out.is_empty()), (&released, true));
}

#[test]
fn prepare_saves_the_hold_then_votes_yes() {
    let (state, out) = deliver(&start(), prepare(0, 6));
    assert_eq!(state.data.holds[&txn(0)].op.amount, 6);
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.set_timer(Timer::Query(txn(0)), crate::timeouts::QUERY);
            o.save(Storage::Participant(state.data.clone()));
            o.send(
                Id::from(COORD),
                Msg::Vote {
                    txn: txn(0),
                    ballot: Ballot::Yes,
                },
            );
        })
    );
}

#[test]
fn prepare_beyond_balance_net_of_holds_votes_no() {
    let (held, _) = deliver(&start(), prepare(0, 6));
    let (state, out) = deliver(&held, prepare(1, 6));
    assert!(!state.data.finished[&txn(1)].committed);
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.save(Storage::Participant(state.data.clone()));
            let ballot = Ballot::No(Refusal::Insufficient);
            o.send(
                Id::from(COORD),
                Msg::Vote {
                    txn: txn(1),
                    ballot,
                },
            );
        })
    );
    // Escrow, not a lock: a purchase the rest covers still prepares.
    let (_, out) = deliver(&held, prepare(2, 4));
    assert!(cmds(&out).contains("Yes"));
}

#[test]
fn commit_applies_once_and_a_duplicate_is_only_acked() {
    let (held, _) = deliver(&start(), prepare(0, 6));
    let (done, out) = deliver(&held, Msg::Commit { txn: txn(0) });
    assert_eq!(done.data.levels["alice"], 4);
    assert!(done.data.holds.is_empty());
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.save(Storage::Participant(done.data.clone()));
            o.cancel_timer(Timer::Query(txn(0)));
            o.send(Id::from(COORD), Msg::Ack { txn: txn(0) });
        })
    );
    let (again, out) = deliver(&done, Msg::Commit { txn: txn(0) });
    assert_eq!(again, done);
    assert_eq!(
        cmds(&out),
        expect(|o| o.send(Id::from(COORD), Msg::Ack { txn: txn(0) }))
    );
}

#[test]
fn abort_before_prepare_makes_the_late_prepare_a_no_op() {
    let (aborted, out) = deliver(&start(), Msg::Abort { txn: txn(0) });
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.save(Storage::Participant(aborted.data.clone()));
            o.cancel_timer(Timer::Query(txn(0)));
        })
    );
    let (after, out) = deliver(&aborted, prepare(0, 6));
    assert_eq!(after, aborted);
    assert!(out.is_empty());
}

#[test]
fn restart_keeps_holds_and_queries_them() {
    let (held, _) = deliver(&start(), prepare(0, 6));
    let mut o = Out::new();
    let restarted = wallet().on_start(Some(&held.data), &mut o);
    assert_eq!(restarted.data, held.data);
    assert!(restarted.recovered_holds);
    assert_eq!(
        cmds(&o),
        expect(|o| o.set_timer(Timer::Query(txn(0)), crate::timeouts::QUERY))
    );
}

fn t(epoch: u64, n: u64) -> TxnId {
    TxnId { epoch, n }
}

fn deliver_prepare(
    state: &PartState,
    txn: TxnId,
    amount: u64,
    floor: Floor,
) -> (PartState, Out<Node>) {
    let msg = Msg::Prepare {
        txn,
        req: req(7),
        op: Op {
            key: "alice".into(),
            amount,
        },
        floor,
    };
    deliver(state, msg)
}

#[test]
fn a_floor_releases_a_dead_hold_before_the_prepare_is_judged() {
    // A hold of epoch 1 (its coordinator restarted before deciding).
    let (held, _) = deliver(&start(), prepare(0, 10));
    // Epoch 2's first prepare: nothing of epoch 1 is owed.
    let floor = Floor {
        below: t(2, 0),
        owed: vec![],
    };
    let (state, out) = deliver_prepare(&held, t(2, 0), 10, floor);
    assert!(!state.data.holds.contains_key(&txn(0)));
    assert_eq!(state.data.holds[&t(2, 0)].op.amount, 10);
    assert_eq!(state.data.floor, t(2, 0));
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.cancel_timer(Timer::Query(txn(0)));
            o.set_timer(Timer::Query(t(2, 0)), crate::timeouts::QUERY);
            o.save(Storage::Participant(state.data.clone()));
            o.send(
                Id::from(COORD),
                Msg::Vote {
                    txn: t(2, 0),
                    ballot: Ballot::Yes,
                },
            );
        })
    );
}

#[test]
fn an_owed_commit_keeps_its_hold_and_still_counts() {
    let (held, _) = deliver(&start(), prepare(0, 10));
    let floor = Floor {
        below: t(2, 0),
        owed: vec![txn(0)],
    };
    let (state, out) = deliver_prepare(&held, t(2, 0), 10, floor);
    assert!(state.data.holds.contains_key(&txn(0)));
    assert!(cmds(&out).contains("Insufficient"));
    // The commit it is owed still applies.
    let (done, _) = deliver(&state, Msg::Commit { txn: txn(0) });
    assert_eq!(done.data.levels["alice"], 0);
}

#[test]
fn below_the_floor_finished_is_forgotten_late_prepares_ignored_commits_acked() {
    let (held, _) = deliver(&start(), prepare(0, 6));
    let (done, _) = deliver(&held, Msg::Commit { txn: txn(0) });
    let floor = Floor {
        below: txn(1),
        owed: vec![],
    };
    let (state, _) = deliver_prepare(&done, txn(1), 1, floor);
    assert!(state.data.finished.is_empty(), "txn 1.0 is forgotten");
    // A late duplicate of the first prepare: ignored, nothing held.
    let (after, out) = deliver(&state, prepare(0, 6));
    assert_eq!(after, state);
    assert!(out.is_empty());
    // A late duplicate of its commit: acknowledged, not applied again.
    let (after, out) = deliver(&state, Msg::Commit { txn: txn(0) });
    assert_eq!(after, state);
    assert_eq!(
        cmds(&out),
        expect(|o| o.send(Id::from(COORD), Msg::Ack { txn: txn(0) }))
    );
    assert_eq!(after.data.levels["alice"], 4, "applied once");
}

/// `knows` accounts for a decision on every transaction the participant
/// held, finished or settled below its floor, and for nothing else; a
/// commit it cannot account for changes nothing (the runtime alarms).
#[test]
fn knows_what_it_held_finished_or_settled_and_nothing_else() {
    let fresh = start();
    assert!(!fresh.data.knows(&txn(0)), "never prepared");
    let (held, _) = deliver(&fresh, prepare(0, 6));
    assert!(held.data.knows(&txn(0)), "held");
    assert!(!held.data.knows(&txn(1)));
    let (done, _) = deliver(&held, Msg::Commit { txn: txn(0) });
    assert!(done.data.knows(&txn(0)), "finished");
    let (refused, _) = deliver(&done, prepare(1, 60));
    assert!(refused.data.knows(&txn(1)), "finished by a refusal");
    let floor = Floor {
        below: txn(2),
        owed: vec![],
    };
    let (settled, _) = deliver_prepare(&refused, txn(5), 1, floor);
    assert!(
        settled.data.finished.is_empty(),
        "forgotten below the floor"
    );
    assert!(settled.data.knows(&txn(0)) && settled.data.knows(&txn(1)));
    assert!(
        !settled.data.knows(&txn(3)),
        "at or above the floor, unseen"
    );
    // The runtime's alarm case: the actor changes nothing and sends nothing.
    let (after, out) = deliver(&settled, Msg::Commit { txn: txn(3) });
    assert_eq!(after, settled);
    assert!(out.is_empty());
}

#[test]
fn strangers_are_ignored() {
    let mut cow = Cow::Owned(start());
    let mut o = Out::new();
    wallet().on_msg(&mut cow, Id::from(7), prepare(0, 6), &mut o);
    assert!(o.is_empty());
    assert!(cow.data.holds.is_empty());
}
