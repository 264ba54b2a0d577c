//! A replicated coordinator: the same [`Coordinator`], run by whichever of
//! 2F+1 replicas leads, whose every save is accepted by a majority of the
//! replicas before anything that depends on it is sent.
//!
//! Each replica is an *acceptor* of one register, the coordinator's durable
//! state ([`CoordStorage`]), and at most one of them at a time *leads*: it runs
//! the coordinator. The register is written with Paxos ballots ([`Term`]s):
//!
//! - **Leading.** The leader of term `t` turns each `Save` of its coordinator
//!   into version `v` of the register and sends `Accept { t, v, storage }` to
//!   every replica. An acceptor that has promised nothing above `t` accepts
//!   (saves it, then answers `Accepted`). Version `v` is *chosen* once a
//!   majority has accepted `v` (or a later version) of `t`. Every message the
//!   coordinator produced after that save is held until it is chosen: this is
//!   "persist before send", with a majority of replicas in place of one disk.
//! - **Taking over.** A follower whose timer fires asks the others first
//!   whether they would promise the next term (pre-vote, below), and with a
//!   majority's yes campaigns for it. *When* it fires is the runtime's failure detector, not part of
//!   the protocol: the node fires it only after a whole period without
//!   hearing from the leader; the checker lets it fire at any time up to a
//!   budget (safety must hold whatever the timing) and, for liveness,
//!   whenever the follower's leader is down or not leading. Acceptors promise it
//!   (durably) and report the state they accepted last. With a majority of
//!   promises the candidate adopts the highest reported state by (term,
//!   version) and starts the coordinator from it exactly as a restart does:
//!   `on_start` bumps the epoch (a save, replicated like any other) and
//!   re-sends every commit still owed. A new leader is a restart of the one
//!   coordinator, on another machine, from the last state a majority holds.
//! - **Why that state is right.** A chosen version was accepted by a
//!   majority before any of them promised a higher term, and every majority
//!   shares an acceptor with every other: the candidate hears of that version
//!   or of a later one (each leader only ever writes states that extend the
//!   ones before them). So whatever a leader revealed survives every change of
//!   leader, and a deposed leader can no longer get a save chosen: it can
//!   reveal nothing new.
//! - **What the old leader may still say.** A deposed leader that has not
//!   heard of its successor still answers from its state, and all of it was
//!   chosen (or is held). The one answer that is not read from the state is
//!   presumed abort; the coordinator never presumes abort for an attempt of a
//!   later epoch than its own (those belong to a newer leader).
//!
//! Participants and clients send to every replica and accept from any:
//! followers ignore them, the leader answers. A participant votes to
//! whichever replica sent the prepare.
//!
//! ## A leader that is not deposed for nothing
//!
//! A replica cut off from the others (a partition, a long pause) keeps
//! timing out. Were it to campaign each time, it would return with a term
//! above everyone's, and its first `Campaign` would make every acceptor
//! promise it: a healthy leader with a quorum deposed, and no purchase
//! served until the returning replica (or another) won. So a follower
//! whose timer fires first becomes a *pre-candidate* (Ongaro's thesis,
//! §9.6): it sends `PreVote { term }` for the term it would campaign for
//! (its promised term's number plus one, itself the owner) and changes
//! nothing durable. A replica *grants* (`PreVoteGrant`) only if `term` is
//! above its promise and its own timer fired since it last followed
//! anyone: it is a pre-candidate or a candidate itself. A follower, which
//! hears its leader (or has heard of a higher term, or restarted, since its
//! timer last fired), refuses by saying nothing, and so does a leader.
//! (Raft's rule is "heard from a leader within the minimum election
//! timeout"; twopc's timer is pushed back by every message from the leader,
//! so its firing is that condition, and the standing records it: no flag,
//! no clock, no extra state for the checker.) With a majority of grants
//! (its own included) the pre-candidate campaigns exactly as a follower did
//! before: it promises the term durably and sends `Campaign`. A pre-candidate
//! whose timer fires asks again those that did not grant; one that hears the
//! leader of its promised term (an `Accept`, the heartbeat) follows again,
//! and one that promises a higher term (a campaign, an accept, a refusal)
//! follows its owner.
//!
//! - **Safety is untouched.** A grant binds nobody and nothing durable
//!   changes before the campaign, which is the campaign of before: every
//!   argument above holds as it was.
//! - **The returning replica follows.** While it was away its term stayed
//!   where it was; the others, hearing their leader, refuse it; the
//!   leader's next heartbeat carries its promised term (or a higher one it
//!   then promises), and it follows. The checker shows this path exists
//!   (`a replica whose timer fired follows the leader it had`); the netns
//!   test shows, with real processes, that a healed follower deposes its
//!   leader without pre-vote and does not with it.
//! - **Liveness is kept.** With the leader gone for good, every follower's
//!   timer fires: each is then a pre-candidate, and grants the others.
//!   It costs a period more than a campaign at once: the first to ask
//!   is refused by those whose timers have not fired yet, and asks again.
//! - **What it costs.** One round trip more before a campaign, after the
//!   leader died; and a leader that lost its quorum but still sends
//!   heartbeats to a minority keeps that minority from granting (the
//!   majority, not hearing it, elects another).
//!
//! ## Why this shape, and not Paxos Commit
//!
//! Gray and Lamport's Paxos Commit runs one consensus instance per
//! participant's vote, with the participants sending their votes to the
//! acceptors directly; with F=0 it is 2PC. It saves a message delay on the
//! critical path, but it would have changed the participants (they would
//! send votes to every acceptor and trust a decision learned from a
//! majority) and it decides only commit/abort: the coordinator's other
//! durable state, the outcomes it tells callers and the request ids behind
//! them (what makes a retry after failover safe), would still need a
//! replicated log of its own. Replicating the coordinator's whole durable
//! state with one ballot-numbered register covers both with one mechanism,
//! leaves the coordinator's code and the participants' code unchanged, and
//! makes a failover *exactly* a coordinator restart on another machine: the
//! recovery that two-phase commit already has and the checker already
//! explores (epoch bump, presumed abort of what was voting, re-sending owed
//! commits, the floor releasing dead holds).
//!
//! ## What it costs on the critical path
//!
//! A new purchase under 2PC: ask (2 one-way delays), purchase with the
//! ticket (1), prepare (1), vote (1), decision forced to the coordinator's
//! disk, outcome and commit (1): 6 delays, forced writes in sequence at the
//! client (ticket), the participants (prepare, in parallel) and the
//! coordinator (decision). Replicated, the decision's forced write becomes
//! `Accept` to the other replicas, their forced write (in parallel with the
//! leader's own), and `Accepted` back: **2 more one-way delays**, and the
//! decision is on disk at a majority. The answers before the decision
//! (ticket, prepare) need no write and go out at once, unless an earlier
//! save of the leader is still waiting for its majority: outputs are
//! released in order, so under load a purchase can wait for another one's
//! decision to be accepted (the leader's saves are not pipelined per
//! purchase; a leader that is behind sends nothing new). Every other
//! purchase's extra cost is that wait.
//!
//! ## How a new leader finishes what the old one started
//!
//! It starts the coordinator from the highest state its majority reported:
//! owed commits are re-sent until acknowledged; attempts that were still
//! collecting votes are gone (volatile), so prepared participants learn
//! *abort* when they ask (presumed abort, now answered by the new leader)
//! or from the first prepare of the new epoch, whose floor settles them; a
//! client re-sending its purchase with its ticket either finds the outcome
//! (if the old leader's decision was chosen) or starts a new attempt under
//! the new epoch, which can never collide with the old one.
//!
//! ## What participants and clients must now remember
//!
//! Nothing more: the same holds, floor and finished transactions; the same
//! seen outcomes and ticket. They know every replica's address instead of
//! one, accept a coordinator's message from any of them, and vote to the
//! replica that sent the prepare.
//!
//! ## A replica that lost its disk
//!
//! Everything above rests on an acceptor never forgetting what it promised
//! or accepted: a majority that counted its promise or its acceptance must
//! still hold it. A replica whose disk was replaced has forgotten both; if
//! it promised a lower term or accepted an older state at once, a majority
//! could be counted that remembers nothing of a chosen state (two replicas
//! of three: the one that forgot, and one that never had it). So a replica
//! that starts without storage is *recovering* (Viewstamped Replication's
//! recovering state; Alagappan et al., "Protocol-Aware Recovery for
//! Consensus-Based Storage", FAST 2018): it asks every other replica
//! (`Recover { nonce }`, again on a timer), answers no campaign and no
//! accept (not even with a refusal), runs no coordinator, and once **every
//! other replica** has answered (`RecoverReply`) it adopts the highest
//! promise and the highest accepted state (by term, version) among the
//! answers, saves them, and becomes an acceptor again (a follower). A
//! replica that is recovering itself answers too, with nothing.
//!
//! - **Why it forgets nothing that counted.** Whatever the replica did
//!   before the loss that anyone counted was counted by a majority, and
//!   the others in it still hold it (or something higher) when they
//!   answer: promises and accepted states only grow, answers are given
//!   after the loss (the nonce names this incarnation's question), and only
//!   one replica is without its disk at a time (below). A promise it made
//!   was made to a candidate, which promised its own term durably; an
//!   acceptance it sent was sent to the leader that wrote that version
//!   before the loss. Both answer, so it adopts at least that promise and
//!   at least that (term, version); and a leader that counts its old
//!   acknowledgement later (received before the loss) counts what the
//!   replica holds again.
//! - **Why every other replica, not F+1.** With three replicas it is the
//!   same. With five, F+1 answers could all come from replicas that had
//!   not yet accepted a version the replica acknowledged before the loss,
//!   and a leader could then count that stale acknowledgement with one more
//!   and call the version chosen while no majority holds it. The leader's
//!   own answer closes that; waiting for every answer is the simplest way
//!   to have it. The price: a replica on a new disk rejoins only when every
//!   other replica is reachable (the group keeps committing meanwhile).
//! - **A new cluster.** Every replica starts without storage and recovers:
//!   each hears every other one say it holds nothing (recovering, or
//!   recovered with nothing), adopts nothing and follows; the first replica,
//!   having heard that nobody promised anything beyond the first term or
//!   accepted anything, leads the first term as it always did. That
//!   conclusion is right: if some replica had ever accepted a state or
//!   promised a later term, it would have said so, unless it lost its disk
//!   too, which is excluded below. It is the only way to lead the first
//!   term: a replica that finds anything campaigns like any other.
//! - **What it assumes.** One replica without its disk at a time: an
//!   operator replaces a second disk only after `twopc status` shows the
//!   first replica caught up (for three replicas this is F). And, as for a
//!   coordinator's lost disk, replacing a disk takes longer than a message
//!   lives, for the messages that name a term the replica owns: its
//!   campaigns, and its accepts as a leader (its next life may own the same
//!   term again, the first one above all, and must not meet them). Its old
//!   promises and acknowledgements may still arrive: whoever counts them
//!   (the candidate, the leader that wrote that version) answers its
//!   recovery question with at least what they said. Answers to an earlier
//!   life's question are told apart by the nonce.
//! - **What is checked.** `twopc-check --lose-replica-disk` (the
//!   `replica-disk-lost` entry of the CI matrix): a backup's disk lost
//!   while it alone with the leader holds the latest state; every safety
//!   property holds, and it catches up with a commit decided after the
//!   loss. A replica that votes at once on an empty disk breaks `durable`
//!   there; with the leader's disk lost (random walks: too many states to
//!   exhaust) it leads the first term again and breaks atomicity.
//! - **Liveness.** Recovery needs every other replica to answer; a new
//!   cluster comes up once every replica has started.

