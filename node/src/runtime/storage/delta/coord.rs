//! [`CoordDelta`]: a coordinator's changes from one durable state to the
//! next, diffed and applied field by field. Uses `map` (the changes to each
//! of its maps); nothing else of the crate.

use super::map::{diff_map, MapDelta};
use serde::{Deserialize, Serialize};
use stateright::actor::Id;
use twopc_model::{Amount, CoordStorage, Operation, Outcomes, RequestId, Told, TxnId};

/// A coordinator's changes from one durable state to the next. Also what a
/// replica's `Accept` carries over TCP (`replication/`): the changes from
/// the previous `Accept` on the same connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoordDelta {
    /// The epoch (always written: 8 bytes).
    epoch: u64,
    /// The outcomes' counters, `next` and `forgotten_below` (always
    /// written: 16 bytes).
    numbers: (u64, u64),
    /// Changed outcomes by id (recorded or forgotten).
    outcomes: MapDelta<RequestId, Told>,
    /// The same changes by age.
    ages: MapDelta<u64, RequestId>,
    /// Changed pending commits.
    commits: MapDelta<TxnId, RequestId>,
    /// Changed transactions in doubt. After the fields of before, so that
    /// a record written before they existed reads as changing none
    /// (`record.rs`).
    doubts: MapDelta<TxnId, RequestId>,
    /// Changed operations of requests that are not purchases (likewise:
    /// absent from records written before them).
    flows: MapDelta<RequestId, Operation>,
    /// Changed participants of partial commits and doubts.
    partial: MapDelta<TxnId, Vec<Id>>,
    /// Changed refunded counts of purchases. Last (absent from records
    /// written before refunds: they read as changing none).
    refunded: MapDelta<RequestId, Amount>,
}

impl CoordDelta {
    /// The changes from `a` to `b`, or `None` if they are equal.
    pub fn diff(a: &CoordStorage, b: &CoordStorage) -> Option<CoordDelta> {
        let CoordStorage {
            epoch: old_epoch,
            outcomes: old_outcomes,
            commits: old_commits,
            doubts: old_doubts,
            flows: old_flows,
            partial: old_partial,
            refunded: old_refunded,
        } = a;
        let CoordStorage {
            epoch,
            outcomes,
            commits,
            doubts,
            flows,
            partial,
            refunded,
        } = b;
        let Outcomes {
            by_id,
            by_age,
            next,
            forgotten_below,
        } = outcomes;
        let numbers = (*next, *forgotten_below);
        let old_numbers = (old_outcomes.next, old_outcomes.forgotten_below);
        let ids = diff_map(&old_outcomes.by_id, by_id);
        let ages = diff_map(&old_outcomes.by_age, by_age);
        let commits = diff_map(old_commits, commits);
        let doubts = diff_map(old_doubts, doubts);
        let flows = diff_map(old_flows, flows);
        let partial = diff_map(old_partial, partial);
        let refunded = diff_map(old_refunded, refunded);
        (old_epoch != epoch
            || old_numbers != numbers
            || !ids.is_empty()
            || !ages.is_empty()
            || !commits.is_empty()
            || !doubts.is_empty()
            || !flows.is_empty()
            || !partial.is_empty()
            || !refunded.is_empty())
        .then_some(CoordDelta {
            epoch: *epoch,
            numbers,
            outcomes: ids,
            ages,
            commits,
            doubts,
            flows,
            partial,
            refunded,
        })
    }

    /// `base` with these changes applied.
    pub fn apply(self, base: CoordStorage) -> CoordStorage {
        let CoordDelta {
            epoch: new_epoch,
            numbers: (next, forgotten_below),
            outcomes: ids_delta,
            ages: ages_delta,
            commits: commits_delta,
            doubts: doubts_delta,
            flows: flows_delta,
            partial: partial_delta,
            refunded: refunded_delta,
        } = self;
        let CoordStorage {
            epoch: _,
            outcomes:
                Outcomes {
                    mut by_id,
                    mut by_age,
                    next: _,
                    forgotten_below: _,
                },
            mut commits,
            mut doubts,
            mut flows,
            mut partial,
            mut refunded,
        } = base;
        ids_delta.apply(&mut by_id);
        ages_delta.apply(&mut by_age);
        commits_delta.apply(&mut commits);
        doubts_delta.apply(&mut doubts);
        flows_delta.apply(&mut flows);
        partial_delta.apply(&mut partial);
        refunded_delta.apply(&mut refunded);
        CoordStorage {
            epoch: new_epoch,
            outcomes: Outcomes {
                by_id,
                by_age,
                next,
                forgotten_below,
            },
            commits,
            doubts,
            flows,
            partial,
            refunded,
        }
    }
}
