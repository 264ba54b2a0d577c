//! Who buys what: the same users, skus, funds and pseudo-random sequence as
//! `twopc bench --accounts N [--hot]` (node/src/ops/bench/workload.rs), so
//! both sides make the same purchases.

/// Funds beyond the run's purchases on every user and sku (the bench's
/// `SLACK`): every purchase commits even if all fall on one key.
pub const SLACK: i64 = 1000;

/// Purchases of the unmeasured warm-up, made by client 0 (as the bench).
pub const WARM_UP: usize = 20;

/// One purchase: one unit at price 1, as the bench makes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Purchase {
    pub user: usize,
    pub sku: usize,
    pub qty: i64,
    pub price: i64,
}

/// How purchases spread over `accounts` users and as many skus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workload {
    pub accounts: usize,
    pub hot: bool,
    /// Each user's balance and each sku's stock at the start.
    pub fund: i64,
}

impl Workload {
    /// The workload of a run of `purchases` purchases.
    pub fn new(accounts: usize, hot: bool, purchases: u64) -> Workload {
        Workload {
            accounts: accounts.max(1),
            hot,
            fund: purchases as i64 + SLACK,
        }
    }

    /// The bench's words for it.
    pub fn describe(&self) -> String {
        let n = self.accounts;
        if self.hot {
            format!("hot: every purchase on one user and one sku (of {n} each)")
        } else {
            format!("uniform over {n} users and {n} skus")
        }
    }

    /// The `each` purchases client number `client` makes, in order.
    pub fn purchases(&self, client: usize, each: usize) -> Vec<Purchase> {
        (0..each)
            .map(|i| {
                let (user, sku) = if self.hot {
                    (0, 0)
                } else {
                    let r = splitmix64(((client as u64) << 32) | i as u64);
                    let n = self.accounts as u64;
                    ((r % n) as usize, ((r >> 32) % n) as usize)
                };
                Purchase {
                    user,
                    sku,
                    qty: 1,
                    price: 1,
                }
            })
            .collect()
    }
}

/// The name of user `u` (the bench's `user{u}`).
pub fn user(u: usize) -> String {
    format!("user{u}")
}

/// The name of sku `s`.
pub fn sku(s: usize) -> String {
    format!("sku{s}")
}

/// SplitMix64's finaliser, as the bench's.
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
    fn uniform_spreads_and_hot_does_not() {
        let w = Workload::new(1000, false, 2000);
        let users: std::collections::BTreeSet<_> = (0..2)
            .flat_map(|c| w.purchases(c, 1000))
            .map(|p| p.user)
            .collect();
        assert!(users.len() > 800, "{} distinct users", users.len());
        assert!(users.iter().all(|&u| u < 1000));
        let w = Workload::new(1000, true, 2000);
        assert!(w.purchases(3, 50).iter().all(|p| (p.user, p.sku) == (0, 0)));
        assert_eq!(w.fund, 3000);
    }

    #[test]
    fn the_sequence_is_the_bench_s() {
        // Pinned from twopc's workload.rs (same constants): client 0's first
        // purchase over 1000 accounts.
        let r = splitmix64(0);
        assert_eq!(r, 0xE220_A839_7B1D_CDAF);
        let p = &Workload::new(1000, false, 1).purchases(0, 1)[0];
        assert_eq!(
            (p.user, p.sku),
            ((r % 1000) as usize, ((r >> 32) % 1000) as usize)
        );
    }
}
