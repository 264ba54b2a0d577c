//! The coordinator: turns a client's purchase into a transaction at the wallet
//! and the order service, decides, and makes the decision stick.

use crate::msg::*;
use crate::{Node, Storage};
use serde::{Deserialize, Serialize};
use stateright::actor::{Id, Out};
use std::borrow::Cow;
use std::collections::BTreeSet;

pub use crate::durable::CoordStorage;
pub use learning::{resolve, resolve_among, Heard, Learning, Resolved};

mod flows;
mod learning;
mod reasons;
mod recovered;
mod refunds;
mod timers;
pub use crate::outcomes::{Known, Outcomes, Told, TICKET_GENERATION_BITS};
use reasons::reason_blames;

/// The coordinator's configuration: who the two participants are, and how
/// many outcomes it remembers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Coordinator {
    /// The wallet participant (debited `qty * price` of the user's balance).
    pub wallet: Id,
    /// The order participant (takes `qty` of the sku's stock).
    pub order: Id,
    /// How many outcomes to remember (at least 1): recording one more
    /// forgets the oldest.
    pub retention: usize,
    /// Whether a purchase's order hold carries the price the buyer saw
    /// (`PreparePriced`, checked against the sku's price) rather than the
    /// plain `Prepare` of before (no price check). On only once every
    /// order service understands `PreparePriced` (upgrade participants
    /// first); off in configurations written before prices (their traces
    /// replay as recorded). See docs/shop.md, "Prices".
    #[serde(default)]
    pub prices: bool,
    /// The one-write protocol (docs/one-write.md): the participants'
    /// durable votes are the decision, so a decision is told (and sent)
    /// before the coordinator saves it; a late vote is fenced
    /// (`Msg::Fence`), never presumed; every start resolves what its
    /// predecessor may have told from the participants' fates, recording
    /// again the purchases it told (the tickets stay good). Needs
    /// participants with [`crate::Participant::one_write`]. With replicas,
    /// every new leader does the same before it serves. Off in
    /// configurations written before it.
    #[serde(default)]
    pub one_write: bool,
}

/// A transaction still collecting votes. Volatile: a crash forgets it, and
/// presumed abort makes forgetting safe (nobody was told commit).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Voting {
    /// The request being attempted.
    pub req: RequestId,
    /// What it asks (a re-send with other contents is refused).
    pub op: Operation,
    /// Where to send the outcome.
    pub reply_to: Id,
    /// Participants that voted yes so far.
    pub yes: BTreeSet<Id>,
}

/// A commit decision waiting for acknowledgements.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Committing {
    /// The request it commits.
    pub req: RequestId,
    /// Participants whose commit is durable (volatile: after a restart the
    /// decision is simply sent to everyone again).
    pub acked: BTreeSet<Id>,
}

/// The coordinator's whole state.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CoordState {
    /// Current incarnation (durable).
    pub epoch: u64,
    /// Whether the epoch is known to be above the participants' (volatile).
    pub learning: Learning,
    /// Next attempt number in this incarnation (volatile).
    pub next_txn: u64,
    /// The outcomes remembered (durable).
    pub outcomes: Outcomes,
    /// Undecided transactions (volatile).
    pub voting: Map<TxnId, Voting>,
    /// Decided-commit transactions not fully acknowledged (durable, minus acks).
    pub commits: Map<TxnId, Committing>,
    /// Transactions of a lost log whose outcome is in doubt (durable).
    pub doubts: Map<TxnId, RequestId>,
    /// What remembered requests that are not purchases asked (durable; see
    /// [`CoordStorage::flows`]).
    pub flows: Map<RequestId, Operation>,
    /// The participants of pending commits and doubts that do not touch
    /// every participant (durable).
    pub partial: Map<TxnId, Vec<Id>>,
    /// Units refunded of each remembered committed purchase (durable; see
    /// [`CoordStorage::refunded`]).
    pub refunded: Map<RequestId, Amount>,
    /// Set when this incarnation started from storage holding commit decisions
    /// (lets the checker prove that recovery path is exercised).
    pub recovered_commits: bool,
}

