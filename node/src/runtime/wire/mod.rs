//! The wire format: a versioned, optionally authenticated envelope around one
//! serialized [`Payload`] per UDP datagram. Pure: bytes in, values out.
//!
//! ```text
//! +------+---------+--------+-------+------------------+--------------+-------------------+
//! | "2P" | version | format | flags | HMAC-SHA256 (32) | history (8)  | body (tokio-serde)|
//! | 2 B  | 1 B     | 1 B    | 1 B   | if flags & 1     | if flags & 2 | Bincode or Json   |
//! +------+---------+--------+-------+------------------+--------------+-------------------+
//! ```
//!
//! The MAC covers the header, the history field and the body, keyed by the
//! cluster's shared key, so a stranger on the network cannot forge a vote, a
//! commit or an abort. It does not stop replays; the protocol is idempotent
//! to duplicates by design. A cluster file that names a `cluster_id` keys
//! the MAC with a key derived from the cluster key and that id
//! ([`ClusterKey::for_cluster`]), so two clusters sharing a key still never
//! count each other's datagrams; without one, the cluster's id is the key's
//! fingerprint ([`ClusterKey::fingerprint`]) and the key alone separates
//! clusters.
//!
//! The flags' high four bits count the durable writes the message waited
//! for along its causal chain (0–15, `core/waited.rs`); a node of an older
//! build ignores them (it reads no flag it does not know) and sends 0.
//!
//! The history field (u64 LE, the history module): from a participant, its
//! durable history position; from a coordinator to a participant, the
//! highest position it has heard from that participant.
//! The body is serialized with tokio-serde's format types, one datagram at a
//! time (tokio-serde's `Framed` needs a byte stream, which UDP is not).
//! Bincode is the default for speed; Json is accepted from any peer and can be
//! sent with `--wire json` to read traffic in tcpdump.
//!
//! Decoding never panics: every malformed input is a [`Reject`] naming why.
//!
//! One job per file:
//!
//! - `envelope.rs`: the envelope's layout, its limits ([`VERSION`],
//!   [`MAX_DATAGRAM`], [`MAX_FRAME`]), sealing it (header, MAC, history)
//!   and opening it. Uses `key`, `reject`, `codec`'s [`Format`].
//! - `codec.rs`: [`Codec`], a node's encoder and decoder: a [`Payload`]
//!   (or a replica's frame) serialized into an envelope and back. Uses
//!   `envelope`, `payload`, `key`, `reject`.
//! - `payload.rs`: [`Payload`], what a datagram carries, and the longest
//!   names it may carry ([`check_name`]). Uses `crate::runtime::admin` and
//!   `crate::runtime::in_doubt` for the admin messages' contents.
//! - `key.rs`: [`ClusterKey`], the shared secret and its format.
//! - `reject.rs`: [`Reject`], why a datagram was dropped. Uses
//!   `crate::runtime::admin::RejectReason` (its counter).
//! - [`MsgKind`], the kinds of protocol messages, and [`msg_txn`] are the
//!   model's (`twopc_model::kind`), re-exported here for the node.
//!
//! Of the rest of the crate only `admin` and `in_doubt` are used (for what
//! admin messages carry); the rest of the crate uses the names re-exported
//! below.

mod codec;
mod envelope;
mod key;
mod payload;
mod reject;

pub use codec::{Codec, Format};
pub use envelope::{waited_of, MAGIC, MAX_DATAGRAM, MAX_FRAME, VERSION, WAITED_MAX};
pub use key::{ClusterKey, KEY_HEX_LEN};
pub use payload::{check_name, Payload, JOURNAL_PAGE, MAX_NAME};
pub use reject::Reject;
pub use twopc_model::{msg_txn, MsgKind};

#[cfg(test)]
mod tests;
