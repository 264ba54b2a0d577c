//! State-space reductions that lose no behaviour: the bootstrap handshake
//! run in a fixed order, and messages in flight that can change nothing now
//! or later (spent epoch questions, mail of the dead, what its receiver
//! ignores for good) dropped so that states differing only by them merge.

use super::{coordinator, coordinators, replicas, SysAction, SysState, TwopcModel};
use crate::config::{NetworkKind, Protocol};
use crate::shared::Shared;
use stateright::actor::{ActorModelAction, Id, Network};
use stateright::Model;
use twopc_model::*;

impl TwopcModel {
    /// The system once the first epoch is learned: every `AskEpoch` and
    /// `Epoch` in flight delivered, in a fixed order, until delivering them
    /// changes nothing. The checker starts here rather than at the very
    /// first step: on a fresh cluster every participant answers 0 and the
    /// coordinator keeps epoch 1, so the interleavings of that first
    /// question with the rest (purchases ignored until it is answered) only
    /// multiply the states without a behaviour of their own. Every later
    /// start (a restart, a new leader, a coordinator on an empty disk) asks
    /// under every interleaving. Likewise the replicas of a new cluster,
    /// which all start without storage, recover from one another
    /// (`Recover`, `RecoverReply`) before the first one leads the first term;
    /// a replica whose disk is lost later recovers under every interleaving.
    pub(crate) fn bootstrapped(&self, mut state: SysState) -> SysState {
        let handshake = |a: &SysAction| {
            matches!(a, ActorModelAction::Deliver { msg, .. }
                if matches!(&**msg, Msg::AskEpoch { .. } | Msg::Epoch { .. }
                    | Msg::Recover { .. } | Msg::RecoverReply { .. }))
        };
        loop {
            let mut actions = Vec::new();
            self.inner.actions(&state, &mut actions);
            // (The duplicating network also remembers the last message it
            // delivered: a delivery that changed nothing else is no change.)
            let changed = |n: &SysState| {
                n.actor_states != state.actor_states
                    || n.actor_storages != state.actor_storages
                    || n.network.len() != state.network.len()
            };
            let next = actions
                .into_iter()
                .filter(handshake)
                .find_map(|a| self.inner.next_state(&state, a).filter(changed));
            match next {
                Some(n) => state = n,
                None => return state,
            }
        }
    }

    /// Two-phase commit: once the coordinator has learned its epoch, the
    /// questions about it (`AskEpoch`) and their answers (`Epoch`) still in
    /// flight can change nothing, now or ever: this incarnation ignores
    /// answers (it has learned), every later one starts from the log this
    /// one saved and asks nothing, and a lost disk drains the network of
    /// the coordinator's datagrams (see [`TwopcModel::lose_disk`]) before an
    /// incarnation that asks again starts. Dropping them merges states that
    /// differ only by which answers a participant gave as its floor rose
    /// (four times the states of one purchase, measured, otherwise).
    pub(crate) fn drop_spent_questions(&self, state: &mut SysState) {
        if self.cfg.network != NetworkKind::Udp {
            return;
        }
        let spent = match self.cfg.protocol {
            Protocol::TwoPc => coordinator(state).learning == Learning::Learned,
            // Replicas: a new leader starts from the highest state its
            // majority accepted, and asks only if there is none; once a
            // majority has accepted a state, none ever will (what a replica
            // accepted only grows), so no incarnation asks again once every
            // leading one has learned.
            Protocol::Replicated => {
                let accepted = replicas(&self.cfg, state)
                    .filter(|(_, r)| r.acceptor.accepted.is_some())
                    .count();
                accepted > self.cfg.replicas / 2
                    && coordinators(&self.cfg, state).all(|(_, c)| c.learning == Learning::Learned)
            }
        };
        if !spent {
            return;
        }
        let spent = |m: &Msg| matches!(m, Msg::AskEpoch { .. } | Msg::Epoch { .. });
        if !state.network.iter_all().any(|e| spent(e.msg)) {
            return;
        }
        let kept: Vec<_> = state
            .network
            .iter_all()
            .filter(|e| !spent(e.msg))
            .map(|e| e.to_cloned_msg())
            .collect();
        state.network = Network::new_unordered_duplicating(kept);
    }