impl CoordState {
    /// The durable projection of this state: what `Save` must have written.
    pub fn storage(&self) -> CoordStorage {
        CoordStorage {
            epoch: self.epoch,
            outcomes: self.outcomes.clone(),
            commits: self
                .commits
                .iter()
                .map(|(t, c)| (*t, c.req.clone()))
                .collect(),
            doubts: self.doubts.clone(),
            flows: self.flows.clone(),
            partial: self.partial.clone(),
            refunded: self.refunded.clone(),
        }
    }

    /// What this coordinator knows to be settled (see [`Floor`]): every
    /// attempt below the oldest one still collecting votes (or below the next
    /// attempt) is decided, and the commits among them that are not yet
    /// acknowledged by everyone are listed. Attempts of earlier epochs that
    /// are not pending commits were aborted by presumption when this epoch
    /// began. Costs O(unacknowledged commits), nothing on the normal path.
    pub fn floor(&self) -> Floor {
        let next = TxnId {
            epoch: self.epoch,
            n: self.next_txn,
        };
        let below = self.voting.keys().next().copied().unwrap_or(next).min(next);
        let mut owed: Vec<TxnId> = self.commits.range(..below).map(|(t, _)| *t).collect();
        if !self.doubts.is_empty() {
            owed.extend(self.doubts.range(..below).map(|(t, _)| *t));
            owed.sort();
        }
        Floor { below, owed }
    }
}

impl Coordinator {
    pub(crate) fn participants(&self) -> [Id; 2] {
        [self.wallet, self.order]
    }

    /// Start or restart: bump the epoch (durably, before anything is sent),
    /// resume sending every commit decision that is not known to be
    /// acknowledged, and ask the participants what epoch they have seen: no
    /// attempt starts until its epoch is above it. Its own log does not
    /// prove that: a log restored from a backup is behind the epochs it
    /// used since, and numbering attempts from it would reuse attempt
    /// numbers the participants hold or finished (see *Epochs are learned*
    /// in the crate docs).
    pub fn on_start(&self, storage: Option<&CoordStorage>, o: &mut Out<Node>) -> CoordState {
        self.start(storage, true, o)
    }

    /// Start as the new leader of a replica group, from the state a
    /// majority accepted (see the `replica` module): that state is the
    /// group's latest, so it asks only when there is none (a new group, or
    /// one taking over from 2PC).
    pub fn take_over(&self, adopted: Option<&CoordStorage>, o: &mut Out<Node>) -> CoordState {
        // One write: the deposed leader may have told commits no majority
        // accepted (it saves none first), so every new leader resolves
        // from the participants, as every start does.
        self.start(adopted, self.one_write, o)
    }

    fn start(&self, storage: Option<&CoordStorage>, ask: bool, o: &mut Out<Node>) -> CoordState {
        let stored = storage.cloned().unwrap_or_default();
        let ask = ask || storage.is_none();
        let learning = if ask {
            Learning::Asking(Map::new())
        } else {
            Learning::Learned
        };
        let state = CoordState {
            epoch: stored.epoch + 1,
            learning,
            next_txn: 0,
            outcomes: stored.outcomes,
            voting: Map::new(),
            commits: stored
                .commits
                .into_iter()
                .map(|(txn, req)| {
                    let acked = BTreeSet::new();
                    (txn, Committing { req, acked })
                })
                .collect(),
            doubts: stored.doubts,
            flows: stored.flows,
            partial: stored.partial,
            refunded: stored.refunded,
            recovered_commits: storage.is_some_and(|s| !s.commits.is_empty()),
        };
        if ask {
            // The question reveals nothing: it need not wait for the save
            // (with replicas, for the new leader's first state to be chosen).
            o.broadcast(&self.participants(), &Msg::AskEpoch { epoch: state.epoch });
            o.set_timer(Timer::Learn, crate::timeouts::LEARN);
        }
        o.save(Storage::Coordinator(state.storage()));
        for txn in state.commits.keys() {
            o.broadcast(&state.parties_of(self, txn), &Msg::Commit { txn: *txn });
            o.set_timer(Timer::Resend(*txn), crate::timeouts::RESEND);
        }
        state
    }

