//! The promises of a purchase, checked from the outside: given what every
//! client asked for and was told, and the participants' state after the
//! cluster settled, list every broken promise in words. The chaos test (real
//! processes) and the simulation (`sim`, beside this file) both judge their runs here.
//!
//! The promises: every request got an outcome; nothing is applied twice; a
//! purchase a client was told is committed is applied at both participants
//! with the amounts asked for (or settled there by the floor), one told
//! aborted at neither; a transaction committed at one participant is
//! committed at the other; nothing is committed that no client asked for;
//! every level equals its start minus what the committed purchases took;
//! no hold and no unacknowledged commit decision is left.

use std::collections::{BTreeMap, BTreeSet};
use twopc_model::participant::Finished;
use twopc_model::{Outcome, PartStorage, Purchase, RequestId, TxnId, Verdict};

/// What one client asked for and what it was told.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The purchase asked for.
    pub purchase: Purchase,
    /// Its outcome, if one came.
    pub outcome: Option<Outcome>,
    /// The client's id.
    pub client: u64,
    /// The request's number at that client (1, 2, ...).
    pub seq: u64,
}

/// The participants' levels before any purchase: balances, then stock.
#[derive(Clone, Copy, Debug)]
pub struct Initial<'a> {
    /// Each user's starting balance.
    pub wallet: &'a [(&'a str, u64)],
    /// Each sku's starting stock.
    pub order: &'a [(&'a str, u64)],
}

/// The judgement of a run.
#[derive(Clone, Debug, Default)]
pub struct Verified {
    /// Every broken promise, in words (empty: all kept).
    pub violations: Vec<String>,
    /// Purchases the clients were told are committed.
    pub commits: u64,
    /// Aborted purchases by reason.
    pub aborts: BTreeMap<String, u64>,
}

