//! Conservation after a run: every balance and every stock is what it
//! started at minus what committed purchases took, none is negative, and
//! nothing is left prepared. Pure: the numbers come from `pg.rs`.

use crate::workload::{sku, user, Purchase};
use std::collections::BTreeMap;

/// A table's levels by key (balances by user, stock by sku).
pub type Levels = BTreeMap<String, i64>;

/// What committed purchases took, by key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Taken {
    pub committed: u64,
    pub money: BTreeMap<String, i64>,
    pub stock: BTreeMap<String, i64>,
}

impl Taken {
    /// Records one committed purchase.
    pub fn add(&mut self, p: &Purchase) {
        self.committed += 1;
        *self.money.entry(user(p.user)).or_default() += p.qty * p.price;
        *self.stock.entry(sku(p.sku)).or_default() += p.qty;
    }

    /// Adds what another run (or client) took.
    pub fn merge(&mut self, other: &Taken) {
        self.committed += other.committed;
        for (k, v) in &other.money {
            *self.money.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.stock {
            *self.stock.entry(k.clone()).or_default() += v;
        }
    }
}

/// The totals a passed check prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conserved {
    pub money_initial: i64,
    pub money_now: i64,
    pub money_spent: i64,
    pub stock_initial: i64,
    pub stock_now: i64,
    pub stock_sold: i64,
}

/// Checks one table: each key's level is `initial - taken`, no level is
/// negative, no key appeared or vanished. Returns (initial, now, taken)
/// totals, or every discrepancy (at most 10 named).
fn table(
    what: &str,
    initial: &Levels,
    taken: &BTreeMap<String, i64>,
    now: &Levels,
) -> Result<(i64, i64, i64), Vec<String>> {
    let mut wrong = Vec::new();
    for k in taken.keys().filter(|k| !initial.contains_key(*k)) {
        wrong.push(format!("{what}: {k} was taken from but never existed"));
    }
    for (k, start) in initial {
        let took = taken.get(k).copied().unwrap_or(0);
        match now.get(k) {
            None => wrong.push(format!("{what}: {k} is missing")),
            Some(&level) if level != start - took => wrong.push(format!(
                "{what}: {k} is {level}, expected {start} - {took} = {}",
                start - took
            )),
            Some(&level) if level < 0 => wrong.push(format!("{what}: {k} is negative ({level})")),
            Some(_) => {}
        }
    }
    for k in now.keys().filter(|k| !initial.contains_key(*k)) {
        wrong.push(format!("{what}: {k} appeared"));
    }
    let sum = |m: &Levels| m.values().sum::<i64>();
    let (i, n, t) = (sum(initial), sum(now), taken.values().sum::<i64>());
    if i - t != n {
        wrong.push(format!(
            "{what}: total is {n}, expected {i} - {t} = {}",
            i - t
        ));
    }
    match wrong.is_empty() {
        true => Ok((i, n, t)),
        false => Err(wrong),
    }
}

/// The whole check: both tables against what committed purchases took, and
/// no transaction left prepared on either server.
pub fn conservation(
    initial: (&Levels, &Levels),
    taken: &Taken,
    now: (&Levels, &Levels),
    prepared: (i64, i64),
) -> Result<Conserved, String> {
    let money = table("wallet", initial.0, &taken.money, now.0);
    let stock = table("order", initial.1, &taken.stock, now.1);
    let mut wrong = Vec::new();
    if let Err(w) = &money {
        wrong.extend(w.iter().cloned());
    }
    if let Err(w) = &stock {
        wrong.extend(w.iter().cloned());
    }
    if prepared != (0, 0) {
        wrong.push(format!(
            "transactions left prepared: wallet {}, order {}",
            prepared.0, prepared.1
        ));
    }
    match (money, stock) {
        (Ok(m), Ok(s)) if wrong.is_empty() => Ok(Conserved {
            money_initial: m.0,
            money_now: m.1,
            money_spent: m.2,
            stock_initial: s.0,
            stock_now: s.1,
            stock_sold: s.2,
        }),
        _ => {
            let more = wrong.len().saturating_sub(10);
            wrong.truncate(10);
            if more > 0 {
                wrong.push(format!("and {more} more"));
            }
            Err(format!("NOT CONSERVED:\n  {}", wrong.join("\n  ")))
        }
    }
}

