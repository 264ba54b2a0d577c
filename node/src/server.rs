//! Running one node of a cluster: open its data directory, bind its socket,
//! and run its actor until shutdown.

use crate::cluster::{Cluster, Role};
use crate::core::Config;
use crate::error::{Error, Result};
use crate::shell::Shell;
use crate::storage::LogStore;
use crate::transport::UdpTransport;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use twopc_model::Storage;

/// Runs node `name` of `cluster` with its storage in `data_dir`, until
/// `shutdown` resolves. Storage errors stop it (they are fatal).
pub async fn run_node(
    cluster: &Cluster,
    name: &str,
    data_dir: &Path,
    cfg: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let spec = cluster.node(name)?;
    let (mut store, stored) = LogStore::open(data_dir)?;
    let role_matches = match (&stored, spec.role) {
        (None, _) => true,
        (Some(Storage::Coordinator(_)), Role::Coordinator) => true,
        (Some(Storage::Participant(_)), Role::Wallet | Role::Order) => true,
        (Some(_), _) => false,
    };
    if !role_matches {
        return Err(Error::Other(format!(
            "data directory {} holds the state of another role than {:?}; refusing to overwrite it",
            data_dir.display(),
            spec.role
        )));
    }
    crate::storage::claim(data_dir, name)?;
    // Testing aids only (off unless a --fault-* flag is given).
    store.inject_faults(cfg.faults.fsync_fail_after, cfg.faults.disk_full_after);
    if cfg.faults.any_network()
        || cfg.faults.fsync_fail_after.is_some()
        || cfg.faults.disk_full_after.is_some()
        || cfg.faults.capture.is_some()
    {
        tracing::warn!(node = name, faults = ?cfg.faults, "FAULT INJECTION ON: this node misbehaves on purpose (testing aid)");
    }
    let transport = UdpTransport::bind(SocketAddr::V4(spec.bind)).await?;
    let role = match spec.role {
        Role::Coordinator => "coordinator",
        Role::Wallet => "wallet",
        Role::Order => "order",
    };
    tracing::info!(
        node = name,
        role,
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
    let rt = Shell::new(
        cluster.actor(spec),
        spec.id(),
        transport,
        store,
        stored,
        cfg,
    );
    rt.run(shutdown).await.map_err(|e| Error::Fatal {
        node: name.to_string(),
        source: Box::new(e),
    })?;
    tracing::info!(node = name, "node stopped cleanly");
    Ok(())
}
