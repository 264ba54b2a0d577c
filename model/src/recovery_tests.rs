//! Handler tests of [`super`]: a replica without its disk, fed one event at
//! a time, with the exact commands out.

use super::*;
use crate::test_util::*;
use crate::CoordStorage;

const NONCE: u64 = 7;

fn id(n: u64) -> Id {
    Id::from(n as usize)
}

/// Replica `index` of three (ids 0, 1, 2), in incarnation `NONCE`.
fn replica(index: usize) -> Replica {
    Replica {
        coordinator: Coordinator {
            wallet: id(10),
            order: id(11),
            retention: 2,
            prices: false,
            one_write: false,
        },
        peers: vec![id(0), id(1), id(2)],
        index,
        incarnation: NONCE,
    }
}

fn term(n: u64, leader: u64) -> Term {
    Term {
        n,
        leader: id(leader),
    }
}

fn accepted(t: Term, version: u64, epoch: u64) -> Accepted {
    let storage = CoordStorage {
        epoch,
        ..Default::default()
    };
    Accepted {
        term: t,
        version,
        storage,
    }
}

fn acceptor(promised: Term, accepted: Option<Accepted>) -> ReplicaStorage {
    ReplicaStorage { promised, accepted }
}

/// Replica `index` started without storage, and what it did.
fn start(index: usize) -> (ReplicaState, Out<Node>) {
    let mut o = Out::new();
    let state = replica(index).on_start(id(index as u64), None, &mut o);
    (state, o)
}

fn deliver(index: usize, state: &ReplicaState, src: u64, msg: Msg) -> (ReplicaState, Out<Node>) {
    let mut cow = Cow::Borrowed(state);
    let mut o = Out::new();
    replica(index).on_msg(id(index as u64), &mut cow, id(src), msg, &mut o);
    (cow.into_owned(), o)
}

fn reply(acceptor: Option<ReplicaStorage>) -> Msg {
    Msg::RecoverReply {
        nonce: NONCE,
        acceptor,
    }
}

#[test]
fn a_replica_without_storage_asks_every_other_replica_and_votes_for_nobody() {
    let (state, o) = start(1);
    assert_eq!(
        cmds(&o),
        expect(|o| {
            o.set_timer(Timer::Replica, crate::timeouts::RECOVER);
            o.send(id(0), Msg::Recover { nonce: NONCE });
            o.send(id(2), Msg::Recover { nonce: NONCE });
        })
    );
    assert!(matches!(state.standing, Standing::Recovering { .. }));
    // No promise, no accept, not even a refusal; no coordinator traffic.
    for msg in [
        Msg::Campaign { term: term(1, 2) },
        Msg::Accept {
            term: term(0, 0),
            version: 1,
            storage: CoordStorage::default(),
        },
        Msg::Nack {
            promised: term(3, 2),
        },
        Msg::Lookup { req: req(1) },
    ] {
        let (after, o) = deliver(1, &state, 2, msg.clone());
        assert_eq!(cmds(&o), "[]", "{msg:?}");
        assert_eq!(after, state, "{msg:?}");
    }
}

#[test]
fn it_adopts_the_highest_promise_and_the_highest_accepted_state_once_every_other_replica_answered()
{
    let (state, _) = start(1);
    // The first answer is not enough (a majority of three counting itself
    // would be, but it counts for nothing: it forgot).
    let (state, o) = deliver(
        1,
        &state,
        0,
        reply(Some(acceptor(term(2, 0), Some(accepted(term(1, 2), 5, 2))))),
    );
    assert_eq!(cmds(&o), "[]");
    assert!(matches!(state.standing, Standing::Recovering { .. }));
    // The second: the higher term's state wins over the higher version, the
    // higher promise over the lower.
    let (state, o) = deliver(
        1,
        &state,
        2,
        reply(Some(acceptor(term(1, 2), Some(accepted(term(2, 0), 1, 3))))),
    );
    let adopted = acceptor(term(2, 0), Some(accepted(term(2, 0), 1, 3)));
    assert_eq!(
        cmds(&o),
        expect(|o| {
            o.save(Storage::Replica(adopted.clone()));
            o.set_timer(Timer::Replica, crate::timeouts::ELECTION);
        })
    );
    assert_eq!(state.acceptor, adopted);
    assert_eq!(state.standing, Standing::Follower);
    // Now it votes: a campaign below its adopted promise is refused.
    let (_, o) = deliver(1, &state, 2, Msg::Campaign { term: term(1, 2) });
    assert_eq!(
        cmds(&o),
        expect(|o| o.send(
            id(2),
            Msg::Nack {
                promised: term(2, 0)
            }
        ))
    );
}

