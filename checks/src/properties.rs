//! The properties every reachable state must have (`always`), and the states
//! that must be reachable so the `always`s are not vacuous (`sometimes`).
//!
//! Participants' records are read from their states (a participant's state is
//! its storage, see `durable`); promises made on the wire come from the
//! auxiliary [`History`](crate::history::History).

mod breaks;
mod leaders;
mod onewrite;
mod refunds;
mod shop;

pub use onewrite::{
    OUTCOME_IMPLIED, SOME_ALL_HOLD_COMMITTED, SOME_COMMIT_IN_MEMORY, SOME_TOLD_BEFORE_SAVED,
};
pub use refunds::{
    CREDIT_APPLIED_ONCE, REFUNDED_COUNTED, REFUND_ONLY_OF_COMMITTED, SOME_REFUND_COMMITTED,
    SOME_REFUND_EXCEEDS, SOME_REFUND_NOT_COMMITTED, SOME_REFUND_RETRY_ANSWERED,
    SOME_REFUND_UNKNOWN,
};
pub use shop::{
    PURCHASE_AT_CATALOGUE_PRICE, SOME_COMMIT_AT_NEW_PRICE, SOME_PRICE_CHANGED,
    SOME_TOP_UP_COMMITTED,
};

use crate::config::*;
use crate::history::ByParticipant;
use crate::system::*;
use stateright::actor::Id;
use stateright::Property;
use twopc_model::*;

/// No transaction is committed at one participant and aborted at another.
pub const ATOMIC: &str = "atomic";
/// A participant commits only transactions every participant voted yes on.
pub const COMMIT_NEEDS_EVERY_YES: &str = "commit needs every yes";
/// Conservation with flows: per key, level = initial + committed credits −
/// committed holds (top-ups and restocks in, purchases out), and never
/// negative net of holds. (Its name is from before flows existed.)
pub const CONSERVED: &str = "money and stock conserved";
/// A client request is applied at most once at each participant.
pub const CHARGED_AT_MOST_ONCE: &str = "charged at most once";
/// What a client was told matches what the participants did.
pub const CLIENT_TOLD_THE_TRUTH: &str = "client told the truth";
/// Everything promised on the wire is on disk.
pub const DURABLE: &str = "durable";
/// What the coordinator's floor settles holds nothing at a participant.
pub const SETTLED_HOLDS_NOTHING: &str = "a settled transaction holds nothing";
/// A commit a participant can receive is for a transaction it has a record
/// of (held, finished or below its floor): the node's "unknown decision"
/// alarm (`PartStorage::knows`) never fires in a correct run.
pub const COMMITS_ARE_KNOWN: &str = "a commit reaches only a participant that knows it";
/// A refusal for want of funds or stock counted only live holds.
pub const REFUSAL_IS_TRUE: &str = "a refusal is true";
/// Reached: a refusal for want of funds or stock because of a live hold.
pub const SOME_LIVE_HOLD_REFUSAL: &str = "a shortage refusal caused by a live hold";
/// A coordinator that has learned its epoch starts every attempt under a
/// number no participant has seen: not below its floor (where a prepare is
/// ignored as settled), not one it holds or finished (a reused number).
pub const NEXT_ATTEMPT_IS_NEW: &str =
    "a learned coordinator's next attempt is new to every participant";
/// Every actor's memory stays within what the configuration implies.
pub const BOUNDED: &str = "memory bounded by the configuration";
/// The name the liveness analysis (AG EF done) reports under; not a stateright
/// property, but mutants name it as what they break.
pub const LIVE: &str = "every request gets its outcome and no hold is left (AG EF done)";

/// Reached: a purchase committed by a coordinator that started on an empty
/// disk, under an epoch it learned from the participants.
pub const COMMIT_AFTER_DISK_LOSS: &str =
    "a commit after the coordinator's disk was replaced, under a learned epoch";
/// Reached: a commit the lost log decided, recovered from the participant
/// that applied it and owed to the one that still held it.
pub const COMMIT_RECOVERED_FROM_PARTICIPANT: &str =
    "a commit of a lost log recovered from a participant that applied it";
