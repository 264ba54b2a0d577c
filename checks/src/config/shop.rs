//! The prices client's requests (`Config::prices`, docs/shop.md).

use super::{Config, SKU};
use twopc_model::client::{Mode, Request};
use twopc_model::*;

impl Config {
    /// With `prices`, the sku's price in the order service's catalogue at
    /// first start: one more than `price`, the price the clients buy at,
    /// which only the prices client's restock sets (a price cut).
    pub fn catalogue_price(&self) -> u64 {
        self.price + 1
    }

    /// The prices requests (`Config::prices`), made by the first client
    /// before its purchases: a restock of one unit of the sku that sets
    /// its price to `price`. Its purchases then commit at the new price
    /// once it committed, and abort `price_changed` if it did not (a vote
    /// timeout: the catalogue still says [`Config::catalogue_price`]).
    pub fn price_requests(&self) -> Vec<Request> {
        if !self.prices {
            return Vec::new();
        }
        vec![Request {
            req: RequestId::new("reprice"),
            op: Operation::PricedRestock {
                sku: SKU.into(),
                qty: 1,
                price: self.price,
            },
            mode: Mode::New,
        }]
    }
}

/// The `prices` entry of the CI matrix: one client: a restock that sets
/// the sku's price, then a purchase at that price.
pub fn prices() -> Config {
    Config {
        clients: 1,
        prices: true,
        ..Config::default()
    }
}

/// The most refund requests a configuration makes (`Config::refunds`).
pub const REFUNDS_MAX: usize = 4;

impl Config {
    /// The refund requests (`Config::refunds`): the first `refunds` of a
    /// refund of one unit of the first client's first purchase, a refund
    /// of the whole purchase (which exceeds it once the first refund
    /// committed, and is the whole refund when that one aborted), a retry
    /// of the first (same id and contents: the same answer, made as a
    /// fresh incarnation would, without a ticket), and a refund of a
    /// purchase never made (`unknown_purchase`). A purchase that aborted (a vote
    /// timeout) makes them `not_committed`.
    pub fn refund_requests(&self) -> Vec<Request> {
        let refund = |id: &str, of: RequestId, qty, mode| Request {
            req: RequestId::new(id),
            op: Operation::Refund { purchase: of, qty },
            mode,
        };
        let bought = Config::req(0, 0);
        let all = [
            refund("refund-1", bought.clone(), Some(1), Mode::New),
            refund("refund-all", bought.clone(), None, Mode::New),
            refund("refund-1", bought, Some(1), Mode::Retry),
            refund("refund-none", RequestId::new("never"), Some(1), Mode::New),
        ];
        all.into_iter().take(self.refunds).collect()
    }

    /// How many distinct ids the refund requests use.
    pub fn refund_ids(&self) -> usize {
        let mut ids: Vec<RequestId> = self.refund_requests().into_iter().map(|r| r.req).collect();
        ids.sort();
        ids.dedup();
        ids.len()
    }
}

/// The `refunds` entry of the CI matrix: one client buys two units, then
/// refunds one. (A second refund took it past 1.7 million states and the
/// CI budget: docs/checking.md.)
pub fn refunds() -> Config {
    Config {
        clients: 1,
        qty: 2,
        balance: 12,
        refunds: 1,
        ..Config::default()
    }
}
