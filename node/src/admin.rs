//! What `twopc status` shows: a node's view of its own state and counters,
//! built by the runtime from the actor's state (never a protocol message).

use crate::in_doubt::DoubtsView;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use twopc_model::{CoordState, ReplicaState, State};

#[path = "admin_peers.rs"]
mod peers;
use peers::alarms;
pub use peers::{
    file_disagreements, peer_alarms, remember, who_leads, GroupView, PeerView, UNANSWERED_ALARM,
};

/// At most this many balances or skus are listed in one reply (it must fit
/// in a datagram); `levels_total` says how many there are.
pub const MAX_LISTED: usize = 200;

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
    pub decided: BTreeMap<String, u64>,
    /// Participants: why this node stopped handing its coordinator's
    /// messages to the actor — its history is behind what the coordinator
    /// heard from it (`crate::history`). `twopc status` shows it as an
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

/// Why a datagram was dropped, without the details (the wire's `Reject`
/// names this with `Reject::reason`): the key of the `rejected` counters that
/// `twopc status` reports (serialized as `bad_mac`, `undecodable`, ...).
/// Declared in the alphabetical order of those names, so that counters keyed
/// by it list in the order they did when they were keyed by strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// An unknown body format.
    BadFormat,
    /// A MAC that does not match (wrong key, or tampered with).
    BadMac,
    /// Too short, or not twopc's magic bytes.
    BadMagic,
    /// An envelope version this build does not speak.
    BadVersion,
    /// No MAC, at a node that has the cluster key.
    MissingMac,
    /// Larger than the datagram limit.
    Oversized,
    /// A participant's history is behind what its coordinator heard from
    /// it (a restored backup, a lost log): nothing reaches its actor.
    RolledBack,
    /// A body that does not deserialize (or an unsolicited reply, or an IPv6 source).
    Undecodable,
    /// A MAC, at a node without a key to check it.
    UnexpectedMac,
    /// A message only a node of the cluster sends, from an address not in
    /// the cluster file (a node that moved?).
    UnknownSender,
    /// A prepare below a participant's floor (a late duplicate, or a
    /// coordinator behind the participants).
    BelowFloor,
}

impl RejectReason {
    /// The counter's name, as logs and `twopc status --json` show it.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Oversized => "oversized",
            RejectReason::BadMagic => "bad_magic",
            RejectReason::BadVersion => "bad_version",
            RejectReason::BadFormat => "bad_format",
            RejectReason::MissingMac => "missing_mac",
            RejectReason::BadMac => "bad_mac",
            RejectReason::UnexpectedMac => "unexpected_mac",
            RejectReason::Undecodable => "undecodable",
            RejectReason::RolledBack => "rolled_back",
            RejectReason::UnknownSender => "unknown_sender",
            RejectReason::BelowFloor => "below_floor",
        }
    }

    /// What to ask about a node whose datagrams fail authentication for
    /// this reason.
    pub fn auth_hint(self) -> &'static str {
        match self {
            RejectReason::UnexpectedMac => {
                "it has a cluster key and this node has none: give every node the same key"
            }
            _ => "does it have the cluster key?",
        }
    }

    /// Whether the datagram failed authentication (a wrong or missing
    /// cluster key, or tampering).
    pub fn is_auth(self) -> bool {
        matches!(
            self,
            RejectReason::BadMac | RejectReason::MissingMac | RejectReason::UnexpectedMac
        )
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    /// operator (`crate::in_doubt`).
    #[serde(default)]
    pub doubts: DoubtsView,
}

/// Where a replica stands, for `twopc status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaView {
    /// Following, campaigning or leading.
    pub standing: Standing,
    /// The highest term it promised, `n/leader`.
    pub promised: String,
    /// Its number `n` (for `/metrics`).
    #[serde(default)]
    pub promised_number: u64,
    /// The term it campaigns for or leads, `n/leader`.
    pub term: Option<String>,
    /// The state it accepted last: its term and version.
    pub accepted: Option<(String, u64)>,
    /// Leader: the highest version a majority accepted.
    pub chosen: Option<u64>,
    /// Leader: the latest version it wrote.
    pub version: Option<u64>,
    /// Leader: outputs of its coordinator waiting for their version to be
    /// chosen.
    pub held: Option<usize>,
    /// Recovering: how many of the other replicas have answered its
    /// recovery question (it votes once every one has).
    #[serde(default)]
    pub answered: Option<usize>,
    /// Which replicas it heard from lately, and whether that is a majority
    /// (`None` when the runtime does not know the group).
    #[serde(default)]
    pub group: Option<GroupView>,
}

