//! [`Counters`]: what a node counted since it started (datagrams, drops by
//! reason, saves, fsyncs, decisions, alarms), as `twopc status` and
//! `/metrics` report them. Uses `reject_reason` (a counter's key).

use super::RejectReason;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use twopc_model::{AbortReason, Operation, Verdict};

/// How a purchase was decided: the key of [`Counters::decided`]. Written as
/// its name (`committed`, or the abort reason's: `insufficient_funds`, ...)
/// in `twopc status --json` and as the `outcome` label of `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum DecidedAs {
    /// Committed.
    Committed,
    /// Aborted, and why.
    Aborted(AbortReason),
}

impl DecidedAs {
    /// What an outcome with `verdict` counts as: a purchase decided, or
    /// nothing (an id refused, or unknown).
    pub fn of(verdict: Verdict) -> Option<DecidedAs> {
        match verdict {
            Verdict::Committed => Some(DecidedAs::Committed),
            Verdict::Aborted(r) => Some(DecidedAs::Aborted(r)),
            Verdict::Refused(_) | Verdict::Unknown => None,
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            DecidedAs::Committed => "committed",
            DecidedAs::Aborted(r) => r.name(),
        }
    }
}

/// An operation's name in counters and metrics labels (a priced restock
/// is a restock).
pub fn op_name(op: &Operation) -> &'static str {
    match op {
        Operation::Purchase(_) => "purchase",
        Operation::TopUp { .. } => "topup",
        Operation::Restock { .. } | Operation::PricedRestock { .. } => "restock",
        Operation::Refund { .. } => "refund",
    }
}

impl From<DecidedAs> for String {
    fn from(d: DecidedAs) -> String {
        d.name().to_string()
    }
}

impl TryFrom<String> for DecidedAs {
    type Error = String;

    fn try_from(name: String) -> Result<DecidedAs, String> {
        match name.as_str() {
            "committed" => Ok(DecidedAs::Committed),
            _ => AbortReason::from_name(&name)
                .map(DecidedAs::Aborted)
                .ok_or_else(|| format!("unknown outcome {name:?}")),
        }
    }
}

/// A node's counters since it started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Datagrams received (accepted or not).
    pub datagrams_in: u64,
    /// Datagrams sent (and, at a replica, messages handed to its links
    /// to the other replicas).
    pub datagrams_out: u64,
    /// Replicas: messages received from the other replicas (TCP).
    #[serde(default)]
    pub peer_msgs_in: u64,
    /// Sends the OS refused (logged at warn).
    pub send_errors: u64,
    /// Receives the OS failed (logged at warn, rate-limited).
    #[serde(default)]
    pub receive_errors: u64,
    /// Datagrams dropped, by reason (`bad_magic`, `bad_mac`, `undecodable`, ...).
    pub rejected: BTreeMap<RejectReason, u64>,
    /// Protocol messages handed to the actor.
    pub msgs_handled: u64,
    /// Timers fired.
    pub timers_fired: u64,
    /// Messages dropped on purpose by a `--fault-*` flag.
    pub fault_dropped: u64,
    /// Datagrams sent twice on purpose (`--fault-duplicate`).
    #[serde(default)]
    pub fault_duplicated: u64,
    /// Datagrams held back on purpose (`--fault-delay`).
    #[serde(default)]
    pub fault_delayed: u64,
    /// Datagrams overtaken on purpose (`--fault-reorder`).
    #[serde(default)]
    pub fault_reordered: u64,
    /// `Save` commands run.
    pub saves: u64,
    /// fsyncs (data and directory) done by storage.
    pub fsyncs: u64,
    /// Bytes written to storage (log and snapshots).
    pub bytes_written: u64,
    /// Snapshots written by log compaction.
    pub compactions: u64,
    /// Loop iterations that ended in a flush (several messages may share one).
    pub batches: u64,
    /// Participants: `Commit`s for a transaction this node has no record of
    /// (not held, not finished, not below its floor): lost acknowledged
    /// data, or a bug. Each is logged at error level; `twopc status` shows
    /// them as an alarm.
    #[serde(default)]
    pub unknown_decisions: u64,
    /// The last few of those (at most [`RECENT_ALARMS`]), oldest first.
    #[serde(default)]
    pub recent_unknown_decisions: Vec<UnknownDecision>,
    /// Coordinator: purchases decided by this incarnation, by outcome
    /// (`committed`, or the abort reason: `insufficient_funds`, ...). An
    /// outcome counts when the step that sent it also saved it (a decision);
    /// answers to retries of decided requests are not counted again.
    #[serde(default)]
    pub decided: BTreeMap<DecidedAs, u64>,
    /// Participants: why this node stopped handing its coordinator's
    /// messages to the actor — its history is behind what the coordinator
    /// heard from it (the history module). `twopc status` shows it as an
    /// alarm; it stays until the node restarts.
    #[serde(default)]
    pub rolled_back: Option<String>,
    /// The last few addresses (at most [`RECENT_ALARMS`]) whose messages
    /// were dropped as `unknown_sender`: not in the cluster file.
    #[serde(default)]
    pub unknown_senders: Vec<String>,
    /// Replicas: messages and connections to or from the other replicas
    /// dropped by the TCP links (`replication/`), by reason
    /// (`queue_full`, `bad_mac`, `stranger`, ...).
    #[serde(default)]
    pub link_dropped: BTreeMap<String, u64>,
    /// Coordinator: transactions in doubt decided by an operator
    /// (`twopc decide`), by decision (`commit`, `abort`).
    #[serde(default)]
    pub heuristic_decisions: BTreeMap<String, u64>,
    /// Coordinator: the same decisions as `decided`, by operation
    /// (`purchase`, `topup`, `restock`, `refund`: [`op_name`]), then by
    /// outcome. Last: a status reply without it reads as counting none.
    #[serde(default)]
    pub decided_by_op: BTreeMap<String, BTreeMap<DecidedAs, u64>>,
}

/// How many unknown decisions `status` lists (the count covers them all).
pub const RECENT_ALARMS: usize = 8;

/// A decision for a transaction a participant has no record of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnknownDecision {
    /// The transaction, `epoch.n`.
    pub txn: String,
    /// Who sent the decision (an authenticated datagram's source address).
    pub from: String,
}

impl Counters {
    /// Counts a decision for an unknown transaction and remembers it among
    /// the last [`RECENT_ALARMS`].
    pub fn unknown_decision(&mut self, txn: String, from: String) {
        self.unknown_decisions += 1;
        if self.recent_unknown_decisions.len() == RECENT_ALARMS {
            self.recent_unknown_decisions.remove(0);
        }
        self.recent_unknown_decisions
            .push(UnknownDecision { txn, from });
    }
}