    /// Messages to a buried replica (see [`TwopcModel::bury`]) can never be
    /// delivered: those in flight when it died and those sent since are
    /// dropped, so that states do not differ by which of them were sent.
    /// So are the messages whose delivery changes nothing, now or ever (see
    /// [`TwopcModel::inert`]): a state with such a message in flight and the
    /// same state without it have the same futures, so dropping it merges
    /// states without losing any behaviour. (Only where an actor may die
    /// for good: that is where the graphs outgrew the machine. Elsewhere the
    /// pinned counts of the CI matrix stay those of the plain model; with
    /// the rules on everywhere, `replicated` would have 18,350 states
    /// instead of 75,302 and `replicated-backup-crash` 55,050 instead of
    /// 225,906.)
    pub(crate) fn drop_mail_of_the_dead(&self, state: &mut SysState) {
        if self.cfg.protocol != Protocol::Replicated
            || self.cfg.never_recover.is_empty()
            || self.cfg.network != NetworkKind::Udp
        {
            return;
        }
        let dead = self.buried(state);
        let inert = |e: &stateright::actor::Envelope<&Shared<Msg>>| {
            dead.contains(&e.dst) || self.inert(state, &dead, e.src, e.dst, e.msg)
        };
        if !state.network.iter_all().any(|e| inert(&e)) {
            return;
        }
        let kept: Vec<_> = state
            .network
            .iter_all()
            .filter(|e| !inert(e))
            .map(|e| e.to_cloned_msg())
            .collect();
        state.network = Network::new_unordered_duplicating(kept);
    }

    /// The actors down for good.
    fn buried(&self, state: &SysState) -> Vec<Id> {
        (0..state.crashed.len())
            .filter(|i| state.crashed[*i] && self.cfg.never_recover.contains(&self.cfg.role(*i)))
            .map(Id::from)
            .collect()
    }

    /// Whether delivering `msg` from `src` to replica `dst` is a no-op in
    /// this state and in every state that follows (so the message can be
    /// dropped). Each rule rests on what only grows: a replica's promised
    /// term and accepted (term, version) (durable), a leader's chosen version
    /// and acknowledgements; and on a replica never campaigning for, or
    /// leading, a term again once it stopped (its next campaign is for a
    /// higher term, and a restart follows). `dead` are the buried replicas:
    /// what is sent to them is dropped.
    fn inert(&self, state: &SysState, dead: &[Id], src: Id, dst: Id, msg: &Msg) -> bool {
        let i = usize::from(dst);
        let r = match state.actor_states.get(i).map(|a| &***a) {
            Some(State::Replica(r)) => r,
            Some(State::Participant(p)) => return part_inert(p, dead.contains(&src), msg),
            // A client that has every outcome ignores everything (what it
            // has seen only grows).
            Some(State::Client(c)) => {
                let cfg = self
                    .client_configs()
                    .nth(i - self.cfg.client_indices().start);
                return cfg.is_some_and(|cfg| cfg.is_done(c));
            }
            _ => return false,
        };
        let down = state.crashed[i];
        let promised = r.acceptor.promised;
        match msg {
            // Followed only if higher than what it promised.
            Msg::Nack { promised: p } => *p <= promised,
            // Counted only by the candidate for that term that lacks it.
            Msg::Promise { term, .. } => {
                down || !matches!(&r.standing, Standing::Candidate { term: t, promises }
                    if t == term && !promises.contains_key(&src))
            }
            // Counted only by the leader of that term, above what is chosen
            // and what that replica acknowledged before.
            Msg::Accepted { term, version } => {
                down || !r.leading().is_some_and(|l| {
                    l.term == *term
                        && *version > l.chosen
                        && l.acks.get(&src).is_none_or(|v| v < version)
                })
            }
            // From a buried replica, a campaign it already promised (or
            // refused) only answers the dead.
            Msg::Campaign { term } => dead.contains(&src) && *term <= promised,
            // From a buried leader, an accept that neither raises the
            // promise nor is newer than what was accepted only answers the
            // dead.
            Msg::Accept { term, version, .. } => {
                dead.contains(&src)
                    && (*term < promised
                        || (*term == promised
                            && r.acceptor
                                .accepted
                                .as_ref()
                                .is_some_and(|a| (a.term, a.version) >= (*term, *version))))
            }
            _ => false,
        }
    }
}

/// Whether delivering `msg` to a participant (from a buried replica if
/// `from_dead`: its answer goes nowhere) changes nothing now or ever. What a
/// participant decided stays decided: a transaction leaves `holds` only for
/// `finished`, and leaves `finished` only when its floor passes it, after
/// which no prepare holds it again; and the floor only rises.
fn part_inert(p: &PartState, from_dead: bool, msg: &Msg) -> bool {
    let data = &p.data;
    let decided = |txn: &TxnId| *txn < data.floor || data.finished.contains_key(txn);
    match msg {
        // Ignored once decided (no answer at all).
        Msg::Abort { txn } => decided(txn),
        // Answered with an ack (to nobody, from the dead) unless it is held.
        Msg::Commit { txn } => from_dead && decided(txn) && !data.holds.contains_key(txn),
        // From the dead: a floor that settles nothing here now (so nothing
        // later either: every later hold or decision is at or above this
        // participant's floor), for an attempt already held or decided (a
        // vote again, to nobody).
        Msg::Prepare { txn, floor, .. } => {
            from_dead
                && floor.below <= data.floor
                && data.holds.range(..floor.below).next().is_none()
                && data.finished.range(..floor.below).next().is_none()
                && (decided(txn) || data.holds.contains_key(txn))
        }
        _ => false,
    }
}

#[cfg(test)]
#[path = "reduce_tests.rs"]
mod tests;
