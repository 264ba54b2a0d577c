//! Handler tests of credits at a participant (see docs/shop.md): applied
//! only at commit, once; refused only for overflow; a new key exists only
//! from the commit on.

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

fn credit(n: u64, key: &str, amount: u64) -> Msg {
    Msg::PrepareCredit {
        txn: txn(n),
        req: req(n + 1),
        op: Op {
            key: key.into(),
            amount,
        },
        floor: Floor::default(),
        parties: vec![Id::from(1)],
    }
}

fn hold(n: u64, key: &str, amount: u64) -> Msg {
    Msg::Prepare {
        txn: txn(n),
        req: req(n + 1),
        op: Op {
            key: key.into(),
            amount,
        },
        floor: Floor::default(),
    }
}

fn deliver(state: &PartState, msg: Msg) -> (PartState, Out<Node>) {
    let mut cow = Cow::Borrowed(state);
    let mut o = Out::new();
    wallet().on_msg(&mut cow, Id::from(COORD), msg, &mut o);
    (cow.into_owned(), o)
}

fn vote(n: u64, ballot: Ballot) -> Msg {
    Msg::Vote {
        txn: txn(n),
        ballot,
    }
}

#[test]
fn a_credit_is_saved_before_the_yes_and_applied_only_at_commit() {
    let (s, out) = deliver(&start(), credit(0, "alice", 5));
    assert_eq!(s.data.levels["alice"], 10, "nothing applied at prepare");
    assert_eq!(s.data.held("alice"), 0, "a credit is held nowhere");
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.set_timer(Timer::Query(txn(0)), crate::timeouts::QUERY);
            o.save(Storage::Participant(s.data.clone()));
            o.send(Id::from(COORD), vote(0, Ballot::Yes));
        })
    );
    // A pending credit does not cover a hold: 10 is all there is.
    let (s, out) = deliver(&s, hold(1, "alice", 11));
    assert!(cmds(&out).contains("Insufficient"), "{}", cmds(&out));
    let (done, out) = deliver(&s, Msg::Commit { txn: txn(0) });
    assert_eq!(done.data.levels["alice"], 15);
    assert!(done.data.credits.is_empty());
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.save(Storage::Participant(done.data.clone()));
            o.cancel_timer(Timer::Query(txn(0)));
            o.send(Id::from(COORD), Msg::Ack { txn: txn(0) });
        })
    );
    // A duplicate commit is acknowledged and applied once.
    let (again, out) = deliver(&done, Msg::Commit { txn: txn(0) });
    assert_eq!(again, done);
    assert_eq!(
        cmds(&out),
        expect(|o| o.send(Id::from(COORD), Msg::Ack { txn: txn(0) }))
    );
}

#[test]
fn a_credit_to_an_unknown_key_creates_it_at_commit_and_not_before() {
    let (s, out) = deliver(&start(), credit(0, "bob", 7));
    assert!(cmds(&out).contains("Yes"), "a credit to a new key prepares");
    assert!(
        !s.data.levels.contains_key("bob"),
        "no key before the commit"
    );
    // A hold on it before the commit: the key is unknown.
    let (s, out) = deliver(&s, hold(1, "bob", 1));
    assert!(
        cmds(&out).contains(&format!("{:?}", vote(1, Ballot::No(Refusal::UnknownKey)))),
        "{}",
        cmds(&out)
    );
    let (s, _) = deliver(&s, Msg::Commit { txn: txn(0) });
    assert_eq!(s.data.levels.get("bob"), Some(&7));
    let (_, out) = deliver(&s, hold(2, "bob", 7));
    assert!(
        cmds(&out).contains("Yes"),
        "the key exists after the commit"
    );
}

#[test]
fn an_aborted_credit_changes_no_level_and_creates_no_key() {
    let start = start();
    let (s, _) = deliver(&start, credit(0, "bob", 7));
    let (s, _) = deliver(&s, credit(1, "alice", 7));
    let (s, _) = deliver(&s, Msg::Abort { txn: txn(0) });
    let (s, _) = deliver(&s, Msg::Abort { txn: txn(1) });
    assert_eq!(s.data.levels, start.data.levels);
    assert!(s.data.credits.is_empty());
    assert!(!s.data.finished[&txn(0)].committed);
    // A commit after the abort cannot come from a correct coordinator:
    // ignored, nothing applied.
    let (after, out) = deliver(&s, Msg::Commit { txn: txn(0) });
    assert_eq!(after, s);
    assert!(out.is_empty());
}

#[test]
fn a_credit_that_would_overflow_is_refused_counting_pending_credits() {
    let (s, out) = deliver(&start(), credit(0, "alice", u64::MAX - 10));
    assert!(cmds(&out).contains("Yes"), "10 + (MAX - 10) fits");
    let (s, out) = deliver(&s, credit(1, "alice", 1));
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.save(Storage::Participant(s.data.clone()));
            o.send(Id::from(COORD), vote(1, Ballot::No(Refusal::Overflow)));
        })
    );
    assert!(!s.data.finished[&txn(1)].committed, "refused: aborted here");
    let (s, _) = deliver(&s, Msg::Commit { txn: txn(0) });
    assert_eq!(s.data.levels["alice"], u64::MAX, "never wraps");
}

#[test]
fn a_pending_credit_survives_a_restart_and_is_asked_about() {
    let (s, _) = deliver(&start(), credit(0, "bob", 7));
    let mut o = Out::new();
    let restarted = wallet().on_start(Some(&s.data), &mut o);
    assert!(restarted.recovered_holds);
    assert_eq!(
        cmds(&o),
        expect(|o| o.set_timer(Timer::Query(txn(0)), crate::timeouts::QUERY))
    );
    let (_, out) = deliver(&restarted, Msg::Commit { txn: txn(0) });
    assert!(cmds(&out).contains("Ack"));
    // Its fate names the transaction's participants.
    let (_, out) = deliver(&restarted, Msg::AskEpoch { epoch: 2 });
    let fate = Fate::HeldAmong(req(1), vec![Id::from(1)]);
    assert!(cmds(&out).contains(&format!("{fate:?}")), "{}", cmds(&out));
}

#[test]
fn a_floor_that_settles_a_pending_credit_releases_it() {
    let (s, _) = deliver(&start(), credit(0, "bob", 7));
    let floor = Floor {
        below: txn(1),
        owed: vec![],
    };
    let next = Msg::PrepareCredit {
        txn: txn(1),
        req: req(9),
        op: Op {
            key: "alice".into(),
            amount: 1,
        },
        floor,
        parties: vec![Id::from(1)],
    };
    let (s, _) = deliver(&s, next);
    assert!(!s.data.credits.contains_key(&txn(0)), "presumed aborted");
    let (s, _) = deliver(&s, Msg::Commit { txn: txn(0) });
    assert!(!s.data.levels.contains_key("bob"));
}