    /// Handle one message.
    pub fn on_msg(&self, state: &mut Cow<CoordState>, src: Id, msg: Msg, o: &mut Out<Node>) {
        match msg {
            Msg::Epoch {
                asked,
                highest,
                fates,
            } => self.on_epoch(state, src, asked, highest, fates, o),
            _ if state.learning != Learning::Learned => {
                // No attempt may start, and no ticket be handed out (a new
                // generation may make it stale), before the epoch is
                // learned; and nothing is presumed about a transaction
                // before the participants said what they know of it:
                // ignored deliberately, every sender asks again.
            }
            Msg::Purchase {
                req,
                purchase,
                ticket,
            } => self.on_request(state, src, req, purchase.into(), ticket, o),
            Msg::Request { req, op, ticket } => self.on_request(state, src, req, op, ticket, o),
            Msg::Lookup { req } => {
                let reply = match state.known(&req) {
                    Known::Decided(told) => Msg::Outcome(told.outcome(&req)),
                    Known::InProgress(_) => Msg::Status {
                        req,
                        status: Status::InProgress,
                    },
                    Known::Unknown => Msg::Status {
                        req,
                        status: Status::Unknown {
                            ticket: state.outcomes.next,
                        },
                    },
                };
                o.send(src, reply);
            }
            Msg::Vote { txn, ballot } => self.on_vote(state, src, txn, ballot, o),
            Msg::Ack { txn } => self.on_ack(state, src, txn, o),
            Msg::QueryDecision { txn } => {
                if state.commits.contains_key(&txn) {
                    o.send(src, Msg::Commit { txn });
                } else if state.presumes_abort(&txn) {
                    // Presumed abort: a transaction this coordinator does not know
                    // was never decided commit (commit decisions are durable
                    // until every participant acked), so it is aborted.
                    o.send(src, Msg::Abort { txn });
                }
                // Still voting: the decision is not made yet; the asker retries.
                // In doubt: no decision is known; the asker keeps its hold.
                // An attempt of a later epoch is not ours to presume: with a
                // replicated coordinator, a newer leader made it (the one
                // asked is deposed and does not know it yet).
            }
            // Messages meant for other roles are ignored deliberately: only a
            // confused or hostile peer sends them here.
            Msg::Outcome(_)
            | Msg::Status { .. }
            | Msg::Prepare { .. }
            | Msg::PrepareCredit { .. }
            | Msg::PreparePriced { .. }
            | Msg::Commit { .. }
            | Msg::Abort { .. }
            | Msg::AskEpoch { .. }
            | Msg::PreVote { .. }
            | Msg::PreVoteGrant { .. }
            | Msg::Campaign { .. }
            | Msg::Promise { .. }
            | Msg::Accept { .. }
            | Msg::Accepted { .. }
            | Msg::Nack { .. }
            | Msg::Recover { .. }
            | Msg::RecoverReply { .. }
            | Msg::Fence { .. } => {}
        }
    }

