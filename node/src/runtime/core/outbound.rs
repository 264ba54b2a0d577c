//! What leaves a core: the actor's commands interpreted, in emitted order
//! (the one executor of its `Command`s: [`Core::apply`]), and messages
//! encoded and queued for the end of the batch (see [`Core::ready`] for when
//! they may leave).

use super::*;
use crate::runtime::admin::{op_name, DecidedAs};

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
                    self.measure(now, saved, &msg);
                    let waited = self.send_waited(&msg);
                    self.queue(dst, msg, waited)
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
    /// an attempt's prepares left and how long its decision took.
    pub(super) fn measure(&mut self, now: Instant, saved: bool, msg: &Msg) {
        match msg {
            Msg::Outcome(o) if saved => {
                // Not a purchase decided: an id refused or unknown.
                let Some(decided) = DecidedAs::of(o.verdict) else {
                    return;
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
            }
            Msg::Prepare { txn, .. }
            | Msg::PrepareCredit { txn, .. }
            | Msg::PreparePriced { txn, .. } => {
                if let Some(started) = &mut self.started {
                    started.entry(*txn).or_insert(now);
                }
            }
            _ => {}
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
