//! The coordinator: turns a client's purchase into a transaction at the wallet
//! and the order service, decides, and makes the decision stick.

use crate::msg::*;
use crate::{Node, Storage};
use serde::{Deserialize, Serialize};
use stateright::actor::{Id, Out};
use std::borrow::Cow;
use std::collections::BTreeSet;

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
}

/// Tickets of a coordinator log that had to move past the participants'
/// epoch start at that epoch times 2^this (see `Coordinator::move_past`): a
/// log hands out fewer than 2^32 tickets per epoch it starts from.
pub const TICKET_GENERATION_BITS: u32 = 32;

/// What the coordinator remembers about a decided request.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Told {
    /// Its place in the order outcomes were recorded (see [`Ticket`]).
    pub number: u64,
    /// What was asked, so that the id re-sent with other contents is refused.
    pub purchase: Purchase,
    /// The attempt that decided it (`None` when refused before any attempt).
    pub txn: Option<TxnId>,
    /// Committed or aborted, and why.
    pub verdict: Verdict,
}

impl Told {
    /// The outcome to tell about `req`.
    pub fn outcome(&self, req: &RequestId) -> Outcome {
        Outcome {
            req: req.clone(),
            txn: self.txn,
            verdict: self.verdict,
        }
    }
}

/// The outcomes the coordinator remembers: the last `retention` recorded,
/// by id and by age. Durable: saved before any of them is told.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Outcomes {
    /// The remembered outcomes, by id.
    pub by_id: Map<RequestId, Told>,
    /// The same ids by number, oldest first (what to forget next).
    pub by_age: Map<u64, RequestId>,
    /// The number the next outcome gets: also the ticket handed out now.
    pub next: u64,
    /// Every outcome numbered below this has been forgotten (one past the
    /// highest number forgotten, 0 if none): a ticket below it may be about
    /// an id whose outcome is forgotten, so it starts nothing.
    pub forgotten_below: u64,
}

impl Outcomes {
    /// Records `told` for `req` (numbering it) and forgets the oldest
    /// outcomes beyond `retention`.
    pub fn record(
        &mut self,
        req: RequestId,
        purchase: Purchase,
        txn: Option<TxnId>,
        verdict: Verdict,
        retention: usize,
    ) -> Outcome {
        let number = self.next;
        self.next += 1;
        if let Some(old) = self.by_id.get(&req) {
            self.by_age.remove(&old.number);
        }
        self.by_age.insert(number, req.clone());
        let told = Told {
            number,
            purchase,
            txn,
            verdict,
        };
        let outcome = told.outcome(&req);
        self.by_id.insert(req, told);
        while self.by_id.len() > retention.max(1) {
            let Some((number, oldest)) = self.by_age.get_min().cloned() else {
                break;
            };
            self.by_age.remove(&number);
            self.by_id.remove(&oldest);
            self.forgotten_below = self.forgotten_below.max(number + 1);
        }
        outcome
    }
}

/// The coordinator's durable state: exactly what survives a crash.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CoordStorage {
    /// Incarnation number, bumped and saved at every start, so transaction ids
    /// of different incarnations never collide.
    pub epoch: u64,
    /// The outcomes told (or about to be told), the last `retention` of
    /// them. Saved before a caller can see one, so a re-sent purchase never
    /// gets a different answer and never starts again.
    pub outcomes: Outcomes,
    /// Commit decisions not yet acknowledged by every participant. Written
    /// as a list of pairs, so that JSON (traces, `--wire json`) can carry it
    /// (its keys are not strings); binary formats write a map and a list of
    /// pairs alike.
    #[serde(with = "pairs")]
    pub commits: Map<TxnId, RequestId>,
}

/// A transaction still collecting votes. Volatile: a crash forgets it, and
/// presumed abort makes forgetting safe (nobody was told commit).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Voting {
    /// The request being attempted.
    pub req: RequestId,
    /// What it asks (a re-send with other contents is refused).
    pub purchase: Purchase,
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

/// Whether a coordinator knows its epoch is above every epoch the
/// participants have seen (see *Epochs are learned* in the crate docs).
/// Volatile: every start asks again.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Learning {
    /// Asking every participant: the answers heard so far.
    Asking(Map<Id, u64>),
    /// Every participant answered, and the epoch is above what they saw:
    /// attempts may start.
    Learned,
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
        let owed = self.commits.range(..below).map(|(t, _)| *t).collect();
        Floor { below, owed }
    }
}