use crate::coordinator::{CoordState, Coordinator};
pub use crate::durable::{Accepted, ReplicaStorage};

mod doubts;
mod leading;
mod messages;
mod prevote;
use crate::msg::*;
use crate::{Node, Storage};
use serde::{Deserialize, Serialize};
use stateright::actor::{Command, Id, Out};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

#[path = "recovery.rs"]
mod recovery;

/// A replica's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Replica {
    /// The coordinator it runs while it leads.
    pub coordinator: Coordinator,
    /// Every replica, itself included. The first leads the first term.
    pub peers: Vec<Id>,
    /// Its own place in `peers` (names it).
    pub index: usize,
    /// This incarnation's mark, carried by its recovery question so that
    /// answers to an earlier life's question do not count (see *A replica
    /// that lost its disk* above). A runtime draws it at random at every
    /// process start; the checker leaves it 0 (a replaced disk drains every
    /// message to and from the replica there).
    #[serde(default)]
    pub incarnation: u64,
}

/// An output of the leader's coordinator waiting for a save to be chosen.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Held {
    /// The version that must be chosen first.
    pub version: u64,
    /// Where it goes.
    pub dst: Id,
    /// What.
    pub msg: Msg,
}

/// A leader's state (volatile: a restarted replica follows).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Leading {
    /// The term it leads.
    pub term: Term,
    /// The coordinator it runs.
    pub coord: CoordState,
    /// The latest version it wrote.
    pub version: u64,
    /// The highest version of this term each replica acknowledged, for
    /// those above `chosen` (older acks count for nothing more).
    pub acks: BTreeMap<Id, u64>,
    /// The highest version a majority accepted.
    pub chosen: u64,
    /// Outputs waiting for their version to be chosen, in order.
    pub held: Vec<Held>,
}

