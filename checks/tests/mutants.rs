//! Every deliberately broken protocol variant must be caught by the property it
//! breaks, and the same configuration without the bug must pass.

use std::time::Duration;
use twopc_checks::config::{Config, Protocol, Role};
use twopc_checks::liveness::analyze;
use twopc_checks::matrix::entries;
use twopc_checks::mutants::Mutant;
use twopc_checks::properties::{BOUNDED, LIVE};
use twopc_checks::system::{coordinators, participants};

fn check(cfg: Config) -> twopc_checks::CheckRun {
    twopc_checks::check(cfg.into_model(), 2, Duration::from_secs(3600), |_, _, _| {})
}

fn assert_caught(mutant: Mutant) {
    // The replicated protocol's own mutants are in tests/replicated.rs.
    assert_eq!(mutant.demo_config().protocol, Protocol::TwoPc);
    if mutant.breaks() == LIVE {
        return assert_caught_by_liveness(mutant);
    }
    // Stop at the first counterexample to the property the mutant breaks.
    let run = twopc_checks::run::find(mutant.demo_config().into_model(), 2, mutant.breaks());
    assert!(
        run.caught_by(mutant.breaks()),
        "mutant {} was not caught by \"{}\"",
        mutant.name(),
        mutant.breaks()
    );
}

/// A liveness-only mutant: every safety property holds, and the AG EF done
/// analysis finds stuck states, in the configuration bare `twopc-check` runs
/// its liveness analysis in (every role crashable, one coordinator restart),
/// or, under one write, in the half of tests/liveness.rs's split where the
/// participants and the client crash.
fn assert_caught_by_liveness(mutant: Mutant) {
    let cfg = mutant.demo_config();
    let every = [
        Role::Coordinator,
        Role::Backup,
        Role::Wallet,
        Role::Order,
        Role::Client,
    ];
    let half = [Role::Wallet, Role::Order, Role::Client];
    let split = Config {
        mutant: cfg.mutant,
        ..twopc_checks::config::one_write_crashing(&half)
    };
    assert!(
        cfg.crashable == every.into() || cfg == split,
        "every role crashable, or one write's split: {:?}",
        cfg.crashable
    );
    assert!(cfg.max_crashes > 0 && cfg.max_restarts > 0);
    let run = check(cfg.clone());
    assert!(
        run.all_hold(),
        "{} is meant to break liveness only, yet fails {:?}",
        mutant.name(),
        run.failing()
    );
    let model = cfg.into_model();
    let result = analyze(&model, |_| {});
    assert!(!result.holds(), "mutant {} was not caught", mutant.name());
    assert_eq!(result.cut_off, 0, "nothing is cut off and excused");
    let path = result.stuck_path.expect("a path to a stuck state");
    let last = &path.last().unwrap().0;
    assert!(!model.is_done(last));
    if mutant == Mutant::FenceNotResent {
        // Stuck on an attempt whose fence (or its answer) was lost: still
        // voting, for ever.
        let voting = coordinators(&model.cfg, last).any(|(_, c)| !c.voting.is_empty());
        assert!(voting, "stuck while the attempt still votes");
    } else {
        // (FlushNever: the first state with no way to done is one before
        // the commit, from which every way leads to it in memory for ever.)
        assert!(participants(last).any(|(_, p)| !p.data.holds.is_empty()));
    }
}

#[test]
fn no_save_before_yes_is_caught() {
    assert_caught(Mutant::NoSaveBeforeYes);
}

#[test]
fn unsaved_decision_is_caught() {
    assert_caught(Mutant::UnsavedDecision);
}

#[test]
fn commit_on_vote_timeout_is_caught() {
    assert_caught(Mutant::CommitOnVoteTimeout);
}

#[test]
fn double_apply_commit_is_caught() {
    assert_caught(Mutant::DoubleApplyCommit);
}

/// Conservation with flows: a participant that applies a credit at
/// prepare as well as at commit (a top-up counted twice, or credited by an
/// attempt that then aborts) is caught, in the `--flows` configuration.
#[test]
fn credit_at_prepare_is_caught() {
    assert!(Mutant::CreditAtPrepare.demo_config().flows);
    assert_caught(Mutant::CreditAtPrepare);
}

