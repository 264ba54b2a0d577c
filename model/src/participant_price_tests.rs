//! Handler tests of prices at the order service (see docs/shop.md,
//! "Prices"): a purchase's hold carries the price the buyer saw and is
//! refused `PriceChanged` unless it is the sku's price; a priced restock
//! sets the price at its commit, and while it is pending a purchase at
//! another price is refused; a sku without a price takes any price.

use super::*;
use crate::test_util::*;

const COORD: usize = 0;

fn order(prices: &[(&str, u64)]) -> Participant {
    Participant {
        resource: Resource::Order,
        coordinators: vec![Id::from(COORD)],
        initial: BTreeMap::from([("widget".to_string(), 5), ("gadget".to_string(), 5)]),
        prices: prices.iter().map(|(k, p)| (k.to_string(), *p)).collect(),
        one_write: false,
    }
}

fn priced(n: u64, change: Change, price: u64) -> Msg {
    Msg::PreparePriced {
        txn: txn(n),
        req: req(n + 1),
        change,
        price,
        floor: Floor::default(),
        parties: vec![Id::from(1), Id::from(2)],
    }
}

fn op(key: &str, amount: u64) -> Op {
    Op {
        key: key.into(),
        amount,
    }
}

/// A purchase of one `key` at `price`.
fn buy(n: u64, key: &str, price: u64) -> Msg {
    priced(n, Change::Hold(op(key, 1)), price)
}

/// A restock of one `key` that sets its price to `price`.
fn reprice(n: u64, key: &str, price: u64) -> Msg {
    priced(n, Change::Credit(op(key, 1)), price)
}

fn deliver(p: &Participant, state: &PartState, msg: Msg) -> (PartState, Out<Node>) {
    let mut cow = Cow::Borrowed(state);
    let mut o = Out::new();
    p.on_msg(&mut cow, Id::from(COORD), msg, &mut o);
    (cow.into_owned(), o)
}

fn ballot(out: &Out<Node>) -> Ballot {
    let votes: Vec<Ballot> = out
        .iter()
        .filter_map(|c| match c {
            stateright::actor::Command::Send(_, Msg::Vote { ballot, .. }) => Some(*ballot),
            _ => None,
        })
        .collect();
    assert_eq!(votes.len(), 1, "{}", cmds(out));
    votes[0]
}

#[test]
fn a_purchase_at_the_catalogue_price_holds_and_at_another_is_refused_price_changed() {
    let p = order(&[("widget", 2)]);
    let start = p.on_start(None, &mut Out::new());
    assert_eq!(start.data.prices.get("widget"), Some(&2));
    let (s, out) = deliver(&p, &start, buy(0, "widget", 2));
    assert_eq!(ballot(&out), Ballot::Yes);
    assert!(s.data.holds.contains_key(&txn(0)));
    let (s, out) = deliver(&p, &s, buy(1, "widget", 3));
    assert_eq!(ballot(&out), Ballot::No(Refusal::PriceChanged));
    assert!(!s.data.holds.contains_key(&txn(1)), "nothing held");
    assert!(s.data.finished.get(&txn(1)).is_some_and(|f| !f.committed));
    // A sku without a price takes any price.
    let (_, out) = deliver(&p, &s, buy(2, "gadget", 7));
    assert_eq!(ballot(&out), Ballot::Yes);
}

#[test]
fn a_priced_restock_sets_the_price_at_commit_and_refuses_purchases_meanwhile() {
    let p = order(&[("widget", 2)]);
    let s = p.on_start(None, &mut Out::new());
    let (s, out) = deliver(&p, &s, reprice(0, "widget", 4));
    assert_eq!(ballot(&out), Ballot::Yes);
    assert_eq!(
        s.data.prices.get("widget"),
        Some(&2),
        "not before the commit"
    );
    assert_eq!(s.data.repricing.get(&txn(0)), Some(&4));
    // Pending: neither the old price nor the new one is sure; refused.
    for price in [2, 4] {
        let (_, out) = deliver(&p, &s, buy(1, "widget", price));
        assert_eq!(ballot(&out), Ballot::No(Refusal::PriceChanged), "{price}");
    }
    // Another sku is not concerned.
    let (_, out) = deliver(&p, &s, buy(1, "gadget", 9));
    assert_eq!(ballot(&out), Ballot::Yes);
    let (s, out) = deliver(&p, &s, Msg::Commit { txn: txn(0) });
    assert!(cmds(&out).contains("Ack"), "{}", cmds(&out));
    assert_eq!(s.data.prices.get("widget"), Some(&4));
    assert_eq!(s.data.levels["widget"], 6);
    assert!(s.data.repricing.is_empty());
    let (_, out) = deliver(&p, &s, buy(2, "widget", 2));
    assert_eq!(ballot(&out), Ballot::No(Refusal::PriceChanged));
    let (_, out) = deliver(&p, &s, buy(2, "widget", 4));
    assert_eq!(ballot(&out), Ballot::Yes);
    // The catalogue survives a restart (it is durable state).
    let again = p.on_start(Some(&s.data), &mut Out::new());
    assert_eq!(again.data.prices.get("widget"), Some(&4));
}

#[test]
fn an_aborted_or_settled_priced_restock_changes_no_price() {
    let p = order(&[]);
    let s = p.on_start(None, &mut Out::new());
    let (pending, _) = deliver(&p, &s, reprice(0, "widget", 4));
    let (s, _) = deliver(&p, &pending, Msg::Abort { txn: txn(0) });
    assert!(s.data.prices.is_empty() && s.data.repricing.is_empty());
    assert_eq!(s.data.levels["widget"], 5);
    // Released by a floor that settles it (presumed abort).
    let floor = Floor {
        below: txn(1),
        owed: vec![],
    };
    let next = Msg::PreparePriced {
        txn: txn(1),
        req: req(2),
        change: Change::Hold(op("widget", 1)),
        price: 3,
        floor,
        parties: vec![],
    };
    let (s, out) = deliver(&p, &pending, next);
    assert_eq!(ballot(&out), Ballot::Yes, "no price, nothing pending");
    assert!(s.data.prices.is_empty() && s.data.repricing.is_empty());
}
