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
//! The history field (u64 LE, `crate::history`): from a participant, its
//! durable history position; from a coordinator to a participant, the
//! highest position it has heard from that participant.
//! The body is serialized with tokio-serde's format types, one datagram at a
//! time (tokio-serde's `Framed` needs a byte stream, which UDP is not).
//! Bincode is the default for speed; Json is accepted from any peer and can be
//! sent with `--wire json` to read traffic in tcpdump.
//!
//! Decoding never panics: every malformed input is a [`Reject`] naming why.

use crate::admin::{NodeView, RejectReason};
use crate::in_doubt::{DecideAnswer, Decision};
use bytes::{Bytes, BytesMut};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::pin::Pin;
use tokio_serde::formats::{Bincode, Json};
use tokio_serde::{Deserializer, Serializer};
use twopc_model::{Msg, TxnId};

/// The envelope's magic bytes.
pub const MAGIC: [u8; 2] = *b"2P";
/// The envelope version this build speaks (5: `Epoch` answers carry the
/// participants' fates, and a coordinator's state its transactions in
/// doubt; a node of version 4 and one of 5 do not understand each other,
/// and say so: `rejected{reason="version"}`).
pub const VERSION: u8 = 5;
/// Largest datagram sent or accepted. Below UDP's 65507-byte limit, with
/// room to spare; protocol messages are a few dozen bytes.
pub const MAX_DATAGRAM: usize = 60 * 1024;
/// Longest user name or sku, in bytes of UTF-8. A status reply lists up to
/// [`crate::admin::MAX_LISTED`] balances and as many in-doubt holds in one
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

const HEADER_LEN: usize = 5;
const MAC_LEN: usize = 32;
const FLAG_MAC: u8 = 1;
const FLAG_HISTORY: u8 = 2;
const HISTORY_LEN: usize = 8;

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
}

/// The body's serialization format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Compact and fast (the default).
    Bincode,
    /// Readable, for debugging.
    Json,
}

impl Format {
    fn byte(self) -> u8 {
        match self {
            Format::Bincode => 0,
            Format::Json => 1,
        }
    }
}

/// Why a datagram was dropped. Each variant is one counter.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// Larger than [`MAX_DATAGRAM`].
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
    /// from it (`crate::history`) hands nothing to its actor.
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
    /// its coordinator has settled since. A late duplicate now and then;
    /// a stream of them means a coordinator behind the participants (its
    /// log restored from a backup?), whose prepares are all ignored.
    #[error(
        "prepare of txn {txn} below this participant's floor {floor}: a late duplicate, or a \
         coordinator behind what it settled before (a restored backup of its log?)"
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

/// The kind of a protocol message: what logs name and `--fault-drop-in/-out`
/// select. Defined here, once, next to the envelope that carries them.
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
}

impl MsgKind {
    /// Every kind, in protocol order.
    pub const ALL: [MsgKind; 19] = [
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
        MsgKind::Campaign,
        MsgKind::Promise,
        MsgKind::Accept,
        MsgKind::Accepted,
        MsgKind::Nack,
        MsgKind::Recover,
        MsgKind::RecoverReply,
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
            Msg::Campaign { .. } => MsgKind::Campaign,
            Msg::Promise { .. } => MsgKind::Promise,
            Msg::Accept { .. } => MsgKind::Accept,
            Msg::Accepted { .. } => MsgKind::Accepted,
            Msg::Nack { .. } => MsgKind::Nack,
            Msg::Recover { .. } => MsgKind::Recover,
            Msg::RecoverReply { .. } => MsgKind::RecoverReply,
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
            MsgKind::Campaign => "campaign",
            MsgKind::Promise => "promise",
            MsgKind::Accept => "accept",
            MsgKind::Accepted => "accepted",
            MsgKind::Nack => "nack",
            MsgKind::Recover => "recover",
            MsgKind::RecoverReply => "recover_reply",
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
        | Msg::Lookup { .. }
        | Msg::Status { .. }
        | Msg::AskEpoch { .. }
        | Msg::Epoch { .. }
        | Msg::Campaign { .. }
        | Msg::Promise { .. }
        | Msg::Accept { .. }
        | Msg::Accepted { .. }
        | Msg::Nack { .. }
        | Msg::Recover { .. }
        | Msg::RecoverReply { .. } => None,
        Msg::Outcome(o) => o.txn,
        Msg::Prepare { txn, .. }
        | Msg::Vote { txn, .. }
        | Msg::Commit { txn }
        | Msg::Abort { txn }
        | Msg::Ack { txn }
        | Msg::QueryDecision { txn } => Some(*txn),
    }
}

