//! A wallet and an order service whose initial balances and stock come from
//! CSV files named in the cluster file (`accounts_file`, `stock_file`), with
//! real `twopc node` processes: purchases against thousands of accounts, a
//! bad file refused with its line and nothing written, and a restart that
//! does not read the file again.

mod common;

use common::*;
use std::path::Path;
use twopc_node::runtime::storage::{as_participant, inspect};

const ACCOUNTS: usize = 3000;

fn user(i: usize) -> String {
    format!("user{i:04}")
}

/// A cluster whose wallet starts from `balances.csv` (3000 accounts of
/// 100, beside the cluster file, named relative to it) and whose order
/// service starts from `[stock]` and `stock.csv` together.
fn csv_cluster() -> TestCluster {
    let c = TestCluster::new(&[], &[("widget", 1_000)]);
    let mut csv = String::from("key,amount\n");
    for i in 0..ACCOUNTS {
        csv += &format!("{},100\n", user(i));
    }
    std::fs::write(c.dir.path().join("balances.csv"), csv).unwrap();
    std::fs::write(c.dir.path().join("stock.csv"), "gadget,5\r\n\r\n").unwrap();
    let text = std::fs::read_to_string(&c.cluster_file).unwrap();
    let text = format!("accounts_file = \"balances.csv\"\nstock_file = \"stock.csv\"\n{text}");
    std::fs::write(&c.cluster_file, text).unwrap();
    c
}

/// The levels in a stopped participant's data directory.
fn durable_levels(dir: &Path) -> Option<std::collections::BTreeMap<String, u64>> {
    let state = inspect(dir).unwrap()?;
    let p = as_participant(&state).expect("a participant's state");
    Some(p.levels.iter().map(|(k, v)| (k.clone(), *v)).collect())
}

#[test]
fn a_wallet_started_from_a_csv_of_thousands_of_accounts_serves_purchases_against_them() {
    let mut c = csv_cluster();
    c.start_all();
    let v = c.status("wallet").unwrap();
    assert_eq!(v["levels_total"], ACCOUNTS);
    for (i, (u, sku)) in [(0, "widget"), (1234, "gadget"), (ACCOUNTS - 1, "widget")]
        .iter()
        .enumerate()
    {
        let (r, code) = c.purchase(&user(*u), sku, 1, 10 * (i as u64 + 1));
        assert_eq!((r["outcome"].as_str(), code), (Some("committed"), 0), "{r}");
    }
    let (r, _) = c.purchase(&user(7), "widget", 1, 101);
    assert_eq!(r["reason"], "insufficient_funds", "{r}");
    let (r, _) = c.purchase(&user(ACCOUNTS), "widget", 1, 1);
    assert_eq!(r["reason"], "unknown_user", "{r}");
    c.settle();
    for n in ["coordinator", "wallet", "order"] {
        assert!(c.terminate(n).success(), "{n}");
    }
    let wallet = durable_levels(&c.data_dir("wallet")).unwrap();
    assert_eq!(wallet.len(), ACCOUNTS);
    assert_eq!(
        [0, 1234, ACCOUNTS - 1, 7].map(|u| wallet[&user(u)]),
        [90, 80, 70, 100]
    );
    let stock = durable_levels(&c.data_dir("order")).unwrap();
    assert_eq!(
        stock.into_iter().collect::<Vec<_>>(),
        [("gadget".to_string(), 4), ("widget".to_string(), 998)]
    );

    // Restarted, the wallet replays its data directory: the file is not
    // read again (here it is gone), and every balance is as it was.
    std::fs::remove_file(c.dir.path().join("balances.csv")).unwrap();
    c.start_all();
    let (r, code) = c.purchase(&user(1234), "widget", 1, 80);
    assert_eq!((r["outcome"].as_str(), code), (Some("committed"), 0), "{r}");
    c.settle();
    assert!(c.terminate("wallet").success());
    let wallet = durable_levels(&c.data_dir("wallet")).unwrap();
    assert_eq!((wallet.len(), wallet[&user(1234)]), (ACCOUNTS, 0));
}

#[test]
fn a_bad_row_stops_the_first_start_naming_the_file_and_line_and_writes_nothing() {
    let mut c = csv_cluster();
    let csv = c.dir.path().join("balances.csv");
    let good = std::fs::read_to_string(&csv).unwrap();
    // Line 1 is the header, so user0500 is on line 502.
    let bad = good.replacen("user0500,100", "user0500,1O0", 1);
    std::fs::write(&csv, &bad).unwrap();
    let out = c.node_command("wallet", &[]).output().unwrap();
    assert!(!out.status.success());
    let log = std::fs::read_to_string(c.log_file("wallet")).unwrap();
    let want = format!(
        "accounts_file {}, line 502: amount \"1O0\" of key \"user0500\" is not a whole number",
        csv.display()
    );
    assert!(log.contains(&want), "{log}");
    assert!(log.contains("did not start and changed nothing"), "{log}");
    let dir = c.data_dir("wallet");
    assert_eq!(durable_levels(&dir), None, "nothing saved");
    assert!(!dir.join("NODE").exists(), "the directory is not claimed");

    // A key in both the file and the table is refused too.
    std::fs::write(&csv, &good).unwrap();
    let text = std::fs::read_to_string(&c.cluster_file).unwrap();
    std::fs::write(
        &c.cluster_file,
        text.replace("[accounts]\n", "[accounts]\nuser0009 = 1\n"),
    )
    .unwrap();
    let out = c.node_command("wallet", &[]).output().unwrap();
    assert!(!out.status.success());
    let log = std::fs::read_to_string(c.log_file("wallet")).unwrap();
    assert!(
        log.contains("line 11: key \"user0009\" is also in the cluster file's [accounts] table"),
        "{log}"
    );
    assert_eq!(durable_levels(&dir), None, "nothing saved");

    // Fixed, it starts: this is still its first start.
    std::fs::write(&c.cluster_file, text).unwrap();
    c.start_all();
    let (r, code) = c.purchase(&user(500), "widget", 1, 100);
    assert_eq!((r["outcome"].as_str(), code), (Some("committed"), 0), "{r}");
}
