//! Every deliberately broken protocol variant must be caught by the property it
//! breaks, and the same configuration without the bug must pass.

use std::time::Duration;
use twopc_checks::mutants::Mutant;
use twopc_checks::system::Config;

fn check(cfg: Config) -> twopc_checks::CheckRun {
    twopc_checks::check(cfg.into_model(), 2, Duration::from_secs(3600), |_, _, _| {})
}

fn assert_caught(mutant: Mutant) {
    let run = check(mutant.demo_config());
    let verdict = run.verdict(mutant.breaks()).expect("the property exists");
    assert!(
        !verdict.holds(),
        "mutant {} was not caught by \"{}\"",
        mutant.name(),
        mutant.breaks()
    );
    let path = verdict.discovery.as_ref().expect("a counterexample path");
    assert!(
        path.clone().into_actions().len() > 1,
        "a real path, not the initial state"
    );
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
fn retry_starts_new_attempt_is_caught() {
    assert_caught(Mutant::RetryStartsNewAttempt);
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
        if seen.contains(&cfg) {
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
