//! # twopc-model: a purchase as presumed-abort two-phase commit
//!
//! A purchase debits a user's wallet by `qty * price` and takes `qty` units of
//! a sku from the order service: both or neither. Four roles, written once as
//! [`stateright`] actors, model-checked by `twopc-check` and run over UDP by the
//! `twopc` node binary. This crate is pure: no IO, no clocks, no threads. Every
//! effect is a [`Command`](stateright::actor::Command) written into `Out`.
//!
//! ## The protocol
//!
//! 1. **Request.** A [`client::Client`] sends `Purchase { req, .. }` to the
//!    coordinator and re-sends it on a timer until it gets an `Outcome`. `req`
//!    is an id the caller chose (an idempotency key: a shop's order number,
//!    or a random one): every copy of the purchase, from any process, is the
//!    same purchase. An id the coordinator does not know is not started at
//!    once: it answers `Status::Unknown { ticket }`, and the client saves the
//!    ticket and re-sends the purchase with it (see *What the coordinator
//!    remembers* below for why). An id it knows gets its outcome; the same
//!    id with other contents gets `Refused(KeyReused)`.
//! 2. **Prepare.** The [`coordinator::Coordinator`] gives the attempt a fresh
//!    [`TxnId`] (its epoch, bumped durably at every start, plus a counter) and
//!    sends `Prepare` to the wallet and to the order service. Every prepare
//!    carries the coordinator's [`Floor`]: every attempt ordered below it is
//!    settled (decided, and if committed, applied and acknowledged by both)
//!    except the commits it lists as still owed.
//! 3. **Vote.** A [`participant::Participant`] first applies the floor: it
//!    releases the holds the floor settles (attempts nobody will commit),
//!    forgets the finished transactions it settles, and ignores a prepare
//!    that arrives below it. Then it checks that the level net of the
//!    remaining holds covers the amount. If so it records a *hold* (escrow, not a
//!    lock: a hot account never waits for a round trip), **saves it, then**
//!    votes yes. If not, it records the abort and votes no.
//! 4. **Decide.** All yes: the coordinator **saves** the commit decision and
//!    the client's outcome, **then** sends `Commit` to both participants and
//!    the `Outcome` to the client. Any no, or the vote timer firing: it saves
//!    the client's (aborted) outcome, then sends `Abort` and the `Outcome`.
//! 5. **Finish.** A participant applies a commit (level minus held amount),
//!    saves, then acks. The coordinator re-sends `Commit` on a timer until both
//!    acked, then forgets the decision. Aborts are not acked: a participant
//!    still holding a transaction asks the coordinator (`QueryDecision`) on a
//!    timer, and an unknown transaction is *presumed aborted*.
//!
//! On the critical path of a committed purchase there are two forced writes in
//! sequence: the participants' prepares (in parallel), then the decision.
//!
//! ## What each fault does
//!
//! The model's network is UDP-like: it may drop, duplicate, reorder and
//! re-deliver any message it ever carried, at any later time, across crashes.
//!
//! - **Lost message**: every message that matters is re-sent by a timer
//!   (purchase, commit, query) or replaced by a timeout (votes → abort).
//! - **Duplicate or stale message**: every handler is idempotent. A retry of a
//!   decided request gets the saved outcome; a stale copy of a purchase
//!   whose outcome was forgotten carries a ticket older than what was
//!   forgotten and is answered "unknown", never started; a prepare after the
//!   decision changes nothing; a duplicate commit is acked and not applied
//!   again; votes, acks and queries about older attempts are answered from
//!   the log or by presumed abort.
//! - **Participant crash**: holds and finished transactions are durable; on
//!   restart each hold asks the coordinator for its decision.
//! - **Coordinator crash before deciding**: the vote collection is forgotten;
//!   participants that prepared learn "abort" (presumed) when they ask, or
//!   from the first prepare of the new epoch, whose floor settles every
//!   older attempt that is not an owed commit: the dead hold is released
//!   before that prepare is judged, so a purchase the money covers is never
//!   refused because of it. The client's retry starts a new attempt under
//!   the new epoch, so the old attempt's abort can never hit the new
//!   attempt's hold.
//! - **Coordinator crash after deciding**: the decision is durable and is
//!   re-sent on restart until every participant acked.
//! - **Client crash**: the outcomes it saw and its ticket are durable; it
//!   resumes retrying its current request with the same ticket, which the
//!   coordinator answers idempotently.
//! - **Caller that lost its memory** (a shop whose server crashed between
//!   sending and hearing): it re-sends the id *without* a ticket (a
//!   [`client::Mode::Retry`]) or asks with `Lookup`. It gets the first
//!   attempt's outcome, or "in progress" (a lookup), or "unknown: never seen
//!   or expired", and never starts a second purchase. Starting anew after
//!   "unknown" is the caller's explicit choice: the ticket in that answer.
//!
//! ## A shop's operations: one general transaction
//!
//! A purchase is one case of the protocol's general transaction: a set of
//! changes at the participants an operation touches, each a *hold* (a
//! debit: reserved at prepare, applied at commit) or a *credit* (applied
//! only at commit, held nowhere, refused only when it would overflow). A
//! top-up ([`Operation::TopUp`]) is a credit at the wallet alone, a restock
//! ([`Operation::Restock`]) a credit at the order service alone: each is a
//! one-participant transaction through the same ids, tickets, votes,
//! durable decision and retention, sent as `Msg::Request` and prepared with
//! `Msg::PrepareCredit` (a purchase keeps its messages' bytes). A credit
//! to a key that does not exist creates it, at commit. The transaction's
//! participants ride with a pending credit, so that a coordinator that lost
//! its log judges it among them only. Why floors, epochs and the lost-log
//! resolution carry over, refunds and prices by design, and what changed on
//! the wire and on disk: docs/shop.md.
//!
//! ## One durable write (opt in, either protocol)
//!
//! With [`Coordinator::one_write`] (and [`Participant::one_write`] at both
//! participants) a purchase waits for one forced write, the participants'
//! prepares, instead of two: the participants' saved votes *are* the
//! decision. All yes: the coordinator tells "committed" and sends `Commit`
//! before saving anything (the record rides on the save that forgets the
//! acknowledged commit). A vote that does not come is *fenced*
//! ([`Msg::Fence`]): the participant saves "aborted" if it never prepared,
//! or answers yes if it did, and only a no (a fence's included) aborts.
//! Every start, and every new leader of a replica group, resolves from the
//! participants' fates: a transaction every participant holds is committed
//! (nobody can have been told "aborted" without a saved no or fence), and a
//! participant answering `AskEpoch` first raises its floor to the asker's
//! epoch, durably, so that what it had no trace of stays so. A one-write
//! participant names its debit with each hold and commit
//! ([`Fate::HeldFor`], [`Fate::CommittedFor`]), and the start records again
//! every purchase the two debits show committed, numbered above every
//! ticket handed out before it: so the tickets stay good, and a copy of a
//! purchase told and not saved finds its outcome. What cannot be rebuilt so
//! still saves before it is told: an abort (a fenced party never heard the
//! request), a refund, a top-up or a restock. The argument, what the
//! checker says and what is left: docs/one-write.md.
//!
//! ## The known limit
//!
//! Two-phase commit blocks: a participant that voted yes must wait for the
//! decision. While a coordinator that may have decided stays down, prepared
//! participants keep their holds and keep asking, forever. `twopc-check
//! liveness --never-recover coordinator` shows the path to that state.
//!
//! ## Epochs are learned, not assumed
//!
//! A coordinator bumps the epoch it saved at every start. If its log is the
//! cluster's latest, every epoch it ever used is below the new one, and so
//! is every epoch the participants saw. But a log does not know that it is
//! the latest: a disk replaced by an empty one (as an operator does with a
//! damaged directory), a directory restored from a backup, a replica group
//! taking over from 2PC on empty directories all start behind the
//! participants, whose floors may be epochs ahead. A prepare below a floor
//! is ignored; worse, an epoch the participants already saw would number
//! attempts they hold or finished, and a reused number is a different
//! purchase under an old vote. So at **every start**, before it prepares
//! anything (and before it hands out a ticket), the coordinator sends
//! `AskEpoch` to every participant, again on a timer until each has
//! answered `Epoch { highest }`: the highest epoch of its durable floor,
//! holds and finished transactions. If any is at or above its own, it moves
//! to the epoch after the highest, saves it, and starts a new *generation*
//! of tickets (`next` and `forgotten_below` jump to the epoch times 2^32):
//! every ticket the lost or restored log handed out since is older than
//! that, so a caller's retry with one is answered "unknown" and never
//! starts its purchase a second time. Until both have answered, every
//! message but the answers is ignored (callers and participants retry).
//! Questions and answers carry the asker's epoch, so an answer to another
//! incarnation's question is ignored. The checker's property *a learned
//! coordinator's next attempt is new to every participant* states the
//! result; the mutant `epoch-not-learned` breaks it.
//!
//! A restart costs one round trip to the participants before the first
//! purchase, and needs both to answer: a coordinator restarted while a
//! participant is down serves nothing until it is back (no purchase could
//! commit without it anyway; lookups wait too). A new leader of a replica
//! group does not ask: it starts from the state a majority accepted, which
//! is the group's latest unless a majority of replicas lost or rolled back
//! their disks at once (see [`replica`]).
//!
//! What this assumes: **datagrams of an earlier incarnation with the same
//! epoch are gone** when a new one starts (replacing a disk or restoring a
//! backup takes longer than a datagram lives). The checker's `--lose-disk`
//! drains them; with them still in flight, an old answer could pass for a
//! new one and an epoch whose prepares are still on their way could be used
//! twice (the checker found exactly that). The node does not enforce it.
//!
//! ## A lost log is never presumed
//!
//! Presumed abort is sound only for a coordinator that *has* its log: a
//! transaction it does not find there was never decided commit. A lost log
//! may have decided commit, told the caller, and delivered the commit to one
//! participant before it was lost. So each `Epoch` answer also carries the
//! participant's *fates*: every transaction it holds (voted yes, no
//! decision), and every one it finished (committed or aborted) that no
//! floor has settled yet. For each transaction some participant holds, the
//! new coordinator decides from what the others know:
//!
//! - **Some participant committed it**: the lost log decided commit. It
//!   becomes an owed commit of the new log (saved before it is sent),
//!   delivered until every participant acknowledged it.
//! - **Some participant aborted it, or has no trace of it**: it cannot have
//!   committed. A commit needs every yes, a yes is a durable hold, and a
//!   participant forgets a transaction only when a floor settles it, which
//!   for a commit needs every participant's acknowledgement, and the holder
//!   has not acknowledged. It is aborted (sent to both; the new epoch's
//!   floor settles it).
//! - **Every participant holds it**: nobody knows. The lost log may have
//!   decided either way (and told the caller), so it stays *in doubt*,
//!   durably (`CoordStorage::doubts`): never presumed, listed in every
//!   floor as not settled (the holds stay and keep counting against the
//!   level), answered to no query, its request id reported as in progress
//!   (a retry never starts it again). An operator decides it with
//!   [`Coordinator::decide_in_doubt`], recorded as a *heuristic* decision,
//!   as XA's heuristic outcomes are: the only step where a human may pick
//!   the wrong side, and the node says so when it is taken.
//!
//! Until both participants answered, the coordinator presumes nothing and
//! answers no query, vote or acknowledgement: every sender asks again. The
//! checker's `--lose-disk` loses the coordinator's log at any crash,
//! including while commits are owed; every safety property holds, and a
//! coordinator that presumes abort for a lost log is caught breaking
//! atomicity (`--mutant presume-abort-for-lost-log`).
//!
//! ## What the coordinator remembers, and for how long
//!
//! Durably, the outcomes of the last `retention` decided purchases (a
//! count, from the configuration; the node's cluster file says `retention`,
//! default 100,000), each with the purchase's contents and a number in the
//! order they were decided. Recording one more forgets the oldest and
//! raises `forgotten_below` past its number. The table no longer grows with
//! each caller: it is bounded by `retention`, whoever asks.
//!
//! Forgetting is where duplicates become dangerous: the network may deliver
//! a copy of a purchase long after its outcome is forgotten, and a
//! coordinator that took it as new would charge twice. Hence the **ticket**:
//! the count of outcomes recorded when the coordinator said "unknown". A
//! purchase starts only if its id is unknown (not remembered, no attempt
//! collecting votes, no commit still being delivered) *and* its ticket is
//! at least `forgotten_below`. Why that is enough: if the id was decided
//! (number `a`) and then forgotten, `forgotten_below > a`; every ticket the
//! caller was given before the decision is at most `a`, so every copy of
//! its purchase is refused with `Verdict::Unknown`. Only a ticket handed
//! out after the id was forgotten, that is, a caller that asked, heard
//! "unknown", and chose to buy again, can start it a second time. An id
//! with an attempt in flight is never unknown: the attempt is found first.
//! Both the outcomes and the counters are saved before any outcome or
//! ticket based on them is sent, and survive a coordinator crash; the
//! attempts a crash forgets were presumed aborted, so starting their id
//! again (with a fresh transaction id) charges nothing twice.
//!
//! Lookups (`Lookup { req }`) answer from the same state: the outcome,
//! `Status::InProgress`, or `Status::Unknown { ticket }`; they start
//! nothing and save nothing.
//!
//! ## What it costs, what it remembers
//!
//! The floor costs nothing on the normal path: it is computed from the
//! oldest attempt still voting and the (usually empty) list of owed
//! commits, and rides on the prepare that is sent anyway. A participant
//! remembers a finished transaction until a later prepare's floor settles
//! it, so its memory follows the transactions in flight, not its history.
//! Why forgetting is safe: below the floor a prepare is ignored (it cannot
//! create a hold for a decided attempt), a commit is acknowledged without
//! being applied again (it was applied before the coordinator could settle
//! it), and an abort changes nothing. The coordinator remembers at most
//! `retention` outcomes (above). A new purchase costs one more round trip
//! than before (the ticketless ask), with no forced write.

