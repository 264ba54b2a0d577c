//! Hosts in network namespaces for `netns` and `netns_replicated`: each
//! node in its own network namespace with its own address, joined by veth
//! pairs to a bridge in a further namespace, as on separate machines on one
//! switch; a node's cable can be pulled (its port on the bridge goes down)
//! and plugged back in. Clients (purchases, `twopc status`) run on a host of
//! their own. Then the promises are checked from the participants' durable
//! state and the outcomes the clients saw.
//!
//! Needs root and `ip` (iproute2; CI runs as root). Where namespaces cannot
//! be created a test prints why and passes without running. Everything it
//! creates is named `tp<pid>...` and removed at the end, even on failure.
//! The addresses (10.213.0.1-6) exist only inside these namespaces.

use super::{parse_purchase, BIN};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use twopc_node::runtime::storage::{as_coordinator, as_participant, inspect};

pub const NODES: [&str; 3] = ["coordinator", "wallet", "order"];
pub const REPLICATED: [&str; 5] = [
    "coordinator-1",
    "coordinator-2",
    "coordinator-3",
    "wallet",
    "order",
];
/// The host the clients run on.
pub const CLIENT: &str = "client";

/// The address of the `i`th host.
pub fn ip_of(i: usize) -> String {
    format!("10.213.0.{}", i + 1)
}

pub fn ip(args: &[&str]) -> Result<(), String> {
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
pub struct Hosts {
    prefix: String,
    /// The hosts: the nodes, then the client.
    names: Vec<String>,
    dir: tempfile::TempDir,
    procs: BTreeMap<String, Child>,
}

impl Hosts {
    pub fn index(&self, node: &str) -> usize {
        self.names.iter().position(|n| n == node).unwrap()
    }

    pub fn ns(&self, node: &str) -> String {
        format!("{}n{}", self.prefix, self.index(node))
    }

    pub fn hub(&self) -> String {
        format!("{}h", self.prefix)
    }

    /// The hub-side port of `node`'s cable.
    pub fn port(&self, node: &str) -> String {
        format!("p{}", self.index(node))
    }

    /// A host for each of `nodes` (addresses [`ip_of`] in this order), and
    /// one for the clients.
    pub fn setup(nodes: &[&str]) -> Result<Hosts, String> {
        // One set of namespaces per test: the tests of one binary run in
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

    pub fn cluster_file(&self) -> PathBuf {
        self.dir.path().join("cluster.toml")
    }

    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("key")
    }

    pub fn data_dir(&self, node: &str) -> PathBuf {
        self.dir.path().join("data").join(node)
    }

    /// `twopc ARGS` inside `node`'s namespace.
    pub fn twopc(&self, node: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(node), BIN])
            .arg("--key-file")
            .arg(self.key_file())
            .args(args)
            .env_remove("TWOPC_KEY")
            .stdin(Stdio::null());
        c
    }

    pub fn start(&mut self, node: &str) {
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
    pub fn status(&self, node: &str) -> Option<Value> {
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

    pub fn purchase(&self, user: &str, sku: &str, qty: u64, price: u64) -> Child {
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

    pub fn set_cable(&self, node: &str, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.hub(), "link", "set", &self.port(node), state]).unwrap();
    }

    pub fn stop_all(&mut self) {
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

pub fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn outcome(child: Child) -> Value {
    let out: Output = child.wait_with_output().unwrap();
    parse_purchase(out).0
}

/// Hosts for `nodes` and a client, or None (and why, printed) where
/// namespaces cannot be made.
pub fn hosts_or_skip(nodes: &[&str]) -> Option<Hosts> {
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
    pub fn nodes(&self) -> Vec<String> {
        self.names
            .iter()
            .filter(|n| *n != CLIENT)
            .cloned()
            .collect()
    }

    /// Writes the cluster file (starting with `header`; (name, role) nodes
    /// on port 7000 of their hosts) and the key file.
    pub fn write_cluster(
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
    pub fn start_all(&mut self) {
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
pub type Bought<'a> = (&'a str, u64, u64, Value);

/// Checks the promises from the participants' own durable state (the
/// nodes stopped) and the clients' reports; returns the commits and the
/// aborts by reason. `coordinators`: the nodes keeping the coordinator's
/// state, none of which may keep an unacknowledged commit.
pub fn check_promises(
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
