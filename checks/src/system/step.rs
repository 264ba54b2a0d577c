//! What one step of the checked system does beyond stateright's actor
//! model: the consequences of a crash (a replica buried for good, a lost
//! disk) and a refusal judged on the very step it happens.

use super::{owed, part, SysAction, SysState, TwopcModel};
use crate::config::{Protocol, Role, ORDER, WALLET};
use crate::shared::Shared;
use stateright::actor::{ActorModelAction, Id, Network};
use stateright::Model;
use twopc_model::*;

impl TwopcModel {
    /// The state after `action`, before [`TwopcModel::drop_mail_of_the_dead`]
    /// drops what can no longer matter (`Model::next_state` does both).
    pub(crate) fn next_unreduced(&self, state: &SysState, action: SysAction) -> Option<SysState> {
        // A prepare delivered to a participant may be refused: judge the
        // refusal on this very step (see `TwopcModel::judge_refusal`).
        // (A priced hold is judged so only when its price is right: one
        // at a price that is not the catalogue's is refused for that.)
        let prepare = match &action {
            ActorModelAction::Deliver { dst, msg, .. } => match &**msg {
                Msg::Prepare { txn, op, .. } => Some((*dst, *txn, op.key.clone())),
                Msg::PreparePriced {
                    txn,
                    change: Change::Hold(op),
                    price,
                    ..
                } if usize::from(*dst) == ORDER
                    && part(state, ORDER).data.price_holds(&op.key, *price) =>
                {
                    Some((*dst, *txn, op.key.clone()))
                }
                _ => None,
            },
            _ => None,
        };
        // A priced hold delivered to the order service: judge its price
        // against the catalogue the order service had (see
        // `TwopcModel::judge_price`).
        let priced = match &action {
            ActorModelAction::Deliver { dst, msg, .. } => match &**msg {
                Msg::PreparePriced {
                    txn,
                    change: Change::Hold(op),
                    price,
                    ..
                } => Some((*dst, *txn, op.key.clone(), *price)),
                _ => None,
            },
            _ => None,
        };
        let crash = match &action {
            ActorModelAction::Crash(id) => Some(*id),
            _ => None,
        };
        let mut next = self.inner.next_state(state, action)?;
        if let Some((dst, txn, key)) = &prepare {
            self.judge_refusal(state, (*dst, *txn, key), &mut next);
        }
        if let Some((dst, txn, key, price)) = &priced {
            self.judge_price(state, (*dst, *txn, key, *price), &mut next);
        }
        if let Some(id) = crash {
            self.bury(id, &mut next);
            if self.cfg.lose_disk && self.cfg.role(id.into()) == Role::Coordinator {
                self.lose_disk(id, &mut next);
            }
            if self.cfg.lose_replica_disk
                && matches!(self.cfg.role(id.into()), Role::Coordinator | Role::Backup)
            {
                // Replaced, restarted and answered in the same step (see
                // there).
                next = self.lose_replica_disk(id, next)?;
            }
        }
        Some(next)
    }

    /// Judges a refusal where it happens: if `action` delivered a prepare of
    /// epoch e that participant `dst` refused for want of funds or stock,
    /// every hold it counted against the amount must be live: of epoch e or
    /// newer, or a commit the coordinator still owes (in its durable log). A
    /// hold of an older epoch that is not owed is dead by presumed abort, and
    /// the prepare itself says a newer epoch exists, so counting it is a
    /// refusal that is not true. The verdict goes into the history (a later
    /// state no longer shows what was counted).
    pub(crate) fn judge_refusal(
        &self,
        last: &SysState,
        refused: (Id, TxnId, &str),
        next: &mut SysState,
    ) {
        let (dst, txn, key) = refused;
        let i = usize::from(dst);
        if i != WALLET && i != ORDER {
            return;
        }
        let (before, after) = (part(last, i), part(next, i));
        let was_refused = !before.data.finished.contains_key(&txn)
            && after.data.finished.get(&txn).is_some_and(|f| !f.committed)
            && after.data.levels.contains_key(key);
        if !was_refused {
            return;
        }
        let counted: Vec<&TxnId> = after
            .data
            .holds
            .iter()
            .filter(|(_, h)| h.op.key == key)
            .map(|(t, _)| t)
            .collect();
        let dead = counted
            .iter()
            .any(|t| t.epoch < txn.epoch && !owed(next, t));
        let h = &next.history;
        let (false_refusal, live) = (
            h.false_refusal || dead,
            h.live_hold_refusal || (!dead && !counted.is_empty()),
        );
        if (false_refusal, live) != (h.false_refusal, h.live_hold_refusal) {
            let mut changed = (**h).clone();
            changed.false_refusal = false_refusal;
            changed.live_hold_refusal = live;
            next.history = Shared::new(changed);
        }
    }

