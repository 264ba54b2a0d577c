//! The messages and timers of the protocol.
//!
//! Everything here derives serde so the node can put it on the wire and on disk
//! unchanged, and `Ord`/`Hash` so the model checker can store it in states.

pub use crate::types::*;
use serde::{Deserialize, Serialize};

/// Every message of the protocol.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Msg {
    /// Client → coordinator: the purchase with id `req` (sent again until
    /// answered). A known id gets its outcome (or a refusal if the contents
    /// differ), an id in progress gets the outcome once decided. An unknown
    /// id is started only with a `ticket` (from a `Status::Unknown`) not
    /// older than anything the coordinator has forgotten since; without a
    /// ticket it is answered `Status::Unknown`, with a stale one
    /// `Verdict::Unknown`.
    Purchase {
        req: RequestId,
        purchase: Purchase,
        ticket: Option<Ticket>,
    },
    /// Anyone → coordinator: what became of `req`? Answered with its
    /// `Outcome` or a `Status`; starts nothing.
    Lookup { req: RequestId },
    /// Coordinator → caller: the request's outcome (durable at the coordinator
    /// when committed or aborted).
    Outcome(Outcome),
    /// Coordinator → caller: `req` has no outcome to give (yet).
    Status { req: RequestId, status: Status },
    /// Coordinator → participant: hold `op` for `txn`, then vote. The floor
    /// says what is settled (see [`Floor`]).
    Prepare {
        txn: TxnId,
        req: RequestId,
        op: Op,
        floor: Floor,
    },
    /// Participant → coordinator: the vote on `txn`.
    Vote { txn: TxnId, ballot: Ballot },
    /// Coordinator → participant: apply the hold of `txn` (sent until acked).
    Commit { txn: TxnId },
    /// Coordinator → participant: release the hold of `txn`.
    Abort { txn: TxnId },
    /// Participant → coordinator: `txn`'s commit is durable here.
    Ack { txn: TxnId },
    /// Participant → coordinator: I hold `txn` and have heard no decision.
    QueryDecision { txn: TxnId },
    /// Coordinator → participant, at every start, before any prepare: what
    /// is the highest coordinator epoch you have seen? `epoch` is the
    /// asker's own (its answer is for that epoch only). See *Epochs are
    /// learned* in the crate docs.
    AskEpoch { epoch: u64 },
    /// Participant → coordinator: the answer to `AskEpoch { epoch: asked }`:
    /// the highest epoch seen, and the fate of every transaction this
    /// participant still holds or remembers (what a lost log may have
    /// decided is resolved from them).
    Epoch {
        asked: u64,
        highest: u64,
        /// (Absent from traces recorded before it: none.)
        #[serde(default)]
        fates: Vec<(TxnId, Fate)>,
    },

    // --- Between the replicas of a replicated coordinator (see `replica`) ---
    /// A replica asks to lead from `term` on: promise to ignore lower terms,
    /// and tell me what you accepted.
    Campaign { term: Term },
    /// The answer to a campaign: promised `term`; the highest state accepted
    /// so far (none if none).
    Promise {
        term: Term,
        accepted: Option<crate::durable::Accepted>,
    },
    /// The leader of `term` asks every replica to accept `storage`, its
    /// coordinator's durable state, as version `version` of that term.
    Accept {
        term: Term,
        version: u64,
        storage: crate::durable::CoordStorage,
    },
    /// A replica accepted (durably) version `version` of `term`, or later.
    Accepted { term: Term, version: u64 },
    /// A replica refused a campaign or an accept: it has promised `promised`.
    Nack { promised: Term },

    // --- A replica that lost its disk catching up (see `recovery`) ---
    /// A replica that started without its durable state asks every other
    /// replica what it holds. `nonce` is the asker's incarnation: answers to
    /// an earlier life's question do not count.
    Recover { nonce: u64 },
    /// The answer to `Recover { nonce }`: the answerer's acceptor (its
    /// promise and what it accepted), or `None` if it is recovering itself
    /// (it knows nothing, and promises nothing).
    RecoverReply {
        nonce: u64,
        acceptor: Option<crate::durable::ReplicaStorage>,
    },

    // --- Pre-vote between replicas (see `replica`; last, so that the
    // encodings of the variants above stay what they were) ---
    /// A replica whose timer fired asks: would you promise `term` (the
    /// next after the one it promised) if I campaigned? Binds nobody
    /// (pre-vote).
    PreVote { term: Term },
    /// The answer to a pre-vote, when it is yes (no answer is a no).
    PreVoteGrant { term: Term },

    // --- A shop's operations (see docs/shop.md; last, so that the
    // encodings of the variants above stay what they were) ---
    /// Client → coordinator: the operation with id `req`, as `Purchase`
    /// is for a purchase (same ids, tickets and answers). A client sends a
    /// purchase as `Purchase` (its old bytes); the coordinator takes either.
    Request {
        req: RequestId,
        op: Operation,
        ticket: Option<Ticket>,
    },
    /// Coordinator → participant: prepare a credit of `op` for `txn` (apply
    /// it only at commit), then vote. `parties` are every participant of
    /// the transaction (what a lost log's successor judges it among). The
    /// floor as in `Prepare`.
    PrepareCredit {
        txn: TxnId,
        req: RequestId,
        op: Op,
        floor: Floor,
        parties: Vec<stateright::actor::Id>,
    },
    /// Coordinator → order service: prepare `change` with a price, then
    /// vote (see docs/shop.md, "Prices"). A hold is a purchase's: `price`
    /// is the price per unit the buyer saw, and the order service votes no
    /// (`PriceChanged`) unless it is the sku's price. A credit is a priced
    /// restock's: `price` becomes the sku's price at commit. `parties` and
    /// the floor as in `PrepareCredit`. (Appended: an old participant
    /// drops it as undecodable, so the attempt aborts by vote timeout.)
    PreparePriced {
        txn: TxnId,
        req: RequestId,
        change: Change,
        price: Amount,
        floor: Floor,
        parties: Vec<stateright::actor::Id>,
    },

    // --- One durable write (see docs/one-write.md; last, so that the
    // encodings of the variants above stay what they were) ---
    /// Coordinator → participant, when `txn`'s votes are late and the
    /// coordinator runs the one-write protocol ([`crate::Coordinator::one_write`]):
    /// refuse `txn` for good if you have not voted, and tell me your vote
    /// either way. A participant that never prepared it records it aborted
    /// (durably, before answering `No(Fenced)`, so that a late prepare is
    /// refused); one that holds it answers `Yes` (a saved yes stays a yes:
    /// the fence lost the race).
    Fence { txn: TxnId },
}

