//! A participant: the wallet (balances per user) or the order service (stock
//! per sku). Both guard a map of levels and take the same escrow holds, so one
//! implementation serves both; [`Resource`] only names which one it is.

use crate::msg::*;
use crate::{Node, Storage};
use serde::{Deserialize, Serialize};
use stateright::actor::{Id, Out};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Which resource a participant guards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Resource {
    /// User balances; a purchase debits `qty * price`.
    Wallet,
    /// Sku stock; a purchase takes `qty` units.
    Order,
}

/// A participant's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Participant {
    /// Wallet or order service.
    pub resource: Resource,
    /// The coordinator, or every replica of a replicated coordinator: who
    /// may drive this participant, and whom to ask about in-doubt
    /// transactions (all of them: whichever leads answers).
    pub coordinators: Vec<Id>,
    /// Levels on first start (no storage yet): balances or stock.
    pub initial: BTreeMap<Key, Amount>,
}

/// A prepared transaction's reservation: `op.amount` of `op.key` is set aside
/// (escrow, not a lock: other transactions on the same key still prepare if
/// the level net of all holds covers them).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Hold {
    /// The request the transaction attempts.
    pub req: RequestId,
    /// What is held.
    pub op: Op,
}

/// A prepared credit: `op.amount` is added to `op.key` at commit, and
/// nothing before (it is held nowhere: the level net of holds does not
/// count it). Counted against overflow while pending.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Credit {
    /// The request the transaction attempts.
    pub req: RequestId,
    /// What is credited at commit.
    pub op: Op,
    /// Every participant of the transaction (told to a coordinator that
    /// lost its log: see [`Fate::HeldAmong`]).
    pub parties: Vec<Id>,
}

/// A transaction this participant has finished.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Finished {
    /// The request (unknown when an abort arrived before any prepare).
    pub req: Option<RequestId>,
    /// What was (or would have been) applied.
    pub op: Option<Op>,
    /// Applied (`true`) or not.
    pub committed: bool,
}

/// The participant's durable state. A participant has no other state worth
/// keeping, so its whole state is this (plus one diagnostic flag).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PartStorage {
    /// Committed levels: balances or stock, net of committed purchases only.
    pub levels: Map<Key, Amount>,
    /// Prepared (voted yes, undecided) transactions.
    pub holds: Map<TxnId, Hold>,
    /// Decided transactions, remembered so that duplicates and late prepares
    /// change nothing, until the coordinator's floor settles them.
    pub finished: Map<TxnId, Finished>,
    /// The highest floor heard from the coordinator (see [`Floor`]): every
    /// transaction below it is decided, so a prepare below it is ignored, and
    /// a commit below it that is neither held nor finished here was applied
    /// and forgotten (it is acknowledged again).
    pub floor: TxnId,
    /// Prepared (voted yes, undecided) credits. Last, so that a record
    /// written before credits existed reads as having none; empty, it
    /// hashes as nothing (state digests are those of before).
    #[serde(default)]
    pub credits: Map<TxnId, Credit>,
}

impl PartStorage {
    /// The highest coordinator epoch this participant has a durable trace
    /// of: its floor's, or that of a transaction it holds or finished.
    /// O(1): the maps are ordered by transaction.
    pub fn highest_epoch(&self) -> u64 {
        let last = |m: Option<TxnId>| m.map_or(0, |t| t.epoch);
        self.floor
            .epoch
            .max(last(self.holds.keys().next_back().copied()))
            .max(last(self.finished.keys().next_back().copied()))
            .max(last(self.credits.keys().next_back().copied()))
    }

    /// Whether `txn` is prepared here (a hold or a pending credit).
    pub fn prepared(&self, txn: &TxnId) -> bool {
        self.holds.contains_key(txn) || self.credits.contains_key(txn)
    }

    /// What is credited to `key` by prepared credits.
    pub fn pending_credits(&self, key: &str) -> Amount {
        self.credits
            .values()
            .filter(|c| c.op.key == key)
            .map(|c| c.op.amount)
            .sum()
    }

    /// What this participant knows of every transaction it holds or
    /// remembers, in order: the answer to a coordinator that lost its log.
    /// Costs O(holds + finished), which follow the transactions in flight.
    pub fn fates(&self) -> Vec<(TxnId, Fate)> {
        let held = self
            .holds
            .iter()
            .map(|(t, h)| (*t, Fate::Held(h.req.clone())))
            .chain(
                self.credits
                    .iter()
                    .map(|(t, c)| (*t, Fate::HeldAmong(c.req.clone(), c.parties.clone()))),
            );
        let finished = self.finished.iter().map(|(t, f)| {
            let fate = if f.committed {
                Fate::Committed
            } else {
                Fate::Aborted
            };
            (*t, fate)
        });
        let mut all: Vec<_> = held.chain(finished).collect();
        all.sort();
        all
    }