/// Reached: a transaction of a lost log that both participants hold, left
/// in doubt (never presumed).
pub const SOME_IN_DOUBT: &str = "a transaction of a lost log left in doubt";
/// Reached: a replica lost its disk, recovered, and holds a commit the group
/// decided after the loss.
pub const REPLICA_CAUGHT_UP: &str =
    "a replica on an empty disk catches up and holds a commit decided after the loss";
/// Reached (replicated, competing leaders): two replicas lead at once, one
/// of them deposed without knowing it yet.
pub const SOME_TWO_LEADERS: &str = "two replicas lead at once";
/// Reached (replicated, competing leaders): a leader of a later term holds
/// an outcome its predecessor decided and revealed, carried over from what
/// its majority of promises reported.
pub const SOME_CARRIED_OVER: &str = "a new leader carries over an outcome its predecessor revealed";
/// Reached (replicated, competing leaders and a leader crash): two
/// candidates campaign for the same term number at once.
pub const SOME_DUELING_CANDIDATES: &str = "two candidates campaign for the same term number";
/// Reached (replicated, early timers): a replica whose timer fired (it
/// asked for pre-votes for the next term) while the leader of its promised
/// term led, follows that leader again, which still leads: it deposed
/// nobody.
pub const SOME_RETURNING_FOLLOWS: &str =
    "a replica whose timer fired follows the leader it had, which still leads";
/// Reached: a client saw a commit.
pub const SOME_COMMIT: &str = "a commit";
/// Reached: a client saw an abort for insufficient funds or stock.
pub const SOME_SHORTAGE_ABORT: &str = "an abort for insufficient funds or stock";
/// Reached: a client saw an abort by vote timeout.
pub const SOME_TIMEOUT_ABORT: &str = "an abort by vote timeout";
/// Reached: a fresh incarnation's retry of an id (from another client, same
/// contents) got the first attempt's decision.
pub const SOME_RETRY_ANSWERED: &str = "a fresh incarnation's retry answered with the first outcome";
/// Reached: an id re-sent with other contents was refused.
pub const SOME_KEY_REUSED: &str = "an id reused with different contents refused";
/// Reached: a caller asked about an id whose decision had been told and then
/// forgotten, and was answered "unknown" (not started again).
pub const SOME_EXPIRED_UNKNOWN: &str = "an expired id answered unknown";
/// Reached: a participant restarted with prepared holds.
pub const PREPARED_RECOVERY: &str = "a crashed prepared participant recovers";
/// Reached: a coordinator restarted with commit decisions and finished them.
pub const DECIDED_RECOVERY: &str =
    "a crashed coordinator that decided commit recovers and finishes";