pub mod client;
pub mod coordinator;
pub mod durable;
pub mod kind;
pub mod msg;
pub mod outcomes;
mod pairs;
pub mod participant;
pub mod replica;
pub mod trace;
pub mod types;

pub use client::{Client, ClientState, Mode, Request};
pub use coordinator::{
    CoordState, CoordStorage, Coordinator, Known, Learning, Outcomes, Told, TICKET_GENERATION_BITS,
};
pub use kind::{msg_txn, MsgKind};
pub use msg::*;
pub use participant::{Credit, Hold, PartState, PartStorage, Participant, Resource};
pub use replica::{Accepted, Leading, Replica, ReplicaState, ReplicaStorage, Standing};

use serde::{Deserialize, Serialize};
use stateright::actor::{Actor, Id, Out};
use std::borrow::Cow;

/// Where each actor sits in a system that holds them all (the checker's
/// model, the deterministic simulator): the coordinator (or the first
/// coordinator replica), the wallet, the order service; clients and the
/// other replicas follow, as each system lays them out.
pub mod slots {
    /// The coordinator's (or the first replica's) actor index.
    pub const COORDINATOR: usize = 0;
    /// The wallet's actor index.
    pub const WALLET: usize = 1;
    /// The order service's actor index.
    pub const ORDER: usize = 2;
}

