//! What `twopc status` shows about the *other* nodes, as this one sees them:
//! when it last heard from each, what it dropped from each and why, and for
//! a coordinator replica whether its group has a quorum. Built by the
//! runtime's core (`core/peers.rs`); rendered here, with the alarms it
//! raises, and the alarms this node raises about itself.

use super::{Counters, RejectReason, ReplicaView, Standing};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One node of the cluster file, as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerView {
    /// Its name in the cluster file.
    pub name: String,
    /// Its address in the cluster file.
    pub address: String,
    /// Milliseconds since a valid message from it was handled (`None`:
    /// never, since this node started).
    pub heard_ms_ago: Option<u64>,
    /// Messages sent to it that ask for an answer (prepares and commits)
    /// since it was last heard from.
    pub unanswered: u64,
    /// Datagrams from its address dropped here, by reason.
    pub rejected: BTreeMap<RejectReason, u64>,
    /// Times it said (authenticated) that it could not authenticate a
    /// datagram of ours.
    pub says_unauthenticated: u64,
}

impl PeerView {
    /// `wallet (127.0.0.1:7001)`.
    pub fn label(&self) -> String {
        format!("{} ({})", self.name, self.address)
    }

    /// Datagrams from it that failed authentication here.
    pub fn auth_failures(&self) -> u64 {
        self.rejected
            .iter()
            .filter(|(r, _)| r.is_auth())
            .fold(0u64, |sum, (_, n)| sum.saturating_add(*n))
    }

    /// One line for `twopc status`.
    pub fn render(&self) -> String {
        let mut s = self.label();
        match self.heard_ms_ago {
            Some(ms) => s += &format!(": heard {:.1} s ago", ms as f64 / 1000.0),
            None => s += ": never heard from",
        }
        if self.unanswered > 0 {
            s += &format!(", {} unanswered", self.unanswered);
        }
        if !self.rejected.is_empty() {
            let why: Vec<String> = self
                .rejected
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            s += &format!(", dropped from it: {}", why.join(", "));
        }
        s
    }
}

/// How many unanswered requests make a silent peer an alarm (one lost
/// datagram is not one).
pub const UNANSWERED_ALARM: u64 = 3;

/// A coordinator replica's group, as far as this replica can know: which
/// replicas it heard from recently (over their TCP links). A leader hears
/// every follower (each answers its heartbeats); a follower hears only its
/// leader.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupView {
    /// Replicas in the group (this one included).
    pub replicas: usize,
    /// How many make a majority.
    pub quorum: usize,
    /// Replicas heard from within `within_ms`, this one included.
    pub heard: usize,
    /// The window, in milliseconds.
    pub within_ms: u64,
    /// The names of the replicas not heard from within the window.
    pub silent: Vec<String>,
    /// Whether this replica follows a leader it heard from within the
    /// window (a follower hears no other follower: the leader's status
    /// says whether the group has a majority).
    pub follows_live_leader: bool,
}

impl GroupView {
    /// Whether this replica can believe a majority is up: it heard from
    /// one, or (a follower) from its leader, whose status tells.
    pub fn has_quorum(&self) -> bool {
        self.heard >= self.quorum || self.follows_live_leader
    }

    /// `no quorum: 1 of 3 replicas heard from within 1.2 s (silent: c-2, c-3)`.
    pub fn render(&self) -> String {
        let seconds = self.within_ms as f64 / 1000.0;
        let counted = format!(
            "{} of {} replicas heard from within {seconds:.1} s",
            self.heard, self.replicas
        );
        let silent = if self.silent.is_empty() {
            String::new()
        } else {
            format!(" (silent: {})", self.silent.join(", "))
        };
        if self.follows_live_leader {
            // It hears no other follower: their silence says nothing.
            format!(
                "{counted}: it follows a leader it hears, whose status says whether the group \
                 has a quorum"
            )
        } else if self.heard >= self.quorum {
            format!("quorum: {counted}{silent}")
        } else {
            format!(
                "NO QUORUM: {counted}{silent}, {} needed: nothing can be decided until a majority is back",
                self.quorum
            )
        }
    }
}

/// The alarms about other nodes: datagrams of cluster nodes that fail
/// authentication, nodes that do not answer, senders not in the cluster
/// file, a replica group without a quorum.
pub fn peer_alarms(
    counters: &Counters,
    peers: &[PeerView],
    group: Option<&GroupView>,
) -> Vec<String> {
    let mut alarms = Vec::new();
    for p in peers {
        let failed = p.auth_failures();
        if failed > 0 {
            let reasons: Vec<RejectReason> =
                p.rejected.keys().filter(|r| r.is_auth()).copied().collect();
            let names: Vec<&str> = reasons.iter().map(|r| r.as_str()).collect();
            let hint = match reasons.as_slice() {
                [only] => only.auth_hint(),
                _ => "does it have the cluster key?",
            };
            alarms.push(format!(
                "from {}: {failed} datagram(s) failed authentication ({}); {hint}",
                p.label(),
                names.join(", ")
            ));
        }
        if p.says_unauthenticated > 0 {
            alarms.push(format!(
                "{} says it could not authenticate {} datagram(s) of ours: tampered with on \
                 the way, or a different cluster key",
                p.label(),
                p.says_unauthenticated
            ));
        }
        if p.unanswered >= UNANSWERED_ALARM {
            let heard = match p.heard_ms_ago {
                Some(ms) => format!("last heard from {:.1} s ago", ms as f64 / 1000.0),
                None => "never heard from since this node started".to_string(),
            };
            alarms.push(format!(
                "{}: {heard}, {} request(s) to it unanswered: is it running, reachable at that \
                 address, with the cluster key and the same cluster file? (its own status and \
                 log say what it drops)",
                p.label(),
                p.unanswered
            ));
        }
    }
    let strangers = counters
        .rejected
        .get(&RejectReason::UnknownSender)
        .copied()
        .unwrap_or(0);
    if strangers > 0 {
        alarms.push(format!(
            "{strangers} message(s) from addresses that are not in the cluster file (last: {}): \
             if a node moved, restart every node with the new cluster file",
            counters.unknown_senders.join(", ")
        ));
    }
    let link_auth: u64 = counters
        .link_dropped
        .iter()
        .filter(|(r, _)| matches!(r.as_str(), "bad_mac" | "missing_mac" | "unexpected_mac"))
        .map(|(_, n)| n)
        .sum();
    if link_auth > 0 {
        alarms.push(format!(
            "{link_auth} replica connection(s) closed on a frame that failed authentication: \
             does every coordinator replica have the cluster key?"
        ));
    }
    if let Some(g) = group {
        if !g.has_quorum() {
            alarms.push(g.render());
        }
    }
    alarms
}

