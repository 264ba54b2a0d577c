//! The CI matrix: each configuration is checked exhaustively, every property
//! holds, and the number of unique states is the pinned one (a change in it is
//! a change in the protocol's reachable behaviour, to be explained in review).

use std::time::Duration;
use twopc_checks::matrix::entries;

fn check_entry(name: &str) {
    let entry = entries()
        .into_iter()
        .find(|e| e.name == name)
        .expect("a matrix entry");
    let run = twopc_checks::check_with(
        entry.config.into_model(),
        entry.strategy,
        2,
        Duration::from_secs(3600),
        |_, _, _| {},
    );
    let failing = run.failing();
    assert!(failing.is_empty(), "{name}: failing {failing:?}");
    assert_eq!(
        run.unique, entry.unique_states,
        "{name}: unique state count drifted"
    );
}

#[test]
fn matrix_flows() {
    check_entry("flows");
}

#[test]
fn matrix_prices() {
    check_entry("prices");
}

#[test]
fn matrix_refunds() {
    check_entry("refunds");
}

#[test]
fn matrix_compete() {
    check_entry("compete");
}

#[test]
fn matrix_one_crash() {
    check_entry("one-crash");
}

#[test]
fn matrix_two_purchases_one_crash() {
    check_entry("two-purchases-one-crash");
}

#[test]
fn matrix_two_purchases_coordinator_crash() {
    check_entry("two-purchases-coordinator-crash");
}

#[test]
fn matrix_reused_id() {
    check_entry("reused-id");
}

#[test]
fn matrix_expired_id() {
    check_entry("expired-id");
}

#[test]
fn matrix_kept_ticket() {
    check_entry("kept-ticket");
}

#[test]
fn matrix_replicated() {
    check_entry("replicated");
}

#[test]
fn matrix_replicated_backup_crash() {
    check_entry("replicated-backup-crash");
}

#[test]
fn matrix_replicated_leader_dies() {
    check_entry("replicated-leader-dies");
}

#[test]
fn matrix_competing_leaders() {
    check_entry("competing-leaders");
}

#[test]
fn matrix_replica_disk_lost() {
    check_entry("replica-disk-lost");
}

#[test]
fn matrix_coordinator_disk_lost() {
    check_entry("coordinator-disk-lost");
}

#[test]
fn matrix_one_write() {
    check_entry("one-write");
}

#[test]
fn matrix_replicated_one_write() {
    check_entry("replicated-one-write");
}
