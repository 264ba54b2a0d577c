//! [`MsgKind`]: the kinds of protocol messages, as a runtime's logs,
//! counters and fault flags name them, and [`msg_txn`], the transaction a
//! message is about: facts about a message, kept beside the message.

use crate::msg::{Msg, TxnId};
use serde::{Deserialize, Serialize};

/// The kind of a protocol message: what logs name and `--fault-drop-in/-out`
/// select. Defined here, once, next to the messages themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MsgKind {
    /// [`Msg::Purchase`].
    Purchase,
    /// [`Msg::Outcome`].
    Outcome,
    /// [`Msg::Lookup`].
    Lookup,
    /// [`Msg::Status`].
    Status,
    /// [`Msg::Prepare`].
    Prepare,
    /// [`Msg::Vote`].
    Vote,
    /// [`Msg::Commit`].
    Commit,
    /// [`Msg::Abort`].
    Abort,
    /// [`Msg::Ack`].
    Ack,
    /// [`Msg::QueryDecision`].
    Query,
    /// [`Msg::AskEpoch`].
    AskEpoch,
    /// [`Msg::Epoch`].
    Epoch,
    /// [`Msg::PreVote`] (between replicas).
    PreVote,
    /// [`Msg::PreVoteGrant`] (between replicas).
    PreVoteGrant,
    /// [`Msg::Campaign`] (between replicas).
    Campaign,
    /// [`Msg::Promise`] (between replicas).
    Promise,
    /// [`Msg::Accept`] (between replicas).
    Accept,
    /// [`Msg::Accepted`] (between replicas).
    Accepted,
    /// [`Msg::Nack`] (between replicas).
    Nack,
    /// [`Msg::Recover`] (between replicas).
    Recover,
    /// [`Msg::RecoverReply`] (between replicas).
    RecoverReply,
    /// [`Msg::Request`] (a top-up or a restock).
    Request,
    /// [`Msg::PrepareCredit`].
    PrepareCredit,
    /// [`Msg::PreparePriced`].
    PreparePriced,
    /// [`Msg::Fence`].
    Fence,
}

impl MsgKind {
    /// Every kind, in protocol order.
    pub const ALL: [MsgKind; 25] = [
        MsgKind::Purchase,
        MsgKind::Outcome,
        MsgKind::Lookup,
        MsgKind::Status,
        MsgKind::Prepare,
        MsgKind::Vote,
        MsgKind::Commit,
        MsgKind::Abort,
        MsgKind::Ack,
        MsgKind::Query,
        MsgKind::AskEpoch,
        MsgKind::Epoch,
        MsgKind::PreVote,
        MsgKind::PreVoteGrant,
        MsgKind::Campaign,
        MsgKind::Promise,
        MsgKind::Accept,
        MsgKind::Accepted,
        MsgKind::Nack,
        MsgKind::Recover,
        MsgKind::RecoverReply,
        MsgKind::Request,
        MsgKind::PrepareCredit,
        MsgKind::PreparePriced,
        MsgKind::Fence,
    ];

    /// The kind of `msg`.
    pub fn of(msg: &Msg) -> MsgKind {
        match msg {
            Msg::Purchase { .. } => MsgKind::Purchase,
            Msg::Outcome(_) => MsgKind::Outcome,
            Msg::Lookup { .. } => MsgKind::Lookup,
            Msg::Status { .. } => MsgKind::Status,
            Msg::Prepare { .. } => MsgKind::Prepare,
            Msg::Vote { .. } => MsgKind::Vote,
            Msg::Commit { .. } => MsgKind::Commit,
            Msg::Abort { .. } => MsgKind::Abort,
            Msg::Ack { .. } => MsgKind::Ack,
            Msg::QueryDecision { .. } => MsgKind::Query,
            Msg::AskEpoch { .. } => MsgKind::AskEpoch,
            Msg::Epoch { .. } => MsgKind::Epoch,
            Msg::PreVote { .. } => MsgKind::PreVote,
            Msg::PreVoteGrant { .. } => MsgKind::PreVoteGrant,
            Msg::Campaign { .. } => MsgKind::Campaign,
            Msg::Promise { .. } => MsgKind::Promise,
            Msg::Accept { .. } => MsgKind::Accept,
            Msg::Accepted { .. } => MsgKind::Accepted,
            Msg::Nack { .. } => MsgKind::Nack,
            Msg::Recover { .. } => MsgKind::Recover,
            Msg::RecoverReply { .. } => MsgKind::RecoverReply,
            Msg::Request { .. } => MsgKind::Request,
            Msg::PrepareCredit { .. } => MsgKind::PrepareCredit,
            Msg::PreparePriced { .. } => MsgKind::PreparePriced,
            Msg::Fence { .. } => MsgKind::Fence,
        }
    }

    /// Its name in logs and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            MsgKind::Purchase => "purchase",
            MsgKind::Outcome => "outcome",
            MsgKind::Lookup => "lookup",
            MsgKind::Status => "status",
            MsgKind::Prepare => "prepare",
            MsgKind::Vote => "vote",
            MsgKind::Commit => "commit",
            MsgKind::Abort => "abort",
            MsgKind::Ack => "ack",
            MsgKind::Query => "query",
            MsgKind::AskEpoch => "ask_epoch",
            MsgKind::Epoch => "epoch",
            MsgKind::PreVote => "pre_vote",
            MsgKind::PreVoteGrant => "pre_vote_grant",
            MsgKind::Campaign => "campaign",
            MsgKind::Promise => "promise",
            MsgKind::Accept => "accept",
            MsgKind::Accepted => "accepted",
            MsgKind::Nack => "nack",
            MsgKind::Recover => "recover",
            MsgKind::RecoverReply => "recover_reply",
            MsgKind::Request => "request",
            MsgKind::PrepareCredit => "prepare_credit",
            MsgKind::PreparePriced => "prepare_priced",
            MsgKind::Fence => "fence",
        }
    }
}

impl std::fmt::Display for MsgKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for MsgKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        MsgKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = MsgKind::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown message kind {s:?} (kinds: {})", all.join(","))
            })
    }
}

/// The transaction `msg` is about, if any (for logs).
pub fn msg_txn(msg: &Msg) -> Option<TxnId> {
    match msg {
        Msg::Purchase { .. }
        | Msg::Request { .. }
        | Msg::Lookup { .. }
        | Msg::Status { .. }
        | Msg::AskEpoch { .. }
        | Msg::Epoch { .. }
        | Msg::PreVote { .. }
        | Msg::PreVoteGrant { .. }
        | Msg::Campaign { .. }
        | Msg::Promise { .. }
        | Msg::Accept { .. }
        | Msg::Accepted { .. }
        | Msg::Nack { .. }
        | Msg::Recover { .. }
        | Msg::RecoverReply { .. } => None,
        Msg::Outcome(o) => o.txn,
        Msg::Prepare { txn, .. }
        | Msg::PrepareCredit { txn, .. }
        | Msg::PreparePriced { txn, .. }
        | Msg::Vote { txn, .. }
        | Msg::Commit { txn }
        | Msg::Abort { txn }
        | Msg::Ack { txn }
        | Msg::QueryDecision { txn }
        | Msg::Fence { txn } => Some(*txn),
    }
}
