//! A coordinator whose log is lost (its data directory replaced by an empty
//! one) while both participants hold a transaction: nobody knows what the
//! lost log decided, so the transaction stays in doubt, shown by `twopc
//! status` and `/metrics`, its purchase in progress, while the shop goes on;
//! an operator decides it with `twopc decide` (a heuristic decision), and
//! both participants end the same way. A transaction that one participant
//! committed is committed at the other without anyone's help.

mod common;

use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::process::Output;

fn free_tcp_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `GET /metrics` (served without a token: `--http-metrics-public`).
fn metrics(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text
}

/// The value of the metric line that starts with `name ` (labels included).
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .map(|v| v.trim().parse().unwrap())
}

fn run(c: &TestCluster, args: &[&str]) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = c.twopc(args).output().unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (status.code().unwrap_or(-1), text(stdout), text(stderr))
}

/// The one hold a participant has: its transaction.
fn held_txn(c: &TestCluster, name: &str) -> Option<String> {
    let v = c.status(name)?;
    let holds = v["holds"].as_array()?;
    (holds.len() == 1).then(|| holds[0]["txn"].as_str().unwrap().to_string())
}

/// The coordinator's transactions in doubt, from `status --json`.
fn doubts(c: &TestCluster) -> Option<Vec<Value>> {
    let v = c.status("coordinator")?;
    v["doubts"]["listed"].as_array().cloned()
}

/// Alice buys from a coordinator whose commits (and, unless `tell_buyer`,
/// outcomes) never leave, until an attempt is decided commit and both
/// participants hold it: on a starved machine a vote may time out, which
/// aborts it and changes nothing (then ORDER-2, ...). Its transaction and id.
fn held_by_both(c: &TestCluster, tell_buyer: bool) -> (String, String) {
    for attempt in 1..=5 {
        let id = format!("ORDER-{attempt}");
        let out = c
            .twopc(&[
                "purchase", "--user", "alice", "--sku", "widget", "--qty", "1",
            ])
            .args(["--price", "5", "--id", &id, "--json", "--timeout", "5"])
            .output()
            .unwrap();
        let (r, code) = parse_purchase(out);
        if r["reason"] == "vote_timeout" {
            continue;
        }
        match tell_buyer {
            true => assert_eq!((code, r["outcome"].as_str()), (0, Some("committed")), "{r}"),
            false => assert_eq!(code, 4, "no outcome reaches the buyer: {r}"),
        }
        // The purchase is over (it committed, or its 5 s passed): both
        // participants voted long ago, and hold it unless it aborted.
        let held = wait_for(&format!("both participants to hold {id}"), || {
            let (w, o) = (c.status("wallet")?, c.status("order")?);
            if w["holds"].as_array()?.is_empty() && o["holds"].as_array()?.is_empty() {
                return Some(None);
            }
            let w = held_txn(c, "wallet")?;
            (held_txn(c, "order")? == w).then_some(Some(w))
        });
        match held {
            Some(txn) => return (txn, id),
            None => eprintln!("{id} aborted (a vote timed out); buying again"),
        }
    }
    panic!("five attempts in a row aborted by vote timeout")
}

