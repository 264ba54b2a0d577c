//! A cluster of real `twopc node` processes on 127.0.0.1, for end-to-end
//! tests. Everything waits by polling with generous deadlines: the tests run
//! on loaded two-core machines and never assert on timing.

#![allow(dead_code)]

pub mod bench;
pub mod chaos;
pub mod chaos_replay;
pub mod docs;
pub mod http;
pub mod netns;
pub mod raw_http;
pub mod rehearsal;
pub mod shop;
pub mod sim;

pub use docs::free_port;

use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_twopc");
/// How long any condition may take to become true.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub cluster_file: PathBuf,
    pub key_file: PathBuf,
    pub ports: HashMap<String, u16>,
    /// Network namespace to run each node (or "client") in, if any.
    pub netns: HashMap<String, String>,
    procs: HashMap<String, Child>,
}

/// The replicas of a [`TestCluster::replicated`] cluster of three.
pub const REPLICAS: [&str; 3] = ["coordinator-1", "coordinator-2", "coordinator-3"];

/// Polls `f` until it returns `Some`, or panics after [`PATIENCE`].
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends a signal (by name, e.g. "STOP") to a process.
pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

impl TestCluster {
    /// Writes a cluster file (free loopback ports) and a key file.
    pub fn new(accounts: &[(&str, u64)], stock: &[(&str, u64)]) -> TestCluster {
        let hosts = ["coordinator", "wallet", "order"].map(|n| (n, "127.0.0.1", free_port()));
        Self::with_hosts(&hosts, accounts, stock)
    }

    /// Writes a cluster file with the given (name, ip, port) nodes, and a key file.
    pub fn with_hosts(
        hosts: &[(&str, &str, u16)],
        accounts: &[(&str, u64)],
        stock: &[(&str, u64)],
    ) -> TestCluster {
        let nodes: Vec<(&str, &str, &str, u16)> = hosts
            .iter()
            .map(|(name, ip, port)| (*name, *name, *ip, *port))
            .collect();
        Self::with_nodes("", &nodes, accounts, stock)
    }

    /// A replicated cluster: `replicas` coordinator replicas named
    /// `coordinator-1`, ..., then a wallet and an order service, on loopback.
    pub fn replicated(
        replicas: usize,
        accounts: &[(&str, u64)],
        stock: &[(&str, u64)],
    ) -> TestCluster {
        Self::replicated_with("protocol = \"replicated\"\n\n", replicas, accounts, stock)
    }

    /// [`Self::replicated`] with the cluster file starting with `header`.
    pub fn replicated_with(
        header: &str,
        replicas: usize,
        accounts: &[(&str, u64)],
        stock: &[(&str, u64)],
    ) -> TestCluster {
        let names: Vec<String> = (1..=replicas).map(|i| format!("coordinator-{i}")).collect();
        let mut nodes: Vec<(&str, &str, &str, u16)> = names
            .iter()
            .map(|n| (n.as_str(), "coordinator", "127.0.0.1", free_port()))
            .collect();
        for role in ["wallet", "order"] {
            nodes.push((role, role, "127.0.0.1", free_port()));
        }
        Self::with_nodes(header, &nodes, accounts, stock)
    }

