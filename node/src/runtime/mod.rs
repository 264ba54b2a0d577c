//! The runtime: everything a running node is made of, and nothing else.
//!
//! A datagram's way: [`shell`] reads it from the socket ([`transport`]) and
//! feeds it to the sans-IO [`mod@core`], which decodes it ([`wire`]), runs
//! the actor and answers with a `Ready`: saves to make durable ([`storage`])
//! and datagrams that may leave only after them. [`replication`] carries a
//! replicated coordinator's state between its replicas over TCP. [`node`] is
//! the one way to start a node. The rest is what these share: the cluster
//! file ([`cluster`], [`cluster_id`], [`role`], [`initial`]), the history
//! a datagram is stamped with ([`history`]), transactions in doubt
//! ([`in_doubt`]), the counters and views a node reports ([`admin`]), the
//! faults and runtime mutants a test may switch on ([`faults`], [`mutant`]),
//! the step recorder ([`trace`]), the timeline of a node's steps
//! ([`timeline`]) and the errors ([`error`]).
//!
//! Uses nothing of the operator's tools or the test harness (the crate's
//! other groups); they use it.

pub mod admin;
pub mod cluster;
pub mod cluster_id;
pub mod core;
pub mod error;
pub mod faults;
pub mod history;
pub mod in_doubt;
pub mod initial;
pub mod mutant;
pub mod node;
pub mod replication;
pub mod role;
pub mod shell;
pub mod storage;
pub mod timeline;
pub mod trace;
pub mod transport;
pub mod wire;
