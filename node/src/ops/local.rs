//! A whole cluster inside this process, on loopback, with data directories
//! in a temporary directory: what `twopc demo` and `twopc bench` run. Each
//! node is started by [`node::start`], exactly as a `twopc node` process
//! starts (same runtime, storage with fsync, UDP socket); only the process
//! boundary is missing. Or, with [`LocalCluster::spawn_in`], each node is a
//! `twopc node` child process.

use crate::ops::client;
use crate::runtime::admin::Standing;
use crate::runtime::cluster::{Cluster, NodeSpec, Protocol, Role};
use crate::runtime::core::Config;
use crate::runtime::error::{Error, LocalClusterError, Result};
use crate::runtime::faults::Faults;
use crate::runtime::initial::{self, InitialLevels};
use crate::runtime::node::{self, Socket};
use crate::runtime::trace::FileTracer;
use crate::runtime::wire::{ClusterKey, Codec, Format};
use std::collections::BTreeMap;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long a node process may take to start and answer.
const STARTUP: Duration = Duration::from_secs(600);

/// A running in-process cluster.
pub struct LocalCluster {
    /// Its description (loopback ports below the ephemeral range: `crate::ops::ports`).
    pub cluster: Cluster,
    /// The codec every node and client uses (random key).
    pub codec: Codec,
    /// The data directories' parent.
    pub dir: tempfile::TempDir,
    nodes: Nodes,
    /// Node processes killed on purpose ([`LocalCluster::kill9`]).
    killed: std::sync::Mutex<Vec<String>>,
}

/// How the nodes run.
enum Nodes {
    /// As tasks of this process, stopped through a watch channel.
    Tasks {
        stop: watch::Sender<bool>,
        tasks: Vec<(String, JoinHandle<Result<twopc_model::State>>)>,
    },
    /// As `twopc node` child processes, stopped with SIGTERM.
    Processes(Vec<(String, std::process::Child)>),
}

impl LocalCluster {
    /// Starts a coordinator, a wallet with `accounts` and an order service
    /// with `stock`, each on a free loopback port.
    pub async fn start(
        accounts: BTreeMap<String, u64>,
        stock: BTreeMap<String, u64>,
    ) -> Result<LocalCluster> {
        Self::start_in(&std::env::temp_dir(), accounts, stock).await
    }

    /// [`LocalCluster::start`] with the data directories under `parent`.
    pub async fn start_in(
        parent: &std::path::Path,
        accounts: BTreeMap<String, u64>,
        stock: BTreeMap<String, u64>,
    ) -> Result<LocalCluster> {
        Self::start_traced(parent, accounts, stock, None).await
    }

    /// [`LocalCluster::start_in`], each node recording its steps to
    /// `TRACE_DIR/NAME.jsonl` when `trace_dir` is given (see [`crate::runtime::trace`]).
    pub async fn start_traced(
        parent: &std::path::Path,
        accounts: BTreeMap<String, u64>,
        stock: BTreeMap<String, u64>,
        trace_dir: Option<&std::path::Path>,
    ) -> Result<LocalCluster> {
        Self::start_with(parent, Protocol::TwoPc, false, accounts, stock, trace_dir).await
    }

    /// [`LocalCluster::start_traced`] with one coordinator or three
    /// coordinator replicas (`coordinator-1`, ...), and one write or not
    /// (the cluster file's `one_write`, 2PC only).
    pub async fn start_with(
        parent: &std::path::Path,
        protocol: Protocol,
        one_write: bool,
        accounts: BTreeMap<String, u64>,
        stock: BTreeMap<String, u64>,
        trace_dir: Option<&std::path::Path>,
    ) -> Result<LocalCluster> {
        let dir = cluster_dir(parent)?;
        let mut sockets = Vec::new();
        let mut nodes = Vec::new();
        for (name, role) in members(protocol) {
            let socket = free_socket()?;
            nodes.push(loopback_node(name, role, socket.local_addr())?);
            sockets.push(socket);
        }
        let cluster = Cluster {
            cluster_id: None,
            protocol,
            nodes,
            accounts: InitialLevels::table(accounts),
            stock: InitialLevels::table(stock),
            retention: crate::runtime::cluster::DEFAULT_RETENTION,
            journal_retention: crate::runtime::storage::DEFAULT_JOURNAL_RETENTION,
            prices: Default::default(),
            one_write,
        };
        let codec = Codec::new(Some(ClusterKey::random()), Format::Bincode);
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        for (spec, socket) in cluster.nodes.iter().zip(sockets) {
            let cfg = Config {
                name: spec.name.clone(),
                codec: codec.clone(),
                faults: Faults::default(),
                batch_max: 64,
            };
            let data_dir = dir.path().join(&spec.name);
            let mut started =
                node::start(&cluster, &spec.name, &data_dir, cfg, Socket::Bound(socket)).await?;
            if let Some(trace_dir) = trace_dir {
                let path = trace_dir.join(format!("{}.jsonl", spec.name));
                let tracer =
                    FileTracer::open(&path).map_err(|source| Error::TraceOpen { path, source })?;
                started = started.trace(Box::new(tracer));
            }
            let mut stopped = stopped.clone();
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            let task = tokio::spawn(node::run(started, spec.name.clone(), shutdown));
            tasks.push((spec.name.clone(), task));
        }
        Ok(LocalCluster {
            cluster,
            codec,
            dir,
            nodes: Nodes::Tasks { stop, tasks },
            killed: Default::default(),
        })
    }

