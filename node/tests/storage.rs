//! Storage as a real node sees it: corrupt and torn log tails at start, and
//! one process per data directory.

mod common;

use common::*;
use std::io::Write;

fn last_log(c: &TestCluster, name: &str) -> std::path::PathBuf {
    log_in(&c.data_dir(name))
}

#[test]
fn corrupt_tail_refuses_to_start_and_torn_tail_is_cut() {
    let mut c = TestCluster::new(&[("alice", 100)], &[("widget", 10)]);
    c.start_all();
    let (r, _) = c.purchase("alice", "widget", 1, 10);
    assert_eq!(r["outcome"], "committed", "{r}");
    c.settle();
    assert!(c.terminate("wallet").success());
    let log = last_log(&c, "wallet");
    let good = records(&c.data_dir("wallet"));
    assert!(!good.is_empty());

    // Corrupt: one flipped bit inside the last complete record. The log is
    // preallocated, where that reads as a torn write; the synced-length
    // marker knows the record was synced: refused as lost data.
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 2] ^= 0x01;
    std::fs::write(&log, &bad).unwrap();
    let out = c.node_command("wallet", &[]).output().unwrap();
    assert!(!out.status.success(), "a corrupt log must stop the node");
    let err = std::fs::read_to_string(c.log_file("wallet")).unwrap();
    assert!(err.contains("lost data that was synced"), "{err}");
    assert!(err.contains("checksum mismatch"), "{err}");
    assert!(
        err.contains(&log.display().to_string()),
        "names the file: {err}"
    );
    assert_eq!(read(&log), bad, "the evidence is left untouched");

    // Torn: a record cut short by a crash mid-write. Never fsync'd, so
    // never acknowledged: cut off, with a warning, and the node starts.
    let mut torn = good.clone();
    torn.extend_from_slice(&[0xA7, 40, 0, 0, 0, 9, 9, 9, 9, 1, 2]);
    std::fs::write(&log, &torn).unwrap();
    c.start("wallet", &[]);
    assert_eq!(c.levels("wallet")["alice"], 90);
    let warn = std::fs::read_to_string(c.log_file("wallet")).unwrap();
    assert!(warn.contains("torn tail"), "{warn}");
    let (r, _) = c.purchase("alice", "widget", 1, 10);
    assert_eq!(r["outcome"], "committed", "{r}");
    c.settle();
    assert_eq!(c.levels("wallet")["alice"], 80);
}

#[test]
fn two_nodes_cannot_share_a_data_dir() {
    let mut c = TestCluster::new(&[("alice", 100)], &[("widget", 10)]);
    c.start("wallet", &[]);
    let out = c.node_command("wallet", &[]).output().unwrap();
    assert!(!out.status.success());
    let log = std::fs::read_to_string(c.log_file("wallet")).unwrap();
    assert!(log.contains("in use by another process"), "{log}");
    // The running node is unharmed.
    assert!(c.status("wallet").is_some());
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(c.log_file("wallet"))
        .unwrap();
    writeln!(f, "-- end of test --").unwrap();
}

#[test]
fn a_node_refuses_another_nodes_data_dir() {
    let mut c = TestCluster::new(&[("alice", 100)], &[("widget", 10)]);
    c.start("coordinator", &[]);
    assert!(c.terminate("coordinator").success());
    // The coordinator's log, copied where the wallet keeps its own.
    std::fs::create_dir_all(c.data_dir("wallet")).unwrap();
    let log = last_log(&c, "coordinator");
    std::fs::copy(&log, c.data_dir("wallet").join(log.file_name().unwrap())).unwrap();
    let out = c.node_command("wallet", &[]).output().unwrap();
    assert!(!out.status.success());
    let text = std::fs::read_to_string(c.log_file("wallet")).unwrap();
    assert!(text.contains("holds the state of another role"), "{text}");
    // And a data directory claimed by one node is refused to another.
    std::fs::create_dir_all(c.data_dir("order")).unwrap();
    std::fs::copy(
        c.data_dir("coordinator").join("NODE"),
        c.data_dir("order").join("NODE"),
    )
    .unwrap();
    let out = c.node_command("order", &[]).output().unwrap();
    assert!(!out.status.success());
    let text = std::fs::read_to_string(c.log_file("order")).unwrap();
    assert!(text.contains("belongs to node \"coordinator\""), "{text}");
}

#[test]
fn a_deleted_node_file_does_not_let_order_start_on_the_wallets_data() {
    let mut c = TestCluster::new(&[("alice", 100)], &[("widget", 10)]);
    c.start("wallet", &[]);
    assert!(c.terminate("wallet").success());
    let wallet = c.data_dir("wallet");
    std::fs::remove_file(wallet.join("NODE")).unwrap();
    // The wallet's data, NODE gone, where the order service keeps its own.
    let order = c.data_dir("order");
    std::fs::create_dir_all(&order).unwrap();
    for entry in std::fs::read_dir(&wallet).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, order.join(path.file_name().unwrap())).unwrap();
    }
    let out = c.node_command("order", &[]).output().unwrap();
    assert!(
        !out.status.success(),
        "order must not start on the wallet's data"
    );
    let text = std::fs::read_to_string(c.log_file("order")).unwrap();
    assert!(
        text.contains("belongs to node \"wallet\", not \"order\""),
        "{text}"
    );
    let log = last_log(&c, "order");
    assert!(
        text.contains(&log.display().to_string()),
        "names the file: {text}"
    );
    assert!(!order.join("NODE").exists(), "nothing written");
    // The wallet starts on its own directory, and NODE is back.
    c.start("wallet", &[]);
    assert_eq!(c.levels("wallet")["alice"], 100);
    let node = std::fs::read_to_string(wallet.join("NODE")).unwrap();
    assert!(node.contains("wallet"), "{node}");
}

#[test]
fn bytes_written_per_purchase_do_not_grow_with_accounts() {
    let names: Vec<String> = (0..50_000).map(|i| format!("user{i:05}")).collect();
    let accounts: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), 1_000)).collect();
    let mut c = TestCluster::new(&accounts, &[("widget", 1_000)]);
    c.start_all();
    let written = |c: &TestCluster| {
        let v = wait_for("wallet status", || c.status("wallet"));
        (
            v["counters"]["bytes_written"].as_u64().unwrap(),
            v["levels_total"].as_u64().unwrap(),
        )
    };
    // The first save writes the whole wallet once.
    let (r, _) = c.purchase("user00007", "widget", 1, 10);
    assert_eq!(r["outcome"], "committed", "{r}");
    c.settle();
    let (first, total) = written(&c);
    assert_eq!(total, 50_000);
    assert!(
        first > 500_000,
        "the first save holds every account: {first}"
    );
    // Every later purchase writes what changed: a hold, then the commit.
    for i in 0..5 {
        let (r, _) = c.purchase(&names[i * 9_999], "widget", 1, 10);
        assert_eq!(r["outcome"], "committed", "{r}");
    }
    c.settle();
    let (after, _) = written(&c);
    let per_purchase = (after - first) / 5;
    assert!(per_purchase < 400, "{per_purchase} bytes per purchase");
}