/// The levels every key starts at.
pub fn funded(prefix: fn(usize) -> String, accounts: usize, fund: i64) -> Levels {
    (0..accounts).map(|i| (prefix(i), fund)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> (Levels, Levels, Taken) {
        let mut taken = Taken::default();
        for (u, s) in [(0, 1), (0, 2), (2, 1)] {
            taken.add(&Purchase {
                user: u,
                sku: s,
                qty: 2,
                price: 3,
            });
        }
        (funded(user, 3, 100), funded(sku, 3, 10), taken)
    }

    fn after(initial: &Levels, taken: &BTreeMap<String, i64>) -> Levels {
        let mut now = initial.clone();
        for (k, v) in taken {
            *now.get_mut(k).unwrap() -= v;
        }
        now
    }

    #[test]
    fn right_numbers_pass_with_their_totals() {
        let (w, o, t) = run();
        let (wn, on) = (after(&w, &t.money), after(&o, &t.stock));
        let c = conservation((&w, &o), &t, (&wn, &on), (0, 0)).unwrap();
        assert_eq!(c.money_initial, 300);
        assert_eq!((c.money_spent, c.money_now), (18, 282));
        assert_eq!((c.stock_sold, c.stock_now), (6, 24));
        assert_eq!(t.committed, 3);
    }

    #[test]
    fn wrong_numbers_fail_loudly() {
        let (w, o, t) = run();
        let (wn, on) = (after(&w, &t.money), after(&o, &t.stock));
        let fails = |wn: &Levels, on: &Levels, t: &Taken, prepared, says: &str| {
            let e = conservation((&w, &o), t, (wn, on), prepared).unwrap_err();
            assert!(e.starts_with("NOT CONSERVED"), "{e}");
            assert!(e.contains(says), "{says}: {e}");
        };
        // One debit applied twice at the wallet.
        let mut twice = wn.clone();
        *twice.get_mut("user0").unwrap() -= 6;
        fails(
            &twice,
            &on,
            &t,
            (0, 0),
            "user0 is 82, expected 100 - 12 = 88",
        );
        // A sale lost at the order service.
        let mut lost = on.clone();
        *lost.get_mut("sku2").unwrap() += 2;
        fails(
            &wn,
            &lost,
            &t,
            (0, 0),
            "order: total is 26, expected 30 - 6 = 24",
        );
        // Money moved between users: each user wrong, the total right.
        let mut moved = wn.clone();
        *moved.get_mut("user0").unwrap() += 1;
        *moved.get_mut("user1").unwrap() -= 1;
        fails(
            &moved,
            &on,
            &t,
            (0, 0),
            "user1 is 99, expected 100 - 0 = 100",
        );
        // The harness counted one commit too few.
        let mut fewer = Taken::default();
        fewer.add(&Purchase {
            user: 0,
            sku: 1,
            qty: 2,
            price: 3,
        });
        fails(
            &wn,
            &on,
            &fewer,
            (0, 0),
            "wallet: total is 282, expected 300 - 6 = 294",
        );
        // A transaction left prepared.
        fails(&wn, &on, &t, (1, 0), "left prepared: wallet 1, order 0");
        // A key gone, or a new one.
        let mut gone = wn.clone();
        gone.remove("user1");
        fails(&gone, &on, &t, (0, 0), "user1 is missing");
        let mut new = on.clone();
        new.insert("sku9".into(), 0);
        fails(&wn, &new, &t, (0, 0), "sku9 appeared");
    }

    #[test]
    fn a_negative_level_fails_even_if_it_adds_up() {
        let (w, o, _) = run();
        let mut t = Taken::default();
        for _ in 0..6 {
            t.add(&Purchase {
                user: 1,
                sku: 0,
                qty: 2,
                price: 10,
            });
        }
        let (wn, on) = (after(&w, &t.money), after(&o, &t.stock));
        let e = conservation((&w, &o), &t, (&wn, &on), (0, 0)).unwrap_err();
        assert!(e.contains("wallet: user1 is negative (-20)"), "{e}");
        assert!(e.contains("order: sku0 is negative (-2)"), "{e}");
    }
}