/// The cluster's shared secret. Its `Debug` never prints it.
///
/// Its format, checked wherever a key is read: exactly [`KEY_HEX_LEN`]
/// hexadecimal characters (32 random bytes, as `twopc keygen` prints them),
/// with surrounding whitespace (a trailing newline) ignored and nothing else
/// in the file or variable. Upper- and lower-case digits are the same key.
/// The HMAC is keyed by the 64 lower-case hex characters, as before the
/// format was enforced, so keys from `twopc keygen` keep working unchanged.
#[derive(Clone)]
pub struct ClusterKey(Vec<u8>);

/// How many hexadecimal characters a cluster key has (32 bytes).
pub const KEY_HEX_LEN: usize = 64;

impl ClusterKey {
    /// A key from its text, or why the text is not one. The error describes
    /// the text without quoting it (it may be a secret).
    pub fn new(text: &str) -> Result<Self, String> {
        const EXPECTED: &str = "a cluster key is exactly 64 hexadecimal characters \
            (32 bytes, as `twopc keygen` prints them) and nothing else";
        let key = text.trim();
        if key.lines().nth(1).is_some() {
            return Err(format!(
                "{EXPECTED}; got {} lines (a comment or a second key?)",
                key.lines().count()
            ));
        }
        if let Some((at, _)) = key.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
            return Err(format!(
                "{EXPECTED}; got a character that is not a hexadecimal digit at byte {}",
                at + 1
            ));
        }
        if key.len() != KEY_HEX_LEN {
            return Err(format!("{EXPECTED}; got {} characters", key.len()));
        }
        Ok(ClusterKey(key.to_ascii_lowercase().into_bytes()))
    }

    /// A fresh random key (the demo uses one).
    pub fn random() -> Self {
        ClusterKey(Self::generate().into_bytes())
    }

    /// The text of a fresh random key, as `twopc keygen` prints it.
    pub fn generate() -> String {
        hex::encode(rand::random::<[u8; 32]>())
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length")
    }

    /// The key datagrams of cluster `id` are authenticated with: an HMAC
    /// of the id under this key (hex, like a key), so that clusters sharing
    /// a key but not an id never accept each other's datagrams.
    pub fn for_cluster(&self, id: &str) -> ClusterKey {
        let mut mac = self.mac();
        mac.update(b"twopc cluster id\0");
        mac.update(id.as_bytes());
        ClusterKey(hex::encode(mac.finalize().into_bytes()).into_bytes())
    }

    /// The key's public fingerprint: a cluster's id when its file names
    /// none ("k-" and 16 hex digits of a hash; the key cannot be recovered
    /// from it).
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let mut hash = Sha256::new();
        hash.update(b"twopc cluster fingerprint\0");
        hash.update(&self.0);
        format!("k-{}", &hex::encode(hash.finalize())[..16])
    }
}

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(<redacted>)")
    }
}

fn bincode_options() -> impl bincode::Options + Copy {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_limit(MAX_DATAGRAM as u64)
        .reject_trailing_bytes()
}

/// Encodes and decodes datagrams for one node.
#[derive(Clone, Debug)]
pub struct Codec {
    key: Option<ClusterKey>,
    format: Format,
}

impl Codec {
    /// A codec sending `format`, authenticating with `key` if given.
    pub fn new(key: Option<ClusterKey>, format: Format) -> Self {
        Codec { key, format }
    }

    /// Whether datagrams are authenticated.
    pub fn is_authenticated(&self) -> bool {
        self.key.is_some()
    }

    /// Its key's fingerprint ([`ClusterKey::fingerprint`]), if it has one.
    pub fn fingerprint(&self) -> Option<String> {
        self.key.as_ref().map(ClusterKey::fingerprint)
    }

    /// The datagram carrying `payload`.
    pub fn encode(&self, payload: &Payload) -> Result<Bytes, String> {
        self.encode_stamped(payload, None)
    }

