//! What comes into a core: a datagram decoded (or dropped, counted by
//! reason: `status.rs`), a protocol message handed to the actor, and a
//! replica's failure detector paced after each step.

use super::*;

impl Core {
    /// A datagram: decoded, then handed to the actor or answered here.
    pub(super) fn on_datagram(&mut self, now: Instant, src: SocketAddr, bytes: &[u8]) {
        self.counters.datagrams_in += 1;
        if bytes.len() > MAX_DATAGRAM {
            return self.reject(now, src, Reject::Oversized(bytes.len()));
        }
        let (msg, stamp, waited) = match self.codec.decode_waited(bytes) {
            Ok((Payload::Protocol(msg), stamp, waited)) => (msg, stamp, waited),
            Ok((Payload::StatusRequest { nonce }, _, _)) => return self.on_status(now, src, nonce),
            Ok((Payload::StatusReply { .. }, _, _)) => {
                return self.reject(
                    now,
                    src,
                    Reject::Undecodable("unsolicited status reply".into()),
                )
            }
            Ok((Payload::Unauthenticated { reason }, _, _)) => {
                return self.on_unauthenticated(now, src, reason)
            }
            Ok((
                Payload::DecideRequest {
                    nonce,
                    txn,
                    decision,
                },
                _,
                _,
            )) => return self.on_decide(now, src, nonce, txn, decision),
            Ok((Payload::DecideReply { .. }, _, _)) => {
                return self.reject(
                    now,
                    src,
                    Reject::Undecodable("unsolicited decide reply".into()),
                )
            }
            Ok((Payload::KeyRequest { nonce, key }, _, _)) => {
                return self.on_key(now, src, nonce, key)
            }
            Ok((Payload::KeyReply { .. }, _, _)) => {
                return self.reject(
                    now,
                    src,
                    Reject::Undecodable("unsolicited key reply".into()),
                )
            }
            Ok((Payload::JournalRequest { nonce, from, limit }, _, _)) => {
                return self.on_journal(now, src, nonce, from, limit)
            }
            Ok((Payload::JournalReply { .. }, _, _)) => {
                return self.reject(
                    now,
                    src,
                    Reject::Undecodable("unsolicited journal reply".into()),
                )
            }
            Err(why) => return self.reject(now, src, why),
        };
        let SocketAddr::V4(src4) = src else {
            return self.reject(now, src, Reject::Undecodable("IPv6 source".into()));
        };
        if self.peers.is_stranger(src4, &msg) {
            // The actor would ignore it (it takes such messages only from
            // the nodes of its cluster): dropped here, counted and logged.
            return self.reject(now, src, Reject::UnknownSender(MsgKind::of(&msg)));
        }
        if let Err(why) = self.history.heard(src4, stamp) {
            // A participant behind what its coordinator heard: nothing
            // reaches the actor (`crate::runtime::history`).
            self.counters.rolled_back = self.history.alarm();
            return self.reject(now, src, why);
        }
        if matches!(self.actor, Node::Replica(_)) && msg.between_replicas() {
            // Replicas talk over their authenticated TCP links only.
            return self.reject(
                now,
                src,
                Reject::Undecodable("replica message by UDP".into()),
            );
        }
        if let Some(why) = self.below_floor(&msg) {
            // The actor would ignore it; said here, counted and logged.
            return self.reject(now, src, why);
        }
        if matches!(self.actor, Node::Replica(_) | Node::Coordinator(_))
            && matches!(msg, Msg::Ack { .. })
        {
            // Delivered at the end of a batch that saves, or soon (`ready`).
            self.acks_due.get_or_insert(now + ACK_DELAY);
            return self.acks_held.push((src4, msg, waited));
        }
        self.deliver(now, src4, msg, waited)
    }

