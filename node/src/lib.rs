//! # twopc-node: the twopc protocol over real UDP
//!
//! Runs the actors of `twopc-model` — the same code the model checker
//! explores — as real processes. The crate has three layers, each a
//! directory whose `mod.rs` says what it owns and what it may use:
//!
//! - [`runtime`]: a running node — the socket and the sans-IO core, the wire
//!   format, storage, replication, the cluster file, the counters a node
//!   reports. Uses nothing above it.
//! - [`ops`]: the operator's tools — the command line, the client, the HTTP
//!   API, local clusters, demo and bench. Uses the runtime.
//! - [`harness`]: the deterministic simulation and the promises every run is
//!   judged by. Uses the runtime.
//!
//! Nothing climbs back up: `tools/circles.py` checks that the layers, and
//! the modules inside each, use each other without a circle.

pub mod harness;
pub mod ops;
pub mod runtime;
