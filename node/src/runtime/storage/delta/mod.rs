//! Log records: how one durable state differs from the previous one.
//!
//! `Save` hands the runtime an actor's *whole* durable state. [`diff`]
//! compares it with the last state written, map entry by map entry (a merge
//! of sorted keys), and keeps only entries set or removed, so a record's size
//! depends on what changed, not on how many accounts or past transactions
//! there are. [`apply`] replays a record onto the previous state.
//!
//! Both destructure the storage types without `..`: a field added to
//! `PartStorage`, `CoordStorage`, `ClientState` or `ReplicaStorage` in the
//! model stops these files from compiling until it is written to and read
//! from the log.
//!
//! Here: [`Delta`], one log record, and [`diff`] and [`apply`] by role.
//! `coord.rs` holds [`CoordDelta`], a coordinator's changes (also what a
//! replica's `Accept` carries over TCP); `map.rs` the changes to one map,
//! which both are made of. Uses nothing else of the crate: the model's
//! storage types in, records out.

mod coord;
mod map;

pub use coord::CoordDelta;
pub use map::MapDelta;

use super::journal::Change;
use map::diff_map;
use serde::{Deserialize, Serialize};
use twopc_model::participant::Finished;
use twopc_model::replica::{Accepted, ReplicaStorage};
use twopc_model::{
    ClientState, CoordStorage, Credit, Hold, Key, Outcome, PartStorage, Storage, Term, Ticket,
    TxnId,
};

/// One log record: a state, or how it differs from the previous one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Delta {
    /// The whole state (first record, snapshots, or a change of role).
    Full(Storage),
    /// A coordinator's changes.
    Coordinator(CoordDelta),
    /// A participant's changes.
    Participant {
        /// The coordinator's floor as last heard (always written: 16 bytes).
        floor: TxnId,
        /// Changed levels.
        levels: MapDelta<Key, u64>,
        /// Changed holds.
        holds: MapDelta<TxnId, Hold>,
        /// Changed finished transactions.
        finished: MapDelta<TxnId, Finished>,
        /// Changed pending credits. Last, so that a record written before
        /// credits existed reads as changing none (`record.rs`).
        credits: MapDelta<TxnId, Credit>,
        /// Changed prices (the order service's catalogue). Appended after
        /// `credits`, as it was.
        prices: MapDelta<Key, u64>,
        /// Changed pending price changes. Appended after `prices`.
        repricing: MapDelta<TxnId, u64>,
        /// Written empty (one byte) and ignored when read: the journal's
        /// entries are derived from the states the records rebuild
        /// (`super::journal_files`). Records written before that carried
        /// them here. Last, so that a record written before the journal
        /// existed reads as having none.
        journal: Vec<Change>,
    },
    /// A client's changes: keep the first `keep` outcomes, then append.
    Client {
        /// How many old outcomes stay.
        keep: u64,
        /// New outcomes.
        append: Vec<Outcome>,
        /// The current purchase's ticket (always written).
        ticket: Option<Ticket>,
    },
    /// A replica's changes: its promise (always written), and what it
    /// accepted, its coordinator's state diffed against the one it had
    /// accepted before (or against an empty one).
    Replica {
        /// The promised term.
        promised: Term,
        /// The accepted state; `None` if it has accepted nothing yet.
        accepted: Option<AcceptedDelta>,
    },
}

/// A replica's newly accepted state, as changes to the one before.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AcceptedDelta {
    /// Its term.
    pub term: Term,
    /// Its version.
    pub version: u64,
    /// The coordinator's state, as changes (`None`: the same state).
    pub storage: Option<CoordDelta>,
}