/// What a replica is doing.
// (`Recovering` holds a whole replica storage, a coordinator's durable
// state, which grew past clippy's limit with `refunded`; one per replica,
// kept once per actor in the checker: boxing it would save nothing that
// matters.)
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Standing {
    /// Follows the leader of its promised term.
    Follower,
    /// Its timer fired: asks the others whether they would promise `term`
    /// (its promised term's number plus one) before it campaigns for it
    /// (pre-vote, see *A leader that is not deposed for nothing* above).
    /// Nothing durable has changed.
    PreCandidate {
        /// The term it would campaign for.
        term: Term,
        /// The replicas that said they would (itself included).
        grants: BTreeSet<Id>,
    },
    /// Campaigns for `term`, collecting promises.
    Candidate {
        /// The term it asks for.
        term: Term,
        /// The promises so far, with what each replica had accepted.
        promises: BTreeMap<Id, Option<Accepted>>,
    },
    /// Leads.
    Leader(Box<Leading>),
    /// Started without its durable state: neither promises, accepts, nor
    /// campaigns until every other replica has told it what it holds (see
    /// *A replica that lost its disk* above). Its `acceptor` meanwhile is a
    /// placeholder, never saved.
    Recovering {
        /// The replicas that answered this incarnation's question.
        answered: BTreeSet<Id>,
        /// The highest promise and the highest accepted state among their
        /// answers (what it will adopt).
        learned: ReplicaStorage,
    },
}

