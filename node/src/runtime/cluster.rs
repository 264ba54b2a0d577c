//! The cluster file: which nodes exist, where they listen, what role each
//! plays, and the participants' initial data. One file is shared by every
//! machine; each process is told which node it is (`--name`).
//!
//! ```toml
//! [[node]]
//! name = "coordinator"
//! role = "coordinator"
//! address = "10.0.0.1:7000"
//!
//! [[node]]
//! name = "wallet"
//! role = "wallet"
//! address = "10.0.0.2:7000"
//!
//! [[node]]
//! name = "order"
//! role = "order"
//! address = "10.0.0.3:7000"
//! # bind = "0.0.0.0:7000"     # optional: listen here instead of `address`
//!
//! [accounts]   # the wallet's initial balances
//! alice = 100
//!
//! [stock]      # the order service's initial stock
//! widget = 5
//! ```
//!
//! For many keys, the initial data comes from CSV files named at the top of
//! the file (before any `[[node]]`; a relative path is relative to the
//! cluster file's directory, and only the participant that reads it needs
//! it): `accounts_file = "balances.csv"`, `stock_file = "stock.csv"`, each
//! line `key,amount` (see [`crate::runtime::initial`]). A file and a table may be
//! combined, as long as no key is in both.
//!
//! Initial data is used only on a participant's first start, which makes it
//! durable: after that its own storage is the truth.
//!
//! `cluster_id = "shop-eu-1"` at the top names the cluster (letters,
//! digits, `.`, `_`, `-`; at most 64): every data directory is stamped with
//! it and refuses another cluster's nodes, and datagrams are authenticated
//! with a key derived from the cluster key and it. Without it, the
//! cluster's id is the cluster key's fingerprint (`cluster_id.rs`).
//!
//! `retention = 100000` at the top of the file sets how many purchase
//! outcomes the coordinator remembers (default [`DEFAULT_RETENTION`]): a
//! purchase re-sent with the same id gets the first one's outcome while it
//! is remembered, and is answered "unknown" (never started again) after.
//! `journal_retention = 100000` sets how many entries of its journal
//! (`twopc journal`) each participant keeps (default
//! [`crate::runtime::storage::DEFAULT_JOURNAL_RETENTION`]).
//!
//! `one_write = true` (with either protocol) runs the one-write protocol
//! (docs/one-write.md): a purchase waits for the participants' prepares
//! alone, the coordinator (or the replicas' leader) telling a purchase's
//! commit before it saves it. Every node reads it: restart the
//! participants on the new file before the coordinator. A coordinator's or
//! replica's directory that ran it refuses to start without it
//! (`DIR/ONE_WRITE`; see `storage::mode`).
//!
//! ## A replicated coordinator
//!
//! `protocol = "replicated"` (what twopc deploys by default, and the
//! example file's) makes the coordinator a group of 2F+1 replicas
//! (`twopc_model::Replica`) that survives the loss of F of them: the file
//! lists an odd number of coordinator nodes, at least 3, and their order in
//! the file is the group's order (the first one leads the first term).
//! `protocol = "2pc"` runs one coordinator, the simpler choice that blocks
//! while it is down: the file lists exactly one node with `role =
//! "coordinator"`. A file that does not say is read by what it lists: one
//! coordinator node runs 2PC, more are replicas.
//!
//! ```toml
//! protocol = "replicated"
//!
//! [[node]]
//! name = "coordinator-1"
//! role = "coordinator"
//! address = "10.0.0.1:7000"
//!
//! [[node]]
//! name = "coordinator-2"
//! role = "coordinator"
//! address = "10.0.0.4:7000"
//!
//! [[node]]
//! name = "coordinator-3"
//! role = "coordinator"
//! address = "10.0.0.5:7000"
//!
//! # ... wallet and order as above
//! ```
//!
//! Participants and clients (`twopc purchase`, `twopc outcome`, the HTTP
//! API) send to every coordinator replica and take the answer of any: only
//! the leader answers. The replicas also talk among themselves over TCP, on
//! the same port number as their UDP address (`replication/`): open both.

use crate::runtime::error::{Error, Result};
use crate::runtime::initial::{InitialLevels, Levels};
pub use crate::runtime::role::Role;
use serde::{Deserialize, Serialize};
use stateright::actor::Id;
use std::net::{SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::path::{Path, PathBuf};
use twopc_model::{Coordinator, Node, Participant, Replica, Resource};

/// How many purchase outcomes the coordinator remembers unless the cluster
/// file says otherwise.
pub const DEFAULT_RETENTION: usize = 100_000;

/// A node as the file spells it (addresses unresolved).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: String,
    role: Role,
    address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    bind: Option<String>,
}

