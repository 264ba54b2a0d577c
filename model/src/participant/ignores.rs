//! The messages a participant can ignore for good (see
//! `Participant::ignores`).

use super::{PartState, Participant};
use crate::msg::*;
use stateright::actor::Id;

/// What a participant can ignore for good: the messages whose delivery
/// changes nothing, in this state and in every state it reaches from it, so
/// that a model checker may drop them (see `drop_mail_of_the_dead` in
/// twopc-checks). Each rests on what only grows or stays: what a
/// participant decided stays decided (a transaction leaves `holds` only for
/// `finished`, and leaves `finished` only when its floor passes it, after
/// which no prepare holds it again), the floor only rises, and everything
/// is durable (a restart changes nothing of it), except a commit applied
/// in memory under one write, which no rule here counts as decided. Paired with
/// [`Participant::on_msg`] by the tests in `participant_ignores_tests.rs`.
impl Participant {
    /// Whether delivering `msg` from `src` changes nothing and sends
    /// nothing, now or in any later state.
    pub fn ignores(&self, state: &PartState, src: Id, msg: &Msg) -> bool {
        if !self.coordinators.contains(&src) {
            return true; // Only the coordinator drives a participant.
        }
        let data = &state.data;
        match msg {
            // Decided already, or settled and not held. (A hold below the
            // floor is one the floor lists as owed: a transaction in doubt,
            // which an operator may abort.)
            // (Not a commit applied in memory only: a crash would bring its
            // hold back.)
            Msg::Abort { txn } => {
                !state.acks_after_save.contains_key(txn)
                    && (data.finished.contains_key(txn)
                        || (*txn < data.floor && !data.prepared(txn)))
            }
            _ => false,
        }
    }

    /// Whether delivering `msg` from `src` changes nothing, now or in any
    /// later state, and sends nothing but to `src`: an answer that matters
    /// to the sender alone, so a message from a sender down for good can be
    /// dropped.
    pub fn only_answers(&self, state: &PartState, src: Id, msg: &Msg) -> bool {
        if self.ignores(state, src, msg) {
            return true;
        }
        let data = &state.data;
        let held = |txn: &TxnId| data.prepared(txn);
        let decided = |txn: &TxnId| *txn < data.floor || data.finished.contains_key(txn);
        match msg {
            // An ack again (or nothing) unless it is held.
            // (Not while the commit is in memory only: a crash would bring
            // its hold back, which this commit would apply.)
            Msg::Commit { txn } => {
                decided(txn) && !held(txn) && !state.acks_after_save.contains_key(txn)
            }
            // A floor that settles nothing here now (so nothing later
            // either: every later hold or decision is at or above this
            // participant's floor), for an attempt already held or decided
            // (a vote again, or nothing).
            Msg::Prepare { txn, floor, .. }
            | Msg::PrepareCredit { txn, floor, .. }
            | Msg::PreparePriced { txn, floor, .. } => {
                floor.below <= data.floor
                    && data.holds.range(..floor.below).next().is_none()
                    && data.credits.range(..floor.below).next().is_none()
                    && data.finished.range(..floor.below).next().is_none()
                    && (decided(txn) || held(txn))
            }
            _ => false,
        }
    }
}