/// Timer durations, for runtimes. The model checker ignores them (any set timer
/// may fire at any time), so they shape only real-world behaviour.
pub mod timeouts {
    use std::ops::Range;
    use std::time::Duration;

    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }
    /// Client: resend an unanswered purchase.
    pub const RETRY: Range<Duration> = ms(300)..ms(600);
    /// Coordinator: give up on missing votes and abort.
    pub const VOTES: Range<Duration> = ms(1000)..ms(1500);
    /// Coordinator: resend an unacknowledged commit.
    pub const RESEND: Range<Duration> = ms(200)..ms(400);
    /// Participant: ask about a prepared transaction with no decision.
    pub const QUERY: Range<Duration> = ms(500)..ms(1000);
    /// Coordinator: ask a silent participant again what epoch it has seen.
    pub const LEARN: Range<Duration> = ms(100)..ms(200);
    /// Replica leader: re-send the latest state (the heartbeat).
    pub const HEARTBEAT: Range<Duration> = ms(50)..ms(100);
    /// Replica without its disk: ask again the replicas that have not
    /// answered its recovery question.
    pub const RECOVER: Range<Duration> = ms(100)..ms(200);
    /// Replica follower: campaign after a period without hearing the leader
    /// (several heartbeats); candidate: re-send the campaign.
    pub const ELECTION: Range<Duration> = ms(300)..ms(600);
    /// Participant (one write): save the commits applied in memory when
    /// no prepare's save has carried them for this long (an idle shop).
    pub const FLUSH: Range<Duration> = ms(2)..ms(4);
}

