//! Several hosts: each node in its own network namespace with its own
//! address, joined by veth pairs to a bridge in a fourth namespace, as on
//! separate machines on one switch. In the middle of a batch of purchases
//! the wallet's cable is pulled (its port on the bridge goes down),
//! partitioning it from the coordinator; then it is plugged back in, and the
//! promises are checked from the participants' durable state and the
//! outcomes the clients saw.
//!
//! The same with a replicated coordinator: three coordinator replicas, a
//! wallet and an order service, each on a host of its own; the leading
//! replica's cable is pulled while purchases run: another replica takes
//! over and purchases complete without it; once plugged back in, the old
//! leader follows and catches up with the new leader's latest version.
//!
//! Clients (purchases, `twopc status`) run on a host of their own.
//!
//! Needs root and `ip` (iproute2; CI runs as root). Where namespaces cannot
//! be created the test prints why and passes without running. Everything it
//! creates is named `tp<pid>...` and removed at the end, even on failure.
//! The addresses (10.213.0.1-6) exist only inside these namespaces.

mod common;

use common::{caught_up, leader_among, parse_purchase, BIN};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use twopc_node::runtime::storage::{as_coordinator, as_participant, inspect};

const NODES: [&str; 3] = ["coordinator", "wallet", "order"];
const REPLICATED: [&str; 5] = [
    "coordinator-1",
    "coordinator-2",
    "coordinator-3",
    "wallet",
    "order",
];
/// The host the clients run on.
const CLIENT: &str = "client";

