//! Caller-chosen request ids from the command line, against real `twopc
//! node` processes: the same id never buys twice (also across a coordinator
//! `kill -9`), a reused id with other contents is refused, `--retry` and
//! `twopc outcome` only ask, and every answer has its exit code.

mod common;

use common::*;
use serde_json::Value;

/// `twopc purchase --id ID ...` (plus `extra`): its JSON report and exit code.
fn buy(c: &TestCluster, id: &str, qty: u64, extra: &[&str]) -> (Value, i32) {
    parse_purchase(
        c.purchase_command("alice", "widget", qty, 10)
            .args(["--id", id])
            .args(extra)
            .output()
            .unwrap(),
    )
}

/// `twopc outcome --id ID --json`: its JSON report and exit code.
fn outcome(c: &TestCluster, id: &str) -> (Value, i32) {
    parse_purchase(
        c.twopc(&["outcome", "--id", id, "--json", "--timeout", "30"])
            .output()
            .unwrap(),
    )
}

#[test]
fn an_id_buys_once_and_every_answer_has_its_exit_code() {
    let mut c = TestCluster::new(&[("alice", 100)], &[("widget", 10)]);
    c.start_all();
    let (first, code) = buy(&c, "ORDER-1", 2, &[]);
    assert_eq!(
        (first["outcome"].as_str(), code),
        (Some("committed"), 0),
        "{first}"
    );
    assert_eq!(first["req"], "ORDER-1");
    // The same id again, from a new process: the first outcome, no new charge.
    let (again, code) = buy(&c, "ORDER-1", 2, &[]);
    assert_eq!(
        (again["outcome"].as_str(), code),
        (Some("committed"), 0),
        "{again}"
    );
    assert_eq!(again["txn"], first["txn"], "the same attempt");
    // The same id with other contents: refused, nothing changes.
    let (other, code) = buy(&c, "ORDER-1", 3, &[]);
    assert_eq!(
        (other["outcome"].as_str(), code),
        (Some("refused"), 6),
        "{other}"
    );
    assert_eq!(other["refusal"], "key_reused");
    // Asking changes nothing.
    let (o, code) = outcome(&c, "ORDER-1");
    assert_eq!((o["outcome"].as_str(), code), (Some("committed"), 0), "{o}");
    assert_eq!(o["txn"], first["txn"]);
    let (o, code) = outcome(&c, "NEVER-SEEN");
    assert_eq!((o["outcome"].as_str(), code), (Some("unknown"), 7), "{o}");
    // A retry of an id the coordinator never saw only asks: nothing bought.
    let (r, code) = buy(&c, "NEVER-BOUGHT", 1, &["--retry"]);
    assert_eq!((r["outcome"].as_str(), code), (Some("unknown"), 7), "{r}");
    let (r, code) = buy(&c, "ORDER-1", 2, &["--retry"]);
    assert_eq!((r["outcome"].as_str(), code), (Some("committed"), 0), "{r}");
    c.settle();
    assert_eq!(c.levels("wallet")["alice"], 80, "charged once: 2 x 10");
    assert_eq!(c.levels("order")["widget"], 8);
    // Bad ids are bad usage and never reach the cluster.
    let long = "x".repeat(65);
    for id in ["", long.as_str()] {
        let out = c
            .purchase_command("alice", "widget", 1, 10)
            .args(["--id", id])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "--id {id:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--id must be 1 to 64 bytes"));
        let out = c.twopc(&["outcome", "--id", id]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "outcome --id {id:?}");
    }
    c.settle();
    assert_eq!(c.levels("wallet")["alice"], 80);
}

#[test]
fn a_retry_after_a_coordinator_kill_gets_the_first_outcome_and_one_charge() {
    let mut c = TestCluster::new(&[("alice", 100)], &[("widget", 10)]);
    c.start_all();
    // The purchase is in flight when the coordinator dies (the caller gives
    // up quickly); whatever happened, a retry with the same id settles it.
    let child = c
        .purchase_command("alice", "widget", 1, 10)
        .args(["--id", "ORDER-K", "--timeout", "0.002"])
        .spawn()
        .unwrap();
    c.kill9("coordinator");
    let _ = child.wait_with_output().unwrap();
    c.start("coordinator", &[]);
    let (r, code) = buy(&c, "ORDER-K", 1, &[]);
    assert_eq!((r["outcome"].as_str(), code), (Some("committed"), 0), "{r}");
    let (again, code) = buy(&c, "ORDER-K", 1, &[]);
    assert_eq!(
        (again["txn"].clone(), code),
        (r["txn"].clone(), 0),
        "{again}"
    );
    c.settle();
    assert_eq!(c.levels("wallet")["alice"], 90, "exactly one debit");
    assert_eq!(c.levels("order")["widget"], 9);
}
