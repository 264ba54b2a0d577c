//! The one way to start a node of a cluster, for `twopc node` and for the
//! in-process clusters of `twopc demo` and `twopc bench` alike:
//!
//! 1. open the data directory with [`open_store`] (`storage/open.rs`, the
//!    same function the simulator calls): claim it (`LOCK`, `NODE`), replay
//!    it read-only, refuse another node's (by `NODE` or by the owner in its
//!    headers) or another role's state before anything in it is touched; on
//!    a participant's first start read its initial levels (cluster-file
//!    table and CSV file: a bad file stops the start before anything is
//!    written); only then cut a torn tail or delete an old log, and make a
//!    first start's levels durable at once, so they are read exactly once;
//! 2. before (1), refuse a directory stamped with another cluster's id
//!    (`cluster_id.rs`, `storage/stamp.rs`), touching nothing; after (1),
//!    stamp a directory that has no stamp yet;
//! 3. bind the socket, and hand everything to a [`Shell`], with its part
//!    in the rollback check (`history.rs`): a coordinator reads the
//!    positions it heard from participants (`DIR/heard`).

use crate::runtime::cluster::{Cluster, Protocol};
use crate::runtime::core::Config;
use crate::runtime::error::{Error, Result};
use crate::runtime::history::History;
use crate::runtime::replication::{Limits, PeerLink, Sources};
use crate::runtime::shell::Shell;
use crate::runtime::storage::{
    check_cluster, open_store, stamp_cluster, DiskFaults, Heard, LogStore, RealFs, COMPACT_MIN,
};
use crate::runtime::transport::UdpTransport;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use twopc_model::{Node, PartStorage, State, Storage};

/// A node ready to run.
pub type NodeShell = Shell<UdpTransport, LogStore>;

/// Where a node's socket comes from.
#[derive(Debug)]
pub enum Socket {
    /// Bind the node's `bind` address from the cluster file.
    Bind,
    /// A socket bound already (a local cluster binds every socket first, to
    /// learn the ports it writes into its cluster description).
    Bound(std::net::UdpSocket),
}

