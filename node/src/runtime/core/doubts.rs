//! A coordinator's transactions in doubt (see `crate::runtime::in_doubt`): warned
//! about when they appear, and decided by an operator's request
//! (`twopc decide`, `Payload::DecideRequest`) through the actor's own
//! `decide_in_doubt`, whose commands go through `Core::apply` like any
//! step's: the decision is saved (for a replica, replicated) before it is
//! sent, and so is the answer to the operator.
//!
//! A single coordinator answers in the batch that decides (the answer waits
//! for the batch's fsync). A leading replica answers once the version that
//! carries the decision is chosen by a majority, or says it is unsure if
//! it stopped leading before that; a follower names the leader it follows.
//! Answers are remembered by nonce for a while, so a re-sent request (the
//! command retries over UDP) gets the same answer and decides nothing twice.

use super::Core;
use crate::runtime::in_doubt::{DecideAnswer, Decision, DoubtsView};
use crate::runtime::wire::Payload;
use stateright::actor::Out;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::Duration;
use tokio::time::Instant;
use twopc_model::{CoordState, Learning, Node, RequestId, Standing, State, Term, TxnId};

/// How many answers are remembered by nonce.
const REMEMBERED: usize = 32;

/// While transactions stay in doubt, the warning is repeated this often.
pub const REMIND_EVERY: Duration = Duration::from_secs(600);

/// What the core keeps about doubts and decisions (volatile).
#[derive(Debug, Default)]
pub struct Desk {
    /// The doubts last warned about.
    known: Vec<TxnId>,
    /// When the warning is due again, while some remain.
    remind_at: Option<Instant>,
    /// Recent answers, by nonce.
    answered: VecDeque<(u64, DecideAnswer)>,
    /// A leading replica's decisions waiting for their version to be chosen.
    pending: Vec<Pending>,
    /// Decisions taken and not yet handed to the shell for `heuristic.log`.
    audit: Vec<(TxnId, RequestId, Decision)>,
}

/// A replica's decision waiting to be chosen.
#[derive(Debug)]
struct Pending {
    nonce: u64,
    to: SocketAddr,
    term: Term,
    version: u64,
    req: String,
}

/// The coordinator state this node runs, if any: its own, or its
/// coordinator's while it leads.
pub(super) fn coordinator(state: &State) -> Option<&CoordState> {
    match state {
        State::Coordinator(c) => Some(c),
        State::Replica(r) => r.leading().map(|l| &l.coord),
        State::Participant(_) | State::Client(_) => None,
    }
}

impl Core {
    /// An operator asks to decide `txn` (already authenticated by the
    /// codec, as every datagram).
    pub(super) fn on_decide(
        &mut self,
        now: Instant,
        to: SocketAddr,
        nonce: u64,
        txn: TxnId,
        decision: Decision,
    ) {
        if let Some((_, answer)) = self.desk.answered.iter().find(|(n, _)| *n == nonce) {
            let reply = Payload::DecideReply {
                nonce,
                answer: answer.clone(),
            };
            let _ = self.queue_payload(to, &reply, None, 0);
            return;
        }
        if self.desk.pending.iter().any(|p| p.nonce == nonce) {
            return; // Answered once its version is chosen.
        }
        let answer = match self.state() {
            State::Participant(_) | State::Client(_) => DecideAnswer::NotCoordinator,
            State::Replica(r) if r.leading().is_none() => DecideAnswer::NotLeader {
                leader: self.leader_label(),
            },
            state => {
                let c = coordinator(state).expect("a coordinator or a leader");
                if matches!(c.learning, Learning::Asking(_)) {
                    DecideAnswer::Learning
                } else if let Some(req) = c.doubts.get(&txn).cloned() {
                    return self.decide(now, to, nonce, txn, req, decision);
                } else {
                    DecideAnswer::NotInDoubt {
                        in_doubt: DoubtsView::of(c.doubts.iter()),
                    }
                }
            }
        };
        self.answer(to, nonce, answer);
    }

    /// Takes the decision in the actor and answers (a replica: once chosen).
    fn decide(
        &mut self,
        now: Instant,
        to: SocketAddr,
        nonce: u64,
        txn: TxnId,
        req: RequestId,
        decision: Decision,
    ) {
        let mut out = Out::new();
        let commit = decision.commits();
        let state = self.state.as_mut().expect("started");
        let decided = match (&self.actor, state) {
            (Node::Coordinator(actor), State::Coordinator(c)) => {
                actor.decide_in_doubt(c, txn, commit, &mut out)
            }
            (Node::Replica(actor), State::Replica(r)) => {
                let mut cow = Cow::Borrowed(&*r);
                let decided = actor.decide_in_doubt(self.id, &mut cow, txn, commit, &mut out);
                if let Cow::Owned(s) = cow {
                    *r = s;
                }
                decided
            }
            _ => false,
        };
        if !decided {
            // Checked above; were it not so, nothing changed: say so.
            let in_doubt = self.state.as_ref().and_then(coordinator);
            let in_doubt =
                in_doubt.map_or_else(DoubtsView::default, |c| DoubtsView::of(c.doubts.iter()));
            return self.answer(to, nonce, DecideAnswer::NotInDoubt { in_doubt });
        }
        tracing::warn!(
            node = %self.name, %txn, req = %req, %decision,
            "heuristic decision: an operator decided {decision} for transaction {txn} in doubt \
             (request {req}); the lost log may have decided otherwise (appended to {})",
            crate::runtime::in_doubt::HEURISTIC_LOG
        );
        if self.trace.is_some() {
            tracing::warn!(
                node = %self.name,
                "the trace (--trace) does not record an operator's decision: a replay stops \
                 matching at this step"
            );
        }
        *self
            .counters
            .heuristic_decisions
            .entry(decision.as_str().to_string())
            .or_default() += 1;
        self.desk.audit.push((txn, req.clone(), decision));
        // Forget the warning's list: what remains is warned about afresh.
        self.desk.known.retain(|t| *t != txn);
        self.apply(now, out);
        let req = req.to_string();
        match self.state() {
            State::Replica(r) => {
                let l = r.leading().expect("it led to decide");
                self.desk.pending.push(Pending {
                    nonce,
                    to,
                    term: l.term,
                    version: l.version,
                    req,
                });
                self.release_decisions();
            }
            _ => self.answer(to, nonce, DecideAnswer::Decided { req }),
        }
    }

