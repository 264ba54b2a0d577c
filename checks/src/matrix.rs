//! The configurations CI checks exhaustively. Each pins its unique state count
//! so that any change to the protocol's reachable behaviour shows up in review.

use crate::config::{Config, Role};
use crate::run::Strategy;

/// One CI configuration.
pub struct Entry {
    /// A short name.
    pub name: &'static str,
    /// What it covers.
    pub about: &'static str,
    /// The configuration.
    pub config: Config,
    /// Unique states the exhaustive check must visit.
    pub unique_states: usize,
    /// How to search (depth-first where breadth-first would need gigabytes).
    pub strategy: Strategy,
}

/// The CI matrix.
pub fn entries() -> Vec<Entry> {
    let all: std::collections::BTreeSet<Role> =
        [Role::Coordinator, Role::Wallet, Role::Order, Role::Client].into();
    vec![
        Entry {
            name: "compete",
            about: "two clients, one purchase each, one balance that covers one; udp; no crashes",
            config: Config::default(),
            unique_states: 950_715,
            strategy: Strategy::Bfs,
        },
        Entry {
            name: "one-crash",
            about: "one purchase; udp; at most one actor down at a time, any actor",
            config: Config {
                clients: 1,
                max_crashes: 1,
                crashable: all,
                ..Config::default()
            },
            unique_states: 698_453,
            strategy: Strategy::Dfs,
        },
        Entry {
            name: "two-purchases-one-crash",
            about: "one client, two purchases (the second runs short); udp; one participant down at a time",
            config: Config {
                clients: 1,
                purchases: 2,
                max_crashes: 1,
                crashable: [Role::Wallet, Role::Order].into(),
                ..Config::default()
            },
            unique_states: 851_037,
            strategy: Strategy::Dfs,
        },
        Entry {
            name: "two-purchases-coordinator-crash",
            about: "one client, two purchases (the second runs short); udp; the coordinator crashes and restarts once",
            config: Config {
                clients: 1,
                purchases: 2,
                max_crashes: 1,
                crashable: [Role::Coordinator].into(),
                ..Config::default()
            },
            unique_states: 4_187_003,
            strategy: Strategy::Dfs,
        },
    ]
}
