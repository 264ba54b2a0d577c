//! Handler tests of [`super`]: a replica of three (ids 0, 1, 2) fed one
//! event at a time, with the exact commands out and the state after. (A
//! replica without its disk: `recovery_tests.rs`.)

use super::*;
use crate::test_util::*;
use crate::CoordStorage;

pub(crate) const WALLET: u64 = 10;
pub(crate) const ORDER: u64 = 11;
pub(crate) const CLIENT: u64 = 12;

pub(crate) fn id(n: u64) -> Id {
    Id::from(n as usize)
}

/// Replica `index` of three.
pub(crate) fn replica(index: usize) -> Replica {
    Replica {
        coordinator: Coordinator {
            wallet: id(WALLET),
            order: id(ORDER),
            retention: 2,
            prices: false,
            one_write: false,
        },
        peers: vec![id(0), id(1), id(2)],
        index,
        incarnation: 0,
    }
}

pub(crate) fn term(n: u64, leader: u64) -> Term {
    Term {
        n,
        leader: id(leader),
    }
}

/// A coordinator's durable state at `epoch`, nothing else in it.
pub(crate) fn coord_at(epoch: u64) -> CoordStorage {
    CoordStorage {
        epoch,
        ..Default::default()
    }
}

pub(crate) fn accepted(t: Term, version: u64, epoch: u64) -> Accepted {
    Accepted {
        term: t,
        version,
        storage: coord_at(epoch),
    }
}

/// A follower that promised `promised` and accepted `accepted`.
pub(crate) fn follower(promised: Term, accepted: Option<Accepted>) -> ReplicaState {
    ReplicaState {
        acceptor: ReplicaStorage { promised, accepted },
        standing: Standing::Follower,
    }
}

pub(crate) fn deliver(
    index: usize,
    state: &ReplicaState,
    src: u64,
    msg: Msg,
) -> (ReplicaState, Out<Node>) {
    let mut cow = Cow::Borrowed(state);
    let mut o = Out::new();
    replica(index).on_msg(id(index as u64), &mut cow, id(src), msg, &mut o);
    (cow.into_owned(), o)
}

pub(crate) fn fire(index: usize, state: &ReplicaState, timer: Timer) -> (ReplicaState, Out<Node>) {
    let mut cow = Cow::Borrowed(state);
    let mut o = Out::new();
    replica(index).on_timeout(id(index as u64), &mut cow, &timer, &mut o);
    (cow.into_owned(), o)
}

fn acceptor(promised: Term, accepted: Option<Accepted>) -> Storage {
    Storage::Replica(ReplicaStorage { promised, accepted })
}

/// Replica 0, which accepted version 2 of term 1 (epoch 1) and promised
/// term 1, campaigning for term 2 after its timer fired and replica 1
/// granted its pre-vote.
fn candidate() -> ReplicaState {
    let (s, _) = fire(
        0,
        &follower(term(1, 1), Some(accepted(term(1, 1), 2, 1))),
        Timer::Replica,
    );
    let grant = Msg::PreVoteGrant { term: term(2, 0) };
    deliver(0, &s, 1, grant).0
}

/// Replica 0 leading term 2, with the state of epoch 3 (version 1 of its
/// term, its epoch bump) accepted by itself alone: nothing chosen yet.
fn leader() -> ReplicaState {
    let promise = Msg::Promise {
        term: term(2, 0),
        accepted: Some(accepted(term(1, 1), 3, 2)),
    };
    deliver(0, &candidate(), 2, promise).0
}

fn leading(s: &ReplicaState) -> &Leading {
    s.leading().expect("leads")
}

