//! The coordinator's timers: votes that did not come (aborted, or fenced
//! under one write), commits not yet acknowledged, epochs not yet learned.

use super::{CoordState, Coordinator, Learning};
use crate::msg::*;
use crate::Node;
use stateright::actor::Out;
use std::borrow::Cow;

impl Coordinator {
    /// Handle a timer.
    pub fn on_timeout(&self, state: &mut Cow<CoordState>, timer: &Timer, o: &mut Out<Node>) {
        match timer {
            Timer::Votes(txn) => match state.voting.get(txn) {
                // One write: the votes that have not come may be durable
                // yeses already; only a participant's refusal (a fence)
                // makes the abort true.
                Some(voting) if self.one_write => {
                    for p in self.parties(&voting.op) {
                        if !voting.yes.contains(&p) {
                            o.send(p, Msg::Fence { txn: *txn });
                        }
                    }
                    o.set_timer(Timer::Votes(*txn), crate::timeouts::VOTES);
                }
                Some(_) => self.abort(state.to_mut(), *txn, AbortReason::VoteTimeout, o),
                None => {}
            },
            Timer::Resend(txn) => {
                if let Some(committing) = state.commits.get(txn) {
                    for p in state.parties_of(self, txn) {
                        if !committing.acked.contains(&p) {
                            o.send(p, Msg::Commit { txn: *txn });
                        }
                    }
                    o.set_timer(Timer::Resend(*txn), crate::timeouts::RESEND);
                }
            }
            Timer::Learn => {
                let Learning::Asking(heard) = &state.learning else {
                    return;
                };
                for p in self.participants() {
                    if !heard.contains_key(&p) {
                        o.send(p, Msg::AskEpoch { epoch: state.epoch });
                    }
                }
                o.set_timer(Timer::Learn, crate::timeouts::LEARN);
            }
            // Other roles' timers are never set by a coordinator.
            Timer::Retry | Timer::Query(_) | Timer::Replica | Timer::Flush => {}
        }
    }
}
