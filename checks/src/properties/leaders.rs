//! The `sometimes` properties of a configuration where replicas compete to
//! lead (`--elections` above 0): that two lead at once, that a new leader
//! carries over what its predecessor revealed, that two candidates campaign
//! for the same term number.

use super::*;

/// Those that `cfg` can reach (none unless replicas compete).
pub(super) fn sometimes(cfg: &Config) -> Vec<Property<TwopcModel>> {
    let mut props = Vec::new();
    if cfg.protocol != Protocol::Replicated || cfg.elections == 0 {
        return props;
    }
    props.push(Property::sometimes(SOME_TWO_LEADERS, |m, s| {
        coordinators(&m.cfg, s).count() >= 2
    }));
    if cfg.can_commit() {
        props.push(Property::sometimes(SOME_CARRIED_OVER, carried_over));
    }
    if cfg.may_crash(Role::Coordinator) {
        props.push(Property::sometimes(SOME_DUELING_CANDIDATES, |m, s| {
            let terms: Vec<u64> = replicas(&m.cfg, s)
                .filter_map(|(_, r)| match &r.standing {
                    Standing::Candidate { term, .. } => Some(term.n),
                    _ => None,
                })
                .collect();
            terms
                .iter()
                .enumerate()
                .any(|(i, n)| terms[i + 1..].contains(n))
        }));
    }
    props
}

/// A replica up and leading a term after the first holds an outcome that
/// was revealed to a client and decided under an earlier epoch (by an
/// earlier leader).
fn carried_over(m: &TwopcModel, s: &SysState) -> bool {
    replicas(&m.cfg, s).any(|(i, r)| {
        !s.crashed[i]
            && r.leading().is_some_and(|l| {
                l.term.n > 0
                    && l.coord.outcomes.by_id.iter().any(|(req, told)| {
                        s.history.outcomes_sent.contains(req)
                            && told.txn.is_some_and(|t| t.epoch < l.coord.epoch)
                    })
            })
    })
}
