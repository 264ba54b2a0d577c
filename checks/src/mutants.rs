//! Deliberately broken variants of the protocol, kept out of the production
//! actors: [`Checked`] wraps a [`Node`] and, when a [`Mutant`] is selected,
//! rewrites what goes into or comes out of it. Each mutant names the property
//! the checker must find violated; tests assert that it does.

mod onewrite;
mod paxos;
mod receive;
mod refunds;

use crate::shared::Shared;
use stateright::actor::{Actor, Command, Id, Out};
use std::borrow::Cow;
use twopc_model::{Msg, Node, State, Storage, Timer, Verdict};

/// A protocol bug the checker must catch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Mutant {
    /// A participant votes yes without saving its hold first.
    NoSaveBeforeYes,
    /// The coordinator reveals a commit decision without saving it.
    UnsavedDecision,
    /// The coordinator commits when the vote timer fires instead of aborting.
    CommitOnVoteTimeout,
    /// A participant applies a duplicate commit a second time.
    DoubleApplyCommit,
    /// A participant applies a credit when it prepares it as well as when
    /// it commits it (money or stock counted twice, or credited by an
    /// attempt that aborts). Needs `--flows`.
    CreditAtPrepare,
    /// The order service ignores the price a purchase carries: it holds a
    /// purchase at a stale price as if it were the sku's. Needs `--prices`.
    OrderIgnoresPrice,
    /// The coordinator refunds without checking that the purchase
    /// committed or what was refunded of it already (or is being
    /// refunded). Needs `--refunds`.
    RefundNotChecked,
    /// The coordinator never raises a purchase's refunded count, so a
    /// second refund of it can exceed what was bought. Needs `--refunds`.
    RefundedNotRaised,
    /// The coordinator starts a new attempt for a retry of a committed
    /// top-up or refund (as if it forgot the outcome at once): the credit
    /// is applied twice. Needs `--refunds` (or `--flows`).
    CreditAppliedTwice,
    /// A participant drops its prepared holds when it restarts.
    ForgetHoldsOnRestart,
    /// The coordinator answers a query about an unknown transaction with commit.
    PresumeCommit,
    /// The coordinator tells a client "aborted" without saving that outcome.
    UnsavedAbortOutcome,
    /// The coordinator does not bump its epoch on restart (transaction ids reused).
    ReuseTxnIds,
    /// The coordinator starts a new attempt for a re-send of an id it has
    /// decided (as if it forgot the outcome at once).
    RetryWithKeyStartsNewAttempt,
    /// The coordinator starts an id it does not know whatever the ticket says:
    /// a stale copy of a purchase whose outcome has expired starts it again.
    ExpiredKeyAnsweredAsNew,
    /// The coordinator answers an id with its outcome without comparing the
    /// contents: a purchase re-using the id for something else is told the
    /// first purchase's outcome as its own.
    KeyContentsNotCompared,
    /// The coordinator keeps its outcomes in memory only: a restart forgets
    /// them (and the tickets' count).
    OutcomesNotDurable,
    /// A client files any outcome from the coordinator as the answer to its
    /// current request (a duplicate of an earlier one included), and keeps
    /// filing them after its last request.
    ClientAcceptsAnyOutcome,
    /// A prepared participant never asks the coordinator for the decision, so
    /// a lost abort strands its hold (breaks no safety property: liveness only).
    NeverAsk,
    /// A participant that restarts with prepared holds does not ask about
    /// them (liveness only, and only when a participant can crash).
    RestartForgetsToAsk,
    /// A participant forgets a transaction as soon as it has applied its
    /// commit, without waiting for the coordinator's floor to settle it.
    ForgetOnCommit,
    /// A participant reads the floor without its owed commits: it releases
    /// and forgets commits the coordinator still has to deliver.
    FloorIgnoresOwed,
    /// The coordinator's floor ignores attempts still collecting votes.
    FloorIgnoresVoting,
    /// A participant ignores the floor: after a coordinator restart it still
    /// counts the dead holds of the old epoch and refuses purchases that the
    /// money or stock covers.
    KeepDeadHolds,
    /// A participant raises its floor but releases none of the holds it
    /// settles, so a hold below its floor lingers.
    FloorKeepsHolds,
    /// Replicated: the leader counts an acceptance it never received (it
    /// decides with its own vote and one imagined), so a save is "chosen"
    /// that no majority holds.
    DecideWithoutMajority,
    /// A coordinator that starts without a log does not learn the epoch the
    /// participants have seen (it takes every answer as 0): after its disk
    /// is replaced it starts its epochs again from 1.
    EpochNotLearned,
    /// A coordinator that moves past the participants' epoch keeps handing
    /// out tickets from where its (empty) log counts: a caller's ticket from
    /// the lost log still starts its purchase again.
    TicketsNotRenewed,
    /// A coordinator that starts without a log learns the participants'
    /// epoch but not what they hold: it presumes abort for what its lost log
    /// decided, so a commit one participant applied is aborted at the other.
    PresumeAbortForLostLog,
    /// A coordinator that starts without a log asks the participants their
    /// epoch once and never again: if a question or an answer is lost, it
    /// waits forever and no purchase starts (liveness only, when its disk
    /// can be lost).
    LearnNotRetried,
    /// Replicated: a replica restarts without what it accepted (kept only its
    /// promise): a chosen state can lose its majority.
    ForgetAcceptedOnRestart,
    /// Replicated: a new leader starts from its own state instead of the
    /// highest one its majority of promises reported, so it can propose (and
    /// make chosen) a state without the decisions the old leader revealed.
    LeaderIgnoresPromises,
    /// Replicated: the leader ignores the last backup's acceptances, so it
    /// cannot do without the other backup: liveness only, when that one
    /// never recovers.
    DeafToLastBackup,
    /// Replicated: a candidate never re-sends its campaign, so one whose
    /// campaign was lost waits forever, and nobody else may campaign while
    /// it does: liveness only, when the leader never recovers.
    CampaignNotResent,
    /// Replicated: a replica that starts without storage (its disk
    /// replaced) skips recovery: it adopts nothing and votes at once, as if
    /// it had never promised or accepted anything (and the first replica
    /// leads the first term again), so a majority can be counted that
    /// remembers nothing of what the group revealed.
    EmptyReplicaVotesAtOnce,
    /// Replicated: a leader never re-sends its latest state (its heartbeat
    /// carries nothing): a replica that missed an `Accept`, lost or sent
    /// while it was down, never gets it, and a save that needs its
    /// acceptance waits forever: liveness only.
    LeaderNeverResends,
    /// Replicated: an acceptor accepts a state from a term lower than the
    /// one it promised (keeping its promise): a deposed leader can still get
    /// a state chosen after its successor read the majority.
    AcceptBelowPromise,
    /// Replicated: a candidate counts a promise it never received (its own
    /// and one imagined, reporting nothing accepted), so it leads on a
    /// minority's word and adopts a state without what a majority chose.
    ElectedWithoutMajority,
    /// Replicated: a new leader adopts the state of the lowest (term,
    /// version) its majority of promises reported, not the highest.
    AdoptLowestBallot,
    /// One write: the coordinator aborts when its vote timer fires, as
    /// two-phase commit does, without a fence: a vote it did not wait for
    /// may be a saved yes, and then every participant's saved vote says
    /// committed. Needs `--one-write`.
    AbortWithoutFence,
    /// One write: a participant takes a fence as an abort, releasing a
    /// hold it voted yes on, though the coordinator may have heard that
    /// yes and told "committed". Needs `--one-write`.
    FenceBeatsYes,
    /// One write: a restarted coordinator resolves a transaction every
    /// participant holds as aborted (as if in doubt were abort), though
    /// its predecessor may have told "committed". Needs `--one-write`.
    AllHoldAborts,
    /// One write: a restarted coordinator keeps its predecessor's tickets
    /// good but does not record again the purchases its predecessor told
    /// committed and never saved (it reads the participants' fates without
    /// the debits they name): a stale copy of such a purchase, with its
    /// ticket, starts it again. Needs `--one-write`.
    OutcomesNotRecovered,
    /// One write: the coordinator tells an abort before it saves it (as
    /// the first one-write version did): a restart cannot record it again
    /// (a fenced participant never heard what was asked), so a stale copy
    /// of the request, with its ticket, starts it anew, and it may commit
    /// what the client was told aborted. Needs `--one-write`.
    AbortToldUnsaved,
    /// One write: the coordinator fences the missing voters once and never
    /// again: if the fence or its answer is lost, the attempt waits forever
    /// (liveness only). Needs `--one-write`.
    FenceNotResent,
    /// One write: a participant acknowledges a commit it applied in memory
    /// at once, before a save made it durable: the coordinator forgets the
    /// transaction on the ack, and a crash brings back a hold nobody will
    /// commit. Needs `--one-write`.
    AckBeforeSave,
    /// One write: a participant's flush timer does nothing: a commit
    /// applied in memory with no prepare after it is never saved, and its
    /// ack never sent (liveness only). Needs `--one-write`.
    FlushNever,
}

