//! What actors promised on the wire, recorded from their outgoing messages
//! (stateright's auxiliary history). The properties compare these promises
//! with what is on disk; since participants forget what the coordinator's
//! floor settles, the history is also where the checker still finds what a
//! participant applied.
//!
//! The history is part of every state the checker stores, hashes and clones,
//! so its sets of transactions are bit sets: a promise about a small
//! transaction is one bit of a `u128`, and only ids too large for that
//! (configurations beyond the CI matrix) fall back to an ordinary set, empty
//! otherwise. (Request ids are caller-chosen strings: the few decided ones
//! are an ordinary set.) The history itself is shared: a clone is a
//! reference count.

use crate::config::{Config, WALLET};
use crate::shared::Shared;
use serde::Serialize;
use stateright::actor::{Envelope, Id};
use std::collections::{BTreeMap, BTreeSet};

use twopc_model::{Ballot, Change, Msg, RequestId, TxnId, Verdict};

/// Something that has a place in a 128-bit set when it is small enough.
pub trait Slot: Ord + Copy {
    /// Its bit, if it has one.
    fn slot(&self) -> Option<u32>;
    /// The value whose bit is `slot`.
    fn from_slot(slot: u32) -> Self;
}

/// A set of small values as bits, with an overflow set for the others.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct BitSet<T: Slot> {
    bits: u128,
    overflow: BTreeSet<T>,
}

impl<T: Slot> Default for BitSet<T> {
    fn default() -> Self {
        BitSet {
            bits: 0,
            overflow: BTreeSet::new(),
        }
    }
}

impl<T: Slot> BitSet<T> {
    /// Whether `x` is in the set.
    pub fn contains(&self, x: &T) -> bool {
        match x.slot() {
            Some(i) => self.bits & (1 << i) != 0,
            None => self.overflow.contains(x),
        }
    }

    /// Adds `x`.
    pub fn insert(&mut self, x: T) {
        match x.slot() {
            Some(i) => self.bits |= 1 << i,
            None => {
                self.overflow.insert(x);
            }
        }
    }

    /// Every member.
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        let mut bits = self.bits;
        std::iter::from_fn(move || {
            (bits != 0).then(|| {
                let i = bits.trailing_zeros();
                bits &= bits - 1;
                T::from_slot(i)
            })
        })
        .chain(self.overflow.iter().copied())
    }
}

// Transactions: epochs 1..=8, attempts 0..16 within an epoch.
const TXN_N: u64 = 16;
const TXN_EPOCHS: u64 = 8;

impl Slot for TxnId {
    fn slot(&self) -> Option<u32> {
        let e = self.epoch.checked_sub(1)?;
        (e < TXN_EPOCHS && self.n < TXN_N).then(|| (e * TXN_N + self.n) as u32)
    }
    fn from_slot(slot: u32) -> Self {
        TxnId {
            epoch: slot as u64 / TXN_N + 1,
            n: slot as u64 % TXN_N,
        }
    }
}

/// A promise of a participant about a transaction: (participant, txn).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ByParticipant(pub Id, pub TxnId);

impl Slot for ByParticipant {
    fn slot(&self) -> Option<u32> {
        // Two participants, epochs 1..=4, attempts 0..16.
        let p = usize::from(self.0).checked_sub(WALLET)? as u32;
        let t = self.1.slot()?;
        (p < 2 && t < 64).then_some(p * 64 + t)
    }
    fn from_slot(slot: u32) -> Self {
        ByParticipant(
            Id::from(WALLET + (slot / 64) as usize),
            TxnId::from_slot(slot % 64),
        )
    }
}

