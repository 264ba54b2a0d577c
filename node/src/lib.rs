//! # twopc-node: the twopc protocol over real UDP
//!
//! Runs the actors of `twopc-model` — the same code the model checker
//! explores — as real processes: one tokio task per actor ([`runtime`]),
//! a versioned, authenticated datagram format ([`wire`]) over UDP
//! ([`transport`]), crash-safe storage of per-save deltas ([`storage`],
//! [`delta`]) with persist-before-send and group commit, a TOML cluster file
//! ([`cluster`]), and the admin view behind `twopc status` ([`admin`]).
//! [`server`] runs one node, [`client`] makes purchases and asks for status,
//! [`local`] runs a whole cluster for [`demo`] and [`mod@bench`]; the binary
//! `twopc` (`main.rs`) only parses the command line.

pub mod admin;
pub mod bench;
pub mod client;
pub mod cluster;
pub mod core;
pub mod delta;
pub mod demo;
pub mod error;
pub mod faults;
pub mod local;
pub mod server;
pub mod shell;
pub mod storage;
pub mod transport;
pub mod wire;