impl Mutant {
    /// Every mutant.
    pub fn all() -> Vec<Mutant> {
        <Mutant as clap::ValueEnum>::value_variants().to_vec()
    }

    /// The kebab-case name used on the command line.
    pub fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self)
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    }
}

/// The actor the checker runs: the production [`Node`], optionally mutated.
#[derive(Clone, Debug)]
pub struct Checked {
    /// The production actor, unchanged.
    pub node: Node,
    /// The bug to inject, if any.
    pub mutant: Option<Mutant>,
    /// Whether a replica asks before it campaigns (`Config::pre_vote`):
    /// `false` checks the protocol as it was before pre-vote, whose
    /// behaviours include all of pre-vote's (see `Config::pre_vote`).
    pub pre_vote: bool,
}

fn is(m: Option<Mutant>, which: Mutant) -> bool {
    m == Some(which)
}

fn sends(out: &Out<Node>, f: impl Fn(&Msg) -> bool) -> bool {
    out.iter()
        .any(|c| matches!(c, Command::Send(_, msg) if f(msg)))
}

impl Checked {
    /// Rewrites the production actor's output according to the mutant.
    fn mutate_out(&self, out: Out<Node>, o: &mut Out<Self>) {
        let drop_saves = match (&self.node, self.mutant) {
            (Node::Participant(_), Some(Mutant::NoSaveBeforeYes)) => sends(&out, |m| {
                matches!(
                    m,
                    Msg::Vote {
                        ballot: twopc_model::Ballot::Yes,
                        ..
                    }
                )
            }),
            (Node::Coordinator(_), Some(Mutant::UnsavedDecision)) => {
                sends(&out, |m| matches!(m, Msg::Commit { .. }))
            }
            (Node::Coordinator(_), Some(Mutant::UnsavedAbortOutcome)) => sends(
                &out,
                |m| matches!(m, Msg::Outcome(o) if matches!(o.verdict, Verdict::Aborted(_))),
            ),
            _ => false,
        };
        let drop_queries = matches!(
            (&self.node, self.mutant),
            (Node::Participant(_), Some(Mutant::NeverAsk))
        );
        for c in out {
            if drop_saves && matches!(c, Command::Save(_)) {
                continue;
            }
            if drop_queries && matches!(c, Command::SetTimer(Timer::Query(_), _)) {
                continue;
            }
            push(o, c);
        }
    }
}