    /// Writes a cluster file starting with `header`, with the given (name,
    /// role, ip, port) nodes, and a key file.
    pub fn with_nodes(
        header: &str,
        nodes: &[(&str, &str, &str, u16)],
        accounts: &[(&str, u64)],
        stock: &[(&str, u64)],
    ) -> TestCluster {
        let dir = tempfile::Builder::new()
            .prefix("twopc-e2e-")
            .tempdir()
            .unwrap();
        let mut ports = HashMap::new();
        let mut text = header.to_string();
        for (name, role, ip, port) in nodes {
            ports.insert(name.to_string(), *port);
            text += &format!(
                "[[node]]\nname = \"{name}\"\nrole = \"{role}\"\naddress = \"{ip}:{port}\"\n\n"
            );
        }
        text += "[accounts]\n";
        for (k, v) in accounts {
            text += &format!("{k} = {v}\n");
        }
        text += "\n[stock]\n";
        for (k, v) in stock {
            text += &format!("{k} = {v}\n");
        }
        let cluster_file = dir.path().join("cluster.toml");
        std::fs::write(&cluster_file, text).unwrap();
        let key_file = dir.path().join("key");
        // A key of its own: tests run side by side on one machine pick free
        // ports independently, and a port a killed node left may be taken by
        // another test's node; with a shared key the two clusters would
        // accept each other's datagrams (status, purchases) and mix.
        let key = format!("{}\n", hex::encode(rand::random::<[u8; 32]>()));
        std::fs::write(&key_file, key).unwrap();
        TestCluster {
            dir,
            cluster_file,
            key_file,
            ports,
            netns: HashMap::new(),
            procs: HashMap::new(),
        }
    }

    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join("data").join(name)
    }

    pub fn log_file(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    /// `twopc`, run inside `who`'s network namespace if it has one.
    fn command_as(&self, who: &str) -> Command {
        let mut c = match self.netns.get(who) {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns.as_str(), BIN]);
                c
            }
            None => Command::new(BIN),
        };
        c.arg("--key-file").arg(&self.key_file);
        c.env_remove("TWOPC_KEY");
        c
    }

    fn command(&self) -> Command {
        self.command_as("client")
    }

    /// The `twopc node` command for `name` (not started).
    pub fn node_command(&self, name: &str, extra: &[&str]) -> Command {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_file(name))
            .unwrap();
        let mut c = self.command_as(name);
        c.arg("node")
            .arg("--cluster")
            .arg(&self.cluster_file)
            .args(["--name", name])
            .arg("--data-dir")
            .arg(self.data_dir(name))
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        c
    }

    /// Starts the three replicas, the wallet and the order service of a
    /// [`TestCluster::replicated`] cluster of three, each answering status.
    pub fn start_replicated(&mut self) {
        for name in REPLICAS.iter().chain(&["wallet", "order"]) {
            self.start(name, &[]);
        }
    }

    /// Starts node `name` and waits until it answers status.
    pub fn start(&mut self, name: &str, extra: &[&str]) {
        let child = self.node_command(name, extra).spawn().unwrap();
        self.procs.insert(name.to_string(), child);
        wait_for(&format!("{name} to answer status"), || self.status(name));
    }

    pub fn start_all(&mut self) {
        for n in ["coordinator", "wallet", "order"] {
            self.start(n, &[]);
        }
    }

    pub fn pid(&self, name: &str) -> u32 {
        self.procs[name].id()
    }

    /// kill -9.
    pub fn kill9(&mut self, name: &str) {
        let mut child = self.procs.remove(name).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM, and the exit status.
    pub fn terminate(&mut self, name: &str) -> std::process::ExitStatus {
        self.stop_with(name, "TERM")
    }

    /// Sends `sig` (e.g. "INT"), waits for the exit status.
    pub fn stop_with(&mut self, name: &str, sig: &str) -> std::process::ExitStatus {
        let mut child = self.procs.remove(name).unwrap();
        signal(child.id(), sig);
        wait_for(&format!("{name} to exit"), || child.try_wait().unwrap())
    }

    /// The node's view (`twopc status --json`), or None if it did not answer.
    pub fn status(&self, name: &str) -> Option<Value> {
        let out = self
            .command()
            .arg("status")
            .arg("--cluster")
            .arg(&self.cluster_file)
            .args(["--name", name, "--json", "--timeout", "2"])
            .output()
            .unwrap();
        if !out.status.success() {
            return None;
        }
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        let view = v.get(name)?.clone();
        (!view.is_null()).then_some(view)
    }

    pub fn levels(&self, name: &str) -> BTreeMap<String, u64> {
        let v = wait_for(&format!("{name} status"), || self.status(name));
        serde_json::from_value(v["levels"].clone()).unwrap()
    }

    pub fn holds(&self, name: &str) -> usize {
        let v = wait_for(&format!("{name} status"), || self.status(name));
        v["holds"].as_array().unwrap().len()
    }

    /// Waits until nothing is in doubt anywhere.
    pub fn settle(&self) {
        wait_for("the cluster to settle", || {
            let c = self.status("coordinator")?;
            let w = self.status("wallet")?;
            let o = self.status("order")?;
            settled(&c, &w, &o).then_some(())
        });
    }

    /// `twopc ARGS --cluster FILE`, with this cluster's key (not started).
    pub fn twopc(&self, args: &[&str]) -> Command {
        let mut c = self.command();
        c.args(args)
            .arg("--cluster")
            .arg(&self.cluster_file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// The `twopc purchase` command (not started).
    pub fn purchase_command(&self, user: &str, sku: &str, qty: u64, price: u64) -> Command {
        self.purchase_command_within(user, sku, qty, price, 120)
    }

    /// The `twopc purchase` command with `--timeout secs` (not started).
    pub fn purchase_command_within(
        &self,
        user: &str,
        sku: &str,
        qty: u64,
        price: u64,
        secs: u64,
    ) -> Command {
        let mut c = self.command();
        c.arg("purchase")
            .arg("--cluster")
            .arg(&self.cluster_file)
            .args(["--user", user, "--sku", sku])
            .args(["--qty", &qty.to_string(), "--price", &price.to_string()])
            .args(["--json", "--timeout", &secs.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Makes one purchase, whatever its outcome.
    pub fn purchase_once(&self, user: &str, sku: &str, qty: u64, price: u64) -> (Value, i32) {
        parse_purchase(
            self.purchase_command(user, sku, qty, price)
                .output()
                .unwrap(),
        )
    }

    /// Makes a purchase; returns its JSON report and exit code. An abort by
    /// vote timeout (a vote slower than a second, possible on a starved
    /// machine) changes nothing, and is retried as a new purchase.
    pub fn purchase(&self, user: &str, sku: &str, qty: u64, price: u64) -> (Value, i32) {
        for _ in 0..5 {
            let (r, code) = self.purchase_once(user, sku, qty, price);
            if r["reason"] != "vote_timeout" {
                return (r, code);
            }
            eprintln!("purchase aborted by vote timeout; trying again");
        }
        panic!("five purchases in a row aborted by vote timeout")
    }
}

pub fn parse_purchase(out: Output) -> (Value, i32) {
    let code = out.status.code().unwrap_or(-1);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "purchase printed no JSON ({e}); exit {code}; stdout {:?}; stderr {:?}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (v, code)
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for (_, mut child) in self.procs.drain() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            for name in self.ports.keys() {
                if let Ok(log) = std::fs::read_to_string(self.log_file(name)) {
                    let tail: Vec<&str> = log.lines().rev().take(40).collect();
                    eprintln!("--- last lines of {name}.log ---");
                    for l in tail.into_iter().rev() {
                        eprintln!("{l}");
                    }
                }
            }
        }
    }
}

/// The log file (`log.<gen>`) in a data directory.
pub fn log_in(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("log."))
        .expect("a log file")
}

/// The bytes of a data directory's log up to the end of its records (the
/// zeros after them are preallocated space).
pub fn records(dir: &Path) -> Vec<u8> {
    let end = twopc_node::runtime::storage::replay(dir)
        .unwrap()
        .log
        .expect("a log")
        .valid_len;
    let mut bytes = read(&log_in(dir));
    bytes.truncate(end as usize);
    bytes
}

/// Reads a file (for corrupting storage).
pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// Whether the coordinator's, wallet's and order service's `status --json`
/// show nothing in doubt: no vote collection, no unacknowledged commit, no hold.
pub fn settled(coordinator: &Value, wallet: &Value, order: &Value) -> bool {
    let empty = |v: &Value, k: &str| v[k].as_array().is_some_and(|a| a.is_empty());
    empty(coordinator, "unacked_commits")
        && coordinator["voting"] == 0
        && coordinator["asking"] != true
        && empty(wallet, "holds")
        && empty(order, "holds")
}

/// Of the replicas `alive`, the one whose `status --json` (from `status`)
/// says it leads; the one of the highest term if a deposed leader has not
/// heard of the next term yet.
pub fn leader_among(alive: &[&str], status: impl Fn(&str) -> Option<Value>) -> Option<String> {
    let mut best: Option<(u64, String)> = None;
    for name in alive {
        let Some(v) = status(name) else { continue };
        let r = &v["replica"];
        if r["standing"] == "leader" {
            let term = r["term"].as_str().unwrap_or("0/");
            let n: u64 = term.split('/').next().unwrap().parse().unwrap();
            if best.as_ref().is_none_or(|(m, _)| n > *m) {
                best = Some((n, name.to_string()));
            }
        }
    }
    best.map(|(_, name)| name)
}

/// Whether a follower's view shows it caught up with a leader's: it
/// follows the leader's term and accepted the leader's latest version.
pub fn caught_up(leader: &Value, follower: &Value) -> bool {
    let (l, f) = (&leader["replica"], &follower["replica"]);
    f["standing"] == "follower"
        && l["standing"] == "leader"
        && f["accepted"] == l["accepted"]
        && f["promised"] == l["term"]
}

impl TestCluster {
    /// The replica of `alive` that leads (see [`leader_among`]).
    pub fn leader(&self, alive: &[&str]) -> Option<String> {
        leader_among(alive, |n| self.status(n))
    }
}
