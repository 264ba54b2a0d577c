//! What a core knows of the other nodes of its cluster file: who they are
//! (to tell a node of the cluster from a stranger, and to name a sender in a
//! log line), when each was last heard from, what was dropped from each and
//! how many requests to each are unanswered, and, at a coordinator replica,
//! whether the replicas it heard from lately make a majority. Pure
//! bookkeeping: the time comes with each call.
//!
//! Nothing here decides anything for the protocol: the actor still sees
//! every message it saw before, but for messages that only a node of the
//! cluster sends arriving from an address that is not in the cluster file,
//! which the actor ignores anyway (a participant takes orders only from a
//! coordinator's address, a coordinator takes votes only from a
//! participant's): the runtime now drops them itself, counted and logged,
//! rather than hand them to an actor that ignores them without a trace.

use crate::runtime::admin::{GroupView, PeerView, RejectReason};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddrV4;
use std::time::Duration;
use tokio::time::Instant;
use twopc_model::Msg;

/// How recently a replica must have been heard from to count towards a
/// quorum in `status`: two of the slowest election timeouts. A follower
/// answers every heartbeat (every 50-100 ms), so a live one is heard many
/// times within it.
pub const HEARD_WITHIN: Duration = Duration::from_millis(1200);

/// At most one notice that its datagram failed authentication is sent to
/// a node this often.
pub const NOTICE_EVERY: Duration = Duration::from_secs(5);

/// The nodes of the cluster file, as the runtime gives them to a core.
#[derive(Clone, Debug, Default)]
pub struct Members {
    /// This node's address.
    pub me: Option<SocketAddrV4>,
    /// Every node of the cluster file: address and name.
    pub nodes: Vec<(SocketAddrV4, String)>,
    /// The coordinator replicas' addresses, when this node is one of them.
    pub replicas: Vec<SocketAddrV4>,
}

#[derive(Debug)]
struct Member {
    name: String,
    heard: Option<Instant>,
    unanswered: u64,
    /// Sent to or heard from (or dropped from): listed in `status`.
    contacted: bool,
    rejected: BTreeMap<RejectReason, u64>,
    says_unauthenticated: u64,
    notice_sent: Option<Instant>,
}

/// The other nodes, as one core sees them.
#[derive(Debug, Default)]
pub struct Peers {
    me: Option<SocketAddrV4>,
    /// Empty when the runtime gave no cluster file (a client, the
    /// simulator): then nobody is a stranger.
    members: HashMap<SocketAddrV4, Member>,
    /// In cluster-file order.
    order: Vec<SocketAddrV4>,
    replicas: Vec<SocketAddrV4>,
}

/// Whether anyone may send `msg` (a client's request, answered to its
/// source), rather than only a node of the cluster: a purchase, a top-up or
/// a restock (`Request`, docs/shop.md), and a lookup. Like every datagram,
/// they still pass the cluster key's HMAC first: "anyone" is anyone
/// holding the key, from any address (`twopc topup`, the HTTP API).
fn from_anyone(msg: &Msg) -> bool {
    matches!(
        msg,
        Msg::Purchase { .. } | Msg::Request { .. } | Msg::Lookup { .. }
    )
}

/// Whether `msg` asks its receiver, that very node, for an answer: a
/// prepare (a vote), a commit (an ack), the question for the epoch (its
/// answer). Not a participant's query: with a
/// replicated coordinator it goes to every replica and only the leader
/// answers, so the followers' silence would be a false alarm.
fn asks_for_answer(msg: &Msg) -> bool {
    matches!(
        msg,
        Msg::Prepare { .. }
            | Msg::PrepareCredit { .. }
            | Msg::PreparePriced { .. }
            | Msg::Commit { .. }
            | Msg::AskEpoch { .. }
    )
}

impl Peers {
    /// The peers of `members`.
    pub fn new(members: Members) -> Peers {
        let mut peers = Peers {
            me: members.me,
            replicas: members.replicas,
            ..Peers::default()
        };
        for (addr, name) in members.nodes {
            peers.order.push(addr);
            peers.members.insert(
                addr,
                Member {
                    name,
                    heard: None,
                    unanswered: 0,
                    contacted: false,
                    rejected: BTreeMap::new(),
                    says_unauthenticated: 0,
                    notice_sent: None,
                },
            );
        }
        peers
    }

