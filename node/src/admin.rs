//! What `twopc status` shows: a node's view of its own state and counters,
//! built by the runtime from the actor's state (never a protocol message).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use twopc_model::State;

/// At most this many balances or skus are listed in one reply (it must fit
/// in a datagram); `levels_total` says how many there are.
pub const MAX_LISTED: usize = 200;

/// A node's counters since it started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Datagrams received (accepted or not).
    pub datagrams_in: u64,
    /// Datagrams sent.
    pub datagrams_out: u64,
    /// Sends the OS refused (logged at warn).
    pub send_errors: u64,
    /// Datagrams dropped, by reason (`bad_magic`, `bad_mac`, `undecodable`, ...).
    pub rejected: BTreeMap<String, u64>,
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
}

/// One prepared, undecided transaction at a participant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldView {
    /// The transaction, `epoch.n`.
    pub txn: String,
    /// The request, `client#seq`.
    pub req: String,
    /// The account or sku held.
    pub key: String,
    /// How much is held.
    pub amount: u64,
}

/// A node's view of itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    /// The node's name in the cluster file.
    pub name: String,
    /// coordinator, wallet, order or client.
    pub role: String,
    /// Participants: committed balances or stock (at most [`MAX_LISTED`]).
    pub levels: BTreeMap<String, u64>,
    /// Participants: how many accounts or skus there are.
    pub levels_total: usize,
    /// Participants: prepared transactions awaiting a decision (in doubt).
    pub holds: Vec<HoldView>,
    /// Participants: transactions decided here (kept forever by the model).
    pub finished: usize,
    /// Coordinator: current incarnation.
    pub epoch: u64,
    /// Coordinator: transactions collecting votes.
    pub voting: usize,
    /// Coordinator: commit decisions not yet acknowledged by every participant.
    pub unacked_commits: Vec<String>,
    /// Coordinator: clients whose last outcome is remembered.
    pub clients: usize,
    /// Counters since start.
    pub counters: Counters,
}

impl NodeView {
    /// The view of a node named `name` in `state`.
    pub fn of(name: &str, state: &State, counters: &Counters) -> NodeView {
        let mut view = NodeView {
            name: name.to_string(),
            role: String::new(),
            levels: BTreeMap::new(),
            levels_total: 0,
            holds: Vec::new(),
            finished: 0,
            epoch: 0,
            voting: 0,
            unacked_commits: Vec::new(),
            clients: 0,
            counters: counters.clone(),
        };
        match state {
            State::Coordinator(c) => {
                view.role = "coordinator".into();
                view.epoch = c.epoch;
                view.voting = c.voting.len();
                view.unacked_commits = c.commits.keys().map(|t| t.to_string()).collect();
                view.clients = c.clients.len();
            }
            State::Participant(p) => {
                view.role = "participant".into();
                let data = &p.data;
                view.levels_total = data.levels.len();
                view.levels = data
                    .levels
                    .iter()
                    .take(MAX_LISTED)
                    .map(|(k, v)| (k.clone(), *v))
                    .collect();
                view.holds = data
                    .holds
                    .iter()
                    .take(MAX_LISTED)
                    .map(|(txn, h)| HoldView {
                        txn: txn.to_string(),
                        req: h.req.to_string(),
                        key: h.op.key.clone(),
                        amount: h.op.amount,
                    })
                    .collect();
                view.finished = data.finished.len();
            }
            State::Client(c) => {
                view.role = "client".into();
                view.clients = c.seen.len();
            }
        }
        view
    }

    /// A few human-readable lines.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "{} ({})", self.name, self.role);
        if self.role == "coordinator" {
            let _ = writeln!(
                s,
                "  epoch {}, voting {}, unacknowledged commits {:?}, clients remembered {}",
                self.epoch, self.voting, self.unacked_commits, self.clients
            );
        } else {
            let levels: Vec<String> = self
                .levels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let more = self.levels_total.saturating_sub(self.levels.len());
            let _ = writeln!(
                s,
                "  levels: {}{}",
                levels.join(" "),
                if more > 0 {
                    format!(" (+{more} more)")
                } else {
                    String::new()
                }
            );
            let holds: Vec<String> = self
                .holds
                .iter()
                .map(|h| format!("txn {} holds {} of {}", h.txn, h.amount, h.key))
                .collect();
            let _ = writeln!(
                s,
                "  in doubt: {}",
                if holds.is_empty() {
                    "none".to_string()
                } else {
                    holds.join(", ")
                }
            );
            let _ = writeln!(s, "  finished transactions: {}", self.finished);
        }
        let c = &self.counters;
        let _ = writeln!(
            s,
            "  counters: in {} out {} handled {} timers {} saves {} fsyncs {} bytes written {} rejected {:?} send errors {}",
            c.datagrams_in, c.datagrams_out, c.msgs_handled, c.timers_fired, c.saves, c.fsyncs,
            c.bytes_written, c.rejected, c.send_errors
        );
        s
    }
}
