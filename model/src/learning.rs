//! How a coordinator that starts without a log learns its epoch from the
//! participants (see *Epochs are learned* in the crate docs).

use crate::coordinator::{CoordState, Coordinator};
use crate::msg::*;
use crate::outcomes::TICKET_GENERATION_BITS;
use crate::{Node, Storage};
use serde::{Deserialize, Serialize};
use stateright::actor::{Id, Out};
use std::borrow::Cow;

/// Whether a coordinator knows its epoch is above every epoch the
/// participants have seen (see *Epochs are learned* in the crate docs).
/// Volatile: every start asks again.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Learning {
    /// Asking every participant: the answers heard so far.
    Asking(Map<Id, u64>),
    /// Every participant answered, and the epoch is above what they saw:
    /// attempts may start.
    Learned,
}

impl Coordinator {
    /// A participant's answer to `AskEpoch`.
    pub(crate) fn on_epoch(
        &self,
        state: &mut Cow<CoordState>,
        src: Id,
        asked: u64,
        highest: u64,
        o: &mut Out<Node>,
    ) {
        if !self.participants().contains(&src) || asked != state.epoch {
            // Not a participant of this cluster, or an answer to another
            // incarnation's question: ignored deliberately.
            return;
        }
        let Learning::Asking(heard) = &state.learning else {
            return; // Learned already: a duplicate, or a late answer.
        };
        if heard.contains_key(&src) {
            return;
        }
        let state = state.to_mut();
        let Learning::Asking(heard) = &mut state.learning else {
            unreachable!("matched above")
        };
        heard.insert(src, highest);
        if heard.len() < self.participants().len() {
            return;
        }
        let learned = heard.values().copied().max().unwrap_or(0);
        state.learning = Learning::Learned;
        o.cancel_timer(Timer::Learn);
        if learned >= state.epoch {
            // The participants have seen an epoch this log never reached:
            // it is not the cluster's latest (an empty directory, a restored
            // backup). Move past it, durably, before anything is prepared.
            self.move_past(state, learned);
            o.save(Storage::Coordinator(state.storage()));
        }
    }

    /// Take the epoch after `learned`, with a new generation of tickets:
    /// every ticket this log handed out before is older than what it now
    /// treats as forgotten, and so is every ticket a lost log handed out
    /// (each generation starts at its epoch times 2^32, above every ticket
    /// of an earlier one, which counted from a lower epoch).
    fn move_past(&self, state: &mut CoordState, learned: u64) {
        state.epoch = learned + 1;
        let generation = state.epoch << TICKET_GENERATION_BITS;
        state.outcomes.next = state.outcomes.next.max(generation);
        state.outcomes.forgotten_below = state.outcomes.forgotten_below.max(generation);
    }
}
