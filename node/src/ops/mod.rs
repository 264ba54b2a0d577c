//! The operator's tools: what a person runs against nodes.
//!
//! [`cli`] is the command line (the binary `twopc` only parses it);
//! [`client`] makes purchases and asks nodes for their status; [`http`] is
//! the HTTP API and `/metrics` in front of a node; [`local`] runs a whole
//! cluster on one machine (in tasks or child processes) for [`demo`] and
//! [`mod@bench`], on ports [`ports`] picks; [`views`] asks a participant
//! about one account or sku; [`journal`] asks one for its journal;
//! [`entry`] is one journal entry as both show it.
//!
//! Uses the runtime; uses nothing of the test harness, and the runtime uses
//! nothing here.

pub mod bench;
pub mod cli;
pub mod client;
pub mod demo;
pub mod entry;
pub mod http;
pub mod journal;
pub mod local;
pub mod ports;
pub mod views;