/// The properties that apply to a configuration: every safety property, and
/// the reachability properties the configuration can possibly reach.
pub fn for_config(cfg: &Config) -> Vec<Property<TwopcModel>> {
    let mut props = vec![
        Property::always(ATOMIC, atomic),
        Property::always(COMMIT_NEEDS_EVERY_YES, commit_needs_every_yes),
        Property::always(CONSERVED, shop::conserved),
        Property::always(CHARGED_AT_MOST_ONCE, shop::charged_at_most_once),
        Property::always(CLIENT_TOLD_THE_TRUTH, client_told_the_truth),
        Property::always(DURABLE, durable),
        Property::always(BOUNDED, |m, s| exceeds_limits(&m.cfg, s) == 0),
        Property::always(SETTLED_HOLDS_NOTHING, settled_holds_nothing),
        Property::always(REFUSAL_IS_TRUE, |_, s: &SysState| !s.history.false_refusal),
        Property::always(COMMITS_ARE_KNOWN, commits_are_known),
        Property::always(NEXT_ATTEMPT_IS_NEW, next_attempt_is_new),
        Property::sometimes(SOME_TIMEOUT_ABORT, |m, s| {
            seen(m, s).any(|o| o.verdict == Verdict::Aborted(AbortReason::VoteTimeout))
        }),
    ];
    if cfg.can_commit() {
        props.push(Property::sometimes(SOME_COMMIT, |m, s| {
            seen(m, s).any(|o| o.verdict == Verdict::Committed)
        }));
    }
    props.extend(shop::properties(cfg));
    props.extend(refunds::properties(cfg));
    props.extend(onewrite::properties(cfg));
    if cfg.can_run_short() {
        props.push(Property::sometimes(SOME_SHORTAGE_ABORT, |m, s| {
            seen(m, s).any(|o| {
                matches!(
                    o.verdict,
                    Verdict::Aborted(
                        AbortReason::InsufficientFunds | AbortReason::InsufficientStock
                    )
                )
            })
        }));
    }
    if cfg.can_run_short() && cfg.ids() > 1 {
        props.push(Property::sometimes(
            SOME_LIVE_HOLD_REFUSAL,
            |_, s: &SysState| s.history.live_hold_refusal,
        ));
    }
    let reused = |r| cfg.reuse.contains(&r) || cfg.afterwards.contains(&r);
    // A retry after the first client's own purchases finds the first
    // outcome only if it is still remembered.
    if cfg.reuse.contains(&Reuse::Same)
        || (cfg.afterwards.contains(&Reuse::Same) && cfg.retention >= cfg.ids())
    {
        props.push(Property::sometimes(SOME_RETRY_ANSWERED, |m, s| {
            requests_seen(m, s).any(|(r, o)| {
                r.mode == Mode::Retry
                    && matches!(o.verdict, Verdict::Committed | Verdict::Aborted(_))
            })
        }));
    }
    if reused(Reuse::Different) {
        props.push(Property::sometimes(SOME_KEY_REUSED, |m, s| {
            seen(m, s).any(|o| o.verdict == Verdict::Refused(Rejection::KeyReused))
        }));
    }
    if cfg.retention < cfg.ids() && (reused(Reuse::Same) || reused(Reuse::Lookup)) {
        props.push(Property::sometimes(SOME_EXPIRED_UNKNOWN, |m, s| {
            seen(m, s).any(|o| {
                o.verdict == Verdict::Unknown
                    && s.history.outcomes_sent.contains(&o.req)
                    && coordinators(&m.cfg, s).all(|(_, c)| !c.outcomes.by_id.contains_key(&o.req))
            })
        }));
    }
    if cfg.may_crash(Role::Wallet) || cfg.may_crash(Role::Order) {
        props.push(Property::sometimes(PREPARED_RECOVERY, |_, s| {
            participants(s).any(|(i, p)| p.recovered_holds && !s.crashed[i])
        }));
    }
    // (Reached by a purchase made after the loss. With a single request,
    // one begun before the loss is either answered "unknown" (its ticket is
    // of the lost log's generation) or committed under epoch 1, when the
    // participants had seen nothing to learn.)
    if cfg.lose_disk && cfg.can_commit() && cfg.ids() > 1 {
        props.push(Property::sometimes(
            COMMIT_AFTER_DISK_LOSS,
            |m, s: &SysState| {
                s.history.disk_losses > 0
                    && seen(m, s).any(|o| {
                        o.verdict == Verdict::Committed && o.txn.is_some_and(|t| t.epoch > 1)
                    })
            },
        ));
    }
    if cfg.lose_disk && cfg.can_commit() {
        props.push(Property::sometimes(
            COMMIT_RECOVERED_FROM_PARTICIPANT,
            |m, s: &SysState| {
                s.history.disk_losses > 0
                    && coordinators(&m.cfg, s)
                        .any(|(_, c)| c.commits.keys().any(|t| t.epoch < c.epoch))
            },
        ));
        props.push(Property::sometimes(SOME_IN_DOUBT, |m, s: &SysState| {
            coordinators(&m.cfg, s).any(|(_, c)| !c.doubts.is_empty())
        }));
    }
    if cfg.lose_replica_disk && cfg.can_commit() {
        props.push(Property::sometimes(
            REPLICA_CAUGHT_UP,
            crate::system::recovery::caught_up,
        ));
    }
    props.extend(leaders::sometimes(cfg));
    // (A lost disk forgets every decision: nothing is recovered from it.)
    // (One write saves a purchase's commit only with the save that forgets
    // it: a restart recovers it from the participants instead, which
    // `SOME_ALL_HOLD_COMMITTED` shows.)
    if cfg.may_crash(Role::Coordinator) && cfg.can_commit() && !cfg.lose_disk && !cfg.one_write {
        props.push(Property::sometimes(DECIDED_RECOVERY, |m, s| {
            coordinators(&m.cfg, s)
                .any(|(i, c)| c.recovered_commits && c.commits.is_empty() && !s.crashed[i])
        }));
    }
    props
}

