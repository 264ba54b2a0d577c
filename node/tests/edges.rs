//! The edges a new user meets, against real `twopc` processes: a commit for
//! a transaction a participant has no record of raises an alarm in `twopc
//! status`; a closed output pipe; usage errors and their documented exit
//! code; a name too long for a datagram; a client with another key; the key
//! file's format.

mod common;

use common::*;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use twopc_model::{Msg, TxnId};
use twopc_node::runtime::wire::{ClusterKey, Codec, Format, Payload};

fn twopc(c: &TestCluster) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--key-file")
        .arg(&c.key_file)
        .env_remove("TWOPC_KEY")
        .env_remove("TWOPC_KEY_FILE");
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A participant that gets a Commit, signed with the cluster key, for a
/// transaction it never prepared (what it would get after losing
/// acknowledged data) changes nothing, and `twopc status` shows an alarm
/// naming the transaction and its source, in text and in JSON.
#[test]
fn a_commit_for_an_unknown_transaction_shows_as_an_alarm_in_status() {
    let mut c = TestCluster::new(&[("alice", 100)], &[("widget", 10)]);
    c.start_all();
    let (r, code) = c.purchase("alice", "widget", 2, 10);
    assert_eq!((r["outcome"].as_str(), code), (Some("committed"), 0), "{r}");
    c.settle();
    let view = c.status("wallet").unwrap();
    assert_eq!(view["counters"]["unknown_decisions"], 0, "{view}");
    assert_eq!(view["alarms"], serde_json::json!([]), "{view}");

    let key = ClusterKey::new(&std::fs::read_to_string(&c.key_file).unwrap()).unwrap();
    let commit = Codec::new(Some(key), Format::Bincode)
        .encode(&Payload::Protocol(Msg::Commit {
            txn: TxnId { epoch: 999, n: 7 },
        }))
        .unwrap();
    // From the coordinator's address (it is stopped to free it): a
    // participant takes decisions from no other, and drops one from an
    // address not in its cluster file as `unknown_sender`.
    assert!(c.terminate("coordinator").success());
    let sock = UdpSocket::bind(("127.0.0.1", c.ports["coordinator"])).unwrap();
    let from = sock.local_addr().unwrap();
    let wallet = SocketAddr::from(([127, 0, 0, 1], c.ports["wallet"]));
    sock.send_to(&commit, wallet).unwrap();

    let view = wait_for("the wallet's alarm", || {
        let v = c.status("wallet")?;
        (v["counters"]["unknown_decisions"] == 1).then_some(v)
    });
    assert_eq!(
        view["counters"]["recent_unknown_decisions"],
        serde_json::json!([{ "txn": "999.7", "from": from.to_string() }]),
        "{view}"
    );
    let alarms = view["alarms"].as_array().unwrap();
    assert_eq!(alarms.len(), 1, "{view}");
    let alarm = alarms[0].as_str().unwrap();
    assert!(
        alarm.contains("no record of") && alarm.contains(&format!("999.7 from {from}")),
        "{alarm}"
    );
    assert_eq!(view["levels"]["alice"], 80, "nothing changed: {view}");
    // The text output shows it right under the node's name.
    let out = twopc(&c)
        .args(["status", "--cluster"])
        .arg(&c.cluster_file)
        .args(["--name", "wallet"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let shown = text(&out.stdout);
    let second = shown.lines().nth(1).unwrap_or_default();
    assert!(
        second.starts_with(
            "  ALARM: 1 commit decision(s) for transactions this node has no record of"
        ),
        "{shown}"
    );
    // Only the wallet got it; the log says it at error level.
    assert_eq!(c.status("order").unwrap()["alarms"], serde_json::json!([]));
    let log = std::fs::read_to_string(c.log_file("wallet")).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("ALARM"))
        .unwrap_or_else(|| panic!("an ALARM line in the log:\n{log}"));
    assert!(
        line.contains("ERROR") && line.contains("999.7") && line.contains(&from.to_string()),
        "{line}"
    );
}

/// `twopc status | head -1`: the reader goes away; the command stops
/// quietly (SIGPIPE, as `cat` does), never a panic.
#[test]
fn a_closed_output_pipe_stops_a_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    // Nobody runs: every node is reported as not answering, one line each.
    let c = TestCluster::new(&[("alice", 1)], &[("widget", 1)]);
    let mut child = twopc(&c)
        .args(["status", "--timeout", "0.3", "--cluster"])
        .arg(&c.cluster_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // `head` has read its line and left.
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.signal(), Some(13), "SIGPIPE: {:?}", out.status);
}