fn push(o: &mut Out<Checked>, c: Command<Msg, Timer, (), Storage>) {
    match c {
        Command::Send(dst, msg) => o.send(dst, Shared::new(msg)),
        Command::SetTimer(t, d) => o.set_timer(t, d),
        Command::CancelTimer(t) => o.cancel_timer(t),
        Command::ChooseRandom(k, r) => o.choose_random(k, r),
        Command::Save(s) => o.save(Shared::new(s)),
    }
}

/// Runs `f` on the plain state inside a shared one, re-sharing (and hashing)
/// it only if `f` changed it.
fn with_plain(state: &mut Cow<Shared<State>>, f: impl FnOnce(&mut Cow<State>)) {
    let mut plain = Cow::Borrowed(&***state);
    f(&mut plain);
    if let Cow::Owned(next) = plain {
        *state = Cow::Owned(Shared::new(next));
    }
}

/// The checker stores, clones and hashes every message in flight, every
/// actor's state and every actor's storage in every state: they are
/// [`Shared`] (a copy is a reference count, a hash one word). The production
/// actor sees plain values.
impl Actor for Checked {
    type Msg = Shared<Msg>;
    type State = Shared<State>;
    type Timer = Timer;
    type Random = ();
    type Storage = Shared<Storage>;

    fn on_start(
        &self,
        id: Id,
        storage: &Option<Shared<Storage>>,
        o: &mut Out<Self>,
    ) -> Shared<State> {
        Shared::new(self.start(id, storage.as_deref().cloned(), o))
    }

    fn on_msg(
        &self,
        id: Id,
        state: &mut Cow<Shared<State>>,
        src: Id,
        msg: Shared<Msg>,
        o: &mut Out<Self>,
    ) {
        with_plain(state, |s| self.receive(id, s, src, msg.into_inner(), o));
    }

    fn on_timeout(&self, id: Id, state: &mut Cow<Shared<State>>, timer: &Timer, o: &mut Out<Self>) {
        with_plain(state, |s| self.fire(id, s, timer, o));
    }

    fn name(&self) -> String {
        self.node.name()
    }
}

