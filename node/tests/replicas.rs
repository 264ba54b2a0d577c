//! A replicated coordinator, as real processes: three `twopc node` replicas
//! of the coordinator, a wallet and an order service on loopback. The
//! leading replica is killed with SIGKILL while clients make purchases, and
//! never comes back: every purchase still gets an outcome from the replicas
//! left, nothing stays held, and money and stock add up.
//!
//! Nothing here asserts on timing: every wait polls with a generous
//! deadline (`common::PATIENCE`, and purchases' own `--timeout`).

mod common;

use common::{signal, wait_for, TestCluster};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

const REPLICAS: [&str; 3] = ["coordinator-1", "coordinator-2", "coordinator-3"];
const ACCOUNTS: [(&str, u64); 4] = [("u0", 400), ("u1", 400), ("u2", 400), ("u3", 30)];
const STOCK: [(&str, u64); 2] = [("s0", 150), ("s1", 12)];

/// The replica that says it leads, of those in `alive`.
fn leader(c: &TestCluster, alive: &[&str]) -> Option<String> {
    c.leader(alive)
}

/// One purchase made by a client thread: what it asked and what it got.
struct Made {
    user: String,
    sku: String,
    qty: u64,
    price: u64,
    report: Value,
}

#[test]
fn purchases_complete_when_the_leading_replica_is_killed() {
    kill_the_leader_under_load(&[]);
}

/// The same over a bad network: every node loses, duplicates, delays and
/// reorders messages on purpose (between replicas too, whole messages
/// before their delta encoding).
#[test]
fn purchases_complete_when_the_leader_is_killed_on_a_lossy_network() {
    kill_the_leader_under_load(&[
        "--fault-loss",
        "0.05",
        "--fault-duplicate",
        "0.05",
        "--fault-delay",
        "0.1",
        "--fault-delay-max-ms",
        "30",
        "--fault-reorder",
        "0.05",
    ]);
}

