//! The three roles of a cluster, and their names: written here once, read
//! by the cluster file, the data directory's `NODE` file, logs and the local
//! cluster of `twopc demo` and `twopc bench`.

use serde::{Deserialize, Serialize};
use twopc_model::Storage;

/// How the coordinator is run (the model's: the checker names it too).
pub use twopc_model::Protocol;

/// A node's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Runs transactions.
    Coordinator,
    /// Guards balances.
    Wallet,
    /// Guards stock.
    Order,
}

impl Role {
    /// Every role; a cluster has exactly one node of each.
    pub const ALL: [Role; 3] = [Role::Coordinator, Role::Wallet, Role::Order];

    /// The role's name (also the name `twopc demo` gives its node).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Coordinator => "coordinator",
            Role::Wallet => "wallet",
            Role::Order => "order",
        }
    }

    /// Whether `storage` can be this role's durable state (a wallet's and an
    /// order service's look alike: both are a participant's).
    pub fn keeps(self, storage: &Storage) -> bool {
        match (self, storage) {
            // A coordinator's node keeps a coordinator's state, or a
            // replica's in a replicated cluster (which one it must be is the
            // cluster's protocol: `storage/open.rs`).
            (Role::Coordinator, Storage::Coordinator(_) | Storage::Replica(_)) => true,
            (Role::Wallet | Role::Order, Storage::Participant(_)) => true,
            (Role::Coordinator, Storage::Participant(_) | Storage::Client(_))
            | (
                Role::Wallet | Role::Order,
                Storage::Coordinator(_) | Storage::Client(_) | Storage::Replica(_),
            ) => false,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_has_one_name_in_files_and_logs() {
        for role in Role::ALL {
            let toml = toml::Value::try_from(role).unwrap();
            assert_eq!(toml.as_str(), Some(role.as_str()));
            assert_eq!(role.to_string(), role.as_str());
        }
    }
}
