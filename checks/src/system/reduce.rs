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
    /// answers (it has learned), every later one starting from the log
    /// this one saved asks under a higher epoch (its start bumps the saved
    /// one) and ignores answers to any other, and a lost disk, whose next
    /// incarnation asks under epoch 1 again, drains the network of the
    /// coordinator's datagrams (see [`TwopcModel::lose_disk`]) first. Dropping them merges states that
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
    /// for good, or leaders compete (see [`TwopcModel::competing_leaders`]):
    /// that is where the graphs outgrew the machine. Elsewhere the pinned
    /// counts of the CI matrix stay those of the plain model. When last
    /// measured with the rules on everywhere, on an older model whose
    /// `replicated` had 75,302 states and `replicated-backup-crash`
    /// 225,906, they fell to 18,350 and 55,050.)
    pub(crate) fn drop_mail_of_the_dead(&self, state: &mut SysState) {
        if self.cfg.protocol != Protocol::Replicated
            || (self.cfg.never_recover.is_empty() && !self.competing_leaders())
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

    /// Whether the configuration lets leaders compete (the replicated
    /// protocol with early campaigns, on the udp network): where the
    /// reductions that merge states without losing behaviour are all on,
    /// [`TwopcModel::forget_last_delivery`] included. (Scoped so that the
    /// pinned counts of the other entries of the CI matrix stay as they
    /// were measured.)
    pub(crate) fn competing_leaders(&self) -> bool {
        self.cfg.protocol == Protocol::Replicated
            && self.cfg.elections > 0
            && self.cfg.network == NetworkKind::Udp
    }

    /// stateright's duplicating network remembers the last message it
    /// delivered, only so that a delivery that changes no actor can still
    /// make a state of its own (its comment: "a message that does not change
    /// the actor state can also produce a different fingerprint"). Nothing
    /// in the model, the rules or the properties reads it: two states that
    /// differ only by it have the same actions, the same successors (each
    /// delivery replaces it) and the same verdicts. Forgetting it merges
    /// them, losing no behaviour; a delivery that only re-sends what is
    /// already in flight (an acceptor acknowledging an `Accept` again) then
    /// leads back to the state it left. (With competing leaders only, see
    /// [`TwopcModel::competing_leaders`].)
    pub(crate) fn forget_last_delivery(&self, state: &mut SysState) {
        if !self.competing_leaders() {
            return;
        }
        if let Network::UnorderedDuplicating(_, last) = &mut state.network {
            *last = None;
        }
    }

    /// The actors down for good.
    fn buried(&self, state: &SysState) -> Vec<Id> {
        (0..state.crashed.len())
            .filter(|i| state.crashed[*i] && self.cfg.never_recover.contains(&self.cfg.role(*i)))
            .map(Id::from)
            .collect()
    }

    /// Whether delivering `msg` from `src` to `dst` is a no-op in this state
    /// and in every state that follows (so the message can be dropped), as
    /// the receiver's model says (`ignores`, beside each handler in
    /// twopc-model): what it ignores for good, what only answers a sender
    /// that is dead (`dead`: the buried replicas, to which nothing is
    /// delivered), and, for a replica that is down, what it ignores once it
    /// restarts.
    fn inert(&self, state: &SysState, dead: &[Id], src: Id, dst: Id, msg: &Msg) -> bool {
        let i = usize::from(dst);
        let (Some(actor), Some(now)) = (self.inner.actors.get(i), state.actor_states.get(i)) else {
            return false;
        };
        let from_dead = dead.contains(&src);
        match (&actor.node, &***now) {
            (Node::Replica(r), State::Replica(s)) => {
                (state.crashed[i] && Replica::ignores_once_restarted(msg))
                    || r.ignores(s, src, msg)
                    || (from_dead && r.only_answers(s, src, msg))
            }
            (Node::Participant(p), State::Participant(s)) => {
                p.ignores(s, src, msg) || (from_dead && p.only_answers(s, src, msg))
            }
            (Node::Client(c), State::Client(s)) => c.ignores(s, src, msg),
            _ => false,
        }
    }
}

#[cfg(test)]
#[path = "reduce_tests.rs"]
mod tests;