/// Prices: an order service that ignores the price a purchase carries
/// holds a purchase at a price that is not the catalogue's (the restock
/// that would have set it aborted), in the `--prices` configuration (the
/// `prices` entry of the CI matrix).
#[test]
fn order_ignores_price_is_caught() {
    assert!(Mutant::OrderIgnoresPrice.demo_config().prices);
    assert_caught(Mutant::OrderIgnoresPrice);
}

/// Refunds: a coordinator that refunds without checking the purchase (a
/// refund of an aborted purchase, or beyond it), one that never counts
/// what it refunded (the whole refund after a partial one), and one that
/// credits a retried refund again, in the `--refunds` configuration (the
/// `refunds` entry of the CI matrix).
#[test]
fn refund_mutants_are_caught() {
    for mutant in [
        Mutant::RefundNotChecked,
        Mutant::RefundedNotRaised,
        Mutant::CreditAppliedTwice,
    ] {
        assert_eq!(mutant.demo_config().refunds, 1);
        assert_caught(mutant);
    }
}

/// One write (docs/one-write.md): a coordinator that aborts on its vote
/// timer without a fence, a participant whose fence releases a saved yes,
/// a restart that resolves "every participant holds it" as aborted, and a
/// participant that acknowledges a commit before saving it, each caught in
/// the `one-write` entry of the CI matrix; a restart that keeps the tickets
/// good without recording again the purchases it told, and an abort told
/// before it is saved, each caught with money for a second charge and the
/// coordinator crashing.
#[test]
fn one_write_mutants_are_caught() {
    for mutant in [
        Mutant::AbortWithoutFence,
        Mutant::FenceBeatsYes,
        Mutant::AllHoldAborts,
        Mutant::AckBeforeSave,
    ] {
        let cfg = Config {
            mutant: None,
            ..mutant.demo_config()
        };
        assert_eq!(cfg, twopc_checks::config::one_write());
        assert_caught(mutant);
    }
    for mutant in [Mutant::OutcomesNotRecovered, Mutant::AbortToldUnsaved] {
        assert!(mutant.demo_config().one_write);
        assert_caught(mutant);
    }
}

/// One write, liveness: a coordinator that fences once and never again
/// leaves an attempt waiting for ever once a fence or its answer is lost;
/// the AG EF done analysis finds it in the half of the one-write liveness
/// test where the participants and the client crash.
#[test]
fn fence_not_resent_is_caught() {
    let half = [Role::Wallet, Role::Order, Role::Client];
    let cfg = twopc_checks::config::one_write_crashing(&half);
    assert_eq!(
        Mutant::FenceNotResent.demo_config(),
        Config {
            mutant: Some(Mutant::FenceNotResent),
            ..cfg
        }
    );
    assert_caught(Mutant::FenceNotResent);
}

/// One write, liveness: a participant whose flush timer saves nothing
/// keeps a commit that no prepare followed in memory for ever (and its ack
/// unsent); the AG EF done analysis finds it in the half of the one-write
/// liveness test where the participants and the client crash.
#[test]
fn flush_never_is_caught() {
    let half = [Role::Wallet, Role::Order, Role::Client];
    let cfg = twopc_checks::config::one_write_crashing(&half);
    assert_eq!(
        Mutant::FlushNever.demo_config(),
        Config {
            mutant: Some(Mutant::FlushNever),
            ..cfg
        }
    );
    assert_caught(Mutant::FlushNever);
}

/// One write puts the participants' save in place of the coordinator's:
/// a participant that votes yes before saving is caught there too (its
/// vote is all that records a commit told).
#[test]
fn no_save_before_yes_is_caught_under_one_write() {
    let cfg = Config {
        mutant: Some(Mutant::NoSaveBeforeYes),
        ..twopc_checks::config::one_write()
    };
    let run = twopc_checks::run::find(
        cfg.into_model(),
        2,
        twopc_checks::properties::OUTCOME_IMPLIED,
    );
    assert!(run.caught_by(twopc_checks::properties::OUTCOME_IMPLIED));
}

#[test]
fn forget_holds_on_restart_is_caught() {
    assert_caught(Mutant::ForgetHoldsOnRestart);
}

#[test]
fn presume_commit_is_caught() {
    assert_caught(Mutant::PresumeCommit);
}

#[test]
fn unsaved_abort_outcome_is_caught() {
    assert_caught(Mutant::UnsavedAbortOutcome);
}

