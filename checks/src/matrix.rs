//! The configurations CI checks exhaustively. Each pins its unique state count
//! so that any change to the protocol's reachable behaviour shows up in review.

use crate::config::{Config, Reuse, Role};
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
            unique_states: 2_825_087,
            // Depth-first: the same count, in about a third of the time
            // breadth-first took once the ticket round trip tripled it.
            strategy: Strategy::Dfs,
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
            unique_states: 1_223_110,
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
            unique_states: 1_149_243,
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
            unique_states: 18_420_832,
            strategy: Strategy::Dfs,
        },
        Entry {
            name: "coordinator-disk-lost",
            about: "one client, two purchases; udp; the coordinator crashes once and restarts on an empty disk (whatever it owed), learns the participants' epoch and what they hold, starts a new generation of tickets, recovers a commit one participant applied and leaves in doubt what both hold",
            config: Config {
                clients: 1,
                purchases: 2,
                max_crashes: 1,
                crashable: [Role::Coordinator].into(),
                lose_disk: true,
                ..Config::default()
            },
            unique_states: 564_296,
            strategy: Strategy::Dfs,
        },
        Entry {
            name: "reused-id",
            about: "one purchase; meanwhile a fresh incarnation retries its id and another client re-uses it with other contents; then the first client looks it up; udp; no crashes",
            config: Config {
                clients: 1,
                reuse: vec![Reuse::Same, Reuse::Different],
                afterwards: vec![Reuse::Lookup],
                ..Config::default()
            },
            unique_states: 249_114,
            strategy: Strategy::Dfs,
        },
        Entry {
            name: "expired-id",
            about: "one client, two purchases, one outcome remembered, money and stock for three; then it retries the first id as a fresh incarnation; udp; no crashes",
            config: expired_id(),
            unique_states: 952_134,
            strategy: Strategy::Dfs,
        },
        Entry {
            name: "kept-ticket",
            about: "expired-id with clients keeping their latest ticket for each next new purchase (no round trip for a ticket before the second purchase): one client, two purchases, one outcome remembered, money and stock for three; then it retries the first id as a fresh incarnation; udp; no crashes",
            config: Config {
                keep_ticket: true,
                ..expired_id()
            },
            unique_states: 868_191,
            strategy: Strategy::Dfs,
        },
        Entry {
            name: "replicated",
            about: "the replicated coordinator (3 replicas, Paxos ballots on its state): one purchase; udp; no crashes, no early campaign",
            config: replicated(),
            unique_states: 75_310,
            strategy: Strategy::Dfs,
        },
        Entry {
            name: "replicated-backup-crash",
            about: "the replicated coordinator: one purchase; udp; a backup replica crashes and restarts, any number of times",
            config: Config {
                max_crashes: 1,
                crashable: [Role::Backup].into(),
                ..replicated()
            },
            unique_states: 225_930,
            strategy: Strategy::Dfs,
        },
        Entry {
            name: "replicated-leader-dies",
            about: "the replicated coordinator: one purchase; udp; the first leader crashes at any moment and never recovers (where 2PC blocks)",
            config: Config {
                max_crashes: 1,
                crashable: [Role::Coordinator].into(),
                never_recover: [Role::Coordinator].into(),
                ..replicated()
            },
            unique_states: 2_083_842,
            strategy: Strategy::Dfs,
        },
        Entry {
            name: "competing-leaders",
            about: "the replicated coordinator: one purchase; udp; one campaign may start early, by either backup, while the first leader is up (two leaders at once, one deposed without knowing it), and the first leader crashes at any moment and never recovers (a backup campaigns against it, possibly against the early one for the same term number)",
            config: competing_leaders(),
            unique_states: 8_535_792,
            strategy: Strategy::Dfs,
        },
        Entry {
            name: "replica-disk-lost",
            about: "the replicated coordinator: one purchase; udp; a backup crashes once, while it holds the latest state and the other lags, and restarts on an empty disk: it recovers from every other replica before it votes, and catches up",
            config: replica_disk_lost(),
            unique_states: 1_049_910,
            strategy: Strategy::Dfs,
        },
        Entry {
            name: "flows",
            about: "one client: a purchase, then a top-up of a new user (created by its commit) and a restock of the sku, each a one-participant transaction of a credit; udp; no crashes (conservation with flows; the credit-at-prepare mutant is caught here)",
            config: Config {
                clients: 1,
                flows: true,
                ..Config::default()
            },
            unique_states: 878_191,
            strategy: Strategy::Dfs,
        },
        Entry {
            name: "prices",
            about: "one client: a restock that sets the sku's price (the catalogue starts one above it), then a purchase at the new price, its order hold carrying the price (PreparePriced); udp; no crashes (a purchase commits only at the catalogue price: it commits once the restock committed, and aborts price_changed when the restock timed out; the order-ignores-price mutant is caught here)",
            config: crate::config::prices(),
            unique_states: 28_455,
            strategy: Strategy::Dfs,
        },
        Entry {
            name: "refunds",
            about: "one client: a purchase of two units, then a refund of one unit of it, a transaction of two credits (the buyer's money, the sku's stock); udp; no crashes (a refund commits only for a committed purchase and never beyond it, refused not_committed when the purchase timed out; a retried credit applies once; the coordinator counts what it refunded; the refund-not-checked, refunded-not-raised and credit-applied-twice mutants are caught here)",
            config: crate::config::refunds(),
            unique_states: 176_542,
            strategy: Strategy::Dfs,
        },
        Entry {
            name: "one-write",
            about: "one purchase under the one-write protocol (docs/one-write.md): decisions told before the coordinator saves them, late votes fenced, every restart resolving from the participants' fates, commits applied in memory and acknowledged after the participant's next save; udp; any actor may crash, one down at a time, the coordinator restarts once (an outcome told is the one the saved votes imply; the abort-without-fence, fence-beats-yes, all-hold-aborts and ack-before-save mutants are caught here)",
            config: crate::config::one_write(),
            unique_states: 9_302_471,
            strategy: Strategy::Dfs,
        },
        Entry {
            name: "replicated-one-write",
            about: "the replicated coordinator under the one-write protocol (docs/one-write-recovery.md): the leader tells a purchase's commit before its group accepts a save, and resolves from the participants' fates when it takes over; one purchase; udp; no crashes, no early campaign",
            config: Config {
                one_write: true,
                ..replicated()
            },
            unique_states: 442_377,
            strategy: Strategy::Dfs,
        },
    ]
}

pub use crate::config::{competing_leaders, replica_disk_lost, replicated};

/// One client, two purchases, one outcome remembered, money and stock for
/// three; then it retries the first id as a fresh incarnation.
fn expired_id() -> Config {
    Config {
        clients: 1,
        purchases: 2,
        retention: 1,
        balance: 20,
        stock: 3,
        afterwards: vec![Reuse::Same],
        ..Config::default()
    }
}
