//! A participant: the wallet (balances per user) or the order service (stock
//! per sku). Both guard a map of levels and take the same escrow holds, so one
//! implementation serves both; [`Resource`] only names which one it is.

use crate::msg::*;
use crate::{Node, Storage};
use serde::{Deserialize, Serialize};
use stateright::actor::{Id, Out};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Which resource a participant guards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Resource {
    /// User balances; a purchase debits `qty * price`.
    Wallet,
    /// Sku stock; a purchase takes `qty` units.
    Order,
}

/// A participant's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Participant {
    /// Wallet or order service.
    pub resource: Resource,
    /// The coordinator, or every replica of a replicated coordinator: who
    /// may drive this participant, and whom to ask about in-doubt
    /// transactions (all of them: whichever leads answers).
    pub coordinators: Vec<Id>,
    /// Levels on first start (no storage yet): balances or stock.
    pub initial: BTreeMap<Key, Amount>,
}

/// A prepared transaction's reservation: `op.amount` of `op.key` is set aside
/// (escrow, not a lock: other transactions on the same key still prepare if
/// the level net of all holds covers them).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Hold {
    /// The request the transaction attempts.
    pub req: RequestId,
    /// What is held.
    pub op: Op,
}

/// A transaction this participant has finished.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Finished {
    /// The request (unknown when an abort arrived before any prepare).
    pub req: Option<RequestId>,
    /// What was (or would have been) applied.
    pub op: Option<Op>,
    /// Applied (`true`) or not.
    pub committed: bool,
}

/// The participant's durable state. A participant has no other state worth
/// keeping, so its whole state is this (plus one diagnostic flag).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PartStorage {
    /// Committed levels: balances or stock, net of committed purchases only.
    pub levels: Map<Key, Amount>,
    /// Prepared (voted yes, undecided) transactions.
    pub holds: Map<TxnId, Hold>,
    /// Decided transactions, remembered so that duplicates and late prepares
    /// change nothing, until the coordinator's floor settles them.
    pub finished: Map<TxnId, Finished>,
    /// The highest floor heard from the coordinator (see [`Floor`]): every
    /// transaction below it is decided, so a prepare below it is ignored, and
    /// a commit below it that is neither held nor finished here was applied
    /// and forgotten (it is acknowledged again).
    pub floor: TxnId,
}

impl PartStorage {
    /// The highest coordinator epoch this participant has a durable trace
    /// of: its floor's, or that of a transaction it holds or finished.
    /// O(1): the maps are ordered by transaction.
    pub fn highest_epoch(&self) -> u64 {
        let last = |m: Option<TxnId>| m.map_or(0, |t| t.epoch);
        self.floor
            .epoch
            .max(last(self.holds.keys().next_back().copied()))
            .max(last(self.finished.keys().next_back().copied()))
    }

    /// What is held on `key` by prepared transactions.
    pub fn held(&self, key: &str) -> Amount {
        self.holds
            .values()
            .filter(|h| h.op.key == key)
            .map(|h| h.op.amount)
            .sum()
    }

    /// Whether this participant can account for a decision on `txn`: it
    /// holds it (prepared), has finished it, or its floor settled it (a
    /// commit below the floor was applied and forgotten). A `Commit` for a
    /// transaction it cannot account for never comes from a correct
    /// coordinator talking to this participant's durable state (a commit
    /// needs our yes, and our yes needs a durable hold): it means
    /// acknowledged data was lost, or a bug. A pure query for the runtime's
    /// alarm; `on_msg` ignores such a commit either way.
    pub fn knows(&self, txn: &TxnId) -> bool {
        *txn < self.floor || self.holds.contains_key(txn) || self.finished.contains_key(txn)
    }
}

/// The participant's whole state.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PartState {
    /// Everything durable.
    pub data: PartStorage,
    /// Set when this incarnation recovered prepared holds from storage (lets
    /// the checker prove that recovery path is exercised).
    pub recovered_holds: bool,
}

impl Participant {
    /// Start or restart from storage. Prepared holds survive; each asks the
    /// coordinator for its decision on a timer.
    pub fn on_start(&self, storage: Option<&PartStorage>, o: &mut Out<Node>) -> PartState {
        let data = storage.cloned().unwrap_or_else(|| PartStorage {
            levels: self.initial.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            ..PartStorage::default()
        });
        for txn in data.holds.keys() {
            o.set_timer(Timer::Query(*txn), crate::timeouts::QUERY);
        }
        PartState {
            recovered_holds: !data.holds.is_empty(),
            data,
        }
    }

