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
//! line `key,amount` (see [`crate::initial`]). A file and a table may be
//! combined, as long as no key is in both.
//!
//! Initial data is used only on a participant's first start, which makes it
//! durable: after that its own storage is the truth.
//!
//! `retention = 100000` at the top of the file sets how many purchase
//! outcomes the coordinator remembers (default [`DEFAULT_RETENTION`]): a
//! purchase re-sent with the same id gets the first one's outcome while it
//! is remembered, and is answered "unknown" (never started again) after.

use crate::error::{Error, Result};
use crate::initial::{InitialLevels, Levels};
pub use crate::role::Role;
use serde::{Deserialize, Serialize};
use stateright::actor::Id;
use std::net::{SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::path::{Path, PathBuf};
use twopc_model::{Coordinator, Node, Participant, Resource};

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

/// The file as written.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    accounts_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stock_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retention: Option<usize>,
    #[serde(default)]
    node: Vec<RawNode>,
    #[serde(default)]
    accounts: Levels,
    #[serde(default)]
    stock: Levels,
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
    /// Every node.
    pub nodes: Vec<NodeSpec>,
    /// The wallet's initial balances (`[accounts]`, `accounts_file`).
    pub accounts: InitialLevels,
    /// The order service's initial stock (`[stock]`, `stock_file`).
    pub stock: InitialLevels,
    /// How many purchase outcomes the coordinator remembers (`retention`).
    pub retention: usize,
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
        for role in Role::ALL {
            let count = nodes.iter().filter(|n| n.role == role).count();
            if count != 1 {
                return Err(format!(
                    "a cluster has exactly one {role:?} node, this one has {count}"
                ));
            }
        }
        for (table, levels) in [("[accounts]", &raw.accounts), ("[stock]", &raw.stock)] {
            for key in levels.keys() {
                crate::wire::check_name(&format!("a key in {table}"), key)?;
            }
        }
        let retention = raw.retention.unwrap_or(DEFAULT_RETENTION);
        if retention == 0 {
            return Err("retention must be at least 1 (outcomes remembered)".into());
        }
        Ok(Cluster {
            nodes,
            retention,
            accounts: InitialLevels {
                table: raw.accounts,
                file: raw.accounts_file,
            },
            stock: InitialLevels {
                table: raw.stock,
                file: raw.stock_file,
            },
        })
    }

    /// The cluster file for this cluster (`parse` reads it back as it is).
    pub fn to_toml(&self) -> String {
        let raw = RawCluster {
            accounts_file: self.accounts.file.clone(),
            stock_file: self.stock.file.clone(),
            retention: (self.retention != DEFAULT_RETENTION).then_some(self.retention),
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

    /// The node with `role` (validation guarantees there is exactly one).
    pub fn with_role(&self, role: Role) -> &NodeSpec {
        self.nodes
            .iter()
            .find(|n| n.role == role)
            .expect("validated: one node per role")
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

    /// The model actor that `node` runs: the same `twopc_model::Node` the
    /// checker explores, configured with peer Ids from this file.
    ///
    /// A participant's `initial` levels are left empty: a node makes them
    /// durable on its first start ([`Cluster::initial_levels`], `node.rs`),
    /// so `on_start` always finds them in storage, and the actor does not
    /// keep a second copy of a million balances for as long as it runs.
    pub fn actor(&self, node: &NodeSpec) -> Node {
        let coordinator = self.with_role(Role::Coordinator).id();
        match node.role {
            Role::Coordinator => Node::Coordinator(Coordinator {
                wallet: self.with_role(Role::Wallet).id(),
                order: self.with_role(Role::Order).id(),
                retention: self.retention,
            }),
            Role::Wallet => Node::Participant(Participant {
                resource: Resource::Wallet,
                coordinators: vec![coordinator],
                initial: Default::default(),
            }),
            Role::Order => Node::Participant(Participant {
                resource: Resource::Order,
                coordinators: vec![coordinator],
                initial: Default::default(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../examples/cluster.toml");

    #[test]
    fn the_example_cluster_file_parses() {
        let c = Cluster::parse(EXAMPLE).unwrap();
        assert_eq!(c.nodes.len(), 3);
        assert!(!c.accounts.table.is_empty() && !c.stock.table.is_empty());
        let wallet = c.node("wallet").unwrap();
        let Node::Participant(p) = c.actor(wallet) else {
            panic!("wallet is a participant")
        };
        assert_eq!(p.coordinators, vec![c.with_role(Role::Coordinator).id()]);
    }

    #[test]
    fn a_name_too_long_for_a_datagram_is_refused() {
        let long = "w".repeat(crate::wire::MAX_NAME + 1);
        let text = EXAMPLE.replacen("[stock]\n", &format!("[stock]\n{long} = 1\n"), 1);
        let err = Cluster::parse(&text).unwrap_err();
        assert!(err.starts_with("a key in [stock] (\"wwww"), "{err}");
        assert!(err.contains("at most 64 bytes"), "{err}");
    }

    #[test]
    fn a_cluster_written_as_toml_reads_back_the_same() {
        let mut c = Cluster::parse(EXAMPLE).unwrap();
        c.nodes[2].bind = "0.0.0.0:7000".parse().unwrap();
        c.accounts
            .table
            .insert("name with \"quotes\" = and spaces".into(), 7);
        c.stock.file = Some("/data/stock.csv".into());
        let text = c.to_toml();
        assert_eq!(Cluster::parse(&text), Ok(c), "{text}");
    }

    #[test]
    fn bad_cluster_files_say_what_is_wrong() {
        let two_wallets = r#"
            [[node]]
            name = "a"
            role = "wallet"
            address = "127.0.0.1:1"
            [[node]]
            name = "b"
            role = "wallet"
            address = "127.0.0.1:2"
        "#;
        assert!(Cluster::parse(two_wallets)
            .unwrap_err()
            .contains("exactly one"));
        let v6 = "[[node]]\nname='c'\nrole='coordinator'\naddress='[::1]:5'";
        assert!(Cluster::parse(v6).unwrap_err().contains("IPv4"));
        assert!(Cluster::parse("[[node]]\nnam='x'").is_err());
    }

    #[test]
    fn levels_files_are_relative_to_the_cluster_file() {
        let dir = tempfile::tempdir().unwrap();
        let text =
            format!("accounts_file = \"balances.csv\"\nstock_file = \"/abs/stock.csv\"\n{EXAMPLE}");
        let path = dir.path().join("cluster.toml");
        std::fs::write(&path, text).unwrap();
        let c = Cluster::load(&path).unwrap();
        assert_eq!(c.accounts.file, Some(dir.path().join("balances.csv")));
        assert_eq!(c.stock.file, Some(PathBuf::from("/abs/stock.csv")));
        // Only a participant's first start reads it (`node.rs`); missing, it
        // is an error naming the setting and the file.
        assert_eq!(c.initial_levels(Role::Coordinator).unwrap(), None);
        let err = c.initial_levels(Role::Wallet).unwrap_err().to_string();
        assert!(
            err.contains("accounts_file") && err.contains("balances.csv"),
            "{err}"
        );
    }
}
