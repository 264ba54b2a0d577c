//! A participant: the wallet (balances per user) or the order service (stock
//! per sku). Both guard a map of levels and take the same escrow holds, so one
//! implementation serves both; [`Resource`] only names which one it is.

use crate::msg::*;
use crate::Node;
use serde::{Deserialize, Serialize};
use stateright::actor::{Id, Out};
use std::borrow::Cow;
use std::collections::BTreeMap;

mod ignores;
mod saving;
mod storage;

use saving::{save, save_then};

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
    /// Prices per unit on first start (the order service's catalogue; a
    /// sku without one accepts a purchase at any price: see docs/shop.md,
    /// "Prices"). Absent from configurations written before prices: none.
    #[serde(default)]
    pub prices: BTreeMap<Key, Amount>,
    /// Whether the coordinator runs the one-write protocol
    /// ([`crate::Coordinator::one_write`]): answering `AskEpoch` then
    /// raises this participant's floor to the asker's epoch first,
    /// durably, so that what it had no trace of when it answered stays so
    /// (a prepare of an earlier epoch arriving later is ignored). Off in
    /// configurations written before it.
    #[serde(default)]
    pub one_write: bool,
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
    /// The catalogue (order service): each sku's price per unit, set by
    /// the commit of a priced restock. A sku without one accepts a
    /// purchase at any price. (Appended, like `credits`.)
    #[serde(default)]
    pub prices: Map<Key, Amount>,
    /// The price each prepared priced restock sets at its commit, by
    /// transaction (its sku is its credit's). While one is pending on a
    /// sku, a purchase of it at another price is refused. (Appended.)
    #[serde(default)]
    pub repricing: Map<TxnId, Amount>,
}

/// The participant's whole state.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PartState {
    /// Everything durable.
    pub data: PartStorage,
    /// Set when this incarnation recovered prepared holds from storage (lets
    /// the checker prove that recovery path is exercised).
    pub recovered_holds: bool,
    /// One write: the commits applied in memory since the last save, each
    /// with the coordinator its `Ack` goes to once a save has made the
    /// commit durable (the next prepare's, or the flush timer's). Lost with
    /// a crash, as the commits are: the holds come back from storage and
    /// ask again. Appended; empty, it hashes as nothing.
    #[serde(default)]
    pub acks_after_save: Map<TxnId, Id>,
}

impl Participant {
    /// Start or restart from storage. Prepared holds survive; each asks the
    /// coordinator for its decision on a timer.
    pub fn on_start(&self, storage: Option<&PartStorage>, o: &mut Out<Node>) -> PartState {
        let data = storage.cloned().unwrap_or_else(|| PartStorage {
            levels: self.initial.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            prices: self.prices.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            ..PartStorage::default()
        });
        for txn in data.holds.keys().chain(data.credits.keys()) {
            o.set_timer(Timer::Query(*txn), crate::timeouts::QUERY);
        }
        PartState {
            recovered_holds: !data.holds.is_empty() || !data.credits.is_empty(),
            data,
            acks_after_save: Map::new(),
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
            } => {
                let prepare = Prepared {
                    txn,
                    req,
                    change: Change::Hold(op),
                    parties: None,
                    price: None,
                };
                self.on_prepare(state, src, prepare, &floor, o)
            }
            Msg::PrepareCredit {
                txn,
                req,
                op,
                floor,
                parties,
            } => {
                let prepare = Prepared {
                    txn,
                    req,
                    change: Change::Credit(op),
                    parties: Some(parties),
                    price: None,
                };
                self.on_prepare(state, src, prepare, &floor, o)
            }
            Msg::PreparePriced {
                txn,
                req,
                change,
                price,
                floor,
                parties,
            } => {
                let prepare = Prepared {
                    txn,
                    req,
                    change,
                    parties: Some(parties),
                    price: Some(price),
                };
                self.on_prepare(state, src, prepare, &floor, o)
            }
            Msg::Commit { txn } => {
                if let Some(done) = state.data.finished.get(&txn) {
                    // Our ack was lost (unless it waits for the next save).
                    if done.committed && !state.acks_after_save.contains_key(&txn) {
                        o.send(src, Msg::Ack { txn });
                    }
                    // Commit of a transaction we aborted cannot come from a
                    // correct coordinator (we never voted yes and then
                    // aborted by ourselves): ignored deliberately.
                    return;
                }
                if let Some(credit) = state.data.credits.get(&txn).cloned() {
                    let data = &mut state.to_mut().data;
                    data.credits.remove(&txn);
                    if let Some(price) = data.repricing.remove(&txn) {
                        data.prices.insert(credit.op.key.clone(), price);
                    }
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
                    return self.committed(state, src, txn, o);
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
                self.committed(state, src, txn, o);
            }
            Msg::AskEpoch { epoch: asked } => {
                // Read from what is durable: the floor (raised by every
                // prepare acted on), the holds and the finished transactions.
                let highest = match self.one_write {
                    true => state.data.highest_used_epoch(),
                    false => state.data.highest_epoch(),
                };
                let fates = state.data.fates_told(self.one_write);
                let fence = TxnId { epoch: asked, n: 0 };
                if self.one_write && state.data.floor < fence {
                    // One write: the asker judges every transaction this
                    // answer does not name as never prepared here, so none
                    // of an earlier epoch may be prepared from now on. The
                    // floor is raised without applying it (what is held or
                    // finished stays: the asker resolves it), and it is
                    // durable before the answer leaves.
                    state.to_mut().data.floor = fence;
                    save(state, o);
                } else if !state.acks_after_save.is_empty() {
                    // The fates name commits applied in memory only: they
                    // are durable before the answer leaves (a restart would
                    // bring their holds back, to be aborted by a coordinator
                    // that took them for finished).
                    save(state, o);
                }
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
                data.repricing.remove(&txn);
                let hold = data.holds.remove(&txn).or(credit);
                data.finished.insert(txn, finished(hold, false));
                // Durable so that a late prepare of this attempt is refused.
                save(state, o);
                o.cancel_timer(Timer::Query(txn));
            }
            Msg::Fence { txn } => self.on_fence(state, src, txn, o),
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
            data.repricing.remove(&txn);
            o.cancel_timer(Timer::Query(txn));
        }
        for txn in forgotten {
            data.finished.remove(&txn);
        }
        true
    }

