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
    let empty = state.actor_storages[i].is_none();
    !matches!(r.standing, Standing::Recovering { .. }) && !(empty && state.crashed[i])
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
    /// only while it holds the highest state any replica accepted (it then
    /// forgets the most: what it may have been alone with a leader to
    /// accept, a chosen state the others lag behind). A replica that loses
    /// less forgets what the highest holders still tell it.
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
    /// network keeps every other message). Nothing is lost by it: a question
    /// delivered again is what the asker's recovery timer does, which may
    /// fire at any time, to every replica it has not counted (a replica it
    /// has counted ignores nothing but the answer); an answer delivered
    /// again is ignored, the asker having counted its sender, unless the
    /// asker restarts, and none does once the one crash of
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
                e.src != id || !matches!(&**e.msg, Msg::Accept { .. } | Msg::Campaign { .. })
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
    /// it; it is without storage again only if its disk is lost, which
    /// drains its messages (above). Dropping them merges states that differ
    /// only by which of them are in flight once every replica has recovered.
    /// So are the answers to a recovering replica from a replica it has
    /// counted already, once no replica can crash again (the one crash of
    /// `--lose-replica-disk` spent): only a restart would count them.
    pub(crate) fn drop_spent_recovery(&self, state: &mut SysState) {
        if self.cfg.protocol != Protocol::Replicated || self.cfg.network != NetworkKind::Udp {
            return;
        }
        let no_more_crashes =
            self.cfg.lose_replica_disk && state.history.replica_disk_lost.is_some();
        let spent = |asker: Id| state.actor_storages[usize::from(asker)].is_some();
        let counted = |asker: Id, from: Id| {
            no_more_crashes
                && matches!(&**state.actor_states[usize::from(asker)],
                    State::Replica(r) if matches!(&r.standing,
                        Standing::Recovering { answered, .. } if answered.contains(&from)))
        };
        let is_spent = |e: &stateright::actor::Envelope<&crate::shared::Shared<Msg>>| match &**e.msg
        {
            Msg::Recover { .. } => spent(e.src),
            Msg::RecoverReply { .. } => spent(e.dst) || counted(e.dst, e.src),
            _ => false,
        };
        if !state.network.iter_all().any(|e| is_spent(&e)) {
            return;
        }
        let kept: Vec<_> = state
            .network
            .iter_all()
            .filter(|e| !is_spent(e))
            .map(|e| e.to_cloned_msg())
            .collect();
        state.network = Network::new_unordered_duplicating(kept);
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
