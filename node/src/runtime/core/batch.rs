//! Where a batch ends: [`Core::ready`] decides what may leave when.
//!
//! ## Persist before send, with group commit
//!
//! A *batch* is every event the shell feeds between two calls of
//! [`Core::ready`]: the event that woke it plus every datagram already
//! waiting (up to `batch_max`). Commands run in the order the actor emitted
//! them; no datagram queued in a batch leaves before the end of the batch,
//! and [`Core::ready`] is **the one place the rule is decided**: if the batch
//! queued anything to send and any save — of this batch or of an earlier
//! batch that sent nothing — is not durable yet, `Ready::sync` is set and the
//! shell (through the one executor, `ready::run`, whose order is
//! `Ready::commands`) makes every staged save durable before any of
//! `Ready::sends_after_sync` leaves. So a `Send` never leaves before a `Save`
//! emitted before it (by the same handler or an earlier one, whose state it
//! may reveal) is on disk, and a whole batch shares one fsync. There is one
//! exception, a leading replica's `Accept` (below).
//!
//! A batch that sends nothing leaves its saves staged (the coordinator
//! forgetting an acknowledged commit, a participant recording an abort):
//! nothing anyone saw depends on them, so losing them in a crash is the same
//! as crashing before the batch, which the model checks. The next batch that
//! sends anything, or shutdown, makes them durable first.
//!
//! ## The one exception: a leader's `Accept` leaves before its own fsync
//!
//! A leading replica turns each save of its coordinator into a version of
//! the replicated register: it accepts the version itself (the save) and
//! sends `Accept` to the other replicas; what the coordinator sent after
//! that save is held (in the model's `Leading::held`) until a majority has
//! accepted. [`Core::ready`] puts those `Accept`s in `Ready::sends`, which
//! leave *before* the batch's fsync, so the leader's fsync and the
//! backups' run at the same time instead of one after the other. Every
//! other message still waits for the fsync. Why that is safe:
//!
//! - In Paxos the proposer and the acceptor are separate roles, and an
//!   acceptor must make its acceptance durable only before it *reports* it.
//!   The `Accept` reports nothing about the leader's disk: it is the
//!   proposer's request, and a backup that accepts it makes its own
//!   acceptance durable before answering `Accepted` (that answer still
//!   waits for the backup's fsync).
//! - The leader reports its own acceptance to nobody: it only counts in its
//!   volatile ack table (`Leading::acks`), and counts there only for a
//!   version that F other replicas of 2F+1 have also accepted. Their
//!   acceptances arrive as `Accepted`s, each an answer to an `Accept` that
//!   has left; this batch's `Accept`s leave in this batch's flush, so every
//!   `Accepted` the leader handles in a batch answers an `Accept` of an
//!   *earlier* batch. The shell handles a batch only after the previous
//!   flush returned, and a batch that queued an `Accept` always has `sync`
//!   set when anything is staged (it queued a message), so the earlier
//!   batch's save, the leader's acceptance of that version, is on disk
//!   before anything is released because of it. Within one batch the leader's own ack can
//!   complete no quorum (checked against `Replica::absorb` and `release`:
//!   the ack of a version just written is the only one at that version, and
//!   a backup's `Accepted` always names a version of the same term it has
//!   already received). A one-replica group (quorum one; the model allows
//!   it, `cluster.rs` refuses fewer than three) releases in the same step as
//!   the save; those outputs follow the save in the batch and wait for the
//!   fsync like any other send.
//! - If the leader dies before its fsync, the backups may hold version `v`
//!   while its disk holds `v - 1`: the state of a Paxos run in which the
//!   leader's acceptor had not yet taken its own proposal when the leader
//!   crashed. Nothing that depends on `v` was released (that needed a later
//!   batch), so whichever of `v - 1` or `v` the next leader adopts, no one
//!   saw anything the adopted state contradicts. (A first leader that dies
//!   before its very first fsync restarts with nothing and leads the first
//!   term again: it writes the same version 1, `Coordinator::on_start` from
//!   nothing being deterministic.)
//! - Only `Accept` moves. A heartbeat's `Accept` carries the leader's latest
//!   accepted state of its own term, the same request again. `Accepted`,
//!   `Promise` and `Nack` report the sender's acceptor state, `Campaign`
//!   follows the candidate's own promise, and datagrams to participants and
//!   clients may reveal any save: all of them wait for the fsync.
//!
//! The model checker does not explore this split: in the model the leader's
//! save and its `Accept`s are one step. The argument above is why it needs
//! not to; the replica tests beside this file pin the split itself
//! (`replica_tests.rs`), and the deterministic simulation (`twopc-sim
//! --protocol replicated`) crashes leaders and followers between an early
//! `Accept` and its fsync, checking that what a leader counts as chosen is
//! durable at a majority (the runtime mutant `leader-acks-unsynced`, which
//! skips that fsync, is caught there).

use super::*;

