//! A replica's messages: each one handled as an acceptor (`Campaign`,
//! `Accept`, `Nack`), a candidate (`Promise`), a leader (`Accepted`, and the
//! coordinator's own traffic, which it runs), and, for the checker's
//! reductions, which of them it ignores for good.

use super::*;

impl Replica {
    /// Handle one message.
    pub fn on_msg(
        &self,
        me: Id,
        state: &mut Cow<ReplicaState>,
        src: Id,
        msg: Msg,
        o: &mut Out<Node>,
    ) {
        if matches!(state.standing, Standing::Recovering { .. }) {
            return self.on_msg_recovering(me, state, src, msg, o);
        }
        match msg {
            Msg::Recover { nonce } => self.answer_recovery(me, state, src, nonce, o),
            // Answers to a question this replica no longer asks.
            Msg::RecoverReply { .. } => {}
            Msg::Campaign { term } => {
                if !self.peers.contains(&src) || term.leader != src {
                    return;
                }
                if term > state.acceptor.promised {
                    let s = state.to_mut();
                    s.promise(term);
                    o.save(Storage::Replica(s.acceptor.clone()));
                } else if term < state.acceptor.promised {
                    let promised = state.acceptor.promised;
                    return o.send(src, Msg::Nack { promised });
                }
                let accepted = state.acceptor.accepted.clone();
                o.send(src, Msg::Promise { term, accepted });
            }
            Msg::Promise { term, accepted } => {
                let Standing::Candidate {
                    term: mine,
                    promises,
                } = &state.standing
                else {
                    return;
                };
                if *mine != term || !self.peers.contains(&src) || promises.contains_key(&src) {
                    return;
                }
                let s = state.to_mut();
                let Standing::Candidate { promises, .. } = &mut s.standing else {
                    unreachable!("checked above")
                };
                promises.insert(src, accepted);
                if promises.len() >= self.quorum() {
                    let adopted = promises
                        .values()
                        .flatten()
                        .max_by_key(|a| a.rank())
                        .cloned();
                    self.lead(me, s, term, adopted, o);
                }
            }
            Msg::Accept {
                term,
                version,
                storage,
            } => {
                if !self.peers.contains(&src) || term.leader != src {
                    return;
                }
                if term < state.acceptor.promised {
                    let promised = state.acceptor.promised;
                    return o.send(src, Msg::Nack { promised });
                }
                let newer = state
                    .acceptor
                    .accepted
                    .as_ref()
                    .is_none_or(|a| a.rank() < (term, version));
                let higher = term > state.acceptor.promised;
                if newer || higher {
                    let s = state.to_mut();
                    if higher {
                        s.promise(term);
                    }
                    if newer {
                        s.acceptor.accepted = Some(Accepted {
                            term,
                            version,
                            storage,
                        });
                    }
                    o.save(Storage::Replica(s.acceptor.clone()));
                }
                let version = state.acceptor.accepted.as_ref().map_or(0, |a| a.version);
                o.send(src, Msg::Accepted { term, version });
            }
            Msg::Accepted { term, version } => {
                let Some(l) = state.leading() else { return };
                if l.term != term || !self.peers.contains(&src) {
                    return;
                }
                if version <= l.chosen || l.acks.get(&src).is_some_and(|v| *v >= version) {
                    return;
                }
                let s = state.to_mut();
                let Standing::Leader(l) = &mut s.standing else {
                    unreachable!("checked above")
                };
                l.acks.insert(src, version);
                self.release(s, o);
            }
            Msg::Nack { promised } => {
                // Someone promised a higher term: follow it (and promise it
                // too, so that a later campaign of ours goes above it).
                if self.peers.contains(&src) && promised > state.acceptor.promised {
                    let s = state.to_mut();
                    s.promise(promised);
                    o.save(Storage::Replica(s.acceptor.clone()));
                }
            }
            // The coordinator's own traffic: the leader runs it, followers
            // and candidates ignore it (the sender asked every replica).
            msg => {
                let Some(l) = state.leading() else { return };
                let mut inner = Out::new();
                let mut coord = Cow::Borrowed(&l.coord);
                self.coordinator.on_msg(&mut coord, src, msg, &mut inner);
                let changed = owned(coord);
                self.run(me, state, changed, inner, o);
            }
        }
    }
}
