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
