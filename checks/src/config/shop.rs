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