    /// Judges a price where it is accepted: if the order service `dst`
    /// newly holds `txn`, a purchase of `key` at `price` per unit, then
    /// `price` must be the sku's price in the catalogue it had just before
    /// (or the sku had none: any price is accepted). The verdict goes into
    /// the history (a later price change hides it).
    pub(crate) fn judge_price(
        &self,
        last: &SysState,
        held: (Id, TxnId, &str, Amount),
        next: &mut SysState,
    ) {
        let (dst, txn, key, price) = held;
        if usize::from(dst) != ORDER || next.history.off_price {
            return;
        }
        let (before, after) = (part(last, ORDER), part(next, ORDER));
        let newly = !before.data.holds.contains_key(&txn) && after.data.holds.contains_key(&txn);
        if newly && before.data.prices.get(key).is_some_and(|p| *p != price) {
            let mut changed = (*next.history).clone();
            changed.off_price = true;
            next.history = Shared::new(changed);
        }
    }

    /// The crashed coordinator's disk is replaced by an empty one: it will
    /// restart from no storage. What it had revealed is gone with it, and so
    /// is every datagram to or from it still in flight: replacing a machine
    /// takes longer than a datagram lives (an assumption, see *Epochs are
    /// learned* in the crate docs of twopc-model; the node does not enforce
    /// it).
    /// Without it, an answer the participants gave the lost incarnation
    /// could pass for an answer to the new one, which would then reuse an
    /// epoch whose prepares are still in flight.
    fn lose_disk(&self, id: Id, state: &mut SysState) {
        state.actor_storages[usize::from(id)] = None;
        let kept: Vec<_> = state
            .network
            .iter_all()
            .filter(|e| e.src != id && e.dst != id)
            .map(|e| e.to_cloned_msg())
            .collect();
        state.network = Network::new_unordered_duplicating(kept);
        let mut h = (*state.history).clone();
        let revealed = std::mem::take(&mut h.outcomes_sent);
        h.outcomes_lost.extend(revealed);
        // The commits it revealed are no longer durable there: what is
        // left of them is at the participants, and the new coordinator
        // recovers them from there (a commit it re-sends is revealed anew,
        // and must then be durable in its own log).
        h.commits_sent = Default::default();
        h.disk_losses += 1;
        state.history = Shared::new(h);
    }

    /// A replica that crashed never to recover no longer matters to the
    /// future: forget the volatile state it crashed in (it is rebuilt from
    /// its storage, as if it had restarted and stopped); the messages on
    /// their way to it can never be delivered either (see
    /// [`TwopcModel::drop_mail_of_the_dead`], applied after every step). Sound, since nothing
    /// reads them again, and it folds together the many states that differ
    /// only in what a dead replica was doing when it died. (Replicated
    /// protocol only: two-phase commit's reports show the dead coordinator's
    /// last state, which explains why it blocks.)
    pub(crate) fn bury(&self, id: Id, state: &mut SysState) {
        let i = usize::from(id);
        if self.cfg.protocol != Protocol::Replicated
            || !self.cfg.never_recover.contains(&self.cfg.role(i))
            || !matches!(self.cfg.role(i), Role::Coordinator | Role::Backup)
        {
            return;
        }
        let mut out = stateright::actor::Out::new();
        let fresh = stateright::actor::Actor::on_start(
            &self.inner.actors[i],
            id,
            &state.actor_storages[i],
            &mut out,
        );
        state.actor_states[i] = std::sync::Arc::new(fresh);
        // Its mail goes in the same step: `drop_mail_of_the_dead`.
    }
}
