//! How a coordinator that starts without a log learns its epoch from the
//! participants, and what the lost log may have decided (see *Epochs are
//! learned* and *A lost log is never presumed* in the crate docs); and how
//! an operator decides what stays in doubt.

use crate::coordinator::{Committing, CoordState, Coordinator};
use crate::msg::*;
use crate::outcomes::TICKET_GENERATION_BITS;
use crate::{Node, Storage};
use serde::{Deserialize, Serialize};
use stateright::actor::{Id, Out};
use std::borrow::Cow;
use std::collections::BTreeSet;

/// Whether a coordinator knows its epoch is above every epoch the
/// participants have seen (see *Epochs are learned* in the crate docs).
/// Volatile: every start asks again.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Learning {
    /// Asking every participant: the answers heard so far (the highest
    /// epoch each has seen, and what it knows of each transaction).
    Asking(Map<Id, Heard>),
    /// Every participant answered, and the epoch is above what they saw:
    /// attempts may start.
    Learned,
}

/// One participant's answer: the highest epoch it has seen, and the fate of
/// every transaction it holds or remembers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Heard {
    pub highest: u64,
    pub fates: Vec<(TxnId, Fate)>,
}

/// What the participants' answers say the lost log decided, for each
/// transaction one of them holds (the rest are settled or not ours).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Some participant committed it: the commit is owed to the others.
    pub commit: Map<TxnId, RequestId>,
    /// Every participant holds it: nobody knows the decision.
    pub doubt: Map<TxnId, RequestId>,
    /// Some participant aborted it or never prepared it: it cannot have
    /// committed (a commit needs every yes, and a participant forgets a
    /// commit only once every participant acknowledged it).
    pub abort: Vec<TxnId>,
    /// The participants of the transactions above that do not touch every
    /// participant (a pending credit names them: [`Fate::HeldAmong`]).
    pub parties: Map<TxnId, Vec<Id>>,
}

/// Sort the transactions the participants hold by what the others know,
/// every participant counting.
pub fn resolve(heard: &[&Heard]) -> Resolved {
    let ids: Vec<(Id, &Heard)> = heard
        .iter()
        .enumerate()
        .map(|(i, h)| (Id::from(i), *h))
        .collect();
    resolve_among(&ids)
}

/// Sort the transactions the participants hold by what the *other
/// participants of each transaction* know: a transaction that touches some
/// participants only (a top-up) is judged among them (one that never heard
/// of it proves nothing).
pub fn resolve_among(heard: &[(Id, &Heard)]) -> Resolved {
    let mut out = Resolved::default();
    let fate = |h: &Heard, txn: &TxnId| {
        h.fates
            .binary_search_by(|(t, _)| t.cmp(txn))
            .ok()
            .map(|i| h.fates[i].1.clone())
    };
    for (_, h) in heard {
        for (txn, f) in &h.fates {
            let Some(req) = f.held() else {
                continue;
            };
            let parties = match f {
                Fate::HeldAmong(_, parties) => Some(parties),
                _ => None,
            };
            if out.commit.contains_key(txn)
                || out.doubt.contains_key(txn)
                || out.abort.contains(txn)
            {
                continue;
            }
            let among = |id: &Id| parties.is_none_or(|p| p.contains(id));
            let all: Vec<Option<Fate>> = heard
                .iter()
                .filter(|(id, _)| among(id))
                .map(|(_, o)| fate(o, txn))
                .collect();
            if all.iter().flatten().any(Fate::committed) {
                out.commit.insert(*txn, req.clone());
            } else if all
                .iter()
                .all(|f| f.as_ref().is_some_and(|f| f.held().is_some()))
            {
                out.doubt.insert(*txn, req.clone());
            } else {
                out.abort.push(*txn);
                continue;
            }
            if let Some(p) = parties.filter(|p| p.len() < heard.len()) {
                out.parties.insert(*txn, p.clone());
            }
        }
    }
    out
}