    /// Handle one message.
    pub fn on_msg(&self, state: &mut Cow<PartState>, src: Id, msg: Msg, o: &mut Out<Node>) {
        if !self.coordinators.contains(&src) {
            // Only the coordinator drives a participant; anything else is
            // ignored deliberately.
            return;
        }
        match msg {
            Msg::Prepare {
                txn,
                req,
                op,
                floor,
            } => self.on_prepare(state, src, txn, req, op, &floor, o),
            Msg::Commit { txn } => {
                if let Some(done) = state.data.finished.get(&txn) {
                    if done.committed {
                        o.send(src, Msg::Ack { txn }); // Our ack was lost.
                    }
                    // Commit of a transaction we aborted cannot come from a
                    // correct coordinator (we never voted yes and then
                    // aborted by ourselves): ignored deliberately.
                    return;
                }
                let Some(hold) = state.data.holds.get(&txn).cloned() else {
                    if txn < state.data.floor {
                        // Below the floor, neither held nor finished: applied
                        // and acknowledged, then forgotten. Our ack was lost.
                        o.send(src, Msg::Ack { txn });
                    }
                    return; // Otherwise never prepared: no correct coordinator commits it.
                };
                let data = &mut state.to_mut().data;
                data.holds.remove(&txn);
                let level = data.levels.get_mut(&hold.op.key).expect("held keys exist");
                // Cannot underflow: the hold was covered by the level when prepared,
                // and holds only shrink the available amount.
                *level = level.saturating_sub(hold.op.amount);
                data.finished.insert(txn, finished(Some(hold), true));
                o.save(Storage::Participant(data.clone()));
                o.cancel_timer(Timer::Query(txn));
                o.send(src, Msg::Ack { txn });
            }
            Msg::AskEpoch { epoch: asked } => {
                // Read from what is durable: the floor (raised by every
                // prepare acted on), the holds and the finished transactions.
                let highest = state.data.highest_epoch();
                o.send(src, Msg::Epoch { asked, highest });
            }
            Msg::Abort { txn } => {
                if state.data.finished.contains_key(&txn) || txn < state.data.floor {
                    return; // Decided already (a duplicate), or settled.
                }
                let data = &mut state.to_mut().data;
                let hold = data.holds.remove(&txn);
                data.finished.insert(txn, finished(hold, false));
                // Durable so that a late prepare of this attempt is refused.
                o.save(Storage::Participant(data.clone()));
                o.cancel_timer(Timer::Query(txn));
            }
            // Messages meant for other roles: ignored deliberately.
            Msg::Purchase { .. }
            | Msg::Lookup { .. }
            | Msg::Status { .. }
            | Msg::Outcome(_)
            | Msg::Vote { .. }
            | Msg::Ack { .. }
            | Msg::QueryDecision { .. }
            | Msg::Epoch { .. }
            | Msg::Campaign { .. }
            | Msg::Promise { .. }
            | Msg::Accept { .. }
            | Msg::Accepted { .. }
            | Msg::Nack { .. } => {}
        }
    }

    /// Learn what the coordinator has settled: raise the floor, release the
    /// holds it settles (they were aborted, by presumption or by a decision
    /// that did not reach us) and forget the transactions it settles. Returns
    /// whether anything changed. Costs O(what is released or forgotten, plus
    /// the owed commits), nothing when nothing is settled.
    fn apply_floor(&self, state: &mut Cow<PartState>, floor: &Floor, o: &mut Out<Node>) -> bool {
        let data = &state.data;
        let raise = floor.below > data.floor;
        let dead_holds = settled(&data.holds, floor);
        let forgotten = settled(&data.finished, floor);
        if !raise && dead_holds.is_empty() && forgotten.is_empty() {
            return false;
        }
        let data = &mut state.to_mut().data;
        data.floor = data.floor.max(floor.below);
        for txn in dead_holds {
            data.holds.remove(&txn);
            o.cancel_timer(Timer::Query(txn));
        }
        for txn in forgotten {
            data.finished.remove(&txn);
        }
        true
    }

