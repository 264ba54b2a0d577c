//! The vocabulary of the protocol: identifiers, operations, outcomes, floors
//! and terms (the messages and timers that carry them are in `msg`).
//!
//! Everything here derives serde so the node can put it on the wire and on disk
//! unchanged, and `Ord`/`Hash` so the model checker can store it in states.

use serde::{Deserialize, Serialize};

/// Identifies a client across requests. In the model it is the client's actor
/// index; a real client picks a random one per process.
pub type ClientId = u64;

/// A user's account name at the wallet, or a product's sku at the order service.
pub type Key = String;

/// The maps of the protocol's state: persistent (structurally shared), so a
/// copy of a state is O(1) and a change copies only the path to it. A
/// runtime that keeps the last saved state can diff the next one in
/// O(change), skipping the subtrees both share.
pub type Map<K, V> = imbl::OrdMap<K, V>;

/// An amount of money (wallet) or a number of units (order service).
pub type Amount = u64;

/// A request's id, chosen by the caller (an idempotency key: a shop's order
/// number, or a random string when the caller has none). Every message about
/// a purchase carries it: a re-send with the same id, from the same process
/// or from a fresh one that lost its memory, is the same purchase.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestId(pub String);

impl RequestId {
    /// The longest id the coordinator accepts, in bytes. Longer ids are
    /// refused ([`Rejection::InvalidId`]) and never remembered.
    pub const MAX_LEN: usize = 64;

    /// An id from its text.
    pub fn new(id: impl Into<String>) -> Self {
        RequestId(id.into())
    }

    /// Whether the coordinator accepts it: 1 to [`Self::MAX_LEN`] bytes.
    pub fn is_valid(&self) -> bool {
        !self.0.is_empty() && self.0.len() <= Self::MAX_LEN
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The coordinator's count of outcomes recorded so far, handed to a caller
/// that asks about an id the coordinator does not know. A purchase that
/// carries a ticket may start a new attempt only if the coordinator has
/// forgotten no outcome recorded at or after the ticket (see
/// [`Msg::Purchase`]): a stale copy of a purchase whose outcome has expired
/// can never start it again.
pub type Ticket = u64;

/// One attempt at committing a request. Fresh for every attempt: the epoch is
/// bumped and persisted at every coordinator start, the counter is volatile.
/// So a message about an old attempt can never be mistaken for a newer one.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct TxnId {
    /// The coordinator incarnation that started the attempt.
    pub epoch: u64,
    /// The attempt's number within that incarnation.
    pub n: u64,
}

impl std::fmt::Display for TxnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.epoch, self.n)
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a participant is asked to hold: `amount` of `key` (a user's money at
/// the wallet, a sku's units at the order service).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Op {
    /// The account or sku.
    pub key: Key,
    /// How much of it.
    pub amount: Amount,
}

/// What a client asks for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Purchase {
    /// The paying user (a wallet account).
    pub user: Key,
    /// The product (an order-service sku).
    pub sku: Key,
    /// Units of the sku.
    pub qty: Amount,
    /// Price per unit; the wallet is debited `qty * price`.
    pub price: Amount,
}

/// What a client asks for: an operation of the shop. Each is one
/// transaction: a set of changes at the participants it touches (see
/// docs/shop.md). Hashed as the bare purchase when it is one, so that the
/// digests of states recorded in traces before operations existed are
/// unchanged.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Operation {
    /// Hold `qty * price` of the user's balance and `qty` of the sku's stock.
    Purchase(Purchase),
    /// Credit `amount` to the user's wallet (a new user is created by the
    /// commit of their first top-up). Touches the wallet only.
    TopUp { user: Key, amount: Amount },
    /// Credit `qty` units to the sku's stock (a new sku is created by the
    /// commit of its first restock). Touches the order service only.
    Restock { sku: Key, qty: Amount },
    /// Credit `qty` units to the sku's stock and set its price to `price`
    /// (per unit, at least 1), both at commit. `qty` may be 0: a price
    /// change alone. Touches the order service only. (A variant of its
    /// own rather than a field of `Restock`: bincode can only append.)
    PricedRestock {
        sku: Key,
        qty: Amount,
        price: Amount,
    },
    /// Give back `qty` units of the committed purchase `purchase` (its
    /// whole quantity when `None`): credit `qty * price` to its user and
    /// `qty` to its sku, atomically, never more in total than was bought.
    /// The coordinator looks the purchase up in its remembered outcomes
    /// (see docs/shop.md, "Refund"). (Appended: old encodings stay valid.)
    Refund {
        purchase: RequestId,
        qty: Option<Amount>,
    },
}

