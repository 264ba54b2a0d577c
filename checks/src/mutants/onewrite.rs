//! The one-write mutants (docs/one-write.md): a coordinator that aborts on
//! its vote timer without a fence, a participant whose fence overrides its
//! saved yes, a restart that takes "every participant holds it" for an
//! abort, one that keeps its predecessor's tickets without recording again
//! the purchases it told, one that tells an abort before saving it, and
//! one that fences once and never again (liveness), and a participant that
//! acknowledges a commit before a save made it durable, or never saves one
//! no prepare carried (liveness).
//! Each is caught in the `one-write` entry of the CI matrix (the last with
//! money for two purchases).

use super::{Checked, Mutant};
use stateright::actor::{Actor, Command, Id, Out};
use std::borrow::Cow;
use twopc_model::{Ballot, Fate, Msg, Node, Refusal, State, Timer, Verdict};

impl Checked {
    /// Delivers `msg` as a one-write mutant would handle it. Returns the
    /// message back, untouched, if the mutant has nothing to do with it.
    pub(super) fn receive_one_write(
        &self,
        id: Id,
        state: &mut Cow<State>,
        src: Id,
        msg: Msg,
        out: &mut Out<Node>,
    ) -> Option<Msg> {
        match (&self.node, self.mutant, &msg) {
            (Node::Participant(_), Some(Mutant::FenceBeatsYes), Msg::Fence { txn }) => {
                // The fence taken as an abort: a saved yes is released too.
                let txn = *txn;
                self.node.on_msg(id, state, src, Msg::Abort { txn }, out);
                let refused = match &**state {
                    State::Participant(p) => {
                        p.data.finished.get(&txn).is_some_and(|f| !f.committed)
                    }
                    _ => false,
                };
                match refused {
                    true => out.send(
                        src,
                        Msg::Vote {
                            txn,
                            ballot: Ballot::No(Refusal::Fenced),
                        },
                    ),
                    false => self.node.on_msg(id, state, src, msg, out),
                }
                None
            }
            (
                Node::Coordinator(_),
                Some(Mutant::AllHoldAborts),
                Msg::Epoch {
                    asked,
                    highest,
                    fates,
                },
            ) if src == Id::from(twopc_model::slots::ORDER) => {
                // The order service's holds read as "no trace": what both
                // hold resolves as aborted.
                let fates = fates
                    .iter()
                    .filter(|(_, f)| f.held().is_none())
                    .cloned()
                    .collect();
                let msg = Msg::Epoch {
                    asked: *asked,
                    highest: *highest,
                    fates,
                };
                self.node.on_msg(id, state, src, msg, out);
                None
            }
            (Node::Participant(_), Some(Mutant::AckBeforeSave), Msg::Commit { txn }) => {
                // The ack leaves at once, the commit still in memory only.
                let txn = *txn;
                self.node.on_msg(id, state, src, msg, out);
                if let State::Participant(p) = &**state {
                    if p.acks_after_save.contains_key(&txn) {
                        let State::Participant(p) = state.to_mut() else {
                            unreachable!("matched above")
                        };
                        p.acks_after_save.remove(&txn);
                        out.send(src, Msg::Ack { txn });
                    }
                }
                None
            }
            (
                Node::Coordinator(_),
                Some(Mutant::OutcomesNotRecovered),
                Msg::Epoch {
                    asked,
                    highest,
                    fates,
                },
            ) => {
                // The fates read without the debits they name.
                let fates = fates
                    .iter()
                    .map(|(t, f)| match f {
                        Fate::HeldFor(req, _) => (*t, Fate::Held(req.clone())),
                        Fate::CommittedFor(..) => (*t, Fate::Committed),
                        other => (*t, other.clone()),
                    })
                    .collect();
                let msg = Msg::Epoch {
                    asked: *asked,
                    highest: *highest,
                    fates,
                };
                self.node.on_msg(id, state, src, msg, out);
                None
            }
            (
                Node::Coordinator(_),
                Some(Mutant::AbortToldUnsaved),
                Msg::Vote {
                    ballot: Ballot::No(_),
                    ..
                },
            ) => {
                // The abort told without its save.
                let mut handled = Out::new();
                self.node.on_msg(id, state, src, msg, &mut handled);
                let aborts = handled.iter().any(|c| {
                    matches!(c, Command::Send(_, Msg::Outcome(o)) if matches!(o.verdict, Verdict::Aborted(_)))
                });
                let kept = handled
                    .into_iter()
                    .filter(|c| !(aborts && matches!(c, Command::Save(_))));
                forward(kept, out);
                None
            }
            _ => Some(msg),
        }
    }

    /// Fires `timer` as a one-write mutant would. Returns whether it did
    /// (the production handler then does not run).
    pub(super) fn fire_one_write(
        &self,
        id: Id,
        state: &mut Cow<State>,
        timer: &Timer,
        out: &mut Out<Node>,
    ) -> bool {
        match (&self.node, self.mutant, timer) {
            (Node::Coordinator(c), Some(Mutant::AbortWithoutFence), Timer::Votes(_)) => {
                // As two-phase commit does: abort at once.
                let two_pc = Node::Coordinator(twopc_model::Coordinator {
                    one_write: false,
                    ..c.clone()
                });
                two_pc.on_timeout(id, state, timer, out);
                true
            }
            // The flush timer fires and nothing is saved.
            (Node::Participant(_), Some(Mutant::FlushNever), Timer::Flush) => true,
            (Node::Coordinator(_), Some(Mutant::FenceNotResent), Timer::Votes(txn)) => {
                let mut fired = Out::new();
                self.node.on_timeout(id, state, timer, &mut fired);
                let fenced = fired
                    .iter()
                    .any(|c| matches!(c, Command::Send(_, Msg::Fence { .. })));
                let kept = fired.into_iter().filter(|c| {
                    !(fenced && matches!(c, Command::SetTimer(Timer::Votes(t), _) if t == txn))
                });
                forward(kept, out);
                true
            }
            _ => false,
        }
    }
}

/// Issues `cmds` on `out`, in order: a mutant's filtered copy of what the
/// production handler emitted.
fn forward(cmds: impl IntoIterator<Item = <Out<Node> as IntoIterator>::Item>, out: &mut Out<Node>) {
    for cmd in cmds {
        match cmd {
            Command::Save(s) => out.save(s),
            Command::Send(d, m) => out.send(d, m),
            Command::SetTimer(t, r) => out.set_timer(t, r),
            Command::CancelTimer(t) => out.cancel_timer(t),
            Command::ChooseRandom(k, r) => out.choose_random(k, r),
        }
    }
}