impl Coordinator {
    fn participants(&self) -> [Id; 2] {
        [self.wallet, self.order]
    }

    /// Start or restart: bump the epoch (durably, before anything is sent)
    /// and resume sending every commit decision that is not known to be
    /// acknowledged. Started without a log (a new cluster, or a disk
    /// replaced by an empty one), it first asks the participants what epoch
    /// they have seen: no attempt starts until its epoch is above it.
    pub fn on_start(&self, storage: Option<&CoordStorage>, o: &mut Out<Node>) -> CoordState {
        let stored = storage.cloned().unwrap_or_default();
        // A log of its own: its epoch is above every epoch it ever used,
        // hence every epoch the participants saw. No log: ask them.
        let learning = match storage {
            Some(_) => Learning::Learned,
            None => Learning::Asking(Map::new()),
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
            recovered_commits: storage.is_some_and(|s| !s.commits.is_empty()),
        };
        if storage.is_none() {
            // The question reveals nothing: it need not wait for the save
            // (with replicas, for the new leader's first state to be chosen).
            o.broadcast(&self.participants(), &Msg::AskEpoch { epoch: state.epoch });
            o.set_timer(Timer::Learn, crate::timeouts::LEARN);
        }
        o.save(Storage::Coordinator(state.storage()));
        for txn in state.commits.keys() {
            o.broadcast(&self.participants(), &Msg::Commit { txn: *txn });
            o.set_timer(Timer::Resend(*txn), crate::timeouts::RESEND);
        }
        state
    }

    /// A participant's answer to `AskEpoch`.
    fn on_epoch(
        &self,
        state: &mut Cow<CoordState>,
        src: Id,
        asked: u64,
        highest: u64,
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
        heard.insert(src, highest);
        if heard.len() < self.participants().len() {
            return;
        }
        let learned = heard.values().copied().max().unwrap_or(0);
        state.learning = Learning::Learned;
        o.cancel_timer(Timer::Learn);
        if learned >= state.epoch {
            // The participants have seen an epoch this log never reached:
            // it is not the cluster's latest (an empty directory, a restored
            // backup). Move past it, durably, before anything is prepared.
            self.move_past(state, learned);
            o.save(Storage::Coordinator(state.storage()));
        }
    }

    /// Take the epoch after `learned`, with a new generation of tickets:
    /// every ticket this log handed out before is older than what it now
    /// treats as forgotten, and so is every ticket a lost log handed out
    /// (each generation starts at its epoch times 2^32, above every ticket
    /// of an earlier one, which counted from a lower epoch).
    fn move_past(&self, state: &mut CoordState, learned: u64) {
        state.epoch = learned + 1;
        let generation = state.epoch << TICKET_GENERATION_BITS;
        state.outcomes.next = state.outcomes.next.max(generation);
        state.outcomes.forgotten_below = state.outcomes.forgotten_below.max(generation);
    }