#[test]
fn reuse_txn_ids_is_caught() {
    assert_caught(Mutant::ReuseTxnIds);
}

#[test]
fn retry_with_key_starts_new_attempt_is_caught() {
    assert_caught(Mutant::RetryWithKeyStartsNewAttempt);
}

#[test]
fn expired_key_answered_as_new_is_caught() {
    assert_caught(Mutant::ExpiredKeyAnsweredAsNew);
}

#[test]
fn key_contents_not_compared_is_caught() {
    assert_caught(Mutant::KeyContentsNotCompared);
}

#[test]
fn outcomes_not_durable_is_caught() {
    assert_caught(Mutant::OutcomesNotDurable);
}

#[test]
fn client_accepts_any_outcome_is_caught() {
    assert_caught(Mutant::ClientAcceptsAnyOutcome);
}

/// That client also files outcomes after its last request: its memory grows
/// without bound, and the check stops with a failing verdict instead of
/// running until the machine runs out of memory.
#[test]
fn unbounded_client_memory_fails_the_bounded_property() {
    let run = check(Mutant::ClientAcceptsAnyOutcome.demo_config());
    let verdict = run.verdict(BOUNDED).expect("the property exists");
    assert!(!verdict.holds());
}

#[test]
fn forget_on_commit_is_caught() {
    assert_caught(Mutant::ForgetOnCommit);
}

#[test]
fn floor_ignores_owed_is_caught() {
    assert_caught(Mutant::FloorIgnoresOwed);
}

#[test]
fn floor_ignores_voting_is_caught() {
    assert_caught(Mutant::FloorIgnoresVoting);
}

#[test]
fn keep_dead_holds_is_caught() {
    assert_caught(Mutant::KeepDeadHolds);
}

#[test]
fn floor_keeps_holds_is_caught() {
    assert_caught(Mutant::FloorKeepsHolds);
}

#[test]
fn epoch_not_learned_is_caught() {
    assert_caught(Mutant::EpochNotLearned);
}

#[test]
fn presume_abort_for_lost_log_is_caught() {
    assert_caught(Mutant::PresumeAbortForLostLog);
}

#[test]
fn tickets_not_renewed_is_caught() {
    assert_caught(Mutant::TicketsNotRenewed);
}

/// In the `coordinator-disk-lost` configuration CI checks: every safety
/// property holds with the mutant, and the liveness analysis that holds
/// without it (tests/liveness.rs) finds the coordinator stuck asking.
#[test]
fn learn_not_retried_is_caught_by_liveness_where_the_disk_is_lost() {
    let cfg = Mutant::LearnNotRetried.demo_config();
    assert!(entries().iter().any(|e| e.config
        == Config {
            mutant: None,
            ..cfg.clone()
        }));
    let run = twopc_checks::check_with(
        cfg.clone().into_model(),
        twopc_checks::Strategy::Dfs,
        2,
        Duration::from_secs(3600),
        |_, _, _| {},
    );
    assert!(run.all_hold(), "safety only, yet fails {:?}", run.failing());
    let result = analyze(&cfg.into_model(), |_| {});
    assert!(!result.holds(), "learn-not-retried was not caught");
    assert_eq!(result.cut_off, 0, "nothing is cut off and excused");
}

#[test]
fn never_ask_is_caught_by_liveness_with_every_role_crashable() {
    assert_caught(Mutant::NeverAsk);
}

#[test]
fn restart_forgets_to_ask_is_caught_by_liveness_with_every_role_crashable() {
    assert_caught(Mutant::RestartForgetsToAsk);
}

/// The demonstration configurations are not broken by themselves: without the
/// mutant, every property holds in each of them.
#[test]
fn demo_configs_pass_without_the_mutant() {
    let mut seen = Vec::new();
    for mutant in Mutant::all() {
        let cfg = Config {
            mutant: None,
            ..mutant.demo_config()
        };
        // A matrix configuration is checked (with its count pinned) in
        // tests/matrix.rs; the others are checked here.
        let in_matrix = entries().iter().any(|e| e.config == cfg);
        if seen.contains(&cfg) || in_matrix {
            continue;
        }
        let run = check(cfg.clone());
        let failing = run.failing();
        assert!(
            failing.is_empty(),
            "{cfg:?} fails {failing:?} without any mutant"
        );
        seen.push(cfg);
    }
    assert!(seen.len() >= 3);
}