/// Every timer of the protocol. In the model any set timer may fire at any
/// time; only a runtime gives them durations (see [`crate::timeouts`]).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Timer {
    /// Client: send the current request again.
    Retry,
    /// Coordinator: stop waiting for `txn`'s votes and abort it.
    Votes(TxnId),
    /// Coordinator: send `txn`'s commit again to participants that have not acked.
    Resend(TxnId),
    /// Participant: ask the coordinator about prepared `txn`.
    Query(TxnId),
    /// Coordinator: ask the participants that have not answered what epoch
    /// they have seen.
    Learn,
    /// Replica: a follower that heard nothing from its leader for a whole
    /// period asks for pre-votes; a pre-candidate asks again; a candidate
    /// re-sends its campaign; a leader re-sends
    /// its latest state (its heartbeat).
    Replica,
    /// Participant (one write): save now, so that the commits applied in
    /// memory since the last save become durable and their `Ack`s may
    /// leave (when no prepare's save has carried them first).
    Flush,
}

impl Msg {
    /// Whether a replica may let this message leave before the saves it
    /// made up to sending it are durable (persist before send, relaxed for
    /// one message): a leader's `Accept` to another replica (only a leader
    /// sends `Accept`, and only to its peers). A runtime sends a leader's
    /// `Accept`s ahead of the fsync of the batch that made the save they
    /// carry, so that the leader's fsync and the backups' overlap. Safe
    /// because an `Accept` is the proposer's request, not a report of the
    /// leader's own acceptance: nothing the leader releases because of a
    /// majority leaves before its own save is durable (those releases are
    /// ordinary sends). Every other message needs its sender's saves
    /// durable: an `Accepted`, a `Promise` or a `Nack` reports what its
    /// sender promised or accepted, a `Campaign` names a term the sender
    /// promised itself, and every message to a participant or a client may
    /// reveal a save. The node's core (`node/src/runtime/core/mod.rs`, "The one
    /// exception") and the trace replay (`twopc-checks`' `replay`) both ask
    /// this.
    pub fn may_leave_before_sync(&self) -> bool {
        matches!(self, Msg::Accept { .. })
    }

    /// Whether this is a message the replicas of a replicated coordinator
    /// exchange among themselves (a runtime carries it on its links between
    /// replicas; every other message goes to or from participants and
    /// clients).
    pub fn between_replicas(&self) -> bool {
        match self {
            Msg::PreVote { .. }
            | Msg::PreVoteGrant { .. }
            | Msg::Campaign { .. }
            | Msg::Promise { .. }
            | Msg::Accept { .. }
            | Msg::Accepted { .. }
            | Msg::Nack { .. }
            | Msg::Recover { .. }
            | Msg::RecoverReply { .. } => true,
            Msg::Purchase { .. }
            | Msg::Request { .. }
            | Msg::PrepareCredit { .. }
            | Msg::PreparePriced { .. }
            | Msg::Lookup { .. }
            | Msg::Outcome(_)
            | Msg::Status { .. }
            | Msg::Prepare { .. }
            | Msg::Vote { .. }
            | Msg::Commit { .. }
            | Msg::Abort { .. }
            | Msg::Ack { .. }
            | Msg::QueryDecision { .. }
            | Msg::AskEpoch { .. }
            | Msg::Epoch { .. }
            | Msg::Fence { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stateright::actor::Id;

    /// Only a leader's `Accept` may leave before its sender's saves are
    /// durable: every other message between replicas reports what its
    /// sender promised or accepted, or asks for it.
    #[test]
    fn only_an_accept_may_leave_before_the_sync() {
        let term = Term {
            n: 1,
            leader: Id::from(0),
        };
        let accept = Msg::Accept {
            term,
            version: 1,
            storage: Default::default(),
        };
        assert!(accept.may_leave_before_sync());
        let others = [
            Msg::Accepted { term, version: 1 },
            Msg::Promise {
                term,
                accepted: None,
            },
            Msg::Nack { promised: term },
            Msg::Campaign { term },
            Msg::PreVote { term },
            Msg::PreVoteGrant { term },
            Msg::Recover { nonce: 1 },
            Msg::RecoverReply {
                nonce: 1,
                acceptor: None,
            },
            Msg::AskEpoch { epoch: 1 },
        ];
        for m in others {
            assert!(!m.may_leave_before_sync(), "{m:?}");
        }
    }
}