#[test]
fn answers_to_another_incarnation_from_strangers_or_counted_twice_do_not_count() {
    let (state, _) = start(1);
    let stale = Msg::RecoverReply {
        nonce: NONCE + 1,
        acceptor: None,
    };
    for (src, msg) in [(0, stale), (9, reply(None)), (1, reply(None))] {
        let (after, o) = deliver(1, &state, src, msg.clone());
        assert_eq!(cmds(&o), "[]", "{msg:?} from {src}");
        assert_eq!(after, state, "{msg:?} from {src}");
    }
    let (once, _) = deliver(1, &state, 0, reply(None));
    let (twice, o) = deliver(1, &once, 0, reply(None));
    assert_eq!(cmds(&o), "[]");
    assert_eq!(twice, once);
}

#[test]
fn the_first_replica_leads_the_first_term_when_nobody_holds_anything() {
    let r = replica(0);
    let (state, _) = start(0);
    // One answers recovering itself, the other recovered with nothing.
    let (state, _) = deliver(0, &state, 1, reply(None));
    let (state, o) = deliver(0, &state, 2, reply(Some(acceptor(r.first_term(), None))));
    let nothing = acceptor(r.first_term(), None);
    let mut leading = ReplicaState {
        acceptor: nothing.clone(),
        standing: Standing::Follower,
    };
    let mut lead = Out::new();
    r.lead(id(0), &mut leading, r.first_term(), None, &mut lead);
    let mut expected = Out::new();
    expected.save(Storage::Replica(nothing));
    assert_eq!(
        cmds(&o),
        format!("{}{}", cmds(&expected), cmds(&lead)).replace("][", ", ")
    );
    assert_eq!(state, leading);
    assert!(state.leading().is_some_and(|l| l.term == r.first_term()));
}

#[test]
fn the_first_replica_does_not_lead_the_first_term_again_when_someone_accepted_anything() {
    let r = replica(0);
    let (state, _) = start(0);
    let (state, _) = deliver(0, &state, 1, reply(None));
    let held = acceptor(r.first_term(), Some(accepted(r.first_term(), 1, 1)));
    let (state, o) = deliver(0, &state, 2, reply(Some(held.clone())));
    assert_eq!(
        cmds(&o),
        expect(|o| {
            o.save(Storage::Replica(held.clone()));
            o.set_timer(Timer::Replica, crate::timeouts::ELECTION);
        })
    );
    assert_eq!(state.standing, Standing::Follower);
    assert_eq!(state.acceptor, held);
}

#[test]
fn every_replica_answers_a_recovery_question_the_recovering_ones_with_nothing() {
    let held = acceptor(term(1, 2), Some(accepted(term(1, 2), 4, 2)));
    let follower = ReplicaState {
        acceptor: held.clone(),
        standing: Standing::Follower,
    };
    let (after, o) = deliver(1, &follower, 0, Msg::Recover { nonce: 3 });
    assert_eq!(
        cmds(&o),
        expect(|o| o.send(
            id(0),
            Msg::RecoverReply {
                nonce: 3,
                acceptor: Some(held.clone())
            }
        ))
    );
    assert_eq!(after, follower);
    let (recovering, _) = start(1);
    let (after, o) = deliver(1, &recovering, 0, Msg::Recover { nonce: 3 });
    assert_eq!(
        cmds(&o),
        expect(|o| o.send(
            id(0),
            Msg::RecoverReply {
                nonce: 3,
                acceptor: None
            }
        ))
    );
    assert_eq!(after, recovering);
    // Not from a stranger; and a late answer to a replica that has
    // recovered changes nothing.
    let (_, o) = deliver(1, &follower, 9, Msg::Recover { nonce: 3 });
    assert_eq!(cmds(&o), "[]");
    let (after, o) = deliver(1, &follower, 0, reply(None));
    assert_eq!(cmds(&o), "[]");
    assert_eq!(after, follower);
}

#[test]
fn the_recovery_timer_asks_again_only_those_that_have_not_answered() {
    let (state, _) = start(1);
    let (state, _) = deliver(1, &state, 2, reply(None));
    let mut cow = Cow::Borrowed(&state);
    let mut o = Out::new();
    replica(1).on_timeout(id(1), &mut cow, &Timer::Replica, &mut o);
    assert_eq!(
        cmds(&o),
        expect(|o| {
            o.set_timer(Timer::Replica, crate::timeouts::RECOVER);
            o.send(id(0), Msg::Recover { nonce: NONCE });
        })
    );
    assert!(matches!(cow, Cow::Borrowed(_)), "asking changes nothing");
}

#[test]
fn a_replica_alone_has_nobody_to_ask() {
    let r = Replica {
        peers: vec![id(0)],
        ..replica(0)
    };
    let mut o = Out::new();
    let state = r.on_start(id(0), None, &mut o);
    assert!(state.leading().is_some_and(|l| l.term == r.first_term()));
    let save = expect(|o| o.save(Storage::Replica(acceptor(r.first_term(), None))));
    assert!(
        cmds(&o).starts_with(save.trim_end_matches(']')),
        "{}",
        cmds(&o)
    );
}
