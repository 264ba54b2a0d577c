//! [`Reject`]: why a datagram (or a frame) was dropped, each variant one
//! counter. Uses `crate::runtime::admin::RejectReason` (the counter's key) and
//! `kind` (a message kind in a reason); nothing else of the crate.

use crate::runtime::admin::RejectReason;
use twopc_model::MsgKind;

/// Why a datagram was dropped. Each variant is one counter.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// Larger than [`MAX_DATAGRAM`](super::MAX_DATAGRAM).
    #[error("oversized datagram ({0} bytes)")]
    Oversized(usize),
    /// Too short, or not our magic bytes.
    #[error("not a twopc datagram")]
    BadMagic,
    /// An envelope version this build does not speak.
    #[error("unsupported envelope version {0}")]
    BadVersion(u8),
    /// An unknown body format.
    #[error("unknown body format {0}")]
    BadFormat(u8),
    /// This node has a cluster key and the datagram has no MAC.
    #[error("missing MAC (this node requires the cluster key)")]
    MissingMac,
    /// The MAC does not match: wrong key, or tampered with.
    #[error("bad MAC (wrong cluster key or tampered datagram)")]
    BadMac,
    /// The datagram has a MAC but this node has no key to check it.
    #[error("datagram is authenticated but this node has no cluster key")]
    UnexpectedMac,
    /// The body does not deserialize.
    #[error("undecodable body: {0}")]
    Undecodable(String),
    /// A participant whose history is behind what its coordinator heard
    /// from it (the history module) hands nothing to its actor.
    #[error(
        "this participant's history is at position {durable}, behind the {heard} its \
         coordinator heard from it (restored backup or lost log?): not handed to the actor"
    )]
    RolledBack {
        /// What the sender heard from this node.
        heard: u64,
        /// This node's durable position.
        durable: u64,
    },
    /// An authenticated protocol message that only a node of the cluster
    /// sends, from an address that is not in this node's cluster file (a
    /// node that moved, or a cluster file that differs between nodes).
    #[error("{0} from an address that is not in the cluster file")]
    UnknownSender(MsgKind),
    /// A prepare below this participant's floor: an attempt of an epoch
    /// its coordinator has settled since: a late duplicate. (A coordinator
    /// whose log is behind, restored or replaced, learns the participants'
    /// epoch at its start and never prepares below their floors; a stream
    /// of these means one that skipped that: an older build, or a bug.)
    #[error(
        "prepare of txn {txn} below this participant's floor {floor}: a late duplicate of a \
         settled attempt (a stream of them: a coordinator that did not learn the participants' \
         epoch at its start)"
    )]
    BelowFloor {
        /// The prepare's attempt.
        txn: twopc_model::TxnId,
        /// The participant's floor.
        floor: twopc_model::TxnId,
    },
}

impl Reject {
    /// The counter this rejection counts in.
    pub fn reason(&self) -> RejectReason {
        match self {
            Reject::Oversized(_) => RejectReason::Oversized,
            Reject::BadMagic => RejectReason::BadMagic,
            Reject::BadVersion(_) => RejectReason::BadVersion,
            Reject::BadFormat(_) => RejectReason::BadFormat,
            Reject::MissingMac => RejectReason::MissingMac,
            Reject::BadMac => RejectReason::BadMac,
            Reject::UnexpectedMac => RejectReason::UnexpectedMac,
            Reject::BelowFloor { .. } => RejectReason::BelowFloor,
            Reject::Undecodable(_) => RejectReason::Undecodable,
            Reject::RolledBack { .. } => RejectReason::RolledBack,
            Reject::UnknownSender(_) => RejectReason::UnknownSender,
        }
    }
}
