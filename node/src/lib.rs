//! # twopc-node: the twopc protocol over real UDP
//!
//! Runs the actors of `twopc-model` — the same code the model checker
//! explores — as real processes. A datagram's way: [`shell`] reads it from
//! the socket ([`transport`]) and feeds it to the sans-IO [`mod@core`], which
//! decodes it ([`wire`]), runs the actor and answers with a `Ready`: saves
//! to make durable ([`storage`]) and datagrams that may leave only after
//! them; the shell runs it through the one executor (`core::ready::run`,
//! which the simulator, [`sim`], runs too): stage, fsync once per batch,
//! send. Nothing climbs back up.
//!
//! The replicas of a replicated coordinator also talk among themselves
//! over TCP ([`replication`]: an `Accept` of the coordinator's whole state
//! goes as its changes since the previous one).
//!
//! [`node`] is the one way to start a node (claim the data directory, replay
//! it, bind, run) for `twopc node` and for the in-process clusters of
//! [`local`] ([`demo`], [`mod@bench`]). [`cluster`] reads and writes the
//! cluster file, with the [`role`] names in one place and a participant's
//! [`initial`] levels (a table, or a CSV file for a million keys); [`client`] makes
//! purchases and asks for status ([`admin`] is what a node reports);
//! [`faults`] misbehaves on purpose for tests; [`trace`] records every
//! actor step for `twopc-check replay` (off by default). [`cli`] is the command line;
//! the binary `twopc` (`main.rs`) only parses it.

pub mod admin;
pub mod bench;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod cluster_id;
pub mod core;
pub mod demo;
pub mod error;
pub mod faults;
pub mod history;
pub mod http;
pub mod in_doubt;
pub mod initial;
pub mod local;
pub mod mutant;
pub mod node;
pub mod promises;
pub mod replication;
pub mod role;
pub mod shell;
pub mod sim;
pub mod storage;
pub mod trace;
pub mod transport;
pub mod wire;
