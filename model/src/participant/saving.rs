//! What a participant saves when, and what leaves after: its commit under
//! one write (applied in memory, acknowledged after the next save), a
//! fence's answer, and the save that releases the acks waiting for it.

use super::{finished, PartState, Participant};
use crate::msg::*;
use crate::{Node, Storage};
use stateright::actor::{Id, Out};
use std::borrow::Cow;

impl Participant {
    /// A coordinator gave up waiting for our vote on `txn` (one write):
    /// a yes already saved stays a yes; otherwise `txn` is refused for
    /// good, durably, before the answer leaves.
    pub(super) fn on_fence(
        &self,
        state: &mut Cow<PartState>,
        src: Id,
        txn: TxnId,
        o: &mut Out<Node>,
    ) {
        let ballot = if state.data.prepared(&txn) {
            Ballot::Yes
        } else if let Some(done) = state.data.finished.get(&txn) {
            match done.committed {
                true => Ballot::Yes,
                false => Ballot::No(Refusal::Fenced),
            }
        } else if txn < state.data.floor {
            // Settled and forgotten, or below a fence: never prepared here
            // from now on (a commit would have left it finished or acked).
            Ballot::No(Refusal::Fenced)
        } else {
            let data = &mut state.to_mut().data;
            data.finished.insert(txn, finished(None, false));
            save(state, o);
            Ballot::No(Refusal::Fenced)
        };
        o.send(src, Msg::Vote { txn, ballot });
    }

    /// `txn`'s commit is applied (in memory): make it durable, then
    /// acknowledge it, for the coordinator forgets the transaction on the
    /// ack. Under one write the save waits for the next one that happens
    /// anyway (a prepare's; at the latest the flush timer's), so that the
    /// next purchase's prepare does not queue behind this commit's fsync:
    /// a crash before it loses the commit, and the hold, still in storage,
    /// asks for it again.
    pub(super) fn committed(
        &self,
        state: &mut Cow<PartState>,
        src: Id,
        txn: TxnId,
        o: &mut Out<Node>,
    ) {
        if self.one_write {
            o.cancel_timer(Timer::Query(txn));
            state.to_mut().acks_after_save.insert(txn, src);
            o.set_timer(Timer::Flush, crate::timeouts::FLUSH);
        } else {
            save(state, o);
            o.cancel_timer(Timer::Query(txn));
            o.send(src, Msg::Ack { txn });
        }
    }
}

/// Save the whole durable state; the acks of the commits it makes durable
/// leave after it (persist before send).
pub(super) fn save(state: &mut Cow<PartState>, o: &mut Out<Node>) {
    save_then(state, o, None)
}

/// [`save`], sending `first` (after the save) before the acks.
pub(super) fn save_then(state: &mut Cow<PartState>, o: &mut Out<Node>, first: Option<(Id, Msg)>) {
    o.save(Storage::Participant(state.data.clone()));
    if let Some((to, msg)) = first {
        o.send(to, msg);
    }
    if !state.acks_after_save.is_empty() {
        for (txn, to) in std::mem::take(&mut state.to_mut().acks_after_save) {
            o.send(to, Msg::Ack { txn });
        }
        o.cancel_timer(Timer::Flush);
    }
}