/// The address of the `i`th host.
fn ip_of(i: usize) -> String {
    format!("10.213.0.{}", i + 1)
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Namespaces, links and processes of one test, removed on drop.
struct Hosts {
    prefix: String,
    /// The hosts: the nodes, then the client.
    names: Vec<String>,
    dir: tempfile::TempDir,
    procs: BTreeMap<String, Child>,
}

impl Hosts {
    fn index(&self, node: &str) -> usize {
        self.names.iter().position(|n| n == node).unwrap()
    }

    fn ns(&self, node: &str) -> String {
        format!("{}n{}", self.prefix, self.index(node))
    }

    fn hub(&self) -> String {
        format!("{}h", self.prefix)
    }

    /// The hub-side port of `node`'s cable.
    fn port(&self, node: &str) -> String {
        format!("p{}", self.index(node))
    }

    /// A host for each of `nodes` (addresses [`ip_of`] in this order), and
    /// one for the clients.
    fn setup(nodes: &[&str]) -> Result<Hosts, String> {
        // One set of namespaces per test: the tests of this file run in
        // parallel threads of one process.
        static SETUPS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = SETUPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let prefix = format!("tp{}x{n}", std::process::id());
        let mut names: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
        names.push(CLIENT.to_string());
        let hosts = Hosts {
            prefix,
            names,
            dir: tempfile::Builder::new()
                .prefix("twopc-netns-")
                .tempdir()
                .map_err(|e| e.to_string())?,
            procs: BTreeMap::new(),
        };
        let hub = hosts.hub();
        ip(&["netns", "add", &hub])?;
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        for (i, node) in hosts.names.iter().enumerate() {
            let addr = ip_of(i);
            let ns = hosts.ns(node);
            let port = hosts.port(node);
            ip(&["netns", "add", &ns])?;
            ip(&[
                "link", "add", "name", "eth0", "netns", &ns, "type", "veth", "peer", "name", &port,
                "netns", &hub,
            ])?;
            ip(&["-n", &hub, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &hub, "link", "set", &port, "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(hosts)
    }

    fn cluster_file(&self) -> PathBuf {
        self.dir.path().join("cluster.toml")
    }

    fn key_file(&self) -> PathBuf {
        self.dir.path().join("key")
    }

    fn data_dir(&self, node: &str) -> PathBuf {
        self.dir.path().join("data").join(node)
    }

    /// `twopc ARGS` inside `node`'s namespace.
    fn twopc(&self, node: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(node), BIN])
            .arg("--key-file")
            .arg(self.key_file())
            .args(args)
            .env_remove("TWOPC_KEY")
            .stdin(Stdio::null());
        c
    }

    fn start(&mut self, node: &str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{node}.log")))
            .unwrap();
        let child = self
            .twopc(node, &["node", "--cluster"])
            .arg(self.cluster_file())
            .args(["--name", node, "--data-dir"])
            .arg(self.data_dir(node))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.procs.insert(node.to_string(), child);
    }

    /// `node`'s view, asked from the client's host.
    fn status(&self, node: &str) -> Option<Value> {
        let out = self
            .twopc(CLIENT, &["status", "--cluster"])
            .arg(self.cluster_file())
            .args(["--name", node, "--json", "--timeout", "2"])
            .output()
            .ok()?;
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        let view = v.get(node)?.clone();
        (!view.is_null()).then_some(view)
    }

    fn purchase(&self, user: &str, sku: &str, qty: u64, price: u64) -> Child {
        self.twopc(CLIENT, &["purchase", "--cluster"])
            .arg(self.cluster_file())
            .args(["--user", user, "--sku", sku])
            .args(["--qty", &qty.to_string(), "--price", &price.to_string()])
            .args(["--json", "--timeout", "180"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn set_cable(&self, node: &str, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.hub(), "link", "set", &self.port(node), state]).unwrap();
    }

    fn stop_all(&mut self) {
        for (_, mut child) in std::mem::take(&mut self.procs) {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        self.stop_all();
        if std::thread::panicking() {
            for n in &self.names {
                let log = std::fs::read_to_string(self.dir.path().join(format!("{n}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                eprintln!("--- last lines of {n}.log ---");
                for l in tail.into_iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
        // Deleting a namespace deletes the veth ends in it.
        for n in &self.names {
            let _ = ip(&["netns", "del", &self.ns(n)]);
        }
        let _ = ip(&["netns", "del", &self.hub()]);
    }
}

fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn outcome(child: Child) -> Value {
    let out: Output = child.wait_with_output().unwrap();
    parse_purchase(out).0
}

#[test]
fn partitioned_participant_on_another_host_keeps_every_promise() {
    let Some(mut hosts) = hosts_or_skip(&NODES) else {
        return;
    };
    let users = [("ann", 100u64), ("ben", 100), ("cat", 100)];
    let stock = ("widget", 20u64);
    hosts.write_cluster("", &NODES.map(|n| (n, n)), &users, stock);
    hosts.start_all();

    // A batch of competing purchases; the wallet's cable is pulled while
    // they run, then plugged back in.
    let mut buyers = Vec::new();
    let buy = |hosts: &Hosts, i: usize| {
        let (user, _) = users[i % users.len()];
        (
            user,
            2,
            7 + i as u64 % 5,
            hosts.purchase(user, "widget", 2, 7 + i as u64 % 5),
        )
    };
    for i in 0..6 {
        buyers.push(buy(&hosts, i));
    }
    wait_for("purchases to reach the coordinator", 60, || {
        let v = hosts.status("coordinator")?;
        (v["counters"]["msgs_handled"].as_u64()? > 2).then_some(())
    });
    hosts.set_cable("wallet", false);
    println!("wallet partitioned from the coordinator");
    for i in 6..12 {
        buyers.push(buy(&hosts, i));
    }
    // While the wallet is cut off, nothing can commit; purchases abort by
    // vote timeout (or wait); the order service's holds are released.
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        hosts.status("wallet").is_none(),
        "the wallet is unreachable"
    );
    hosts.set_cable("wallet", true);
    println!("partition healed");
    for i in 12..18 {
        buyers.push(buy(&hosts, i));
    }
    let mut seen = Vec::new();
    for (user, qty, price, child) in buyers {
        let r = outcome(child);
        assert!(
            r["outcome"] == "committed" || r["outcome"] == "aborted",
            "every purchase gets an outcome: {r}"
        );
        seen.push((user, qty, price, r));
    }
    wait_for("the cluster to settle", 120, || {
        let c = hosts.status("coordinator")?;
        let w = hosts.status("wallet")?;
        let o = hosts.status("order")?;
        common::settled(&c, &w, &o).then_some(())
    });
    hosts.stop_all();
    let (commits, aborts) = check_promises(&hosts, &users, stock, &seen, &["coordinator"]);
    println!(
        "netns: {} purchases across 3 hosts with a partition: {commits} committed, aborted {aborts:?}; \
         atomic, conserved, nothing in doubt",
        seen.len()
    );
    assert!(commits > 0);
}

/// A replicated coordinator, each node on a host of its own. First the
/// leading replica's cable is pulled while purchases run: another replica
/// takes over and purchases made meanwhile complete (the cable stays out
/// until they have, and at least five seconds). Plugged back in, the old
/// leader follows and accepts the latest version. Then the same with a
/// follower's cable: the leader and the other follower go on. At the end
/// every purchase has an outcome, nothing is held, money and stock add up.
///
/// The follower's cut deposes nobody: the replica that led before it leads
/// the same term after it heals. Cut off, the follower's timer fires again
/// and again, but it only asks for pre-votes, which raise no term; back, the
/// others refuse it (they hear their leader) and the leader's heartbeat
/// makes it follow (pre-vote, `twopc_model::replica`, *A leader that is not
/// deposed for nothing*). Without pre-vote it came back with a higher term
/// and the leader stepped down.
#[test]
fn partitioned_replicas_are_replaced_and_catch_up() {
    let Some(mut hosts) = hosts_or_skip(&REPLICATED) else {
        return;
    };
    let users = [("ann", 1_000u64), ("ben", 1_000), ("cat", 1_000)];
    let stock = ("widget", 500u64);
    let roles = REPLICATED.map(|n| match n {
        "wallet" | "order" => (n, n),
        _ => (n, "coordinator"),
    });
    hosts.write_cluster("protocol = \"replicated\"\n\n", &roles, &users, stock);
    hosts.start_all();
    let leader = wait_for("a leader", 60, || {
        leader_among(&REPLICAS, |n| hosts.status(n))
    });
    let mut seen = Vec::new();
    let mut buyers: Vec<_> = (0..6).map(|i| buy(&hosts, &users, stock.0, i)).collect();
    wait_for("purchases to reach the leader", 60, || {
        let v = hosts.status(&leader)?;
        (v["counters"]["msgs_handled"].as_u64()? > 2).then_some(())
    });
    let cut = cut_off(&hosts, &leader, &users, stock.0, 6, &mut seen);
    buyers.extend((12..18).map(|i| buy(&hosts, &users, stock.0, i)));
    for (user, qty, price, child) in buyers {
        seen.push((user, qty, price, answered(child)));
    }
    let (second, led) = caught_up_and_settled(&hosts);
    // Now a follower (one not cut off yet, if one follows): whoever leads
    // goes on with the other one.
    let follower = REPLICAS
        .into_iter()
        .filter(|r| *r != second)
        .min_by_key(|r| *r == leader)
        .unwrap();
    let follower_cut = cut_off(&hosts, follower, &users, stock.0, 18, &mut seen);
    let (last, view) = caught_up_and_settled(&hosts);
    let old = hosts.status(&leader).expect("the old leader answers");
    hosts.stop_all();
    assert_eq!(
        (&last, &view["replica"]["term"]),
        (&second, &led["replica"]["term"]),
        "the leader before {follower}'s cut leads the same term after it"
    );
    let (commits, aborts) = check_promises(&hosts, &users, stock, &seen, &REPLICAS);
    println!(
        "netns replicated: {} purchases across 6 hosts; leader {leader} cut off for {:.1}s \
         ({} of the 6 purchases made meanwhile committed), then follower {follower} for {:.1}s \
         ({} committed); {last} leads at the end (accepted {}), the first leader accepted {}; \
         {commits} committed, aborted {aborts:?}; atomic, conserved, nothing in doubt",
        seen.len(),
        cut.down.as_secs_f64(),
        cut.committed,
        follower_cut.down.as_secs_f64(),
        follower_cut.committed,
        view["replica"]["accepted"],
        old["replica"]["accepted"],
    );
    assert!(commits > 0);
}

const REPLICAS: [&str; 3] = ["coordinator-1", "coordinator-2", "coordinator-3"];

/// Starts a purchase (number `i`: user, quantity and price vary with it).
fn buy<'a>(
    hosts: &Hosts,
    users: &[(&'a str, u64)],
    sku: &str,
    i: usize,
) -> (&'a str, u64, u64, Child) {
    let (user, _) = users[i % users.len()];
    let (qty, price) = (1 + i as u64 % 2, 3 + i as u64 % 5);
    (user, qty, price, hosts.purchase(user, sku, qty, price))
}

/// A purchase's report, which must be an outcome.
fn answered(child: Child) -> Value {
    let r = outcome(child);
    assert!(
        r["outcome"] == "committed" || r["outcome"] == "aborted",
        "every purchase gets an outcome: {r}"
    );
    r
}

/// What one cut did.
struct Cut {
    /// How long the cable was out.
    down: Duration,
    /// Purchases made while it was out that committed.
    committed: usize,
}

/// Pulls `replica`'s cable; once a replica of the others leads, makes six
/// purchases (numbers `first`..) and waits for their outcomes (pushed to
/// `seen`; at least one must commit), keeps the cable out for at least
/// five seconds, then plugs it back in. The replica must have accepted a
/// later version when it caught up (see [`caught_up_and_settled`]).
fn cut_off<'a>(
    hosts: &Hosts,
    replica: &str,
    users: &[(&'a str, u64)],
    sku: &str,
    first: usize,
    seen: &mut Vec<Bought<'a>>,
) -> Cut {
    let before = hosts.status(replica).expect("it answers")["replica"]["accepted"].clone();
    hosts.set_cable(replica, false);
    let cut = Instant::now();
    println!("{replica} cut off (it accepted {before})");
    let others: Vec<&str> = REPLICAS.into_iter().filter(|r| *r != replica).collect();
    let leader = wait_for("a leader among the others", 120, || {
        leader_among(&others, |n| hosts.status(n))
    });
    println!("{leader} leads");
    let during: Vec<Bought> = (first..first + 6)
        .map(|i| buy(hosts, users, sku, i))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|(u, q, p, child)| (u, q, p, answered(child)))
        .collect();
    let committed = during
        .iter()
        .filter(|(_, _, _, r)| r["outcome"] == "committed")
        .count();
    assert!(
        committed > 0,
        "purchases commit without {replica}: {during:?}"
    );
    seen.extend(during);
    std::thread::sleep(Duration::from_secs(5).saturating_sub(cut.elapsed()));
    assert!(hosts.status(replica).is_none(), "{replica} is unreachable");
    hosts.set_cable(replica, true);
    let down = cut.elapsed();
    println!(
        "cable of {replica} back in after {:.1}s",
        down.as_secs_f64()
    );
    wait_for(&format!("{replica} to accept a later version"), 120, || {
        let now = hosts.status(replica)?["replica"]["accepted"].clone();
        (now != before).then_some(())
    });
    Cut { down, committed }
}

/// Waits until a replica leads, every other replica accepted its latest
/// version, and nothing is in doubt (no vote collection, no unacknowledged
/// commit, no hold); returns the leader and its view.
fn caught_up_and_settled(hosts: &Hosts) -> (String, Value) {
    wait_for("the replicas to catch up and settle", 120, || {
        let l = leader_among(&REPLICAS, |n| hosts.status(n))?;
        let lv = hosts.status(&l)?;
        for r in REPLICAS.iter().filter(|r| **r != l) {
            if !caught_up(&lv, &hosts.status(r)?) {
                return None;
            }
        }
        let (w, o) = (hosts.status("wallet")?, hosts.status("order")?);
        common::settled(&lv, &w, &o).then_some((l, lv))
    })
}

/// Hosts for `nodes` and a client, or None (and why, printed) where
/// namespaces cannot be made.
fn hosts_or_skip(nodes: &[&str]) -> Option<Hosts> {
    match Hosts::setup(nodes) {
        Ok(h) => Some(h),
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("CI must run this test, but network namespaces cannot be made: {why}")
        }
        Err(why) => {
            println!(
                "SKIPPED: cannot create network namespaces here ({why}); this test needs root \
                 and iproute2 (`apt-get install -y iproute2`)"
            );
            None
        }
    }
}

impl Hosts {
    /// The nodes (every host but the client's).
    fn nodes(&self) -> Vec<String> {
        self.names
            .iter()
            .filter(|n| *n != CLIENT)
            .cloned()
            .collect()
    }

    /// Writes the cluster file (starting with `header`; (name, role) nodes
    /// on port 7000 of their hosts) and the key file.
    fn write_cluster(
        &self,
        header: &str,
        nodes: &[(&str, &str)],
        users: &[(&str, u64)],
        stock: (&str, u64),
    ) {
        let mut text = header.to_string();
        for (name, role) in nodes {
            let a = ip_of(self.index(name));
            text += &format!(
                "[[node]]\nname = \"{name}\"\nrole = \"{role}\"\naddress = \"{a}:7000\"\n\n"
            );
        }
        text += "[accounts]\n";
        for (u, v) in users {
            text += &format!("{u} = {v}\n");
        }
        text += &format!("[stock]\n{} = {}\n", stock.0, stock.1);
        std::fs::write(self.cluster_file(), text).unwrap();
        std::fs::write(self.key_file(), format!("{}\n", "7e57".repeat(16))).unwrap();
    }

    /// Starts every node and waits until each answers the client.
    fn start_all(&mut self) {
        for n in self.nodes() {
            self.start(&n);
        }
        for n in self.nodes() {
            wait_for(&format!("{n} to answer across the bridge"), 60, || {
                self.status(&n)
            });
        }
    }
}

/// One purchase: user, quantity, price and the client's JSON report.
type Bought<'a> = (&'a str, u64, u64, Value);

/// Checks the promises from the participants' own durable state (the
/// nodes stopped) and the clients' reports; returns the commits and the
/// aborts by reason. `coordinators`: the nodes keeping the coordinator's
/// state, none of which may keep an unacknowledged commit.
fn check_promises(
    hosts: &Hosts,
    users: &[(&str, u64)],
    stock: (&str, u64),
    seen: &[Bought<'_>],
    coordinators: &[&str],
) -> (u64, BTreeMap<String, u64>) {
    // The promises, from the participants' own durable state.
    let part = |n: &str| {
        let s = inspect(&hosts.data_dir(n)).unwrap().expect("saved state");
        as_participant(&s).unwrap().clone()
    };
    let (wallet, order) = (part("wallet"), part("order"));
    for c in coordinators {
        let coord = inspect(&hosts.data_dir(c)).unwrap().expect("saved state");
        let coord = as_coordinator(&coord).expect("a coordinator's state");
        assert!(coord.commits.is_empty(), "{c} keeps unacknowledged commits");
    }
    assert!(wallet.holds.is_empty() && order.holds.is_empty());
    // Participants forget what the coordinator's floor settled; compare what
    // both still remember (the levels below account for the rest).
    let floor = wallet.floor.max(order.floor);
    let committed = |p: &twopc_model::PartStorage| -> BTreeMap<String, String> {
        p.finished
            .range(floor..)
            .filter(|(_, f)| f.committed)
            .map(|(t, f)| (f.req.as_ref().unwrap().to_string(), t.to_string()))
            .collect()
    };
    let (wc, oc) = (committed(&wallet), committed(&order));
    assert_eq!(wc, oc, "atomic: the same transactions committed at both");
    let below_floor = |txn: &str| {
        let (e, n) = txn.split_once('.').expect("txn as epoch.n");
        let t = twopc_model::TxnId {
            epoch: e.parse().unwrap(),
            n: n.parse().unwrap(),
        };
        t < floor
    };
    let mut spent: BTreeMap<&str, u64> = BTreeMap::new();
    let mut units = 0;
    let (mut commits, mut aborts) = (0, BTreeMap::new());
    let mut reqs = BTreeSet::new();
    for (user, qty, price, r) in seen {
        let req = r["req"].as_str().unwrap().to_string();
        reqs.insert(req.clone());
        if r["outcome"] == "committed" {
            commits += 1;
            let txn = r["txn"].as_str().unwrap();
            if !below_floor(txn) {
                assert_eq!(wc.get(&req).map(String::as_str), Some(txn), "{r}");
            }
            *spent.entry(user).or_default() += qty * price;
            units += qty;
        } else {
            *aborts
                .entry(r["reason"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
            assert!(!wc.contains_key(&req), "told aborted but committed: {r}");
        }
    }
    assert!(
        wc.keys().all(|r| reqs.contains(r)),
        "nothing committed that no client saw"
    );
    for &(user, start) in users {
        let left = wallet.levels[user];
        assert_eq!(
            left + spent.get(user).copied().unwrap_or(0),
            start,
            "{user}"
        );
    }
    assert_eq!(
        order.levels[stock.0] + units,
        stock.1,
        "stock of {}",
        stock.0
    );
    (commits, aborts)
}