    /// What is held on `key` by prepared transactions.
    pub fn held(&self, key: &str) -> Amount {
        self.holds
            .values()
            .filter(|h| h.op.key == key)
            .map(|h| h.op.amount)
            .sum()
    }

    /// Whether this participant can account for a decision on `txn`: it
    /// holds it (prepared), has finished it, or its floor settled it (a
    /// commit below the floor was applied and forgotten). A `Commit` for a
    /// transaction it cannot account for never comes from a correct
    /// coordinator talking to this participant's durable state (a commit
    /// needs our yes, and our yes needs a durable hold): it means
    /// acknowledged data was lost, or a bug. A pure query for the runtime's
    /// alarm; `on_msg` ignores such a commit either way.
    pub fn knows(&self, txn: &TxnId) -> bool {
        *txn < self.floor || self.prepared(txn) || self.finished.contains_key(txn)
    }
}

/// The participant's whole state.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PartState {
    /// Everything durable.
    pub data: PartStorage,
    /// Set when this incarnation recovered prepared holds from storage (lets
    /// the checker prove that recovery path is exercised).
    pub recovered_holds: bool,
}

impl Participant {
    /// Start or restart from storage. Prepared holds survive; each asks the
    /// coordinator for its decision on a timer.
    pub fn on_start(&self, storage: Option<&PartStorage>, o: &mut Out<Node>) -> PartState {
        let data = storage.cloned().unwrap_or_else(|| PartStorage {
            levels: self.initial.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            ..PartStorage::default()
        });
        for txn in data.holds.keys().chain(data.credits.keys()) {
            o.set_timer(Timer::Query(*txn), crate::timeouts::QUERY);
        }
        PartState {
            recovered_holds: !data.holds.is_empty() || !data.credits.is_empty(),
            data,
        }
    }

