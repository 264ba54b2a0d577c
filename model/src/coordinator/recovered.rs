//! One write: the purchases a restarted coordinator records again from the
//! participants' fates, so that its predecessor's tickets stay good (see
//! docs/one-write.md, *Outcomes recovered at a restart*).

use crate::coordinator::{Coordinator, Heard};
use crate::msg::*;
use stateright::actor::Id;

impl Coordinator {
    /// Every purchase the participants' answers show committed or about
    /// to be (the wallet and the order service both name their debit for
    /// it, held or applied, for the same request; neither aborted it):
    /// its attempt, its id, and what it asked, rebuilt from the two debits
    /// (the user and `qty * price` at the wallet, the sku and `qty` at the
    /// order service).
    ///
    /// Under one write the coordinator tells a purchase's commit before
    /// it saves it, and the two debits are the only durable record until
    /// its log has the outcome: a participant forgets a finished
    /// transaction only below a floor, which passes a commit only once the
    /// coordinator saved its outcome (the save that forgets it, once both
    /// acknowledged). So every purchase a crashed incarnation told and did
    /// not save is among these. Costs O(fates).
    pub(crate) fn told_purchases(
        &self,
        answers: &[(Id, &Heard)],
    ) -> Vec<(TxnId, RequestId, Purchase)> {
        let of = |id: Id| answers.iter().find(|(i, _)| *i == id).map(|(_, h)| *h);
        let (Some(wallet), Some(order)) = (of(self.wallet), of(self.order)) else {
            return Vec::new();
        };
        let mut told = Vec::new();
        for (txn, fate) in &wallet.fates {
            let Some((req, debit)) = fate.change() else {
                continue;
            };
            let Ok(i) = order.fates.binary_search_by(|(t, _)| t.cmp(txn)) else {
                continue;
            };
            let Some((also, stock)) = order.fates[i].1.change() else {
                continue;
            };
            let qty = stock.amount;
            if also != req || qty == 0 || debit.amount % qty != 0 {
                continue; // Not one purchase's two debits.
            }
            let purchase = Purchase {
                user: debit.key.clone(),
                sku: stock.key.clone(),
                qty,
                price: debit.amount / qty,
            };
            told.push((*txn, req.clone(), purchase));
        }
        told
    }
}

/// What a participant's answer says of a transaction (its variants are
/// in `types.rs`), as the resolutions read it.
impl Fate {
    /// Prepared here and undecided: the request, if so.
    pub fn held(&self) -> Option<&RequestId> {
        match self {
            Fate::Held(req) | Fate::HeldAmong(req, _) | Fate::HeldFor(req, _) => Some(req),
            Fate::Committed | Fate::Aborted | Fate::CommittedFor(..) => None,
        }
    }

    /// Committed here.
    pub fn committed(&self) -> bool {
        matches!(self, Fate::Committed | Fate::CommittedFor(..))
    }

    /// The request and the debit held or applied here, when told (one
    /// write).
    pub fn change(&self) -> Option<(&RequestId, &Op)> {
        match self {
            Fate::HeldFor(req, op) | Fate::CommittedFor(req, op) => Some((req, op)),
            Fate::Held(_) | Fate::HeldAmong(..) | Fate::Committed | Fate::Aborted => None,
        }
    }
}