pub use crate::runtime::role::Protocol;

/// The file as written.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cluster_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    protocol: Option<Protocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    accounts_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stock_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retention: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    journal_retention: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    one_write: Option<bool>,
    #[serde(default)]
    node: Vec<RawNode>,
    #[serde(default)]
    accounts: Levels,
    #[serde(default)]
    stock: Levels,
    #[serde(default, skip_serializing_if = "Levels::is_empty")]
    prices: Levels,
}

/// One node of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSpec {
    /// Its name (`--name`).
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The address peers send to (an IPv4 socket address: stateright's `Id`
    /// is an IPv4 address and port).
    pub address: SocketAddrV4,
    /// The address to listen on (defaults to `address`).
    pub bind: SocketAddrV4,
}

impl NodeSpec {
    /// The actor `Id` peers use for this node.
    pub fn id(&self) -> Id {
        Id::from(self.address)
    }
}

/// A parsed, validated cluster file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    /// The cluster's id, if the file names one (`cluster_id`; else the
    /// key's fingerprint: `cluster_id.rs`).
    pub cluster_id: Option<String>,
    /// One coordinator, or a replicated one (`protocol`).
    pub protocol: Protocol,
    /// Every node.
    pub nodes: Vec<NodeSpec>,
    /// The wallet's initial balances (`[accounts]`, `accounts_file`).
    pub accounts: InitialLevels,
    /// The order service's initial stock (`[stock]`, `stock_file`).
    pub stock: InitialLevels,
    /// The order service's initial prices (`[prices]`, sku = price per
    /// unit, at least 1; every sku in the initial stock): made durable
    /// with the stock on its first start. A sku without a price accepts a
    /// purchase at any price (docs/shop.md, "Prices").
    pub prices: Levels,
    /// How many purchase outcomes the coordinator remembers (`retention`).
    pub retention: usize,
    /// How many journal entries each participant keeps
    /// (`journal_retention`).
    pub journal_retention: usize,
    /// The one-write protocol (`one_write`, either protocol).
    pub one_write: bool,
}

fn resolve(text: &str) -> std::result::Result<SocketAddrV4, String> {
    let addrs = text
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {text:?}: {e}"))?;
    let mut any = false;
    for addr in addrs {
        any = true;
        if let SocketAddr::V4(v4) = addr {
            return Ok(v4);
        }
    }
    Err(if any {
        format!("{text:?} has no IPv4 address (twopc addresses are IPv4)")
    } else {
        format!("{text:?} resolves to nothing")
    })
}

