//! The general transaction at the coordinator: which participants an
//! operation touches and what it asks of each (a hold or a credit), and
//! the bookkeeping of operations that are not purchases (see docs/shop.md).

use crate::coordinator::{CoordState, Coordinator, Known};
use crate::msg::*;
use stateright::actor::Id;

impl Coordinator {
    /// What `op` asks of each participant it touches, in participant
    /// order; `None` when it is invalid (a zero amount, `qty * price`
    /// overflows).
    pub fn changes(&self, op: &Operation) -> Option<Vec<(Id, Change)>> {
        let mut changes = Vec::new();
        for p in self.participants() {
            match op.change_at(p == self.wallet) {
                None => {}
                Some(None) => return None,
                Some(Some(change)) => changes.push((p, change)),
            }
        }
        (!changes.is_empty()).then_some(changes)
    }

    /// The participants `op` touches (a refund: both, whatever its
    /// purchase).
    pub fn parties(&self, op: &Operation) -> Vec<Id> {
        if let Operation::Refund { .. } = op {
            return self.participants().to_vec();
        }
        self.participants()
            .into_iter()
            .filter(|p| op.change_at(*p == self.wallet).is_some())
            .collect()
    }

    /// The message that prepares `change` of `op` at participant `p`: a
    /// hold rides on `Prepare` (its bytes of before), a credit on
    /// `PrepareCredit`, and a change with a price at the order service
    /// (a priced restock always; a purchase when [`Coordinator::prices`])
    /// on `PreparePriced`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn prepare(
        &self,
        p: Id,
        op: &Operation,
        txn: TxnId,
        req: RequestId,
        change: Change,
        floor: Floor,
        parties: &[Id],
    ) -> Msg {
        let priced = p == self.order
            && match op {
                Operation::Purchase(_) => self.prices,
                Operation::PricedRestock { .. } => true,
                Operation::TopUp { .. } | Operation::Restock { .. } | Operation::Refund { .. } => {
                    false
                }
            };
        if let Some(price) = op.price_at_order().filter(|_| priced) {
            return Msg::PreparePriced {
                txn,
                req,
                change,
                price,
                floor,
                parties: parties.to_vec(),
            };
        }
        match change {
            Change::Hold(op) => Msg::Prepare {
                txn,
                req,
                op,
                floor,
            },
            Change::Credit(op) => Msg::PrepareCredit {
                txn,
                req,
                op,
                floor,
                parties: parties.to_vec(),
            },
        }
    }
}

/// What a `Told` of an operation that is not a purchase holds in place of
/// one (its operation is in `CoordState::flows`).
pub(crate) fn placeholder() -> Purchase {
    Purchase {
        user: Key::new(),
        sku: Key::new(),
        qty: 0,
        price: 0,
    }
}

impl CoordState {
    /// The participants of pending commit or doubt `txn`: those listed in
    /// `partial`, or every participant.
    pub fn parties_of(&self, c: &Coordinator, txn: &TxnId) -> Vec<Id> {
        match self.partial.get(txn) {
            Some(p) => p.clone(),
            None => c.participants().to_vec(),
        }
    }

    /// What the remembered request `req` asked.
    pub fn asked(&self, req: &RequestId, told: &crate::outcomes::Told) -> Operation {
        match self.flows.get(req) {
            Some(op) => op.clone(),
            None => Operation::Purchase(told.purchase.clone()),
        }
    }

    /// Records the outcome of `req`, which asked `op`, forgetting the
    /// oldest beyond `retention` (and the operations of those forgotten
    /// that no pending commit needs).
    pub(crate) fn record(
        &mut self,
        req: RequestId,
        op: Operation,
        txn: Option<TxnId>,
        verdict: Verdict,
        retention: usize,
    ) -> Outcome {
        let purchase = match op {
            Operation::Purchase(p) => {
                self.flows.remove(&req);
                p
            }
            other => {
                self.flows.insert(req.clone(), other);
                placeholder()
            }
        };
        let (outcome, forgotten) = self
            .outcomes
            .record_forgetting(req, purchase, txn, verdict, retention);
        for req in forgotten {
            self.tidy_flow(&req);
            self.refunded.remove(&req);
        }
        outcome
    }

    /// Forgets what `req` asked if neither its outcome nor a pending
    /// commit needs it. O(pending commits) when it has a flow, else O(1).
    pub(crate) fn tidy_flow(&mut self, req: &RequestId) {
        if !self.flows.contains_key(req) || self.outcomes.by_id.contains_key(req) {
            return;
        }
        if !self.commits.values().any(|c| &c.req == req) {
            self.flows.remove(req);
        }
    }

    /// What this coordinator knows about `req`. Costs O(log remembered +
    /// attempts in flight).
    pub fn known(&self, req: &RequestId) -> Known<'_> {
        if let Some(told) = self.outcomes.by_id.get(req) {
            return Known::Decided(told);
        }
        if let Some(v) = self.voting.values().find(|v| &v.req == req) {
            return Known::InProgress(Some(&v.op));
        }
        if self.commits.values().any(|c| &c.req == req) || self.doubts.values().any(|r| r == req) {
            return Known::InProgress(None);
        }
        Known::Unknown
    }
}