    fn on_request(
        &self,
        state: &mut Cow<CoordState>,
        src: Id,
        req: RequestId,
        op: Operation,
        ticket: Option<Ticket>,
        o: &mut Out<Node>,
    ) {
        let refuse = |req, why| {
            Msg::Outcome(Outcome {
                req,
                txn: None,
                verdict: Verdict::Refused(why),
            })
        };
        if !req.is_valid() {
            // Refused and not remembered: an id that long is not stored.
            return o.send(src, refuse(req, Rejection::InvalidId));
        }
        match state.known(&req) {
            Known::Decided(told) if state.asked(&req, told) == op => {
                // A re-send of a decided request: the same answer, from the log.
                return o.send(src, Msg::Outcome(told.outcome(&req)));
            }
            Known::InProgress(Some(asked)) if *asked != op => {
                // The id belongs to another purchase: this one is not made.
                return o.send(src, refuse(req, Rejection::KeyReused));
            }
            Known::Decided(_) => return o.send(src, refuse(req, Rejection::KeyReused)),
            // In progress: the outcome goes out when it is decided (a commit
            // still being delivered whose outcome was forgotten: never again).
            Known::InProgress(_) => return,
            Known::Unknown => {}
        }
        // Unknown: never seen, or its outcome forgotten. Only a ticket no
        // older than anything forgotten since may start it: a stale copy of
        // a purchase decided and forgotten since carries an older ticket.
        match ticket {
            None => {
                let ticket = state.outcomes.next;
                let status = Status::Unknown { ticket };
                return o.send(src, Msg::Status { req, status });
            }
            Some(t) if t < state.outcomes.forgotten_below => {
                let outcome = Outcome {
                    req,
                    txn: None,
                    verdict: Verdict::Unknown,
                };
                return o.send(src, Msg::Outcome(outcome));
            }
            Some(_) => {}
        }
        // Refused before any attempt (invalid, or a refund that cannot
        // be made): the refusal is remembered, so a retry gets it again.
        let changes = match self.changes_in(state, &op) {
            Ok(changes) => changes,
            Err(reason) => {
                let state = state.to_mut();
                let outcome = state.record(req, op, None, Verdict::Aborted(reason), self.retention);
                o.save(Storage::Coordinator(state.storage()));
                return o.send(src, Msg::Outcome(outcome));
            }
        };
        let state = state.to_mut();
        let txn = TxnId {
            epoch: state.epoch,
            n: state.next_txn,
        };
        state.next_txn += 1;
        let parties: Vec<Id> = changes.iter().map(|(p, _)| *p).collect();
        state.voting.insert(
            txn,
            Voting {
                req: req.clone(),
                op,
                reply_to: src,
                yes: BTreeSet::new(),
            },
        );
        let floor = state.floor();
        let asked = &state.voting[&txn].op;
        for (p, change) in changes {
            let prepare = self.prepare(p, asked, txn, req.clone(), change, floor.clone(), &parties);
            o.send(p, prepare);
        }
        o.set_timer(Timer::Votes(txn), crate::timeouts::VOTES);
    }

    fn on_vote(
        &self,
        state: &mut Cow<CoordState>,
        src: Id,
        txn: TxnId,
        ballot: Ballot,
        o: &mut Out<Node>,
    ) {
        if !self.participants().contains(&src) {
            return; // Not a participant of this cluster: ignored deliberately.
        }
        let Some(voting) = state.voting.get(&txn) else {
            // (A vote from a participant the transaction does not touch
            // finds no commit and no hold to release: ignored below.)
            if state.commits.contains_key(&txn) {
                // The participant lost our decision; tell it again.
                o.send(src, Msg::Commit { txn });
            } else if ballot == Ballot::Yes && state.presumes_abort(&txn) {
                // A late yes for an attempt that is aborted or forgotten:
                // presumed abort lets the voter release its hold now.
                o.send(src, Msg::Abort { txn });
            }
            return;
        };
        let parties = self.parties(&voting.op);
        if !parties.contains(&src) {
            return; // Not asked: a confused participant, ignored deliberately.
        }
        match ballot {
            Ballot::No(refusal) => {
                let reason = reasons::reason_for(src == self.wallet, refusal);
                self.abort(state.to_mut(), txn, reason, o);
            }
            Ballot::Yes => {
                if voting.yes.contains(&src) {
                    return; // Duplicate vote.
                }
                let state = state.to_mut();
                let voting = state.voting.get_mut(&txn).expect("checked above");
                voting.yes.insert(src);
                if voting.yes.len() == parties.len() {
                    self.commit(state, txn, o);
                }
            }
        }
    }