impl std::hash::Hash for Operation {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        match self {
            Operation::Purchase(p) => p.hash(h),
            Operation::TopUp { user, amount } => {
                "top-up".hash(h);
                user.hash(h);
                amount.hash(h);
            }
            Operation::Restock { sku, qty } => {
                "restock".hash(h);
                sku.hash(h);
                qty.hash(h);
            }
            Operation::PricedRestock { sku, qty, price } => {
                "priced-restock".hash(h);
                sku.hash(h);
                qty.hash(h);
                price.hash(h);
            }
            Operation::Refund { purchase, qty } => {
                "refund".hash(h);
                purchase.hash(h);
                qty.hash(h);
            }
        }
    }
}

impl From<Purchase> for Operation {
    fn from(p: Purchase) -> Self {
        Operation::Purchase(p)
    }
}

impl Operation {
    /// The purchase, if this is one.
    pub fn purchase(&self) -> Option<&Purchase> {
        match self {
            Operation::Purchase(p) => Some(p),
            Operation::TopUp { .. }
            | Operation::Restock { .. }
            | Operation::PricedRestock { .. }
            | Operation::Refund { .. } => None,
        }
    }

    /// The price it carries to the order service: the price per unit the
    /// buyer saw (a purchase), or the sku's new price (a priced restock).
    pub fn price_at_order(&self) -> Option<Amount> {
        match self {
            Operation::Purchase(p) => Some(p.price),
            Operation::PricedRestock { price, .. } => Some(*price),
            Operation::TopUp { .. } | Operation::Restock { .. } | Operation::Refund { .. } => None,
        }
    }

    /// The change it asks of the wallet (`true`) or the order service
    /// (`false`), if it touches it; `None` inside when it is invalid
    /// (a zero amount, or `qty * price` overflows).
    pub fn change_at(&self, wallet: bool) -> Option<Option<Change>> {
        let positive = |a: Amount| (a > 0).then_some(a);
        match (self, wallet) {
            (Operation::Purchase(p), true) => Some(
                p.qty
                    .checked_mul(p.price)
                    .filter(|_| p.qty > 0)
                    .map(|amount| {
                        Change::Hold(Op {
                            key: p.user.clone(),
                            amount,
                        })
                    }),
            ),
            (Operation::Purchase(p), false) => Some(positive(p.qty).map(|amount| {
                Change::Hold(Op {
                    key: p.sku.clone(),
                    amount,
                })
            })),
            (Operation::TopUp { user, amount }, true) => Some(positive(*amount).map(|amount| {
                Change::Credit(Op {
                    key: user.clone(),
                    amount,
                })
            })),
            (Operation::Restock { sku, qty }, false) => Some(positive(*qty).map(|amount| {
                Change::Credit(Op {
                    key: sku.clone(),
                    amount,
                })
            })),
            // A price of 0 is invalid; a quantity of 0 is a price change.
            (Operation::PricedRestock { sku, qty, price }, false) => {
                Some((*price > 0).then(|| {
                    Change::Credit(Op {
                        key: sku.clone(),
                        amount: *qty,
                    })
                }))
            }
            (Operation::TopUp { .. }, false)
            | (Operation::Restock { .. }, true)
            | (Operation::PricedRestock { .. }, true) => None,
            // What a refund changes depends on its purchase, which only the
            // coordinator knows (`Coordinator::changes`).
            (Operation::Refund { .. }, _) => None,
        }
    }
}

/// One participant's part of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Change {
    /// A debit: needs the level net of holds, held at prepare, applied at
    /// commit, released at abort.
    Hold(Op),
    /// A credit: applied only at commit, held nowhere; refused only when
    /// the level would overflow.
    Credit(Op),
}

impl Change {
    /// What it changes, and by how much.
    pub fn op(&self) -> &Op {
        match self {
            Change::Hold(op) | Change::Credit(op) => op,
        }
    }

    /// Whether it is a credit.
    pub fn is_credit(&self) -> bool {
        matches!(self, Change::Credit(_))
    }
}

