//! # Deterministic simulation of the node's own code
//!
//! The model checker proves the actors; the chaos test shows real processes
//! survive `kill -9`, loss and duplication. Between the two sits the node's
//! own code — the runtime core, its batching and timers, the wire codec, the
//! persist-before-send rule — and faults that neither reaches: a power cut
//! that loses unsynced writes, a crash between a save and its fsync, a timer
//! that misbehaves. Here that code runs in a simulated world, FoundationDB
//! style:
//!
//! - **The real code.** Every node is the runtime's own [`crate::runtime::core::Core`]
//!   around the model's actor, fed the same events the shell feeds it
//!   (datagrams, due timers, start from storage); its datagrams are encoded,
//!   authenticated and decoded by the real [`crate::runtime::wire`] codec; each batch
//!   ends through the shell's own executor ([`crate::runtime::core::ready::run`]):
//!   send what may go, stage the save, fsync if the core says so, send the
//!   rest. Only the socket, the clock and the disk are simulated (this
//!   module's [`crate::runtime::core::Effects`], `flush.rs`).
//! - **One seed.** One RNG drives everything: the network (loss,
//!   duplication, delay up to `--delay-max-ms`, hence reordering;
//!   partitions that cut a server off for up to 2 s), the crash schedule,
//!   the purchases, and every node's timer durations. Events sit in one
//!   queue ordered by simulated time; nothing reads a real clock. So a seed
//!   replays exactly: `twopc-sim --seed N --trace` prints the same lines
//!   every time, and every run prints a digest of all its events.
//! - **Crashes at any instant.** A node may be killed (its staged saves
//!   lost, written data kept) or lose power (its unsynced writes lost) at
//!   random times, and now and then in the middle of a batch, at one of the
//!   executor's [`crate::runtime::core::Point`]s: after staging, during or after the
//!   fsync, or between two sends. Clients crash too, and resume
//!   from their own saved outcomes.
//! - **Judged continuously and at the end.** At every instant: no
//!   transaction is committed at one participant and aborted at the other,
//!   and no timer fires that the actor did not set (the model fires only set
//!   timers). At the end — every purchase asked, faults off, every server
//!   power-cut once more and settled again — the run is judged by
//!   [`crate::harness::promises::verify`], the chaos test's judge: every request got
//!   an outcome, nothing charged twice, money and stock conserved, no hold
//!   and no commit left.
//! - **The replicated coordinator** (`--protocol replicated`,
//!   `replicas.rs`): three replicas, each its own core and log on its own
//!   disk, linked by simulated TCP connections that carry the node's own
//!   frames and `Accept` deltas (`links.rs`); a third of the crashes hit the
//!   leader, and a batch whose `Accept`s leave before its fsync is cut
//!   short five times as often. Judged besides: an acknowledgement is on
//!   its sender's disk, and what a leader counts as chosen is on a
//!   majority's.
//!
//! One job per file: `world.rs` the nodes and the queue of timed events;
//! `flush.rs` a batch's end and the crashes in it; `net.rs` the network;
//! `lifecycle.rs` starts and crashes; `clients.rs` the workload; `judge.rs`
//! the checks; `record.rs` the digest and the trace lines; [`disk`] the
//! simulated disks; `replicas.rs` the coordinator's replicas and their
//! checks; `links.rs` the replicas' links. [`crate::runtime::mutant`] lists
//! the runtime mutants the simulation must catch (`node/tests/sim.rs`,
//! `node/tests/sim_replicated.rs`).

mod clients;
pub mod disk;
mod flush;
mod judge;
mod lifecycle;
mod links;
mod net;
mod record;
mod replicas;
mod world;

pub use crate::runtime::cluster::Protocol;
pub use disk::DiskKind;
pub use world::{SKUS, USERS};

use crate::runtime::mutant::RuntimeMutant;
use std::collections::BTreeMap;
use std::time::Duration;