/// A cluster where alice's purchase (its id returned) is held by both
/// participants and the coordinator that decided it lost its log; bob's
/// purchases go on. The coordinator runs again on an empty directory, with
/// the HTTP API (metrics public) on the returned port. `tell_buyer`: whether
/// the old coordinator's outcome reached the buyer (it decided commit).
fn in_doubt(tell_buyer: bool) -> (TestCluster, String, String, u16) {
    let mut c = TestCluster::new(&[("alice", 100), ("bob", 100)], &[("widget", 10)]);
    c.start("wallet", &[]);
    c.start("order", &[]);
    // The old coordinator decides commit, and its commits (and, unless the
    // buyer is told, its outcome) never leave.
    let dropped = match tell_buyer {
        true => "commit",
        false => "commit,outcome",
    };
    c.start("coordinator", &["--fault-drop-out", dropped]);
    let (txn, id) = held_by_both(&c, tell_buyer);
    // The coordinator's disk dies; the operator gives it an empty one.
    c.kill9("coordinator");
    let dir = c.data_dir("coordinator");
    std::fs::rename(&dir, dir.with_extension("lost")).unwrap();
    let port = free_tcp_port();
    let (path, addr) = (c.dir.path().join("http-token"), format!("127.0.0.1:{port}"));
    std::fs::write(&path, format!("{}\n", "ab".repeat(32))).unwrap();
    let path = path.to_str().unwrap().to_string();
    c.start(
        "coordinator",
        &[
            "--http",
            &addr,
            "--http-token-file",
            &path,
            "--http-metrics-public",
        ],
    );
    (c, txn, id, port)
}

/// What an operator sees before deciding, and what goes on meanwhile.
fn shown_and_shop_goes_on(c: &TestCluster, txn: &str, id: &str, port: u16) {
    let listed = wait_for("the coordinator to list the doubt", || {
        doubts(c).filter(|d| !d.is_empty())
    });
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["txn"], txn);
    assert_eq!(listed[0]["req"], id);
    let v = c.status("coordinator").unwrap();
    let alarms = v["alarms"].to_string();
    assert!(
        alarms.contains("in doubt") && alarms.contains(txn),
        "{alarms}"
    );
    let (code, text, _) = run(c, &["status", "--name", "coordinator"]);
    assert_eq!(code, 0);
    assert!(
        text.contains(&format!("in doubt: {txn} (request {id})")),
        "{text}"
    );
    assert!(text.contains("twopc decide"), "{text}");
    let m = metrics(port);
    assert_eq!(metric(&m, "twopc_coordinator_in_doubt"), Some(1.0), "{m}");
    assert_eq!(metric(&m, "twopc_alarms"), Some(1.0), "{m}");
    let log = std::fs::read_to_string(c.log_file("coordinator")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("in doubt") && l.contains(txn)),
        "the coordinator warns, naming it"
    );
    // The shop is not stopped: another buyer's purchase commits.
    let (r, code) = c.purchase("bob", "widget", 1, 5);
    assert_eq!((code, r["outcome"].as_str()), (0, Some("committed")), "{r}");
    // The purchase in doubt is in progress (exit 8), never started again.
    let (code, text, _) = run(c, &["outcome", "--id", id, "--json"]);
    assert_eq!(code, 8, "{text}");
    // Its holds stay while it waits.
    assert_eq!(held_txn(c, "wallet").as_deref(), Some(txn));
    assert_eq!(held_txn(c, "order").as_deref(), Some(txn));
}