#[test]
fn a_pre_candidate_with_a_majority_of_grants_campaigns_for_the_next_term_with_its_own_promise() {
    let mine = accepted(term(1, 1), 2, 1);
    let (s, _) = fire(0, &follower(term(1, 1), Some(mine.clone())), Timer::Replica);
    let grant = Msg::PreVoteGrant { term: term(2, 0) };
    let (s, out) = deliver(0, &s, 2, grant);
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.set_timer(Timer::Replica, crate::timeouts::ELECTION);
            o.save(acceptor(term(2, 0), Some(mine.clone())));
            o.send(id(1), Msg::Campaign { term: term(2, 0) });
            o.send(id(2), Msg::Campaign { term: term(2, 0) });
        })
    );
    let promises = BTreeMap::from([(id(0), Some(mine))]);
    assert_eq!(
        s.standing,
        Standing::Candidate {
            term: term(2, 0),
            promises
        }
    );
    // Its timer again: it asks those that have not promised, and only them.
    let (_, out) = fire(0, &s, Timer::Replica);
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.set_timer(Timer::Replica, crate::timeouts::ELECTION);
            o.send(id(1), Msg::Campaign { term: term(2, 0) });
            o.send(id(2), Msg::Campaign { term: term(2, 0) });
        })
    );
}

#[test]
fn a_campaign_above_the_promise_is_promised_durably_with_what_was_accepted() {
    let mine = Some(accepted(term(1, 1), 2, 1));
    let (s, out) = deliver(
        1,
        &follower(term(1, 1), mine.clone()),
        2,
        Msg::Campaign { term: term(2, 2) },
    );
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.save(acceptor(term(2, 2), mine.clone()));
            o.send(
                id(2),
                Msg::Promise {
                    term: term(2, 2),
                    accepted: mine.clone(),
                },
            );
        })
    );
    assert_eq!(s, follower(term(2, 2), mine.clone()));
    // The same campaign again: promised again, nothing saved.
    let (again, out) = deliver(1, &s, 2, Msg::Campaign { term: term(2, 2) });
    assert_eq!(again, s);
    let promise = Msg::Promise {
        term: term(2, 2),
        accepted: mine,
    };
    assert_eq!(cmds(&out), expect(|o| o.send(id(2), promise)));
}

#[test]
fn a_campaign_below_the_promise_is_refused_and_one_not_by_its_owner_ignored() {
    let s = follower(term(2, 2), None);
    let (same, out) = deliver(1, &s, 0, Msg::Campaign { term: term(1, 0) });
    assert_eq!(same, s);
    let nack = Msg::Nack {
        promised: term(2, 2),
    };
    assert_eq!(cmds(&out), expect(|o| o.send(id(0), nack)));
    // A campaign for a term another replica owns: from nobody we follow.
    let (same, out) = deliver(1, &s, 0, Msg::Campaign { term: term(3, 2) });
    assert_eq!(same, s);
    assert!(out.is_empty());
}

#[test]
fn a_majority_of_promises_makes_a_leader_that_adopts_the_highest_state_and_replicates_its_start() {
    let promise = Msg::Promise {
        term: term(2, 0),
        accepted: Some(accepted(term(1, 1), 3, 2)),
    };
    let (s, out) = deliver(0, &candidate(), 2, promise);
    // The coordinator restarts from epoch 2's state (the higher of the two
    // promises): epoch 3, saved as version 1 of term 2, sent to both others.
    let first = accepted(term(2, 0), 1, 3);
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.set_timer(Timer::Replica, crate::timeouts::HEARTBEAT);
            o.save(acceptor(term(2, 0), Some(first.clone())));
            let accept = Msg::Accept {
                term: term(2, 0),
                version: 1,
                storage: first.storage.clone(),
            };
            o.send(id(1), accept.clone());
            o.send(id(2), accept);
        })
    );
    let l = leading(&s);
    assert_eq!((l.term, l.version, l.chosen), (term(2, 0), 1, 0));
    assert_eq!(l.coord.epoch, 3);
    assert_eq!(l.acks, BTreeMap::from([(id(0), 1)]));
}

#[test]
fn a_promise_for_another_term_or_counted_already_is_ignored() {
    let c = candidate();
    let other = Msg::Promise {
        term: term(3, 0),
        accepted: None,
    };
    let (same, out) = deliver(0, &c, 2, other);
    assert_eq!((same, out.is_empty()), (c.clone(), true));
    // Its own promise is counted already.
    let own = Msg::Promise {
        term: term(2, 0),
        accepted: None,
    };
    let (same, out) = deliver(0, &c, 0, own);
    assert_eq!((same, out.is_empty()), (c, true));
}

