//! The one way to start a node of a cluster, for `twopc node` and for the
//! in-process clusters of `twopc demo` and `twopc bench` alike:
//!
//! 1. claim the data directory (`LOCK`, `NODE`): another process, another
//!    node or another role is refused before anything in it is touched;
//! 2. replay it, read-only, and refuse a state of another role;
//! 3. open the store (only now is a torn tail cut or an old log deleted);
//! 4. bind the socket, and hand everything to a [`Shell`].

use crate::cluster::Cluster;
use crate::core::Config;
use crate::error::{Error, Result};
use crate::shell::Shell;
use crate::storage::{replay, DataDir, DiskFaults, LogStore, COMPACT_MIN};
use crate::transport::UdpTransport;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use twopc_model::State;

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
    let dir = DataDir::claim(data_dir, name, spec.role)?;
    let replayed = replay(dir.path())?;
    if replayed.state.as_ref().is_some_and(|s| !spec.role.keeps(s)) {
        return Err(Error::WrongRole {
            dir: data_dir.to_path_buf(),
            role: spec.role,
        });
    }
    let (store, stored) = LogStore::open_replayed(dir, replayed, COMPACT_MIN)?;
    // Testing aids only (off unless a --fault-* flag is given).
    let faults = &cfg.faults;
    let store = store.with_faults(DiskFaults::new(
        faults.fsync_fail_after,
        faults.disk_full_after,
    ));
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
        "node starting"
    );
    if !cfg.codec.is_authenticated() {
        tracing::warn!(
            node = name,
            "no cluster key (TWOPC_KEY or --key-file): datagrams are not authenticated, \
             anyone who can reach this port can forge protocol messages"
        );
    }
    Ok(Shell::new(
        cluster.actor(spec),
        spec.id(),
        transport,
        store,
        stored,
        cfg,
    ))
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