impl Checked {
    fn start(&self, id: Id, mut storage: Option<Storage>, o: &mut Out<Self>) -> State {
        match (&mut storage, self.mutant) {
            (Some(Storage::Participant(s)), Some(Mutant::ForgetHoldsOnRestart)) => s.holds.clear(),
            (Some(Storage::Coordinator(s)), Some(Mutant::ReuseTxnIds)) => s.epoch = 0,
            (Some(Storage::Coordinator(s)), Some(Mutant::OutcomesNotDurable)) => {
                s.outcomes = Default::default()
            }
            (Some(Storage::Replica(s)), Some(Mutant::ForgetAcceptedOnRestart)) => s.accepted = None,
            _ => {}
        }
        let mut out = Out::new();
        let state = self.node.on_start(id, &storage, &mut out);
        let mut state = Cow::Owned(state);
        if let (Node::Replica(r), Some(Mutant::EmptyReplicaVotesAtOnce), None) =
            (&self.node, self.mutant, &storage)
        {
            // It asks nobody, and hears at once from every other replica
            // that nobody holds anything.
            out = out
                .into_iter()
                .filter(|c| {
                    !matches!(
                        c,
                        Command::Send(_, Msg::Recover { .. })
                            | Command::SetTimer(Timer::Replica, _)
                    )
                })
                .collect();
            for p in r.peers.iter().filter(|p| **p != id) {
                let nothing = Msg::RecoverReply {
                    nonce: r.incarnation,
                    acceptor: None,
                };
                self.node.on_msg(id, &mut state, *p, nothing, &mut out);
            }
        }
        self.imagine_acceptance(id, &mut state, &mut out);
        let state = state.into_owned();
        if is(self.mutant, Mutant::RestartForgetsToAsk) {
            out = out
                .into_iter()
                .filter(|c| !matches!(c, Command::SetTimer(Timer::Query(_), _)))
                .collect();
        }
        if is(self.mutant, Mutant::LearnNotRetried) {
            out = out
                .into_iter()
                .filter(|c| !matches!(c, Command::SetTimer(Timer::Learn, _)))
                .collect();
        }
        self.mutate_out(out, o);
        state
    }

    /// `DecideWithoutMajority`: for every version a leader sends out to be
    /// accepted, it hears at once that the first other replica accepted it.
    fn imagine_acceptance(&self, id: Id, state: &mut Cow<State>, out: &mut Out<Node>) {
        if !is(self.mutant, Mutant::DecideWithoutMajority) {
            return;
        }
        let accepts: Vec<(Id, Msg)> = out
            .iter()
            .filter_map(|c| match c {
                Command::Send(dst, Msg::Accept { term, version, .. }) => Some((
                    *dst,
                    Msg::Accepted {
                        term: *term,
                        version: *version,
                    },
                )),
                _ => None,
            })
            .collect();
        if let Some((from, ack)) = accepts.into_iter().next() {
            self.node.on_msg(id, state, from, ack, out);
        }
    }

    fn fire(&self, id: Id, state: &mut Cow<State>, timer: &Timer, o: &mut Out<Self>) {
        let mut out = Out::new();
        if self.fire_one_write(id, state, timer, &mut out) {
            return self.mutate_out(out, o);
        }
        match (&self.node, timer) {
            (Node::Coordinator(c), Timer::Votes(txn))
                if is(self.mutant, Mutant::CommitOnVoteTimeout) =>
            {
                let voting =
                    matches!(&**state, State::Coordinator(s) if s.voting.contains_key(txn));
                if voting {
                    // Pretend both participants voted yes.
                    let yes = |txn| Msg::Vote {
                        txn,
                        ballot: twopc_model::Ballot::Yes,
                    };
                    self.node.on_msg(id, state, c.wallet, yes(*txn), &mut out);
                    self.node.on_msg(id, state, c.order, yes(*txn), &mut out);
                }
            }
            (Node::Replica(_), Timer::Replica)
                if is(self.mutant, Mutant::CampaignNotResent)
                    && matches!(&**state, State::Replica(r)
                        if matches!(r.standing, twopc_model::Standing::Candidate { .. })) =>
            {
                out.set_timer(Timer::Replica, twopc_model::timeouts::ELECTION);
            }
            (Node::Replica(r), Timer::Replica)
                if !self.pre_vote
                    && matches!(&**state, State::Replica(s)
                        if s.standing == twopc_model::Standing::Follower) =>
            {
                if let State::Replica(s) = state.to_mut() {
                    r.campaign(id, s, &mut out);
                }
            }
            (Node::Replica(_), Timer::Replica)
                if is(self.mutant, Mutant::LeaderNeverResends)
                    && matches!(&**state, State::Replica(r) if r.leading().is_some()) =>
            {
                out.set_timer(Timer::Replica, twopc_model::timeouts::HEARTBEAT);
            }
            _ => self.node.on_timeout(id, state, timer, &mut out),
        }
        self.imagine_acceptance(id, state, &mut out);
        self.imagine_promise(id, state, &mut out);
        self.mutate_out(out, o);
    }
}