fn seen<'a>(m: &TwopcModel, s: &'a SysState) -> impl Iterator<Item = &'a Outcome> {
    clients(&m.cfg, s).flat_map(|c| c.seen.iter())
}

/// Every outcome a client has, with the request it made.
fn requests_seen<'a>(
    m: &'a TwopcModel,
    s: &'a SysState,
) -> impl Iterator<Item = (&'a Request, &'a Outcome)> {
    m.client_configs()
        .zip(clients(&m.cfg, s))
        .flat_map(|(cfg, c)| cfg.requests.iter().zip(c.seen.iter()))
}

/// What participant `i` is asked to hold or credit for `op`, if it is
/// touched (and the operation is valid).
fn change_for(i: usize, op: &Operation) -> Option<Change> {
    op.change_at(i == WALLET).flatten()
}

/// A transaction a participant applied: its request and what was taken
/// (a hold) or given (a credit).
struct Applied {
    txn: TxnId,
    req: Option<RequestId>,
    change: Option<Change>,
}

impl Applied {
    fn op(&self) -> Option<&Op> {
        self.change.as_ref().map(Change::op)
    }
}

/// The participants of `txn`: those the coordinator asked to prepare it
/// (a purchase asks both, a top-up the wallet only).
fn parties(s: &SysState, txn: TxnId) -> impl Iterator<Item = usize> + '_ {
    [WALLET, ORDER].into_iter().filter(move |p| {
        s.history
            .prepared
            .contains_key(&ByParticipant(Id::from(*p), txn))
    })
}

/// What participant `i` applied: the commits it still remembers, and those
/// it acknowledged (a participant acks a commit in the step that applies
/// it) and has since forgotten because the coordinator's floor settled them.
/// What was asked of it then comes from the prepares in the history.
fn applied<'a>(s: &'a SysState, i: usize, p: &'a PartState) -> impl Iterator<Item = Applied> + 'a {
    let remembered = p
        .data
        .finished
        .iter()
        .filter(|(_, f)| f.committed)
        .map(move |(t, f)| {
            // Whether it was a credit: from what it was asked (a finished
            // record does not say).
            let asked = s.history.prepared.get(&ByParticipant(Id::from(i), *t));
            let credit = asked.is_some_and(|(_, c)| c.is_credit());
            Applied {
                txn: *t,
                req: f.req.clone(),
                change: f.op.clone().map(|op| match credit {
                    true => Change::Credit(op),
                    false => Change::Hold(op),
                }),
            }
        });
    let forgotten = s
        .history
        .acks
        .iter()
        .filter(move |ByParticipant(id, t)| {
            usize::from(*id) == i && !p.data.finished.contains_key(t)
        })
        .map(move |ByParticipant(id, t)| {
            let asked = s.history.prepared.get(&ByParticipant(id, t));
            Applied {
                txn: t,
                req: asked.map(|(r, _)| r.clone()),
                change: asked.map(|(_, c)| c.clone()),
            }
        });
    remembered.chain(forgotten)
}

fn atomic(_: &TwopcModel, s: &SysState) -> bool {
    // Committed at one participant (applied) and aborted at another (a
    // finished record that did not commit).
    participants(s).all(|(i, p)| {
        applied(s, i, p).all(|a| {
            participants(s).all(|(_, q)| q.data.finished.get(&a.txn).is_none_or(|f| f.committed))
        })
    })
}

fn commit_needs_every_yes(_: &TwopcModel, s: &SysState) -> bool {
    participants(s).all(|(i, p)| {
        applied(s, i, p).all(|a| {
            parties(s, a.txn).all(|q| {
                s.history
                    .yes_votes
                    .contains(&ByParticipant(Id::from(q), a.txn))
            })
        })
    })
}

