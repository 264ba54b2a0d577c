//! Which property each mutant breaks: what the checker must report
//! violated for the mutant to count as caught.

use super::*;
use crate::mutants::Mutant;

impl Mutant {
    /// The property this mutant breaks (the checker must report it violated).
    pub fn breaks(self) -> &'static str {
        match self {
            Mutant::NoSaveBeforeYes => DURABLE,
            Mutant::UnsavedDecision => DURABLE,
            Mutant::CommitOnVoteTimeout => COMMIT_NEEDS_EVERY_YES,
            Mutant::DoubleApplyCommit | Mutant::CreditAtPrepare => CONSERVED,
            Mutant::OrderIgnoresPrice => PURCHASE_AT_CATALOGUE_PRICE,
            Mutant::RefundNotChecked => REFUND_ONLY_OF_COMMITTED,
            Mutant::RefundedNotRaised => REFUNDED_COUNTED,
            Mutant::CreditAppliedTwice => CREDIT_APPLIED_ONCE,
            Mutant::ForgetHoldsOnRestart => CLIENT_TOLD_THE_TRUTH,
            Mutant::EpochNotLearned => NEXT_ATTEMPT_IS_NEW,
            Mutant::TicketsNotRenewed => CHARGED_AT_MOST_ONCE,
            Mutant::PresumeAbortForLostLog => ATOMIC,
            Mutant::PresumeCommit => ATOMIC,
            Mutant::UnsavedAbortOutcome => CLIENT_TOLD_THE_TRUTH,
            Mutant::ReuseTxnIds => CLIENT_TOLD_THE_TRUTH,
            Mutant::RetryWithKeyStartsNewAttempt => CHARGED_AT_MOST_ONCE,
            Mutant::ExpiredKeyAnsweredAsNew => CHARGED_AT_MOST_ONCE,
            Mutant::KeyContentsNotCompared => CLIENT_TOLD_THE_TRUTH,
            Mutant::OutcomesNotDurable => CHARGED_AT_MOST_ONCE,
            Mutant::ClientAcceptsAnyOutcome => CLIENT_TOLD_THE_TRUTH,
            Mutant::NeverAsk
            | Mutant::RestartForgetsToAsk
            | Mutant::LearnNotRetried
            | Mutant::DeafToLastBackup
            | Mutant::CampaignNotResent
            | Mutant::LeaderNeverResends
            | Mutant::FenceNotResent
            | Mutant::FlushNever => LIVE,
            Mutant::ForgetOnCommit | Mutant::FloorIgnoresOwed | Mutant::FloorIgnoresVoting => {
                CONSERVED
            }
            Mutant::KeepDeadHolds => REFUSAL_IS_TRUE,
            Mutant::AbortWithoutFence | Mutant::FenceBeatsYes | Mutant::AllHoldAborts => {
                OUTCOME_IMPLIED
            }
            Mutant::OutcomesNotRecovered => CHARGED_AT_MOST_ONCE,
            Mutant::AbortToldUnsaved => CLIENT_TOLD_THE_TRUTH,
            Mutant::AckBeforeSave => ATOMIC,
            Mutant::FloorKeepsHolds => SETTLED_HOLDS_NOTHING,
            Mutant::DecideWithoutMajority
            | Mutant::ForgetAcceptedOnRestart
            | Mutant::LeaderIgnoresPromises
            | Mutant::AcceptBelowPromise
            | Mutant::ElectedWithoutMajority
            | Mutant::AdoptLowestBallot
            | Mutant::EmptyReplicaVotesAtOnce => DURABLE,
        }
    }
}
