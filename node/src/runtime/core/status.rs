//! What a core shows and says about itself and what it drops: its view for
//! `twopc status` and `/metrics`, and every dropped datagram counted by
//! reason (and by sender, for a node of the cluster file) and logged at
//! WARN, rate-limited (`drops.rs`).

use super::{Core, DropKey};
use crate::runtime::admin::{peer_alarms, remember, NodeView, RejectReason};
use crate::runtime::wire::{Payload, Reject};
use std::net::{SocketAddr, SocketAddrV4};
use tokio::time::Instant;
use twopc_model::{Node, Standing, State};

impl Core {
    /// This node's view at `now`, as `twopc status` shows it.
    pub fn view(&self, now: Instant) -> NodeView {
        let mut view = NodeView::of(&self.name, self.state(), &self.counters);
        if let Some(link) = &self.link {
            view.counters.link_dropped = link.snapshot();
        }
        view.peers = self.peers.view(now);
        view.one_write = match &self.actor {
            Node::Coordinator(c) => c.one_write,
            Node::Participant(p) => p.one_write,
            Node::Replica(r) => r.coordinator.one_write,
            Node::Client(_) => false,
        };
        view.outcome_waited = self.outcome_waited.clone();
        if let (State::Replica(r), Node::Replica(actor), Some(rv)) =
            (self.state(), &self.actor, view.replica.as_mut())
        {
            let leader = match r.standing {
                Standing::Follower => Some(SocketAddrV4::from(r.acceptor.promised.leader)),
                Standing::PreCandidate { .. }
                | Standing::Candidate { .. }
                | Standing::Leader(_)
                | Standing::Recovering { .. } => None,
            };
            rv.group = self.peers.group(now, actor.quorum(), leader);
        }
        let group = view.replica.as_ref().and_then(|r| r.group.as_ref());
        let more = peer_alarms(&view.counters, &view.peers, group);
        view.alarms.extend(more);
        view
    }

    /// Answers a status request with this node's view.
    pub(super) fn on_status(&mut self, now: Instant, to: SocketAddr, nonce: u64) {
        let reply = fit(&self.codec, nonce, self.view(now));
        // Queued like any send: the view may reveal staged state.
        let _ = self.queue_payload(to, &reply, None, 0);
    }

    /// A commit for a transaction this participant cannot account for:
    /// lost acknowledged data, or a bug. The actor ignores it (as the model
    /// does); the runtime counts it, logs it and shows it in `status`. The
    /// log shows the first few and then every power of two: a coordinator
    /// re-sends its commit until acknowledged, forever.
    pub(super) fn unknown_decision(&mut self, txn: String, src: SocketAddr) {
        let count = self.counters.unknown_decisions + 1;
        if count <= 8 || count.is_power_of_two() {
            tracing::error!(
                node = %self.name, %txn, from = %src, count,
                "ALARM: commit for a transaction this node has no record of \
                 (not held, not finished, not below its floor): lost acknowledged data, or a bug"
            );
        }
        self.counters.unknown_decision(txn, src.to_string());
    }

    /// Counts and drops a datagram (or a replica link's message). Logged at
    /// WARN: the first of each reason (and, from a node of the cluster file,
    /// of each sender) at once, then at most one line per period with the
    /// count since (`drops.rs`). A node of the cluster file whose datagram
    /// fails authentication is told so, at most once per `NOTICE_EVERY`
    /// (`Payload::Unauthenticated`, MAC'd with this node's key): if the
    /// keys differ, it counts that notice as a datagram of ours that fails
    /// authentication, so the misconfiguration shows on both sides.
    pub(super) fn reject(&mut self, now: Instant, src: SocketAddr, why: Reject) {
        let reason = why.reason();
        let count = {
            let count = self.counters.rejected.entry(reason).or_default();
            *count += 1;
            *count
        };
        let src4 = match src {
            SocketAddr::V4(a) => Some(a),
            SocketAddr::V6(_) => None,
        };
        if reason == RejectReason::UnknownSender {
            remember(&mut self.counters.unknown_senders, src.to_string());
        }
        let member = src4.filter(|a| self.peers.is_member(*a));
        let notice = member.is_some_and(|a| self.peers.rejected(a, reason, now));
        if let Some(since) = self.drop_log.note((reason.as_str(), member), now) {
            let from = src4.map_or_else(|| src.to_string(), |a| self.peers.label(a));
            let node = &self.name;
            match reason {
                RejectReason::UnknownSender => {
                    let kind = match &why {
                        Reject::UnknownSender(kind) => kind.to_string(),
                        other => other.to_string(),
                    };
                    tracing::warn!(
                        node, reason = %reason, count, since,
                        "dropped datagram from {src}, which is not in the cluster file ({kind}); \
                         if a node moved, restart every node with the new cluster file"
                    )
                }
                r if r.is_auth() && member.is_some() => tracing::warn!(
                    node, reason = %reason, count, since,
                    "dropped datagram from {from}: {why}; {}", r.auth_hint()
                ),
                _ => tracing::warn!(
                    node, reason = %reason, count, since,
                    "dropped datagram from {from}: {why}"
                ),
            }
        }
        if notice {
            let _ = self.queue_payload(src, &Payload::Unauthenticated { reason }, None, 0);
        }
    }

    /// The shell's receive failed: counted; returns `Some(n)` when a line
    /// should be logged now, for `n` failures (rate-limited as drops are).
    pub fn receive_failed(&mut self, now: Instant) -> Option<u64> {
        self.counters.receive_errors += 1;
        self.drop_log.note(("receive_error", None), now)
    }

    /// A node says (authenticated by the cluster key) that it could not
    /// authenticate a datagram of ours: tampered with on the way, most
    /// likely, since the keys agree. Counted and logged; changes nothing.
    pub(super) fn on_unauthenticated(&mut self, now: Instant, src: SocketAddr, why: RejectReason) {
        let SocketAddr::V4(src4) = src else { return };
        if !self.peers.is_member(src4) {
            return self.reject(
                now,
                src,
                Reject::Undecodable("notice from a stranger".into()),
            );
        }
        self.peers.says_unauthenticated(src4);
        let key: DropKey = ("says_unauthenticated", Some(src4));
        if let Some(since) = self.drop_log.note(key, now) {
            let from = self.peers.label(src4);
            tracing::warn!(
                node = %self.name, since,
                "{from} says it could not authenticate a datagram of ours ({why})"
            );
        }
    }
}

/// The status reply of `view`, made to fit in a datagram. The largest
/// view the names allow fits with little room to spare in JSON (the wire
/// test `the_largest_status_reply_fits_in_a_datagram`); what a node says
/// about its peers and alarms comes on top. Rather than not answer at
/// all, the listed balances and in-doubt transactions are halved until it
/// fits (`levels_total`, `holds_total` still count them all, and the text
/// says how many are left out).
pub fn fit(codec: &crate::runtime::wire::Codec, nonce: u64, mut view: NodeView) -> Payload {
    loop {
        let reply = Payload::StatusReply {
            nonce,
            view: Box::new(view),
        };
        let shrinkable = matches!(&reply, Payload::StatusReply { view, .. }
            if !view.levels.is_empty() || !view.holds.is_empty());
        if codec.encode(&reply).is_ok() || !shrinkable {
            return reply;
        }
        let Payload::StatusReply { view: big, .. } = reply else {
            unreachable!("built above")
        };
        view = *big;
        let keep = view.levels.len() / 2;
        view.levels = std::mem::take(&mut view.levels)
            .into_iter()
            .take(keep)
            .collect();
        view.holds.truncate(view.holds.len() / 2);
    }
}
