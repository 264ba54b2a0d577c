//! What leaves a core: an [`Outgoing`] message, one variant per way out.

use bytes::Bytes;
use std::net::SocketAddr;
use twopc_model::Msg;

/// A message on its way out of a core, encoded unless it goes to a peer
/// replica's link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outgoing {
    /// A protocol message, encoded as a datagram: injected network faults
    /// (`crate::runtime::faults`) apply to it.
    Datagram {
        /// Destination.
        to: SocketAddr,
        /// The encoded datagram.
        bytes: Bytes,
    },
    /// An answer to an operator's ask (`twopc status`, `twopc decide`),
    /// encoded as a datagram: never subject to injected faults.
    Reply {
        /// Destination.
        to: SocketAddr,
        /// The encoded datagram.
        bytes: Bytes,
    },
    /// A message to a peer replica: it leaves over that replica's TCP
    /// link, which encodes it (as a delta; `replication.rs`). Faults act
    /// on it as on a datagram: on the whole message, before any encoding.
    Peer {
        /// The peer's UDP address (its `Id`).
        to: SocketAddr,
        /// The message itself.
        msg: Box<Msg>,
        /// The durable writes it waited for along its causal chain
        /// (`waited.rs`; a datagram's count is in its envelope).
        waited: u8,
    },
}

impl Outgoing {
    /// Where it goes.
    pub fn to(&self) -> SocketAddr {
        match self {
            Outgoing::Datagram { to, .. }
            | Outgoing::Reply { to, .. }
            | Outgoing::Peer { to, .. } => *to,
        }
    }

    /// The encoded datagram (`None` for a peer replica's message).
    pub fn datagram(&self) -> Option<&Bytes> {
        match self {
            Outgoing::Datagram { bytes, .. } | Outgoing::Reply { bytes, .. } => Some(bytes),
            Outgoing::Peer { .. } => None,
        }
    }

    /// The message to a peer replica (`None` for a datagram).
    pub fn peer_msg(&self) -> Option<&Msg> {
        match self {
            Outgoing::Peer { msg, .. } => Some(msg),
            Outgoing::Datagram { .. } | Outgoing::Reply { .. } => None,
        }
    }

    /// Whether injected network faults apply: to protocol messages, not to
    /// operators' replies.
    pub fn faults_apply(&self) -> bool {
        !matches!(self, Outgoing::Reply { .. })
    }
}