/// A replica's standing, as `twopc status` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Standing {
    /// Follows the leader of its promised term.
    Follower,
    /// Campaigns for a term.
    Candidate,
    /// Leads: runs the coordinator.
    Leader,
    /// Started on an empty data directory: catching up from the other
    /// replicas before it votes (`twopc_model::replica`, *A replica that
    /// lost its disk*).
    Recovering,
}

impl std::fmt::Display for Standing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Standing::Follower => "follower",
            Standing::Candidate => "candidate",
            Standing::Leader => "leader",
            Standing::Recovering => "recovering",
        })
    }
}

impl ReplicaView {
    /// The view of replica state `r`.
    pub fn of(r: &ReplicaState) -> ReplicaView {
        let mut view = ReplicaView {
            standing: Standing::Follower,
            promised: r.acceptor.promised.to_string(),
            promised_number: r.acceptor.promised.n,
            term: None,
            accepted: r
                .acceptor
                .accepted
                .as_ref()
                .map(|a| (a.term.to_string(), a.version)),
            chosen: None,
            version: None,
            held: None,
            answered: None,
            group: None,
        };
        match &r.standing {
            twopc_model::Standing::Follower => {}
            twopc_model::Standing::Recovering { answered, .. } => {
                view.standing = Standing::Recovering;
                view.answered = Some(answered.len());
            }
            twopc_model::Standing::Candidate { term, .. } => {
                view.standing = Standing::Candidate;
                view.term = Some(term.to_string());
            }
            twopc_model::Standing::Leader(l) => {
                view.standing = Standing::Leader;
                view.term = Some(l.term.to_string());
                view.chosen = Some(l.chosen);
                view.version = Some(l.version);
                view.held = Some(l.held.len());
            }
        }
        view
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
        };
        let coordinator = |view: &mut NodeView, c: &CoordState| {
            view.epoch = c.epoch;
            view.voting = c.voting.len();
            view.unacked_commits = c.commits.keys().map(|t| t.to_string()).collect();
            view.clients = c.outcomes.by_id.len();
            view.doubts = DoubtsView::of(c.doubts.iter());
            view.alarms.extend(view.doubts.alarm());
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
                    .map(|(txn, h)| HoldView {
                        txn: txn.to_string(),
                        req: h.req.to_string(),
                        key: h.op.key.to_string(),
                        amount: h.op.amount,
                    })
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
                "  epoch {}, voting {}, unacknowledged commits {:?}, outcomes remembered {}",
                self.epoch, self.voting, self.unacked_commits, self.clients
            );
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
            let _ = writeln!(s, "  finished transactions: {}", self.finished);
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

impl ReplicaView {
    /// One line: `leader of term 2/127.0.0.1:7001, promised 2/..., accepted
    /// 2/...#14, chosen 14, held 0`.
    pub fn render(&self) -> String {
        if self.standing == Standing::Recovering {
            return format!(
                "recovering (empty data directory): {} other replica(s) answered; it votes once every other replica has",
                self.answered.unwrap_or(0)
            );
        }
        let mut s = match &self.term {
            Some(t) => format!("{} of term {t}", self.standing),
            None => self.standing.to_string(),
        };
        s += &format!(", promised {}", self.promised);
        match &self.accepted {
            Some((t, v)) => s += &format!(", accepted {t} version {v}"),
            None => s += ", accepted nothing",
        }
        if let (Some(chosen), Some(held)) = (self.chosen, self.held) {
            s += &format!(", chosen version {chosen}, held outputs {held}");
        }
        s
    }
}

#[cfg(test)]
#[path = "admin_tests.rs"]
mod tests;
