//! [`RejectReason`]: why a datagram was dropped, as the key of the
//! `rejected` counters. Uses nothing of the crate.

use serde::{Deserialize, Serialize};

/// Why a datagram was dropped, without the details (the wire's `Reject`
/// names this with `Reject::reason`): the key of the `rejected` counters that
/// `twopc status` reports (serialized as `bad_mac`, `undecodable`, ...).
/// Declared in the alphabetical order of those names, so that counters keyed
/// by it list in the order they did when they were keyed by strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// An unknown body format.
    BadFormat,
    /// A MAC that does not match (wrong key, or tampered with).
    BadMac,
    /// Too short, or not twopc's magic bytes.
    BadMagic,
    /// An envelope version this build does not speak.
    BadVersion,
    /// No MAC, at a node that has the cluster key.
    MissingMac,
    /// Larger than the datagram limit.
    Oversized,
    /// A participant's history is behind what its coordinator heard from
    /// it (a restored backup, a lost log): nothing reaches its actor.
    RolledBack,
    /// A body that does not deserialize (or an unsolicited reply, or an IPv6 source).
    Undecodable,
    /// A MAC, at a node without a key to check it.
    UnexpectedMac,
    /// A message only a node of the cluster sends, from an address not in
    /// the cluster file (a node that moved?).
    UnknownSender,
    /// A prepare below a participant's floor (a late duplicate of a
    /// settled attempt).
    BelowFloor,
}

impl RejectReason {
    /// The counter's name, as logs and `twopc status --json` show it.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Oversized => "oversized",
            RejectReason::BadMagic => "bad_magic",
            RejectReason::BadVersion => "bad_version",
            RejectReason::BadFormat => "bad_format",
            RejectReason::MissingMac => "missing_mac",
            RejectReason::BadMac => "bad_mac",
            RejectReason::UnexpectedMac => "unexpected_mac",
            RejectReason::Undecodable => "undecodable",
            RejectReason::RolledBack => "rolled_back",
            RejectReason::UnknownSender => "unknown_sender",
            RejectReason::BelowFloor => "below_floor",
        }
    }

    /// What to ask about a node whose datagrams fail authentication for
    /// this reason.
    pub fn auth_hint(self) -> &'static str {
        match self {
            RejectReason::UnexpectedMac => {
                "it has a cluster key and this node has none: give every node the same key"
            }
            _ => "does it have the cluster key?",
        }
    }

    /// Whether the datagram failed authentication (a wrong or missing
    /// cluster key, or tampering).
    pub fn is_auth(self) -> bool {
        matches!(
            self,
            RejectReason::BadMac | RejectReason::MissingMac | RejectReason::UnexpectedMac
        )
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