    fn on_prepare(
        &self,
        state: &mut Cow<PartState>,
        src: Id,
        prepare: Prepared,
        floor: &Floor,
        o: &mut Out<Node>,
    ) {
        let Prepared {
            txn,
            req,
            change,
            parties,
            price,
        } = prepare;
        // Release what the coordinator settled before judging this prepare:
        // after a coordinator restart, the dead attempts of the old epoch no
        // longer count against the level (a refusal is only ever true).
        let changed = self.apply_floor(state, floor, o);
        if txn < state.data.floor || state.data.finished.contains_key(&txn) {
            // Settled, or decided already: a late prepare changes nothing.
            if changed {
                save(state, o);
            }
            return;
        }
        if state.data.prepared(&txn) {
            // Already prepared: the coordinator may have lost our vote.
            if changed {
                save(state, o);
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
                // The buyer is charged only the price it saw, and only
                // while it is the sku's (see `PartStorage::price_holds`).
                Some(_) if price.is_some_and(|p| !state.data.price_holds(&op.key, p)) => {
                    Some(Refusal::PriceChanged)
                }
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
                if let Some(price) = price {
                    data.repricing.insert(txn, price);
                }
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
        // To whoever asked: with a replicated coordinator, the replica
        // leading. (Before the acks this save releases: a runtime sends in
        // this order, and the vote is what a buyer waits for.)
        save_then(state, o, Some((src, Msg::Vote { txn, ballot })));
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
            Timer::Flush => {
                if !state.acks_after_save.is_empty() {
                    save(state, o);
                }
            }
            // Other roles' timers are never set by a participant.
            Timer::Retry | Timer::Votes(_) | Timer::Resend(_) | Timer::Learn | Timer::Replica => {}
        }
    }
}

/// A prepare as a participant reads it, whichever message carried it.
struct Prepared {
    txn: TxnId,
    req: RequestId,
    change: Change,
    /// The transaction's participants (a credit's; `None` on `Prepare`).
    parties: Option<Vec<Id>>,
    /// The buyer's price (a hold) or the new price (a credit), on
    /// `PreparePriced` only.
    price: Option<Amount>,
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

#[cfg(test)]
#[path = "participant_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "participant_ignores_tests.rs"]
mod ignores_tests;

#[cfg(test)]
#[path = "participant_credit_tests.rs"]
mod credit_tests;

#[cfg(test)]
#[path = "participant_price_tests.rs"]
mod price_tests;