    /// Every participant voted yes: make the decision durable, then reveal it.
    fn commit(&self, state: &mut CoordState, txn: TxnId, o: &mut Out<Node>) {
        let voting = state.voting.remove(&txn).expect("caller checked");
        let parties = self.parties(&voting.op);
        if parties.len() < self.participants().len() {
            state.partial.insert(txn, parties.clone());
        }
        // (The commit is pending before the outcome is recorded, so that
        // recording it never forgets the operation the commit needs; a
        // refund's count rises in the same durable write as its decision.)
        state.raise_refunded(&voting.op);
        // (Only a purchase's outcome can be rebuilt from the participants'
        // fates at a restart: see `told_purchases`.)
        let purchase = matches!(voting.op, Operation::Purchase(_));
        state.commits.insert(
            txn,
            Committing {
                req: voting.req.clone(),
                acked: BTreeSet::new(),
            },
        );
        let outcome = state.record(
            voting.req,
            voting.op,
            Some(txn),
            Verdict::Committed,
            self.retention,
        );
        // Persist before send: the Save comes first; a runtime sends the
        // messages below only once it is durable. One write: every yes is
        // durable at its voter, so a purchase's commit is decided already;
        // it is saved later, off the path (by the save that forgets it, or
        // the next start's resolution, which records its outcome again
        // from the two debits). Any other operation's decision still saves
        // first: a refund's count (`refunded`) is known nowhere else, and
        // what a top-up or restock asked cannot be rebuilt from one credit.
        if !self.one_write || !purchase {
            o.save(Storage::Coordinator(state.storage()));
        }
        o.cancel_timer(Timer::Votes(txn));
        o.broadcast(&parties, &Msg::Commit { txn });
        o.send(voting.reply_to, Msg::Outcome(outcome));
        o.set_timer(Timer::Resend(txn), crate::timeouts::RESEND);
    }

    /// Abort `txn`. The abort itself need not be durable (presumed abort), but
    /// the outcome the client will see must be: otherwise a stale copy of the
    /// request, arriving after a crash, could start a new attempt and commit
    /// what the client was told had failed.
    fn abort(&self, state: &mut CoordState, txn: TxnId, reason: AbortReason, o: &mut Out<Node>) {
        let voting = state.voting.remove(&txn).expect("caller checked");
        let parties = self.parties(&voting.op);
        let outcome = state.record(
            voting.req,
            voting.op,
            Some(txn),
            Verdict::Aborted(reason),
            self.retention,
        );
        // Saved before it is told, under one write too: the abort follows a
        // durable no (or a granted fence), which no later vote can undo,
        // but the outcome's contents are not known at the participants (a
        // fenced one never heard them), so a restart could not record it
        // again, and a stale copy of the request would start it anew.
        // Aborts are off the commit path.
        o.save(Storage::Coordinator(state.storage()));
        o.cancel_timer(Timer::Votes(txn));
        // Only yes-voters hold anything; a participant that has not voted yet
        // records the abort so that a late prepare is refused.
        for p in parties {
            let voted_no = !voting.yes.contains(&p) && reason_blames(reason, p == self.wallet);
            if !voted_no {
                o.send(p, Msg::Abort { txn });
            }
        }
        o.send(voting.reply_to, Msg::Outcome(outcome));
    }

    fn on_ack(&self, state: &mut Cow<CoordState>, src: Id, txn: TxnId, o: &mut Out<Node>) {
        let Some(committing) = state.commits.get(&txn) else {
            return; // Already complete (a duplicate ack).
        };
        let parties = state.parties_of(self, &txn);
        if !parties.contains(&src) || committing.acked.contains(&src) {
            return;
        }
        let state = state.to_mut();
        let committing = state.commits.get_mut(&txn).expect("checked above");
        committing.acked.insert(src);
        if committing.acked.len() == parties.len() {
            // Every participant's commit is durable: the decision may be
            // forgotten (presumed abort never needs it again).
            let done = state.commits.remove(&txn).expect("checked above");
            state.partial.remove(&txn);
            state.tidy_flow(&done.req);
            o.save(Storage::Coordinator(state.storage()));
            o.cancel_timer(Timer::Resend(txn));
        }
    }
}

#[cfg(test)]
#[path = "coordinator_tests.rs"]
pub(crate) mod tests;

#[cfg(test)]
#[path = "coordinator/flows_tests.rs"]
mod flows_tests;

#[cfg(test)]
#[path = "coordinator/refunds_tests.rs"]
mod refunds_tests;
