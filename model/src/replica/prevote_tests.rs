//! Pre-vote, handler by handler: a follower's timer asks and changes
//! nothing durable; a replica that hears its leader refuses; a
//! pre-candidate that hears its leader follows again.

use crate::replica::tests::{accepted, deliver, fire, follower, id, term};
use crate::replica::*;
use crate::test_util::*;
use stateright::actor::Out;

/// The `Accept` of version 1 by the leader of term 1, replica 0 (its
/// heartbeat carries it again).
fn heartbeat() -> Msg {
    Msg::Accept {
        term: term(1, 0),
        version: 1,
        storage: accepted(term(1, 0), 1, 1).storage,
    }
}

/// Replica 1 of three, a follower of term 1 (replica 0's) that accepted
/// version 1 from its leader's `Accept`.
fn hearing() -> ReplicaState {
    let (s, _) = deliver(1, &follower(term(1, 0), None), 0, heartbeat());
    s
}

#[test]
fn a_follower_whose_timer_fires_asks_for_pre_votes_and_saves_nothing() {
    let before = hearing();
    let (s, out) = fire(1, &before, Timer::Replica);
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.set_timer(Timer::Replica, crate::timeouts::ELECTION);
            o.send(id(0), Msg::PreVote { term: term(2, 1) });
            o.send(id(2), Msg::PreVote { term: term(2, 1) });
        })
    );
    assert_eq!(s.acceptor, before.acceptor);
    assert_eq!(
        s.standing,
        Standing::PreCandidate {
            term: term(2, 1),
            grants: [id(1)].into(),
        }
    );
    // Its timer again: it asks those that have not granted, and only them.
    let (s, _) = deliver(1, &s, 2, Msg::PreVoteGrant { term: term(2, 0) });
    let (_, out) = fire(1, &s, Timer::Replica);
    assert_eq!(
        cmds(&out),
        expect(|o| {
            o.set_timer(Timer::Replica, crate::timeouts::ELECTION);
            o.send(id(0), Msg::PreVote { term: term(2, 1) });
            o.send(id(2), Msg::PreVote { term: term(2, 1) });
        })
    );
}

#[test]
fn a_replica_that_heard_its_leader_refuses_a_pre_vote_until_its_own_timer_fires() {
    let s = hearing();
    let ask = Msg::PreVote { term: term(2, 2) };
    let (same, out) = deliver(1, &s, 2, ask.clone());
    assert_eq!(same, s);
    assert!(out.is_empty());
    let (fired, _) = fire(1, &s, Timer::Replica);
    let (same, out) = deliver(1, &fired, 2, ask);
    assert_eq!(same, fired, "a grant changes nothing");
    let grant = Msg::PreVoteGrant { term: term(2, 2) };
    assert_eq!(cmds(&out), expect(|o| o.send(id(2), grant)));
    // Not for a term at or below its promise, nor from a stranger.
    let (_, out) = deliver(1, &fired, 2, Msg::PreVote { term: term(0, 2) });
    assert!(out.is_empty());
    let (_, out) = deliver(1, &fired, 0, Msg::PreVote { term: term(2, 2) });
    assert!(out.is_empty());
}

#[test]
fn a_pre_candidate_that_hears_its_leader_follows_it_again_with_its_term_unchanged() {
    let (pre, _) = fire(1, &hearing(), Timer::Replica);
    let (s, out) = deliver(1, &pre, 0, heartbeat());
    assert_eq!(s, hearing());
    let ack = Msg::Accepted {
        term: term(1, 0),
        version: 1,
    };
    assert_eq!(cmds(&out), expect(|o| o.send(id(0), ack)));
    // A grant that arrives late counts for nothing.
    let (same, out) = deliver(1, &s, 2, Msg::PreVoteGrant { term: term(2, 1) });
    assert_eq!(same, s);
    assert!(out.is_empty());
}

#[test]
fn a_pre_candidate_follows_a_higher_campaign() {
    let (pre, _) = fire(1, &hearing(), Timer::Replica);
    let (s, _) = deliver(1, &pre, 2, Msg::Campaign { term: term(2, 2) });
    assert_eq!(s.standing, Standing::Follower);
    assert_eq!(s.acceptor.promised, term(2, 2));
}

#[test]
fn a_leader_grants_no_pre_vote() {
    let mut s = follower(term(1, 0), None);
    let r = crate::replica::tests::replica(0);
    r.lead(id(0), &mut s, term(1, 0), None, &mut Out::new());
    let (_, out) = deliver(0, &s, 2, Msg::PreVote { term: term(2, 2) });
    assert!(out.is_empty());
}