/// Prepares node `name` of `cluster` with its storage in `data_dir`.
pub async fn start(
    cluster: &Cluster,
    name: &str,
    data_dir: &Path,
    cfg: Config,
    socket: Socket,
) -> Result<NodeShell> {
    let spec = cluster.node(name)?;
    // A replica accepts the coordinator's whole state from the others: only
    // the key tells a replica from a stranger (and a forged state's lengths
    // could exhaust memory as it is read). Refused before anything is
    // touched.
    if cluster.protocol == Protocol::Replicated
        && spec.role == crate::runtime::role::Role::Coordinator
        && !cfg.codec.is_authenticated()
    {
        let name = name.to_string();
        return Err(Error::ReplicaNeedsKey { name });
    }
    let identity = cluster.identity(&cfg.codec);
    let unstamped = match &identity {
        Some(c) => check_cluster(&RealFs, data_dir, &c.id, c.source)?,
        None => false,
    };
    let started = std::time::Instant::now();
    let mut first_keys = None;
    // On a first start, the state `on_start` would build from the actor's
    // `initial`, made durable before the node runs: a restart replays it
    // rather than read the files again (and the first purchase does not
    // pay for writing every balance). Before the fault injection below:
    // this is not the node's traffic.
    let initial = || {
        let Some(levels) = cluster.initial_levels(spec.role)? else {
            return Ok(None);
        };
        let prices = cluster.initial_prices(spec.role, &levels)?;
        first_keys = Some(levels.len());
        Ok(Some(Storage::Participant(PartStorage {
            levels: levels.into_iter().collect(),
            prices: prices.into_iter().collect(),
            ..PartStorage::default()
        })))
    };
    let (store, stored) = open_store(
        Arc::new(RealFs),
        data_dir,
        name,
        spec.role,
        COMPACT_MIN,
        initial,
    )?;
    // A coordinator's state under the other protocol would be read as no
    // state at all (`on_start` takes only its own kind): refuse it.
    let found = match (&stored, cluster.protocol) {
        (Some(Storage::Coordinator(_)), Protocol::Replicated) => {
            Some("a single coordinator's state")
        }
        (Some(Storage::Replica(_)), Protocol::TwoPc) => Some("a coordinator replica's state"),
        _ => None,
    };
    if let Some(found) = found {
        return Err(Error::WrongProtocol {
            dir: data_dir.to_path_buf(),
            protocol: cluster.protocol,
            found,
        });
    }
    if spec.role == crate::runtime::role::Role::Coordinator {
        // (A replica's directory too: the state its group accepted may
        // lack outcomes its leader told.)
        crate::runtime::storage::check_one_write(&RealFs, data_dir, cluster.one_write)?;
    }
    if let (true, Some(c)) = (unstamped, &identity) {
        stamp_cluster(&RealFs, data_dir, &c.id)?;
        tracing::info!(node = name, cluster_id = %c.id, source = c.source, "data directory stamped with its cluster");
    }
    if let Some(keys) = first_keys {
        tracing::info!(
            node = name,
            keys,
            seconds = started.elapsed().as_secs_f64(),
            "first start: initial levels read and made durable"
        );
    }
    // Testing aids only (off unless a --fault-* flag is given).
    let faults = &cfg.faults;
    let store = store
        .with_faults(DiskFaults::new(
            faults.fsync_fail_after,
            faults.disk_full_after,
        ))
        .with_journal_retention(cluster.journal_retention);
    if faults.any_network()
        || faults.fsync_fail_after.is_some()
        || faults.disk_full_after.is_some()
        || faults.capture.is_some()
    {
        tracing::warn!(
            node = name,
            ?faults,
            "FAULT INJECTION ON: this node misbehaves on purpose (testing aid)"
        );
    }
    let transport = match socket {
        Socket::Bind => UdpTransport::bind(SocketAddr::V4(spec.bind)).await?,
        Socket::Bound(socket) => UdpTransport::from_std(socket)?,
    };
    tracing::info!(
        node = name,
        role = %spec.role,
        address = %spec.address,
        bind = %spec.bind,
        data_dir = %data_dir.display(),
        recovered = stored.is_some(),
        authenticated = cfg.codec.is_authenticated(),
        cluster_id = identity.as_ref().map_or("none", |c| c.id.as_str()),
        history = store.durable_position(),
        "node starting"
    );
    if cluster.one_write {
        tracing::info!(
            node = name,
            "one write (docs/one-write.md): the coordinator tells a decision before it saves it, \
             the participants' saved votes are the decision"
        );
    }
    if !cfg.codec.is_authenticated() {
        tracing::warn!(
            node = name,
            "no cluster key (TWOPC_KEY or --key-file): datagrams are not authenticated, \
             anyone who can reach this port can forge protocol messages"
        );
    }
    if identity.is_none() {
        tracing::warn!(
            node = name,
            "the cluster has no identity (no cluster key and no cluster_id in the cluster \
             file): its data directories are not stamped, so nothing stops another cluster's \
             node from starting on them"
        );
    }
    let history = match spec.role {
        crate::runtime::role::Role::Wallet | crate::runtime::role::Role::Order => {
            History::participant(name, &data_dir.display().to_string())
        }
        crate::runtime::role::Role::Coordinator => {
            let names = cluster
                .nodes
                .iter()
                .filter(|n| n.role != crate::runtime::role::Role::Coordinator)
                .map(|n| (n.address, n.name.clone()))
                .collect();
            History::coordinator(names, Heard::read(&RealFs, data_dir))
        }
    };
    let mut actor = cluster.actor(spec);
    if let Node::Replica(r) = &mut actor {
        // This process's incarnation: a replica that starts on an empty
        // directory counts only answers to this life's recovery question.
        r.incarnation = rand::random();
    }
    let link = match &actor {
        // A replica also listens on TCP, same address, for the others.
        Node::Replica(_) => {
            let bind = SocketAddr::V4(spec.bind);
            let listener = tokio::net::TcpListener::bind(bind)
                .await
                .map_err(|source| Error::Net {
                    addr: format!("{bind} (TCP, for the other coordinator replicas)"),
                    source,
                })?;
            let peers = cluster.coordinator_addresses();
            let replicas: Vec<_> = cluster
                .coordinators()
                .iter()
                .map(|n| (n.address, n.bind))
                .collect();
            let sources = Sources::of(*spec.bind.ip(), &replicas);
            Some(PeerLink::start(
                listener,
                spec.address,
                &peers,
                cfg.codec.clone(),
                sources,
                Limits::default(),
            ))
        }
        Node::Coordinator(_) | Node::Participant(_) | Node::Client(_) => None,
    };
    let members = crate::runtime::core::Members {
        me: Some(spec.address),
        nodes: cluster
            .nodes
            .iter()
            .map(|n| (n.address, n.name.clone()))
            .collect(),
        replicas: match &actor {
            Node::Replica(_) => cluster.coordinator_addresses(),
            Node::Coordinator(_) | Node::Participant(_) | Node::Client(_) => Vec::new(),
        },
    };
    let shell = Shell::new(actor, spec.id(), transport, store, stored, cfg)
        .know(members)
        .with_history(history);
    Ok(match link {
        Some(link) => shell.with_peers(link),
        None => shell,
    })
}

