//! What the one-write protocol promises (docs/one-write.md), judged from
//! the participants' durable state: every outcome a client holds is the
//! one their saved votes imply, whatever the coordinator has saved.

use super::*;

/// Whenever a client holds an outcome of an attempt, the participants'
/// durable state implies it: committed, every participant of the attempt
/// holds its yes durably or applied it (or the coordinator owes it,
/// durably); aborted, some participant durably refused it (a saved no or
/// fence, or a floor above it that it never held).
pub const OUTCOME_IMPLIED: &str =
    "an outcome told is the outcome the participants' saved votes imply";
/// Reached (one write): a client holds "committed" while the coordinator's
/// durable log has neither the outcome nor the commit.
pub const SOME_TOLD_BEFORE_SAVED: &str = "a commit told before the coordinator saved it";
/// Reached (one write, the coordinator may crash): a restarted
/// coordinator owes the commit of an attempt of an earlier epoch that every
/// participant of it still holds (applied nowhere yet). With one purchase
/// (the `one-write` entry) only the resolution from the participants' fates
/// can owe it: no save of the earlier incarnation held it (the one that
/// forgets an acknowledged commit is the only one after the start's).
pub const SOME_ALL_HOLD_COMMITTED: &str =
    "a restarted coordinator commits what every participant holds";
/// Reached (one write): a participant applied a commit in memory and its
/// ack waits for a save (the next prepare's or the flush timer's); a crash
/// there loses the commit and brings its hold back.
pub const SOME_COMMIT_IN_MEMORY: &str = "a commit applied in memory, its ack waiting for a save";

/// Reached (clients keeping their ticket): a client's second purchase is
/// being attempted while the client's ticket is older than the
/// coordinator's next one: the ticket kept from its first purchase (one
/// asked for after the first outcome would be the next). With one client
/// nothing else is recorded in between, so a client that asked again
/// never reaches it.
pub const SOME_KEPT_TICKET_STARTED: &str = "a purchase started with a kept ticket";

/// Reached (one write, the coordinator may crash): a client holds
/// "committed" for a purchase whose outcome a later incarnation of the
/// coordinator recorded again from the participants' debits (its number is
/// of a later generation than its attempt's epoch): told, lost with a
/// crash, recovered.
pub const SOME_OUTCOME_RECOVERED: &str = "a commit told and lost is recorded again at a restart";
/// Reached (one write, the coordinator may crash): a purchase is being
/// attempted by an incarnation later than the one that handed out the
/// ticket it came with (a ticket's generation is the epoch of the
/// incarnation that gave it): a restart left the tickets good.
pub const SOME_OLD_TICKET_STARTED: &str = "a ticket of an earlier incarnation starts a purchase";

/// The one-write properties that apply to `cfg` (none without it), and the
/// kept ticket's (the other wait of issue 23 that is not a write).
pub(super) fn properties(cfg: &Config) -> Vec<Property<TwopcModel>> {
    let mut props = Vec::new();
    if cfg.keep_ticket && cfg.purchases >= 2 && cfg.clients == 1 {
        props.push(Property::sometimes(
            SOME_KEPT_TICKET_STARTED,
            |m: &TwopcModel, s: &SysState| {
                let second = Config::req(0, 1);
                clients(&m.cfg, s).any(|c| {
                    c.seen.len() == 1
                        && c.ticket.is_some_and(|t| {
                            coordinators(&m.cfg, s).any(|(_, k)| {
                                t < k.outcomes.next && k.voting.values().any(|v| v.req == second)
                            })
                        })
                })
            },
        ));
    }
    if !cfg.one_write {
        return props;
    }
    props.push(Property::always(OUTCOME_IMPLIED, outcome_implied));
    if cfg.can_commit() {
        props.push(Property::sometimes(SOME_TOLD_BEFORE_SAVED, |m, s| {
            let logs = durable_coordinator(&m.cfg, s);
            seen(m, s).any(|o| {
                o.verdict == Verdict::Committed
                    && o.txn.is_some_and(|t| {
                        logs.iter().all(|c| {
                            c.as_ref().is_none_or(|c| {
                                !c.outcomes.by_id.contains_key(&o.req)
                                    && !c.commits.contains_key(&t)
                            })
                        })
                    })
            })
        }));
    }
    if cfg.can_commit() {
        props.push(Property::sometimes(SOME_COMMIT_IN_MEMORY, |_, s| {
            participants(s).any(|(_, p)| !p.acks_after_save.is_empty())
        }));
    }
    if cfg.can_commit() && cfg.may_crash(Role::Coordinator) {
        props.push(Property::sometimes(SOME_ALL_HOLD_COMMITTED, all_hold_owed));
        props.push(Property::sometimes(SOME_OUTCOME_RECOVERED, |m, s| {
            seen(m, s).any(|o| {
                o.verdict == Verdict::Committed
                    && o.txn.is_some_and(|t| {
                        coordinators(&m.cfg, s).any(|(_, c)| {
                            c.outcomes
                                .by_id
                                .get(&o.req)
                                .is_some_and(|told| told.number >> TICKET_GENERATION_BITS > t.epoch)
                        })
                    })
            })
        }));
        props.push(Property::sometimes(
            SOME_OLD_TICKET_STARTED,
            old_ticket_started,
        ));
    }
    props
}

