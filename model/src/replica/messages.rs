//! A replica's messages: each one handled as an acceptor (`PreVote`,
//! `Campaign`, `Accept`, `Nack`), a pre-candidate (`PreVoteGrant`), a
//! candidate (`Promise`), a leader (`Accepted`, and the
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
            Msg::PreVote { term } => self.on_pre_vote(state, src, term, o),
            Msg::PreVoteGrant { term } => self.on_pre_vote_grant(me, state, src, term, o),
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
                self.heard_from_leader(state);
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

    /// Whether delivering `msg` from `src` changes nothing and sends
    /// nothing, in `state` and in every state this replica reaches from it
    /// (so a model checker may drop the message). Each rule rests on what
    /// only grows: the promised term and the accepted (term, version)
    /// (durable), a leader's chosen version and acknowledgements; and on a
    /// replica never campaigning for, or leading, a term again once it
    /// stopped (its next campaign is for a higher term, and a restart
    /// follows, see [`Replica::ignores_once_restarted`]).
    pub fn ignores(&self, state: &ReplicaState, src: Id, msg: &Msg) -> bool {
        let promised = state.acceptor.promised;
        match msg {
            // Followed only if higher than what it promised.
            Msg::Nack { promised: p } => *p <= promised,
            // Granted only for a term above the promise, which only grows.
            Msg::PreVote { term } => *term <= promised,
            // Counted only by a pre-candidate for that term, always above
            // its promise. (Not while it is above: the replica may ask for
            // that term again, after it followed, and count it again.)
            Msg::PreVoteGrant { term } => *term <= promised,
            // Counted only by the candidate for that term that lacks it.
            Msg::Promise { term, .. } => {
                !matches!(&state.standing, Standing::Candidate { term: t, promises }
                    if t == term && !promises.contains_key(&src))
            }
            // Counted only by the leader of that term, above what is chosen
            // and what that replica acknowledged before.
            Msg::Accepted { term, version } => !state.leading().is_some_and(|l| {
                l.term == *term
                    && *version > l.chosen
                    && l.acks.get(&src).is_none_or(|v| v < version)
            }),
            _ => false,
        }
    }

    /// Whether delivering `msg` from `src` changes nothing, in `state` and
    /// in every later state, and sends nothing but to `src`: an answer that
    /// matters to the sender alone, so a message from a replica down for
    /// good can be dropped.
    pub fn only_answers(&self, state: &ReplicaState, src: Id, msg: &Msg) -> bool {
        if self.ignores(state, src, msg) {
            return true;
        }
        let promised = state.acceptor.promised;
        match msg {
            // A pre-vote changes nothing: a grant, or nothing.
            Msg::PreVote { .. } => true,
            // A campaign it already promised (or refused): a promise or a
            // refusal again.
            Msg::Campaign { term } => *term <= promised,
            // An accept of a term below the promise: a refusal again. (One
            // of the promised term may make it hear from its leader again,
            // after its timer fired, and refuse a pre-vote: not a no-op.)
            Msg::Accept { term, .. } => *term < promised,
            _ => false,
        }
    }

    /// Whether a replica that is down ignores `msg` for good once it
    /// restarts, whatever it was doing: what only a candidate or a leader
    /// counts (`Promise`, `Accepted`). It restarts following (or
    /// recovering), and never again campaigns for or leads a term it had.
    pub fn ignores_once_restarted(msg: &Msg) -> bool {
        matches!(msg, Msg::Promise { .. } | Msg::Accepted { .. })
    }
}

#[cfg(test)]
#[path = "ignores_tests.rs"]
mod ignores_tests;
