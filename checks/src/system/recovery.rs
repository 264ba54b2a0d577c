//! A replica that loses its disk (`--lose-replica-disk`), and what the
//! checker does with the recovery questions and answers of the replicas
//! (see *A replica that lost its disk* in the docs of `twopc_model::replica`).

use crate::config::{NetworkKind, Protocol};
use crate::shared::Shared;
use crate::system::clients;
use crate::system::{SysAction, SysState, TwopcModel};
use stateright::actor::{ActorModelAction, Envelope, Id, Network};
use stateright::Model;
use twopc_model::*;

/// Whether replica `i` can be counted in a majority now: it is not
/// recovering (a recovering replica promises nothing, and once it has
/// recovered it holds at least what it was told). One that lost its disk
/// and has not restarted yet is not counted either: it restarts recovering
/// (a replica that votes on an empty disk at once is counted as soon as it
/// is up, with nothing).
pub fn votes(state: &SysState, i: usize) -> bool {
    let State::Replica(r) = &**state.actor_states[i] else {
        return true;
    };
    let recovering = matches!(r.standing, Standing::Recovering { .. });
    let restarts_empty = state.actor_storages[i].is_none() && state.crashed[i];
    !(recovering || restarts_empty)
}

/// The recovery question or answer an action delivers, if any.
pub fn delivered_recovery(action: &SysAction) -> Option<Envelope<Shared<Msg>>> {
    match action {
        ActorModelAction::Deliver { src, dst, msg }
            if matches!(&**msg, Msg::Recover { .. } | Msg::RecoverReply { .. }) =>
        {
            Some(Envelope {
                src: *src,
                dst: *dst,
                msg: msg.clone(),
            })
        }
        _ => None,
    }
}

impl TwopcModel {
    /// Whether replica `i` may crash and lose its disk now: only once, and
    /// only while it holds the highest state any replica accepted and
    /// another replica holds less (it then forgets the most: a state it may
    /// have been alone with the leader to accept, that the other lags
    /// behind). A restriction of the environment, to keep the space within
    /// CI time (without it the backups' losses took more than 2.8 million
    /// states); a replica that loses less forgets what a replica holding
    /// more tells it anyway.
    pub(crate) fn may_lose_replica_disk(&self, state: &SysState, i: usize) -> bool {
        let rank = |j: usize| match state.actor_storages[j].as_deref() {
            Some(Storage::Replica(r)) => r.accepted.as_ref().map(|a| (a.term, a.version)),
            _ => None,
        };
        let others: Vec<usize> = self
            .cfg
            .replica_indices()
            .into_iter()
            .filter(|j| *j != i)
            .collect();
        state.history.replica_disk_lost.is_none()
            && others.iter().all(|j| rank(*j) <= rank(i))
            && others.iter().any(|j| rank(*j) < rank(i))
    }

    /// Whether a recovering replica's timer may fire (ask again): only when
    /// some replica it has not counted has neither its question nor an
    /// answer to it in flight, that is, after a loss (the "lose everything
    /// in flight" step of the liveness analysis). Asking again while an
    /// answer is on its way only adds later answers, each holding at least
    /// what the one on its way holds (an acceptor's promise and accepted
    /// state only grow), so that the asker would adopt more; what is
    /// explored is the other way round: the first answer counts, given
    /// whenever the question arrives. (On the node's replica links, which
    /// are ordered, the first answer sent is the first to arrive.) With
    /// `--lose-replica-disk` only; a replica not recovering may always fire.
    pub(crate) fn may_ask_again(&self, state: &SysState, id: Id) -> bool {
        let i = usize::from(id);
        let State::Replica(r) = &**state.actor_states[i] else {
            return true;
        };
        let Standing::Recovering { answered, .. } = &r.standing else {
            return true;
        };
        if !self.cfg.lose_replica_disk {
            return true;
        }
        let in_flight = |peer: Id| {
            state.network.iter_all().any(|e| match &**e.msg {
                Msg::Recover { .. } => e.src == id && e.dst == peer,
                Msg::RecoverReply { .. } => e.src == peer && e.dst == id,
                _ => false,
            })
        };
        self.cfg
            .replica_indices()
            .into_iter()
            .map(Id::from)
            .filter(|p| *p != id && !answered.contains(p))
            .any(|p| !in_flight(p))
    }

    /// A recovery question or answer is consumed by its delivery (the
    /// network keeps every other message). A question delivered again is
    /// what the asker's recovery timer does (to every replica it has not
    /// counted; see [`TwopcModel::may_ask_again`] for when); an answer
    /// delivered again is ignored, the asker having counted its sender,
    /// unless the asker restarts, and none does once the one crash of
    /// `--lose-replica-disk` is spent. Elsewhere nothing is consumed.
    pub(crate) fn consume_recovery(
        &self,
        delivered: Option<Envelope<Shared<Msg>>>,
        state: &mut SysState,
    ) {
        let Some(e) = delivered else { return };
        let spent_crash = self.cfg.lose_replica_disk && state.history.replica_disk_lost.is_some();
        if !spent_crash || self.cfg.network != NetworkKind::Udp {
            return;
        }
        let kept: Vec<_> = state
            .network
            .iter_all()
            .map(|x| x.to_cloned_msg())
            .filter(|x| *x != e)
            .collect();
        state.network = Network::new_unordered_duplicating(kept);
    }