    /// Handle one message.
    pub fn on_msg(&self, state: &mut Cow<PartState>, src: Id, msg: Msg, o: &mut Out<Node>) {
        if !self.coordinators.contains(&src) {
            // Only the coordinator drives a participant; anything else is
            // ignored deliberately.
            return;
        }
        match msg {
            Msg::Prepare {
                txn,
                req,
                op,
                floor,
            } => self.on_prepare(state, src, txn, req, Change::Hold(op), &floor, None, o),
            Msg::PrepareCredit {
                txn,
                req,
                op,
                floor,
                parties,
            } => self.on_prepare(
                state,
                src,
                txn,
                req,
                Change::Credit(op),
                &floor,
                Some(parties),
                o,
            ),
            Msg::Commit { txn } => {
                if let Some(done) = state.data.finished.get(&txn) {
                    if done.committed {
                        o.send(src, Msg::Ack { txn }); // Our ack was lost.
                    }
                    // Commit of a transaction we aborted cannot come from a
                    // correct coordinator (we never voted yes and then
                    // aborted by ourselves): ignored deliberately.
                    return;
                }
                if let Some(credit) = state.data.credits.get(&txn).cloned() {
                    let data = &mut state.to_mut().data;
                    data.credits.remove(&txn);
                    // The key exists from this commit on. Cannot overflow:
                    // the prepare counted every pending credit on the key,
                    // and only commits of holds lower the level since.
                    let level = data.levels.get(&credit.op.key).copied().unwrap_or(0);
                    let level = level.saturating_add(credit.op.amount);
                    data.levels.insert(credit.op.key.clone(), level);
                    let done = Finished {
                        req: Some(credit.req),
                        op: Some(credit.op),
                        committed: true,
                    };
                    data.finished.insert(txn, done);
                    o.save(Storage::Participant(data.clone()));
                    o.cancel_timer(Timer::Query(txn));
                    o.send(src, Msg::Ack { txn });
                    return;
                }
                let Some(hold) = state.data.holds.get(&txn).cloned() else {
                    if txn < state.data.floor {
                        // Below the floor, neither held nor finished: applied
                        // and acknowledged, then forgotten. Our ack was lost.
                        o.send(src, Msg::Ack { txn });
                    }
                    return; // Otherwise never prepared: no correct coordinator commits it.
                };
                let data = &mut state.to_mut().data;
                data.holds.remove(&txn);
                let level = data.levels.get_mut(&hold.op.key).expect("held keys exist");
                // Cannot underflow: the hold was covered by the level when prepared,
                // and holds only shrink the available amount.
                *level = level.saturating_sub(hold.op.amount);
                data.finished.insert(txn, finished(Some(hold), true));
                o.save(Storage::Participant(data.clone()));
                o.cancel_timer(Timer::Query(txn));
                o.send(src, Msg::Ack { txn });
            }
            Msg::AskEpoch { epoch: asked } => {
                // Read from what is durable: the floor (raised by every
                // prepare acted on), the holds and the finished transactions.
                let highest = state.data.highest_epoch();
                let fates = state.data.fates();
                o.send(
                    src,
                    Msg::Epoch {
                        asked,
                        highest,
                        fates,
                    },
                );
            }
            Msg::Abort { txn } => {
                let held = state.data.prepared(&txn);
                if state.data.finished.contains_key(&txn) || (txn < state.data.floor && !held) {
                    // Decided already (a duplicate), or settled. (A hold
                    // below the floor is one the floor listed as owed: a
                    // transaction in doubt, which an operator may abort.)
                    return;
                }
                let data = &mut state.to_mut().data;
                let credit = data.credits.remove(&txn).map(|c| Hold {
                    req: c.req,
                    op: c.op,
                });
                let hold = data.holds.remove(&txn).or(credit);
                data.finished.insert(txn, finished(hold, false));
                // Durable so that a late prepare of this attempt is refused.
                o.save(Storage::Participant(data.clone()));
                o.cancel_timer(Timer::Query(txn));
            }
            // Messages meant for other roles: ignored deliberately.
            Msg::Purchase { .. }
            | Msg::Request { .. }
            | Msg::Lookup { .. }
            | Msg::Status { .. }
            | Msg::Outcome(_)
            | Msg::Vote { .. }
            | Msg::Ack { .. }
            | Msg::QueryDecision { .. }
            | Msg::Epoch { .. }
            | Msg::PreVote { .. }
            | Msg::PreVoteGrant { .. }
            | Msg::Campaign { .. }
            | Msg::Promise { .. }
            | Msg::Accept { .. }
            | Msg::Accepted { .. }
            | Msg::Nack { .. }
            | Msg::Recover { .. }
            | Msg::RecoverReply { .. } => {}
        }
    }

    /// Learn what the coordinator has settled: raise the floor, release the
    /// holds it settles (they were aborted, by presumption or by a decision
    /// that did not reach us) and forget the transactions it settles. Returns
    /// whether anything changed. Costs O(what is released or forgotten, plus
    /// the owed commits), nothing when nothing is settled.
    fn apply_floor(&self, state: &mut Cow<PartState>, floor: &Floor, o: &mut Out<Node>) -> bool {
        let data = &state.data;
        let raise = floor.below > data.floor;
        let dead_holds = settled(&data.holds, floor);
        let dead_credits = settled(&data.credits, floor);
        let forgotten = settled(&data.finished, floor);
        if !raise && dead_holds.is_empty() && dead_credits.is_empty() && forgotten.is_empty() {
            return false;
        }
        let data = &mut state.to_mut().data;
        data.floor = data.floor.max(floor.below);
        for txn in dead_holds {
            data.holds.remove(&txn);
            o.cancel_timer(Timer::Query(txn));
        }
        for txn in dead_credits {
            data.credits.remove(&txn);
            o.cancel_timer(Timer::Query(txn));
        }
        for txn in forgotten {
            data.finished.remove(&txn);
        }
        true
    }