    #[allow(clippy::too_many_arguments)]
    fn on_prepare(
        &self,
        state: &mut Cow<PartState>,
        src: Id,
        txn: TxnId,
        req: RequestId,
        op: Op,
        floor: &Floor,
        o: &mut Out<Node>,
    ) {
        // Release what the coordinator settled before judging this prepare:
        // after a coordinator restart, the dead attempts of the old epoch no
        // longer count against the level (a refusal is only ever true).
        let changed = self.apply_floor(state, floor, o);
        if txn < state.data.floor || state.data.finished.contains_key(&txn) {
            // Settled, or decided already: a late prepare changes nothing.
            if changed {
                o.save(Storage::Participant(state.data.clone()));
            }
            return;
        }
        if state.data.holds.contains_key(&txn) {
            // Already prepared: the coordinator may have lost our vote.
            if changed {
                o.save(Storage::Participant(state.data.clone()));
            }
            o.send(
                src,
                Msg::Vote {
                    txn,
                    ballot: Ballot::Yes,
                },
            );
            return;
        }
        let refusal = match state.data.levels.get(&op.key) {
            None => Some(Refusal::UnknownKey),
            Some(level) if level.saturating_sub(state.data.held(&op.key)) < op.amount => {
                Some(Refusal::Insufficient)
            }
            Some(_) => None,
        };
        let data = &mut state.to_mut().data;
        let ballot = match refusal {
            None => {
                data.holds.insert(txn, Hold { req, op });
                o.set_timer(Timer::Query(txn), crate::timeouts::QUERY);
                Ballot::Yes
            }
            Some(refusal) => {
                let hold = Some(Hold { req, op });
                data.finished.insert(txn, finished(hold, false));
                Ballot::No(refusal)
            }
        };
        // Persist before send: the hold is durable before the yes vote leaves.
        o.save(Storage::Participant(data.clone()));
        // To whoever asked: with a replicated coordinator, the replica leading.
        o.send(src, Msg::Vote { txn, ballot });
    }

    /// Handle a timer.
    pub fn on_timeout(&self, state: &mut Cow<PartState>, timer: &Timer, o: &mut Out<Node>) {
        match timer {
            Timer::Query(txn) => {
                if state.data.holds.contains_key(txn) {
                    o.broadcast(&self.coordinators, &Msg::QueryDecision { txn: *txn });
                    o.set_timer(Timer::Query(*txn), crate::timeouts::QUERY);
                }
            }
            // Other roles' timers are never set by a participant.
            Timer::Retry | Timer::Votes(_) | Timer::Resend(_) | Timer::Learn | Timer::Replica => {}
        }
    }
}

/// The transactions of `m` that `floor` settles.
fn settled<V: Clone>(m: &Map<TxnId, V>, floor: &Floor) -> Vec<TxnId> {
    m.range(..floor.below)
        .map(|(t, _)| *t)
        .filter(|t| floor.settles(t))
        .collect()
}