/// Three replicas, a wallet and an order service, each started with
/// `node_args`; four clients make ten purchases each; the leading replica
/// is killed with SIGKILL a quarter of the way through and never restarted.
fn kill_the_leader_under_load(node_args: &[&str]) {
    let mut c = TestCluster::replicated(3, &ACCOUNTS, &STOCK);
    for name in REPLICAS.iter().chain(&["wallet", "order"]) {
        c.start(name, node_args);
    }
    wait_for("a leader", || leader(&c, &REPLICAS));

    const CLIENTS: usize = 4;
    const EACH: usize = 10;
    let done = AtomicUsize::new(0);
    let made = Mutex::new(Vec::new());
    let first = std::thread::scope(|s| {
        for client in 0..CLIENTS {
            let (c, done, made) = (&c, &done, &made);
            s.spawn(move || {
                for i in 0..EACH {
                    let user = format!("u{}", (client + i) % ACCOUNTS.len());
                    let sku = format!("s{}", (client * 3 + i) % STOCK.len());
                    let (qty, price) = (1 + (i as u64 % 3), 1 + (client as u64 * 7 + i as u64) % 9);
                    let id = format!("replicas-{client}-{i}");
                    let out = c
                        .twopc(&["purchase", "--id", &id, "--user", &user, "--sku", &sku])
                        .args(["--qty", &qty.to_string(), "--price", &price.to_string()])
                        .args(["--json", "--timeout", "300"])
                        .output()
                        .unwrap();
                    let (report, _) = common::parse_purchase(out);
                    made.lock().unwrap().push(Made {
                        user,
                        sku,
                        qty,
                        price,
                        report,
                    });
                    done.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        // In the middle of the purchases: kill -9 the leader, for good.
        // (Usually the first replica, which leads the first term; on a
        // starved machine an election may have happened already.)
        wait_for("a quarter of the purchases", || {
            (done.load(Ordering::SeqCst) >= CLIENTS * EACH / 4).then_some(())
        });
        let first = wait_for("a leader", || leader(&c, &REPLICAS));
        signal(c.pid(&first), "KILL");
        first
    });
    let made = made.into_inner().unwrap();
    assert_eq!(made.len(), CLIENTS * EACH);

    // Every purchase has an outcome: committed or aborted, none lost.
    for m in &made {
        let outcome = m.report["outcome"].as_str().unwrap_or_default();
        assert!(
            outcome == "committed" || outcome == "aborted",
            "purchase {} got {}",
            m.report["req"],
            m.report
        );
    }
    let committed: Vec<&Made> = made
        .iter()
        .filter(|m| m.report["outcome"] == "committed")
        .collect();
    assert!(!committed.is_empty(), "some purchases commit");

    // Another replica leads now, and everything settles: no vote
    // collection, no unacknowledged commit, no hold at either participant.
    let alive: Vec<&str> = REPLICAS.into_iter().filter(|r| *r != first).collect();
    let next = wait_for("a new leader among the others", || leader(&c, &alive));
    wait_for("nothing in doubt", || {
        let coordinator = c.status(&next)?;
        let (w, o) = (c.status("wallet")?, c.status("order")?);
        let quiet = coordinator["voting"] == 0
            && coordinator["unacked_commits"]
                .as_array()
                .is_some_and(|a| a.is_empty())
            && w["holds_total"] == 0
            && o["holds_total"] == 0;
        quiet.then_some(())
    });

    // Conserved, key by key: initial = level now + committed amounts.
    let mut spent: BTreeMap<String, u64> = BTreeMap::new();
    let mut sold: BTreeMap<String, u64> = BTreeMap::new();
    for m in &committed {
        *spent.entry(m.user.clone()).or_default() += m.qty * m.price;
        *sold.entry(m.sku.clone()).or_default() += m.qty;
    }
    let balances = c.levels("wallet");
    for (user, initial) in ACCOUNTS {
        let spent = spent.get(user).copied().unwrap_or(0);
        assert_eq!(balances[user] + spent, initial, "money of {user}");
    }
    let stock = c.levels("order");
    for (sku, initial) in STOCK {
        let sold = sold.get(sku).copied().unwrap_or(0);
        assert_eq!(stock[sku] + sold, initial, "stock of {sku}");
    }
}

/// A follower killed with SIGKILL while purchases go on (the two others
/// are a majority) restarts from its data directory: it replays its
/// promise and what it accepted (log records that are diffs of the
/// coordinator's state), and catches up with the leader's latest version.
#[test]
fn a_killed_follower_restarts_from_its_log_and_catches_up() {
    let mut c = TestCluster::replicated(3, &ACCOUNTS, &STOCK);
    for name in REPLICAS.iter().chain(&["wallet", "order"]) {
        c.start(name, &[]);
    }
    let buy = |c: &TestCluster, i: usize| {
        let (r, _) = c.purchase("u0", "s0", 1, 1 + i as u64 % 3);
        assert_eq!(r["outcome"], "committed", "{r}");
    };
    for i in 0..5 {
        buy(&c, i);
    }
    let first = wait_for("a leader", || leader(&c, &REPLICAS));
    let follower = *REPLICAS.iter().find(|r| **r != first).unwrap();
    // What it accepted so far (beyond the first version, the epoch).
    let before = wait_for("the follower to accept the purchases", || {
        let accepted = c.status(follower)?["replica"]["accepted"].clone();
        (accepted[1].as_u64()? > 1).then_some(accepted)
    });
    c.kill9(follower);
    for i in 5..15 {
        buy(&c, i);
    }
    c.start(follower, &[]);
    // It follows the leader's term again and holds its latest version
    // (whichever replica leads by then).
    wait_for("the follower to catch up", || {
        let l = c.status(&leader(&c, &REPLICAS)?)?;
        let f = c.status(follower)?;
        common::caught_up(&l, &f).then_some(())
    });
    // The leader's state moved on while it was down, and so did its own.
    let after = c.status(follower).unwrap()["replica"]["accepted"].clone();
    assert_ne!(after, before);
    let balances = c.levels("wallet");
    assert!(balances["u0"] < 400);
}

/// `twopc node` as node `name` of `c`: its exit code and what it printed. The data directory must stay untouched (not even created).
fn refused(c: &TestCluster, name: &str) -> (Option<i32>, String) {
    let out = c.node_command(name, &[]).output().unwrap();
    let log = std::fs::read_to_string(c.log_file(name)).unwrap_or_default();
    assert!(!c.data_dir(name).exists(), "nothing written for {name}");
    (out.status.code(), log)
}

fn coordinators(n: usize) -> Vec<(String, u16)> {
    (1..=n)
        .map(|i| {
            let port = std::net::UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            (format!("coordinator-{i}"), port)
        })
        .collect()
}

fn cluster_with(header: &str, n: usize) -> TestCluster {
    let coords = coordinators(n);
    let mut nodes: Vec<(&str, &str, &str, u16)> = coords
        .iter()
        .map(|(name, port)| (name.as_str(), "coordinator", "127.0.0.1", *port))
        .collect();
    nodes.push(("wallet", "wallet", "127.0.0.1", 1));
    nodes.push(("order", "order", "127.0.0.1", 2));
    TestCluster::with_nodes(header, &nodes, &ACCOUNTS, &STOCK)
}

#[test]
fn two_phase_commit_refuses_several_coordinators() {
    // (A file that names no protocol and lists three coordinator nodes is
    // a replicated cluster: see the cluster file's unit tests.)
    let c = cluster_with("protocol = \"2pc\"\n", 3);
    for name in ["coordinator-1", "wallet"] {
        let (code, stderr) = refused(&c, name);
        assert_ne!(code, Some(0), "{name} refused");
        let file = c.cluster_file.display().to_string();
        assert!(stderr.contains(&file), "names the file: {stderr}");
        assert!(
            stderr.contains("exactly one coordinator node, this file lists 3")
                && stderr.contains("protocol = \"replicated\""),
            "{stderr}"
        );
    }
}

#[test]
fn a_replicated_coordinator_of_two_replicas_is_refused() {
    let c = cluster_with("protocol = \"replicated\"\n", 2);
    for name in ["coordinator-1", "coordinator-2", "order"] {
        let (code, stderr) = refused(&c, name);
        assert_ne!(code, Some(0), "{name} refused");
        assert!(
            stderr.contains(&c.cluster_file.display().to_string()),
            "{stderr}"
        );
        assert!(
            stderr.contains("odd number of coordinator nodes, at least 3")
                && stderr.contains("lists 2"),
            "{stderr}"
        );
    }
}

/// At scale, run by hand (`cargo nextest run -p twopc-node --release
/// --run-ignored only -E 'test(full_outcome_table)'`; a few minutes): the
/// coordinator remembers its full `retention` of 100,000 outcomes, so an
/// `Accept` or a `Promise` that goes whole carries about as many outcomes;
/// the leading replica is killed, another takes over from that state, and
/// purchases go on. Prints how long the last purchases took.
#[test]
#[ignore = "minutes of purchases: run by hand"]
fn a_leader_with_a_full_outcome_table_is_replaced() {
    use std::time::{Duration, Instant};
    use twopc_model::{Purchase, Verdict};
    use twopc_node::ops::local::LocalCluster;
    use twopc_node::runtime::cluster::Protocol;
    const CLIENTS: usize = 32;
    const FILL: usize = 105_000;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let users: BTreeMap<String, u64> = (0..CLIENTS)
            .map(|c| (format!("u{c}"), u64::MAX / 64))
            .collect();
        let stock: BTreeMap<String, u64> = [("s".to_string(), u64::MAX / 2)].into();
        let bin = std::path::Path::new(env!("CARGO_BIN_EXE_twopc"));
        let cluster = LocalCluster::spawn_in(
            &std::env::temp_dir(),
            bin,
            Protocol::Replicated,
            false,
            users,
            stock,
        )
        .await
        .unwrap();
        let buy = |c: usize, n: usize| -> Vec<Purchase> {
            (0..n)
                .map(|_| Purchase {
                    user: format!("u{c}"),
                    sku: "s".into(),
                    qty: 1,
                    price: 1,
                })
                .collect()
        };
        let run = |each: usize| {
            let mut tasks = Vec::new();
            for c in 0..CLIENTS {
                let addrs = cluster.cluster.coordinator_addresses();
                let codec = cluster.codec.clone();
                let purchases = buy(c, each);
                tasks.push(tokio::spawn(async move {
                    let mut committed = 0;
                    // A fresh client actor per 100 (as the bench does).
                    for chunk in purchases.chunks(100) {
                        let seen = twopc_node::ops::client::run_client(
                            &addrs,
                            chunk.to_vec(),
                            codec.clone(),
                            Duration::from_secs(600),
                            |_| {},
                        )
                        .await
                        .unwrap();
                        assert_eq!(seen.len(), chunk.len(), "every purchase has an outcome");
                        committed += seen
                            .iter()
                            .filter(|o| o.verdict == Verdict::Committed)
                            .count();
                    }
                    committed
                }));
            }
            tasks
        };
        let started = Instant::now();
        let mut filled = 0;
        for t in run(FILL / CLIENTS) {
            filled += t.await.unwrap();
        }
        eprintln!("filled: {filled} committed in {:.1?}", started.elapsed());
        let (leader, view) = cluster.leader().await.unwrap().expect("a leader");
        assert_eq!(view.clients, 100_000, "the outcome table is full");
        let killed_at = Instant::now();
        cluster.kill9(&leader).unwrap();
        let mut after = 0;
        for t in run(10) {
            after += t.await.unwrap();
        }
        eprintln!(
            "killed {leader}; {after} purchases after it, all answered within {:.1?}",
            killed_at.elapsed()
        );
        // (The killed replica answers nothing: whoever leads is another.)
        let (_, view) = cluster.leader().await.unwrap().expect("a new leader");
        assert_eq!(view.clients, 100_000, "the new leader has every outcome");
        assert!(cluster.settle(Duration::from_secs(120)).await.unwrap());
        cluster.stop().await.unwrap();
    });
}