/// Alarms for the nodes that `peers` (one node's view) has at another
/// address than `file` (the asking client's cluster file, name and
/// address), or that `file` does not name: the node runs with another
/// cluster file. It is what a move looks like when a node was not given the
/// new file and restarted, seen before a purchase fails on it. A node lists
/// only the peers it has talked to, so this sees the disagreement once
/// they have.
pub fn file_disagreements(peers: &[PeerView], file: &[(String, String)]) -> Vec<String> {
    peers
        .iter()
        .filter_map(|p| {
            let theirs = format!("it has {} at {}", p.name, p.address);
            match file.iter().find(|(name, _)| *name == p.name) {
                Some((_, here)) if *here == p.address => None,
                Some((_, here)) => Some(format!("{theirs}, this cluster file at {here}")),
                None => Some(format!("{theirs}, which this cluster file does not name")),
            }
        })
        .map(|why| {
            format!(
                "{why}: it runs with another cluster file (a node moved?); give it this one and \
                 restart it"
            )
        })
        .collect()
}

/// Remembers `what` among the last [`super::RECENT_ALARMS`] of `list` (once).
pub fn remember(list: &mut Vec<String>, what: String) {
    if list.last() == Some(&what) {
        return;
    }
    list.retain(|w| *w != what);
    if list.len() == super::RECENT_ALARMS {
        list.remove(0);
    }
    list.push(what);
}

/// Which of the replicas that answered (`(name, view)`) leads, in one
/// line for `twopc status`. A deposed leader that has not heard of its
/// successor still says it leads: the one of the highest term does.
pub fn who_leads(replicas: &[(String, ReplicaView)]) -> String {
    let mut leaders: Vec<&(String, ReplicaView)> = replicas
        .iter()
        .filter(|(_, r)| r.standing == Standing::Leader)
        .collect();
    // Terms print as `n/address`: order by the number.
    let n = |r: &ReplicaView| -> u64 {
        let term = r.term.as_deref().unwrap_or("0");
        term.split('/')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    leaders.sort_by_key(|(_, r)| std::cmp::Reverse(n(r)));
    let group = replicas.iter().find_map(|(_, r)| r.group.as_ref());
    let answered = match group {
        Some(g) if replicas.len() < g.quorum => format!(
            "; only {} of {} replicas answered, {} needed for a quorum",
            replicas.len(),
            g.replicas,
            g.quorum
        ),
        _ => String::new(),
    };
    let line = match leaders.as_slice() {
        [] => {
            let mut line = format!(
                "no replica leads (of {} that answered): an election is under way, or too few \
                 replicas are up to elect one",
                replicas.len()
            );
            if let Some(g) = replicas
                .iter()
                .filter_map(|(_, r)| r.group.as_ref())
                .find(|g| !g.has_quorum())
            {
                line += &format!("; {}", g.render());
            }
            line
        }
        [(name, r), rest @ ..] => {
            let mut line = match r.group.as_ref().filter(|g| !g.has_quorum()) {
                // It leads in name only: it cannot get a save chosen.
                Some(g) => format!(
                    "{name} says it leads term {}, but it has {}",
                    r.term.as_deref().unwrap_or("?"),
                    g.render()
                ),
                None => format!("leader: {name} (term {})", r.term.as_deref().unwrap_or("?")),
            };
            for (old, r) in rest {
                line += &format!(
                    "; {old} still thinks it leads term {} (deposed: it cannot get a save chosen)",
                    r.term.as_deref().unwrap_or("?")
                );
            }
            line
        }
    };
    line + &answered
}

/// The alarms `counters` raise.
pub(super) fn alarms(counters: &Counters) -> Vec<String> {
    let mut alarms = Vec::new();
    if counters.unknown_decisions > 0 {
        let recent: Vec<String> = counters
            .recent_unknown_decisions
            .iter()
            .map(|d| format!("{} from {}", d.txn, d.from))
            .collect();
        alarms.push(format!(
            "{} commit decision(s) for transactions this node has no record of \
             (lost acknowledged data, or a bug); last: {}",
            counters.unknown_decisions,
            recent.join(", ")
        ));
    }
    if let Some(why) = &counters.rolled_back {
        alarms.push(why.clone());
    }
    alarms
}