/// Runs a started node until `shutdown` resolves. A storage failure stops
/// it: [`Error::Fatal`], naming the node.
pub async fn run(
    node: NodeShell,
    name: String,
    shutdown: impl Future<Output = ()>,
) -> Result<State> {
    match node.run(shutdown).await {
        Ok(state) => {
            tracing::info!(node = name, "node stopped cleanly");
            Ok(state)
        }
        Err(e) => Err(Error::Fatal {
            node: name,
            source: Box::new(e),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::faults::Faults;
    use crate::runtime::storage::Store;
    use crate::runtime::wire::{Codec, Format};
    use std::fs;
    use twopc_model::{CoordStorage, Storage};

    const CLUSTER: &str = r#"
        [[node]]
        name = "coordinator"
        role = "coordinator"
        address = "127.0.0.1:1"
        [[node]]
        name = "wallet"
        role = "wallet"
        address = "127.0.0.1:2"
        [[node]]
        name = "order"
        role = "order"
        address = "127.0.0.1:3"
    "#;

    fn cfg(name: &str) -> Config {
        Config {
            name: name.into(),
            codec: Codec::new(None, Format::Bincode),
            faults: Faults::default(),
            batch_max: 64,
        }
    }

    /// A coordinator's data directory whose log ends in a torn record and
    /// which holds a half-made snapshot: what opening the store repairs.
    fn damaged_coordinator_dir(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let (mut store, _) = LogStore::open(dir).unwrap();
        let s = CoordStorage {
            epoch: 3,
            ..CoordStorage::default()
        };
        store.stage(Storage::Coordinator(s)).unwrap();
        store.sync().unwrap();
        drop(store);
        let log = dir.join("log.0");
        let mut bytes = fs::read(&log).unwrap();
        // A torn record where the preallocated zeros begin.
        let end = crate::runtime::storage::replay(dir)
            .unwrap()
            .log
            .unwrap()
            .valid_len as usize;
        bytes[end..end + 5].copy_from_slice(&[0xA7, 50, 0, 0, 0]);
        bytes.truncate(end + 5);
        fs::write(&log, bytes).unwrap();
        fs::write(dir.join("snapshot.tmp"), b"half").unwrap();
        files(dir)
    }

    fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut all: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let name = e.file_name().to_string_lossy().into_owned();
                (name, fs::read(e.path()).unwrap())
            })
            .collect();
        all.sort();
        all
    }

    /// Another node's directory, or another role's state, is refused before
    /// the torn tail is cut, the half-made snapshot deleted or a `NODE`
    /// file written.
    #[tokio::test]
    async fn nothing_is_repaired_in_a_directory_that_is_not_ours() {
        let cluster = Cluster::parse(CLUSTER).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let before = damaged_coordinator_dir(dir.path());
        let start = |name: &'static str| {
            let cluster = cluster.clone();
            let path = dir.path().to_path_buf();
            // Any free port: the cluster's own addresses need not be bindable.
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            async move { start(&cluster, name, &path, cfg(name), Socket::Bound(socket)).await }
        };
        let err = start("wallet").await.err().expect("refused");
        assert!(matches!(err, Error::WrongRole { .. }), "{err}");
        assert_eq!(files(dir.path()), before, "untouched");
        fs::write(dir.path().join("NODE"), "coordinator\n").unwrap();
        let before = files(dir.path());
        let err = start("order").await.err().expect("refused");
        assert!(matches!(err, Error::NotOwner { .. }), "{err}");
        assert_eq!(files(dir.path()), before, "untouched");
        // Its owner starts on it, and only then is it repaired.
        let node = start("coordinator").await.unwrap();
        drop(node);
        assert!(!dir.path().join("snapshot.tmp").exists());
        let torn_len = before.iter().find(|(f, _)| f == "log.0").unwrap().1.len();
        assert_eq!(
            fs::read(dir.path().join("log.0")).unwrap().len(),
            torn_len - 5,
            "the torn tail is cut"
        );
    }
}