/// Usage errors exit 2, as clap does by convention, and `--help` says so
/// (it used to say 1); a cluster with nobody running makes `status` exit 4.
#[test]
fn usage_errors_exit_2_as_help_documents() {
    let c = TestCluster::new(&[("alice", 1)], &[("widget", 1)]);
    for args in [
        &["purchase", "--user", "alice"][..],
        &["frobnicate"][..],
        &["status", "--cluster", "x.toml", "--bogus"][..],
        &["inspect"][..],
    ] {
        let out = twopc(&c).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
    let help = |args: &[&str]| {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(out.status.success());
        text(&out.stdout)
    };
    assert!(help(&["--help"]).contains("2 bad usage or input (every command)"));
    let purchase = help(&["purchase", "--help"]);
    assert!(
        purchase.contains("Exit status: 0 committed, 3 aborted, 4 no outcome")
            && purchase.contains("2 bad usage or input")
            && purchase.contains("1 any other error"),
        "{purchase}"
    );
    assert!(help(&["status", "--help"]).contains("4 otherwise, 2 bad usage, 1 any"));
    assert!(help(&["inspect", "--help"]).contains("; 2 bad usage."));
    let out = twopc(&c)
        .args(["status", "--timeout", "0.2", "--cluster"])
        .arg(&c.cluster_file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
}

/// A user name too long for one datagram fails at once, naming the limit,
/// with the bad-input exit code, instead of waiting out `--timeout`.
#[test]
fn a_name_too_long_for_a_datagram_fails_at_once() {
    let c = TestCluster::new(&[("alice", 1)], &[("widget", 1)]);
    let started = Instant::now();
    let long = "u".repeat(70_000);
    let out = twopc(&c)
        .args(["purchase", "--cluster"])
        .arg(&c.cluster_file)
        .args([
            "--user", &long, "--sku", "widget", "--qty", "1", "--price", "1",
        ])
        .args(["--timeout", "120"])
        .output()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(30), "at once");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = text(&out.stderr);
    assert!(
        err.contains("--user") && err.contains("70000 bytes") && err.contains("at most 64 bytes"),
        "{err}"
    );
    assert!(err.len() < 500, "the name is not echoed whole: {err}");
}

/// A client whose key differs from the cluster's gets no answer at all (a
/// node answers a wrong key with nothing); on its timeout it says what is
/// likely instead of a bare "timeout". With the right key, the same probe
/// finds the coordinator answering.
#[test]
fn a_client_with_another_key_is_told_the_likely_cause() {
    let mut c = TestCluster::new(&[("alice", 100)], &[("widget", 10)]);
    c.start("coordinator", &[]);
    let other = c.dir.path().join("other-key");
    std::fs::write(&other, format!("{}\n", ClusterKey::generate())).unwrap();
    let purchase = |key: &std::path::Path, json: bool| {
        let mut cmd = Command::new(BIN);
        cmd.arg("--key-file")
            .arg(key)
            .env_remove("TWOPC_KEY")
            .args(["purchase", "--cluster"])
            .arg(&c.cluster_file)
            .args([
                "--user", "alice", "--sku", "widget", "--qty", "1", "--price", "1",
            ])
            .args(["--timeout", "1"]);
        if json {
            cmd.arg("--json");
        }
        cmd.output().unwrap()
    };
    let (r, code) = parse_purchase(purchase(&other, true));
    assert_eq!((r["outcome"].as_str(), code), (Some("timeout"), 4), "{r}");
    let hint = r["hint"].as_str().unwrap_or_default();
    assert!(
        hint.contains("no authenticated reply from the coordinator")
            && hint.contains("the same as the nodes'"),
        "{r}"
    );
    let out = purchase(&other, false);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        text(&out.stdout).starts_with("timeout: no authenticated reply"),
        "{out:?}"
    );
    let v = c.status("coordinator").unwrap();
    assert!(
        v["counters"]["rejected"]["bad_mac"].as_u64().unwrap() >= 1,
        "{v}"
    );
}

/// A key file holds exactly 64 hex digits (a trailing newline is fine):
/// any other content — a short key, a comment line after the key — is
/// refused, naming the file and the expected format.
#[test]
fn a_key_file_that_is_not_64_hex_digits_is_refused() {
    let c = TestCluster::new(&[("alice", 1)], &[("widget", 1)]);
    let good = std::fs::read_to_string(&c.key_file).unwrap();
    for (name, content) in [
        ("short", "sixteen chars!!!\n".to_string()),
        ("commented", format!("{good}# production key, 2026\n")),
    ] {
        let file = c.dir.path().join(name);
        std::fs::write(&file, content).unwrap();
        let out = Command::new(BIN)
            .arg("--key-file")
            .arg(&file)
            .env_remove("TWOPC_KEY")
            .args(["status", "--timeout", "0.2", "--cluster"])
            .arg(&c.cluster_file)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{name}: {out:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains(&file.display().to_string())
                && err.contains("exactly 64 hexadecimal characters")
                && err.contains("twopc keygen"),
            "{name}: {err}"
        );
    }
    // The good one is read (the nodes are down: exit 4, not a key error).
    let out = twopc(&c)
        .args(["status", "--timeout", "0.2", "--cluster"])
        .arg(&c.cluster_file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    // `twopc keygen` prints a key in the format.
    let out = Command::new(BIN).arg("keygen").output().unwrap();
    assert!(ClusterKey::new(&text(&out.stdout)).is_ok());
}
