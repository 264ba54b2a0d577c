//! Chaos: a real cluster (three `twopc node` processes on 127.0.0.1) under
//! injected loss, duplication, delay and reordering, while several clients
//! make purchases that compete for the same balances and stock, and nodes —
//! the coordinator included — are killed with SIGKILL at random instants and
//! restarted from their data directories, again and again. Then the cluster
//! settles and every promise is checked from the participants' own durable
//! state and the outcomes the clients saw.
//!
//! Short form (the normal test suite): `cargo test --release -p twopc-node
//! --test chaos`. Long form: `TWOPC_CHAOS_SECS=600 TWOPC_CHAOS_SEED=7 cargo
//! test --release -p twopc-node --test chaos -- --nocapture`. The seed drives
//! the purchases, the kill schedule and every node's fault RNG; a failing run
//! prints it (timing on a real machine still varies, so a seed makes a
//! failure likely to recur, not certain).
//!
//! Every node records its steps (`twopc node --trace`), and the traces of
//! the whole run, across every kill, are replayed against the model at the
//! end (`twopc-check replay`, as the library `twopc_checks::replay`).
//!
//! The same chaos against the replicated coordinator is
//! `chaos_replicated.rs`; the run itself is `common/chaos.rs`.

mod common;

use common::chaos::chaos;
use twopc_model::Protocol;

#[test]
fn chaos_kill9_and_lossy_network_keep_every_promise() {
    chaos(Protocol::TwoPc);
}
