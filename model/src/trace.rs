//! Traces: what a runtime records of each actor step, so that `twopc-check
//! replay` can run the same step through the same actor and compare.
//!
//! Pure data (serde) and pure functions; the runtime writes these as JSON
//! lines (one [`Record`] per line) and the checker reads them. The format is
//! described in `docs/trace.md`.
//!
//! Saves and states are recorded as [`digest`]s, not in full: a
//! participant's storage holds every balance, and the replay recomputes the
//! storage anyway. Only a start records its storage in full (the replay
//! must start from it). JSON maps need string keys, and the storage's maps
//! are keyed by transaction, so storage is carried as [`StorageJson`].

use crate::*;
use serde::{Deserialize, Serialize};
use stateright::actor::{Command, Id, Out};
use std::hash::{Hash, Hasher};

/// One line of a trace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Record {
    /// A node starts recording (written before its first step, again after
    /// each process restart): who it is.
    Node {
        /// Its name in the cluster.
        name: String,
        /// Its role (`coordinator`, `wallet`, `order`, `client<N>`).
        role: String,
        /// Its stateright `Id` (from its address).
        id: u64,
        /// The actor it runs, as configured.
        actor: Node,
    },
    /// One actor step.
    Step(Step),
    /// Every save of this node's steps up to `seq` is durable (fsync'd).
    Durable {
        /// The last step whose save is now durable.
        seq: u64,
        /// When (microseconds, see [`Step::t`]).
        t: u64,
    },
}

/// One actor step: the event, the commands out, the state after.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Increases by one per step of this node, across restarts.
    pub seq: u64,
    /// When: microseconds since the Unix epoch for real runs, simulated time
    /// in a simulation. Orders the steps of all nodes.
    pub t: u64,
    /// What the actor was given.
    pub event: Event,
    /// The commands it emitted, in order.
    pub cmds: Vec<Cmd>,
    /// [`digest`] of its state after the step.
    pub state: String,
}

/// What an actor step was given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// `on_start` from this storage (`None`: nothing saved).
    Start {
        /// The storage the node started from.
        storage: Option<StorageJson>,
    },
    /// `on_msg`.
    Msg {
        /// The sender's `Id`.
        src: u64,
        /// The decoded message.
        msg: Msg,
    },
    /// `on_timeout`.
    Timer {
        /// The timer that fired.
        timer: Timer,
    },
}

/// One command, as recorded.
// (`Send` carries a message, as large as a coordinator's durable state in
// an `Accept`; a recorded command lives for one line of a trace.)
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cmd {
    /// `Send(dst, msg)`.
    Send {
        /// The destination's `Id`.
        dst: u64,
        /// The message.
        msg: Msg,
    },
    /// `SetTimer(timer, range)`, the range in milliseconds.
    SetTimer {
        /// The timer.
        timer: Timer,
        /// Shortest duration.
        min_ms: u64,
        /// Longest duration (exclusive).
        max_ms: u64,
    },
    /// `CancelTimer(timer)`.
    CancelTimer {
        /// The timer.
        timer: Timer,
    },
    /// `ChooseRandom` (not used by twopc).
    ChooseRandom {
        /// Its key.
        key: String,
    },
    /// `Save(storage)`: the [`digest`] of the storage.
    Save {
        /// The storage's digest.
        digest: String,
    },
}

/// The recorded form of an actor's commands.
pub fn cmds(out: &Out<Node>) -> Vec<Cmd> {
    out.iter()
        .map(|c| match c {
            Command::Send(dst, msg) => Cmd::Send {
                dst: usize::from(*dst) as u64,
                msg: msg.clone(),
            },
            Command::SetTimer(timer, range) => Cmd::SetTimer {
                timer: timer.clone(),
                min_ms: range.start.as_millis() as u64,
                max_ms: range.end.as_millis() as u64,
            },
            Command::CancelTimer(timer) => Cmd::CancelTimer {
                timer: timer.clone(),
            },
            Command::ChooseRandom(key, _) => Cmd::ChooseRandom { key: key.clone() },
            Command::Save(storage) => Cmd::Save {
                digest: digest(storage),
            },
        })
        .collect()
}

/// A stable 64-bit digest (FNV-1a over the value's `Hash` feed: maps are
/// ordered, so equal values give equal digests in every build of this
/// code), as 16 hex digits. Costs one pass over the value.
pub fn digest<T: Hash>(value: &T) -> String {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    value.hash(&mut h);
    format!("{:016x}", h.finish())
}