/// What actors promised on the wire, and what the checker judged at a step
/// (a refusal) that no later state could show.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct History {
    /// Every yes vote sent.
    pub yes_votes: BitSet<ByParticipant>,
    /// Every commit ack sent. A participant acks only a commit it applied,
    /// in the same step, so after it forgets a finished transaction (the
    /// coordinator's floor settled it) the ack still says it was applied.
    pub acks: BitSet<ByParticipant>,
    /// Every transaction whose commit the coordinator revealed.
    pub commits_sent: BitSet<TxnId>,
    /// Every request id whose decision (committed or aborted) the
    /// coordinator revealed.
    pub outcomes_sent: BTreeSet<RequestId>,
    /// What each participant was asked to hold or credit for each
    /// transaction (the request and the change), so that what it applied
    /// can still be summed after it forgot the transaction, and so that a
    /// transaction's participants are known (those asked).
    pub prepared: BTreeMap<ByParticipant, (RequestId, Change)>,
    /// The decisions revealed before the coordinator lost its disk: gone
    /// with it, so `durable` no longer asks the coordinator for them (the
    /// participants still must hold what they promised).
    pub outcomes_lost: BTreeSet<RequestId>,
    /// How many times the coordinator has lost its disk (the restart
    /// budget of a configuration where every crash loses it: a coordinator
    /// on an empty disk starts its epochs again, so they cannot count).
    pub disk_losses: u8,
    /// A participant refused a prepare for want of funds or stock while
    /// counting a hold that was dead: of an older epoch and not a commit the
    /// coordinator still owes (see `TwopcModel::judge_refusal`).
    pub false_refusal: bool,
    /// A participant refused a prepare for want of funds or stock because of
    /// a live hold (the `sometimes` that keeps the refusal property honest).
    pub live_hold_refusal: bool,
    /// The order service held a purchase at a price other than the sku's
    /// price when it prepared it (see `TwopcModel::judge_price`).
    pub off_price: bool,
    /// The terms replicas asked pre-votes for (with early timers only,
    /// `--elections` above 0): each replica's timer fires early at most
    /// once per term it could ask for (see `TwopcModel::may_campaign`).
    pub pre_votes: BTreeSet<twopc_model::Term>,
    /// The replica that lost its disk (`--lose-replica-disk`), by actor
    /// index, with the decisions revealed before it did.
    pub replica_disk_lost: Option<(u8, BTreeSet<RequestId>)>,
}

/// Whether `o` tells a decision (committed or aborted), which the
/// coordinator must have made durable, rather than a refusal or "unknown".
fn decided(o: &twopc_model::Outcome) -> bool {
    matches!(o.verdict, Verdict::Committed | Verdict::Aborted(_))
}

/// stateright's `record_msg_out` hook: the history after `env` was sent, or
/// `None` when it records nothing new. The history is [`Shared`]: it changes
/// rarely and is copied with every state.
pub fn record_out(
    cfg: &Config,
    h: &Shared<History>,
    env: Envelope<&Shared<Msg>>,
) -> Option<Shared<History>> {
    let by = |t: &TxnId| ByParticipant(env.src, *t);
    // Most sends repeat a promise already recorded: look before copying.
    let new = match &**env.msg {
        Msg::Vote {
            txn,
            ballot: Ballot::Yes,
        } => !h.yes_votes.contains(&by(txn)),
        Msg::Ack { txn } => !h.acks.contains(&by(txn)),
        Msg::Commit { txn } => !h.commits_sent.contains(txn),
        Msg::Outcome(o) => decided(o) && !h.outcomes_sent.contains(&o.req),
        Msg::Prepare { txn, .. }
        | Msg::PrepareCredit { txn, .. }
        | Msg::PreparePriced { txn, .. } => !h.prepared.contains_key(&ByParticipant(env.dst, *txn)),
        Msg::PreVote { term } => cfg.elections > 0 && !h.pre_votes.contains(term),
        _ => false,
    };
    if !new {
        return None;
    }
    let mut next = (**h).clone();
    match &**env.msg {
        Msg::Vote { txn, .. } => next.yes_votes.insert(by(txn)),
        Msg::Ack { txn } => next.acks.insert(by(txn)),
        Msg::Commit { txn } => next.commits_sent.insert(*txn),
        Msg::Outcome(o) => {
            next.outcomes_sent.insert(o.req.clone());
        }
        Msg::Prepare { txn, req, op, .. } => {
            let change = Change::Hold(op.clone());
            next.prepared
                .insert(ByParticipant(env.dst, *txn), (req.clone(), change));
        }
        Msg::PrepareCredit { txn, req, op, .. } => {
            let change = Change::Credit(op.clone());
            next.prepared
                .insert(ByParticipant(env.dst, *txn), (req.clone(), change));
        }
        Msg::PreparePriced {
            txn, req, change, ..
        } => {
            next.prepared
                .insert(ByParticipant(env.dst, *txn), (req.clone(), change.clone()));
        }
        Msg::PreVote { term } => {
            next.pre_votes.insert(*term);
        }
        _ => unreachable!("only new promises reach here"),
    }
    Some(Shared::new(next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_ids_are_bits_and_large_ones_overflow_and_both_round_trip() {
        let mut s = BitSet::default();
        let small = TxnId { epoch: 2, n: 3 };
        let large = TxnId { epoch: 9, n: 40 };
        s.insert(small);
        s.insert(large);
        assert!(s.contains(&small) && s.contains(&large));
        assert!(!s.contains(&TxnId { epoch: 2, n: 4 }));
        assert_eq!(s.overflow.len(), 1);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![small, large]);

        let mut p = BitSet::default();
        let vote = ByParticipant(Id::from(2), small);
        p.insert(vote);
        assert_eq!(p.iter().collect::<Vec<_>>(), vec![vote]);
        assert!(p.overflow.is_empty());
    }
}