/// Why a participant refused to prepare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Refusal {
    /// The key's level net of existing holds does not cover the amount.
    Insufficient,
    /// The participant has no such account or sku.
    UnknownKey,
    /// A credit would take the level (with the credits already prepared on
    /// it) past the largest amount. (Last: old encodings stay valid.)
    Overflow,
    /// A purchase's price per unit is not the sku's price, or a price
    /// change of the sku is prepared and undecided (refused rather than
    /// guessed). (Appended: old encodings stay valid.)
    PriceChanged,
    /// The coordinator fenced the transaction before this participant
    /// prepared it (`Msg::Fence`): it is refused for good. (Appended: old
    /// encodings stay valid.)
    Fenced,
}

/// A participant's vote on a prepare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Ballot {
    /// Prepared: the hold is durable and the participant will commit if told to.
    Yes,
    /// Refused (and already aborted locally).
    No(Refusal),
}

/// Why a purchase was aborted, as told to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AbortReason {
    /// The wallet refused: the user's balance net of holds is too small.
    InsufficientFunds,
    /// The order service refused: the sku's stock net of holds is too small.
    InsufficientStock,
    /// The wallet has no such user.
    UnknownUser,
    /// The order service has no such sku.
    UnknownSku,
    /// Not every vote arrived before the vote timer fired.
    VoteTimeout,
    /// Zero quantity, or `qty * price` overflows.
    InvalidRequest,
    /// A credit would overflow the balance or the stock.
    Overflow,
    /// The order service refused: the price the buyer saw is not the
    /// sku's price (or a price change of it is under way). (Appended.)
    PriceChanged,
    /// A refund names a purchase the coordinator does not remember (never
    /// made, or its outcome has expired past the retention).
    UnknownPurchase,
    /// A refund names a purchase that did not commit (aborted or refused).
    NotCommitted,
    /// A refund would give back more than the purchase bought, counting
    /// what earlier refunds of it gave back.
    RefundExceedsPurchase,
}

/// Why the coordinator refused a request without deciding anything about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Rejection {
    /// The id is already taken by a purchase with different contents (user,
    /// sku, quantity or price): that purchase goes on; this one is not made.
    KeyReused,
    /// The id is empty or longer than [`RequestId::MAX_LEN`].
    InvalidId,
}

/// The outcome of a request, as the caller learns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Verdict {
    /// Both participants will apply (or have applied) the purchase.
    Committed,
    /// Neither participant applies it.
    Aborted(AbortReason),
    /// This caller's purchase is not made, and says nothing of the id's own
    /// purchase (not remembered by the coordinator).
    Refused(Rejection),
    /// The coordinator does not know the id (never seen, or its outcome has
    /// expired) and did not start it: a caller that retried an id, or whose
    /// ticket is older than what the coordinator has forgotten since.
    Unknown,
}

/// What a caller has been told about one of its requests. Also what a
/// client remembers durably.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Outcome {
    /// The request.
    pub req: RequestId,
    /// The attempt that decided it (`None` when it was refused before any attempt).
    pub txn: Option<TxnId>,
    /// Committed or aborted, and why.
    pub verdict: Verdict,
}

/// What the coordinator knows to be settled, sent with every prepare so that
/// participants can forget and release without asking.
///
/// Every transaction ordered below `below` is decided and, if committed,
/// applied and acknowledged by every participant, except those listed in
/// `owed`: commits not yet acknowledged by everyone, and transactions of a
/// lost log whose outcome is in doubt (see *A lost log is never presumed*
/// in the crate docs). So a participant
/// may forget what it finished below the floor, must release a hold below it
/// that is not owed (presumed abort: nothing else below it can commit), and
/// must ignore a prepare that arrives below it. `below` never decreases:
/// within an epoch it is the oldest attempt still collecting votes (or the
/// next one), and a restart starts a higher epoch.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Floor {
    /// Everything below this is settled, but for `owed`.
    pub below: TxnId,
    /// Transactions below `below` that are not settled, in order: commits
    /// some participant has not acknowledged yet, and transactions in doubt.
    pub owed: Vec<TxnId>,
}

impl Floor {
    /// Whether `txn` is settled by this floor: below it and not owed.
    pub fn settles(&self, txn: &TxnId) -> bool {
        *txn < self.below && self.owed.binary_search(txn).is_err()
    }
}