/// A replica's whole state.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReplicaState {
    /// The acceptor (durable).
    pub acceptor: ReplicaStorage,
    /// Follower, candidate or leader (volatile).
    pub standing: Standing,
}

impl ReplicaState {
    /// The coordinator this replica runs, if it leads.
    pub fn leading(&self) -> Option<&Leading> {
        match &self.standing {
            Standing::Leader(l) => Some(l),
            _ => None,
        }
    }

    /// The term it leads or campaigns for.
    fn own_term(&self) -> Option<Term> {
        match &self.standing {
            Standing::Follower | Standing::PreCandidate { .. } | Standing::Recovering { .. } => {
                None
            }
            Standing::Candidate { term, .. } => Some(*term),
            Standing::Leader(l) => Some(l.term),
        }
    }

    /// Promise `term` (higher than any before): a leader or candidate of a
    /// lower term steps down.
    fn promise(&mut self, term: Term) {
        self.acceptor.promised = term;
        if self.own_term().is_some_and(|t| t < term) || self.own_term().is_none() {
            self.standing = Standing::Follower;
        }
    }
}

impl Replica {
    /// How many replicas make a majority.
    pub fn quorum(&self) -> usize {
        self.peers.len() / 2 + 1
    }

    fn others(&self, me: Id) -> Vec<Id> {
        self.peers.iter().copied().filter(|p| *p != me).collect()
    }

