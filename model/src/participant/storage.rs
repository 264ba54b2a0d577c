//! What a participant's durable state answers: what is held, pending,
//! priced, and what it knows of a transaction.

use super::PartStorage;
use crate::msg::*;

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

    /// [`Self::highest_epoch`] as a participant of the one-write protocol
    /// tells it: a floor at the very start of an epoch (`n` 0) is what
    /// answering that epoch's `AskEpoch` raised it to, or the first
    /// prepare of it, which left a record of its own; by itself it does
    /// not show the epoch used, only asked.
    pub fn highest_used_epoch(&self) -> u64 {
        let floor = match self.floor.n {
            0 => self.floor.epoch.saturating_sub(1),
            _ => self.floor.epoch,
        };
        let last = |m: Option<TxnId>| m.map_or(0, |t| t.epoch);
        floor
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
        self.fates_told(false)
    }

    /// [`Self::fates`], naming the debit held or applied with each hold
    /// and each commit when `changes` (one write: a restarted coordinator
    /// rebuilds from them the purchases it told and never saved).
    pub fn fates_told(&self, changes: bool) -> Vec<(TxnId, Fate)> {
        let held = self
            .holds
            .iter()
            .map(move |(t, h)| match changes {
                true => (*t, Fate::HeldFor(h.req.clone(), h.op.clone())),
                false => (*t, Fate::Held(h.req.clone())),
            })
            .chain(
                self.credits
                    .iter()
                    .map(|(t, c)| (*t, Fate::HeldAmong(c.req.clone(), c.parties.clone()))),
            );
        let finished = self.finished.iter().map(move |(t, f)| {
            let fate = match (f.committed, &f.req, &f.op) {
                (true, Some(req), Some(op)) if changes => {
                    Fate::CommittedFor(req.clone(), op.clone())
                }
                (true, ..) => Fate::Committed,
                (false, ..) => Fate::Aborted,
            };
            (*t, fate)
        });
        let mut all: Vec<_> = held.chain(finished).collect();
        all.sort();
        all
    }

    /// Whether a purchase of `key` at `price` per unit is at the catalogue
    /// price: the sku's price is `price` or it has none, and every price
    /// change prepared on it (undecided) sets `price` too.
    pub fn price_holds(&self, key: &str, price: Amount) -> bool {
        self.prices.get(key).is_none_or(|p| *p == price)
            && self
                .repricing
                .iter()
                .filter(|(t, _)| self.credits.get(*t).is_some_and(|c| c.op.key == key))
                .all(|(_, p)| *p == price)
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