fn finished(hold: Option<Hold>, committed: bool) -> Finished {
    Finished {
        req: hold.as_ref().map(|h| h.req.clone()),
        op: hold.map(|h| h.op),
        committed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    const COORD: usize = 0;

    fn wallet() -> Participant {
        Participant {
            resource: Resource::Wallet,
            coordinators: vec![Id::from(COORD)],
            initial: BTreeMap::from([("alice".to_string(), 10)]),
        }
    }

    fn start() -> PartState {
        wallet().on_start(None, &mut Out::new())
    }

    fn prepare(n: u64, amount: u64) -> Msg {
        prepare_with_floor(n, amount, Floor::default())
    }

    fn prepare_with_floor(n: u64, amount: u64, floor: Floor) -> Msg {
        Msg::Prepare {
            txn: txn(n),
            req: req(n + 1),
            op: Op {
                key: "alice".into(),
                amount,
            },
            floor,
        }
    }

    fn deliver(state: &PartState, msg: Msg) -> (PartState, Out<Node>) {
        let mut cow = Cow::Borrowed(state);
        let mut o = Out::new();
        wallet().on_msg(&mut cow, Id::from(COORD), msg, &mut o);
        (cow.into_owned(), o)
    }

    #[test]
    fn asked_its_epoch_it_tells_the_highest_it_has_a_durable_trace_of() {
        let ask = |s: &PartState| {
            let (same, out) = deliver(s, Msg::AskEpoch { epoch: 7 });
            assert_eq!(&same, s, "a question changes nothing");
            out
        };
        let answer =
            |highest| expect(|o| o.send(Id::from(COORD), Msg::Epoch { asked: 7, highest }));
        assert_eq!(cmds(&ask(&start())), answer(0));
        // A hold of epoch 3, under a floor of epoch 2.
        let floor = Floor {
            below: t(2, 0),
            owed: vec![],
        };
        let (held, _) = deliver_prepare(&start(), t(3, 1), 1, floor);
        assert_eq!(cmds(&ask(&held)), answer(3));
        // Finished at epoch 4.
        let (done, _) = deliver(&held, Msg::Abort { txn: t(4, 0) });
        assert_eq!(cmds(&ask(&done)), answer(4));
    }

    #[test]
    fn prepare_saves_the_hold_then_votes_yes() {
        let (state, out) = deliver(&start(), prepare(0, 6));
        assert_eq!(state.data.holds[&txn(0)].op.amount, 6);
        assert_eq!(
            cmds(&out),
            expect(|o| {
                o.set_timer(Timer::Query(txn(0)), crate::timeouts::QUERY);
                o.save(Storage::Participant(state.data.clone()));
                o.send(
                    Id::from(COORD),
                    Msg::Vote {
                        txn: txn(0),
                        ballot: Ballot::Yes,
                    },
                );
            })
        );
    }

    #[test]
    fn prepare_beyond_balance_net_of_holds_votes_no() {
        let (held, _) = deliver(&start(), prepare(0, 6));
        let (state, out) = deliver(&held, prepare(1, 6));
        assert!(!state.data.finished[&txn(1)].committed);
        assert_eq!(
            cmds(&out),
            expect(|o| {
                o.save(Storage::Participant(state.data.clone()));
                let ballot = Ballot::No(Refusal::Insufficient);
                o.send(
                    Id::from(COORD),
                    Msg::Vote {
                        txn: txn(1),
                        ballot,
                    },
                );
            })
        );
        // Escrow, not a lock: a purchase the rest covers still prepares.
        let (_, out) = deliver(&held, prepare(2, 4));
        assert!(cmds(&out).contains("Yes"));
    }

    #[test]
    fn commit_applies_once_and_a_duplicate_is_only_acked() {
        let (held, _) = deliver(&start(), prepare(0, 6));
        let (done, out) = deliver(&held, Msg::Commit { txn: txn(0) });
        assert_eq!(done.data.levels["alice"], 4);
        assert!(done.data.holds.is_empty());
        assert_eq!(
            cmds(&out),
            expect(|o| {
                o.save(Storage::Participant(done.data.clone()));
                o.cancel_timer(Timer::Query(txn(0)));
                o.send(Id::from(COORD), Msg::Ack { txn: txn(0) });
            })
        );
        let (again, out) = deliver(&done, Msg::Commit { txn: txn(0) });
        assert_eq!(again, done);
        assert_eq!(
            cmds(&out),
            expect(|o| o.send(Id::from(COORD), Msg::Ack { txn: txn(0) }))
        );
    }

    #[test]
    fn abort_before_prepare_makes_the_late_prepare_a_no_op() {
        let (aborted, out) = deliver(&start(), Msg::Abort { txn: txn(0) });
        assert_eq!(
            cmds(&out),
            expect(|o| {
                o.save(Storage::Participant(aborted.data.clone()));
                o.cancel_timer(Timer::Query(txn(0)));
            })
        );
        let (after, out) = deliver(&aborted, prepare(0, 6));
        assert_eq!(after, aborted);
        assert!(out.is_empty());
    }

    #[test]
    fn restart_keeps_holds_and_queries_them() {
        let (held, _) = deliver(&start(), prepare(0, 6));
        let mut o = Out::new();
        let restarted = wallet().on_start(Some(&held.data), &mut o);
        assert_eq!(restarted.data, held.data);
        assert!(restarted.recovered_holds);
        assert_eq!(
            cmds(&o),
            expect(|o| o.set_timer(Timer::Query(txn(0)), crate::timeouts::QUERY))
        );
    }

    fn t(epoch: u64, n: u64) -> TxnId {
        TxnId { epoch, n }
    }

    fn deliver_prepare(
        state: &PartState,
        txn: TxnId,
        amount: u64,
        floor: Floor,
    ) -> (PartState, Out<Node>) {
        let msg = Msg::Prepare {
            txn,
            req: req(7),
            op: Op {
                key: "alice".into(),
                amount,
            },
            floor,
        };
        deliver(state, msg)
    }

    #[test]
    fn a_floor_releases_a_dead_hold_before_the_prepare_is_judged() {
        // A hold of epoch 1 (its coordinator restarted before deciding).
        let (held, _) = deliver(&start(), prepare(0, 10));
        // Epoch 2's first prepare: nothing of epoch 1 is owed.
        let floor = Floor {
            below: t(2, 0),
            owed: vec![],
        };
        let (state, out) = deliver_prepare(&held, t(2, 0), 10, floor);
        assert!(!state.data.holds.contains_key(&txn(0)));
        assert_eq!(state.data.holds[&t(2, 0)].op.amount, 10);
        assert_eq!(state.data.floor, t(2, 0));
        assert_eq!(
            cmds(&out),
            expect(|o| {
                o.cancel_timer(Timer::Query(txn(0)));
                o.set_timer(Timer::Query(t(2, 0)), crate::timeouts::QUERY);
                o.save(Storage::Participant(state.data.clone()));
                o.send(
                    Id::from(COORD),
                    Msg::Vote {
                        txn: t(2, 0),
                        ballot: Ballot::Yes,
                    },
                );
            })
        );
    }

    #[test]
    fn an_owed_commit_keeps_its_hold_and_still_counts() {
        let (held, _) = deliver(&start(), prepare(0, 10));
        let floor = Floor {
            below: t(2, 0),
            owed: vec![txn(0)],
        };
        let (state, out) = deliver_prepare(&held, t(2, 0), 10, floor);
        assert!(state.data.holds.contains_key(&txn(0)));
        assert!(cmds(&out).contains("Insufficient"));
        // The commit it is owed still applies.
        let (done, _) = deliver(&state, Msg::Commit { txn: txn(0) });
        assert_eq!(done.data.levels["alice"], 0);
    }

    #[test]
    fn below_the_floor_finished_is_forgotten_late_prepares_ignored_commits_acked() {
        let (held, _) = deliver(&start(), prepare(0, 6));
        let (done, _) = deliver(&held, Msg::Commit { txn: txn(0) });
        let floor = Floor {
            below: txn(1),
            owed: vec![],
        };
        let (state, _) = deliver_prepare(&done, txn(1), 1, floor);
        assert!(state.data.finished.is_empty(), "txn 1.0 is forgotten");
        // A late duplicate of the first prepare: ignored, nothing held.
        let (after, out) = deliver(&state, prepare(0, 6));
        assert_eq!(after, state);
        assert!(out.is_empty());
        // A late duplicate of its commit: acknowledged, not applied again.
        let (after, out) = deliver(&state, Msg::Commit { txn: txn(0) });
        assert_eq!(after, state);
        assert_eq!(
            cmds(&out),
            expect(|o| o.send(Id::from(COORD), Msg::Ack { txn: txn(0) }))
        );
        assert_eq!(after.data.levels["alice"], 4, "applied once");
    }

    /// `knows` accounts for a decision on every transaction the participant
    /// held, finished or settled below its floor, and for nothing else; a
    /// commit it cannot account for changes nothing (the runtime alarms).
    #[test]
    fn knows_what_it_held_finished_or_settled_and_nothing_else() {
        let fresh = start();
        assert!(!fresh.data.knows(&txn(0)), "never prepared");
        let (held, _) = deliver(&fresh, prepare(0, 6));
        assert!(held.data.knows(&txn(0)), "held");
        assert!(!held.data.knows(&txn(1)));
        let (done, _) = deliver(&held, Msg::Commit { txn: txn(0) });
        assert!(done.data.knows(&txn(0)), "finished");
        let (refused, _) = deliver(&done, prepare(1, 60));
        assert!(refused.data.knows(&txn(1)), "finished by a refusal");
        let floor = Floor {
            below: txn(2),
            owed: vec![],
        };
        let (settled, _) = deliver_prepare(&refused, txn(5), 1, floor);
        assert!(
            settled.data.finished.is_empty(),
            "forgotten below the floor"
        );
        assert!(settled.data.knows(&txn(0)) && settled.data.knows(&txn(1)));
        assert!(
            !settled.data.knows(&txn(3)),
            "at or above the floor, unseen"
        );
        // The runtime's alarm case: the actor changes nothing and sends nothing.
        let (after, out) = deliver(&settled, Msg::Commit { txn: txn(3) });
        assert_eq!(after, settled);
        assert!(out.is_empty());
    }

    #[test]
    fn strangers_are_ignored() {
        let mut cow = Cow::Owned(start());
        let mut o = Out::new();
        wallet().on_msg(&mut cow, Id::from(7), prepare(0, 6), &mut o);
        assert!(o.is_empty());
        assert!(cow.data.holds.is_empty());
    }
}
