//! The client: issues its purchases one after another and retries each until
//! it learns the outcome.

use crate::msg::*;
use crate::{Node, Storage};
use serde::{Deserialize, Serialize};
use stateright::actor::{Id, Out};
use std::borrow::Cow;

/// A client's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Client {
    /// The coordinator to ask.
    pub coordinator: Id,
    /// This client's identity in request ids.
    pub id: ClientId,
    /// The purchases to make, in order; the i-th has request number i + 1.
    pub purchases: Vec<Purchase>,
}

/// The client's state, all of it durable: the outcomes it has seen.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClientState {
    /// The outcomes seen so far, one per finished purchase, in order.
    pub seen: Vec<Outcome>,
}

impl Client {
    /// The request id of the `index`-th purchase.
    pub fn req(&self, index: usize) -> RequestId {
        RequestId {
            client: self.id,
            seq: index as u64 + 1,
        }
    }

    /// Whether every purchase has an outcome.
    pub fn is_done(&self, state: &ClientState) -> bool {
        state.seen.len() >= self.purchases.len()
    }

    fn send_current(&self, state: &ClientState, o: &mut Out<Node>) {
        let index = state.seen.len();
        if let Some(purchase) = self.purchases.get(index) {
            let req = self.req(index);
            let purchase = purchase.clone();
            o.send(self.coordinator, Msg::Purchase { req, purchase });
            o.set_timer(Timer::Retry, crate::timeouts::RETRY);
        }
    }

    /// Start or restart: (re)send the first purchase without an outcome.
    pub fn on_start(&self, storage: Option<&ClientState>, o: &mut Out<Node>) -> ClientState {
        let state = storage.cloned().unwrap_or_default();
        self.send_current(&state, o);
        state
    }

    /// Handle one message: only the outcome of the current request matters.
    pub fn on_msg(&self, state: &mut Cow<ClientState>, src: Id, msg: Msg, o: &mut Out<Node>) {
        let Msg::Outcome(outcome) = msg else {
            return; // Not for clients: ignored deliberately.
        };
        if src != self.coordinator || outcome.req != self.req(state.seen.len()) {
            return; // A duplicate of an outcome already seen, or not ours.
        }
        let state = state.to_mut();
        state.seen.push(outcome);
        o.save(Storage::Client(state.clone()));
        if self.is_done(state) {
            o.cancel_timer(Timer::Retry);
        } else {
            self.send_current(state, o);
        }
    }

    /// Handle a timer: resend the current request.
    pub fn on_timeout(&self, state: &mut Cow<ClientState>, timer: &Timer, o: &mut Out<Node>) {
        match timer {
            Timer::Retry => self.send_current(state, o),
            // Other roles' timers are never set by a client.
            Timer::Votes(_) | Timer::Resend(_) | Timer::Query(_) => {}
        }
    }
}