    /// The crashed replica's disk is replaced by an empty one; it restarts
    /// without storage and asks every other replica what it holds, and
    /// they answer, all in this one step. Then the answers travel (any
    /// order, any delay) and it recovers when it has them all.
    ///
    /// - Every message *from* it that names a term it owns (its campaigns,
    ///   and its accepts as a leader) goes with its disk: replacing a machine
    ///   takes longer than a datagram lives (the assumption of the model's
    ///   docs). Without it, its next life could own the same term again and
    ///   write other states under the same (term, version). Its promises,
    ///   acknowledgements and answers still in flight stay: whoever counts
    ///   them answers its recovery question with at least what they said.
    ///   Answers to an earlier life's question go too: the node's
    ///   incarnation number makes the new life ignore them; the model's is
    ///   always 0.
    /// - Restarting at once loses nothing: a replica that is recovering and
    ///   has no answer yet is as silent as one that is down.
    /// - Answering at once gives the answers that hold the least any answer
    ///   can (given after the loss; an acceptor's promise and accepted state
    ///   only grow): later answers would make it adopt more. Its recovery
    ///   timer asks again only after a loss (see
    ///   [`TwopcModel::may_ask_again`]), and gets later answers then.
    ///
    /// Unlike a coordinator's lost disk, what the group revealed is not
    /// lost: the others hold it.
    pub(crate) fn lose_replica_disk(&self, id: Id, mut state: SysState) -> Option<SysState> {
        state.actor_storages[usize::from(id)] = None;
        let kept: Vec<_> = state
            .network
            .iter_all()
            .filter(|e| {
                let owns_a_term = matches!(&**e.msg, Msg::Accept { .. } | Msg::Campaign { .. });
                let old_answer = matches!(&**e.msg, Msg::RecoverReply { .. });
                let gone = (e.src == id && owns_a_term) || (e.dst == id && old_answer);
                !gone
            })
            .map(|e| e.to_cloned_msg())
            .collect();
        state.network = Network::new_unordered_duplicating(kept);
        let mut h = (*state.history).clone();
        h.replica_disk_lost = Some((usize::from(id) as u8, h.outcomes_sent.clone()));
        state.history = Shared::new(h);
        let mut state = self
            .inner
            .next_state(&state, ActorModelAction::Recover(id))?;
        let questions: Vec<Envelope<Shared<Msg>>> = state
            .network
            .iter_all()
            .filter(|e| e.src == id && matches!(&**e.msg, Msg::Recover { .. }))
            .map(|e| e.to_cloned_msg())
            .collect();
        for q in questions {
            let deliver = ActorModelAction::Deliver {
                src: q.src,
                dst: q.dst,
                msg: q.msg.clone(),
            };
            if let Some(answered) = self.inner.next_state(&state, deliver) {
                state = answered;
            }
            self.consume_recovery(Some(q), &mut state);
        }
        Some(state)
    }

    /// Recovery questions and answers that can change nothing, now or
    /// ever, are dropped: those whose asker has storage. A replica with
    /// storage ignores every answer, and a question of its is answered to
    /// it; it is without storage again only if its disk is lost, and then
    /// they are answers to an earlier life's question (above). Dropping them merges states that differ
    /// only by which of them are in flight once every replica has recovered.
    /// So are the answers to a recovering replica from a replica it has
    /// counted already, once no replica can crash again (the one crash of
    /// `--lose-replica-disk` spent): only a restart would count them.
    pub(crate) fn drop_spent_recovery(&self, state: &mut SysState) {
        if self.cfg.protocol != Protocol::Replicated || self.cfg.network != NetworkKind::Udp {
            return;
        }
        if !state
            .network
            .iter_all()
            .any(|e| self.spent(state, e.src, e.dst, e.msg))
        {
            return;
        }
        let kept: Vec<_> = state
            .network
            .iter_all()
            .filter(|e| !self.spent(state, e.src, e.dst, e.msg))
            .map(|e| e.to_cloned_msg())
            .collect();
        state.network = Network::new_unordered_duplicating(kept);
    }