    /// The datagram carrying `payload` and, if given, a history position
    /// (`crate::history`).
    pub fn encode_stamped(&self, payload: &Payload, history: Option<u64>) -> Result<Bytes, String> {
        let body: Bytes = match self.format {
            Format::Bincode => {
                let mut codec = Bincode::<Payload, Payload, _>::from(bincode_options());
                Serializer::serialize(Pin::new(&mut codec), payload).map_err(|e| e.to_string())
            }
            Format::Json => {
                let mut codec = Json::<Payload, Payload>::default();
                Serializer::serialize(Pin::new(&mut codec), payload).map_err(|e| e.to_string())
            }
        }?;
        let out = self.seal(&body, history);
        if out.len() > MAX_DATAGRAM {
            return Err(format!(
                "datagram of {} bytes exceeds the {MAX_DATAGRAM}-byte limit",
                out.len()
            ));
        }
        Ok(out.into())
    }

    /// The envelope around `body`: header, MAC if keyed, history if
    /// given, body.
    fn seal(&self, body: &[u8], history: Option<u64>) -> Vec<u8> {
        let mut flags = if self.key.is_some() { FLAG_MAC } else { 0 };
        if history.is_some() {
            flags |= FLAG_HISTORY;
        }
        let history = history.map(u64::to_le_bytes);
        let history: &[u8] = history.as_ref().map_or(&[], |h| &h[..]);
        let mut out = Vec::with_capacity(HEADER_LEN + MAC_LEN + HISTORY_LEN + body.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&[VERSION, self.format.byte(), flags]);
        if let Some(key) = &self.key {
            let mut mac = key.mac();
            mac.update(&out[..HEADER_LEN]);
            mac.update(history);
            mac.update(body);
            out.extend_from_slice(&mac.finalize().into_bytes());
        }
        out.extend_from_slice(history);
        out.extend_from_slice(body);
        out
    }

    /// The body of an envelope of at most `limit` bytes, its format byte
    /// and its history field, once the header and the MAC are checked.
    fn open<'a>(
        &self,
        envelope: &'a [u8],
        limit: usize,
    ) -> Result<(u8, Option<u64>, &'a [u8]), Reject> {
        if envelope.len() > limit {
            return Err(Reject::Oversized(envelope.len()));
        }
        if envelope.len() < HEADER_LEN || envelope[..2] != MAGIC {
            return Err(Reject::BadMagic);
        }
        let (version, format, flags) = (envelope[2], envelope[3], envelope[4]);
        if version != VERSION {
            return Err(Reject::BadVersion(version));
        }
        if format > 1 {
            return Err(Reject::BadFormat(format));
        }
        let has_mac = flags & FLAG_MAC != 0;
        let body = match (&self.key, has_mac) {
            (Some(_), false) => return Err(Reject::MissingMac),
            (None, true) => return Err(Reject::UnexpectedMac),
            (None, false) => &envelope[HEADER_LEN..],
            (Some(key), true) => {
                if envelope.len() < HEADER_LEN + MAC_LEN {
                    return Err(Reject::BadMac);
                }
                let (tag, body) = envelope[HEADER_LEN..].split_at(MAC_LEN);
                let mut mac = key.mac();
                mac.update(&envelope[..HEADER_LEN]);
                mac.update(body);
                mac.verify_slice(tag).map_err(|_| Reject::BadMac)?;
                body
            }
        };
        if flags & FLAG_HISTORY == 0 {
            return Ok((format, None, body));
        }
        let Some((history, body)) = body.split_first_chunk::<HISTORY_LEN>() else {
            return Err(Reject::Undecodable("history field cut short".into()));
        };
        Ok((format, Some(u64::from_le_bytes(*history)), body))
    }

    /// The payload of `datagram`, or why it must be dropped.
    pub fn decode(&self, datagram: &[u8]) -> Result<Payload, Reject> {
        self.decode_stamped(datagram).map(|(payload, _)| payload)
    }

    /// The payload of `datagram` and its history field, or why it must be
    /// dropped.
    pub fn decode_stamped(&self, datagram: &[u8]) -> Result<(Payload, Option<u64>), Reject> {
        let (format, history, body) = self.open(datagram, MAX_DATAGRAM)?;
        if format == 0 && carries_coordinator_state(body) {
            return Err(Reject::Undecodable(
                "a replica's state by datagram (replicas send it over TCP)".into(),
            ));
        }
        let body = BytesMut::from(body);
        let decoded = if format == 0 {
            let mut codec = Bincode::<Payload, Payload, _>::from(bincode_options());
            Deserializer::deserialize(Pin::new(&mut codec), &body).map_err(|e| e.to_string())
        } else {
            let mut codec = Json::<Payload, Payload>::default();
            Deserializer::deserialize(Pin::new(&mut codec), &body).map_err(|e| e.to_string())
        };
        decoded
            .map(|payload| (payload, history))
            .map_err(Reject::Undecodable)
    }

    /// One frame of a TCP stream between replicas (`replication.rs`): the
    /// same envelope as a datagram (header, MAC), up to [`MAX_FRAME`] bytes.
    /// Always bincode, whatever `--wire` says: these frames carry whole
    /// coordinator states (compact in bincode, several times larger in
    /// JSON) and are not for reading in tcpdump anyway.
    pub fn encode_frame<T: Serialize>(&self, frame: &T) -> Result<Vec<u8>, String> {
        use bincode::Options;
        let body = frame_options()
            .serialize(frame)
            .map_err(|e| e.to_string())?;
        let bincode = Codec {
            key: self.key.clone(),
            format: Format::Bincode,
        };
        let out = bincode.seal(&body, None);
        if out.len() > MAX_FRAME {
            return Err(format!(
                "frame of {} bytes exceeds the {MAX_FRAME}-byte limit",
                out.len()
            ));
        }
        Ok(out)
    }

    /// The value a frame carries, or why it must be dropped.
    pub fn decode_frame<T: serde::de::DeserializeOwned>(&self, frame: &[u8]) -> Result<T, Reject> {
        use bincode::Options;
        let (format, _history, body) = self.open(frame, MAX_FRAME)?;
        if format != Format::Bincode.byte() {
            return Err(Reject::BadFormat(format)); // Frames are bincode.
        }
        frame_options()
            .deserialize(body)
            .map_err(|e| Reject::Undecodable(e.to_string()))
    }
}

