//! What `twopc status` shows: a node's view of its own state and counters,
//! built by the runtime from the actor's state (never a protocol message).
//!
//! One job per file:
//!
//! - `counters.rs`: [`Counters`], what a node counted since it started.
//!   Uses `reject_reason`.
//! - `reject_reason.rs`: [`RejectReason`], the key of the dropped-datagram
//!   counters. Uses nothing of the crate.
//! - `view.rs`: [`NodeView`], a node's view of itself, built from the
//!   actor's state and rendered for `twopc status`. Uses the files here and
//!   `crate::runtime::in_doubt` (transactions in doubt).
//! - `replica.rs`: [`ReplicaView`], where a replica stands. Uses `peers`
//!   (its group).
//! - `peers.rs`: what it shows about the other nodes, and the alarms.
//! - `key.rs`: [`KeyView`], one account or sku at a participant (`twopc
//!   account`, `twopc sku`). Uses `view` (a hold).
//!
//! Used by the wire (a status reply carries a [`NodeView`]), so nothing here
//! uses `crate::runtime::wire`.

mod counters;
mod key;
mod peers;
mod reject_reason;
mod replica;
mod view;

pub use counters::{op_name, Counters, DecidedAs, UnknownDecision, RECENT_ALARMS};
pub use key::{KeyView, PriceChangeView, LAST_LISTED, LAST_SCANNED};
pub use peers::{
    file_disagreements, peer_alarms, remember, who_leads, GroupView, PeerView, UNANSWERED_ALARM,
};
pub use reject_reason::RejectReason;
pub use replica::{ReplicaView, Standing};
pub use view::{ActorKind, HoldView, NodeView};

/// At most this many balances or skus are listed in one reply (it must fit
/// in a datagram); `levels_total` says how many there are.
pub const MAX_LISTED: usize = 200;

#[cfg(test)]
mod tests;