/// Every violation of the promises, in words. The same for one write
/// (docs/one-write.md): a restart records again what its predecessor told,
/// so no purchase may be answered "unknown" there either.
pub fn verify(
    seen: &[Seen],
    wallet: &PartStorage,
    order: &PartStorage,
    initial: Initial<'_>,
    coordinator_commits: usize,
) -> Verified {
    let mut bad = Vec::new();
    let mut commits = 0;
    let mut aborts = BTreeMap::new();
    // Committed finished entries per request, per participant.
    let committed = |p: &PartStorage| {
        let mut by_req: BTreeMap<RequestId, Vec<(TxnId, Finished)>> = BTreeMap::new();
        for (txn, f) in &p.finished {
            if f.committed {
                by_req
                    .entry(f.req.clone().expect("a committed txn knows its request"))
                    .or_default()
                    .push((*txn, f.clone()));
            }
        }
        by_req
    };
    let (wc, oc) = (committed(wallet), committed(order));
    let mut known = BTreeSet::new();
    for s in seen {
        let Some(o) = &s.outcome else {
            bad.push(format!(
                "request {}#{} ({:?}) got no outcome",
                s.client, s.seq, s.purchase
            ));
            continue;
        };
        known.insert(o.req.clone());
        let w = wc.get(&o.req).map(Vec::as_slice).unwrap_or(&[]);
        let r = oc.get(&o.req).map(Vec::as_slice).unwrap_or(&[]);
        if w.len() > 1 || r.len() > 1 {
            bad.push(format!(
                "request {} applied more than once: wallet {w:?}, order {r:?}",
                o.req
            ));
        }
        match o.verdict {
            Verdict::Committed => {
                commits += 1;
                let p = &s.purchase;
                // A participant forgets what the coordinator's floor settled:
                // a commit below its floor is no longer listed (the levels
                // below still account for it).
                let forgotten = |part: &PartStorage| o.txn.is_some_and(|t| t < part.floor);
                let wallet_ok = forgotten(wallet)
                    || w.iter().any(|(t, f)| {
                        Some(*t) == o.txn
                            && f.op
                                .as_ref()
                                .is_some_and(|op| op.key == p.user && op.amount == p.qty * p.price)
                    });
                let order_ok = forgotten(order)
                    || r.iter().any(|(t, f)| {
                        Some(*t) == o.txn
                            && f.op
                                .as_ref()
                                .is_some_and(|op| op.key == p.sku && op.amount == p.qty)
                    });
                if !wallet_ok || !order_ok {
                    bad.push(format!(
                        "client saw {} committed as txn {:?} but wallet has {w:?} and order has {r:?}",
                        o.req, o.txn
                    ));
                }
            }
            Verdict::Aborted(reason) => {
                *aborts.entry(format!("{reason:?}")).or_insert(0u64) += 1;
                if !w.is_empty() || !r.is_empty() {
                    bad.push(format!(
                        "client saw {} aborted ({reason:?}) but wallet committed {w:?}, order committed {r:?}",
                        o.req
                    ));
                }
            }
            // The chaos test and the simulation use fresh ids and never
            // reuse one: neither answer is expected.
            Verdict::Refused(_) | Verdict::Unknown => {
                bad.push(format!("client saw {} {:?}", o.req, o.verdict))
            }
        }
    }
    // Atomic: a transaction committed at one participant is committed at the
    // other (or settled there by the floor and forgotten).
    for (name, a, b) in [("wallet", wallet, order), ("order", order, wallet)] {
        for (txn, f) in &a.finished {
            let forgotten = *txn < b.floor && !b.finished.contains_key(txn);
            if f.committed && !forgotten && !b.finished.get(txn).is_some_and(|g| g.committed) {
                bad.push(format!(
                    "txn {txn} committed at the {name} but not at the other participant ({:?})",
                    b.finished.get(txn)
                ));
            }
        }
    }
    // Nothing committed that no client asked for (the clients are the only requesters).
    for req in wc.keys().chain(oc.keys()) {
        if !known.contains(req) {
            bad.push(format!("request {req} committed but no client saw it"));
        }
    }
    // Conserved, never negative, nothing left in doubt.
    for (name, p, initial) in [
        ("wallet", wallet, initial.wallet),
        ("order", order, initial.order),
    ] {
        for (key, start) in initial {
            // What the purchases the clients saw committed took of this key:
            // participants forget settled transactions, clients do not.
            let took = |verdict: Verdict| -> u64 {
                seen.iter()
                    .filter(|s| s.outcome.as_ref().is_some_and(|o| o.verdict == verdict))
                    .map(|s| match name {
                        "wallet" if s.purchase.user == *key => s.purchase.qty * s.purchase.price,
                        "order" if s.purchase.sku == *key => s.purchase.qty,
                        _ => 0,
                    })
                    .sum()
            };
            let spent = took(Verdict::Committed);
            let level = p.levels.get(*key).copied();
            let within = level.is_some_and(|l| l + spent == *start);
            if !within {
                bad.push(format!(
                    "{name}: {key} started at {start}, committed purchases took {spent}, but the level is {level:?}"
                ));
            }
        }
        if !p.holds.is_empty() {
            bad.push(format!("{name} still holds {:?}", p.holds));
        }
    }
    if coordinator_commits != 0 {
        bad.push(format!(
            "coordinator still has {coordinator_commits} unacknowledged commit decisions"
        ));
    }
    Verified {
        violations: bad,
        commits,
        aborts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USERS: &[(&str, u64)] = &[("ann", 20_000), ("ben", 10_000)];
    const SKUS: &[(&str, u64)] = &[("apple", 4_000), ("pear", 30)];
    const INITIAL: Initial<'static> = Initial {
        wallet: USERS,
        order: SKUS,
    };

    /// The checks above are not vacuous: fabricated violations are reported.
    #[test]
    fn verify_reports_each_kind_of_violation() {
        use twopc_model::{AbortReason, Hold, Op};
        let purchase = Purchase {
            user: "ann".into(),
            sku: "apple".into(),
            qty: 2,
            price: 3,
        };
        let req = |seq| RequestId::new(format!("{}#{}", 7, seq));
        let txn = |n| TxnId { epoch: 1, n };
        let fin = |seq, key: &str, amount, committed| Finished {
            req: Some(req(seq)),
            op: Some(Op {
                key: key.into(),
                amount,
            }),
            committed,
        };
        let start = |pairs: &[(&str, u64)]| PartStorage {
            levels: pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            ..PartStorage::default()
        };
        let seen = |seq, verdict| Seen {
            purchase: purchase.clone(),
            outcome: Some(Outcome {
                req: req(seq),
                txn: Some(txn(seq)),
                verdict,
            }),
            client: 7,
            seq,
        };
        // A consistent history: one commit, one abort.
        let mut wallet = start(USERS);
        let mut order = start(SKUS);
        *wallet.levels.get_mut("ann").unwrap() -= 6;
        *order.levels.get_mut("apple").unwrap() -= 2;
        wallet.finished.insert(txn(1), fin(1, "ann", 6, true));
        order.finished.insert(txn(1), fin(1, "apple", 2, true));
        wallet.finished.insert(txn(2), fin(2, "ann", 6, false));
        let ok = [
            seen(1, Verdict::Committed),
            seen(2, Verdict::Aborted(AbortReason::VoteTimeout)),
        ];
        assert_eq!(
            verify(&ok, &wallet, &order, INITIAL, 0).violations,
            Vec::<String>::new()
        );
        // A purchase answered "unknown" breaks a promise, applied or not
        // (one write included: a restart records again what it told).
        let unsure = [seen(1, Verdict::Unknown), ok[1].clone()];
        for (w, o) in [(&wallet, &order), (&start(USERS), &start(SKUS))] {
            assert!(!verify(&unsure, w, o, INITIAL, 0).violations.is_empty());
        }
        // Each corruption is caught.
        let mut w = wallet.clone();
        w.finished.get_mut(&txn(2)).unwrap().committed = true;
        assert!(
            !verify(&ok, &w, &order, INITIAL, 0).violations.is_empty(),
            "told aborted, committed"
        );
        let mut o = order.clone();
        o.finished.remove(&txn(1));
        *o.levels.get_mut("apple").unwrap() += 2;
        assert!(
            !verify(&ok, &wallet, &o, INITIAL, 0).violations.is_empty(),
            "not atomic"
        );
        let mut w = wallet.clone();
        *w.levels.get_mut("ann").unwrap() += 1;
        assert!(
            !verify(&ok, &w, &order, INITIAL, 0).violations.is_empty(),
            "money not conserved"
        );
        let mut w = wallet.clone();
        w.holds.insert(
            txn(3),
            Hold {
                req: req(3),
                op: Op {
                    key: "ann".into(),
                    amount: 1,
                },
            },
        );
        assert!(
            !verify(&ok, &w, &order, INITIAL, 0).violations.is_empty(),
            "hold left"
        );
        assert!(
            !verify(&ok, &wallet, &order, INITIAL, 1)
                .violations
                .is_empty(),
            "commit left"
        );
        let mut lost = ok.to_vec();
        lost[1].outcome = None;
        assert!(
            !verify(&lost, &wallet, &order, INITIAL, 0)
                .violations
                .is_empty(),
            "no outcome"
        );
        let mut w = wallet.clone();
        let mut o = order.clone();
        w.finished.insert(txn(9), fin(1, "ann", 6, true));
        o.finished.insert(txn(9), fin(1, "apple", 2, true));
        *w.levels.get_mut("ann").unwrap() -= 6;
        *o.levels.get_mut("apple").unwrap() -= 2;
        assert!(
            !verify(&ok, &w, &o, INITIAL, 0).violations.is_empty(),
            "charged twice"
        );
    }
}
