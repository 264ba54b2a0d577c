//! An operator's decision on a transaction in doubt, at the leader of a
//! replicated coordinator (see *A lost log is never presumed* in the crate
//! docs).

use super::{Replica, ReplicaState};
use crate::msg::TxnId;
use crate::Node;
use stateright::actor::{Id, Out};
use std::borrow::Cow;

impl Replica {
    /// An operator's decision on a transaction in doubt, taken by the
    /// leader's coordinator ([`Coordinator::decide_in_doubt`]) and
    /// replicated like any of its saves: what it sends waits until the new
    /// version is chosen. Returns `false`, and changes nothing, when this
    /// replica does not lead or `txn` is not in doubt.
    pub fn decide_in_doubt(
        &self,
        me: Id,
        state: &mut Cow<ReplicaState>,
        txn: TxnId,
        commit: bool,
        o: &mut Out<Node>,
    ) -> bool {
        let Some(l) = state.leading() else {
            return false;
        };
        if !l.coord.doubts.contains_key(&txn) {
            return false;
        }
        let mut coord = l.coord.clone();
        let mut inner = Out::new();
        let decided = self
            .coordinator
            .decide_in_doubt(&mut coord, txn, commit, &mut inner);
        self.run(me, state, Some(coord), inner, o);
        decided
    }
}
