//! Why a transaction aborted, from whose no vote: the reason a client is
//! told, and which participant has aborted already.

use super::CoordState;
use crate::msg::*;

/// The reason told for a no vote `refusal` of the wallet (`is_wallet`) or
/// of the order service.
pub(super) fn reason_for(is_wallet: bool, refusal: Refusal) -> AbortReason {
    match (is_wallet, refusal) {
        (true, Refusal::Insufficient) => AbortReason::InsufficientFunds,
        (true, Refusal::UnknownKey) => AbortReason::UnknownUser,
        (false, Refusal::Insufficient) => AbortReason::InsufficientStock,
        (false, Refusal::UnknownKey) => AbortReason::UnknownSku,
        (_, Refusal::Overflow) => AbortReason::Overflow,
        (_, Refusal::PriceChanged) => AbortReason::PriceChanged,
        // Fenced: the vote never came; the abort is the vote timeout's.
        (_, Refusal::Fenced) => AbortReason::VoteTimeout,
    }
}

/// Whether an abort for `reason` was caused by a no vote of the wallet
/// (`is_wallet`) or of the order service: that voter has aborted already.
pub(super) fn reason_blames(reason: AbortReason, is_wallet: bool) -> bool {
    match reason {
        AbortReason::InsufficientFunds | AbortReason::UnknownUser => is_wallet,
        AbortReason::InsufficientStock | AbortReason::UnknownSku | AbortReason::PriceChanged => {
            !is_wallet
        }
        // (An overflow may be either's: both are told.)
        AbortReason::VoteTimeout
        | AbortReason::InvalidRequest
        | AbortReason::Overflow
        | AbortReason::UnknownPurchase
        | AbortReason::NotCommitted
        | AbortReason::RefundExceedsPurchase => false,
    }
}

impl CoordState {
    /// Whether an attempt this coordinator has no decision for is aborted by
    /// presumption: not voting, not in doubt, and not of a later epoch (with
    /// a replicated coordinator, those belong to a newer leader).
    pub(super) fn presumes_abort(&self, txn: &TxnId) -> bool {
        !self.voting.contains_key(txn) && !self.doubts.contains_key(txn) && txn.epoch <= self.epoch
    }
}