/// The one actor type of a twopc system: every node plays one role.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Node {
    /// Runs the transactions.
    Coordinator(Coordinator),
    /// Guards balances or stock.
    Participant(Participant),
    /// Makes purchases.
    Client(Client),
    /// One replica of a replicated coordinator.
    Replica(Replica),
}

/// The state of any node.
// (A replica's state holds a coordinator's and a copy of its durable state,
// so it is the largest by some 200 bytes since operations added two maps
// to each. A state is kept once per actor, behind an `Arc` in the checker:
// boxing the variant would save nothing that matters.)
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum State {
    /// A coordinator's state.
    Coordinator(CoordState),
    /// A participant's state.
    Participant(PartState),
    /// A client's state.
    Client(ClientState),
    /// A coordinator replica's state.
    Replica(ReplicaState),
}

/// The durable state of any node: what `Save` writes and `on_start` reads.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Storage {
    /// A coordinator's log.
    Coordinator(CoordStorage),
    /// A participant's balances or stock, holds and finished transactions.
    Participant(PartStorage),
    /// A client's seen outcomes.
    Client(ClientState),
    /// A coordinator replica's promise and accepted state.
    Replica(ReplicaStorage),
}

impl State {
    /// The durable projection of this state: what the last `Save` must hold.
    pub fn storage(&self) -> Storage {
        match self {
            State::Coordinator(s) => Storage::Coordinator(s.storage()),
            State::Participant(s) => Storage::Participant(s.data.clone()),
            State::Client(s) => Storage::Client(s.clone()),
            State::Replica(s) => Storage::Replica(s.acceptor.clone()),
        }
    }
}

