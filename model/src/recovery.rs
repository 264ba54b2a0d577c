//! A replica that starts without its durable state: it recovers from the
//! others before it promises or accepts anything. Why this is safe, and what
//! it assumes, is in the crate docs of [`crate::replica`] (*A replica that
//! lost its disk*).

use super::*;

impl Replica {
    /// Start without storage (a new cluster, or a replaced disk): recovering.
    /// Ask every other replica what it holds, and again on a timer those
    /// that have not answered. A replica alone has nobody to ask and nothing
    /// to forget: it recovers at once.
    pub fn start_recovering(&self, me: Id, o: &mut Out<Node>) -> ReplicaState {
        let nothing = ReplicaStorage {
            promised: self.first_term(),
            accepted: None,
        };
        let mut state = ReplicaState {
            acceptor: nothing.clone(),
            standing: Standing::Recovering {
                answered: BTreeSet::new(),
                learned: nothing,
            },
        };
        let others = self.others(me);
        if others.is_empty() {
            self.recovered(me, &mut state, o);
            return state;
        }
        o.set_timer(Timer::Replica, crate::timeouts::RECOVER);
        let ask = Msg::Recover {
            nonce: self.incarnation,
        };
        o.broadcast(&others, &ask);
        state
    }

    /// The recovery timer: ask again those that have not answered.
    pub(super) fn ask_again(&self, me: Id, answered: &BTreeSet<Id>, o: &mut Out<Node>) {
        o.set_timer(Timer::Replica, crate::timeouts::RECOVER);
        let missing: Vec<Id> = self
            .others(me)
            .into_iter()
            .filter(|p| !answered.contains(p))
            .collect();
        let ask = Msg::Recover {
            nonce: self.incarnation,
        };
        o.broadcast(&missing, &ask);
    }

    /// Answer another replica's recovery question: with this replica's
    /// acceptor, or with nothing if it is recovering itself. Answering
    /// changes nothing here.
    pub(super) fn answer_recovery(
        &self,
        me: Id,
        state: &ReplicaState,
        src: Id,
        nonce: u64,
        o: &mut Out<Node>,
    ) {
        if src == me || !self.peers.contains(&src) {
            return; // Not a replica of this group.
        }
        let acceptor = match state.standing {
            Standing::Recovering { .. } => None,
            _ => Some(state.acceptor.clone()),
        };
        o.send(src, Msg::RecoverReply { nonce, acceptor });
    }

    /// A message to a recovering replica: it answers other replicas'
    /// recovery questions and collects the answers to its own; it ignores
    /// everything else (it neither promises nor accepts, so it answers no
    /// campaign and no accept, not even with a refusal; it runs no
    /// coordinator).
    pub(super) fn on_msg_recovering(
        &self,
        me: Id,
        state: &mut Cow<ReplicaState>,
        src: Id,
        msg: Msg,
        o: &mut Out<Node>,
    ) {
        match msg {
            Msg::Recover { nonce } => self.answer_recovery(me, state, src, nonce, o),
            Msg::RecoverReply { nonce, acceptor } => {
                let Standing::Recovering { answered, .. } = &state.standing else {
                    unreachable!("called while recovering")
                };
                // An earlier incarnation's question, a stranger, or an
                // answer already counted.
                if nonce != self.incarnation
                    || src == me
                    || !self.peers.contains(&src)
                    || answered.contains(&src)
                {
                    return;
                }
                let s = state.to_mut();
                let Standing::Recovering { answered, learned } = &mut s.standing else {
                    unreachable!("checked above")
                };
                answered.insert(src);
                if let Some(a) = acceptor {
                    learned.promised = learned.promised.max(a.promised);
                    let rank = |x: &Option<Accepted>| x.as_ref().map(Accepted::rank);
                    if rank(&a.accepted) > rank(&learned.accepted) {
                        learned.accepted = a.accepted;
                    }
                }
                if answered.len() == self.others(me).len() {
                    self.recovered(me, s, o);
                }
            }
            _ => {}
        }
    }

    /// Every other replica has answered: adopt the highest promise and the
    /// highest accepted state among the answers, save them, and follow. The
    /// first replica leads the first term if nobody holds anything (a new
    /// cluster: nobody has promised or accepted anything, see the docs).
    fn recovered(&self, me: Id, state: &mut ReplicaState, o: &mut Out<Node>) {
        let Standing::Recovering { learned, .. } =
            std::mem::replace(&mut state.standing, Standing::Follower)
        else {
            unreachable!("called while recovering")
        };
        state.acceptor = learned;
        o.save(Storage::Replica(state.acceptor.clone()));
        let untouched =
            state.acceptor.promised == self.first_term() && state.acceptor.accepted.is_none();
        if untouched && me == self.peers[0] {
            self.lead(me, state, self.first_term(), None, o);
        } else {
            o.set_timer(Timer::Replica, crate::timeouts::ELECTION);
        }
    }
}

#[cfg(test)]
#[path = "recovery_tests.rs"]
mod tests;
