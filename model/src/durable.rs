//! The durable states that travel in messages: the coordinator's log, and a
//! version of it as a replica accepted it. Below the actors that keep them,
//! so that `msg` can carry them without depending on the actors.

use crate::outcomes::Outcomes;
use crate::types::*;
use serde::{Deserialize, Serialize};

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
    #[serde(with = "crate::pairs")]
    pub commits: Map<TxnId, RequestId>,
    /// Transactions of a lost log that both participants hold with no
    /// decision anyone knows: never presumed, they wait for an operator
    /// (see *A lost log is never presumed* in the crate docs).
    #[serde(with = "crate::pairs")]
    pub doubts: Map<TxnId, RequestId>,
    /// What each remembered request that is not a purchase asked (its
    /// `Told` holds a placeholder purchase: a `Told` is a purchase in the
    /// bytes written before operations existed), kept as long as its
    /// outcome or its pending commit. Last but one, so that a record
    /// written before it reads as having none (see docs/shop.md).
    #[serde(default)]
    pub flows: Map<RequestId, Operation>,
    /// The participants of pending commits and doubts that do not touch
    /// every participant (a top-up, a restock).
    #[serde(default, with = "crate::pairs")]
    pub partial: Map<TxnId, Vec<stateright::actor::Id>>,
    /// How much of each remembered committed purchase has been refunded
    /// (units), raised in the same state change as a refund's commit
    /// decision and forgotten with the purchase's outcome (see
    /// docs/shop.md, "Refund"). Keyed by strings, so JSON takes it as a
    /// map. Last.
    #[serde(default)]
    pub refunded: Map<RequestId, Amount>,
}

/// A version of the coordinator's durable state that an acceptor accepted.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Accepted {
    /// The term of the leader that wrote it.
    pub term: Term,
    /// Its number within that term.
    pub version: u64,
    /// The coordinator's durable state.
    pub storage: CoordStorage,
}

impl Accepted {
    pub(crate) fn rank(&self) -> (Term, u64) {
        (self.term, self.version)
    }
}

/// A replica's durable state: its acceptor's promise and what it accepted.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReplicaStorage {
    /// The highest term it promised (it accepts nothing from a lower one).
    pub promised: Term,
    /// The latest state it accepted.
    pub accepted: Option<Accepted>,
}