impl Coordinator {
    /// A participant's answer to `AskEpoch`.
    pub(crate) fn on_epoch(
        &self,
        state: &mut Cow<CoordState>,
        src: Id,
        asked: u64,
        highest: u64,
        fates: Vec<(TxnId, Fate)>,
        o: &mut Out<Node>,
    ) {
        if !self.participants().contains(&src) || asked != state.epoch {
            // Not a participant of this cluster, or an answer to another
            // incarnation's question: ignored deliberately.
            return;
        }
        let Learning::Asking(heard) = &state.learning else {
            return; // Learned already: a duplicate, or a late answer.
        };
        if heard.contains_key(&src) {
            return;
        }
        let state = state.to_mut();
        let Learning::Asking(heard) = &mut state.learning else {
            unreachable!("matched above")
        };
        heard.insert(src, Heard { highest, fates });
        if heard.len() < self.participants().len() {
            return;
        }
        let answers: Vec<(Id, &Heard)> = heard.iter().map(|(id, h)| (*id, h)).collect();
        let learned = answers.iter().map(|(_, h)| h.highest).max().unwrap_or(0);
        // The participants have seen an epoch this log never reached (its
        // start bumped the epoch past every one it used): it is not the
        // cluster's latest (an empty directory, a restored backup). What it
        // lacks is learned from them; a log that is the latest knows every
        // decision, and what it does not know it presumes aborted.
        let moved = learned >= state.epoch;
        // One write: the last incarnation told outcomes it never saved (the
        // participants' durable votes were the decision), so every start
        // resolves from the participants, as for a lost log, except that a
        // transaction every participant holds was committed: nobody could
        // have been told "aborted" without a durable no or fence.
        let resolves = moved || self.one_write;
        let mut resolved = if resolves {
            resolve_among(&answers)
        } else {
            Resolved::default()
        };
        let all_hold = match self.one_write {
            true => std::mem::take(&mut resolved.doubt),
            false => Map::new(),
        };
        // One write, the log the latest: the purchases it may have told
        // committed and not saved, rebuilt from the debits the wallet and
        // the order service name (see `told_purchases`).
        let recovered = match self.one_write && !moved {
            true => self.told_purchases(&answers),
            false => Vec::new(),
        };
        resolved.commit.extend(all_hold.clone());
        state.learning = Learning::Learned;
        o.cancel_timer(Timer::Learn);
        if resolves {
            // Move past it, durably, before anything is prepared. (One
            // write, not moved: the epoch this start took, and the
            // outcomes the last incarnation told and did not save are
            // recorded again below, numbered above every ticket it gave,
            // so that its tickets stay good.)
            match moved {
                true => self.move_past(state, learned),
                false => new_tickets(state),
            }
            // A restored backup decided some of what they hold itself:
            // its log's word stands (an owed commit, a recorded outcome).
            let knows = |txn: &TxnId, req: &RequestId| {
                state.commits.contains_key(txn)
                    || state.doubts.contains_key(txn)
                    || state
                        .outcomes
                        .by_id
                        .get(req)
                        .is_some_and(|t| t.txn == Some(*txn))
            };
            let unknown = |m: Map<TxnId, RequestId>| -> Map<TxnId, RequestId> {
                m.into_iter().filter(|(t, r)| !knows(t, r)).collect()
            };
            resolved.commit = unknown(resolved.commit);
            resolved.doubt = unknown(resolved.doubt);
        }
        for (txn, req) in &resolved.commit {
            let acked = BTreeSet::new();
            let req = req.clone();
            state.commits.insert(*txn, Committing { req, acked });
        }
        for (txn, parties) in resolved.parties {
            if resolved.commit.contains_key(&txn) || resolved.doubt.contains_key(&txn) {
                state.partial.insert(txn, parties);
            }
        }
        state.doubts.extend(resolved.doubt);
        for (txn, req, purchase) in recovered {
            // (A log that still remembers the id knows better.)
            if !state.outcomes.by_id.contains_key(&req) {
                let op = Operation::Purchase(purchase);
                state.record(req, op, Some(txn), Verdict::Committed, self.retention);
            }
        }
        if resolves || !resolved.commit.is_empty() || !state.doubts.is_empty() {
            o.save(Storage::Coordinator(state.storage()));
        }
        // Persist before send: the owed commits go out once they are durable.
        for txn in resolved.commit.keys() {
            o.broadcast(&state.parties_of(self, txn), &Msg::Commit { txn: *txn });
            o.set_timer(Timer::Resend(*txn), crate::timeouts::RESEND);
        }
        for txn in resolved.abort {
            o.broadcast(&self.participants(), &Msg::Abort { txn });
        }
    }

    /// An operator's decision on a transaction in doubt: commit or abort
    /// it, *heuristically* (nobody knows what the lost log decided; a
    /// caller may have been told the other outcome). Returns `false`, and
    /// changes nothing, when `txn` is not in doubt. A commit becomes an
    /// owed commit, delivered until acknowledged; an abort is sent to both
    /// and settled by the next floor.
    pub fn decide_in_doubt(
        &self,
        state: &mut CoordState,
        txn: TxnId,
        commit: bool,
        o: &mut Out<Node>,
    ) -> bool {
        let Some(req) = state.doubts.remove(&txn) else {
            return false;
        };
        let parties = state.parties_of(self, &txn);
        if commit {
            let acked = BTreeSet::new();
            state.commits.insert(txn, Committing { req, acked });
        } else {
            state.partial.remove(&txn);
        }
        o.save(Storage::Coordinator(state.storage()));
        if commit {
            o.broadcast(&parties, &Msg::Commit { txn });
            o.set_timer(Timer::Resend(txn), crate::timeouts::RESEND);
        } else {
            o.broadcast(&parties, &Msg::Abort { txn });
        }
        true
    }

    /// Take the epoch after `learned`, with a new generation of tickets:
    /// every ticket this log handed out before is older than what it now
    /// treats as forgotten, and so is every ticket a lost log handed out
    /// (each generation starts at its epoch times 2^32, above every ticket
    /// of an earlier one, which counted from a lower epoch).
    fn move_past(&self, state: &mut CoordState, learned: u64) {
        state.epoch = learned + 1;
        new_generation(state);
    }
}

/// Start the generation of tickets of `state`'s epoch: every ticket handed
/// out before counts as forgotten.
fn new_generation(state: &mut CoordState) {
    new_tickets(state);
    let generation = state.epoch << TICKET_GENERATION_BITS;
    state.outcomes.forgotten_below = state.outcomes.forgotten_below.max(generation);
}

/// Number what is recorded from now on in the generation of `state`'s
/// epoch, above every ticket an earlier incarnation handed out (each
/// counted below its own epoch's generation), which stay good. An outcome
/// told before the start and recorded again after it is numbered above
/// every ticket handed out before its first decision, as it was then: so
/// when it is forgotten again, those tickets go stale, as they must.
fn new_tickets(state: &mut CoordState) {
    let generation = state.epoch << TICKET_GENERATION_BITS;
    state.outcomes.next = state.outcomes.next.max(generation);
}

#[cfg(test)]
#[path = "learning_tests.rs"]
mod tests;
