//! What a shop promises beyond a purchase (docs/shop.md): conservation
//! with flows, and prices.

use super::*;

/// Reached (`--flows`): a top-up of a new user committed, and the wallet
/// applied it (the user exists).
pub const SOME_TOP_UP_COMMITTED: &str = "a top-up committed";
/// The order service holds a purchase only at the sku's price when it
/// prepares it (or the sku has none), so a purchase commits only at the
/// catalogue price (`--prices`; judged on the step that prepares it,
/// `TwopcModel::judge_price`).
pub const PURCHASE_AT_CATALOGUE_PRICE: &str = "a purchase commits only at the catalogue price";
/// Reached (`--prices`): a purchase aborted because its price was not the
/// sku's.
pub const SOME_PRICE_CHANGED: &str = "an abort for a changed price";
/// Reached (`--prices`): a purchase at the new price committed after the
/// restock that set it (the first client's first purchase).
pub const SOME_COMMIT_AT_NEW_PRICE: &str = "a purchase committed at a restock's new price";

/// The shop's properties that apply to `cfg`.
pub(super) fn properties(cfg: &Config) -> Vec<Property<TwopcModel>> {
    let mut props = Vec::new();
    if cfg.flows {
        props.push(Property::sometimes(SOME_TOP_UP_COMMITTED, |m, s| {
            let topup = RequestId::new("topup");
            seen(m, s).any(|o| o.req == topup && o.verdict == Verdict::Committed)
                && participants(s).any(|(i, p)| i == WALLET && p.data.levels.contains_key(NEW_USER))
        }));
    }
    if cfg.prices {
        props.push(Property::always(
            PURCHASE_AT_CATALOGUE_PRICE,
            |_, s: &SysState| !s.history.off_price,
        ));
        props.push(Property::sometimes(SOME_PRICE_CHANGED, |m, s| {
            seen(m, s).any(|o| o.verdict == Verdict::Aborted(AbortReason::PriceChanged))
        }));
        props.push(Property::sometimes(SOME_COMMIT_AT_NEW_PRICE, |m, s| {
            let first = Config::req(0, 0);
            seen(m, s).any(|o| o.req == first && o.verdict == Verdict::Committed)
                && participants(s)
                    .any(|(i, p)| i == ORDER && p.data.prices.get(SKU) == Some(&m.cfg.price))
        }));
    }
    props
}

/// Conservation with flows: for every key a participant has (initially,
/// now, or in a change it applied), its committed level is the initial
/// level plus the credits it applied minus the holds it applied, and the
/// level covers what is held on it. (Levels are committed levels: holds are
/// not taken from them until they commit; credits are not added before.)
pub(super) fn conserved(m: &TwopcModel, s: &SysState) -> bool {
    participants(s).all(|(i, p)| {
        let twopc_model::Node::Participant(cfg) = &m.inner.actors[i].node else {
            unreachable!("actors 1 and 2 are participants")
        };
        let applied: Vec<Applied> = applied(s, i, p).collect();
        let mut keys: Vec<&Key> = cfg.initial.keys().chain(p.data.levels.keys()).collect();
        keys.extend(applied.iter().filter_map(|a| a.op().map(|op| &op.key)));
        keys.sort();
        keys.dedup();
        keys.into_iter().all(|key| {
            let initial = i128::from(cfg.initial.get(key).copied().unwrap_or(0));
            let level = p.data.levels.get(key).copied();
            let flow: i128 = applied
                .iter()
                .filter_map(|a| a.change.as_ref())
                .filter(|c| &c.op().key == key)
                .map(|c| match c {
                    Change::Credit(op) => i128::from(op.amount),
                    Change::Hold(op) => -i128::from(op.amount),
                })
                .sum();
            let held = p.data.held(key);
            match level {
                Some(level) => i128::from(level) == initial + flow && level >= held,
                // No such key: nothing came in, nothing is held.
                None => initial + flow == 0 && held == 0,
            }
        })
    })
}

/// Each request's change is applied at most once at each participant (a
/// purchase charged once, a top-up or restock credited once).
pub(super) fn charged_at_most_once(_: &TwopcModel, s: &SysState) -> bool {
    participants(s).all(|(i, p)| {
        let mut reqs: Vec<RequestId> = applied(s, i, p).filter_map(|a| a.req).collect();
        let n = reqs.len();
        reqs.sort();
        reqs.dedup();
        reqs.len() == n
    })
}
