//! The Paxos mutants of the replicated coordinator: an acceptor or a
//! candidate that breaks one rule of the ballots (see the module docs of
//! `twopc_model::replica`). Each is caught, exhaustively, in the
//! `competing-leaders` entry of the CI matrix (an early campaign while the
//! first leader is up, and that leader's crash).

use super::{Checked, Mutant};
use stateright::actor::{Actor, Command, Id, Out};
use std::borrow::Cow;
use twopc_model::{Accepted, Msg, Node, Standing, State, Storage, Term};

impl Checked {
    /// Delivers `msg` to a replica as its Paxos mutant would handle it.
    /// Returns the message back, untouched, if the mutant has nothing to
    /// do with it (the production handler then runs).
    pub(super) fn receive_paxos(
        &self,
        id: Id,
        state: &mut Cow<State>,
        src: Id,
        msg: Msg,
        out: &mut Out<Node>,
    ) -> Option<Msg> {
        let (Node::Replica(r), State::Replica(now)) = (&self.node, &**state) else {
            return Some(msg);
        };
        if matches!(now.standing, Standing::Recovering { .. }) || !r.peers.contains(&src) {
            return Some(msg);
        }
        let promised = now.acceptor.promised;
        match (self.mutant, &msg) {
            // An accept from a lower term than it promised is accepted as
            // if it had promised nothing higher (and its promise kept).
            (Some(Mutant::AcceptBelowPromise), Msg::Accept { term, .. })
                if *term < promised && term.leader == src =>
            {
                let lowered = *term;
                self.as_if_promised(id, state, lowered, src, msg, out);
                None
            }
            // The promise that makes a majority: every promise that reported
            // a state reports the one of the lowest (term, version) instead,
            // so the new leader adopts the oldest state reported, not the
            // latest.
            (Some(Mutant::AdoptLowestBallot), Msg::Promise { term, accepted }) => {
                let Standing::Candidate {
                    term: mine,
                    promises,
                } = &now.standing
                else {
                    return Some(msg);
                };
                if mine != term || promises.contains_key(&src) || promises.len() + 1 < r.quorum() {
                    return Some(msg);
                }
                let rank = |a: &Accepted| (a.term, a.version);
                let lowest = promises
                    .values()
                    .flatten()
                    .chain(accepted)
                    .min_by_key(|a| rank(a))
                    .cloned();
                let Some(lowest) = lowest else {
                    return Some(msg);
                };
                let State::Replica(s) = state.to_mut() else {
                    unreachable!("matched above")
                };
                if let Standing::Candidate { promises, .. } = &mut s.standing {
                    for a in promises.values_mut().flatten() {
                        *a = lowest.clone();
                    }
                }
                let msg = Msg::Promise {
                    term: *term,
                    accepted: accepted.as_ref().map(|_| lowest),
                };
                self.node.on_msg(id, state, src, msg, out);
                None
            }
            _ => Some(msg),
        }
    }

    /// `ElectedWithoutMajority`: a candidate that holds only its own
    /// promise hears at once that another replica promised, with nothing
    /// accepted.
    pub(super) fn imagine_promise(&self, id: Id, state: &mut Cow<State>, out: &mut Out<Node>) {
        let (Some(Mutant::ElectedWithoutMajority), Node::Replica(r)) = (self.mutant, &self.node)
        else {
            return;
        };
        let State::Replica(now) = &**state else {
            return;
        };
        let Standing::Candidate { term, promises } = &now.standing else {
            return;
        };
        if promises.len() != 1 {
            return;
        }
        let term = *term;
        if let Some(from) = r.peers.iter().find(|p| !promises.contains_key(p)) {
            let imagined = Msg::Promise {
                term,
                accepted: None,
            };
            self.node.on_msg(id, state, *from, imagined, out);
        }
    }

    /// `AcceptBelowPromise`: deliver `msg` (an accept of term `lowered`) to
    /// an acceptor that had promised only `lowered`, then put its promise
    /// back (in its state and in what it saves).
    fn as_if_promised(
        &self,
        id: Id,
        state: &mut Cow<State>,
        lowered: Term,
        src: Id,
        msg: Msg,
        out: &mut Out<Node>,
    ) {
        let State::Replica(s) = state.to_mut() else {
            unreachable!("a replica's state")
        };
        let kept = s.acceptor.promised;
        s.acceptor.promised = lowered;
        self.node.on_msg(id, state, src, msg, out);
        let State::Replica(s) = state.to_mut() else {
            unreachable!("a replica's state")
        };
        s.acceptor.promised = kept;
        let acceptor = s.acceptor.clone();
        *out = std::mem::take(out)
            .into_iter()
            .map(|c| match c {
                Command::Save(Storage::Replica(_)) => {
                    Command::Save(Storage::Replica(acceptor.clone()))
                }
                other => other,
            })
            .collect();
    }
}