#[test]
fn an_accept_of_the_promised_term_is_saved_then_acknowledged() {
    let s = follower(term(2, 0), Some(accepted(term(1, 1), 2, 1)));
    let new = accepted(term(2, 0), 1, 3);
    let accept = Msg::Accept {
        term: term(2, 0),
        version: 1,
        storage: new.storage.clone(),
    };
    let (s, out) = deliver(1, &s, 0, accept.clone());
    let ack = Msg::Accepted {
        term: term(2, 0),
        version: 1,
    };
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.save(acceptor(term(2, 0), Some(new.clone())));
            o.send(id(0), ack.clone());
        })
    );
    assert_eq!(s, follower(term(2, 0), Some(new)));
    // The same accept again (a heartbeat): acknowledged, nothing saved.
    let (same, out) = deliver(1, &s, 0, accept);
    assert_eq!(same, s);
    assert_eq!(cmds(&out), expect(|o| o.send(id(0), ack)));
}

#[test]
fn an_accept_of_a_higher_term_promises_it_and_deposes_a_leader() {
    let new = accepted(term(3, 2), 1, 4);
    let accept = Msg::Accept {
        term: term(3, 2),
        version: 1,
        storage: new.storage.clone(),
    };
    let (s, out) = deliver(0, &leader(), 2, accept);
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.save(acceptor(term(3, 2), Some(new.clone())));
            let ack = Msg::Accepted {
                term: term(3, 2),
                version: 1,
            };
            o.send(id(2), ack);
        })
    );
    assert_eq!(s, follower(term(3, 2), Some(new)));
}

#[test]
fn an_accept_below_the_promise_is_refused_and_an_older_one_acknowledged_with_the_newer() {
    let mine = accepted(term(2, 0), 3, 3);
    let s = follower(term(2, 0), Some(mine));
    let old = |t, version| Msg::Accept {
        term: t,
        version,
        storage: coord_at(1),
    };
    let (same, out) = deliver(1, &s, 2, old(term(1, 2), 5));
    assert_eq!(same, s);
    let nack = Msg::Nack {
        promised: term(2, 0),
    };
    assert_eq!(cmds(&out), expect(|o| o.send(id(2), nack)));
    // Version 2 of the promised term, after version 3: nothing saved, the
    // acknowledgement says 3.
    let (same, out) = deliver(1, &s, 0, old(term(2, 0), 2));
    assert_eq!(same, s);
    let ack = Msg::Accepted {
        term: term(2, 0),
        version: 3,
    };
    assert_eq!(cmds(&out), expect(|o| o.send(id(0), ack)));
}

#[test]
fn a_leaders_output_waits_for_its_save_to_be_chosen_and_an_acceptance_releases_it() {
    // A purchase without a ticket is answered with one: held, since
    // version 1 (the epoch bump) is not chosen yet.
    let ask = Msg::Purchase {
        req: req(1),
        purchase: crate::coordinator::tests::contents(1),
        ticket: None,
    };
    let (s, out) = deliver(0, &leader(), CLIENT, ask);
    assert!(out.is_empty(), "{out:?}");
    let held = leading(&s).held.clone();
    assert_eq!(held.len(), 1);
    assert_eq!((held[0].version, held[0].dst), (1, id(CLIENT)));
    assert!(matches!(held[0].msg, Msg::Status { .. }));
    // A backup's acceptance makes a majority: version 1 is chosen and the
    // answer leaves.
    let ack = Msg::Accepted {
        term: term(2, 0),
        version: 1,
    };
    let (s, out) = deliver(0, &s, 2, ack.clone());
    assert_eq!(
        cmds(&out),
        expect(|o| o.send(id(CLIENT), held[0].msg.clone()))
    );
    let l = leading(&s);
    assert_eq!((l.chosen, l.held.len()), (1, 0));
    assert!(l.acks.is_empty(), "chosen acks are forgotten: {:?}", l.acks);
    // The same acceptance again, or from the other backup: chosen already.
    for src in [2, 1] {
        let (same, out) = deliver(0, &s, src, ack.clone());
        assert_eq!((same, out.is_empty()), (s.clone(), true));
    }
}

#[test]
fn a_leaders_heartbeat_is_its_latest_state_again() {
    let (s, out) = fire(0, &leader(), Timer::Replica);
    assert_eq!(s, leader());
    let latest = accepted(term(2, 0), 1, 3);
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.set_timer(Timer::Replica, crate::timeouts::HEARTBEAT);
            let accept = Msg::Accept {
                term: term(2, 0),
                version: 1,
                storage: latest.storage,
            };
            o.send(id(1), accept.clone());
            o.send(id(2), accept);
        })
    );
}

