//! [`KeyView`]: one account's or one sku's standing at a participant, as
//! `twopc account`, `twopc sku` and `GET /accounts/{user}`, `GET
//! /skus/{sku}` show it. Built by the runtime from the participant's state
//! (never a protocol message), like [`super::NodeView`].

use super::{HoldView, MAX_LISTED};
use crate::runtime::storage::{Change, Journal};
use serde::{Deserialize, Serialize};
use twopc_model::PartStorage;

/// How many of a key's last committed changes a view lists.
pub const LAST_LISTED: usize = 10;

/// How many of the journal's newest entries a view looks through for them
/// (whatever the journal's length: a key with no change among them lists
/// none, however many older ones the journal keeps).
pub const LAST_SCANNED: usize = 1_000;

/// One key (a user's account at the wallet, a sku at the order service).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyView {
    /// The node's name in the cluster file.
    pub node: String,
    /// The account or sku asked about.
    pub key: String,
    /// The committed level (balance or stock), net of committed purchases
    /// only; `None`: no such account or sku at this participant.
    pub level: Option<u64>,
    /// The sum of this key's prepared, undecided holds.
    pub held: u64,
    /// What a new purchase can still take: `level - held` (0 if the holds
    /// cover it all).
    pub available: u64,
    /// The first [`MAX_LISTED`] holds of this key, in transaction order.
    pub holds: Vec<HoldView>,
    /// How many holds this key has (listed or not).
    pub holds_total: usize,
    /// The sum of this key's prepared, undecided credits (top-ups,
    /// restocks): added to the level only at their commit, so counted in
    /// neither `level` nor `available` (docs/shop.md). A key that exists
    /// only as a pending credit has `level: None`: it exists from the
    /// commit on.
    pub credited: u64,
    /// The first credits of this key, in transaction order: as many as
    /// the holds leave of [`MAX_LISTED`] (so that a reply still fits in a
    /// datagram).
    pub credits: Vec<HoldView>,
    /// How many credits this key has (listed or not).
    pub credits_total: usize,
    /// The sku's price per unit (order service); `None`: no price (a
    /// purchase of it commits at any price) or a wallet's account.
    pub price: Option<u64>,
    /// Prepared, undecided price changes of this sku (priced restocks,
    /// each also a credit), in transaction order: as many as the holds and
    /// credits leave of [`MAX_LISTED`].
    pub repricing: Vec<PriceChangeView>,
    /// How many price changes are pending (listed or not).
    pub repricing_total: usize,
    /// The key's last committed changes, newest first, from the journal:
    /// at most [`LAST_LISTED`], found among its newest [`LAST_SCANNED`]
    /// entries (none at a node that keeps no journal). Each with its
    /// journal position.
    pub last: Vec<(u64, Change)>,
}

/// A prepared price change: the priced restock's transaction and the price
/// it sets at commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceChangeView {
    /// The transaction, `epoch.n`.
    pub txn: String,
    /// The price it sets at commit.
    pub price: u64,
}

impl KeyView {
    /// The view of `key` at the participant `node` whose state is `data`.
    pub fn of(node: &str, key: &str, data: &PartStorage) -> KeyView {
        let level = data.levels.get(key).copied();
        let mine = || data.holds.iter().filter(|(_, h)| h.op.key == key);
        let held = data.held(key);
        let credits = || data.credits.iter().filter(|(_, c)| c.op.key == key);
        let listed = mine().take(MAX_LISTED).count();
        let credits_listed = credits().take(MAX_LISTED - listed).count();
        // A pending price change's sku is its credit's.
        let repricing = || {
            data.repricing
                .iter()
                .filter(|(txn, _)| data.credits.get(*txn).is_some_and(|c| c.op.key == key))
        };
        KeyView {
            node: node.to_string(),
            key: key.to_string(),
            level,
            held,
            available: level.unwrap_or(0).saturating_sub(held),
            holds: mine()
                .take(MAX_LISTED)
                .map(|(txn, h)| HoldView::of(txn, h))
                .collect(),
            holds_total: mine().count(),
            credited: credits().fold(0u64, |sum, (_, c)| sum.saturating_add(c.op.amount)),
            credits: credits()
                .take(MAX_LISTED - listed)
                .map(|(txn, c)| HoldView {
                    txn: txn.to_string(),
                    req: c.req.to_string(),
                    key: c.op.key.clone(),
                    amount: c.op.amount,
                })
                .collect(),
            credits_total: credits().count(),
            price: data.prices.get(key).copied(),
            repricing: repricing()
                .take(MAX_LISTED - listed - credits_listed)
                .map(|(txn, price)| PriceChangeView {
                    txn: txn.to_string(),
                    price: *price,
                })
                .collect(),
            repricing_total: repricing().count(),
            last: Vec::new(),
        }
    }

    /// The view with `key`'s last changes from `journal` (see
    /// [`KeyView::last`]).
    pub fn with_last(mut self, journal: Option<&Journal>) -> KeyView {
        if let Some(j) = journal {
            self.last = j.last_of(&self.key, LAST_LISTED, LAST_SCANNED);
        }
        self
    }
}
