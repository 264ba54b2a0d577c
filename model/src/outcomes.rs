//! What the coordinator remembers about requests: the outcomes it told
//! (the last `retention` of them, numbered), the tickets that guard against
//! stale copies, and what it knows about an id.

use crate::types::*;
use serde::{Deserialize, Serialize};

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
        self.record_forgetting(req, purchase, txn, verdict, retention)
            .0
    }

    /// [`Self::record`], also returning the ids it forgot.
    pub fn record_forgetting(
        &mut self,
        req: RequestId,
        purchase: Purchase,
        txn: Option<TxnId>,
        verdict: Verdict,
        retention: usize,
    ) -> (Outcome, Vec<RequestId>) {
        let mut forgot = Vec::new();
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
            forgot.push(oldest);
        }
        (outcome, forgot)
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
    InProgress(Option<&'a Operation>),
    /// Never seen, or forgotten.
    Unknown,
}