/// What a participant knows of a transaction, told to a coordinator that
/// started without a log (see *A lost log is never presumed* in the crate
/// docs).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Fate {
    /// Prepared (voted yes) for this request, no decision heard.
    Held(RequestId),
    /// Committed here.
    Committed,
    /// Aborted here (a no vote, or an abort heard).
    Aborted,
    /// Prepared (a pending credit) for this request, no decision heard, in
    /// a transaction whose participants are these (not every participant:
    /// a lost log's transaction is judged among them only). Last, so that
    /// old encodings stay valid.
    HeldAmong(RequestId, Vec<stateright::actor::Id>),
    /// [`Fate::Held`] with the change held: what a one-write participant
    /// tells of a debit it holds, so that a restarted coordinator can
    /// record the outcome of a purchase it told and never saved (see
    /// docs/one-write.md, *Outcomes recovered at a restart*). Appended.
    HeldFor(RequestId, Op),
    /// [`Fate::Committed`] with the request and the change applied (one
    /// write, as [`Fate::HeldFor`]). Appended.
    CommittedFor(RequestId, Op),
}

/// What the coordinator says about an id that has no outcome to give.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Status {
    /// An attempt is collecting votes, or a commit is still being delivered
    /// (answers a lookup; a purchase re-sent meanwhile gets no answer until
    /// the outcome is known).
    InProgress,
    /// Never seen, or its outcome expired. To make it as a new purchase, send
    /// it again with this ticket.
    Unknown { ticket: Ticket },
}

/// A replica's leadership term: terms are totally ordered, and each belongs
/// to the one replica that campaigned for it (`leader`), so two replicas never
/// lead the same term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Term {
    /// The term's number: a campaign takes one more than the highest promised.
    pub n: u64,
    /// The replica it belongs to.
    pub leader: stateright::actor::Id,
}

impl std::fmt::Display for Term {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.n, self.leader)
    }
}

impl AbortReason {
    /// Every reason.
    pub const ALL: [AbortReason; 11] = [
        AbortReason::InsufficientFunds,
        AbortReason::InsufficientStock,
        AbortReason::UnknownUser,
        AbortReason::UnknownSku,
        AbortReason::VoteTimeout,
        AbortReason::InvalidRequest,
        AbortReason::Overflow,
        AbortReason::PriceChanged,
        AbortReason::UnknownPurchase,
        AbortReason::NotCommitted,
        AbortReason::RefundExceedsPurchase,
    ];

    /// The reason named `name` (see [`AbortReason::name`]).
    pub fn from_name(name: &str) -> Option<AbortReason> {
        AbortReason::ALL.into_iter().find(|r| r.name() == name)
    }

    /// Its snake_case name: on the command line, in JSON, in metrics.
    pub fn name(self) -> &'static str {
        match self {
            AbortReason::InsufficientFunds => "insufficient_funds",
            AbortReason::InsufficientStock => "insufficient_stock",
            AbortReason::UnknownUser => "unknown_user",
            AbortReason::UnknownSku => "unknown_sku",
            AbortReason::VoteTimeout => "vote_timeout",
            AbortReason::InvalidRequest => "invalid_request",
            AbortReason::Overflow => "overflow",
            AbortReason::PriceChanged => "price_changed",
            AbortReason::UnknownPurchase => "unknown_purchase",
            AbortReason::NotCommitted => "not_committed",
            AbortReason::RefundExceedsPurchase => "refund_exceeds_purchase",
        }
    }
}

impl Rejection {
    /// Its snake_case name: on the command line, in JSON, in metrics.
    pub fn name(self) -> &'static str {
        match self {
            Rejection::KeyReused => "key_reused",
            Rejection::InvalidId => "invalid_id",
        }
    }
}

/// How the coordinator is run: the one fact about a deployment that every
/// crate names (the cluster file, the checker's flags, the node's logs).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Protocol {
    /// Presumed-abort two-phase commit with one coordinator (it blocks while
    /// the coordinator is down).
    #[default]
    #[serde(rename = "2pc")]
    #[cfg_attr(feature = "clap", value(name = "2pc"))]
    TwoPc,
    /// The same coordinator replicated on 2F+1 replicas (Paxos ballots on its
    /// durable state): losing any F of them blocks nothing.
    #[serde(rename = "replicated")]
    Replicated,
}

impl Protocol {
    /// Its name in the cluster file and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::TwoPc => "2pc",
            Protocol::Replicated => "replicated",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
