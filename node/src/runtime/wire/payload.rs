//! [`Payload`]: what a datagram carries (a protocol message, or an admin
//! request or reply), and how long the names in it may be. Uses
//! `crate::runtime::admin` (a node's view, a reject reason) and `crate::runtime::in_doubt`
//! (a heuristic decision) for the admin messages' contents.

use crate::runtime::admin::{KeyView, NodeView, RejectReason};
use crate::runtime::in_doubt::{DecideAnswer, Decision};
use crate::runtime::storage::Page;
use serde::{Deserialize, Serialize};
use twopc_model::{Msg, TxnId};

/// Longest user name or sku, in bytes of UTF-8. A status reply lists up to
/// [`crate::runtime::admin::MAX_LISTED`] balances and as many in-doubt holds in one
/// datagram, so a name must be short enough for all of them to fit (a test
/// below encodes the largest such reply); a purchase carries two names.
pub const MAX_NAME: usize = 64;

/// Checks a user name or sku against [`MAX_NAME`]; `what` names it in the
/// error (`--user`, `key "..." in [accounts]`).
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.len() <= MAX_NAME {
        return Ok(());
    }
    let start: String = name.chars().take(16).collect();
    Err(format!(
        "{what} ({start:?}...) is {} bytes; user names and skus are at most {MAX_NAME} bytes \
         (UTF-8), so that every message and status reply naming them fits in one datagram",
        name.len()
    ))
}

/// What a datagram carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Payload {
    /// A protocol message between actors.
    Protocol(Msg),
    /// Admin: "tell me your view" (answered by the runtime, not the actor).
    StatusRequest {
        /// Echoed in the reply, to match it to its request.
        nonce: u64,
    },
    /// Admin: a node's view.
    StatusReply {
        /// The request's nonce.
        nonce: u64,
        /// The view.
        view: Box<NodeView>,
    },
    /// Runtime to runtime: "a datagram from you failed authentication here
    /// (`reason`)". Sent, rate-limited, to a node of the cluster file whose
    /// datagram a node could not authenticate, MAC'd with the sender's own
    /// key: if the keys differ, the receiver counts it as a datagram from
    /// that node that fails authentication, so a coordinator learns that a
    /// participant without the cluster key drops its prepares (it would
    /// otherwise only see votes time out). Changes no protocol state.
    Unauthenticated {
        /// Why the datagram was dropped.
        reason: RejectReason,
    },
    /// Admin: "decide this transaction in doubt" (`twopc decide`), a
    /// heuristic decision taken by the runtime's core (`core/doubts.rs`).
    DecideRequest {
        /// Echoed in the reply; a re-sent request (same nonce) is answered
        /// again and decides nothing twice.
        nonce: u64,
        /// The transaction in doubt.
        txn: TxnId,
        /// Commit or abort.
        decision: Decision,
    },
    /// Admin: the answer to a `DecideRequest`.
    DecideReply {
        /// The request's nonce.
        nonce: u64,
        /// What became of it.
        answer: DecideAnswer,
    },
    /// Admin: "tell me about this account or sku" (`twopc account`, `twopc
    /// sku`), answered by the runtime, not the actor. A key longer than
    /// [`MAX_NAME`] is dropped as undecodable (counted).
    KeyRequest {
        /// Echoed in the reply.
        nonce: u64,
        /// The account (at the wallet) or sku (at the order service).
        key: String,
    },
    /// Admin: the answer to a `KeyRequest`.
    KeyReply {
        /// The request's nonce.
        nonce: u64,
        /// The key's view; `None`: this node is not a participant.
        view: Option<KeyView>,
    },
    /// Admin: "your journal from this position" (`twopc journal`, `GET
    /// /journal/{name}`), answered by the runtime from its store, never by
    /// the actor.
    JournalRequest {
        /// Echoed in the reply.
        nonce: u64,
        /// The position of the first entry wanted (positions count from 1).
        from: u64,
        /// At most this many entries (the node answers at most
        /// [`JOURNAL_PAGE`]).
        limit: u32,
    },
    /// Admin: the answer to a `JournalRequest`.
    JournalReply {
        /// The request's nonce.
        nonce: u64,
        /// The entries from the position asked (or from the first retained
        /// one, marked `truncated`); `None`: this node keeps no journal (it
        /// is not a participant).
        page: Option<Page>,
    },
}

/// Most journal entries in one reply: the largest page (every name and id
/// its longest, every number its largest) fits in one datagram in either
/// format (a test in `tests.rs` encodes it).
pub const JOURNAL_PAGE: u32 = 100;