/// The record that turns `old` into `new`, or `None` if they are equal.
pub fn diff(old: &Storage, new: &Storage) -> Option<Delta> {
    match (old, new) {
        (Storage::Coordinator(a), Storage::Coordinator(b)) => {
            CoordDelta::diff(a, b).map(Delta::Coordinator)
        }
        (Storage::Replica(a), Storage::Replica(b)) => {
            let ReplicaStorage {
                promised: old_promised,
                accepted: old_accepted,
            } = a;
            let ReplicaStorage { promised, accepted } = b;
            let accepted = match (old_accepted, accepted) {
                (_, None) if old_accepted.is_some() => return Some(Delta::Full(new.clone())),
                (_, None) => None,
                (old, Some(new)) => {
                    let Accepted {
                        term,
                        version,
                        storage,
                    } = new;
                    let empty = CoordStorage::default();
                    let base = old.as_ref().map_or(&empty, |a| &a.storage);
                    Some(AcceptedDelta {
                        term: *term,
                        version: *version,
                        storage: CoordDelta::diff(base, storage),
                    })
                }
            };
            let same_accepted = match (old_accepted, &accepted) {
                (None, None) => true,
                (Some(o), Some(n)) => {
                    (o.term, o.version) == (n.term, n.version) && n.storage.is_none()
                }
                _ => false,
            };
            (old_promised != promised || !same_accepted).then_some(Delta::Replica {
                promised: *promised,
                accepted,
            })
        }
        (Storage::Participant(a), Storage::Participant(b)) => {
            let PartStorage {
                levels: old_levels,
                holds: old_holds,
                finished: old_finished,
                floor: old_floor,
                credits: old_credits,
                prices: old_prices,
                repricing: old_repricing,
            } = a;
            let PartStorage {
                levels,
                holds,
                finished,
                floor,
                credits,
                prices,
                repricing,
            } = b;
            let levels = diff_map(old_levels, levels);
            let holds = diff_map(old_holds, holds);
            let finished = diff_map(old_finished, finished);
            let credits = diff_map(old_credits, credits);
            let prices = diff_map(old_prices, prices);
            let repricing = diff_map(old_repricing, repricing);
            (old_floor != floor
                || !levels.is_empty()
                || !holds.is_empty()
                || !finished.is_empty()
                || !credits.is_empty()
                || !prices.is_empty()
                || !repricing.is_empty())
            .then_some(Delta::Participant {
                floor: *floor,
                levels,
                holds,
                finished,
                credits,
                prices,
                repricing,
                journal: Vec::new(),
            })
        }
        (Storage::Client(a), Storage::Client(b)) => {
            let ClientState {
                seen: old_seen,
                ticket: old_ticket,
            } = a;
            let ClientState { seen, ticket } = b;
            let keep = old_seen
                .iter()
                .zip(seen)
                .take_while(|(x, y)| x == y)
                .count();
            (keep != old_seen.len() || keep != seen.len() || old_ticket != ticket).then(|| {
                Delta::Client {
                    keep: keep as u64,
                    append: seen[keep..].to_vec(),
                    ticket: *ticket,
                }
            })
        }
        _ => Some(Delta::Full(new.clone())),
    }
}

/// `base` with `delta` applied, or why that is impossible.
pub fn apply(base: Option<Storage>, delta: Delta) -> std::result::Result<Storage, String> {
    match (base, delta) {
        (_, Delta::Full(s)) => Ok(s),
        (Some(Storage::Coordinator(s)), Delta::Coordinator(d)) => {
            Ok(Storage::Coordinator(d.apply(s)))
        }
        (Some(Storage::Replica(s)), Delta::Replica { promised, accepted }) => {
            let ReplicaStorage {
                promised: _,
                accepted: old,
            } = s;
            let accepted = match accepted {
                None if old.is_some() => {
                    return Err("a replica delta that forgets the accepted state".into())
                }
                None => None,
                Some(AcceptedDelta {
                    term,
                    version,
                    storage,
                }) => {
                    let base = old.map(|a| a.storage).unwrap_or_default();
                    let storage = match storage {
                        Some(d) => d.apply(base),
                        None => base,
                    };
                    Some(Accepted {
                        term,
                        version,
                        storage,
                    })
                }
            };
            Ok(Storage::Replica(ReplicaStorage { promised, accepted }))
        }
        (
            Some(Storage::Participant(s)),
            Delta::Participant {
                floor: new_floor,
                levels: levels_delta,
                holds: holds_delta,
                finished: finished_delta,
                credits: credits_delta,
                prices: prices_delta,
                repricing: repricing_delta,
                journal: _,
            },
        ) => {
            let PartStorage {
                mut levels,
                mut holds,
                mut finished,
                floor: _,
                mut credits,
                mut prices,
                mut repricing,
            } = s;
            levels_delta.apply(&mut levels);
            holds_delta.apply(&mut holds);
            finished_delta.apply(&mut finished);
            credits_delta.apply(&mut credits);
            prices_delta.apply(&mut prices);
            repricing_delta.apply(&mut repricing);
            Ok(Storage::Participant(PartStorage {
                levels,
                holds,
                finished,
                floor: new_floor,
                credits,
                prices,
                repricing,
            }))
        }
        (
            Some(Storage::Client(s)),
            Delta::Client {
                keep,
                append,
                ticket,
            },
        ) => {
            let ClientState {
                mut seen,
                ticket: _,
            } = s;
            if keep as usize > seen.len() {
                return Err(format!(
                    "client delta keeps {keep} outcomes of {}",
                    seen.len()
                ));
            }
            seen.truncate(keep as usize);
            seen.extend(append);
            Ok(Storage::Client(ClientState { seen, ticket }))
        }
        (None, _) => Err("a delta record with no state before it".into()),
        (Some(_), _) => Err("a delta record for a different role".into()),
    }
}

#[cfg(test)]
mod tests;
