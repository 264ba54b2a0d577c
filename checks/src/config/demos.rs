//! The smallest configuration that shows each mutant's bug.

use super::*;

impl Mutant {
    /// The smallest configuration in which the checker shows this mutant's
    /// bug (`twopc-check check --mutant NAME` starts from it).
    pub fn demo_config(self) -> Config {
        let one = Config {
            clients: 1,
            mutant: Some(self),
            ..Config::default()
        };
        // The replicated protocol, campaigns only when a leader is down.
        let replicated = Config {
            protocol: Protocol::Replicated,
            elections: 0,
            ..one.clone()
        };
        let crashing = |role: Role| Config {
            max_crashes: 1,
            crashable: [role].into(),
            ..one.clone()
        };
        match self {
            Mutant::NoSaveBeforeYes
            | Mutant::UnsavedDecision
            | Mutant::CommitOnVoteTimeout
            | Mutant::DoubleApplyCommit
            | Mutant::PresumeCommit => one,
            // The flows client's top-up and restock beside one purchase.
            Mutant::CreditAtPrepare => Config { flows: true, ..one },
            // The prices client: a restock at a new price, then a purchase
            // at the old one (the `prices` entry of the CI matrix).
            Mutant::OrderIgnoresPrice => Config {
                mutant: Some(self),
                ..prices()
            },
            // The `refunds` entry of the CI matrix: a purchase of two
            // units, a refund of one, its retry, a refund of the whole.
            Mutant::RefundNotChecked | Mutant::RefundedNotRaised | Mutant::CreditAppliedTwice => {
                Config {
                    mutant: Some(self),
                    ..refunds()
                }
            }
            // Enough money for the purchase to be charged twice.
            Mutant::RetryWithKeyStartsNewAttempt => Config { balance: 20, ..one },
            // Two purchases and a retention of one: the first one's outcome
            // is forgotten when the second is decided; then a stale copy of
            // the first arrives. Enough money and stock for three. (The
            // `expired-id` entry of the CI matrix, which also retries the
            // first id afterwards.)
            Mutant::ExpiredKeyAnsweredAsNew => Config {
                purchases: 2,
                retention: 1,
                balance: 20,
                stock: 3,
                afterwards: vec![Reuse::Same],
                ..one
            },
            // The id re-sent with one more unit.
            Mutant::KeyContentsNotCompared => Config {
                reuse: vec![Reuse::Different],
                ..one
            },
            // The coordinator restarts having forgotten the decided purchase;
            // enough money for it to be charged twice.
            Mutant::OutcomesNotDurable => Config {
                balance: 20,
                ..crashing(Role::Coordinator)
            },
            Mutant::ForgetHoldsOnRestart => crashing(Role::Wallet),
            // The coordinator's disk is replaced after the purchase began.
            Mutant::EpochNotLearned => Config {
                lose_disk: true,
                ..crashing(Role::Coordinator)
            },
            // The `coordinator-disk-lost` entry of the CI matrix: a purchase
            // after the loss waits for the epoch to be learned.
            Mutant::LearnNotRetried => Config {
                purchases: 2,
                lose_disk: true,
                ..crashing(Role::Coordinator)
            },
            // The disk lost after the commit reached one participant only.
            Mutant::PresumeAbortForLostLog => Config {
                lose_disk: true,
                ..crashing(Role::Coordinator)
            },
            // The disk lost after the purchase committed, before its client
            // heard; money for two: its ticket must not start it again.
            Mutant::TicketsNotRenewed => Config {
                balance: 20,
                lose_disk: true,
                ..crashing(Role::Coordinator)
            },
            Mutant::UnsavedAbortOutcome | Mutant::ReuseTxnIds => crashing(Role::Coordinator),
            // Two requests, so a duplicate of the first can answer the second.
            Mutant::ClientAcceptsAnyOutcome => Config {
                purchases: 2,
                ..one
            },
            // Liveness-only bugs, shown where bare `twopc-check` looks for
            // them: one purchase, any role may crash.
            Mutant::ForgetOnCommit => one,
            // Two clients: one's attempt is still voting when the other's
            // prepare carries the floor.
            Mutant::FloorIgnoresVoting => Config {
                mutant: Some(self),
                ..Config::default()
            },
            // A commit still owed (not yet acknowledged) when the next
            // purchase's prepare carries the floor.
            Mutant::FloorIgnoresOwed => Config {
                purchases: 2,
                ..one
            },
            // A hold of the old epoch when the new epoch's prepare arrives.
            Mutant::KeepDeadHolds | Mutant::FloorKeepsHolds => crashing(Role::Coordinator),
            Mutant::NeverAsk | Mutant::RestartForgetsToAsk => Config {
                max_crashes: 1,
                ..one
            },
            // The replicated protocol: decisions revealed on one replica's
            // word, with every replica up.
            Mutant::DecideWithoutMajority => replicated,
            // A backup restarts (the `replicated-backup-crash` matrix entry).
            Mutant::ForgetAcceptedOnRestart => Config {
                max_crashes: 1,
                crashable: [Role::Backup].into(),
                ..replicated
            },
            // A backup dies for good (the first one: the leader then has
            // nobody it listens to).
            Mutant::DeafToLastBackup => Config {
                max_crashes: 1,
                crashable: [Role::Backup].into(),
                never_recover: [Role::Backup].into(),
                ..replicated
            },
            // A replica's disk is replaced (the `replica-disk-lost` entry
            // of the CI matrix).
            Mutant::EmptyReplicaVotesAtOnce | Mutant::LeaderNeverResends => Config {
                mutant: Some(self),
                ..replica_disk_lost()
            },
            // Paxos bugs: the `competing-leaders` entry of the CI matrix,
            // where two replicas can lead.
            Mutant::LeaderIgnoresPromises
            | Mutant::AcceptBelowPromise
            | Mutant::ElectedWithoutMajority
            | Mutant::AdoptLowestBallot => Config {
                mutant: Some(self),
                ..competing_leaders()
            },
            // One write: the `one-write` entry of the CI matrix (one
            // purchase, any actor may crash once).
            // (Its liveness-only mutant there too: every role crashable.)
            Mutant::AbortWithoutFence
            | Mutant::FenceBeatsYes
            | Mutant::AllHoldAborts
            | Mutant::AckBeforeSave => Config {
                mutant: Some(self),
                ..one_write()
            },
            // Its liveness-only mutants: in the half of its liveness
            // analysis where the participants and the client crash.
            Mutant::FenceNotResent | Mutant::FlushNever => Config {
                mutant: Some(self),
                ..one_write_crashing(&[Role::Wallet, Role::Order, Role::Client])
            },
            // One write, money for a second charge, the coordinator the
            // one that crashes (it told an outcome and lost it).
            Mutant::OutcomesNotRecovered | Mutant::AbortToldUnsaved => Config {
                balance: 20,
                one_write: true,
                ..crashing(Role::Coordinator)
            },
            // The first leader dies for good; the next loses its campaign
            // and never asks again.
            Mutant::CampaignNotResent => Config {
                max_crashes: 1,
                crashable: [Role::Coordinator].into(),
                never_recover: [Role::Coordinator].into(),
                ..replicated
            },
        }
    }
}
