//! The refund mutants of the coordinator (docs/shop.md, "Refund"): a
//! coordinator that refunds what it must refuse, one that never counts
//! what it refunded, and one that credits a retried top-up or refund
//! again. Each is caught in the `refunds` entry of the CI matrix.

use super::{Checked, Mutant};
use stateright::actor::{Actor, Command, Id, Out};
use std::borrow::Cow;
use twopc_model::{CoordState, Msg, Node, Operation, State, Storage, Verdict};

impl Checked {
    /// Delivers `msg` to a coordinator as its refund mutant would handle
    /// it. Returns the message back, untouched, if the mutant has nothing
    /// to do with it (the production handler then runs).
    pub(super) fn receive_refunds(
        &self,
        id: Id,
        state: &mut Cow<State>,
        src: Id,
        msg: Msg,
        out: &mut Out<Node>,
    ) -> Option<Msg> {
        let (Node::Coordinator(_), State::Coordinator(now)) = (&self.node, &**state) else {
            return Some(msg);
        };
        match (self.mutant, &msg) {
            (Some(Mutant::RefundNotChecked), Msg::Request { op, .. }) => {
                let Operation::Refund { purchase, .. } = op else {
                    return Some(msg);
                };
                // Asked of a coordinator that believes the purchase
                // committed and nothing of it refunded or reserved.
                let mut blind = now.clone();
                if let Some(told) = blind.outcomes.by_id.get_mut(purchase) {
                    told.verdict = Verdict::Committed;
                }
                blind.refunded.remove(purchase);
                let of_it: Vec<_> = blind
                    .voting
                    .iter()
                    .filter(|(_, v)| {
                        matches!(&v.op, Operation::Refund { purchase: p, .. } if p == purchase)
                    })
                    .map(|(t, _)| *t)
                    .collect();
                for t in of_it {
                    blind.voting.remove(&t);
                }
                let mut cow = Cow::Owned(State::Coordinator(blind));
                let mut blind_out = Out::new();
                self.node
                    .on_msg(id, &mut cow, src, msg.clone(), &mut blind_out);
                let State::Coordinator(blind) = cow.into_owned() else {
                    unreachable!("a coordinator's state")
                };
                if blind.next_txn == now.next_txn {
                    return Some(msg); // Started nothing: as it was.
                }
                // It started an attempt: that attempt is the real one.
                let State::Coordinator(c) = state.to_mut() else {
                    unreachable!("matched above")
                };
                for (txn, v) in blind.voting.iter() {
                    if !c.voting.contains_key(txn) {
                        c.voting.insert(*txn, v.clone());
                    }
                }
                c.next_txn = blind.next_txn;
                *out = std::mem::take(out).into_iter().chain(blind_out).collect();
                None
            }
            (Some(Mutant::RefundedNotRaised), Msg::Vote { .. }) => {
                let before = now.refunded.clone();
                self.node.on_msg(id, state, src, msg, out);
                if let State::Coordinator(c) = &**state {
                    if c.refunded != before {
                        let State::Coordinator(c) = state.to_mut() else {
                            unreachable!("matched above")
                        };
                        c.refunded = before;
                        resave(c, out);
                    }
                }
                None
            }
            (Some(Mutant::CreditAppliedTwice), Msg::Request { req, op, .. })
                if op.purchase().is_none()
                    && now
                        .outcomes
                        .by_id
                        .get(req)
                        .is_some_and(|t| t.verdict == Verdict::Committed) =>
            {
                // A retry of a committed top-up or refund: its outcome
                // forgotten, it starts a new attempt.
                let State::Coordinator(c) = state.to_mut() else {
                    unreachable!("matched above")
                };
                let told = c.outcomes.by_id.remove(req).expect("checked");
                c.outcomes.by_age.remove(&told.number);
                self.node.on_msg(id, state, src, msg, out);
                None
            }
            _ => Some(msg),
        }
    }
}

/// Rewrites the saves in `out` to save `c` as it is now.
fn resave(c: &CoordState, out: &mut Out<Node>) {
    let saved = Storage::Coordinator(c.storage());
    let rewritten: Out<Node> = std::mem::take(out)
        .into_iter()
        .map(|cmd| match cmd {
            Command::Save(_) => Command::Save(saved.clone()),
            other => other,
        })
        .collect();
    *out = rewritten;
}