    /// `wallet (127.0.0.1:7001)` for a node of the cluster file, else the
    /// address and that it is not in it.
    pub fn label(&self, addr: SocketAddrV4) -> String {
        match self.members.get(&addr) {
            Some(m) => format!("{} ({addr})", m.name),
            None => format!("{addr} (not in the cluster file)"),
        }
    }

    /// Whether `addr` is a node of the cluster file.
    pub fn is_member(&self, addr: SocketAddrV4) -> bool {
        self.members.contains_key(&addr)
    }

    /// Whether `msg` from `src` comes from a stranger: a message only a
    /// node of the cluster sends, from an address not in the cluster file.
    pub fn is_stranger(&self, src: SocketAddrV4, msg: &Msg) -> bool {
        !self.members.is_empty() && !from_anyone(msg) && !self.is_member(src)
    }

    /// A valid message from `src` was handled.
    pub fn heard(&mut self, src: SocketAddrV4, now: Instant) {
        if let Some(m) = self.members.get_mut(&src) {
            m.heard = Some(now);
            m.unanswered = 0;
            m.contacted = true;
        }
    }

    /// `msg` goes to `dst`.
    pub fn sent(&mut self, dst: SocketAddrV4, msg: &Msg) {
        if let Some(m) = self.members.get_mut(&dst) {
            m.contacted = true;
            if asks_for_answer(msg) {
                m.unanswered += 1;
            }
        }
    }

    /// A datagram from `src` was dropped for `reason`. Returns whether to
    /// tell `src` that its datagram failed authentication: only a node of
    /// the cluster file, only for an authentication failure, at most once
    /// every [`NOTICE_EVERY`].
    pub fn rejected(&mut self, src: SocketAddrV4, reason: RejectReason, now: Instant) -> bool {
        let Some(m) = self.members.get_mut(&src) else {
            return false;
        };
        m.contacted = true;
        *m.rejected.entry(reason).or_default() += 1;
        if !reason.is_auth() || Some(src) == self.me {
            return false;
        }
        let due = m
            .notice_sent
            .is_none_or(|at| now.saturating_duration_since(at) >= NOTICE_EVERY);
        if due {
            m.notice_sent = Some(now);
        }
        due
    }

    /// `src` said (authenticated) that it could not authenticate ours.
    pub fn says_unauthenticated(&mut self, src: SocketAddrV4) {
        if let Some(m) = self.members.get_mut(&src) {
            m.says_unauthenticated += 1;
            m.contacted = true;
        }
    }

    /// The nodes this one talked to or dropped datagrams from, as `status`
    /// lists them (itself left out).
    pub fn view(&self, now: Instant) -> Vec<PeerView> {
        self.order
            .iter()
            .filter(|a| Some(**a) != self.me)
            .filter_map(|a| self.members.get(a).map(|m| (a, m)))
            .filter(|(_, m)| m.contacted)
            .map(|(a, m)| PeerView {
                name: m.name.clone(),
                address: a.to_string(),
                heard_ms_ago: m
                    .heard
                    .map(|t| now.saturating_duration_since(t).as_millis() as u64),
                unanswered: m.unanswered,
                rejected: m.rejected.clone(),
                says_unauthenticated: m.says_unauthenticated,
            })
            .collect()
    }

    /// At a coordinator replica, which replicas it heard from within
    /// [`HEARD_WITHIN`] (itself counted) and whether that is `quorum` (the
    /// actor's); `leader` is the leader of the term it promised.
    pub fn group(
        &self,
        now: Instant,
        quorum: usize,
        leader: Option<SocketAddrV4>,
    ) -> Option<GroupView> {
        if self.replicas.is_empty() {
            return None;
        }
        let recent = |a: &SocketAddrV4| {
            Some(*a) == self.me
                || self
                    .members
                    .get(a)
                    .and_then(|m| m.heard)
                    .is_some_and(|t| now.saturating_duration_since(t) <= HEARD_WITHIN)
        };
        let heard = self.replicas.iter().filter(|a| recent(a)).count();
        let silent = self
            .replicas
            .iter()
            .filter(|a| !recent(a))
            .map(|a| {
                self.members
                    .get(a)
                    .map_or(a.to_string(), |m| m.name.clone())
            })
            .collect();
        Some(GroupView {
            replicas: self.replicas.len(),
            quorum,
            heard,
            within_ms: HEARD_WITHIN.as_millis() as u64,
            silent,
            follows_live_leader: leader.is_some_and(|l| Some(l) != self.me && recent(&l)),
        })
    }
}