    /// Queues `answer` and remembers it by nonce.
    fn answer(&mut self, to: SocketAddr, nonce: u64, answer: DecideAnswer) {
        let reply = Payload::DecideReply {
            nonce,
            answer: answer.clone(),
        };
        let _ = self.queue_payload(to, &reply, None, 0);
        // Only what changes nothing if asked again is worth re-asking:
        // a decision is remembered, a "still learning" is not.
        if !matches!(answer, DecideAnswer::Learning) {
            if self.desk.answered.len() == REMEMBERED {
                self.desk.answered.pop_front();
            }
            self.desk.answered.push_back((nonce, answer));
        }
    }

    /// The leader a replica follows, as `name (address)`.
    fn leader_label(&self) -> Option<String> {
        let State::Replica(r) = self.state() else {
            return None;
        };
        match r.standing {
            Standing::Follower => Some(
                self.peers
                    .label(SocketAddrV4::from(r.acceptor.promised.leader)),
            ),
            Standing::PreCandidate { .. }
            | Standing::Candidate { .. }
            | Standing::Leader(_)
            | Standing::Recovering { .. } => None,
        }
    }

    /// A leading replica's decisions whose version is chosen are answered;
    /// those of a leader that no longer leads that term, answered unsure.
    fn release_decisions(&mut self) {
        if self.desk.pending.is_empty() {
            return;
        }
        let now_leading = match self.state() {
            State::Replica(r) => r.leading().map(|l| (l.term, l.chosen)),
            _ => None,
        };
        let leader = self.leader_label();
        for p in std::mem::take(&mut self.desk.pending) {
            match now_leading {
                Some((term, chosen)) if term == p.term && chosen >= p.version => {
                    self.answer(p.to, p.nonce, DecideAnswer::Decided { req: p.req })
                }
                Some((term, _)) if term == p.term => self.desk.pending.push(p),
                _ => {
                    let answer = DecideAnswer::Unsure {
                        leader: leader.clone(),
                    };
                    self.answer(p.to, p.nonce, answer)
                }
            }
        }
    }

    /// At the end of each batch: answers decisions now chosen, and warns
    /// when transactions in doubt appear (a coordinator that starts or
    /// learns with them, a replica that takes over a leader's), repeated
    /// every [`REMIND_EVERY`] while they remain. O(1) while none are.
    pub(super) fn note_doubts(&mut self, now: Instant) {
        self.release_decisions();
        let Some(c) = self.state.as_ref().and_then(coordinator) else {
            self.desk.known.clear();
            return;
        };
        let doubts = &c.doubts;
        let same = doubts.len() == self.desk.known.len()
            && doubts.keys().zip(&self.desk.known).all(|(a, b)| a == b);
        let remind = self.desk.remind_at.is_some_and(|at| at <= now);
        if doubts.is_empty() {
            self.desk.known.clear();
            self.desk.remind_at = None;
            return;
        }
        let appeared = doubts.keys().any(|t| !self.desk.known.contains(t));
        if (!same && appeared) || remind {
            let view = DoubtsView::of(doubts.iter());
            tracing::warn!(
                node = %self.name, in_doubt = view.total,
                "{} transaction(s) in doubt: {}. Both participants hold them and this \
                 coordinator's log, which may have decided them, was lost: nothing is presumed. \
                 Look at both participants (`twopc status --name wallet`, `--name order`), then \
                 decide each with `twopc decide --txn TXN --commit` or `--abort` (a heuristic \
                 decision; see its --help)",
                view.total,
                view.names()
            );
            self.desk.remind_at = Some(now + REMIND_EVERY);
        }
        if !same {
            self.desk.known = doubts.keys().copied().collect();
        }
    }

    /// The decisions taken since the last call, for the shell to append to
    /// `DIR/heuristic.log` before the batch's sends leave.
    pub fn take_heuristics(&mut self) -> Vec<(TxnId, RequestId, Decision)> {
        std::mem::take(&mut self.desk.audit)
    }
}

#[cfg(test)]
#[path = "doubts_tests.rs"]
mod tests;