fn old_ticket_started(m: &TwopcModel, s: &SysState) -> bool {
    m.client_configs().zip(clients(&m.cfg, s)).any(|(cfg, c)| {
        let (Some(ticket), Some(r)) = (c.ticket, cfg.requests.get(c.seen.len())) else {
            return false;
        };
        coordinators(&m.cfg, s).any(|(_, k)| {
            k.voting
                .iter()
                .any(|(t, v)| v.req == r.req && ticket >> TICKET_GENERATION_BITS < t.epoch)
        })
    })
}

/// A participant's durable state: it applied `txn` (committed, remembered or
/// settled by its floor and no longer held or remembered).
pub(super) fn applied_durably(d: &PartStorage, txn: &TxnId) -> bool {
    d.finished.get(txn).is_some_and(|f| f.committed)
        || (*txn < d.floor && !d.finished.contains_key(txn) && !d.prepared(txn))
}

/// A participant's durable state refuses `txn` for good: a saved no or
/// fence, or a floor above it that it neither holds nor remembers.
fn refused_durably(d: &PartStorage, txn: &TxnId) -> bool {
    d.finished.get(txn).is_some_and(|f| !f.committed)
        || (*txn < d.floor && !d.finished.contains_key(txn) && !d.prepared(txn))
}

fn outcome_implied(m: &TwopcModel, s: &SysState) -> bool {
    let part = |i: usize| match s.actor_storages[i].as_deref() {
        Some(Storage::Participant(p)) => Some(p),
        _ => None,
    };
    let logs = durable_coordinator(&m.cfg, s);
    let owed = |t: &TxnId| {
        logs.iter()
            .all(|c| c.as_ref().is_some_and(|c| c.commits.contains_key(t)))
    };
    requests_seen(m, s).all(|(r, o)| match (o.verdict, o.txn) {
        (Verdict::Committed, Some(t)) => {
            owed(&t)
                || [WALLET, ORDER]
                    .into_iter()
                    .filter(|i| change_for(*i, &r.op).is_some())
                    .all(|i| part(i).is_some_and(|d| d.prepared(&t) || applied_durably(d, &t)))
        }
        (Verdict::Aborted(_), Some(t)) => [WALLET, ORDER]
            .into_iter()
            .filter(|i| change_for(*i, &r.op).is_some())
            .any(|i| part(i).is_some_and(|d| refused_durably(d, &t))),
        _ => true,
    })
}

fn all_hold_owed(m: &TwopcModel, s: &SysState) -> bool {
    coordinators(&m.cfg, s).any(|(i, c)| {
        !s.crashed[i]
            && c.commits.keys().any(|t| {
                let of_it: Vec<usize> = parties(s, *t).collect();
                t.epoch < c.epoch
                    && !of_it.is_empty()
                    && of_it
                        .iter()
                        .all(|p| participants(s).any(|(j, q)| j == *p && q.data.prepared(t)))
            })
    })
}