    /// Like [`LocalCluster::start_in`], but each node is a `twopc node`
    /// child process of `exe` (this binary), as it would be deployed. The
    /// balances and stock go to CSV files beside the cluster file
    /// (`accounts_file`, `stock_file`): a million keys start in seconds.
    pub async fn spawn_in(
        parent: &std::path::Path,
        exe: &std::path::Path,
        protocol: Protocol,
        one_write: bool,
        accounts: BTreeMap<String, u64>,
        stock: BTreeMap<String, u64>,
    ) -> Result<LocalCluster> {
        Self::spawn_timed(parent, exe, protocol, one_write, accounts, stock, None).await
    }

    /// [`LocalCluster::spawn_in`], each node writing its timeline into
    /// `timeline` when it stops (`crate::runtime::timeline`).
    pub async fn spawn_timed(
        parent: &std::path::Path,
        exe: &std::path::Path,
        protocol: Protocol,
        one_write: bool,
        accounts: BTreeMap<String, u64>,
        stock: BTreeMap<String, u64>,
        timeline: Option<&std::path::Path>,
    ) -> Result<LocalCluster> {
        let dir = cluster_dir(parent)?;
        let mut nodes = Vec::new();
        for (name, role) in members(protocol) {
            // A free port: bound, read, released for the child to bind.
            let address = free_socket()?.local_addr();
            nodes.push(loopback_node(name, role, address)?);
        }
        let mut cluster = Cluster {
            cluster_id: None,
            protocol,
            nodes,
            accounts: InitialLevels::default(),
            stock: InitialLevels::default(),
            retention: crate::runtime::cluster::DEFAULT_RETENTION,
            journal_retention: crate::runtime::storage::DEFAULT_JOURNAL_RETENTION,
            prices: Default::default(),
            one_write,
        };
        for (name, levels, initial) in [
            ("accounts.csv", &accounts, &mut cluster.accounts),
            ("stock.csv", &stock, &mut cluster.stock),
        ] {
            let path = dir.path().join(name);
            initial::write(&path, levels)?;
            initial.file = Some(path);
        }
        let file = dir.path().join("cluster.toml");
        std::fs::write(&file, cluster.to_toml()).map_err(|source| {
            LocalClusterError::WriteClusterFile {
                path: file.clone(),
                source,
            }
        })?;
        let key = hex::encode(rand::random::<[u8; 32]>());
        let codec = Codec::new(
            Some(ClusterKey::new(&key).map_err(Error::Key)?),
            Format::Bincode,
        );
        let mut children = Vec::new();
        for n in &cluster.nodes {
            let mut command = std::process::Command::new(exe);
            match timeline {
                Some(dir) => command.env(crate::runtime::timeline::ENV, dir),
                None => command.env_remove(crate::runtime::timeline::ENV),
            };
            let child = command
                .arg("node")
                .arg("--cluster")
                .arg(&file)
                .args(["--name", &n.name])
                .arg("--data-dir")
                .arg(dir.path().join(&n.name))
                .env("TWOPC_KEY", &key)
                .env_remove("TWOPC_KEY_FILE")
                .env("RUST_LOG", "warn")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .spawn()
                .map_err(|source| LocalClusterError::Spawn {
                    exe: exe.to_path_buf(),
                    source,
                })?;
            children.push((n.name.clone(), child));
        }
        let mut local = LocalCluster {
            cluster,
            codec,
            dir,
            nodes: Nodes::Processes(children),
            killed: Default::default(),
        };
        if let Err(e) = local.wait_started().await {
            // Leave no node of a cluster that failed to start running.
            if let Nodes::Processes(children) = &mut local.nodes {
                for (_, child) in children.iter_mut() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
            return Err(e);
        }
        Ok(local)
    }

    /// Waits until every node process answers status (a first start with a
    /// million keys takes a while); an error if one exits or takes longer
    /// than [`STARTUP`].
    async fn wait_started(&mut self) -> Result<()> {
        let deadline = tokio::time::Instant::now() + STARTUP;
        let all: Vec<(String, SocketAddrV4)> = self
            .cluster
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.address))
            .collect();
        for (name, addr) in all {
            loop {
                let answer = client::status(addr, &self.codec, Duration::from_secs(1)).await?;
                if answer.is_some() {
                    break;
                }
                if let Nodes::Processes(children) = &mut self.nodes {
                    for (name, child) in children.iter_mut() {
                        if let Ok(Some(status)) = child.try_wait() {
                            let name = name.clone();
                            return Err(LocalClusterError::ExitedAtStart { name, status }.into());
                        }
                    }
                }
                if tokio::time::Instant::now() > deadline {
                    let secs = STARTUP.as_secs();
                    return Err(LocalClusterError::SilentAtStart { name, secs }.into());
                }
            }
        }
        Ok(())
    }

    /// The node processes' ids by name (`None`: the nodes are tasks of
    /// this process).
    pub fn pids(&self) -> Option<Vec<(String, u32)>> {
        match &self.nodes {
            Nodes::Tasks { .. } => None,
            Nodes::Processes(children) => Some(
                children
                    .iter()
                    .map(|(name, child)| (name.clone(), child.id()))
                    .collect(),
            ),
        }
    }

    /// The address of the node with `role` (the first coordinator replica
    /// for the coordinator).
    pub fn addr(&self, role: Role) -> SocketAddrV4 {
        self.cluster.with_role(role).address
    }

    /// The view of the node with `role`; for the coordinator of a
    /// replicated cluster, of the replica that leads.
    pub async fn status(&self, role: Role) -> Result<crate::runtime::admin::NodeView> {
        if role == Role::Coordinator && self.cluster.protocol == Protocol::Replicated {
            return self
                .leader()
                .await?
                .map(|(_, v)| v)
                .ok_or_else(|| LocalClusterError::NoLeader.into());
        }
        self.status_of(self.addr(role), role.as_str()).await
    }

    /// The view of the node at `addr` (named `name` in errors).
    pub async fn status_of(
        &self,
        addr: SocketAddrV4,
        name: &str,
    ) -> Result<crate::runtime::admin::NodeView> {
        client::status(addr, &self.codec, Duration::from_secs(10))
            .await?
            .ok_or_else(|| {
                let name = name.to_string();
                LocalClusterError::NoStatus { name }.into()
            })
    }

    /// The coordinator replica that leads (of the highest term, if a
    /// deposed one still thinks it does), by name, and its view; `None`
    /// if none that answers leads.
    pub async fn leader(&self) -> Result<Option<(String, crate::runtime::admin::NodeView)>> {
        let mut best: Option<(u64, String, crate::runtime::admin::NodeView)> = None;
        for n in self.cluster.coordinators() {
            let Some(v) = client::status(n.address, &self.codec, Duration::from_secs(1)).await?
            else {
                continue;
            };
            let Some(r) = v
                .replica
                .as_ref()
                .filter(|r| r.standing == Standing::Leader)
            else {
                continue;
            };
            let term = r.term.as_deref().and_then(|t| t.split('/').next());
            let term: u64 = term.and_then(|t| t.parse().ok()).unwrap_or(0);
            if best.as_ref().is_none_or(|(b, _, _)| term > *b) {
                best = Some((term, n.name.clone(), v));
            }
        }
        Ok(best.map(|(_, name, v)| (name, v)))
    }

    /// Kills node `name` with SIGKILL (child processes only): no shutdown,
    /// nothing flushed. It is not restarted, and `stop` only reaps it.
    pub fn kill9(&self, name: &str) -> Result<()> {
        let Some(pid) = self
            .pids()
            .and_then(|p| p.into_iter().find(|(n, _)| n == name))
            .map(|(_, pid)| pid)
        else {
            let name = name.to_string();
            return Err(LocalClusterError::NoSuchProcess { name }.into());
        };
        // Our own child, not reaped yet: its pid cannot have been reused.
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        if !killed.is_ok_and(|s| s.success()) {
            let name = name.to_string();
            return Err(LocalClusterError::Kill { name, pid }.into());
        }
        self.killed
            .lock()
            .expect("not poisoned")
            .push(name.to_string());
        Ok(())
    }

    /// Waits (up to `timeout`) until no participant holds anything in doubt
    /// and the coordinator has no unacknowledged commits.
    pub async fn settle(&self, timeout: Duration) -> Result<bool> {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            let Ok(c) = self.status(Role::Coordinator).await else {
                // No replica leads yet: an election is under way.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let w = self.status(Role::Wallet).await?;
            let o = self.status(Role::Order).await?;
            if c.unacked_commits.is_empty()
                && c.voting == 0
                && w.holds.is_empty()
                && o.holds.is_empty()
            {
                return Ok(true);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(false)
    }

    /// Stops every node and waits for them.
    pub async fn stop(self) -> Result<()> {
        match self.nodes {
            Nodes::Tasks { stop, tasks } => {
                let _ = stop.send(true);
                for (name, task) in tasks {
                    match task.await {
                        Ok(Ok(_)) => {}
                        // `node::run` names the node already.
                        Ok(Err(e)) => return Err(e),
                        Err(source) => {
                            let task = format!("node {name}");
                            return Err(Error::TaskFailed { task, source });
                        }
                    }
                }
            }
            Nodes::Processes(children) => {
                let killed = self.killed.into_inner().expect("not poisoned");
                for (name, mut child) in children {
                    if killed.contains(&name) {
                        let _ = child.wait();
                        continue;
                    }
                    let _ = std::process::Command::new("kill")
                        .args(["-TERM", &child.id().to_string()])
                        .status();
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                    loop {
                        match child.try_wait() {
                            Ok(Some(status)) if status.success() => break,
                            Ok(Some(status)) => {
                                return Err(LocalClusterError::Exited { name, status }.into())
                            }
                            Ok(None) if tokio::time::Instant::now() < deadline => {
                                tokio::time::sleep(Duration::from_millis(20)).await
                            }
                            _ => {
                                let _ = child.kill();
                                let _ = child.wait();
                                return Err(LocalClusterError::DidNotStop { name }.into());
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// The nodes of a local cluster, by name and role: the three roles, or
/// three coordinator replicas (`coordinator-1`, ...) and the participants.
fn members(protocol: Protocol) -> Vec<(String, Role)> {
    let coordinators = match protocol {
        Protocol::TwoPc => vec![Role::Coordinator.as_str().to_string()],
        Protocol::Replicated => (1..=3).map(|i| format!("coordinator-{i}")).collect(),
    };
    let mut all: Vec<(String, Role)> = coordinators
        .into_iter()
        .map(|n| (n, Role::Coordinator))
        .collect();
    for role in [Role::Wallet, Role::Order] {
        all.push((role.as_str().to_string(), role));
    }
    all
}

/// A UDP socket on a free loopback port (see [`crate::ops::ports`]).
fn free_socket() -> Result<std::net::UdpSocket> {
    crate::ops::ports::free_loopback_socket().map_err(|source| Error::Net {
        addr: "127.0.0.1".into(),
        source,
    })
}

/// The node of a local cluster named `name` playing `role`, at the
/// loopback `address` picked by `crate::ops::ports`.
fn loopback_node(
    name: String,
    role: Role,
    address: std::io::Result<SocketAddr>,
) -> Result<NodeSpec> {
    match address {
        Ok(SocketAddr::V4(address)) => Ok(NodeSpec {
            name,
            role,
            address,
            bind: address,
        }),
        _ => Err(LocalClusterError::NoFreePort.into()),
    }
}

/// A fresh temporary directory under `parent` for one cluster's data.
fn cluster_dir(parent: &std::path::Path) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("twopc-")
        .tempdir_in(parent)
        .map_err(|source| {
            let parent = parent.to_path_buf();
            LocalClusterError::TempDir { parent, source }.into()
        })
}
