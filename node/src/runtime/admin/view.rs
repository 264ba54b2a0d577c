//! [`NodeView`]: a node's view of itself, built by the runtime from the
//! actor's state and its counters (never a protocol message), and rendered
//! as `twopc status` prints it. Uses the other files here and
//! `crate::runtime::in_doubt` (the transactions in doubt).

use super::peers::alarms;
use super::{Counters, PeerView, ReplicaView, Standing, MAX_LISTED};
use crate::runtime::in_doubt::DoubtsView;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use twopc_model::{CoordState, State};

/// What kind of actor a node runs, as `twopc status` shows it: a wallet and
/// an order service are both participants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorKind {
    /// The coordinator.
    Coordinator,
    /// A wallet or an order service.
    Participant,
    /// A client (`twopc purchase`).
    Client,
    /// One replica of a replicated coordinator.
    Replica,
}

impl std::fmt::Display for ActorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ActorKind::Coordinator => "coordinator",
            ActorKind::Participant => "participant",
            ActorKind::Client => "client",
            ActorKind::Replica => "replica",
        })
    }
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

impl HoldView {
    /// The view of the hold of `txn`.
    pub fn of(txn: &twopc_model::TxnId, hold: &twopc_model::Hold) -> HoldView {
        HoldView {
            txn: txn.to_string(),
            req: hold.req.to_string(),
            key: hold.op.key.to_string(),
            amount: hold.op.amount,
        }
    }
}

/// A node's view of itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    /// The node's name in the cluster file.
    pub name: String,
    /// What the node runs: `coordinator`, `participant` (a wallet or an
    /// order service) or `client`.
    pub role: ActorKind,
    /// Participants: committed balances or stock (at most [`MAX_LISTED`]).
    pub levels: BTreeMap<String, u64>,
    /// Participants: how many accounts or skus there are.
    pub levels_total: usize,
    /// Participants: prepared transactions awaiting a decision (in doubt),
    /// the first [`MAX_LISTED`] of them.
    pub holds: Vec<HoldView>,
    /// Participants: how many transactions are in doubt (listed or not).
    #[serde(default)]
    pub holds_total: usize,
    /// Participants: transactions decided here (kept forever by the model).
    pub finished: usize,
    /// Coordinator: current incarnation.
    pub epoch: u64,
    /// Coordinator: transactions collecting votes.
    pub voting: usize,
    /// Coordinator: commit decisions not yet acknowledged by every participant.
    pub unacked_commits: Vec<String>,
    /// Coordinator: purchase outcomes remembered (at most the cluster's
    /// `retention`). Client: outcomes seen.
    pub clients: usize,
    /// Counters since start.
    pub counters: Counters,
    /// What needs a person's attention, one sentence each (empty when all
    /// is well): shown first by `twopc status`.
    #[serde(default)]
    pub alarms: Vec<String>,
    /// Replicas: where this one stands (the coordinator fields above are
    /// its coordinator's while it leads). Always written (bincode, the
    /// datagrams' format, cannot skip a field).
    #[serde(default)]
    pub replica: Option<ReplicaView>,
    /// The nodes of the cluster file this one talks to (or dropped
    /// datagrams from): when it last heard from each, and what it dropped.
    #[serde(default)]
    pub peers: Vec<PeerView>,
    /// Coordinator: transactions of a lost log in doubt, waiting for an
    /// operator (`crate::runtime::in_doubt`).
    #[serde(default)]
    pub doubts: DoubtsView,
    /// Coordinator or participant: whether it runs the one-write protocol
    /// (`one_write = true` in the cluster file, docs/one-write.md).
    /// Fields from here on may be absent from a reply of an older build:
    /// they read as their defaults ([`or_absent`]).
    #[serde(default, deserialize_with = "or_absent")]
    pub one_write: bool,
    /// Coordinator: the operations this incarnation decided, by how many
    /// durable writes their outcome waited for on its way to the client
    /// (`core/waited.rs`): 2 under two-phase commit, 1 under one write.
    #[serde(default, deserialize_with = "or_absent")]
    pub outcome_waited: BTreeMap<u8, u64>,
    /// Coordinator (or leading replica): still asking the participants
    /// for the epochs and fates they saw, as every start without a log and
    /// every one-write start does; no purchase starts until all answered
    /// (docs/one-write-recovery.md).
    #[serde(default, deserialize_with = "or_absent")]
    pub asking: bool,
}

/// Reads a field that a node of an older build did not write. Bincode
/// writes a struct's fields one after the other, without names or a count,
/// so such a node's reply simply ends before the field, and reading it
/// fails for want of input (bincode's "io error", the only I/O error
/// reading from memory): that reads as the default. Any other failure is
/// still one (a byte that is no `bool`), and the codec still refuses bytes
/// left over. JSON names its fields: one left out is `#[serde(default)]`'s,
/// and one that is there must read.
fn or_absent<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    let human = d.is_human_readable();
    match T::deserialize(d) {
        Err(e) if !human && e.to_string().starts_with("io error") => Ok(T::default()),
        read => read,
    }
}

