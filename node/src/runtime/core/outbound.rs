//! What leaves a core: the actor's commands interpreted, in emitted order
//! (the one executor of its `Command`s: [`Core::apply`]), and messages
//! encoded and queued for the end of the batch (see [`Core::ready`] for when
//! they may leave).

use super::*;
use crate::runtime::admin::{op_name, DecidedAs};

/// The most decided attempts whose outcome has not left yet that a core
/// remembers (more than are ever in flight).
const DECIDING_KEPT: usize = 4096;

impl Core {
    /// Interprets the actor's commands, in emitted order. Every variant is
    /// named: a new one in stateright must be decided on here.
    pub(super) fn apply(&mut self, now: Instant, out: Out<Node>) {
        // Whether this step saved: an outcome sent by a step that saved it
        // is a decision; one sent without a save answers a retry.
        let mut saved = false;
        for command in out {
            match command {
                // Queued, not sent: it leaves after the batch's fsync.
                Command::Send(dst, msg) => {
                    let decided = self.measure(now, saved, &msg);
                    let waited = self.send_waited(&msg);
                    let at = self.queued.len();
                    self.queue(dst, msg, waited);
                    if decided && self.queued.len() > at {
                        self.decisions_queued.push(at);
                    }
                }
                Command::SetTimer(timer, range) => {
                    self.timers
                        .set(timer.clone(), now + pick(&mut self.rng, &range));
                    self.ready.timers.push(TimerCmd::Set(timer, range));
                }
                Command::CancelTimer(timer) => {
                    // The mutant keeps a cancelled timer armed.
                    if self.mutant != Some(RuntimeMutant::TimerAfterCancel) {
                        self.timers.cancel(&timer);
                    }
                    self.ready.timers.push(TimerCmd::Cancel(timer));
                }
                Command::ChooseRandom(key, _) => {
                    // The protocol never chooses randomly; log in case it starts to.
                    tracing::warn!(node = %self.name, key, "ChooseRandom is not used by twopc; ignored");
                }
                Command::Save(storage) => {
                    saved = true;
                    self.counters.saves += 1;
                    // Replaces (frees) the batch's earlier save at once.
                    self.ready.save = Some(storage);
                }
            }
        }
    }

    /// Counts a decided outcome by verdict and, when measuring, notes when
    /// an attempt's prepares left and how long its decision took. Returns
    /// whether `msg` is a decided outcome.
    ///
    /// An outcome is a decision if a step ended its attempt's collecting
    /// of votes (a vote, the vote timer: [`Core::note_deciding`]) and it
    /// has not left since: one write tells a decision without saving it,
    /// and a leader sends it in a later step, once its save is chosen. Or,
    /// at a 2PC coordinator, if the step that sends it saved it (a lost
    /// log's resolution, an operator's decision). Any other outcome
    /// answers a retry (or refuses an id, or says it is unknown).
    pub(super) fn measure(&mut self, now: Instant, saved: bool, msg: &Msg) -> bool {
        match msg {
            Msg::Outcome(o) => {
                let deciding = o.txn.is_some_and(|t| self.deciding.remove(&t));
                // (A leader's step that saves may release retries' answers.)
                let leads = matches!(self.actor, Node::Replica(_));
                // Not a decision, or not a purchase decided: an id refused
                // or unknown.
                let decided = DecidedAs::of(o.verdict).filter(|_| deciding || (saved && !leads));
                let Some(decided) = decided else {
                    return false;
                };
                *self.counters.decided.entry(decided).or_default() += 1;
                // What it asked: a request that is not a purchase keeps its
                // operation in `flows` while its outcome is remembered.
                let op = self
                    .state
                    .as_ref()
                    .and_then(super::doubts::coordinator)
                    .and_then(|c| c.flows.get(&o.req))
                    .map_or("purchase", op_name);
                // Looked up before inserting: no allocation per decision.
                let by_op = &mut self.counters.decided_by_op;
                if !by_op.contains_key(op) {
                    by_op.insert(op.to_string(), Default::default());
                }
                if let Some(outcomes) = by_op.get_mut(op) {
                    *outcomes.entry(decided).or_default() += 1;
                }
                if let (Some(started), Some(txn)) = (&mut self.started, &o.txn) {
                    if let Some(at) = started.remove(txn) {
                        self.latencies.push(now.saturating_duration_since(at));
                    }
                }
                true
            }
            Msg::Prepare { txn, .. }
            | Msg::PrepareCredit { txn, .. }
            | Msg::PreparePriced { txn, .. } => {
                if let Some(started) = &mut self.started {
                    started.entry(*txn).or_insert(now);
                }
                false
            }
            _ => false,
        }
    }

