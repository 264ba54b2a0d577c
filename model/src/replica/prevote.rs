//! Pre-vote (Ongaro's thesis, §9.6): a follower whose timer fires first
//! asks the others whether they would promise the next term, and campaigns
//! only if a majority would. See *A leader that is not deposed for nothing*
//! in the docs of [`super`].

use super::*;

impl Replica {
    /// A follower's timer fired: ask the others whether they would promise
    /// the next term (nothing durable changes). With a majority at once
    /// (a group of one), campaign.
    pub(super) fn ask_to_campaign(&self, me: Id, s: &mut ReplicaState, o: &mut Out<Node>) {
        o.set_timer(Timer::Replica, crate::timeouts::ELECTION);
        let term = Self::next_term(me, s);
        s.standing = Standing::PreCandidate {
            term,
            grants: BTreeSet::from([me]),
        };
        o.broadcast(&self.others(me), &Msg::PreVote { term });
        if self.quorum() == 1 {
            self.campaign(me, s, o);
        }
    }

    /// Campaign for the term after the promised one: promise it durably,
    /// ask every other replica for its promise (and lead at once in a group
    /// of one). A pre-candidate does this once a majority granted its
    /// pre-vote; without pre-vote (the checker's `Config::pre_vote` off) as
    /// soon as a follower's timer fires, as twopc did before pre-vote.
    pub fn campaign(&self, me: Id, s: &mut ReplicaState, o: &mut Out<Node>) {
        o.set_timer(Timer::Replica, crate::timeouts::ELECTION);
        let term = Self::next_term(me, s);
        s.acceptor.promised = term;
        o.save(Storage::Replica(s.acceptor.clone()));
        let promises = BTreeMap::from([(me, s.acceptor.accepted.clone())]);
        s.standing = Standing::Candidate { term, promises };
        o.broadcast(&self.others(me), &Msg::Campaign { term });
        if self.quorum() == 1 {
            let adopted = s.acceptor.accepted.clone();
            self.lead(me, s, term, adopted, o);
        }
    }

    /// Whether this replica would promise `term` if it were asked now: it
    /// is above its promise, and its own timer fired since it last followed
    /// anyone (it is a pre-candidate or a candidate itself). Granting binds
    /// it to nothing.
    fn would_promise(&self, state: &ReplicaState, term: Term) -> bool {
        term > state.acceptor.promised
            && matches!(
                state.standing,
                Standing::PreCandidate { .. } | Standing::Candidate { .. }
            )
    }

    /// `PreVote { term }` from `src`: grant it if it would promise `term`
    /// (see [`Replica::would_promise`]); nothing changes either way.
    pub(super) fn on_pre_vote(&self, state: &ReplicaState, src: Id, term: Term, o: &mut Out<Node>) {
        if !self.peers.contains(&src) || term.leader != src {
            return;
        }
        if self.would_promise(state, term) {
            o.send(src, Msg::PreVoteGrant { term });
        }
    }

    /// `PreVoteGrant { term }` from `src`: counted by the pre-candidate for
    /// `term`; with a majority, it campaigns.
    pub(super) fn on_pre_vote_grant(
        &self,
        me: Id,
        state: &mut Cow<ReplicaState>,
        src: Id,
        term: Term,
        o: &mut Out<Node>,
    ) {
        let Standing::PreCandidate { term: mine, grants } = &state.standing else {
            return;
        };
        if *mine != term || !self.peers.contains(&src) || grants.contains(&src) {
            return;
        }
        let s = state.to_mut();
        let Standing::PreCandidate { grants, .. } = &mut s.standing else {
            unreachable!("checked above")
        };
        grants.insert(src);
        if grants.len() >= self.quorum() {
            self.campaign(me, s, o);
        }
    }

    /// An `Accept` of its promised term, just accepted (or acknowledged):
    /// the leader it follows is alive, and a pre-candidate follows again.
    pub(super) fn heard_from_leader(&self, state: &mut Cow<ReplicaState>) {
        if matches!(state.standing, Standing::PreCandidate { .. }) {
            state.to_mut().standing = Standing::Follower;
        }
    }
}

#[cfg(test)]
#[path = "prevote_tests.rs"]
mod tests;
