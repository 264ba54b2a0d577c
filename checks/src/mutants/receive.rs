//! How the mutants rewrite a delivered message: what the broken actor is
//! told, or what it does with what it is told (most of the mutants live
//! here; those of a start or a timer are with [`Checked`]'s other handlers).

use super::{Checked, Mutant};
use stateright::actor::{Actor, Command, Id, Out};
use std::borrow::Cow;
use twopc_model::{Change, Floor, Msg, Node, State, Storage, Timer};

impl Checked {
    pub(super) fn receive(
        &self,
        id: Id,
        state: &mut Cow<State>,
        src: Id,
        msg: Msg,
        o: &mut Out<Self>,
    ) {
        let mut out = Out::new();
        let Some(msg) = self.receive_paxos(id, state, src, msg, &mut out) else {
            self.imagine_acceptance(id, state, &mut out);
            return self.mutate_out(out, o);
        };
        let Some(msg) = self.receive_refunds(id, state, src, msg, &mut out) else {
            return self.mutate_out(out, o);
        };
        let Some(msg) = self.receive_one_write(id, state, src, msg, &mut out) else {
            return self.mutate_out(out, o);
        };
        match (&self.node, self.mutant, &msg) {
            (
                Node::Coordinator(_),
                Some(Mutant::EpochNotLearned),
                Msg::Epoch { asked, fates, .. },
            ) => {
                let msg = Msg::Epoch {
                    asked: *asked,
                    highest: 0,
                    fates: fates.clone(),
                };
                self.node.on_msg(id, state, src, msg, &mut out);
            }
            (
                Node::Coordinator(_),
                Some(Mutant::PresumeAbortForLostLog),
                Msg::Epoch { asked, highest, .. },
            ) => {
                let msg = Msg::Epoch {
                    asked: *asked,
                    highest: *highest,
                    fates: vec![],
                };
                self.node.on_msg(id, state, src, msg, &mut out);
            }
            (Node::Coordinator(_), Some(Mutant::TicketsNotRenewed), Msg::Epoch { .. }) => {
                let before = match &**state {
                    State::Coordinator(c) => (c.outcomes.next, c.outcomes.forgotten_below),
                    _ => unreachable!("a coordinator's state"),
                };
                self.node.on_msg(id, state, src, msg, &mut out);
                if let State::Coordinator(c) = &**state {
                    if (c.outcomes.next, c.outcomes.forgotten_below) != before {
                        let State::Coordinator(c) = state.to_mut() else {
                            unreachable!("matched above")
                        };
                        (c.outcomes.next, c.outcomes.forgotten_below) = before;
                        let saved = Storage::Coordinator(c.storage());
                        out = out
                            .into_iter()
                            .map(|cmd| match cmd {
                                Command::Save(_) => Command::Save(saved.clone()),
                                other => other,
                            })
                            .collect();
                    }
                }
            }
            (Node::Coordinator(_), Some(Mutant::PresumeCommit), Msg::QueryDecision { txn }) => {
                if let State::Coordinator(s) = &**state {
                    if !s.commits.contains_key(txn) && !s.voting.contains_key(txn) {
                        out.send(src, Msg::Commit { txn: *txn });
                    }
                }
            }
            (
                Node::Participant(_),
                Some(Mutant::CreditAtPrepare),
                Msg::PrepareCredit { txn, op, .. },
            ) => {
                let (txn, op) = (*txn, op.clone());
                let before = match &**state {
                    State::Participant(s) => s.data.credits.contains_key(&txn),
                    _ => true,
                };
                self.node.on_msg(id, state, src, msg, &mut out);
                let now = match &**state {
                    State::Participant(s) => s.data.credits.contains_key(&txn),
                    _ => false,
                };
                if !before && now {
                    if let State::Participant(s) = state.to_mut() {
                        let level = s.data.levels.entry(op.key).or_default();
                        *level = level.saturating_add(op.amount);
                        // Rewrite the save that precedes the vote.
                        let saved = Storage::Participant(s.data.clone());
                        out = out
                            .into_iter()
                            .map(|cmd| match cmd {
                                Command::Save(_) => Command::Save(saved.clone()),
                                other => other,
                            })
                            .collect();
                    }
                }
            }
            (
                Node::Participant(_),
                Some(Mutant::OrderIgnoresPrice),
                Msg::PreparePriced {
                    change: Change::Hold(op),
                    ..
                },
            ) => {
                // Told the sku's current price instead of the buyer's.
                let current = match &**state {
                    State::Participant(s) => s.data.prices.get(&op.key).copied(),
                    _ => None,
                };
                let mut msg = msg.clone();
                if let (Msg::PreparePriced { price, .. }, Some(current)) = (&mut msg, current) {
                    *price = current;
                }
                self.node.on_msg(id, state, src, msg, &mut out);
            }
            (Node::Participant(_), Some(Mutant::DoubleApplyCommit), Msg::Commit { txn }) => {
                let applied = match &**state {
                    State::Participant(s) => s.data.finished.get(txn).cloned(),
                    _ => None,
                };
                if let Some(f) = applied.filter(|f| f.committed) {
                    if let (State::Participant(s), Some(op)) = (state.to_mut(), f.op) {
                        let level = s.data.levels.entry(op.key).or_default();
                        *level = level.saturating_sub(op.amount);
                        out.save(Storage::Participant(s.data.clone()));
                    }
                }
                self.node.on_msg(id, state, src, msg, &mut out);
            }
            (
                Node::Coordinator(_),
                Some(
                    Mutant::RetryWithKeyStartsNewAttempt
                    | Mutant::ExpiredKeyAnsweredAsNew
                    | Mutant::KeyContentsNotCompared,
                ),
                Msg::Purchase { .. },
            ) => {
                let Msg::Purchase {
                    req,
                    mut purchase,
                    mut ticket,
                } = msg
                else {
                    unreachable!("matched above")
                };
                if let State::Coordinator(s) = &**state {
                    match self.mutant {
                        Some(Mutant::RetryWithKeyStartsNewAttempt)
                            if s.outcomes.by_id.contains_key(&req) =>
                        {
                            if let State::Coordinator(s) = state.to_mut() {
                                let told = s.outcomes.by_id.remove(&req).expect("checked");
                                s.outcomes.by_age.remove(&told.number);
                            }
                        }
                        Some(Mutant::ExpiredKeyAnsweredAsNew) => {
                            ticket = ticket.map(|t| t.max(s.outcomes.forgotten_below));
                        }
                        Some(Mutant::KeyContentsNotCompared) => {
                            if let twopc_model::Known::Decided(told) = s.known(&req) {
                                purchase = told.purchase.clone();
                            }
                            if let twopc_model::Known::InProgress(Some(asked)) = s.known(&req) {
                                if let Some(p) = asked.purchase() {
                                    purchase = p.clone();
                                }
                            }
                        }
                        _ => {}
                    }
                }
                let msg = Msg::Purchase {
                    req,
                    purchase,
                    ticket,
                };
                self.node.on_msg(id, state, src, msg, &mut out);
            }
            (
                Node::Participant(_),
                Some(Mutant::FloorIgnoresOwed | Mutant::KeepDeadHolds),
                Msg::Prepare { .. },
            ) => {
                let Msg::Prepare {
                    txn,
                    req,
                    op,
                    mut floor,
                } = msg
                else {
                    unreachable!("matched above")
                };
                if self.mutant == Some(Mutant::KeepDeadHolds) {
                    floor = Floor::default();
                } else {
                    floor.owed.clear();
                }
                let msg = Msg::Prepare {
                    txn,
                    req,
                    op,
                    floor,
                };
                self.node.on_msg(id, state, src, msg, &mut out);
            }
            (Node::Participant(_), Some(Mutant::FloorKeepsHolds), Msg::Prepare { .. }) => {
                let before = match &**state {
                    State::Participant(s) => s.data.holds.clone(),
                    _ => unreachable!("a participant's state"),
                };
                self.node.on_msg(id, state, src, msg, &mut out);
                let released: Vec<_> = match &**state {
                    State::Participant(s) => before
                        .iter()
                        .filter(|(t, _)| !s.data.holds.contains_key(*t))
                        .map(|(t, h)| (*t, h.clone()))
                        .collect(),
                    _ => unreachable!("a participant's state"),
                };
                if !released.is_empty() {
                    if let State::Participant(s) = state.to_mut() {
                        s.data.holds.extend(released);
                        out.save(Storage::Participant(s.data.clone()));
                    }
                }
            }
            (Node::Participant(_), Some(Mutant::ForgetOnCommit), Msg::Commit { txn }) => {
                let txn = *txn;
                self.node.on_msg(id, state, src, msg, &mut out);
                let applied = matches!(&**state, State::Participant(s)
                    if s.data.finished.get(&txn).is_some_and(|f| f.committed));
                if applied {
                    if let State::Participant(s) = state.to_mut() {
                        s.data.finished.remove(&txn);
                        out.save(Storage::Participant(s.data.clone()));
                    }
                }
            }
            (Node::Coordinator(_), Some(Mutant::FloorIgnoresVoting), Msg::Purchase { .. }) => {
                self.node.on_msg(id, state, src, msg, &mut out);
                if let State::Coordinator(c) = &**state {
                    // The floor is the new attempt itself, as if no older
                    // attempt were still collecting votes.
                    out = out
                        .into_iter()
                        .map(|cmd| match cmd {
                            Command::Send(dst, Msg::Prepare { txn, req, op, .. }) => {
                                let owed = c.commits.range(..txn).map(|(t, _)| *t).collect();
                                let floor = Floor { below: txn, owed };
                                Command::Send(
                                    dst,
                                    Msg::Prepare {
                                        txn,
                                        req,
                                        op,
                                        floor,
                                    },
                                )
                            }
                            other => other,
                        })
                        .collect();
                }
            }
            (Node::Client(c), Some(Mutant::ClientAcceptsAnyOutcome), Msg::Outcome(outcome))
                if c.coordinators.contains(&src) =>
            {
                if let State::Client(s) = state.to_mut() {
                    s.seen.push(outcome.clone());
                    out.save(Storage::Client(s.clone()));
                    if c.is_done(s) {
                        out.cancel_timer(Timer::Retry);
                    } else {
                        // Restarting from the new state sends the next request.
                        c.on_start(Some(s), &mut out);
                    }
                }
            }
            (Node::Replica(r), Some(Mutant::DeafToLastBackup), Msg::Accepted { .. })
                if r.peers.last() == Some(&src) => {}
            (Node::Replica(_), Some(Mutant::LeaderIgnoresPromises), Msg::Promise { term, .. }) => {
                let msg = Msg::Promise {
                    term: *term,
                    accepted: None,
                };
                self.node.on_msg(id, state, src, msg, &mut out);
            }
            _ => self.node.on_msg(id, state, src, msg, &mut out),
        }
        self.imagine_acceptance(id, state, &mut out);
        self.mutate_out(out, o);
    }
}