    /// A pre-candidate's or candidate's timer fired: ask again, with `ask`,
    /// every other replica that has not `answered`.
    fn ask_again_unless(
        &self,
        me: Id,
        answered: impl Fn(&Id) -> bool,
        ask: &Msg,
        o: &mut Out<Node>,
    ) {
        o.set_timer(Timer::Replica, crate::timeouts::ELECTION);
        let missing: Vec<Id> = self
            .others(me)
            .into_iter()
            .filter(|p| !answered(p))
            .collect();
        o.broadcast(&missing, ask);
    }

    /// The term this replica would campaign for: the one after its promise.
    fn next_term(me: Id, s: &ReplicaState) -> Term {
        Term {
            n: s.acceptor.promised.n + 1,
            leader: me,
        }
    }

    /// The term every replica has promised before anything happened: it
    /// belongs to the first replica, which leads it without campaigning
    /// (nobody can have accepted anything from a lower term).
    pub fn first_term(&self) -> Term {
        Term {
            n: 0,
            leader: self.peers[0],
        }
    }

    /// Start or restart. A restarted replica follows. One that finds no
    /// storage (a new cluster, or its disk replaced) recovers first (see
    /// [`Replica::start_recovering`]); the first replica leads the first
    /// term once it has learned that nobody holds anything.
    pub fn on_start(
        &self,
        me: Id,
        storage: Option<&ReplicaStorage>,
        o: &mut Out<Node>,
    ) -> ReplicaState {
        match storage {
            Some(s) => {
                o.set_timer(Timer::Replica, crate::timeouts::ELECTION);
                ReplicaState {
                    acceptor: s.clone(),
                    standing: Standing::Follower,
                }
            }
            None => self.start_recovering(me, o),
        }
    }

    /// Handle a timer.
    pub fn on_timeout(
        &self,
        me: Id,
        state: &mut Cow<ReplicaState>,
        timer: &Timer,
        o: &mut Out<Node>,
    ) {
        if *timer != Timer::Replica {
            let Some(l) = state.leading() else { return };
            let mut inner = Out::new();
            let mut coord = Cow::Borrowed(&l.coord);
            self.coordinator.on_timeout(&mut coord, timer, &mut inner);
            let changed = owned(coord);
            return self.run(me, state, changed, inner, o);
        }
        match &state.standing {
            Standing::Recovering { answered, .. } => {
                let answered = answered.clone();
                self.ask_again(me, &answered, o)
            }
            Standing::Follower => self.ask_to_campaign(me, state.to_mut(), o),
            Standing::PreCandidate { term, grants } => {
                let pre_vote = Msg::PreVote { term: *term };
                self.ask_again_unless(me, |p| grants.contains(p), &pre_vote, o)
            }
            Standing::Candidate { term, promises } => {
                let campaign = Msg::Campaign { term: *term };
                self.ask_again_unless(me, |p| promises.contains_key(p), &campaign, o)
            }
            Standing::Leader(l) => {
                // The heartbeat: the latest state again, to every replica
                // (those that have it just acknowledge it).
                o.set_timer(Timer::Replica, crate::timeouts::HEARTBEAT);
                if let Some(a) = &state.acceptor.accepted {
                    if a.term == l.term {
                        let accept = Msg::Accept {
                            term: l.term,
                            version: a.version,
                            storage: a.storage.clone(),
                        };
                        o.broadcast(&self.others(me), &accept);
                    }
                }
            }
        }
    }
}

/// The coordinator's new state, if its step changed it.
fn owned(coord: Cow<CoordState>) -> Option<CoordState> {
    match coord {
        Cow::Owned(c) => Some(c),
        Cow::Borrowed(_) => None,
    }
}

#[cfg(test)]
#[path = "replica_tests.rs"]
pub(crate) mod tests;