#[test]
fn a_nack_with_a_higher_promise_deposes_the_leader_durably() {
    let nack = Msg::Nack {
        promised: term(3, 1),
    };
    let (s, out) = deliver(0, &leader(), 1, nack.clone());
    let mine = leader().acceptor.accepted;
    assert_eq!(
        cmds(&out),
        expect(|o| o.save(acceptor(term(3, 1), mine.clone())))
    );
    assert_eq!(s, follower(term(3, 1), mine));
    // A lower or equal one changes nothing.
    let (same, out) = deliver(0, &s, 1, nack);
    assert_eq!((same, out.is_empty()), (s, true));
}

#[test]
fn a_follower_ignores_the_coordinators_traffic_and_answers_a_recovery_question() {
    let s = follower(term(2, 0), Some(accepted(term(2, 0), 1, 3)));
    let ask = Msg::Purchase {
        req: req(1),
        purchase: crate::coordinator::tests::contents(1),
        ticket: None,
    };
    let (same, out) = deliver(1, &s, CLIENT, ask);
    assert_eq!((same, out.is_empty()), (s.clone(), true));
    let (same, out) = deliver(1, &s, 2, Msg::Recover { nonce: 5 });
    assert_eq!(same, s);
    let reply = Msg::RecoverReply {
        nonce: 5,
        acceptor: Some(s.acceptor.clone()),
    };
    assert_eq!(cmds(&out), expect(|o| o.send(id(2), reply)));
    // A stale answer to a question it no longer asks: nothing.
    let stale = Msg::RecoverReply {
        nonce: 0,
        acceptor: None,
    };
    let (same, out) = deliver(1, &s, 2, stale);
    assert_eq!((same, out.is_empty()), (s, true));
}

#[test]
fn an_operators_decision_on_a_doubt_is_replicated_before_it_leaves() {
    // A leader whose adopted state holds a transaction in doubt.
    let doubt = TxnId { epoch: 1, n: 4 };
    let mut storage = coord_at(2);
    storage.doubts.insert(doubt, req(4));
    let promise = Msg::Promise {
        term: term(2, 0),
        accepted: Some(Accepted {
            term: term(1, 1),
            version: 3,
            storage,
        }),
    };
    let (s, _) = deliver(0, &candidate(), 2, promise);
    let decide = |s: &ReplicaState, t: TxnId| {
        let mut cow = Cow::Borrowed(s);
        let mut o = Out::new();
        let decided = replica(0).decide_in_doubt(id(0), &mut cow, t, true, &mut o);
        (decided, cow.into_owned(), o)
    };
    let (decided, after, out) = decide(&s, doubt);
    assert!(decided);
    // Version 2: the doubt is now an owed commit; the commits wait for it.
    let l = leading(&after);
    let saved = l.coord.storage();
    assert!(saved.commits.contains_key(&doubt) && !saved.doubts.contains_key(&doubt));
    assert_eq!(
        cmds(&out),
        expect(|o| {
            let v2 = accepted(term(2, 0), 2, 0);
            let v2 = Accepted {
                storage: saved.clone(),
                ..v2
            };
            o.save(acceptor(term(2, 0), Some(v2)));
            let accept = Msg::Accept {
                term: term(2, 0),
                version: 2,
                storage: saved.clone(),
            };
            o.send(id(1), accept.clone());
            o.send(id(2), accept);
            o.set_timer(Timer::Resend(doubt), crate::timeouts::RESEND);
        })
    );
    let waiting: Vec<_> = l.held.iter().map(|h| (h.version, h.dst)).collect();
    assert_eq!(waiting, vec![(2, id(WALLET)), (2, id(ORDER))]);
    // Not in doubt (any more), or not leading: nothing, and false.
    let (decided, same, out) = decide(&after, doubt);
    assert_eq!((decided, same, out.is_empty()), (false, after, true));
    let f = follower(term(2, 0), None);
    let (decided, same, out) = decide(&f, doubt);
    assert_eq!((decided, same, out.is_empty()), (false, f, true));
}
