//! The one-write protocol (docs/one-write.md) in real processes: a
//! two-phase-commit cluster with `one_write = true` commits purchases whose
//! decisions the coordinator tells before saving them, survives the
//! coordinator killed right after telling one, and a coordinator directory
//! that ran it refuses to start without it.

mod common;

use common::*;

const HEADER: &str = "protocol = \"2pc\"\none_write = true\n\n";

fn one_write_cluster() -> TestCluster {
    let nodes: Vec<(&str, &str, &str, u16)> = ["coordinator", "wallet", "order"]
        .iter()
        .map(|n| (*n, *n, "127.0.0.1", free_port()))
        .collect();
    TestCluster::with_nodes(HEADER, &nodes, &[("alice", 1000)], &[("widget", 100)])
}

#[test]
fn purchases_commit_and_survive_the_coordinator_killed_after_telling() {
    let mut c = one_write_cluster();
    c.start_all();
    let mut committed = 0;
    for i in 0..12 {
        let (r, code) = c.purchase("alice", "widget", 1, 5);
        assert_eq!(
            (code, r["outcome"].as_str()),
            (0, Some("committed")),
            "{i}: {r}"
        );
        committed += 1;
        if i == 4 || i == 8 {
            // Right after it told "committed": its record of it is most
            // likely still in memory only (it rides on a later save).
            c.kill9("coordinator");
            c.start("coordinator", &[]);
        }
    }
    c.settle();
    assert_eq!(c.levels("wallet")["alice"], 1000 - 5 * committed);
    assert_eq!(c.levels("order")["widget"], 100 - committed);
    assert_eq!((c.holds("wallet"), c.holds("order")), (0, 0));
    let log = std::fs::read_to_string(c.log_file("coordinator")).unwrap();
    assert!(
        log.contains("one write"),
        "the coordinator says it runs one write"
    );
}

#[test]
fn a_one_write_coordinator_directory_refuses_plain_two_phase_commit() {
    let mut c = one_write_cluster();
    c.start_all();
    let (r, _) = c.purchase("alice", "widget", 1, 5);
    assert_eq!(r["outcome"], "committed", "{r}");
    c.terminate("coordinator");
    assert!(c.data_dir("coordinator").join("ONE_WRITE").exists());
    // The operator turns one write off and restarts the coordinator.
    let file = c.cluster_file.clone();
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("one_write = true\n", "")).unwrap();
    let before = std::fs::read_dir(c.data_dir("coordinator"))
        .unwrap()
        .count();
    let out = c.node_command("coordinator", &[]).output().unwrap();
    assert!(!out.status.success());
    let log = std::fs::read_to_string(c.log_file("coordinator")).unwrap();
    assert!(log.contains("Put one_write = true back"), "{log}");
    let after = std::fs::read_dir(c.data_dir("coordinator"))
        .unwrap()
        .count();
    assert_eq!(before, after, "the refusal changes nothing");
    // Back on: it starts and commits.
    std::fs::write(&file, text).unwrap();
    c.start("coordinator", &[]);
    let (r, _) = c.purchase("alice", "widget", 1, 5);
    assert_eq!(r["outcome"], "committed", "{r}");
}

/// `twopc status` and `/metrics` say that a one-write cluster runs one
/// write, and count each decided purchase by the durable writes its
/// outcome waited for: 1 (the participants' holds, saved side by side),
/// where two-phase commit's reads 2 (`http_metrics.rs`). The cluster
/// settles before each purchase: nothing in flight, the coordinator done
/// asking the participants (`asking`, which settling once ignored: a first
/// purchase then met its start's resolution, saved meanwhile, about one
/// run in three), and a status request makes the coordinator fsync what it
/// staged. So no ticket waits for a save of the coordinator's: its start's
/// resolution, or the forgetting of the previous purchase (that would add
/// one, on both protocols).
#[test]
fn status_and_metrics_show_one_write_and_one_durable_write_per_outcome() {
    use common::http::{free_tcp_port, token_file, Api};
    let mut c = one_write_cluster();
    let (path, token) = token_file(&c);
    let port = free_tcp_port();
    let addr = format!("127.0.0.1:{port}");
    let args = ["--http", &addr, "--http-token-file", path.to_str().unwrap()];
    c.start("coordinator", &args);
    // Alone, it asks the participants what they saw and starts nothing:
    // its status says so.
    let view = c.status("coordinator").unwrap();
    assert_eq!(view["asking"], true, "{view}");
    let out = c
        .twopc(&["status", "--name", "coordinator"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("asking the participants what they saw: no purchase starts"),
        "{text}"
    );
    c.start("wallet", &[]);
    c.start("order", &[]);
    for i in 0..3 {
        c.settle();
        let (r, _) = c.purchase("alice", "widget", 1, 5);
        assert_eq!(r["outcome"], "committed", "{i}: {r}");
    }
    c.settle();
    for n in ["coordinator", "wallet", "order"] {
        let view = c.status(n).unwrap();
        assert_eq!(view["one_write"], true, "{n}: {view}");
    }
    let view = c.status("coordinator").unwrap();
    assert_eq!(view["asking"], false, "{view}");
    assert_eq!(
        view["outcome_waited"],
        serde_json::json!({"1": 3}),
        "{view}"
    );
    let out = c
        .twopc(&["status", "--name", "coordinator"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("  one write, epoch "), "{text}");
    assert!(!text.contains("asking the participants"), "{text}");
    assert!(
        text.contains("decided, by durable writes the outcome waited for: 1: 3"),
        "{text}"
    );
    let reply = Api::new(port, &token).metrics(Some(&token));
    let metrics = String::from_utf8(reply.body.to_vec()).unwrap();
    for line in [
        "twopc_one_write 1",
        "twopc_outcome_waited_total{writes=\"1\"} 3",
        "twopc_purchases_decided_total{outcome=\"committed\"} 3",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    assert!(!metrics.contains("writes=\"2\""), "{metrics}");
}