/// Whether a bincode datagram body is a `Promise` or an `Accept`: the
/// messages that carry a coordinator's state, whose persistent maps
/// (imbl) reserve room for as many entries as the length prefix claims
/// before reading any: a forged length of 2^40 aborts the process. They
/// travel between replicas over TCP, never by datagram, so a datagram
/// holding one is refused from its first two bytes (the payload's and the
/// message's variant), before anything is allocated.
fn carries_coordinator_state(body: &[u8]) -> bool {
    use bincode::Options;
    static PREFIXES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    let prefixes = PREFIXES.get_or_init(|| {
        let term = twopc_model::Term {
            n: 0,
            leader: stateright::actor::Id::from(0),
        };
        let msgs = [
            Msg::Promise {
                term,
                accepted: None,
            },
            Msg::Accept {
                term,
                version: 0,
                storage: Default::default(),
            },
        ];
        msgs.into_iter()
            .map(|msg| {
                let bytes = bincode_options()
                    .serialize(&Payload::Protocol(msg))
                    .expect("serializes");
                bytes[..2].to_vec()
            })
            .collect()
    });
    prefixes.iter().any(|p| body.starts_with(p))
}

/// Largest frame between replicas: an `Accept` or a `Promise` carries a
/// whole coordinator state (`retention` outcomes, megabytes) when it is not
/// a delta.
pub const MAX_FRAME: usize = 1 << 30;

