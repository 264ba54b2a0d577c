//! Who buys what in a bench run, and how much money and stock the cluster
//! starts with so that every purchase can commit.

use super::mix::{Mix, OpKind};
use crate::runtime::initial::Levels;
use twopc_model::{Operation, Purchase, RequestId};

/// How purchases are spread over users and skus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spread {
    /// Each client buys as its own user, skus in turn from eight (the
    /// bench's original workload, without `--accounts` or `--hot`).
    PerClient,
    /// `n` users and `n` skus; each purchase picks a user and a sku
    /// uniformly (a fixed pseudo-random sequence, the same every run).
    Uniform(usize),
    /// `n` users and `n` skus exist; every purchase is on the first user
    /// and the first sku.
    Hot(usize),
}

impl Spread {
    /// How many users and skus exist (`None`: per client).
    pub fn accounts(self) -> Option<usize> {
        match self {
            Spread::PerClient => None,
            Spread::Uniform(n) | Spread::Hot(n) => Some(n),
        }
    }

    /// The spread's name in the table's heading.
    pub fn describe(self) -> String {
        match self {
            Spread::PerClient => "each client its own user, 8 skus".into(),
            Spread::Uniform(n) => {
                format!("uniform over {n} users and {n} skus")
            }
            Spread::Hot(n) => {
                format!("hot: every purchase on one user and one sku (of {n} each)")
            }
        }
    }
}

/// A bench run's initial data and purchases.
#[derive(Clone, Debug)]
pub struct Workload {
    /// How purchases are spread.
    pub spread: Spread,
    /// The wallet's balances.
    pub accounts: Levels,
    /// The order service's stock.
    pub stock: Levels,
}

/// Purchases are of one unit at price 1, so a user or sku funded with this
/// many more than the run's purchases covers every purchase, even if all
/// fall on it.
const SLACK: u64 = 1000;

impl Workload {
    /// The workload of `spread` for up to `clients` clients making `total`
    /// purchases (plus a warm-up) between them.
    pub fn new(spread: Spread, clients: usize, total: usize) -> Workload {
        let (users, skus, fund) = match spread {
            Spread::PerClient => (clients, 8, u64::MAX / 4),
            Spread::Uniform(n) | Spread::Hot(n) => (n.max(1), n.max(1), total as u64 + SLACK),
        };
        Workload {
            spread,
            accounts: (0..users).map(|u| (user(spread, u), fund)).collect(),
            stock: (0..skus).map(|s| (sku(spread, s), fund)).collect(),
        }
    }

    /// The operations client number `client` makes, one per id of `ids`
    /// (the id each is made under), in order, of the kinds `mix` draws (a
    /// fixed pseudo-random sequence): a purchase as [`Self::purchases`]
    /// makes it, a top-up of 1 to its user, a restock of 1 to its sku, a
    /// refund of the client's latest purchase not refunded yet (its whole
    /// quantity, 1). A refund drawn before any such purchase is a purchase
    /// (so a run of refunds alone is purchases and refunds in turn).
    /// Purchases only: exactly `purchases`.
    pub fn ops(&self, client: usize, ids: &[RequestId], mix: &Mix) -> Vec<(OpKind, Operation)> {
        let purchases = self.purchases(client, ids.len());
        if mix.is_purchases_only() {
            let kind = OpKind::Purchase;
            return purchases.into_iter().map(|p| (kind, p.into())).collect();
        }
        let mut refundable: Vec<&RequestId> = Vec::new();
        (purchases.into_iter().enumerate())
            .map(|(i, p)| {
                let r = splitmix64(((client as u64) << 32) ^ i as u64 ^ 0x006d_6978);
                let kind = match mix.pick(r) {
                    OpKind::Refund if refundable.is_empty() => OpKind::Purchase,
                    kind => kind,
                };
                let op = match kind {
                    OpKind::Purchase => {
                        refundable.push(&ids[i]);
                        p.into()
                    }
                    OpKind::Topup => Operation::TopUp {
                        user: p.user,
                        amount: 1,
                    },
                    OpKind::Restock => Operation::Restock { sku: p.sku, qty: 1 },
                    OpKind::Refund => Operation::Refund {
                        purchase: refundable.pop().expect("not empty").clone(),
                        qty: None,
                    },
                };
                (kind, op)
            })
            .collect()
    }

