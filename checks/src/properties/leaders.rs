//! The `sometimes` properties of a configuration where replicas compete to
//! lead (`--elections` above 0): that two lead at once, that a new leader
//! carries over what its predecessor revealed, that two candidates campaign
//! for the same term number, and that a replica whose timer fired while its
//! leader led follows it again (pre-vote).

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
    if cfg.pre_vote {
        props.push(Property::sometimes(
            SOME_RETURNING_FOLLOWS,
            returning_follows,
        ));
    }
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

/// A replica up, following the term it promised, whose leader is up and
/// leads that term, while a `PreVote` it sent for the next term is in
/// flight: its timer fired under that same promise (a pre-vote names the
/// promised term's number plus one, and the promise only grows), and it
/// follows again, having heard the leader's `Accept` (a pre-candidate
/// follows again only so, or by a restart, which no configuration with
/// early timers allows a backup), without having deposed anyone. (On
/// the duplicating network a datagram stays in flight once sent; a
/// `PreVote` is dropped by the reductions only once its receiver promised
/// its term, which the leader of the lower term has not.)
fn returning_follows(m: &TwopcModel, s: &SysState) -> bool {
    replicas(&m.cfg, s).any(|(i, r)| {
        let t = r.acceptor.promised;
        let leader = usize::from(t.leader);
        let asked = Msg::PreVote {
            term: Term {
                n: t.n + 1,
                leader: stateright::actor::Id::from(i),
            },
        };
        !s.crashed[i]
            && r.standing == Standing::Follower
            && leader != i
            && !s.crashed[leader]
            && replicas(&m.cfg, s)
                .any(|(j, l)| j == leader && l.leading().is_some_and(|l| l.term == t))
            && s.network
                .iter_all()
                .any(|e| usize::from(e.src) == i && **e.msg == asked)
    })
}