/// No participant holds a transaction below its floor unless it is a commit
/// the coordinator still owes: what the floor settles is released, and a
/// prepare arriving below it (late, duplicated) creates nothing.
fn settled_holds_nothing(m: &TwopcModel, s: &SysState) -> bool {
    // A coordinator that lost its log has not yet said what it owes: the
    // holds its floors kept (owed commits of the lost log) await its
    // answers (see *A lost log is never presumed* in twopc-model's docs).
    let lost = |i: usize| s.crashed[i] && s.actor_storages[i].is_none();
    if coordinators(&m.cfg, s).any(|(i, c)| c.learning != Learning::Learned || lost(i)) {
        return true;
    }
    // One write: a floor at the start of an epoch may be the fence an
    // `AskEpoch` raised, which releases nothing (the asker resolves what is
    // held below it, and the holder asks); the next prepare's floor does.
    let fenced =
        |d: &PartStorage, t: &TxnId| m.cfg.one_write && d.floor.n == 0 && t.epoch < d.floor.epoch;
    // One write: a commit is owed before it is saved (the coordinator's
    // memory holds it, the votes imply it), and a crashed coordinator's
    // successor resolves what its memory held; with replicas, a leader
    // that crashed or stepped down takes its memory with it, and the next
    // leader resolves it once elected and learned: until one is, nothing
    // running owes what the last one told.
    if m.cfg.one_write
        && (coordinators(&m.cfg, s).any(|(i, _)| s.crashed[i])
            || !coordinators(&m.cfg, s).any(|(_, c)| c.learning == Learning::Learned))
    {
        return true;
    }
    let owed = |t: &TxnId| {
        owed(s, t)
            || (m.cfg.one_write && coordinators(&m.cfg, s).any(|(_, c)| c.commits.contains_key(t)))
    };
    participants(s).all(|(_, p)| {
        let d = &p.data;
        d.holds
            .range(..d.floor)
            .all(|(t, _)| owed(t) || fenced(d, t))
            && d.credits
                .range(..d.floor)
                .all(|(t, _)| owed(t) || fenced(d, t))
    })
}

/// The coordinator that prepares now (2PC: the running one; replicated: a
/// running leader whose term no replica has promised to outrank), once it has
/// learned its epoch, numbers its next attempt at or above every running
/// participant's floor and above every attempt it holds or finished. This
/// is why a participant never needs to answer a prepare below its floor:
/// only a late duplicate of a settled attempt can be one (the node counts
/// it as `below_floor`). A coordinator that did not move past what the
/// participants saw (a replaced disk, a restored backup, a replica group
/// taking over from 2PC) breaks it.
fn next_attempt_is_new(m: &TwopcModel, s: &SysState) -> bool {
    let promised = replicas(&m.cfg, s)
        .map(|(i, r)| match s.actor_storages[i].as_deref() {
            Some(Storage::Replica(d)) => d.promised.max(r.acceptor.promised),
            _ => r.acceptor.promised,
        })
        .max();
    let current = |i: usize, c: &CoordState| {
        !s.crashed[i]
            && c.learning == Learning::Learned
            && match &**s.actor_states[i] {
                State::Replica(r) => r.leading().is_some_and(|l| Some(l.term) >= promised),
                _ => true,
            }
    };
    coordinators(&m.cfg, s)
        .filter(|(i, c)| current(*i, c))
        .all(|(_, c)| {
            let next = TxnId {
                epoch: c.epoch,
                n: c.next_txn,
            };
            participants(s).all(|(i, p)| {
                let d = &p.data;
                let seen = d
                    .holds
                    .keys()
                    .chain(d.credits.keys())
                    .chain(d.finished.keys())
                    .max();
                s.crashed[i] || (next >= d.floor && seen.is_none_or(|t| next > *t))
            })
        })
}

/// Every `Commit` the network may still deliver to a running participant is
/// for a transaction that participant knows: the runtime's alarm for a
/// decision on an unknown transaction is never a false alarm.
fn commits_are_known(_: &TwopcModel, s: &SysState) -> bool {
    s.network.iter_deliverable().all(|e| match &**e.msg {
        Msg::Commit { txn } => {
            participants(s).all(|(i, p)| e.dst != Id::from(i) || s.crashed[i] || p.data.knows(txn))
        }
        _ => true,
    })
}

