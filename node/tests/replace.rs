//! An operator replaces the coordinator: its data directory by an empty one
//! (what twopc's refusal message advises for a damaged directory), or the
//! coordinator by a replicated one on empty directories. The participants
//! have seen later epochs than an empty log starts from; the new coordinator
//! learns them before it prepares anything, so purchases commit at once
//! instead of being ignored below the participants' floors.

mod common;

use common::*;
use std::time::Instant;

/// Three runs of a cluster (each start of the coordinator bumps its epoch,
/// and the participants' floors follow), one purchase in each.
fn three_runs(c: &mut TestCluster) {
    for run in 0..3 {
        c.start_all();
        let (r, code) = c.purchase("alice", "widget", 1, 5);
        assert_eq!(
            (code, r["outcome"].as_str()),
            (0, Some("committed")),
            "run {run}: {r}"
        );
        for name in ["coordinator", "wallet", "order"] {
            c.terminate(name);
        }
    }
}

/// A purchase bounded by one second: it must be decided by then.
fn purchase_within_a_second(c: &TestCluster) -> (serde_json::Value, f64) {
    let started = Instant::now();
    let out = c
        .twopc(&[
            "purchase",
            "--user",
            "alice",
            "--sku",
            "widget",
            "--qty",
            "1",
            "--price",
            "5",
            "--json",
            "--timeout",
            "1",
        ])
        .output()
        .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let (r, _) = parse_purchase(out);
    (r, seconds)
}

#[test]
fn a_coordinator_on_an_empty_directory_learns_the_epoch_and_commits_at_once() {
    let mut c = TestCluster::new(&[("alice", 100)], &[("widget", 10)]);
    three_runs(&mut c);
    // The operator moves the coordinator's directory away.
    let dir = c.data_dir("coordinator");
    std::fs::rename(&dir, dir.with_extension("damaged")).unwrap();
    c.start("wallet", &[]);
    c.start("order", &[]);
    // The participants are up before the coordinator: it asks them at once.
    wait_for("the participants", || {
        (c.status("wallet").is_some() && c.status("order").is_some()).then_some(())
    });
    c.start("coordinator", &[]);
    wait_for("the coordinator", || c.status("coordinator"));
    let (r, seconds) = purchase_within_a_second(&c);
    assert_eq!(r["outcome"], "committed", "{r} after {seconds:.2} s");
    eprintln!("first purchase on the empty directory: committed in {seconds:.3} s");
    // Under an epoch above the three runs'.
    let txn = r["txn"].as_str().unwrap_or_default().to_string();
    let epoch: u64 = txn.split('.').next().unwrap().parse().unwrap();
    assert!(epoch > 3, "txn {txn}");
    assert_eq!(c.levels("wallet")["alice"], 100 - 4 * 5);
    assert_eq!(c.levels("order")["widget"], 10 - 4);
}

#[test]
fn a_switch_to_the_replicated_coordinator_learns_the_epoch_and_commits_at_once() {
    let mut c = TestCluster::new(&[("alice", 100)], &[("widget", 10)]);
    three_runs(&mut c);
    // The same participants (their directories and key) under three
    // coordinator replicas on empty directories.
    let mut r = TestCluster::replicated(3, &[("alice", 100)], &[("widget", 10)]);
    std::fs::copy(&c.key_file, &r.key_file).unwrap();
    for name in ["wallet", "order"] {
        let to = r.data_dir(name);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(c.data_dir(name))
            .arg(&to)
            .status()
            .unwrap();
        assert!(status.success());
    }
    for name in [
        "wallet",
        "order",
        "coordinator-1",
        "coordinator-2",
        "coordinator-3",
    ] {
        r.start(name, &[]);
    }
    wait_for("a leader", || {
        r.leader(&["coordinator-1", "coordinator-2", "coordinator-3"])
    });
    let (out, seconds) = purchase_within_a_second(&r);
    assert_eq!(out["outcome"], "committed", "{out} after {seconds:.2} s");
    eprintln!("first purchase after the switch: committed in {seconds:.3} s");
    assert_eq!(r.levels("wallet")["alice"], 100 - 4 * 5);
}
