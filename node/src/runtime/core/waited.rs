//! Durable writes waited for: how many fsyncs a message waited for along
//! its causal chain, measured where they happen and carried on the wire
//! (the envelope's flags, `wire/envelope.rs`; a replica's frame likewise).
//! A client reads it on the outcome it takes: the fsyncs its buyer waited
//! for (`twopc bench`'s "durable writes waited for per purchase").
//!
//! ## The rule, as the runtime runs a batch
//!
//! - **A step starts from its input's count.** The message a step handles
//!   brings the count its envelope (or frame) says; a timer's step, the
//!   start, an operator's request and a datagram from a node that does not
//!   count start from 0. Only the step's own input counts, not the other
//!   inputs of its batch: a batch groups unrelated messages (group commit,
//!   a coordinator's held `Ack`s of the previous purchase), and a message
//!   sent by one step is caused by that step's input and the state before
//!   it, not by its neighbours.
//! - **A send that leaves after its batch's fsync adds one.** Everything
//!   queued in a batch that fsyncs (`Ready::sync`) leaves after that fsync
//!   (`Ready::sends_after_sync`), whichever step queued it: it waited for
//!   it, so it counts it. Saves of an earlier batch that sent nothing ride
//!   on the same fsync: one fsync, one more. The shell starts a batch only
//!   once the previous batch's fsync returned (`shell.rs`), so a send never
//!   waits behind another fsync of its node still in flight, and adds at
//!   most one. A store whose sync writes nothing durable (a client's
//!   memory store) adds nothing.
//! - **A leader's `Accept` adds nothing for its own fsync**: it leaves
//!   before it (`Ready::sends`, "the one exception" in `batch.rs`). A
//!   backup's `Accepted` leaves after the backup's fsync: one more. A
//!   link sends only the newest of the `Accept`s queued for a peer
//!   (`replication/coalesce.rs`); it carries the highest count of those it
//!   supersedes, as its state holds theirs. An `Accepted` coalesced away is
//!   lost, as the protocol takes it, and its count with it.
//! - **What a leader releases on a quorum counts the round it waited
//!   for, not the chain that closed it.** A step that handles an `Accepted`
//!   of version v releases what the coordinator sent after saves now chosen
//!   (an outcome, commits, a ticket held behind an earlier save). Each such
//!   datagram counts the highest input this replica handled about its
//!   transaction or request (the votes, the purchase) plus the round: the
//!   backup's writes (the `Accepted`'s count above the count of the leader's
//!   `Accept` of v) and the leader's own fsync of v, which ran side by side,
//!   so the higher of the two (1). Not the `Accepted`'s own count: an
//!   `Accept` carries every earlier version's state, so its count may be an
//!   earlier purchase's chain, which a new purchase's ticket, released by
//!   it, did not wait for. The step's messages to replicas start from the
//!   higher of the `Accepted`'s count and the leader's own acceptance of v
//!   (noted per version as the batch that sent its `Accept` ends).
//! - **An acknowledgement ends a chain**: a coordinator's step on a
//!   participant's `Ack` starts from 0. The commit was told already; what
//!   the coordinator does on it (forgetting) no buyer waits for, except by
//!   a send that waits for its save, which counts that fsync where it
//!   happens.
//! - **At a client, an outcome ends its request**: the client notes the
//!   outcome's count with the outcome it takes (aligned with its `seen`),
//!   and what it sends in that step (the next request) starts from 0. Other
//!   answers (a ticket, "in progress") carry their count into the retry.
//!
//! Counts stop at [`WAITED_MAX`]; a count this high would mean a chain of
//! fifteen fsyncs, which no purchase has.

use super::batch::leaves_before_sync;
use super::*;
use crate::runtime::wire::{waited_of, WAITED_MAX};

/// What a message is about, for the count a leader's release starts from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum About {
    /// A transaction (an attempt).
    Txn(twopc_model::TxnId),
    /// A request, before or without an attempt.
    Req(twopc_model::RequestId),
}

impl About {
    fn of(msg: &Msg) -> Option<About> {
        if let Some(txn) = crate::runtime::wire::msg_txn(msg) {
            return Some(About::Txn(txn));
        }
        match msg {
            Msg::Purchase { req, .. }
            | Msg::Request { req, .. }
            | Msg::Lookup { req }
            | Msg::Status { req, .. } => Some(About::Req(req.clone())),
            Msg::Outcome(o) => Some(About::Req(o.req.clone())),
            _ => None,
        }
    }
}

/// The most transactions and requests a replica remembers the latest
/// input's count for (then it starts again: a release finding nothing
/// counts from 0, which only under-counts).
const ABOUT_KEPT: usize = 4096;

/// How many of a leader's latest versions it remembers its own acceptance's
/// count for: more than are ever in flight at once.
const OWN_ACCEPTED_KEPT: usize = 64;

