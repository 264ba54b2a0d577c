//! [`Replica::ignores`], [`Replica::only_answers`] and
//! [`Replica::ignores_once_restarted`] paired with the handlers they
//! describe: over the states replica 0 of three reaches in a few steps
//! (campaigns, promises, accepts, timers), whatever they say is ignored
//! changes nothing when delivered (and sends nothing, or only to its
//! sender), and is still ignored after any further step that the system
//! allows. A rule made too eager fails here.

use super::*;
use crate::replica::tests::{accepted, deliver, fire, follower, id, replica, term};
use std::collections::BTreeSet;

const ME: usize = 0;

/// Every message replica 0 may be sent by replica `src` (1 or 2) or by
/// itself, over terms 1 and 2 of each owner and versions 1 and 2.
/// (Steps include grants, so that pre-candidates campaign.)
fn messages() -> Vec<(u64, Msg)> {
    let mut all = vec![];
    for n in 1..=2 {
        for owner in 0..3 {
            let t = term(n, owner);
            for src in 0..3 {
                all.push((src, Msg::Nack { promised: t }));
                all.push((
                    src,
                    Msg::Promise {
                        term: t,
                        accepted: None,
                    },
                ));
                let prior = Some(accepted(term(1, 1), 1, 1));
                all.push((
                    src,
                    Msg::Promise {
                        term: t,
                        accepted: prior,
                    },
                ));
                for version in 1..=2 {
                    all.push((src, Msg::Accepted { term: t, version }));
                }
                all.push((src, Msg::PreVoteGrant { term: t }));
            }
            all.push((owner, Msg::PreVote { term: t }));
            all.push((owner, Msg::Campaign { term: t }));
            for version in 1..=2 {
                let storage = accepted(t, version, n).storage;
                let accept = Msg::Accept {
                    term: t,
                    version,
                    storage,
                };
                all.push((owner, accept));
            }
        }
    }
    all
}

/// Whether the system can have `msg` from `src` in flight to replica 0 in
/// `state`: not from itself (a replica sends to the others); a promise is
/// for a term it campaigned for, hence one it promised (at most
/// its promise); an acceptance is for a term it led (not one it still
/// campaigns for), of a version it wrote.
fn plausible(state: &ReplicaState, src: u64, msg: &Msg) -> bool {
    if src == ME as u64 {
        return false;
    }
    let mine = |t: &Term| t.leader == id(ME as u64) && *t <= state.acceptor.promised;
    match msg {
        Msg::Promise { term, .. } => mine(term),
        // A grant is for a term it asked for: the one after a promise.
        Msg::PreVoteGrant { term } => {
            term.leader == id(ME as u64) && term.n <= state.acceptor.promised.n + 1
        }
        Msg::Accepted { term, version } => {
            mine(term)
                && match &state.standing {
                    Standing::Candidate { term: t, .. } => t != term,
                    Standing::Leader(l) => l.term != *term || *version <= l.version,
                    Standing::Follower
                    | Standing::PreCandidate { .. }
                    | Standing::Recovering { .. } => true,
                }
        }
        _ => true,
    }
}

/// A step the system may take at replica 0: a plausible delivery, or its
/// replica timer.
fn steps(state: &ReplicaState) -> Vec<ReplicaState> {
    let mut next: Vec<ReplicaState> = messages()
        .into_iter()
        .filter(|(src, m)| plausible(state, *src, m))
        .map(|(src, m)| deliver(ME, state, src, m).0)
        .collect();
    next.push(fire(ME, state, Timer::Replica).0);
    next
}

/// Every state within five steps of a follower of the first term, and of
/// one that accepted version 1 of term 1.
fn states() -> Vec<ReplicaState> {
    let starts = [
        follower(term(0, 0), None),
        follower(term(1, 1), Some(accepted(term(1, 1), 1, 1))),
    ];
    let mut seen: BTreeSet<String> = starts.iter().map(|s| format!("{s:?}")).collect();
    let (mut all, mut frontier) = (starts.to_vec(), starts.to_vec());
    for _ in 0..5 {
        let mut next = Vec::new();
        for s in &frontier {
            for after in steps(s) {
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

type Rule = fn(&Replica, &ReplicaState, Id, &Msg) -> bool;

/// Judges `rule` against the handler over every state and message: a
/// message it holds changes nothing, sends nothing (or, if `to_sender`,
/// only to its sender), and, when the system can have it in flight, is
/// still held after any further step and after a restart. Returns how many
/// it held.
fn judge(rule: Rule, to_sender: bool) -> usize {
    let r = replica(ME);
    let states = states();
    assert!(states.len() > 60, "{} states", states.len());
    let mut held = 0;
    for s in &states {
        for (src, m) in messages() {
            if !rule(&r, s, id(src), &m) {
                continue;
            }
            held += 1;
            let (after, out) = deliver(ME, s, src, m.clone());
            assert_eq!(&after, s, "{m:?} from {src} changed {s:?}");
            let sent_back = |c: &Command<Msg, Timer, (), Storage>| {
                to_sender && matches!(c, Command::Send(dst, _) if *dst == id(src))
            };
            assert!(out.iter().all(sent_back), "{m:?} to {s:?}: {out:?}");
            if !plausible(s, src, &m) {
                continue;
            }
            for later in steps(s) {
                assert!(
                    rule(&r, &later, id(src), &m),
                    "{m:?} live again in {later:?}"
                );
            }
            let restarted = r.on_start(id(ME as u64), Some(&s.acceptor), &mut Out::new());
            assert!(
                rule(&r, &restarted, id(src), &m),
                "{m:?} live after a restart"
            );
        }
    }
    held
}

#[test]
fn what_a_replica_ignores_changes_nothing_and_sends_nothing_now_or_later() {
    let held = judge(Replica::ignores, false);
    assert!(held > 5_000, "{held}");
}

#[test]
fn what_only_answers_the_sender_changes_nothing_and_goes_to_the_sender_alone() {
    let held = judge(Replica::only_answers, true);
    assert!(held > 5_000, "{held}");
}

/// What a down replica ignores once it restarts: whatever standing it had,
/// it restarts following, and a follower ignores them.
#[test]
fn what_a_restart_makes_a_replica_ignore_a_follower_ignores() {
    let r = replica(ME);
    let mut judged = 0;
    for s in states() {
        let restarted = r.on_start(id(ME as u64), Some(&s.acceptor), &mut Out::new());
        assert_eq!(restarted.standing, Standing::Follower);
        for (src, m) in messages() {
            if Replica::ignores_once_restarted(&m) {
                let (after, out) = deliver(ME, &restarted, src, m.clone());
                assert_eq!((&after, out.is_empty()), (&restarted, true), "{m:?}");
                judged += 1;
            }
        }
    }
    assert!(judged > 1000, "{judged}");
}