    /// Handle one message.
    pub fn on_msg(&self, state: &mut Cow<CoordState>, src: Id, msg: Msg, o: &mut Out<Node>) {
        match msg {
            Msg::Purchase { .. } | Msg::Lookup { .. } if state.learning != Learning::Learned => {
                // No attempt may start, and no ticket be handed out (a new
                // generation may make it stale), before the epoch is
                // learned: ignored deliberately; the caller asks again.
            }
            Msg::Epoch { asked, highest } => self.on_epoch(state, src, asked, highest, o),
            Msg::Purchase {
                req,
                purchase,
                ticket,
            } => self.on_purchase(state, src, req, purchase, ticket, o),
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
                } else if !state.voting.contains_key(&txn) && txn.epoch <= state.epoch {
                    // Presumed abort: a transaction this coordinator does not know
                    // was never decided commit (commit decisions are durable
                    // until every participant acked), so it is aborted.
                    o.send(src, Msg::Abort { txn });
                }
                // Still voting: the decision is not made yet; the asker retries.
                // An attempt of a later epoch is not ours to presume: with a
                // replicated coordinator, a newer leader made it (the one
                // asked is deposed and does not know it yet).
            }
            // Messages meant for other roles are ignored deliberately: only a
            // confused or hostile peer sends them here.
            Msg::Outcome(_)
            | Msg::Status { .. }
            | Msg::Prepare { .. }
            | Msg::Commit { .. }
            | Msg::Abort { .. }
            | Msg::AskEpoch { .. }
            | Msg::Campaign { .. }
            | Msg::Promise { .. }
            | Msg::Accept { .. }
            | Msg::Accepted { .. }
            | Msg::Nack { .. } => {}
        }
    }

    fn on_purchase(
        &self,
        state: &mut Cow<CoordState>,
        src: Id,
        req: RequestId,
        purchase: Purchase,
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
            Known::Decided(told) if told.purchase == purchase => {
                // A re-send of a decided request: the same answer, from the log.
                return o.send(src, Msg::Outcome(told.outcome(&req)));
            }
            Known::InProgress(Some(asked)) if *asked != purchase => {
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
        let Some(debit) = purchase
            .qty
            .checked_mul(purchase.price)
            .filter(|_| purchase.qty > 0)
        else {
            let verdict = Verdict::Aborted(AbortReason::InvalidRequest);
            let state = state.to_mut();
            let outcome = state
                .outcomes
                .record(req, purchase, None, verdict, self.retention);
            o.save(Storage::Coordinator(state.storage()));
            o.send(src, Msg::Outcome(outcome));
            return;
        };
        let state = state.to_mut();
        let txn = TxnId {
            epoch: state.epoch,
            n: state.next_txn,
        };
        state.next_txn += 1;
        state.voting.insert(
            txn,
            Voting {
                req: req.clone(),
                purchase: purchase.clone(),
                reply_to: src,
                yes: BTreeSet::new(),
            },
        );
        let wallet_op = Op {
            key: purchase.user,
            amount: debit,
        };
        let order_op = Op {
            key: purchase.sku,
            amount: purchase.qty,
        };
        let floor = state.floor();
        o.send(
            self.wallet,
            Msg::Prepare {
                txn,
                req: req.clone(),
                op: wallet_op,
                floor: floor.clone(),
            },
        );
        o.send(
            self.order,
            Msg::Prepare {
                txn,
                req,
                op: order_op,
                floor,
            },
        );
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
            if state.commits.contains_key(&txn) {
                // The participant lost our decision; tell it again.
                o.send(src, Msg::Commit { txn });
            } else if ballot == Ballot::Yes && txn.epoch <= state.epoch {
                // A late yes for an attempt that is aborted or forgotten:
                // presumed abort lets the voter release its hold now.
                o.send(src, Msg::Abort { txn });
            }
            return;
        };
        match ballot {
            Ballot::No(refusal) => {
                let reason = match (src == self.wallet, refusal) {
                    (true, Refusal::Insufficient) => AbortReason::InsufficientFunds,
                    (true, Refusal::UnknownKey) => AbortReason::UnknownUser,
                    (false, Refusal::Insufficient) => AbortReason::InsufficientStock,
                    (false, Refusal::UnknownKey) => AbortReason::UnknownSku,
                };
                self.abort(state.to_mut(), txn, reason, o);
            }
            Ballot::Yes => {
                if voting.yes.contains(&src) {
                    return; // Duplicate vote.
                }
                let state = state.to_mut();
                let voting = state.voting.get_mut(&txn).expect("checked above");
                voting.yes.insert(src);
                if voting.yes.len() == self.participants().len() {
                    self.commit(state, txn, o);
                }
            }
        }
    }

    /// Every participant voted yes: make the decision durable, then reveal it.
    fn commit(&self, state: &mut CoordState, txn: TxnId, o: &mut Out<Node>) {
        let voting = state.voting.remove(&txn).expect("caller checked");
        let outcome = state.outcomes.record(
            voting.req.clone(),
            voting.purchase,
            Some(txn),
            Verdict::Committed,
            self.retention,
        );
        state.commits.insert(
            txn,
            Committing {
                req: voting.req,
                acked: BTreeSet::new(),
            },
        );
        // Persist before send: the Save comes first; a runtime sends the
        // messages below only once it is durable.
        o.save(Storage::Coordinator(state.storage()));
        o.cancel_timer(Timer::Votes(txn));
        o.broadcast(&self.participants(), &Msg::Commit { txn });
        o.send(voting.reply_to, Msg::Outcome(outcome));
        o.set_timer(Timer::Resend(txn), crate::timeouts::RESEND);
    }

    /// Abort `txn`. The abort itself need not be durable (presumed abort), but
    /// the outcome the client will see must be: otherwise a stale copy of the
    /// request, arriving after a crash, could start a new attempt and commit
    /// what the client was told had failed.
    fn abort(&self, state: &mut CoordState, txn: TxnId, reason: AbortReason, o: &mut Out<Node>) {
        let voting = state.voting.remove(&txn).expect("caller checked");
        let outcome = state.outcomes.record(
            voting.req,
            voting.purchase,
            Some(txn),
            Verdict::Aborted(reason),
            self.retention,
        );
        o.save(Storage::Coordinator(state.storage()));
        o.cancel_timer(Timer::Votes(txn));
        // Only yes-voters hold anything; a participant that has not voted yet
        // records the abort so that a late prepare is refused.
        for p in self.participants() {
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
        if !self.participants().contains(&src) || committing.acked.contains(&src) {
            return;
        }
        let state = state.to_mut();
        let committing = state.commits.get_mut(&txn).expect("checked above");
        committing.acked.insert(src);
        if committing.acked.len() == self.participants().len() {
            // Every participant's commit is durable: the decision may be
            // forgotten (presumed abort never needs it again).
            state.commits.remove(&txn);
            o.save(Storage::Coordinator(state.storage()));
            o.cancel_timer(Timer::Resend(txn));
        }
    }

    /// Handle a timer.
    pub fn on_timeout(&self, state: &mut Cow<CoordState>, timer: &Timer, o: &mut Out<Node>) {
        match timer {
            Timer::Votes(txn) => {
                if state.voting.contains_key(txn) {
                    self.abort(state.to_mut(), *txn, AbortReason::VoteTimeout, o);
                }
            }
            Timer::Resend(txn) => {
                if let Some(committing) = state.commits.get(txn) {
                    for p in self.participants() {
                        if !committing.acked.contains(&p) {
                            o.send(p, Msg::Commit { txn: *txn });
                        }
                    }
                    o.set_timer(Timer::Resend(*txn), crate::timeouts::RESEND);
                }
            }
            Timer::Learn => {
                let Learning::Asking(heard) = &state.learning else {
                    return;
                };
                for p in self.participants() {
                    if !heard.contains_key(&p) {
                        o.send(p, Msg::AskEpoch { epoch: state.epoch });
                    }
                }
                o.set_timer(Timer::Learn, crate::timeouts::LEARN);
            }
            // Other roles' timers are never set by a coordinator.
            Timer::Retry | Timer::Query(_) | Timer::Replica => {}
        }
    }
}