impl Core {
    /// Begins a step handling `msg`, which waited for `waited`: the count
    /// its sends start from. Returns, at a client, how many outcomes it had
    /// taken before the step, for [`Core::note_seen`].
    pub(super) fn begin_step(&mut self, msg: &Msg, waited: u8) -> Option<(usize, u8)> {
        self.step_waited = match (&self.actor, msg) {
            (Node::Replica(_), Msg::Accepted { version, .. }) => {
                let own = self.own_acceptance(*version);
                // The round: the leader's own fsync (if it noted the
                // version) and the backup's (its count above the
                // `Accept`'s), which ran side by side.
                let backup = waited.saturating_sub(own.saturating_sub(1));
                self.round_waited = Some(backup.max(u8::from(own > 0)));
                waited.max(own)
            }
            (Node::Client(_), Msg::Outcome(_)) => 0,
            (Node::Coordinator(_) | Node::Replica(_), Msg::Ack { .. }) => 0,
            _ => waited,
        };
        if let (Node::Replica(_), Some(about)) = (&self.actor, About::of(msg)) {
            if self.about_waited.len() >= ABOUT_KEPT {
                self.about_waited.clear();
            }
            let w = self.about_waited.entry(about).or_default();
            *w = (*w).max(self.step_waited);
        }
        match self.state() {
            State::Client(c) => Some((c.seen.len(), waited)),
            _ => None,
        }
    }

    /// The count a message sent in this step starts from: the step's,
    /// except what a leader releases on an `Accepted` (a datagram it held
    /// until its decision was chosen), which counts the latest input about
    /// its transaction or request plus the round's own durable writes.
    pub(super) fn send_waited(&self, msg: &Msg) -> u8 {
        match self.round_waited {
            Some(round) if !msg.between_replicas() => {
                let about = About::of(msg).and_then(|a| self.about_waited.get(&a));
                about
                    .copied()
                    .unwrap_or(0)
                    .saturating_add(round)
                    .min(WAITED_MAX)
            }
            _ => self.step_waited,
        }
    }

    /// At a client, after a step: the count of each outcome it took.
    pub(super) fn note_seen(&mut self, before: Option<(usize, u8)>) {
        let (Some((before, waited)), State::Client(c)) = (before, self.state()) else {
            return;
        };
        let took = c.seen.len().saturating_sub(before);
        self.seen_waited.extend(std::iter::repeat_n(waited, took));
    }

    /// A client: the durable writes each outcome it took waited for, in
    /// the order of its `seen` (0 from a coordinator that does not count).
    pub fn seen_waited(&self) -> &[u8] {
        &self.seen_waited
    }

    /// Whether this node's fsync is a durable write (the shell says, from
    /// its store: a client's memory store's is not).
    pub fn set_writes_durably(&mut self, durably: bool) {
        self.writes_durably = durably;
    }

    /// `out` as it leaves: one more durable write if it leaves after its
    /// batch's fsync (`fsynced`).
    pub(super) fn waited_after(&self, out: Outgoing, fsynced: bool) -> Outgoing {
        if !fsynced || !self.writes_durably || leaves_before_sync(&out, self.mutant) {
            return out;
        }
        match out {
            Outgoing::Datagram { to, bytes } => {
                let waited = waited_of(&bytes).saturating_add(1).min(WAITED_MAX);
                let bytes = self.codec.rewait(&bytes, waited);
                Outgoing::Datagram { to, bytes }
            }
            Outgoing::Peer { to, msg, waited } => Outgoing::Peer {
                to,
                msg,
                waited: waited.saturating_add(1).min(WAITED_MAX),
            },
            // An operator's answer: not on any purchase's path.
            Outgoing::Reply { .. } => out,
        }
    }

    /// A decided outcome as it leaves: counted by the durable writes it
    /// waited for (what its client will read), for `twopc status` and
    /// `/metrics`.
    pub(super) fn note_outcome_waited(&mut self, out: &Outgoing) {
        if let Some(bytes) = out.datagram() {
            *self.outcome_waited.entry(waited_of(bytes)).or_default() += 1;
        }
    }

    /// The decided outcomes so far, by the durable writes each waited for.
    pub fn outcome_waited(&self) -> &std::collections::BTreeMap<u8, u64> {
        &self.outcome_waited
    }

    /// A leader, as its batch ends: if the batch fsyncs, its own
    /// acceptance of what its `Accept`s carry is durable after that fsync,
    /// having waited for their count plus it.
    pub(super) fn note_own_acceptance(&mut self, fsynced: bool) {
        if !fsynced || !self.writes_durably {
            return;
        }
        // A later `Accept`'s state holds the earlier ones' (the link may
        // send it alone, with their counts: `replication/link.rs`).
        let mut running = 0;
        for o in &self.queued {
            let Outgoing::Peer { msg, waited, .. } = o else {
                continue;
            };
            let Msg::Accept { version, .. } = **msg else {
                continue;
            };
            running = running.max(waited.saturating_add(1).min(WAITED_MAX));
            let waited = running;
            let own = &mut self.own_accepted_waited;
            match own.back_mut() {
                Some((v, w)) if *v == version => *w = (*w).max(waited),
                _ => own.push_back((version, waited)),
            }
            if own.len() > OWN_ACCEPTED_KEPT {
                own.pop_front();
            }
        }
    }

    /// What a leader's own acceptance of `version` (the newest it noted at
    /// or below it: an acknowledgement of `version` counts for those below)
    /// waited for; 0 if it noted none.
    fn own_acceptance(&self, version: u64) -> u8 {
        (self.own_accepted_waited.iter().rev())
            .find(|(v, _)| *v <= version)
            .map_or(0, |(_, w)| *w)
    }
}
