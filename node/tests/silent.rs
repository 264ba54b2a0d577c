//! Nothing silent, with real `twopc node` processes on loopback: what an
//! operator gets to see when a node has the wrong key, when a node moved
//! and only it was restarted with the new cluster file, and when a replica
//! group lost its majority. Each case used to end in purchases aborted by
//! vote timeout (or a `status` naming a leader as if all were well) with no
//! counter moving and nothing logged where the operator looks.
//!
//! Nothing here asserts on timing: every wait polls with a generous
//! deadline (`common::PATIENCE`).

mod common;

use common::{parse_purchase, wait_for, TestCluster, BIN};
use serde_json::Value;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};

/// A loopback TCP port free now.
fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /metrics` (public) on `port`, as text.
fn metrics(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .ok()?;
    let req =
        format!("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.starts_with("HTTP/1.1 200").then_some(text)
}

/// The alarms of a node's view, as one text.
fn alarms(view: &Value) -> String {
    view["alarms"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// The view's entry for peer `name`, if it lists one.
fn peer<'a>(view: &'a Value, name: &str) -> Option<&'a Value> {
    view["peers"].as_array()?.iter().find(|p| p["name"] == name)
}

fn log_text(c: &TestCluster, name: &str) -> String {
    String::from_utf8_lossy(&std::fs::read(c.log_file(name)).unwrap_or_default()).into_owned()
}

/// Kills a child started outside `TestCluster` when the test ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A wallet started with a key of its own drops every prepare (bad MAC),
/// so purchases abort by vote timeout. The wallet tells the coordinator
/// (with its own key), so the coordinator's `status` and `/metrics` name
/// the wallet and the reason, not only the wallet's log.
#[test]
fn a_wallet_without_the_cluster_key_is_named_by_the_coordinator() {
    let mut c = TestCluster::new(&[("alice", 100)], &[("widget", 10)]);
    let token = c.dir.path().join("http-token");
    std::fs::write(&token, format!("{}\n", "ab".repeat(32))).unwrap();
    let http = free_tcp_port();
    let http_addr = format!("127.0.0.1:{http}");
    c.start(
        "coordinator",
        &[
            "--http",
            &http_addr,
            "--http-token-file",
            token.to_str().unwrap(),
            "--http-metrics-public",
        ],
    );
    c.start("order", &[]);
    // The wallet, with another key (and so not answering this cluster's
    // `status`): started by hand.
    let other_key = c.dir.path().join("other-key");
    std::fs::write(&other_key, format!("{}\n", "cd".repeat(32))).unwrap();
    let log = std::fs::File::create(c.log_file("wallet")).unwrap();
    let wallet = Command::new(BIN)
        .arg("--key-file")
        .arg(&other_key)
        .arg("node")
        .arg("--cluster")
        .arg(&c.cluster_file)
        .args(["--name", "wallet", "--data-dir"])
        .arg(c.data_dir("wallet"))
        .env_remove("TWOPC_KEY")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let _wallet = Reaped(wallet);
    wait_for("the wallet to start", || {
        log_text(&c, "wallet")
            .contains("node starting")
            .then_some(())
    });
    // The coordinator, started without a log, cannot learn the wallet's
    // epoch: nothing starts, and the purchase times out (before epochs were
    // learned it was prepared and aborted by vote timeout).
    let buy = c
        .twopc(&[
            "purchase",
            "--user",
            "alice",
            "--sku",
            "widget",
            "--qty",
            "1",
            "--price",
            "10",
            "--json",
            "--timeout",
            "3",
        ])
        .output()
        .unwrap();
    let (report, _) = common::parse_purchase(buy);
    assert!(
        report["outcome"] == "timeout"
            || (report["outcome"] == "aborted" && report["reason"] == "vote_timeout"),
        "{report}"
    );
    let wallet_port = c.ports["wallet"];
    let expected = format!(
        "from wallet (127.0.0.1:{wallet_port}): 1 datagram(s) failed authentication (bad_mac); \
         does it have the cluster key?"
    );
    let view = wait_for("the coordinator to name the wallet", || {
        let v = c.status("coordinator")?;
        alarms(&v).contains("failed authentication").then_some(v)
    });
    let text = alarms(&view);
    assert!(
        text.contains(&expected[..expected.find(": 1 ").unwrap()]),
        "{text}"
    );
    assert!(
        text.contains("(bad_mac); does it have the cluster key?"),
        "{text}"
    );
    let w = peer(&view, "wallet").expect("the wallet is listed");
    assert!(w["rejected"]["bad_mac"].as_u64() >= Some(1), "{w}");
    assert!(w["heard_ms_ago"].is_null(), "never heard from: {w}");
    // What an operator reads: the alarm under the node's name, the peer.
    let out = c
        .twopc(&["status", "--name", "coordinator"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    println!("{shown}");
    assert!(
        shown.contains(&format!("  ALARM: from wallet (127.0.0.1:{wallet_port}): ")),
        "{shown}"
    );
    assert!(
        shown.contains(&format!(
            "  peer wallet (127.0.0.1:{wallet_port}): never heard from"
        )),
        "{shown}"
    );
    let scrape = wait_for("/metrics", || metrics(http));
    assert!(
        scrape.contains("twopc_peer_rejected_total{peer=\"wallet\",reason=\"bad_mac\"}"),
        "{scrape}"
    );
    // The wallet's own log says who sent what it dropped, at WARN.
    let coordinator_port = c.ports["coordinator"];
    let wanted = format!(
        "dropped datagram from coordinator (127.0.0.1:{coordinator_port}): bad MAC (wrong cluster key or \
         tampered datagram); does it have the cluster key?"
    );
    let log = log_text(&c, "wallet");
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains(&wanted)),
        "{wanted} in\n{log}"
    );
}

/// The coordinator moves to a new port: the cluster file says so, but only
/// the coordinator was restarted with it. Its prepares now come from an
/// address the participants' cluster file does not have: they drop them
/// as `unknown_sender`, say in `status` and at WARN what to do, and the
/// coordinator's `status` shows them silent.
#[test]
fn a_moved_coordinator_is_named_by_the_participants_that_drop_it() {
    let mut c = TestCluster::new(&[("alice", 100)], &[("widget", 10)]);
    c.start_all();
    let (report, _) = c.purchase("alice", "widget", 1, 10);
    assert_eq!(report["outcome"], "committed", "{report}");
    c.terminate("coordinator");
    let old = c.ports["coordinator"];
    let new = loop {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = s.local_addr().unwrap().port();
        if port != old {
            break port;
        }
    };
    let text = std::fs::read_to_string(&c.cluster_file).unwrap();
    let moved = text.replace(&format!("127.0.0.1:{old}\""), &format!("127.0.0.1:{new}\""));
    assert_ne!(moved, text);
    std::fs::write(&c.cluster_file, moved).unwrap();
    c.ports.insert("coordinator".into(), new);
    c.start("coordinator", &[]);
    // No outcome: the coordinator's first question, for the participants'
    // epoch, is dropped too, and it starts nothing before the answer.
    for _ in 0..3 {
        let mut purchase = c.purchase_command_within("alice", "widget", 1, 10, 3);
        let (report, _) = parse_purchase(purchase.output().unwrap());
        assert_eq!(report["outcome"], "timeout", "{report}");
    }
    for participant in ["wallet", "order"] {
        let view = wait_for("a participant's status", || c.status(participant));
        assert!(
            view["counters"]["rejected"]["unknown_sender"].as_u64() >= Some(3),
            "{participant}: {view}"
        );
        let text = alarms(&view);
        assert!(
            text.contains(&format!(
                "(last: 127.0.0.1:{new}): if a node moved, restart every node with the new \
                 cluster file"
            )),
            "{participant}: {text}"
        );
        // (The first dropped is the question for the epoch, or a commit
        // the coordinator re-sends if an ack was still on its way when it
        // stopped.)
        let wanted =
            format!("dropped datagram from 127.0.0.1:{new}, which is not in the cluster file (");
        let then = "); if a node moved, restart every node with the new cluster file";
        let log = log_text(&c, participant);
        assert!(
            log.lines()
                .any(|l| l.contains("WARN") && l.contains(&wanted) && l.contains(then)),
            "{wanted} in\n{log}"
        );
    }
    let view = c.status("coordinator").unwrap();
    let w = peer(&view, "wallet").expect("the wallet is listed");
    assert!(w["heard_ms_ago"].is_null(), "{w}");
    assert!(w["unanswered"].as_u64() >= Some(3), "{w}");
    assert!(
        alarms(&view).contains("request(s) to it unanswered"),
        "{view}"
    );
}

/// Three replicas; the two followers are killed. The leader that is left
/// hears nobody: its `status` says there is no quorum, and `twopc status`
/// of the whole cluster no longer names it as the leader as if all were
/// well.
#[test]
fn a_replica_that_lost_the_majority_says_there_is_no_quorum() {
    lose_the_majority(true);
}

/// The same when the leader is one of the two killed: the follower left
/// campaigns in vain, and says there is no quorum.
#[test]
fn a_follower_that_lost_the_majority_says_there_is_no_quorum() {
    lose_the_majority(false);
}

/// Kills two of three replicas: the followers if `leader_survives`, else
/// the leader and one follower.
fn lose_the_majority(leader_survives: bool) {
    const REPLICAS: [&str; 3] = ["coordinator-1", "coordinator-2", "coordinator-3"];
    let mut c = TestCluster::replicated(3, &[("alice", 100)], &[("widget", 10)]);
    for name in REPLICAS.iter().chain(&["wallet", "order"]) {
        c.start(name, &[]);
    }
    let leader = wait_for("a leader", || c.leader(&REPLICAS));
    let view = wait_for("a quorum", || {
        let v = c.status(&leader)?;
        (v["replica"]["group"]["heard"] == 3).then_some(v)
    });
    assert!(!alarms(&view).contains("QUORUM"), "{view}");
    let whole = |c: &TestCluster| {
        let out = c.twopc(&["status", "--timeout", "2"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let before = whole(&c);
    assert!(
        before.contains(&format!("leader: {leader} (term")),
        "{before}"
    );
    let survivor = match leader_survives {
        true => leader.clone(),
        false => REPLICAS.iter().find(|n| **n != leader).unwrap().to_string(),
    };
    for name in REPLICAS.iter().filter(|n| **n != survivor) {
        c.kill9(name);
    }
    let view = wait_for("the survivor to say there is no quorum", || {
        let v = c.status(&survivor)?;
        alarms(&v).contains("NO QUORUM").then_some(v)
    });
    assert_eq!(view["replica"]["group"]["heard"], 1, "{view}");
    let text = alarms(&view);
    assert!(
        text.contains("NO QUORUM: 1 of 3 replicas heard from within 1.2 s"),
        "{text}"
    );
    let after = whole(&c);
    println!("{before}\n---\n{after}");
    assert!(!after.contains("leader: "), "{after}");
    assert!(after.contains("NO QUORUM"), "{after}");
    assert!(
        after.contains("only 1 of 3 replicas answered, 2 needed for a quorum"),
        "{after}"
    );
}

/// A coordinator replica started with another key: its frames fail
/// authentication on the others' links, which count them by reason and
/// raise an alarm; the two with the key still lead and follow.
///
/// (The group is formed first, with every replica: the replicas of a new
/// cluster all start on empty directories and recover from one another,
/// which takes an answer from every other replica; see *A replica that
/// lost its disk* in `model/src/replica.rs`.)
#[test]
fn a_replica_with_another_key_is_counted_by_the_others_links() {
    let mut c = TestCluster::replicated(3, &[("alice", 100)], &[("widget", 10)]);
    c.start_replicated();
    let replicas = ["coordinator-1", "coordinator-2", "coordinator-3"];
    wait_for("a leader", || c.leader(&replicas));
    if c.leader(&replicas).as_deref() == Some("coordinator-3") {
        // The stray must not be the one the others need to follow.
        c.kill9("coordinator-3");
        wait_for("another leader", || {
            c.leader(&["coordinator-1", "coordinator-2"])
        });
    } else {
        c.kill9("coordinator-3");
    }
    let other_key = c.dir.path().join("other-key");
    std::fs::write(&other_key, format!("{}\n", "cd".repeat(32))).unwrap();
    let log = std::fs::File::create(c.log_file("coordinator-3")).unwrap();
    let stray = Command::new(BIN)
        .arg("--key-file")
        .arg(&other_key)
        .arg("node")
        .arg("--cluster")
        .arg(&c.cluster_file)
        .args(["--name", "coordinator-3", "--data-dir"])
        .arg(c.dir.path().join("stray-coordinator-3"))
        .env_remove("TWOPC_KEY")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let _stray = Reaped(stray);
    let view = wait_for("a link to count the stray replica's frames", || {
        ["coordinator-1", "coordinator-2"].iter().find_map(|n| {
            let v = c.status(n)?;
            (v["counters"]["link_dropped"]["bad_mac"].as_u64() >= Some(1)).then_some(v)
        })
    });
    let text = alarms(&view);
    assert!(
        text.contains("replica connection(s) closed on a frame that failed authentication: does every coordinator replica have the cluster key?"),
        "{text}"
    );
    let (report, _) = c.purchase("alice", "widget", 1, 10);
    assert_eq!(
        report["outcome"], "committed",
        "two of three still decide: {report}"
    );
}
