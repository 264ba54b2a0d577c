//! The test harness: [`sim`], the deterministic simulation of a whole
//! cluster on a simulated network and disk (`twopc-sim`), and
//! [`promises`], the properties that every run (simulated, or of real
//! processes in `node/tests`) is judged by.
//!
//! Uses the runtime; uses nothing of the operator's tools, and the runtime
//! uses nothing here.

pub mod promises;
pub mod sim;