    /// The `each` purchases client number `client` makes, in order.
    pub fn purchases(&self, client: usize, each: usize) -> Vec<Purchase> {
        (0..each)
            .map(|i| {
                let (u, s) = match self.spread {
                    Spread::PerClient => (client, (client + i) % 8),
                    Spread::Hot(_) => (0, 0),
                    Spread::Uniform(n) => {
                        let r = splitmix64(((client as u64) << 32) | i as u64);
                        let n = n.max(1) as u64;
                        ((r % n) as usize, ((r >> 32) % n) as usize)
                    }
                };
                Purchase {
                    user: user(self.spread, u),
                    sku: sku(self.spread, s),
                    qty: 1,
                    price: 1,
                }
            })
            .collect()
    }
}

fn user(spread: Spread, u: usize) -> String {
    match spread {
        Spread::PerClient => format!("user{u:02}"),
        Spread::Uniform(_) | Spread::Hot(_) => format!("user{u}"),
    }
}

fn sku(spread: Spread, s: usize) -> String {
    match spread {
        Spread::PerClient => format!("sku{s:02}"),
        Spread::Uniform(_) | Spread::Hot(_) => format!("sku{s}"),
    }
}

/// A fixed pseudo-random mix of `x` (SplitMix64's finaliser).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_purchase_is_on_a_funded_user_and_sku() {
        for spread in [Spread::PerClient, Spread::Uniform(1000), Spread::Hot(10)] {
            let w = Workload::new(spread, 4, 400);
            for c in 0..4 {
                for p in w.purchases(c, 100) {
                    assert!(w.accounts[&p.user] >= 400, "{spread:?} {p:?}");
                    assert!(w.stock[&p.sku] >= 400, "{spread:?} {p:?}");
                }
            }
        }
    }

    /// Each refund names an earlier purchase of the same client, by its id,
    /// and no purchase twice; a refund drawn before any purchase is one.
    #[test]
    fn a_refund_gives_back_an_earlier_purchase_of_its_client_once() {
        let w = Workload::new(Spread::PerClient, 2, 400);
        let mix = Mix::parse("purchase=2,refund=3,topup=1").unwrap();
        let ids: Vec<RequestId> = (0..200).map(|i| RequestId::new(format!("r{i}"))).collect();
        let ops = w.ops(1, &ids, &mix);
        let mut bought = std::collections::BTreeSet::new();
        let mut refunds = 0;
        for (i, (kind, op)) in ops.iter().enumerate() {
            match (kind, op) {
                (OpKind::Purchase, Operation::Purchase(_)) => {
                    bought.insert(ids[i].clone());
                }
                (OpKind::Refund, Operation::Refund { purchase, qty }) => {
                    assert!(
                        bought.remove(purchase),
                        "{i}: {purchase:?} not bought before"
                    );
                    assert_eq!(*qty, None);
                    refunds += 1;
                }
                (OpKind::Topup, Operation::TopUp { .. }) => {}
                other => panic!("{i}: {other:?}"),
            }
        }
        assert_eq!(ops[0].0, OpKind::Purchase, "nothing to refund yet");
        assert!(refunds > 50, "{refunds} refunds");
    }

    #[test]
    fn uniform_purchases_spread_and_hot_ones_do_not() {
        let w = Workload::new(Spread::Uniform(1000), 2, 2000);
        let users: std::collections::BTreeSet<_> = (0..2)
            .flat_map(|c| w.purchases(c, 1000))
            .map(|p| p.user)
            .collect();
        assert!(users.len() > 800, "{} distinct users", users.len());
        let w = Workload::new(Spread::Hot(1000), 2, 2000);
        assert_eq!(w.accounts.len(), 1000);
        assert!((0..2)
            .flat_map(|c| w.purchases(c, 50))
            .all(|p| p.user == "user0" && p.sku == "sku0"));
    }
}