    /// Whether `msg` from `src` to `dst` is a spent recovery question or
    /// answer (see [`TwopcModel::drop_spent_recovery`]).
    fn spent(&self, state: &SysState, src: Id, dst: Id, msg: &Msg) -> bool {
        let no_more_crashes =
            self.cfg.lose_replica_disk && state.history.replica_disk_lost.is_some();
        let has_storage = |asker: Id| state.actor_storages[usize::from(asker)].is_some();
        let counted = |asker: Id, from: Id| {
            no_more_crashes
                && matches!(&**state.actor_states[usize::from(asker)],
                    State::Replica(r) if matches!(&r.standing,
                        Standing::Recovering { answered, .. } if answered.contains(&from)))
        };
        match msg {
            Msg::Recover { .. } => has_storage(src),
            Msg::RecoverReply { .. } => has_storage(dst) || counted(dst, src),
            _ => false,
        }
    }
}

/// The `sometimes` of `--lose-replica-disk`: the replica that lost its disk
/// has recovered and holds (in what it accepted) the outcome of a purchase
/// that a client saw committed and that was decided after the loss.
pub fn caught_up(m: &TwopcModel, s: &SysState) -> bool {
    let Some((i, before)) = &s.history.replica_disk_lost else {
        return false;
    };
    let i = usize::from(*i);
    let holds = |req: &RequestId| match s.actor_storages[i].as_deref() {
        Some(Storage::Replica(r)) => r
            .accepted
            .as_ref()
            .is_some_and(|a| a.storage.outcomes.by_id.contains_key(req)),
        _ => false,
    };
    votes(s, i)
        && clients(&m.cfg, s)
            .flat_map(|c| c.seen.iter())
            .any(|o| o.verdict == Verdict::Committed && !before.contains(&o.req) && holds(&o.req))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    type Mail = Envelope<Shared<Msg>>;

    fn mail(state: &SysState) -> HashSet<Mail> {
        state
            .network
            .iter_all()
            .map(|e| e.to_cloned_msg())
            .collect()
    }

    /// Random walks through the model without dropping spent recovery
    /// messages. In every state, each one the checker would drop is
    /// delivered: it must change nothing (the receiver's state, storage and
    /// timers) and send only messages that are spent themselves; and it must
    /// still be spent in the next state, if still in flight.
    #[test]
    fn spent_recovery_messages_change_nothing_now_or_later() {
        use crate::config::Role;
        for (crashable, lose) in [
            (Role::Backup, true),
            (Role::Coordinator, true),
            (Role::Backup, false),
        ] {
            let cfg = crate::config::Config {
                crashable: [crashable].into(),
                lose_replica_disk: lose,
                ..crate::matrix::replica_disk_lost()
            };
            let model = cfg.into_model();
            let mut judged = 0;
            let spent = |state: &SysState| -> Vec<Mail> {
                mail(state)
                    .into_iter()
                    .filter(|e| model.spent(state, e.src, e.dst, &e.msg))
                    .collect()
            };
            let visit = |state: &SysState| {
                for e in spent(state) {
                    let i = usize::from(e.dst);
                    let deliver = ActorModelAction::Deliver {
                        src: e.src,
                        dst: e.dst,
                        msg: e.msg.clone(),
                    };
                    if let Some(after) = model.inner.next_state(state, deliver) {
                        let what = format!("{:?} to {i}", &*e.msg);
                        assert!(after.actor_states[i] == state.actor_states[i], "{what}");
                        assert!(after.actor_storages[i] == state.actor_storages[i], "{what}");
                        assert!(after.timers_set[i] == state.timers_set[i], "{what}");
                        for sent in mail(&after).difference(&mail(state)) {
                            assert!(
                                model.spent(&after, sent.src, sent.dst, &sent.msg),
                                "{what} sends {sent:?}"
                            );
                        }
                    }
                    judged += 1;
                }
            };
            let step = |state: &SysState, action| {
                let delivered = delivered_recovery(&action);
                let mut next = model.next_unreduced(state, action)?;
                model.consume_recovery(delivered, &mut next);
                let in_flight = mail(&next);
                // (A replica that lost its disk in this step asked
                // again and was answered: an answer of the new life
                // can be the very message an old one was.)
                let lost = match &next.history.replica_disk_lost {
                    Some((i, _)) if state.history.replica_disk_lost.is_none() => {
                        Some(Id::from(usize::from(*i)))
                    }
                    _ => None,
                };
                for e in spent(state)
                    .iter()
                    .filter(|e| in_flight.contains(*e) && Some(e.dst) != lost)
                {
                    assert!(
                        model.spent(&next, e.src, e.dst, &e.msg),
                        "{:?} to {:?} became live",
                        &*e.msg,
                        e.dst
                    );
                }
                Some(next)
            };
            // The new cluster's questions and answers still in flight.
            let start = || model.bootstrapped(model.inner.init_states().swap_remove(0));
            crate::system::random_walks::random_walks(&model, 400, 120, start, visit, step);
            assert!(
                judged > 1_000,
                "{crashable:?}, {lose}: only {judged} judged"
            );
        }
    }
}
