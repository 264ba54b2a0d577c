//! The leader: runs the coordinator, turns each of its saves into the next
//! version of the register (accepted here, sent to the other replicas as
//! `Accept`), and holds back every output that depends on a save until a
//! majority has accepted it (persist before send, with a majority for a
//! disk). See the module docs of [`super`].

use super::*;

impl Replica {
    /// Become the leader of `term`, starting the coordinator from `adopted`.
    pub(super) fn lead(
        &self,
        me: Id,
        state: &mut ReplicaState,
        term: Term,
        adopted: Option<Accepted>,
        o: &mut Out<Node>,
    ) {
        // Heartbeats from now on: the followers' timers were just pushed back
        // by the campaign, and must hear from the new leader before they fire.
        o.set_timer(Timer::Replica, crate::timeouts::HEARTBEAT);
        let mut inner = Out::new();
        let storage = adopted.map(|a| a.storage);
        let coord = self.coordinator.take_over(storage.as_ref(), &mut inner);
        state.standing = Standing::Leader(Box::new(Leading {
            term,
            coord,
            version: 0,
            acks: BTreeMap::new(),
            chosen: 0,
            held: Vec::new(),
        }));
        self.absorb(me, state, inner, o);
    }

    /// Turn the leader's coordinator's commands into the replica's: a save
    /// becomes the next version, accepted here and sent to the others; a
    /// send waits until the latest version is chosen; timers pass through.
    pub(super) fn absorb(
        &self,
        me: Id,
        state: &mut ReplicaState,
        inner: Out<Node>,
        o: &mut Out<Node>,
    ) {
        for command in inner {
            let Standing::Leader(l) = &mut state.standing else {
                unreachable!("only a leader runs the coordinator")
            };
            match command {
                Command::Save(Storage::Coordinator(storage)) => {
                    l.version += 1;
                    let (term, version) = (l.term, l.version);
                    l.acks.insert(me, version);
                    state.acceptor.accepted = Some(Accepted {
                        term,
                        version,
                        storage: storage.clone(),
                    });
                    o.save(Storage::Replica(state.acceptor.clone()));
                    let accept = Msg::Accept {
                        term,
                        version,
                        storage,
                    };
                    o.broadcast(&self.others(me), &accept);
                    self.release(state, o);
                }
                Command::Send(dst, msg) => {
                    if l.version > l.chosen {
                        // The same message already waiting goes out once
                        // (a duplicate request, answered again, adds nothing).
                        if !l.held.iter().any(|h| h.dst == dst && h.msg == msg) {
                            let version = l.version;
                            l.held.push(Held { version, dst, msg });
                        }
                    } else {
                        o.send(dst, msg);
                    }
                }
                Command::SetTimer(timer, range) => o.set_timer(timer, range),
                Command::CancelTimer(timer) => o.cancel_timer(timer),
                Command::Save(_) | Command::ChooseRandom(..) => {
                    unreachable!("a coordinator saves its own storage and chooses nothing")
                }
            }
        }
    }

    /// Recompute what a majority accepted and send what waited for it.
    pub(super) fn release(&self, state: &mut ReplicaState, o: &mut Out<Node>) {
        let Standing::Leader(l) = &mut state.standing else {
            return;
        };
        let mut acked: Vec<u64> = l.acks.values().copied().collect();
        acked.sort_unstable_by(|a, b| b.cmp(a));
        let Some(&chosen) = acked.get(self.quorum() - 1) else {
            return;
        };
        if chosen <= l.chosen {
            return;
        }
        l.chosen = chosen;
        // What is chosen needs no more counting: remember only acks above it
        // (the leader's own latest included).
        l.acks.retain(|_, v| *v > chosen);
        let ready = l.held.iter().take_while(|h| h.version <= chosen).count();
        for h in l.held.drain(..ready) {
            o.send(h.dst, h.msg);
        }
    }

    /// Apply the coordinator's step to the leader (keeping a no-op borrowed).
    pub(crate) fn run(
        &self,
        me: Id,
        state: &mut Cow<ReplicaState>,
        changed: Option<CoordState>,
        inner: Out<Node>,
        o: &mut Out<Node>,
    ) {
        if changed.is_none() && inner.is_empty() {
            return;
        }
        let s = state.to_mut();
        if let (Some(c), Standing::Leader(l)) = (changed, &mut s.standing) {
            l.coord = c;
        }
        self.absorb(me, s, inner, o);
    }
}