fn frame_options() -> impl bincode::Options + Copy {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_limit(MAX_FRAME as u64)
        .reject_trailing_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use twopc_model::{Ballot, Floor, Op, RequestId, TxnId};

    fn msgs() -> Vec<Payload> {
        let txn = TxnId { epoch: 3, n: 9 };
        let req = RequestId::new(format!("{}#{}", 42, 1));
        vec![
            Payload::Protocol(Msg::Prepare {
                txn,
                req,
                op: Op {
                    key: "alice".into(),
                    amount: 30,
                },
                floor: Floor {
                    below: TxnId { epoch: 3, n: 2 },
                    owed: vec![TxnId { epoch: 2, n: 7 }],
                },
            }),
            Payload::Protocol(Msg::Vote {
                txn,
                ballot: Ballot::Yes,
            }),
            Payload::Protocol(Msg::Commit { txn }),
            Payload::StatusRequest { nonce: 7 },
        ]
    }

    #[test]
    fn round_trips_in_every_format_with_and_without_key() {
        let key =
            ClusterKey::new("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
                .unwrap();
        for format in [Format::Bincode, Format::Json] {
            for key in [None, Some(key.clone())] {
                let codec = Codec::new(key, format);
                for payload in msgs() {
                    let bytes = codec.encode(&payload).unwrap();
                    assert_eq!(codec.decode(&bytes), Ok(payload));
                }
            }
        }
    }

    #[test]
    fn message_kinds_parse_from_their_names_and_nothing_else() {
        for kind in MsgKind::ALL {
            assert_eq!(kind.as_str().parse::<MsgKind>(), Ok(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{kind}\""));
        }
        let err = "commits".parse::<MsgKind>().unwrap_err();
        assert_eq!(
            err,
            "unknown message kind \"commits\" (kinds: purchase,outcome,lookup,status,prepare,vote,commit,abort,ack,query,ask_epoch,epoch,campaign,promise,accept,accepted,nack,recover,recover_reply)"
        );
        assert_eq!(
            MsgKind::of(&Msg::QueryDecision {
                txn: TxnId { epoch: 1, n: 2 }
            }),
            MsgKind::Query
        );
    }

    #[test]
    fn a_json_sender_is_understood_by_a_bincode_node() {
        let json = Codec::new(None, Format::Json);
        let bin = Codec::new(None, Format::Bincode);
        for payload in msgs() {
            assert_eq!(bin.decode(&json.encode(&payload).unwrap()), Ok(payload));
        }
    }

    #[test]
    fn garbage_is_rejected_with_a_reason_never_a_panic() {
        let codec = Codec::new(None, Format::Bincode);
        assert_eq!(codec.decode(b""), Err(Reject::BadMagic));
        assert_eq!(codec.decode(b"hello world"), Err(Reject::BadMagic));
        assert_eq!(
            codec.decode(&vec![0u8; MAX_DATAGRAM + 1]),
            Err(Reject::Oversized(MAX_DATAGRAM + 1))
        );
        let mut good = codec.encode(&msgs()[0]).unwrap().to_vec();
        good[2] = 99;
        assert_eq!(codec.decode(&good), Err(Reject::BadVersion(99)));
        assert!(matches!(
            codec.decode(&[b"2P".as_slice(), &[VERSION, 0, 0], &[0xff; 8]].concat()),
            Err(Reject::Undecodable(_))
        ));
        // Every truncation and every single-byte corruption: no panic.
        let good = codec.encode(&msgs()[0]).unwrap();
        for n in 0..good.len() {
            let _ = codec.decode(&good[..n]);
            let mut bad = good.to_vec();
            bad[n] ^= 0x5a;
            let _ = codec.decode(&bad);
        }
        // A huge length prefix does not allocate or panic.
        let mut huge = [b"2P".as_slice(), &[VERSION, 0, 0, 0]].concat();
        huge.extend_from_slice(&[0xfc, 0xff, 0xff, 0xff, 0xff]);
        assert!(codec.decode(&huge).is_err());
    }

    /// A datagram holding a replica's state (`Accept`, `Promise`) is
    /// refused before it is deserialized: its maps' forged lengths would
    /// reserve terabytes. (The decoder fuzz test found it.)
    #[test]
    fn a_replica_state_by_datagram_is_refused_unread() {
        let codec = Codec::new(None, Format::Bincode);
        let term = twopc_model::Term {
            n: 1,
            leader: stateright::actor::Id::from(3),
        };
        let accept = Payload::Protocol(Msg::Accept {
            term,
            version: 2,
            storage: Default::default(),
        });
        let mut bytes = codec.encode(&accept).unwrap().to_vec();
        assert!(matches!(codec.decode(&bytes), Err(Reject::Undecodable(_))));
        // A length of 2^40 entries in place of the first map's.
        bytes.truncate(bytes.len() - 1);
        bytes.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert!(matches!(codec.decode(&bytes), Err(Reject::Undecodable(_))));
        let promise = Payload::Protocol(Msg::Promise {
            term,
            accepted: None,
        });
        let bytes = codec.encode(&promise).unwrap();
        assert!(matches!(codec.decode(&bytes), Err(Reject::Undecodable(_))));
        // Other replica messages carry no map, and decode.
        let accepted = Payload::Protocol(Msg::Accepted { term, version: 2 });
        let bytes = codec.encode(&accepted).unwrap();
        assert_eq!(codec.decode(&bytes), Ok(accepted));
    }

    #[test]
    fn authentication_rejects_strangers_and_tampering() {
        let key = ClusterKey::new(&"ab".repeat(32)).unwrap();
        let other = ClusterKey::new(&"cd".repeat(32)).unwrap();
        let node = Codec::new(Some(key.clone()), Format::Bincode);
        let stranger = Codec::new(Some(other), Format::Bincode);
        let open = Codec::new(None, Format::Bincode);
        let payload = msgs()[2].clone();
        assert_eq!(
            node.decode(&stranger.encode(&payload).unwrap()),
            Err(Reject::BadMac)
        );
        assert_eq!(
            node.decode(&open.encode(&payload).unwrap()),
            Err(Reject::MissingMac)
        );
        assert_eq!(
            open.decode(&node.encode(&payload).unwrap()),
            Err(Reject::UnexpectedMac)
        );
        let mut tampered = node.encode(&payload).unwrap().to_vec();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(node.decode(&tampered), Err(Reject::BadMac));
        assert!(ClusterKey::new("short").is_err());
        assert_eq!(format!("{key:?}"), "ClusterKey(<redacted>)");
    }

    /// A key is 64 hex digits and nothing else: a trailing newline or
    /// spaces are ignored, case does not matter, and anything else — any
    /// 16-character string, a comment line, a key one digit short — is
    /// refused, with an error that does not quote the text.
    #[test]
    fn a_key_is_64_hex_digits_and_nothing_else() {
        let hex = "0123456789abcdef".repeat(4);
        let same = |text: &str| {
            let a = Codec::new(Some(ClusterKey::new(&hex).unwrap()), Format::Bincode);
            let b = Codec::new(Some(ClusterKey::new(text).unwrap()), Format::Bincode);
            let payload = msgs()[0].clone();
            assert_eq!(
                a.decode(&b.encode(&payload).unwrap()),
                Ok(payload),
                "{text:?}"
            );
        };
        same(&format!("{hex}\n"));
        same(&format!("  {hex}\r\n\n"));
        same(&hex.to_uppercase());
        for bad in [
            "0123456789abcdef".to_string(),
            "sixteen chars!!!".to_string(),
            format!("{hex}\n# the production key"),
            format!("# the production key\n{hex}"),
            hex[1..].to_string(),
            format!("{hex}0"),
            format!("{}g", &hex[1..]),
            format!("{} {}", &hex[..32], &hex[32..]),
            String::new(),
        ] {
            let err = ClusterKey::new(&bad).unwrap_err();
            assert!(
                err.starts_with("a cluster key is exactly 64 hexadecimal"),
                "{err}"
            );
            assert!(bad.is_empty() || !err.contains(bad.trim()), "{err}");
        }
        assert_eq!(ClusterKey::generate().len(), KEY_HEX_LEN);
        assert!(ClusterKey::new(&ClusterKey::generate()).is_ok());
    }

    /// The largest status reply the names allow — [`crate::admin::MAX_LISTED`]
    /// balances and as many holds, every name [`MAX_NAME`] bytes, every
    /// number its largest — fits in one datagram in either format; names
    /// one byte longer are refused.
    #[test]
    fn the_largest_status_reply_fits_in_a_datagram() {
        use crate::admin::{Counters, HoldView, NodeView, MAX_LISTED};
        let mut view = NodeView::of(
            "wallet",
            &twopc_model::State::Participant(twopc_model::PartState {
                data: Default::default(),
                recovered_holds: false,
            }),
            &Counters::default(),
        );
        let name = |i: usize| format!("{i:0>width$}", width = MAX_NAME);
        for i in 0..MAX_LISTED {
            view.levels.insert(name(i), u64::MAX);
            view.holds.push(HoldView {
                txn: format!("{}.{}", u64::MAX, u64::MAX),
                req: format!("{}#{}", u64::MAX, u64::MAX),
                key: name(i),
                amount: u64::MAX,
            });
        }
        for format in [Format::Bincode, Format::Json] {
            let codec = Codec::new(Some(ClusterKey::random()), format);
            let reply = Payload::StatusReply {
                nonce: u64::MAX,
                view: Box::new(view.clone()),
            };
            let bytes = codec.encode(&reply);
            assert!(bytes.is_ok(), "{format:?}: {bytes:?}");
        }
        assert!(check_name("--user", &name(0)).is_ok());
        let err = check_name("--user", &"x".repeat(70_000)).unwrap_err();
        assert!(
            err.contains("--user") && err.contains("70000 bytes"),
            "{err}"
        );
        assert!(err.contains("at most 64 bytes") && err.len() < 300, "{err}");
        assert!(
            check_name("--sku", &"é".repeat(33)).is_err(),
            "bytes, not chars"
        );
    }
}
