//! What refunds promise (docs/shop.md, "Refund"), judged from what the
//! participants applied: a refund is applied only where its purchase was,
//! never beyond it, and a retried credit is applied once.

use super::*;
use std::collections::BTreeMap;

/// At each participant, a refund's credit is applied only if its purchase's
/// hold was applied or is held there, and the refunds applied of a purchase never exceed it (units
/// at the order service, `qty × price` at the wallet).
pub const REFUND_ONLY_OF_COMMITTED: &str =
    "a refund commits only for a committed purchase, and never beyond its quantity";
/// At each participant, the credits of one request id (a top-up, a
/// restock, a refund, however often retried) are applied by at most one
/// transaction.
pub const CREDIT_APPLIED_ONCE: &str = "a retried operation (top-up or refund) applies once";
/// The coordinator's refunded count of each remembered purchase covers
/// every committed refund of it it remembers, and never exceeds the
/// purchase (a count not raised with the decision fails here as soon as a
/// refund commits; the second refund it would let through is beyond what
/// the CI budget explores, see docs/checking.md).
pub const REFUNDED_COUNTED: &str =
    "the coordinator counts every committed refund of a purchase, up to its quantity";
/// Reached (`--refunds`): a refund committed.
pub const SOME_REFUND_COMMITTED: &str = "a refund committed";
/// Reached (`--refunds`, the purchase aborted by vote timeout): a refund
/// refused `not_committed`.
pub const SOME_REFUND_NOT_COMMITTED: &str = "a refund of an aborted purchase refused";
/// Reached (`--refunds 3`): the retry of a refund answered with its
/// first outcome.
pub const SOME_REFUND_RETRY_ANSWERED: &str = "a retried refund answered with the first outcome";
/// Reached (`--refunds 2`): a refund refused `refund_exceeds_purchase`.
pub const SOME_REFUND_EXCEEDS: &str = "a refund beyond the purchase refused";
/// Reached (`--refunds 4`): a refund of a purchase never made refused
/// `unknown_purchase`.
pub const SOME_REFUND_UNKNOWN: &str = "a refund of an unknown purchase refused";

/// The refund properties that apply to `cfg`.
pub(super) fn properties(cfg: &Config) -> Vec<Property<TwopcModel>> {
    let mut props = vec![
        Property::always(REFUND_ONLY_OF_COMMITTED, refund_only_of_committed),
        Property::always(CREDIT_APPLIED_ONCE, credit_applied_once),
        Property::always(REFUNDED_COUNTED, refunded_counted),
    ];
    if cfg.refunds >= 1 {
        props.push(Property::sometimes(SOME_REFUND_COMMITTED, |m, s| {
            requests_seen(m, s).any(|(r, o)| {
                matches!(r.op, Operation::Refund { .. }) && o.verdict == Verdict::Committed
            })
        }));
        props.push(Property::sometimes(SOME_REFUND_NOT_COMMITTED, |m, s| {
            seen(m, s).any(|o| o.verdict == Verdict::Aborted(AbortReason::NotCommitted))
        }));
    }
    if cfg.refunds >= 3 {
        props.push(Property::sometimes(SOME_REFUND_RETRY_ANSWERED, |m, s| {
            requests_seen(m, s).any(|(r, o)| {
                matches!(r.op, Operation::Refund { .. })
                    && r.mode == Mode::Retry
                    && matches!(o.verdict, Verdict::Committed | Verdict::Aborted(_))
            })
        }));
    }
    if cfg.refunds >= 2 {
        props.push(Property::sometimes(SOME_REFUND_EXCEEDS, |m, s| {
            let exceeds = Verdict::Aborted(AbortReason::RefundExceedsPurchase);
            seen(m, s).any(|o| o.verdict == exceeds)
        }));
    }
    if cfg.refunds >= 4 {
        props.push(Property::sometimes(SOME_REFUND_UNKNOWN, |m, s| {
            seen(m, s).any(|o| o.verdict == Verdict::Aborted(AbortReason::UnknownPurchase))
        }));
    }
    props
}

/// What every request id of the clients asks.
fn asked(m: &TwopcModel) -> BTreeMap<RequestId, Operation> {
    m.client_configs()
        .flat_map(|c| c.requests.iter())
        .map(|r| (r.req.clone(), r.op.clone()))
        .collect()
}

fn refund_only_of_committed(m: &TwopcModel, s: &SysState) -> bool {
    let asked = asked(m);
    participants(s).all(|(i, p)| {
        let applied: Vec<Applied> = applied(s, i, p).collect();
        // The purchase's hold applied there, or still held there (its
        // commit decided, not yet delivered: a refund starts only after
        // the coordinator decided its purchase).
        let held = |id: &RequestId| {
            p.data.holds.values().any(|h| &h.req == id)
                || applied.iter().any(|a| {
                    a.req.as_ref() == Some(id) && matches!(a.change, Some(Change::Hold(_)))
                })
        };
        // Units (order) or money (wallet) refunded per purchase.
        let mut refunded: BTreeMap<RequestId, u128> = BTreeMap::new();
        for a in &applied {
            let Some(Operation::Refund { purchase, .. }) =
                a.req.as_ref().and_then(|r| asked.get(r))
            else {
                continue;
            };
            if !held(purchase) {
                return false;
            }
            let amount = a.op().map_or(0, |op| u128::from(op.amount));
            *refunded.entry(purchase.clone()).or_default() += amount;
        }
        refunded.iter().all(|(id, total)| {
            let Some(Operation::Purchase(bought)) = asked.get(id) else {
                return false;
            };
            let most = match i == WALLET {
                true => u128::from(bought.qty) * u128::from(bought.price),
                false => u128::from(bought.qty),
            };
            *total <= most
        })
    })
}

fn credit_applied_once(_: &TwopcModel, s: &SysState) -> bool {
    participants(s).all(|(i, p)| {
        let mut credited: Vec<(RequestId, TxnId)> = applied(s, i, p)
            .filter(|a| matches!(a.change, Some(Change::Credit(_))))
            .filter_map(|a| a.req.map(|r| (r, a.txn)))
            .collect();
        credited.sort();
        credited.dedup();
        credited.windows(2).all(|w| w[0].0 != w[1].0)
    })
}

fn refunded_counted(m: &TwopcModel, s: &SysState) -> bool {
    coordinators(&m.cfg, s).all(|(_, c)| {
        let mut committed: BTreeMap<&RequestId, u128> = BTreeMap::new();
        for (id, op) in c.flows.iter() {
            let decided = c.outcomes.by_id.get(id);
            if decided.is_some_and(|t| t.verdict == Verdict::Committed) {
                if let Some((of, qty)) = c.refund_qty(op) {
                    *committed.entry(of).or_default() += u128::from(qty);
                }
            }
        }
        let counted = committed
            .iter()
            .all(|(of, sum)| u128::from(c.refunded_of(of)) >= *sum);
        let within = c
            .refunded
            .iter()
            .all(|(of, n)| c.purchase(of).is_some_and(|p| *n <= p.qty));
        counted && within
    })
}