/// Whether an abort for `reason` was caused by a no vote of the wallet
/// (`is_wallet`) or of the order service: that voter has aborted already.
fn reason_blames(reason: AbortReason, is_wallet: bool) -> bool {
    match reason {
        AbortReason::InsufficientFunds | AbortReason::UnknownUser => is_wallet,
        AbortReason::InsufficientStock | AbortReason::UnknownSku => !is_wallet,
        AbortReason::VoteTimeout | AbortReason::InvalidRequest => false,
    }
}

/// What the coordinator knows about an id.
pub enum Known<'a> {
    /// Decided, and the outcome still remembered.
    Decided(&'a Told),
    /// An attempt is collecting votes (what it asks), or a commit decided
    /// for it is still being delivered (`None`: its outcome was forgotten
    /// already, which only a retention shorter than the commits in flight
    /// allows).
    InProgress(Option<&'a Purchase>),
    /// Never seen, or forgotten.
    Unknown,
}

impl CoordState {
    /// What this coordinator knows about `req`. Costs O(log remembered +
    /// attempts in flight).
    pub fn known(&self, req: &RequestId) -> Known<'_> {
        if let Some(told) = self.outcomes.by_id.get(req) {
            return Known::Decided(told);
        }
        if let Some(v) = self.voting.values().find(|v| &v.req == req) {
            return Known::InProgress(Some(&v.purchase));
        }
        if self.commits.values().any(|c| &c.req == req) {
            return Known::InProgress(None);
        }
        Known::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    const WALLET: usize = 1;
    const ORDER: usize = 2;
    const CLIENT: usize = 3;

    fn coord() -> Coordinator {
        Coordinator {
            wallet: Id::from(WALLET),
            order: Id::from(ORDER),
            retention: 2,
        }
    }

    fn contents(qty: u64) -> Purchase {
        Purchase {
            user: "alice".into(),
            sku: "widget".into(),
            qty,
            price: 6,
        }
    }

    /// A purchase with a ticket no older than anything forgotten.
    fn purchase(seq: u64, qty: u64) -> Msg {
        Msg::Purchase {
            req: req(seq),
            purchase: contents(qty),
            ticket: Some(0),
        }
    }

    fn deliver(state: &CoordState, src: usize, msg: Msg) -> (CoordState, Out<Node>) {
        let mut cow = Cow::Borrowed(state);
        let mut o = Out::new();
        coord().on_msg(&mut cow, Id::from(src), msg, &mut o);
        (cow.into_owned(), o)
    }

    fn yes(n: u64) -> Msg {
        Msg::Vote {
            txn: txn(n),
            ballot: Ballot::Yes,
        }
    }

    /// An answer to the question of the coordinator at epoch 1.
    fn epoch(highest: u64) -> Msg {
        Msg::Epoch { asked: 1, highest }
    }

    /// Started on a fresh cluster, its epoch learned from both participants.
    fn started() -> CoordState {
        let mut s = coord().on_start(None, &mut Out::new());
        for p in [WALLET, ORDER] {
            s = deliver(&s, p, epoch(0)).0;
        }
        assert_eq!(s.learning, Learning::Learned);
        s
    }

    #[test]
    fn start_without_a_log_asks_the_participants_then_bumps_the_epoch_durably() {
        let mut o = Out::new();
        let s = coord().on_start(None, &mut o);
        assert_eq!(s.epoch, 1);
        let participants = [Id::from(WALLET), Id::from(ORDER)];
        assert_eq!(
            cmds(&o),
            expect(|o| {
                o.broadcast(&participants, &Msg::AskEpoch { epoch: 1 });
                o.set_timer(Timer::Learn, crate::timeouts::LEARN);
                o.save(Storage::Coordinator(s.storage()));
            })
        );
        // With a log of its own it asks nothing.
        let mut o = Out::new();
        let s2 = coord().on_start(Some(&s.storage()), &mut o);
        assert_eq!((s2.epoch, &s2.learning), (2, &Learning::Learned));
        assert_eq!(
            cmds(&o),
            expect(|o| o.save(Storage::Coordinator(s2.storage())))
        );
    }

    #[test]
    fn nothing_starts_until_both_participants_have_answered() {
        let s = coord().on_start(None, &mut Out::new());
        let (s, out) = deliver(&s, WALLET, epoch(0));
        assert!(out.is_empty(), "one answer is not enough");
        // Before both answered, a purchase starts nothing and gets no ticket.
        let (same, out) = deliver(&s, CLIENT, purchase(1, 2));
        assert_eq!((same, out.is_empty()), (s.clone(), true));
        let (same, out) = deliver(&s, WALLET, epoch(5));
        assert_eq!((same, out.is_empty()), (s.clone(), true), "one answer each");
        let stale = Msg::Epoch {
            asked: 0,
            highest: 0,
        };
        let (same, out) = deliver(&s, ORDER, stale);
        assert_eq!(
            (same, out.is_empty()),
            (s.clone(), true),
            "another incarnation's"
        );
        let (s, out) = deliver(&s, ORDER, epoch(0));
        assert_eq!(s.learning, Learning::Learned);
        assert_eq!(s.epoch, 1, "nothing seen above epoch 1: it stays");
        assert_eq!(cmds(&out), expect(|o| o.cancel_timer(Timer::Learn)));
        assert!(deliver(&s, CLIENT, purchase(1, 2))
            .0
            .voting
            .contains_key(&txn(0)));
        // Late answers change nothing.
        let (same, out) = deliver(&s, ORDER, epoch(9));
        assert_eq!((same, out.is_empty()), (s.clone(), true));
    }

    #[test]
    fn an_empty_log_learns_the_participants_epoch_and_moves_past_it() {
        // The directory was replaced: the participants have seen epoch 3.
        let s = coord().on_start(None, &mut Out::new());
        let (s, _) = deliver(&s, WALLET, epoch(3));
        let (s, out) = deliver(&s, ORDER, epoch(2));
        assert_eq!(s.epoch, 4);
        // Every ticket of the lost log is stale: a new generation.
        assert_eq!(s.outcomes.next, 4 << TICKET_GENERATION_BITS);
        assert_eq!(s.outcomes.forgotten_below, s.outcomes.next);
        assert_eq!(
            cmds(&out),
            expect(|o| {
                o.cancel_timer(Timer::Learn);
                o.save(Storage::Coordinator(s.storage()));
            })
        );
        let fresh = Msg::Purchase {
            req: req(1),
            purchase: contents(2),
            ticket: Some(s.outcomes.next),
        };
        let (s, _) = deliver(&s, CLIENT, fresh);
        assert!(s.voting.contains_key(&TxnId { epoch: 4, n: 0 }));
        // A ticket of the lost log starts nothing.
        let (s, out) = deliver(&s, CLIENT, purchase(2, 2));
        assert!(!s.voting.values().any(|v| v.req == req(2)));
        assert!(format!("{out:?}").contains("Unknown"), "{out:?}");
    }

    #[test]
    fn the_learn_timer_asks_again_only_who_has_not_answered() {
        let s = coord().on_start(None, &mut Out::new());
        let (s, _) = deliver(&s, WALLET, epoch(0));
        let mut cow = Cow::Borrowed(&s);
        let mut o = Out::new();
        coord().on_timeout(&mut cow, &Timer::Learn, &mut o);
        assert_eq!(
            cmds(&o),
            expect(|o| {
                o.send(Id::from(ORDER), Msg::AskEpoch { epoch: 1 });
                o.set_timer(Timer::Learn, crate::timeouts::LEARN);
            })
        );
        let mut cow = Cow::Borrowed(&started());
        let mut o = Out::new();
        coord().on_timeout(&mut cow, &Timer::Learn, &mut o);
        assert!(o.is_empty(), "learned: nothing to ask");
    }

    #[test]
    fn purchase_prepares_both_participants() {
        let (s, out) = deliver(&started(), CLIENT, purchase(1, 2));
        assert!(s.voting.contains_key(&txn(0)));
        assert_eq!(
            cmds(&out),
            expect(|o| {
                let op = |key: &str, amount| Op {
                    key: key.into(),
                    amount,
                };
                // Nothing is settled yet: the floor is this very attempt.
                let floor = Floor {
                    below: txn(0),
                    owed: vec![],
                };
                let prepare = |op| Msg::Prepare {
                    txn: txn(0),
                    req: req(1),
                    op,
                    floor: floor.clone(),
                };
                o.send(Id::from(WALLET), prepare(op("alice", 12)));
                o.send(Id::from(ORDER), prepare(op("widget", 2)));
                o.set_timer(Timer::Votes(txn(0)), crate::timeouts::VOTES);
            })
        );
        // A retry while voting changes nothing.
        let (again, out) = deliver(&s, CLIENT, purchase(1, 2));
        assert_eq!(again, s);
        assert!(out.is_empty());
    }

    #[test]
    fn all_yes_saves_the_decision_before_revealing_it() {
        let (s, _) = deliver(&started(), CLIENT, purchase(1, 1));
        let (s, out) = deliver(&s, WALLET, yes(0));
        assert!(out.is_empty());
        let (s, out) = deliver(&s, ORDER, yes(0));
        let outcome = Outcome {
            req: req(1),
            txn: Some(txn(0)),
            verdict: Verdict::Committed,
        };
        assert_eq!(s.outcomes.by_id[&req(1)].outcome(&req(1)), outcome);
        assert_eq!(
            cmds(&out),
            expect(|o| {
                o.save(Storage::Coordinator(s.storage()));
                o.cancel_timer(Timer::Votes(txn(0)));
                o.send(Id::from(WALLET), Msg::Commit { txn: txn(0) });
                o.send(Id::from(ORDER), Msg::Commit { txn: txn(0) });
                o.send(Id::from(CLIENT), Msg::Outcome(outcome.clone()));
                o.set_timer(Timer::Resend(txn(0)), crate::timeouts::RESEND);
            })
        );
        // A retry of the decided request gets the saved answer.
        let (_, out) = deliver(&s, CLIENT, purchase(1, 1));
        assert_eq!(
            cmds(&out),
            expect(|o| o.send(Id::from(CLIENT), Msg::Outcome(outcome)))
        );
    }

    #[test]
    fn a_no_vote_aborts_and_the_outcome_is_saved_first() {
        let (s, _) = deliver(&started(), CLIENT, purchase(1, 1));
        let no = Msg::Vote {
            txn: txn(0),
            ballot: Ballot::No(Refusal::Insufficient),
        };
        let (s, out) = deliver(&s, WALLET, no);
        let outcome = Outcome {
            req: req(1),
            txn: Some(txn(0)),
            verdict: Verdict::Aborted(AbortReason::InsufficientFunds),
        };
        assert_eq!(
            cmds(&out),
            expect(|o| {
                o.save(Storage::Coordinator(s.storage()));
                o.cancel_timer(Timer::Votes(txn(0)));
                o.send(Id::from(ORDER), Msg::Abort { txn: txn(0) });
                o.send(Id::from(CLIENT), Msg::Outcome(outcome.clone()));
            })
        );
    }

    #[test]
    fn unknown_transactions_are_presumed_aborted() {
        let (_, out) = deliver(&started(), WALLET, Msg::QueryDecision { txn: txn(5) });
        assert_eq!(
            cmds(&out),
            expect(|o| o.send(Id::from(WALLET), Msg::Abort { txn: txn(5) }))
        );
        // But a transaction still voting is not answered.
        let (s, _) = deliver(&started(), CLIENT, purchase(1, 1));
        let (_, out) = deliver(&s, WALLET, Msg::QueryDecision { txn: txn(0) });
        assert!(out.is_empty());
    }

    #[test]
    fn acks_from_everyone_let_the_decision_go() {
        let (s, _) = deliver(&started(), CLIENT, purchase(1, 1));
        let (s, _) = deliver(&s, WALLET, yes(0));
        let (s, _) = deliver(&s, ORDER, yes(0));
        let (s, out) = deliver(&s, WALLET, Msg::Ack { txn: txn(0) });
        assert!(out.is_empty());
        let (s, out) = deliver(&s, ORDER, Msg::Ack { txn: txn(0) });
        assert!(s.commits.is_empty());
        assert_eq!(
            cmds(&out),
            expect(|o| {
                o.save(Storage::Coordinator(s.storage()));
                o.cancel_timer(Timer::Resend(txn(0)));
            })
        );
    }

    #[test]
    fn restart_resends_unacknowledged_commits() {
        let (s, _) = deliver(&started(), CLIENT, purchase(1, 1));
        let (s, _) = deliver(&s, WALLET, yes(0));
        let (s, _) = deliver(&s, ORDER, yes(0));
        let mut o = Out::new();
        let r = coord().on_start(Some(&s.storage()), &mut o);
        assert!(r.recovered_commits);
        assert_eq!(
            cmds(&o),
            expect(|o| {
                o.save(Storage::Coordinator(r.storage()));
                o.send(Id::from(WALLET), Msg::Commit { txn: txn(0) });
                o.send(Id::from(ORDER), Msg::Commit { txn: txn(0) });
                o.set_timer(Timer::Resend(txn(0)), crate::timeouts::RESEND);
            })
        );
    }

    #[test]
    fn invalid_purchases_are_refused_durably() {
        let (s, out) = deliver(&started(), CLIENT, purchase(1, 0));
        let outcome = Outcome {
            req: req(1),
            txn: None,
            verdict: Verdict::Aborted(AbortReason::InvalidRequest),
        };
        assert_eq!(
            cmds(&out),
            expect(|o| {
                o.save(Storage::Coordinator(s.storage()));
                o.send(Id::from(CLIENT), Msg::Outcome(outcome));
            })
        );
    }

    /// Decides `seq` (committed, every ack in) on top of `s`.
    fn commit_all(s: &CoordState, seq: u64) -> CoordState {
        let (s, out) = deliver(s, CLIENT, purchase(seq, 1));
        let txn = out
            .iter()
            .find_map(|c| match c {
                stateright::actor::Command::Send(_, Msg::Prepare { txn, .. }) => Some(*txn),
                _ => None,
            })
            .expect("an attempt");
        let vote = |txn| Msg::Vote {
            txn,
            ballot: Ballot::Yes,
        };
        let (s, _) = deliver(&s, WALLET, vote(txn));
        let (s, _) = deliver(&s, ORDER, vote(txn));
        let (s, _) = deliver(&s, WALLET, Msg::Ack { txn });
        deliver(&s, ORDER, Msg::Ack { txn }).0
    }

    #[test]
    fn an_unknown_id_without_a_ticket_gets_one_and_starts_nothing() {
        let ask = Msg::Purchase {
            req: req(1),
            purchase: contents(1),
            ticket: None,
        };
        let (s, out) = deliver(&started(), CLIENT, ask);
        assert_eq!(s, started());
        let status = Status::Unknown { ticket: 0 };
        assert_eq!(
            cmds(&out),
            expect(|o| o.send(
                Id::from(CLIENT),
                Msg::Status {
                    req: req(1),
                    status
                }
            ))
        );
    }

    #[test]
    fn an_id_with_other_contents_is_refused_in_progress_and_decided() {
        let other = || Msg::Purchase {
            req: req(1),
            purchase: contents(2),
            ticket: Some(0),
        };
        let refused = Msg::Outcome(Outcome {
            req: req(1),
            txn: None,
            verdict: Verdict::Refused(Rejection::KeyReused),
        });
        let (voting, _) = deliver(&started(), CLIENT, purchase(1, 1));
        let (s, out) = deliver(&voting, CLIENT, other());
        assert_eq!(s, voting, "nothing remembered");
        assert_eq!(
            cmds(&out),
            expect(|o| o.send(Id::from(CLIENT), refused.clone()))
        );
        let decided = commit_all(&started(), 1);
        let (s, out) = deliver(&decided, CLIENT, other());
        assert_eq!(s, decided);
        assert_eq!(cmds(&out), expect(|o| o.send(Id::from(CLIENT), refused)));
    }

    #[test]
    fn retention_forgets_the_oldest_and_a_stale_ticket_starts_nothing() {
        // Retention 2: the third outcome forgets the first.
        let mut s = started();
        for seq in 1..=3 {
            s = commit_all(&s, seq);
        }
        assert_eq!(s.outcomes.by_id.len(), 2);
        assert!(!s.outcomes.by_id.contains_key(&req(1)));
        assert_eq!(s.outcomes.forgotten_below, 1);
        assert_eq!(s.outcomes.next, 3);
        // A stale copy of the first purchase (ticket 0): not started again.
        let (after, out) = deliver(&s, CLIENT, purchase(1, 1));
        assert_eq!(after, s);
        let unknown = Outcome {
            req: req(1),
            txn: None,
            verdict: Verdict::Unknown,
        };
        assert_eq!(
            cmds(&out),
            expect(|o| o.send(Id::from(CLIENT), Msg::Outcome(unknown)))
        );
        // Asked, it is unknown, with a ticket that can start it anew.
        let (_, out) = deliver(&s, CLIENT, Msg::Lookup { req: req(1) });
        let status = Status::Unknown { ticket: 3 };
        assert_eq!(
            cmds(&out),
            expect(|o| o.send(
                Id::from(CLIENT),
                Msg::Status {
                    req: req(1),
                    status
                }
            ))
        );
        // Outcomes survive a restart, forgotten ones stay forgotten.
        let r = coord().on_start(Some(&s.storage()), &mut Out::new());
        assert_eq!(r.outcomes, s.outcomes);
    }

    #[test]
    fn a_lookup_tells_in_progress_and_decided_and_starts_nothing() {
        let (voting, _) = deliver(&started(), CLIENT, purchase(1, 1));
        let (s, out) = deliver(&voting, CLIENT, Msg::Lookup { req: req(1) });
        assert_eq!(s, voting);
        let status = Status::InProgress;
        assert_eq!(
            cmds(&out),
            expect(|o| o.send(
                Id::from(CLIENT),
                Msg::Status {
                    req: req(1),
                    status
                }
            ))
        );
        let decided = commit_all(&started(), 1);
        let (_, out) = deliver(&decided, CLIENT, Msg::Lookup { req: req(1) });
        let outcome = decided.outcomes.by_id[&req(1)].outcome(&req(1));
        assert_eq!(
            cmds(&out),
            expect(|o| o.send(Id::from(CLIENT), Msg::Outcome(outcome)))
        );
    }

    #[test]
    fn an_overlong_id_is_refused_and_not_remembered() {
        let long = Msg::Purchase {
            req: RequestId::new("x".repeat(RequestId::MAX_LEN + 1)),
            purchase: contents(1),
            ticket: Some(0),
        };
        let (s, out) = deliver(&started(), CLIENT, long);
        assert_eq!(s, started());
        assert!(format!("{out:?}").contains("InvalidId"));
    }
}

/// A map written as a list of `(key, value)` pairs.
mod pairs {
    use crate::msg::Map;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K, V, S>(m: &Map<K, V>, s: S) -> Result<S::Ok, S::Error>
    where
        K: Serialize + Ord + Clone,
        V: Serialize + Clone,
        S: Serializer,
    {
        s.collect_seq(m.iter())
    }

    pub fn deserialize<'de, K, V, D>(d: D) -> Result<Map<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord + Clone,
        V: Deserialize<'de> + Clone,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}