/// Whether `out` may leave before the fsync of its batch: only a leader's
/// `Accept` to another replica (only a leader sends `Accept`). See
/// [`Core::ready`] for why this keeps a leader's decisions safe, and why
/// nothing else moves: an `Accepted`, a `Promise` or a `Nack` reports what
/// its sender promised or accepted, and every datagram to a participant or
/// a client may reveal a save.
pub(super) fn leaves_before_sync(out: &Outgoing, mutant: Option<RuntimeMutant>) -> bool {
    out.peer_msg().is_some_and(|m| {
        m.may_leave_before_sync()
            // Broken on purpose: an acknowledgement leaves before its fsync.
            || (mutant == Some(RuntimeMutant::FollowerAcksUnsynced)
                && matches!(m, Msg::Accepted { .. }))
    })
}

impl Core {
    /// Ends the batch: what to stage, whether to fsync, what to send.
    ///
    /// **Persist before send is decided here**: `sync` is set when the batch
    /// queued a datagram while any save (this batch's or an earlier one's)
    /// is not durable; the shell fsyncs before it sends `sends_after_sync`.
    /// A leader's `Accept`s go in `sends`, ahead of the fsync, and still
    /// count as queued, so the batch that sends them fsyncs before the
    /// shell runs the next one (why that is safe: this module's doc).
    ///
    /// A coordinator (2PC, or a replica) delivers participants' `Ack`s
    /// here, after every other message of the batch, and only in a batch
    /// that saved or once they have waited [`ACK_DELAY`]. The ack that
    /// completes a commit makes the coordinator forget it: a save. A 2PC
    /// coordinator would stage it alone and the next batch that sends
    /// anything (the next purchase's ticket) would wait for its fsync; a
    /// leader would pay a whole `Accept` round (an fsync at the leader, then
    /// at a backup) and hold every later send until that save is chosen.
    /// Either way the next purchase's ticket and prepares, which do not
    /// depend on the forgetting, would wait for it, and its fsyncs would
    /// compete for the disk with the participants'.
    /// Delivered with a batch that saves anyway (the next decision), the
    /// forgetting rides on that batch's fsync and `Accept`. Delaying or
    /// reordering a message is something the network may do (the model's
    /// network is unordered); a participant re-sends nothing before the
    /// coordinator's `Resend` timer (hundreds of ms), far above the delay.
    pub fn ready(&mut self, now: Instant) -> Ready {
        let saved = self.ready.save.is_some();
        if !self.acks_held.is_empty() && (saved || self.acks_due.is_some_and(|d| d <= now)) {
            self.acks_due = None;
            for (src, msg, waited) in std::mem::take(&mut self.acks_held) {
                self.deliver(now, src, msg, waited);
            }
        }
        self.note_doubts(now);
        let mut ready = std::mem::take(&mut self.ready);
        self.counters.batches += 1;
        self.unsynced |= ready.save.is_some();
        if !self.queued.is_empty() {
            ready.sync = self.unsynced;
            self.unsynced = false;
            if self.mutant == Some(RuntimeMutant::LeaderAcksUnsynced)
                && self.queued.iter().all(|o| leaves_before_sync(o, None))
            {
                // Broken on purpose: only `Accept`s, which leave before the
                // fsync anyway, so the fsync is skipped and the save taken
                // as durable.
                ready.sync = false;
            }
        }
        let decisions = std::mem::take(&mut self.decisions_queued);
        if self.mutant == Some(RuntimeMutant::SendBeforeFsync) {
            // Broken on purpose: everything leaves before the save is staged.
            for &i in &decisions {
                self.note_outcome_waited(&self.queued[i].clone());
            }
            ready.sends.append(&mut self.queued);
        }
        self.note_own_acceptance(ready.sync);
        // (In queueing order, as `queued`.)
        let mut decisions = decisions.into_iter().peekable();
        let mut told = Vec::new();
        for (i, out) in std::mem::take(&mut self.queued).into_iter().enumerate() {
            // What it waited for: one more if it leaves after this
            // batch's fsync (`waited.rs`).
            let label =
                (self.timeline.as_ref()).and_then(|t| out.datagram().and_then(|b| t.label_of(b)));
            let out = self.waited_after(out, ready.sync);
            let decision = decisions.next_if_eq(&i).is_some();
            if decision {
                self.note_outcome_waited(&out);
            }
            if let (Some(t), Some(label), Some(bytes)) = (&mut self.timeline, label, out.datagram())
            {
                // Re-encoded with its count: the label follows the new bytes.
                t.queued(bytes, label);
            }
            // Injected faults (off by default) may hold a datagram back or
            // send it twice; never before the fsync it waits for. Each copy
            // that comes out is sorted by what it is, not by what was routed:
            // a datagram held back for reordering leaves with the next one
            // routed, and may not ride out early on a leader's `Accept`.
            for routed in self.injector.route(out, &mut self.counters, now) {
                if leaves_before_sync(&routed, self.mutant) {
                    ready.sends.push(routed);
                } else if decision {
                    told.push(routed);
                } else {
                    ready.sends_after_sync.push(routed);
                }
            }
        }
        // A decision's outcome leaves first: the buyer waits for it, not
        // for the commits sent with it (the network may reorder them
        // anyway; all wait for the same fsync).
        ready.sends_after_sync.splice(0..0, told);
        ready
    }
}