/// What a client was told matches what the participants did, for the
/// contents it asked: "committed" means both participants hold or applied
/// that attempt, of this id, for these contents; "aborted" that no attempt of
/// the id is applied anywhere; a refusal that nothing with these contents is
/// applied under the id. ("Unknown" promises nothing about the future.)
fn client_told_the_truth(m: &TwopcModel, s: &SysState) -> bool {
    // The i-th outcome a client holds answers its i-th request, not another.
    let in_order = m.client_configs().zip(clients(&m.cfg, s)).all(|(cfg, c)| {
        c.seen
            .iter()
            .enumerate()
            .all(|(i, o)| cfg.requests.get(i).is_some_and(|r| r.req == o.req))
    });
    let applied_as = |i: usize, p: &PartState, req: &RequestId, txn: Option<TxnId>, c: &Change| {
        let held = txn.is_some_and(|t| match c {
            Change::Hold(op) => p
                .data
                .holds
                .get(&t)
                .is_some_and(|h| &h.req == req && &h.op == op),
            Change::Credit(op) => p
                .data
                .credits
                .get(&t)
                .is_some_and(|h| &h.req == req && &h.op == op),
        });
        held || applied(s, i, p).any(|a| {
            txn.is_none_or(|t| a.txn == t)
                && a.req.as_ref() == Some(req)
                && a.change.as_ref() == Some(c)
        })
    };
    in_order
        && requests_seen(m, s).all(|(r, o)| match (o.verdict, o.txn) {
            (Verdict::Committed, Some(txn)) => participants(s).all(|(i, p)| {
                change_for(i, &r.op).is_none_or(|c| applied_as(i, p, &o.req, Some(txn), &c))
            }),
            (Verdict::Committed, None) => false,
            (Verdict::Aborted(_), _) => participants(s)
                .all(|(i, p)| applied(s, i, p).all(|a| a.req.as_ref() != Some(&o.req))),
            (Verdict::Refused(_), _) => participants(s).all(|(i, p)| {
                !applied(s, i, p).any(|a| {
                    a.req.as_ref() == Some(&o.req)
                        && change_for(i, &r.op).is_some_and(|c| a.change.as_ref() == Some(&c))
                })
            }),
            (Verdict::Unknown, _) => true,
        })
}

fn durable(m: &TwopcModel, s: &SysState) -> bool {
    let stored = |i: usize| s.actor_storages[i].as_deref();
    let part = |i: usize| match stored(i) {
        Some(Storage::Participant(p)) => Some(p),
        _ => None,
    };
    // Every state a restarted (or newly elected) coordinator may start from.
    let restarts = durable_coordinator(&m.cfg, s);
    let h = &s.history;
    // A committed transaction is durably applied: remembered as committed,
    // or settled by the durable floor (applied and acknowledged everywhere,
    // then forgotten) and no longer held.
    let applied_durably = onewrite::applied_durably;
    // One write: a revealed commit may be durable only in the votes (every
    // participant holds its yes or applied it), and a revealed decision
    // only there (`OUTCOME_IMPLIED` judges those).
    let one_write = m.cfg.one_write;
    let implied = |txn: &TxnId| {
        one_write
            && parties(s, *txn)
                .all(|p| part(p).is_some_and(|d| d.prepared(txn) || applied_durably(d, txn)))
    };
    // A yes vote is backed by a durable hold (or a durable decision since,
    // or the durable floor that settled it).
    h.yes_votes.iter().all(|ByParticipant(p, txn)| {
        part(p.into()).is_some_and(|d| {
            d.prepared(&txn) || d.finished.contains_key(&txn) || txn < d.floor
        })
    })
    // An ack is backed by a durable commit.
    && h.acks.iter().all(|ByParticipant(p, txn)| {
        part(p.into()).is_some_and(|d| applied_durably(d, &txn))
    })
    // A revealed commit stays durable at the coordinator until every
    // participant's commit is durable.
    && h.commits_sent.iter().all(|txn| {
        parties(s, txn).all(|p| part(p).is_some_and(|d| applied_durably(d, &txn)))
            || restarts.iter().all(|c| c.as_ref().is_some_and(|c| c.commits.contains_key(&txn)))
            || implied(&txn)
    })
    // A revealed decision is durable, or forgotten by the retention rule
    // (which has forgotten something, durably).
    && h.outcomes_sent.iter().all(|req| {
        one_write || restarts.iter().all(|c| c.as_ref().is_some_and(|c| {
            c.outcomes.by_id.contains_key(req) || c.outcomes.forgotten_below > 0
        }))
    })
}