    #[allow(clippy::too_many_arguments)]
    fn on_prepare(
        &self,
        state: &mut Cow<PartState>,
        src: Id,
        txn: TxnId,
        req: RequestId,
        change: Change,
        floor: &Floor,
        parties: Option<Vec<Id>>,
        o: &mut Out<Node>,
    ) {
        // Release what the coordinator settled before judging this prepare:
        // after a coordinator restart, the dead attempts of the old epoch no
        // longer count against the level (a refusal is only ever true).
        let changed = self.apply_floor(state, floor, o);
        if txn < state.data.floor || state.data.finished.contains_key(&txn) {
            // Settled, or decided already: a late prepare changes nothing.
            if changed {
                o.save(Storage::Participant(state.data.clone()));
            }
            return;
        }
        if state.data.prepared(&txn) {
            // Already prepared: the coordinator may have lost our vote.
            if changed {
                o.save(Storage::Participant(state.data.clone()));
            }
            o.send(
                src,
                Msg::Vote {
                    txn,
                    ballot: Ballot::Yes,
                },
            );
            return;
        }
        let refusal = match &change {
            Change::Hold(op) => match state.data.levels.get(&op.key) {
                None => Some(Refusal::UnknownKey),
                Some(level) if level.saturating_sub(state.data.held(&op.key)) < op.amount => {
                    Some(Refusal::Insufficient)
                }
                Some(_) => None,
            },
            // A credit to an unknown key is allowed (the commit creates
            // it); only overflow refuses one, counting the pending credits.
            Change::Credit(op) => {
                let level = state.data.levels.get(&op.key).copied().unwrap_or(0);
                let fits = level
                    .checked_add(state.data.pending_credits(&op.key))
                    .and_then(|l| l.checked_add(op.amount))
                    .is_some();
                (!fits).then_some(Refusal::Overflow)
            }
        };
        let data = &mut state.to_mut().data;
        let (credit, op) = match change {
            Change::Hold(op) => (false, op),
            Change::Credit(op) => (true, op),
        };
        let ballot = match refusal {
            None if credit => {
                let parties = parties.unwrap_or_default();
                data.credits.insert(txn, Credit { req, op, parties });
                o.set_timer(Timer::Query(txn), crate::timeouts::QUERY);
                Ballot::Yes
            }
            None => {
                data.holds.insert(txn, Hold { req, op });
                o.set_timer(Timer::Query(txn), crate::timeouts::QUERY);
                Ballot::Yes
            }
            Some(refusal) => {
                let hold = Some(Hold { req, op });
                data.finished.insert(txn, finished(hold, false));
                Ballot::No(refusal)
            }
        };
        // Persist before send: the hold is durable before the yes vote leaves.
        o.save(Storage::Participant(data.clone()));
        // To whoever asked: with a replicated coordinator, the replica leading.
        o.send(src, Msg::Vote { txn, ballot });
    }

    /// Handle a timer.
    pub fn on_timeout(&self, state: &mut Cow<PartState>, timer: &Timer, o: &mut Out<Node>) {
        match timer {
            Timer::Query(txn) => {
                if state.data.prepared(txn) {
                    o.broadcast(&self.coordinators, &Msg::QueryDecision { txn: *txn });
                    o.set_timer(Timer::Query(*txn), crate::timeouts::QUERY);
                }
            }
            // Other roles' timers are never set by a participant.
            Timer::Retry | Timer::Votes(_) | Timer::Resend(_) | Timer::Learn | Timer::Replica => {}
        }
    }
}

/// The transactions of `m` that `floor` settles.
fn settled<V: Clone>(m: &Map<TxnId, V>, floor: &Floor) -> Vec<TxnId> {
    m.range(..floor.below)
        .map(|(t, _)| *t)
        .filter(|t| floor.settles(t))
        .collect()
}

fn finished(hold: Option<Hold>, committed: bool) -> Finished {
    Finished {
        req: hold.as_ref().map(|h| h.req.clone()),
        op: hold.map(|h| h.op),
        committed,
    }
}

/// What a participant can ignore for good: the messages whose delivery
/// changes nothing, in this state and in every state it reaches from it, so
/// that a model checker may drop them (see `drop_mail_of_the_dead` in
/// twopc-checks). Each rests on what only grows or stays: what a
/// participant decided stays decided (a transaction leaves `holds` only for
/// `finished`, and leaves `finished` only when its floor passes it, after
/// which no prepare holds it again), the floor only rises, and everything
/// is durable (a restart changes nothing of it). Paired with
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
            Msg::Abort { txn } => {
                data.finished.contains_key(txn) || (*txn < data.floor && !data.prepared(txn))
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
            Msg::Commit { txn } => decided(txn) && !held(txn),
            // A floor that settles nothing here now (so nothing later
            // either: every later hold or decision is at or above this
            // participant's floor), for an attempt already held or decided
            // (a vote again, or nothing).
            Msg::Prepare { txn, floor, .. } | Msg::PrepareCredit { txn, floor, .. } => {
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

#[cfg(test)]
#[path = "participant_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "participant_ignores_tests.rs"]
mod ignores_tests;

#[cfg(test)]
#[path = "participant_credit_tests.rs"]
mod credit_tests;
