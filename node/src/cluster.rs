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
//! Initial data is used only on a participant's first start: after that its
//! own storage is the truth.

use crate::error::{Error, Result};
pub use crate::role::Role;
use serde::{Deserialize, Serialize};
use stateright::actor::Id;
use std::collections::BTreeMap;
use std::net::{SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::path::Path;
use twopc_model::{Coordinator, Node, Participant, Resource};

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
    #[serde(default)]
    node: Vec<RawNode>,
    #[serde(default)]
    accounts: BTreeMap<String, u64>,
    #[serde(default)]
    stock: BTreeMap<String, u64>,
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
    /// The wallet's initial balances.
    pub accounts: BTreeMap<String, u64>,
    /// The order service's initial stock.
    pub stock: BTreeMap<String, u64>,
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
    /// Reads and validates a cluster file.
    pub fn load(path: &Path) -> Result<Cluster> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ClusterRead {
            path: path.to_path_buf(),
            source,
        })?;
        Cluster::parse(&text).map_err(|msg| Error::ClusterInvalid {
            path: path.to_path_buf(),
            msg,
        })
    }

    /// Parses and validates cluster-file text.
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
        Ok(Cluster {
            nodes,
            accounts: raw.accounts,
            stock: raw.stock,
        })
    }

    /// The cluster file for this cluster (`parse` reads it back as it is).
    pub fn to_toml(&self) -> String {
        let raw = RawCluster {
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
            accounts: self.accounts.clone(),
            stock: self.stock.clone(),
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

    /// The model actor that `node` runs: the same `twopc_model::Node` the
    /// checker explores, configured with peer Ids from this file.
    pub fn actor(&self, node: &NodeSpec) -> Node {
        let coordinator = self.with_role(Role::Coordinator).id();
        match node.role {
            Role::Coordinator => Node::Coordinator(Coordinator {
                wallet: self.with_role(Role::Wallet).id(),
                order: self.with_role(Role::Order).id(),
            }),
            Role::Wallet => Node::Participant(Participant {
                resource: Resource::Wallet,
                coordinator,
                initial: self.accounts.clone(),
            }),
            Role::Order => Node::Participant(Participant {
                resource: Resource::Order,
                coordinator,
                initial: self.stock.clone(),
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
        assert!(!c.accounts.is_empty() && !c.stock.is_empty());
        let wallet = c.node("wallet").unwrap();
        let Node::Participant(p) = c.actor(wallet) else {
            panic!("wallet is a participant")
        };
        assert_eq!(p.coordinator, c.with_role(Role::Coordinator).id());
    }

    #[test]
    fn a_cluster_written_as_toml_reads_back_the_same() {
        let mut c = Cluster::parse(EXAMPLE).unwrap();
        c.nodes[2].bind = "0.0.0.0:7000".parse().unwrap();
        c.accounts
            .insert("name with \"quotes\" = and spaces".into(), 7);
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
}
