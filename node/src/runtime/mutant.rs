//! Runtime mutants: deliberately broken variants of the node's own code —
//! **testing aids, never on in a deployment** (no `twopc node` flag selects
//! one). Each breaks one rule the runtime must keep that the model checker
//! cannot see, because the checker runs the actors, not the runtime around
//! them. The deterministic simulation (the harness's `sim`, `twopc-sim
//! --mutant`) must catch every one of them; `node/tests/sim.rs` shows it
//! does (the replicated coordinator's, with `--protocol replicated`:
//! `node/tests/sim_replicated.rs`).

use std::fmt;

/// One deliberately broken rule of the runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum RuntimeMutant {
    /// Storage never fsyncs: writes reach the page cache only, so a power
    /// cut loses saves whose messages (votes, decisions) already left.
    NoFsync,
    /// Datagrams leave before the batch's save is durable: a crash in
    /// between loses a hold or a decision that peers already acted on.
    SendBeforeFsync,
    /// A restart starts from the last snapshot and ignores the log written
    /// since: everything saved after the last compaction is forgotten.
    RestartFromSnapshot,
    /// A cancelled timer stays armed and fires later, as no model step
    /// allows (the model fires only timers that are set).
    TimerAfterCancel,
    /// A leading replica's batch whose only messages are its own `Accept`s
    /// (which leave before its fsync) ends without the fsync, and its save
    /// counts as durable: the leader counts its own acceptance of a version
    /// towards a majority while its disk does not hold it.
    LeaderAcksUnsynced,
    /// A replica's `Accepted` leaves before its fsync, as a leader's
    /// `Accept` may: the leader counts an acceptance that a crash of the
    /// follower can still lose.
    FollowerAcksUnsynced,
}

impl RuntimeMutant {
    /// Every mutant, in declaration order.
    pub const ALL: [RuntimeMutant; 6] = [
        RuntimeMutant::NoFsync,
        RuntimeMutant::SendBeforeFsync,
        RuntimeMutant::RestartFromSnapshot,
        RuntimeMutant::TimerAfterCancel,
        RuntimeMutant::LeaderAcksUnsynced,
        RuntimeMutant::FollowerAcksUnsynced,
    ];

    /// Whether it breaks only the replicated coordinator's path (the
    /// replicas' links and acceptance): a 2PC cluster runs it unharmed.
    pub fn replicas_only(self) -> bool {
        matches!(
            self,
            RuntimeMutant::LeaderAcksUnsynced | RuntimeMutant::FollowerAcksUnsynced
        )
    }

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            RuntimeMutant::NoFsync => "no-fsync",
            RuntimeMutant::SendBeforeFsync => "send-before-fsync",
            RuntimeMutant::RestartFromSnapshot => "restart-from-snapshot",
            RuntimeMutant::TimerAfterCancel => "timer-after-cancel",
            RuntimeMutant::LeaderAcksUnsynced => "leader-acks-unsynced",
            RuntimeMutant::FollowerAcksUnsynced => "follower-acks-unsynced",
        }
    }
}

impl fmt::Display for RuntimeMutant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
