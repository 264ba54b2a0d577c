//! Refunds at the coordinator: a refund of purchase `P` is the transaction
//! {wallet: credit `qty × price` to `P.user`, order: credit `qty` to
//! `P.sku`}, checked against `P`'s remembered outcome and what has been
//! refunded of it (see docs/shop.md, "Refund").

use crate::coordinator::{CoordState, Coordinator};
use crate::msg::*;
use stateright::actor::Id;

impl Coordinator {
    /// What `op` asks of each participant it touches, or why it is refused
    /// before anything is prepared: [`Coordinator::changes`] for every
    /// operation but a refund, which is looked up in `state`.
    pub(crate) fn changes_in(
        &self,
        state: &CoordState,
        op: &Operation,
    ) -> Result<Vec<(Id, Change)>, AbortReason> {
        match op {
            Operation::Refund { purchase, qty } => self.refund(state, purchase, *qty),
            _ => self.changes(op).ok_or(AbortReason::InvalidRequest),
        }
    }

    /// The changes of a refund of `qty` units (all of them when `None`) of
    /// the purchase `id`, or why it is refused: a quantity of 0 or a
    /// refunded amount that overflows is invalid; a purchase not remembered
    /// as one is unknown; one that did not commit cannot be refunded; and
    /// the refund, with what was refunded of it (durable) and what refunds
    /// in flight reserve (volatile), must not exceed what was bought.
    fn refund(
        &self,
        state: &CoordState,
        id: &RequestId,
        qty: Option<Amount>,
    ) -> Result<Vec<(Id, Change)>, AbortReason> {
        if qty == Some(0) {
            return Err(AbortReason::InvalidRequest);
        }
        let p = state.purchase(id).ok_or(AbortReason::UnknownPurchase)?;
        if state.outcomes.by_id[id].verdict != Verdict::Committed {
            return Err(AbortReason::NotCommitted);
        }
        let qty = qty.unwrap_or(p.qty);
        let money = qty
            .checked_mul(p.price)
            .ok_or(AbortReason::InvalidRequest)?;
        let taken = state.refunded_of(id).saturating_add(state.reserved(id));
        if taken.saturating_add(qty) > p.qty {
            return Err(AbortReason::RefundExceedsPurchase);
        }
        let credit = |key: &Key, amount| {
            Change::Credit(Op {
                key: key.clone(),
                amount,
            })
        };
        Ok(vec![
            (self.wallet, credit(&p.user, money)),
            (self.order, credit(&p.sku, qty)),
        ])
    }
}

impl CoordState {
    /// The remembered purchase `id` (not a top-up's or restock's
    /// placeholder), whatever its verdict.
    pub fn purchase(&self, id: &RequestId) -> Option<&Purchase> {
        let told = self.outcomes.by_id.get(id)?;
        (!self.flows.contains_key(id)).then_some(&told.purchase)
    }

    /// Units of purchase `id` refunded by committed refunds.
    pub fn refunded_of(&self, id: &RequestId) -> Amount {
        self.refunded.get(id).copied().unwrap_or(0)
    }

    /// Units of purchase `id` that refunds still collecting votes reserve.
    /// O(attempts in flight).
    pub fn reserved(&self, id: &RequestId) -> Amount {
        self.voting
            .values()
            .filter_map(|v| self.refund_qty(&v.op).filter(|(p, _)| *p == id))
            .fold(0, |sum, (_, q)| sum.saturating_add(q))
    }

    /// The purchase a refund `op` gives back, and how many units of it
    /// (its whole quantity when it names none); `None` when `op` is no
    /// refund or its purchase is no longer remembered.
    pub fn refund_qty<'a>(&self, op: &'a Operation) -> Option<(&'a RequestId, Amount)> {
        let Operation::Refund { purchase, qty } = op else {
            return None;
        };
        let whole = self.purchase(purchase)?.qty;
        Some((purchase, qty.unwrap_or(whole)))
    }

    /// Raises the refunded count of the purchase the refund `op` gives
    /// back, as its commit is decided (in the same state change, so in the
    /// same durable write). A purchase forgotten meanwhile has no count to
    /// raise: any later refund of it is `unknown_purchase`.
    pub(crate) fn raise_refunded(&mut self, op: &Operation) {
        if let Some((id, qty)) = self.refund_qty(op) {
            let now = self.refunded_of(id).saturating_add(qty);
            self.refunded.insert(id.clone(), now);
        }
    }
}