/// Runs `f` on the role's own state inside a `Cow<State>`, keeping the
/// borrowed/owned distinction so the checker can still see no-op steps.
macro_rules! with_role_state {
    ($state:expr, $variant:ident, |$inner:ident| $body:expr) => {{
        let State::$variant(inner) = &**$state else {
            unreachable!("a node's state always matches its role")
        };
        let mut $inner = Cow::Borrowed(inner);
        $body;
        if let Cow::Owned(owned) = $inner {
            *$state = Cow::Owned(State::$variant(owned));
        }
    }};
}

impl Actor for Node {
    type Msg = Msg;
    type State = State;
    type Timer = Timer;
    type Random = ();
    type Storage = Storage;

    fn on_start(&self, id: Id, storage: &Option<Storage>, o: &mut Out<Self>) -> State {
        match self {
            Node::Coordinator(c) => {
                let stored = match storage {
                    Some(Storage::Coordinator(s)) => Some(s),
                    _ => None,
                };
                State::Coordinator(c.on_start(stored, o))
            }
            Node::Participant(p) => {
                let stored = match storage {
                    Some(Storage::Participant(s)) => Some(s),
                    _ => None,
                };
                State::Participant(p.on_start(stored, o))
            }
            Node::Client(c) => {
                let stored = match storage {
                    Some(Storage::Client(s)) => Some(s),
                    _ => None,
                };
                State::Client(c.on_start(stored, o))
            }
            Node::Replica(r) => {
                let stored = match storage {
                    Some(Storage::Replica(s)) => Some(s),
                    _ => None,
                };
                State::Replica(r.on_start(id, stored, o))
            }
        }
    }

    fn on_msg(&self, id: Id, state: &mut Cow<State>, src: Id, msg: Msg, o: &mut Out<Self>) {
        match self {
            Node::Coordinator(c) => {
                with_role_state!(state, Coordinator, |s| c.on_msg(&mut s, src, msg, o))
            }
            Node::Participant(p) => {
                with_role_state!(state, Participant, |s| p.on_msg(&mut s, src, msg, o))
            }
            Node::Client(c) => with_role_state!(state, Client, |s| c.on_msg(&mut s, src, msg, o)),
            Node::Replica(r) => {
                with_role_state!(state, Replica, |s| r.on_msg(id, &mut s, src, msg, o))
            }
        }
    }

    fn on_timeout(&self, id: Id, state: &mut Cow<State>, timer: &Timer, o: &mut Out<Self>) {
        match self {
            Node::Coordinator(c) => {
                with_role_state!(state, Coordinator, |s| c.on_timeout(&mut s, timer, o))
            }
            Node::Participant(p) => {
                with_role_state!(state, Participant, |s| p.on_timeout(&mut s, timer, o))
            }
            Node::Client(c) => {
                with_role_state!(state, Client, |s| c.on_timeout(&mut s, timer, o))
            }
            Node::Replica(r) => {
                with_role_state!(state, Replica, |s| r.on_timeout(id, &mut s, timer, o))
            }
        }
    }

    fn name(&self) -> String {
        match self {
            Node::Coordinator(_) => "coordinator".into(),
            Node::Participant(p) => match p.resource {
                Resource::Wallet => "wallet".into(),
                Resource::Order => "order".into(),
            },
            Node::Client(c) => format!("client{}", c.id),
            Node::Replica(r) => format!("replica{}", r.index),
        }
    }
}

#[cfg(test)]
mod onewrite_tests;

#[cfg(test)]
pub(crate) mod test_util {
    //! Helpers for handler unit tests: feed one event, compare the exact
    //! commands out (stateright's `Command` has no `PartialEq`, so the
    //! comparison is on their `Debug` form, which shows every field).
    use super::*;

    pub fn cmds(out: &Out<Node>) -> String {
        format!("{out:?}")
    }

    pub fn expect(f: impl FnOnce(&mut Out<Node>)) -> String {
        let mut o = Out::new();
        f(&mut o);
        cmds(&o)
    }

    pub fn txn(n: u64) -> TxnId {
        TxnId { epoch: 1, n }
    }

    pub fn req(seq: u64) -> RequestId {
        RequestId::new(format!("order-{seq}"))
    }
}
