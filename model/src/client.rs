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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    fn client() -> Client {
        let purchase = Purchase {
            user: "alice".into(),
            sku: "widget".into(),
            qty: 1,
            price: 6,
        };
        Client {
            coordinator: Id::from(0),
            id: 9,
            purchases: vec![purchase; 2],
        }
    }

    fn outcome(seq: u64) -> Outcome {
        Outcome {
            req: req(seq),
            txn: Some(txn(seq)),
            verdict: Verdict::Committed,
        }
    }

    #[test]
    fn start_sends_the_first_purchase_with_a_retry_timer() {
        let mut o = Out::new();
        client().on_start(None, &mut o);
        assert_eq!(
            cmds(&o),
            expect(|o| {
                let purchase = client().purchases[0].clone();
                o.send(
                    Id::from(0),
                    Msg::Purchase {
                        req: req(1),
                        purchase,
                    },
                );
                o.set_timer(Timer::Retry, crate::timeouts::RETRY);
            })
        );
    }

    #[test]
    fn an_outcome_is_saved_then_the_next_purchase_goes_out() {
        let state = client().on_start(None, &mut Out::new());
        let mut cow = Cow::Borrowed(&state);
        let mut o = Out::new();
        client().on_msg(&mut cow, Id::from(0), Msg::Outcome(outcome(1)), &mut o);
        let next = cow.into_owned();
        assert_eq!(next.seen, vec![outcome(1)]);
        assert_eq!(
            cmds(&o),
            expect(|o| {
                o.save(Storage::Client(next.clone()));
                let purchase = client().purchases[1].clone();
                o.send(
                    Id::from(0),
                    Msg::Purchase {
                        req: req(2),
                        purchase,
                    },
                );
                o.set_timer(Timer::Retry, crate::timeouts::RETRY);
            })
        );
        // A duplicate of the first outcome changes nothing.
        let mut cow = Cow::Borrowed(&next);
        let mut o = Out::new();
        client().on_msg(&mut cow, Id::from(0), Msg::Outcome(outcome(1)), &mut o);
        assert!(matches!(cow, Cow::Borrowed(_)) && o.is_empty());
    }

    #[test]
    fn the_last_outcome_stops_the_retries() {
        let state = ClientState {
            seen: vec![outcome(1)],
        };
        let mut cow = Cow::Borrowed(&state);
        let mut o = Out::new();
        client().on_msg(&mut cow, Id::from(0), Msg::Outcome(outcome(2)), &mut o);
        let done = cow.into_owned();
        assert!(client().is_done(&done));
        assert_eq!(
            cmds(&o),
            expect(|o| {
                o.save(Storage::Client(done.clone()));
                o.cancel_timer(Timer::Retry);
            })
        );
    }
}