    /// A prepare a participant will ignore as below its floor (the model's
    /// `on_prepare`: the prepare's own floor never settles its attempt, so
    /// the floor it is judged by is the one the participant holds now).
    fn below_floor(&self, msg: &Msg) -> Option<Reject> {
        let (
            Msg::Prepare { txn, .. }
            | Msg::PrepareCredit { txn, .. }
            | Msg::PreparePriced { txn, .. },
            Some(State::Participant(p)),
        ) = (msg, &self.state)
        else {
            return None;
        };
        let (txn, data) = (*txn, &p.data);
        (txn < data.floor && !data.finished.contains_key(&txn)).then_some(Reject::BelowFloor {
            txn,
            floor: data.floor,
        })
    }

    /// A protocol message from `src4` (by datagram or from a peer replica's
    /// link) that waited for `waited` durable writes: counted, faults
    /// applied, handed to the actor.
    pub(super) fn deliver(&mut self, now: Instant, src4: SocketAddrV4, msg: Msg, waited: u8) {
        let src = SocketAddr::V4(src4);
        let kind = MsgKind::of(&msg);
        let txn = msg_txn(&msg).map(|t| t.to_string());
        let span = tracing::debug_span!("msg", %kind, txn, from = %src);
        let _enter = span.enter();
        if self.injector.drops_in(&msg, &mut self.counters) {
            return;
        }
        self.peers.heard(src4, now);
        match kind {
            MsgKind::Commit | MsgKind::Abort => {
                tracing::info!(node = %self.name, txn, %kind, "decision received")
            }
            _ => tracing::debug!(node = %self.name, "received"),
        }
        self.counters.msgs_handled += 1;
        if let (Msg::Commit { txn }, State::Participant(p)) = (&msg, self.state()) {
            if !p.data.knows(txn) {
                self.unknown_decision(txn.to_string(), src);
            }
        }
        let seen = self.begin_step(&msg, waited);
        let voting = self.voting(match &msg {
            Msg::Vote { txn, .. } => Some(txn),
            _ => None,
        });
        let label = self.timeline.as_ref().map(|_| Label::of(&msg));
        if let (Some(t), Some(_)) = (&mut self.timeline, label) {
            // Stamped with the time the shell had the datagram.
            t.mark_at(now, Step::In, label, Some(src4));
        }
        let mut out = Out::new();
        let mut state = Cow::Borrowed(self.state());
        let traced = self.trace.is_some().then(|| msg.clone());
        let src = Id::from(src4);
        self.actor.on_msg(self.id, &mut state, src, msg, &mut out);
        if let Cow::Owned(s) = state {
            self.state = Some(s);
        }
        self.note_deciding(voting);
        self.note_seen(seen);
        if let Some(msg) = traced {
            let src = usize::from(src) as u64;
            self.trace_step(now, || trace::Event::Msg { src, msg }, &out);
        }
        self.apply(now, out);
        if let (Some(t), Some(_)) = (&mut self.timeline, label) {
            t.mark(Step::Handled, label, Some(src4));
        }
        self.step_waited = 0;
        self.round_waited = None;
        self.pace_replica(now, src);
    }

    /// When a replica's `Timer::Replica` fires. The model lets a set timer
    /// fire at any time (safety holds whatever the timing); when it does is
    /// the runtime's choice, made here after each step:
    ///
    /// - a *follower* asks for pre-votes (and perhaps then campaigns) only
    ///   after a whole period in which it heard nothing from the leader of
    ///   the term it promised: a message from that leader (`src`) pushes
    ///   the timer a period back (the failure detector);
    /// - a *pre-candidate* asks again every period it set itself: the
    ///   leader's heartbeat makes it a follower (whose timer the heartbeat
    ///   then pushes back, above), so nothing from others paces it;
    ///
    /// (A new leader sets its heartbeat period itself: `Replica::lead`.)
    pub(super) fn pace_replica(&mut self, now: Instant, src: Id) {
        let State::Replica(r) = self.state() else {
            return;
        };
        let range = match &r.standing {
            twopc_model::Standing::Follower if src == r.acceptor.promised.leader => {
                twopc_model::timeouts::ELECTION
            }
            _ => return,
        };
        self.timers
            .set(Timer::Replica, now + pick(&mut self.rng, &range));
    }
}