/// One simulated run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Drives every random choice.
    pub seed: u64,
    /// Purchases asked for in total (by clients of 1 to 4 purchases each).
    pub purchases: u64,
    /// Clients buying at once.
    pub clients: usize,
    /// Probability that a datagram is lost (chaos phase).
    pub loss: f64,
    /// Probability that a datagram is delivered twice (chaos phase).
    pub duplicate: f64,
    /// Longest network delay (each datagram waits between 50 µs and this).
    pub delay_max: Duration,
    /// Mean time between crashes (zero: none).
    pub crash_every: Duration,
    /// Share of crashes that are power cuts rather than kills.
    pub power_cut_share: f64,
    /// Probability that a server's batch is cut short by a crash.
    pub crash_in_flush: f64,
    /// Mean time between partitions (zero: none).
    pub partition_every: Duration,
    /// Most datagrams handled in one batch (one fsync).
    pub batch_max: usize,
    /// Outcomes the coordinator remembers (the cluster file's `retention`).
    pub retention: usize,
    /// The servers' disk: the real log code on a simulated disk, or whole
    /// states in memory.
    pub disk: DiskKind,
    /// One coordinator (2PC), or three replicas of it (`replicas.rs`).
    pub protocol: Protocol,
    /// The one-write protocol (docs/one-write.md; 2PC only).
    pub one_write: bool,
    /// A deliberately broken runtime (`crate::runtime::mutant`).
    pub mutant: Option<RuntimeMutant>,
    /// Print every event.
    pub trace: bool,
    /// Record every server step (`crate::runtime::trace`) for `twopc-check replay`.
    pub traces: bool,
    /// A run that has not settled by then is a violation.
    pub max_time: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            purchases: 200,
            clients: 4,
            loss: 0.05,
            duplicate: 0.05,
            delay_max: Duration::from_millis(20),
            crash_every: Duration::from_millis(400),
            power_cut_share: 0.5,
            crash_in_flush: 0.01,
            partition_every: Duration::from_secs(3),
            batch_max: 64,
            retention: 1000,
            disk: DiskKind::Log,
            protocol: Protocol::TwoPc,
            one_write: false,
            mutant: None,
            trace: false,
            traces: false,
            max_time: Duration::from_secs(3600),
        }
    }
}

/// What a run did and what went wrong.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimReport {
    /// The run's seed.
    pub seed: u64,
    /// Purchases asked for (each with or without an outcome).
    pub purchases: u64,
    /// Purchases told committed.
    pub commits: u64,
    /// Aborted purchases by reason.
    pub aborts: BTreeMap<String, u64>,
    /// Simulated time at the end.
    pub sim_time: Duration,
    /// Simulated time when the last purchase was asked for and faults stopped.
    pub chaos_time: Duration,
    /// Events run.
    pub events: u64,
    /// Datagrams sent.
    pub datagrams: u64,
    /// Datagrams lost (by chance, to a partition or to a node that is down).
    pub dropped: u64,
    /// Datagrams delivered twice.
    pub duplicated: u64,
    /// Server (re)starts.
    pub starts: u64,
    /// Kills (process crashes).
    pub kills: u64,
    /// Power cuts.
    pub power_cuts: u64,
    /// Crashes in the middle of a batch (counted in kills or power cuts too).
    pub crashes_in_flush: u64,
    /// Partitions.
    pub partitions: u64,
    /// Messages written on the replicas' links.
    pub link_msgs: u64,
    /// Messages to replicas lost: coalesced away, unsent (peer down or cut
    /// off), or in flight on a connection that broke.
    pub link_lost: u64,
    /// Links broken (a partition, a restarted receiver).
    pub link_breaks: u64,
    /// Terms led (the first leader's included).
    pub leaders: u64,
    /// Crashes between a batch's early messages to replicas (a leader's
    /// `Accept`s) and the end of its fsync.
    pub crashes_after_early_send: u64,
    /// Starts refused by storage (lost or damaged data).
    pub refused_starts: u64,
    /// fsyncs by every node's storage.
    pub fsyncs: u64,
    /// Every broken promise, in words.
    pub violations: Vec<String>,
    /// A digest of every event: equal for two runs of one configuration.
    pub digest: u64,
}

/// Runs one simulation.
pub fn run(cfg: &SimConfig) -> SimReport {
    world::World::new(cfg).run()
}

/// A server's name and every step it took, over all its incarnations.
pub type ServerTrace = (String, Vec<twopc_model::trace::Record>);

/// Runs one simulation recording every server step (for `twopc-check
/// replay`, which checks each against the model).
pub fn run_traced(cfg: &SimConfig) -> (SimReport, Vec<ServerTrace>) {
    let cfg = SimConfig {
        traces: true,
        ..cfg.clone()
    };
    world::World::new(&cfg).run_traced()
}