impl Cluster {
    /// Reads and validates a cluster file; relative levels-file paths in it
    /// are relative to its directory.
    pub fn load(path: &Path) -> Result<Cluster> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ClusterRead {
            path: path.to_path_buf(),
            source,
        })?;
        let mut cluster = Cluster::parse(&text).map_err(|msg| Error::ClusterInvalid {
            path: path.to_path_buf(),
            msg,
        })?;
        let dir = path.parent().unwrap_or(Path::new(""));
        for initial in [&mut cluster.accounts, &mut cluster.stock] {
            initial.file = initial.file.take().map(|f| dir.join(f));
        }
        Ok(cluster)
    }

    /// Parses and validates cluster-file text (levels-file paths are kept
    /// as written).
    pub fn parse(text: &str) -> std::result::Result<Cluster, String> {
        let raw: RawCluster = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut nodes = Vec::new();
        for n in raw.node {
            let address = resolve(&n.address).map_err(|e| format!("node {}: {e}", n.name))?;
            let bind = match &n.bind {
                Some(b) => resolve(b).map_err(|e| format!("node {}: bind: {e}", n.name))?,
                None => address,
            };
            if nodes.iter().any(|m: &NodeSpec| m.name == n.name) {
                return Err(format!("two nodes are named {:?}", n.name));
            }
            if nodes.iter().any(|m: &NodeSpec| m.address == address) {
                return Err(format!("two nodes have address {address}"));
            }
            nodes.push(NodeSpec {
                name: n.name,
                role: n.role,
                address,
                bind,
            });
        }
        for role in [Role::Wallet, Role::Order] {
            let count = nodes.iter().filter(|n| n.role == role).count();
            if count != 1 {
                return Err(format!(
                    "a cluster has exactly one {role:?} node, this one has {count}"
                ));
            }
        }
        let coordinators = nodes.iter().filter(|n| n.role == Role::Coordinator).count();
        if coordinators == 0 {
            return Err(
                "a cluster has a coordinator: one node with role = \"coordinator\" (2PC), or \
                 three or five (a replicated coordinator); this file lists none"
                    .into(),
            );
        }
        // Unsaid, the protocol is what the coordinator nodes listed make:
        // one runs 2PC, more are replicas.
        let protocol = raw.protocol.unwrap_or(match coordinators {
            1 => Protocol::TwoPc,
            _ => Protocol::Replicated,
        });
        match protocol {
            Protocol::TwoPc if coordinators > 1 => {
                return Err(format!(
                    "protocol \"2pc\" runs exactly one coordinator node, this file lists \
                     {coordinators}; for a replicated coordinator put protocol = \"replicated\" \
                     at the top of the file"
                ))
            }
            Protocol::Replicated if coordinators < 3 || coordinators % 2 == 0 => {
                return Err(format!(
                    "protocol \"replicated\" needs an odd number of coordinator nodes, at \
                     least 3 (2F+1 replicas survive the loss of F), this file lists \
                     {coordinators}"
                ))
            }
            Protocol::TwoPc | Protocol::Replicated => {}
        }
        for (table, levels) in [("[accounts]", &raw.accounts), ("[stock]", &raw.stock)] {
            for key in levels.keys() {
                crate::runtime::wire::check_name(&format!("a key in {table}"), key)?;
            }
        }
        for (sku, price) in &raw.prices {
            crate::runtime::wire::check_name("a sku in [prices]", sku)?;
            if *price == 0 {
                return Err(format!(
                    "[prices]: {sku} = 0; a price is at least 1 (a sku without a price \
                     accepts any: leave it out)"
                ));
            }
            // With a stock_file, the stock is known only where it is read:
            // checked at the order service's first start.
            if raw.stock_file.is_none() && !raw.stock.contains_key(sku) {
                return Err(format!(
                    "[prices] names sku {sku:?}, which is not in [stock]: give it initial \
                     stock (0 will do) or remove its price"
                ));
            }
        }
        let retention = raw.retention.unwrap_or(DEFAULT_RETENTION);
        if retention == 0 {
            return Err("retention must be at least 1 (outcomes remembered)".into());
        }
        let journal_retention = raw
            .journal_retention
            .unwrap_or(crate::runtime::storage::DEFAULT_JOURNAL_RETENTION);
        if journal_retention == 0 {
            return Err(
                "journal_retention must be at least 1 (journal entries a participant keeps)".into(),
            );
        }
        if let Some(id) = &raw.cluster_id {
            check_cluster_id(id)?;
        }
        let one_write = raw.one_write.unwrap_or(false);
        Ok(Cluster {
            cluster_id: raw.cluster_id,
            protocol,
            nodes,
            retention,
            journal_retention,
            one_write,
            accounts: InitialLevels {
                table: raw.accounts,
                file: raw.accounts_file,
            },
            stock: InitialLevels {
                table: raw.stock,
                file: raw.stock_file,
            },
            prices: raw.prices,
        })
    }

    /// The cluster file for this cluster (`parse` reads it back as it is).
    pub fn to_toml(&self) -> String {
        let raw = RawCluster {
            cluster_id: self.cluster_id.clone(),
            protocol: Some(self.protocol),
            accounts_file: self.accounts.file.clone(),
            stock_file: self.stock.file.clone(),
            retention: (self.retention != DEFAULT_RETENTION).then_some(self.retention),
            journal_retention: (self.journal_retention
                != crate::runtime::storage::DEFAULT_JOURNAL_RETENTION)
                .then_some(self.journal_retention),
            one_write: self.one_write.then_some(true),
            node: self
                .nodes
                .iter()
                .map(|n| RawNode {
                    name: n.name.clone(),
                    role: n.role,
                    address: n.address.to_string(),
                    bind: (n.bind != n.address).then(|| n.bind.to_string()),
                })
                .collect(),
            accounts: self.accounts.table.clone(),
            stock: self.stock.table.clone(),
            prices: self.prices.clone(),
        };
        toml::to_string(&raw).expect("a cluster serializes as TOML")
    }

    /// The node named `name`.
    pub fn node(&self, name: &str) -> Result<&NodeSpec> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| Error::UnknownNode {
                name: name.to_string(),
                known: self
                    .nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The node with `role` (validation guarantees there is exactly one
    /// participant of each kind; for the coordinator, this is the first of
    /// [`Cluster::coordinators`]).
    pub fn with_role(&self, role: Role) -> &NodeSpec {
        self.nodes
            .iter()
            .find(|n| n.role == role)
            .expect("validated: one node per role")
    }

    /// The coordinator, or every coordinator replica in the file's order
    /// (the replicas' `peers`).
    pub fn coordinators(&self) -> Vec<&NodeSpec> {
        self.nodes
            .iter()
            .filter(|n| n.role == Role::Coordinator)
            .collect()
    }

    /// Where purchases, lookups and questions go: every coordinator
    /// (replica); any of them may answer.
    pub fn coordinator_addresses(&self) -> Vec<SocketAddrV4> {
        self.coordinators().iter().map(|n| n.address).collect()
    }

    /// The initial levels of a participant with `role` (`None` for the
    /// coordinator): its table and its file's rows, read now. For its first
    /// start only (`node.rs`).
    pub fn initial_levels(&self, role: Role) -> Result<Option<Levels>> {
        match role {
            Role::Coordinator => Ok(None),
            Role::Wallet => self.accounts.read("accounts_file", "[accounts]").map(Some),
            Role::Order => self.stock.read("stock_file", "[stock]").map(Some),
        }
    }

    /// The initial prices of a participant with `role`, given its initial
    /// `levels` (only the order service has prices; every priced sku must
    /// be among `levels`). For its first start only (`node.rs`).
    pub fn initial_prices(&self, role: Role, levels: &Levels) -> Result<Levels> {
        if role != Role::Order {
            return Ok(Levels::new());
        }
        if let Some(sku) = self.prices.keys().find(|s| !levels.contains_key(*s)) {
            return Err(Error::PriceWithoutStock { sku: sku.clone() });
        }
        Ok(self.prices.clone())
    }

    /// The model actor that `node` runs: the same `twopc_model::Node` the
    /// checker explores, configured with peer Ids from this file.
    ///
    /// A participant's `initial` levels are left empty: a node makes them
    /// durable on its first start ([`Cluster::initial_levels`], `node.rs`),
    /// so `on_start` always finds them in storage, and the actor does not
    /// keep a second copy of a million balances for as long as it runs.
    pub fn actor(&self, node: &NodeSpec) -> Node {
        let coordinators: Vec<Id> = self.coordinators().iter().map(|n| n.id()).collect();
        let coordinator = Coordinator {
            wallet: self.with_role(Role::Wallet).id(),
            order: self.with_role(Role::Order).id(),
            retention: self.retention,
            // A purchase's order hold carries the buyer's price (docs/shop.md,
            // "Prices"): a sku without a price accepts any, so clusters
            // without prices buy as before. Upgrade the order service first.
            prices: true,
            one_write: self.one_write,
        };
        match (node.role, self.protocol) {
            (Role::Coordinator, Protocol::TwoPc) => Node::Coordinator(coordinator),
            (Role::Coordinator, Protocol::Replicated) => Node::Replica(Replica {
                coordinator,
                index: coordinators
                    .iter()
                    .position(|id| *id == node.id())
                    .expect("a coordinator node is among the coordinators"),
                peers: coordinators,
                // Drawn by the runtime at every process start (`node.rs`).
                incarnation: 0,
            }),
            (Role::Wallet, _) => Node::Participant(Participant {
                resource: Resource::Wallet,
                coordinators,
                initial: Default::default(),
                prices: Default::default(),
                one_write: self.one_write,
            }),
            (Role::Order, _) => Node::Participant(Participant {
                resource: Resource::Order,
                coordinators,
                initial: Default::default(),
                prices: Default::default(),
                one_write: self.one_write,
            }),
        }
    }
}

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;

/// Longest `cluster_id`.
pub const MAX_ID: usize = 64;

/// Checks a `cluster_id` from a cluster file.
pub fn check_cluster_id(id: &str) -> std::result::Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if id.is_empty() || id.len() > MAX_ID || !id.chars().all(ok) {
        return Err(format!(
            "cluster_id {id:?}: 1 to {MAX_ID} letters, digits, '.', '_' or '-'"
        ));
    }
    Ok(())
}