impl NodeView {
    /// The view of a node named `name` in `state`.
    pub fn of(name: &str, state: &State, counters: &Counters) -> NodeView {
        let mut view = NodeView {
            name: name.to_string(),
            role: match state {
                State::Coordinator(_) => ActorKind::Coordinator,
                State::Participant(_) => ActorKind::Participant,
                State::Client(_) => ActorKind::Client,
                State::Replica(_) => ActorKind::Replica,
            },
            levels: BTreeMap::new(),
            levels_total: 0,
            holds: Vec::new(),
            holds_total: 0,
            finished: 0,
            epoch: 0,
            voting: 0,
            unacked_commits: Vec::new(),
            clients: 0,
            counters: counters.clone(),
            alarms: alarms(counters),
            replica: None,
            peers: Vec::new(),
            doubts: DoubtsView::default(),
            one_write: false,
            outcome_waited: BTreeMap::new(),
            asking: false,
        };
        let coordinator = |view: &mut NodeView, c: &CoordState| {
            view.epoch = c.epoch;
            view.voting = c.voting.len();
            view.unacked_commits = c.commits.keys().map(|t| t.to_string()).collect();
            view.clients = c.outcomes.by_id.len();
            view.doubts = DoubtsView::of(c.doubts.iter());
            view.alarms.extend(view.doubts.alarm());
            view.asking = matches!(c.learning, twopc_model::Learning::Asking(_));
        };
        match state {
            State::Coordinator(c) => coordinator(&mut view, c),
            State::Replica(r) => {
                if let Some(l) = r.leading() {
                    coordinator(&mut view, &l.coord);
                }
                view.replica = Some(ReplicaView::of(r));
            }
            State::Participant(p) => {
                let data = &p.data;
                view.levels_total = data.levels.len();
                view.levels = data
                    .levels
                    .iter()
                    .take(MAX_LISTED)
                    .map(|(k, v)| (k.to_string(), *v))
                    .collect();
                view.holds_total = data.holds.len();
                view.holds = data
                    .holds
                    .iter()
                    .take(MAX_LISTED)
                    .map(|(txn, h)| HoldView::of(txn, h))
                    .collect();
                view.finished = data.finished.len();
            }
            State::Client(c) => {
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
        for alarm in &self.alarms {
            let _ = writeln!(s, "  ALARM: {alarm}");
        }
        if let Some(r) = &self.replica {
            let _ = writeln!(s, "  {}", r.render());
            // (Without a quorum it is an alarm, shown above.)
            if let Some(g) = r.group.as_ref().filter(|g| g.has_quorum()) {
                let _ = writeln!(s, "  {}", g.render());
            }
        }
        for p in &self.peers {
            let _ = writeln!(s, "  peer {}", p.render());
        }
        let leads = self.replica.as_ref().map(|r| r.standing) == Some(Standing::Leader);
        if self.role == ActorKind::Replica && !leads {
            // A follower runs no coordinator: nothing more to say.
        } else if matches!(self.role, ActorKind::Coordinator | ActorKind::Replica) {
            let _ = writeln!(
                s,
                "  {}epoch {}, voting {}, unacknowledged commits {:?}, outcomes remembered {}",
                if self.one_write { "one write, " } else { "" },
                self.epoch,
                self.voting,
                self.unacked_commits,
                self.clients
            );
            if self.asking {
                s += "  asking the participants what they saw: no purchase starts until all answer\n";
            }
            if !self.outcome_waited.is_empty() {
                let counts: Vec<String> = (self.outcome_waited.iter())
                    .map(|(writes, n)| format!("{writes}: {n}"))
                    .collect();
                let _ = writeln!(
                    s,
                    "  decided, by durable writes the outcome waited for: {}",
                    counts.join(", ")
                );
            }
            s += &self.doubts.render();
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
            let more = self.holds_total.saturating_sub(self.holds.len());
            let _ = writeln!(
                s,
                "  in doubt: {}{}",
                if holds.is_empty() {
                    "none".to_string()
                } else {
                    holds.join(", ")
                },
                if more > 0 {
                    format!(" (+{more} more, {} in all)", self.holds_total)
                } else {
                    String::new()
                }
            );
            let _ = writeln!(
                s,
                "  finished transactions: {}{}",
                self.finished,
                if self.one_write { ", one write" } else { "" }
            );
        }
        let c = &self.counters;
        // Written as `{"bad_mac": 3, ...}`, the reasons' names quoted.
        let rejected: Vec<String> = c
            .rejected
            .iter()
            .map(|(why, n)| format!("{:?}: {n}", why.as_str()))
            .collect();
        let _ = writeln!(
            s,
            "  counters: in {} out {} handled {} timers {} saves {} fsyncs {} bytes written {} rejected {{{}}} send errors {}",
            c.datagrams_in, c.datagrams_out, c.msgs_handled, c.timers_fired, c.saves, c.fsyncs,
            c.bytes_written, rejected.join(", "), c.send_errors
        );
        s
    }
}
