//! [`Participant::ignores`] and [`Participant::only_answers`] paired with
//! the handler they describe: over every state a few steps from a fresh
//! start, whatever they say is ignored changes nothing when delivered (and
//! sends nothing, or only to its sender), and is still ignored after any
//! further step. A rule made too eager fails here.

use super::*;
use crate::test_util::*;
use crate::Storage;
use stateright::actor::Command;
use std::collections::BTreeSet;

const COORD: usize = 0;
const STRANGER: usize = 9;

fn wallet() -> Participant {
    Participant {
        resource: Resource::Wallet,
        coordinators: vec![Id::from(COORD)],
        initial: BTreeMap::from([("alice".to_string(), 10)]),
        prices: BTreeMap::new(),
        one_write: false,
    }
}

fn deliver(state: &PartState, src: Id, msg: Msg) -> (PartState, Out<Node>) {
    let mut cow = Cow::Borrowed(state);
    let mut o = Out::new();
    wallet().on_msg(&mut cow, src, msg, &mut o);
    (cow.into_owned(), o)
}

fn prepare(n: u64, amount: u64, floor: Floor) -> Msg {
    Msg::Prepare {
        txn: txn(n),
        req: req(n),
        op: Op {
            key: "alice".into(),
            amount,
        },
        floor,
    }
}

/// Prepares (one that fits, one that does not), commits and aborts of four
/// transactions, under floors that settle nothing, settle the first two, or
/// settle the first two but for an owed commit.
fn messages() -> Vec<Msg> {
    let floors = [
        Floor::default(),
        Floor {
            below: txn(2),
            owed: vec![],
        },
        Floor {
            below: txn(2),
            owed: vec![txn(1)],
        },
    ];
    let mut all = vec![Msg::AskEpoch { epoch: 1 }];
    for n in 0..4 {
        for floor in &floors {
            all.push(prepare(n, 1, floor.clone()));
            all.push(prepare(n, 20, floor.clone()));
        }
        all.push(Msg::Commit { txn: txn(n) });
        all.push(Msg::Abort { txn: txn(n) });
    }
    all
}

/// Every state within three deliveries of a fresh start.
fn states() -> Vec<PartState> {
    let start = wallet().on_start(None, &mut Out::new());
    let mut seen = BTreeSet::from([format!("{start:?}")]);
    let (mut all, mut frontier) = (vec![start.clone()], vec![start]);
    for _ in 0..3 {
        let mut next = Vec::new();
        for s in &frontier {
            for m in messages() {
                let (after, _) = deliver(s, Id::from(COORD), m);
                if seen.insert(format!("{after:?}")) {
                    next.push(after);
                }
            }
        }
        all.extend(next.iter().cloned());
        frontier = next;
    }
    all
}

/// Judges `rule` against the handler over every state, sender and message:
/// a message it holds changes nothing, sends only what `sends` allows, and
/// is still held after any further delivery and after a restart. Returns
/// how many it held.
fn judge(
    rule: impl Fn(&PartState, Id, &Msg) -> bool,
    sends: impl Fn(Id, &Command<Msg, Timer, (), Storage>) -> bool,
) -> usize {
    let (states, msgs) = (states(), messages());
    assert!(states.len() > 100, "{} states", states.len());
    let mut held = 0;
    for s in &states {
        for src in [Id::from(COORD), Id::from(STRANGER)] {
            for m in msgs.iter().filter(|m| rule(s, src, m)) {
                held += 1;
                let (after, out) = deliver(s, src, m.clone());
                assert_eq!(&after, s, "{m:?} changed {s:?}");
                assert!(out.iter().all(|c| sends(src, c)), "{m:?} to {s:?}: {out:?}");
                for next in &msgs {
                    let (later, _) = deliver(s, Id::from(COORD), next.clone());
                    assert!(rule(&later, src, m), "{m:?} live again after {next:?}");
                }
                let restarted = wallet().on_start(Some(&s.data), &mut Out::new());
                assert!(rule(&restarted, src, m), "{m:?} live again after a restart");
            }
        }
    }
    held
}

#[test]
fn what_a_participant_ignores_changes_nothing_and_sends_nothing_now_or_later() {
    let held = judge(|s, src, m| wallet().ignores(s, src, m), |_, _| false);
    assert!(held > 1000, "{held}");
}

#[test]
fn what_only_answers_the_sender_changes_nothing_and_goes_to_the_sender_alone() {
    let to_sender = |src: Id, c: &Command<Msg, Timer, (), Storage>| matches!(c, Command::Send(dst, _) if *dst == src);
    let held = judge(|s, src, m| wallet().only_answers(s, src, m), to_sender);
    assert!(held > 1000, "{held}");
    // Among them, answers: a vote again and an ack again.
    let states = states();
    let coord = Id::from(COORD);
    let answers = |m: &Msg| {
        states.iter().any(|s| {
            wallet().only_answers(s, coord, m) && !deliver(s, coord, m.clone()).1.is_empty()
        })
    };
    assert!(answers(&prepare(0, 1, Floor::default())));
    assert!(answers(&Msg::Commit { txn: txn(0) }));
}

/// A hold below the floor is one the floor lists as owed: an operator may
/// abort it (a transaction in doubt), so an abort of it is not ignored,
/// though the floor has passed it.
#[test]
fn an_abort_of_a_hold_below_the_floor_is_not_ignored() {
    let start = wallet().on_start(None, &mut Out::new());
    let coord = Id::from(COORD);
    let (s, _) = deliver(&start, coord, prepare(1, 1, Floor::default()));
    let owed = Floor {
        below: txn(2),
        owed: vec![txn(1)],
    };
    let (s, _) = deliver(&s, coord, prepare(2, 1, owed));
    assert!(s.data.holds.contains_key(&txn(1)) && txn(1) < s.data.floor);
    let abort = Msg::Abort { txn: txn(1) };
    assert!(!wallet().ignores(&s, coord, &abort));
    let (after, _) = deliver(&s, coord, abort);
    assert!(!after.data.holds.contains_key(&txn(1)));
}