/// Bad input and a transaction not in doubt change nothing.
fn refusals(c: &TestCluster, txn: &str) {
    let (code, _, err) = run(c, &["decide", "--txn", "3.x", "--commit"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not a transaction id"), "{err}");
    let (code, _, err) = run(c, &["decide", "--txn", txn, "--commit", "--abort"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run(c, &["decide", "--txn", txn]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run(c, &["decide", "--txn", txn, "--abort", "--name", "wallet"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("decided at the coordinator"), "{err}");
    let (code, out, _) = run(c, &["decide", "--txn", "999.0", "--abort"]);
    assert_eq!(code, 7, "{out}");
    assert!(out.contains("not in doubt") && out.contains(txn), "{out}");
    // A request without the cluster key is dropped and counted.
    let before = c.status("coordinator").unwrap()["counters"]["rejected"].clone();
    let keyless = std::process::Command::new(BIN)
        .args(["decide", "--cluster"])
        .arg(&c.cluster_file)
        .args(["--txn", txn, "--abort", "--timeout", "1"])
        .env_remove("TWOPC_KEY")
        .env_remove("TWOPC_KEY_FILE")
        .output()
        .unwrap();
    assert_eq!(keyless.status.code(), Some(4), "{keyless:?}");
    let after = c.status("coordinator").unwrap()["counters"]["rejected"].clone();
    assert_ne!(before, after, "counted as rejected");
    assert_eq!(doubts(c).unwrap().len(), 1, "nothing changed");
    assert_eq!(held_txn(c, "wallet").as_deref(), Some(txn));
}

/// Decides `txn`, and checks what follows: nothing in doubt, no holds, the
/// counter moved, the decision in heuristic.log.
fn decide(c: &TestCluster, txn: &str, port: u16, flag: &str) {
    let (code, out, err) = run(c, &["decide", "--txn", txn, flag, "--json"]);
    assert_eq!(code, 0, "{out} {err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["decided"], true, "{v}");
    c.settle();
    let decision = flag.trim_start_matches("--");
    assert_eq!(doubts(c).unwrap().len(), 0);
    let v = c.status("coordinator").unwrap();
    assert_eq!(v["counters"]["heuristic_decisions"][decision], 1, "{v}");
    assert_eq!(v["alarms"].as_array().unwrap().len(), 0, "{v}");
    let m = metrics(port);
    let counted = format!("twopc_heuristic_decisions_total{{decision=\"{decision}\"}}");
    assert_eq!(metric(&m, &counted), Some(1.0), "{m}");
    assert_eq!(metric(&m, "twopc_coordinator_in_doubt"), Some(0.0), "{m}");
    let audit = std::fs::read_to_string(c.data_dir("coordinator").join("heuristic.log")).unwrap();
    assert_eq!(audit.lines().count(), 1, "{audit}");
    let line: Value = serde_json::from_str(audit.trim()).unwrap();
    assert_eq!(
        (line["txn"].as_str(), line["decision"].as_str()),
        (Some(txn), Some(decision))
    );
    let log = std::fs::read_to_string(c.log_file("coordinator")).unwrap();
    assert!(log
        .lines()
        .any(|l| l.contains("WARN") && l.contains("heuristic decision")));
    // Decided once: asking again changes nothing.
    let (code, out, _) = run(c, &["decide", "--txn", txn, flag]);
    assert_eq!(code, 7, "{out}");
}

#[test]
fn a_transaction_in_doubt_waits_for_an_operator_who_commits_it() {
    let (c, txn, id, port) = in_doubt(true);
    shown_and_shop_goes_on(&c, &txn, &id, port);
    refusals(&c, &txn);
    decide(&c, &txn, port, "--commit");
    // Both applied it: alice paid once, two widgets left the stock (hers and bob's).
    assert_eq!(c.levels("wallet")["alice"], 95);
    assert_eq!(c.levels("wallet")["bob"], 95);
    assert_eq!(c.levels("order")["widget"], 8);
}

#[test]
fn a_transaction_in_doubt_waits_for_an_operator_who_aborts_it() {
    let (c, txn, id, port) = in_doubt(false);
    shown_and_shop_goes_on(&c, &txn, &id, port);
    decide(&c, &txn, port, "--abort");
    // Both released it: only bob's purchase happened.
    assert_eq!(c.levels("wallet")["alice"], 100);
    assert_eq!(c.levels("wallet")["bob"], 95);
    assert_eq!(c.levels("order")["widget"], 9);
}

#[test]
fn a_commit_one_participant_applied_is_recovered_without_an_operator() {
    let mut c = TestCluster::new(&[("alice", 100)], &[("widget", 10)]);
    c.start("wallet", &[]);
    // The order service never gets the commit: the wallet applies it, the
    // order service holds it.
    c.start("order", &["--fault-drop-in", "commit"]);
    c.start("coordinator", &[]);
    let (r, code) = c.purchase("alice", "widget", 1, 5);
    assert_eq!((code, r["outcome"].as_str()), (0, Some("committed")), "{r}");
    wait_for("the wallet to apply it", || {
        (c.levels("wallet")["alice"] == 95).then_some(())
    });
    assert_eq!(c.holds("order"), 1);
    // The coordinator's disk dies with the commit it owed the order service.
    c.kill9("coordinator");
    let dir = c.data_dir("coordinator");
    std::fs::rename(&dir, dir.with_extension("lost")).unwrap();
    c.kill9("order");
    c.start("order", &[]);
    c.start("coordinator", &[]);
    c.settle();
    assert_eq!(c.levels("order")["widget"], 9);
    assert_eq!(c.levels("wallet")["alice"], 95);
    let v = c.status("coordinator").unwrap();
    assert_eq!(v["doubts"]["total"], 0, "{v}");
    assert!(v["counters"]["heuristic_decisions"]
        .as_object()
        .unwrap()
        .is_empty());
    assert!(!c.data_dir("coordinator").join("heuristic.log").exists());
}

/// The same with a replicated coordinator whose every replica lost its log:
/// the leader shows the doubt and takes the decision (replicated before it
/// is sent); a follower names the leader and decides nothing.
#[test]
fn a_replicated_coordinators_leader_shows_and_decides_what_is_in_doubt() {
    const REPLICAS: [&str; 3] = ["coordinator-1", "coordinator-2", "coordinator-3"];
    let mut c = TestCluster::replicated(3, &[("alice", 100), ("bob", 100)], &[("widget", 10)]);
    c.start("wallet", &[]);
    c.start("order", &[]);
    for r in REPLICAS {
        c.start(r, &["--fault-drop-out", "commit,outcome"]);
    }
    let (txn, id) = held_by_both(&c, false);
    for r in REPLICAS {
        c.kill9(r);
        let dir = c.data_dir(r);
        std::fs::rename(&dir, dir.with_extension("lost")).unwrap();
    }
    for r in REPLICAS {
        c.start(r, &[]);
    }
    let leader = wait_for("a leader", || c.leader(&REPLICAS));
    let listed = wait_for("the leader to list the doubt", || {
        let v = c.status(&leader)?;
        let listed = v["doubts"]["listed"].as_array()?.clone();
        (!listed.is_empty()).then_some(listed)
    });
    assert_eq!(
        (listed.len(), listed[0]["txn"].as_str()),
        (1, Some(txn.as_str()))
    );
    let (_, text, _) = run(&c, &["status", "--name", &leader]);
    assert!(
        text.contains(&format!("in doubt: {txn} (request {id})")),
        "{text}"
    );
    let follower = REPLICAS.iter().find(|r| **r != leader).unwrap();
    let (code, out, _) = run(
        &c,
        &["decide", "--txn", &txn, "--commit", "--name", follower],
    );
    assert_eq!(code, 4, "{out}");
    assert!(
        out.contains("does not lead") && out.contains(&leader),
        "{out}"
    );
    let (r, code) = c.purchase("bob", "widget", 1, 5);
    assert_eq!((code, r["outcome"].as_str()), (0, Some("committed")), "{r}");
    let (code, out, err) = run(&c, &["decide", "--txn", &txn, "--commit"]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains(&format!("at {leader}")), "{out}");
    wait_for("both participants to apply it", || {
        (c.holds("wallet") == 0 && c.holds("order") == 0).then_some(())
    });
    assert_eq!(c.levels("wallet")["alice"], 95);
    assert_eq!(c.levels("order")["widget"], 8);
    let v = c.status(&leader).unwrap();
    assert_eq!(v["doubts"]["total"], 0, "{v}");
    assert_eq!(v["counters"]["heuristic_decisions"]["commit"], 1, "{v}");
    let audit = std::fs::read_to_string(c.data_dir(&leader).join("heuristic.log")).unwrap();
    assert_eq!(audit.lines().count(), 1, "{audit}");
}