    /// The attempt `txn` (a step's vote, or its vote timer), if this node
    /// coordinates and collects its votes: for [`Core::note_deciding`].
    pub(super) fn voting(&self, txn: Option<&twopc_model::TxnId>) -> Option<twopc_model::TxnId> {
        let txn = txn?;
        let c = super::doubts::coordinator(self.state())?;
        c.voting.contains_key(txn).then_some(*txn)
    }

    /// After a step: `voting` (from [`Core::voting`] before it) decided if
    /// it no longer collects votes; its outcome is a decision whenever it
    /// leaves. Forgotten all at once past [`DECIDING_KEPT`] (a leader that
    /// stepped down never releases its held outcomes), which only
    /// under-counts.
    pub(super) fn note_deciding(&mut self, voting: Option<twopc_model::TxnId>) {
        let Some(txn) = voting else { return };
        let coordinator = super::doubts::coordinator(self.state());
        if coordinator.is_some_and(|c| !c.voting.contains_key(&txn)) {
            if self.deciding.len() >= DECIDING_KEPT {
                self.deciding.clear();
            }
            self.deciding.insert(txn);
        }
    }

    /// Queues a protocol message to `dst` that waited for `waited` durable
    /// writes so far (`waited.rs`).
    pub(super) fn queue(&mut self, dst: Id, msg: Msg, waited: u8) {
        let kind = MsgKind::of(&msg);
        let txn = msg_txn(&msg).map(|t| t.to_string());
        let to4 = SocketAddrV4::from(dst);
        let to = SocketAddr::V4(to4);
        self.peers.sent(to4, &msg);
        if self.injector.drops_out(&msg, &mut self.counters) {
            return;
        }
        if matches!(self.actor, Node::Replica(_)) && msg.between_replicas() {
            // To a peer replica, over TCP: encoded by the link, as a delta.
            tracing::trace!(node = %self.name, %kind, %to, "to peer");
            return self.queued.push(Outgoing::Peer {
                to,
                msg: Box::new(msg),
                waited,
            });
        }
        match &msg {
            Msg::Outcome(o) => {
                tracing::info!(node = %self.name, txn, req = %o.req, verdict = ?o.verdict, %to, "outcome")
            }
            Msg::Vote { ballot, .. } => tracing::info!(node = %self.name, txn, ?ballot, "vote"),
            _ => tracing::debug!(node = %self.name, %kind, txn, %to, "send"),
        }
        let stamp = self.history.stamp(to4);
        if let Some((last, last_stamp, last_waited, bytes)) = &self.encoded {
            if *last == msg && *last_stamp == stamp && *last_waited == waited {
                // A broadcast (a client's request to every replica, a
                // commit to both participants): the same bytes again, as
                // encoding is a function of the message and the codec.
                let bytes = bytes.clone();
                if let Some(t) = &mut self.timeline {
                    // (Encoded in an earlier batch, perhaps: noted again.)
                    t.queued(&bytes, Label::of(&msg));
                }
                return self.queued.push(Outgoing::Datagram { to, bytes });
            }
        }
        let label = self.timeline.as_ref().map(|_| Label::of(&msg));
        let payload = Payload::Protocol(msg);
        let encoded = self.queue_payload(to, &payload, stamp, waited);
        if let (Some(t), Some(label), Some(bytes)) = (&mut self.timeline, label, &encoded) {
            // Copies of a broadcast share these bytes, and so the label.
            t.queued(bytes, label);
        }
        let Payload::Protocol(msg) = payload else {
            unreachable!("built above")
        };
        self.encoded = encoded.map(|bytes| (msg, stamp, waited, bytes));
    }

    /// Encodes and queues `payload` to `to`, its history field `stamp`, as
    /// having waited for `waited` durable writes so far (`waited.rs`);
    /// returns its bytes if it could.
    pub(super) fn queue_payload(
        &mut self,
        to: SocketAddr,
        payload: &Payload,
        stamp: Option<u64>,
        waited: u8,
    ) -> Option<bytes::Bytes> {
        let protocol = matches!(payload, Payload::Protocol(_));
        match self.codec.encode_waited(payload, stamp, waited) {
            Ok(bytes) => {
                let bytes_out = bytes.clone();
                self.queued.push(if protocol {
                    Outgoing::Datagram {
                        to,
                        bytes: bytes_out,
                    }
                } else {
                    Outgoing::Reply {
                        to,
                        bytes: bytes_out,
                    }
                });
                Some(bytes)
            }
            Err(e) => {
                tracing::error!(node = %self.name, %to, "cannot encode: {e}");
                None
            }
        }
    }
}