struct Fnv(u64);

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.write(&n.to_le_bytes());
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// [`Storage`] in a form JSON can carry: maps keyed by transaction become
/// lists of pairs. Converts both ways without loss.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageJson {
    /// [`Storage::Coordinator`].
    Coordinator {
        /// [`CoordStorage::epoch`].
        epoch: u64,
        /// [`CoordStorage::outcomes`] (its maps are keyed by strings and
        /// numbers, which JSON takes as keys).
        outcomes: crate::coordinator::Outcomes,
        /// [`CoordStorage::commits`].
        commits: Vec<(TxnId, RequestId)>,
        /// [`CoordStorage::doubts`] (absent from traces recorded before it).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        doubts: Vec<(TxnId, RequestId)>,
        /// [`CoordStorage::flows`] (absent when empty).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        flows: Vec<(RequestId, Operation)>,
        /// [`CoordStorage::partial`] (absent when empty).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        partial: Vec<(TxnId, Vec<stateright::actor::Id>)>,
        /// [`CoordStorage::refunded`] (absent when empty).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        refunded: Vec<(RequestId, Amount)>,
    },
    /// [`Storage::Participant`].
    Participant {
        /// [`PartStorage::levels`].
        levels: Vec<(Key, Amount)>,
        /// [`PartStorage::holds`].
        holds: Vec<(TxnId, Hold)>,
        /// [`PartStorage::finished`].
        finished: Vec<(TxnId, participant::Finished)>,
        /// [`PartStorage::floor`].
        floor: TxnId,
        /// [`PartStorage::credits`] (absent when empty).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        credits: Vec<(TxnId, participant::Credit)>,
        /// [`PartStorage::prices`] (absent when empty).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        prices: Vec<(Key, Amount)>,
        /// [`PartStorage::repricing`] (absent when empty).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        repricing: Vec<(TxnId, Amount)>,
    },
    /// [`Storage::Client`].
    Client(ClientState),
    /// [`Storage::Replica`]: the promise, and the accepted version with its
    /// coordinator storage written as a coordinator's.
    Replica {
        /// [`ReplicaStorage::promised`].
        promised: Term,
        /// [`ReplicaStorage::accepted`]: term, version, storage.
        accepted: Option<(Term, u64, Box<StorageJson>)>,
    },
}

fn pairs<K: Clone + Ord, V: Clone>(m: &Map<K, V>) -> Vec<(K, V)> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

impl From<&Storage> for StorageJson {
    fn from(s: &Storage) -> Self {
        match s {
            Storage::Coordinator(CoordStorage {
                epoch,
                outcomes,
                commits,
                doubts,
                flows,
                partial,
                refunded,
            }) => StorageJson::Coordinator {
                epoch: *epoch,
                outcomes: outcomes.clone(),
                commits: pairs(commits),
                doubts: pairs(doubts),
                flows: pairs(flows),
                partial: pairs(partial),
                refunded: pairs(refunded),
            },
            Storage::Participant(PartStorage {
                levels,
                holds,
                finished,
                floor,
                credits,
                prices,
                repricing,
            }) => StorageJson::Participant {
                levels: pairs(levels),
                holds: pairs(holds),
                finished: pairs(finished),
                floor: *floor,
                credits: pairs(credits),
                prices: pairs(prices),
                repricing: pairs(repricing),
            },
            Storage::Client(c) => StorageJson::Client(c.clone()),
            Storage::Replica(ReplicaStorage { promised, accepted }) => StorageJson::Replica {
                promised: *promised,
                accepted: accepted.as_ref().map(|a| {
                    let storage = Storage::Coordinator(a.storage.clone());
                    (a.term, a.version, Box::new(StorageJson::from(&storage)))
                }),
            },
        }
    }
}

impl From<StorageJson> for Storage {
    fn from(s: StorageJson) -> Self {
        match s {
            StorageJson::Coordinator {
                epoch,
                outcomes,
                commits,
                doubts,
                flows,
                partial,
                refunded,
            } => Storage::Coordinator(CoordStorage {
                epoch,
                outcomes,
                commits: commits.into_iter().collect(),
                doubts: doubts.into_iter().collect(),
                flows: flows.into_iter().collect(),
                partial: partial.into_iter().collect(),
                refunded: refunded.into_iter().collect(),
            }),
            StorageJson::Participant {
                levels,
                holds,
                finished,
                floor,
                credits,
                prices,
                repricing,
            } => Storage::Participant(PartStorage {
                levels: levels.into_iter().collect(),
                holds: holds.into_iter().collect(),
                finished: finished.into_iter().collect(),
                floor,
                credits: credits.into_iter().collect(),
                prices: prices.into_iter().collect(),
                repricing: repricing.into_iter().collect(),
            }),
            StorageJson::Client(c) => Storage::Client(c),
            StorageJson::Replica { promised, accepted } => Storage::Replica(ReplicaStorage {
                promised,
                accepted: accepted.and_then(|(term, version, storage)| {
                    match Storage::from(*storage) {
                        Storage::Coordinator(storage) => Some(crate::replica::Accepted {
                            term,
                            version,
                            storage,
                        }),
                        _ => None,
                    }
                }),
            }),
        }
    }
}

/// The `Id` a recorded number stands for.
pub fn id(n: u64) -> Id {
    Id::from(n as usize)
}
