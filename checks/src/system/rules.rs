//! The environment's rules: which crashes, restarts and timeouts the
//! configuration allows in a state (the restart budget, the eventual leader
//! detector that says when a follower may campaign).

use super::{coordinator, replicas, SysAction, SysState, TwopcModel};
use crate::config::{Protocol, Role};
use stateright::actor::ActorModelAction;
use twopc_model::*;

impl TwopcModel {
    /// Whether an action is allowed by the crash rules of the configuration.
    ///
    /// The restart budget restricts the *environment*: once the coordinator
    /// has restarted `max_restarts` times (each restart bumps its durable
    /// epoch, so unbounded restarts make an infinite state space), the model
    /// offers no further coordinator crash. Every reachable state is then
    /// explored and judged; nothing is cut off and counted as a success.
    /// (A coordinator that never recovers may always crash: it never restarts.)
    ///
    /// With the replicated protocol the budget counts terms instead (a
    /// leader that goes down makes the others campaign), and a follower's
    /// timer (a pre-vote, then perhaps a campaign) fires only when it
    /// should: its leader (the owner of the term it promised) is down, or is
    /// not leading or campaigning for that term and it is the first replica
    /// up (or one that has still to forget its leader), or early, while the
    /// highest term is below the `elections` budget. This is the eventual leader detector
    /// (Ω) every consensus protocol
    /// needs to make progress (none can without some timing assumption); the
    /// safety properties are checked with early campaigns too.
    pub(crate) fn allowed(&self, state: &SysState, action: &SysAction) -> bool {
        match action {
            ActorModelAction::Crash(id) => {
                let role = self.cfg.role((*id).into());
                self.cfg.crashable.contains(&role)
                    && (!matches!(role, Role::Coordinator | Role::Backup)
                        || self.cfg.never_recover.contains(&role)
                        || match self.cfg.protocol {
                            Protocol::TwoPc if self.cfg.lose_disk => {
                                u64::from(state.history.disk_losses) < self.cfg.max_restarts
                            }
                            Protocol::TwoPc => coordinator(state).epoch <= self.cfg.max_restarts,
                            // One crash, which loses the disk.
                            Protocol::Replicated if self.cfg.lose_replica_disk => {
                                self.may_lose_replica_disk(state, (*id).into())
                            }
                            Protocol::Replicated => {
                                self.highest_term(state) <= self.cfg.max_restarts
                            }
                        })
            }
            ActorModelAction::Recover(id) => !self
                .cfg
                .never_recover
                .contains(&self.cfg.role((*id).into())),
            ActorModelAction::Timeout(id, Timer::Replica) => {
                self.may_campaign(state, (*id).into()) && self.may_ask_again(state, *id)
            }
            _ => true,
        }
    }

    /// The highest term any replica promised.
    fn highest_term(&self, state: &SysState) -> u64 {
        replicas(&self.cfg, state)
            .map(|(_, r)| r.acceptor.promised.n)
            .max()
            .unwrap_or(0)
    }

    /// Whether replica `i`'s timer may fire (see [`TwopcModel::allowed`]):
    /// always, unless it is a follower's (which starts a pre-vote, and so
    /// may start a campaign). A follower's may fire early while the highest
    /// term is within the `elections` budget (the budget counts campaigns,
    /// that is terms), and then once for each term it may ask for: a
    /// second early pre-vote for the same term would send the same
    /// `PreVote`, already in flight (the network duplicates), only opening
    /// its pre-candidacy again at another moment, and the early
    /// pre-candidacies, as many as the timings they allow, multiplied the
    /// competing-leaders graph past the CI's time; after that
    /// only when the follower's leader is down or not leading its term, and
    /// then by the replica an eventual leader detector (Ω) trusts, the first
    /// one that is up, and by the others once that one asks (their timers
    /// fire, as every follower's does when its leader falls silent, and only
    /// a replica whose timer fired grants a pre-vote).
    fn may_campaign(&self, state: &SysState, i: usize) -> bool {
        let State::Replica(r) = &**state.actor_states[i] else {
            return true;
        };
        if !matches!(r.standing, Standing::Follower) {
            return true;
        }
        if self.highest_term(state) < self.cfg.elections {
            // An early pre-vote, within the budget: once per term it asks.
            let asks = Term {
                n: r.acceptor.promised.n + 1,
                leader: (i).into(),
            };
            return !state.history.pre_votes.contains(&asks);
        }
        let term = r.acceptor.promised;
        let leader = usize::from(term.leader);
        let leads = !state.crashed[leader]
            && match &**state.actor_states[leader] {
                State::Replica(l) => match &l.standing {
                    Standing::Leader(x) => x.term == term,
                    Standing::Candidate { term: t, .. } => *t == term,
                    Standing::Follower
                    | Standing::PreCandidate { .. }
                    | Standing::Recovering { .. } => false,
                },
                _ => false,
            };
        // The trusted one: the first replica that is up (the detector
        // eventually points every replica at the same live one).
        let trusted = self
            .cfg
            .replica_indices()
            .into_iter()
            .find(|j| !state.crashed[*j]);
        let asks = |j: usize| {
            !matches!(&**state.actor_states[j], State::Replica(t)
                if t.standing == Standing::Follower)
        };
        !leads && trusted.is_some_and(|t| t == i || asks(t))
    }
}
