//! The client: makes its requests one after another and retries each until
//! it learns the outcome.
//!
//! A request is a purchase under an id the caller chose, made in one of three
//! ways ([`Mode`]). A *new* purchase first asks with no ticket; the
//! coordinator, not knowing the id, answers with a ticket, which the client
//! saves and then sends with every re-send of the purchase, so that the
//! purchase starts at most once however the network, the coordinator or the
//! client fail. A *retry* re-sends a purchase that a caller may have made
//! before and forgotten (a fresh incarnation): it never carries a ticket, so
//! it can only learn the first attempt's outcome, or that the id is unknown.
//! A *lookup* only asks.

use crate::msg::*;
use crate::{Node, Storage};
use serde::{Deserialize, Serialize};
use stateright::actor::{Id, Out};
use std::borrow::Cow;

/// How a client makes a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mode {
    /// A purchase this caller makes: it may start it (with a ticket).
    New,
    /// A purchase a caller may have made before and forgotten: it learns the
    /// outcome of the first attempt, or that the id is unknown; never starts.
    Retry,
    /// Only asks what became of the id.
    Lookup,
}

/// One request of a client.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Request {
    /// The id the caller chose.
    pub req: RequestId,
    /// What to do: a purchase, a top-up, a restock. (Written as the bare
    /// purchase when it is one, as before operations existed.)
    #[serde(rename = "purchase", with = "purchase_or_operation")]
    pub op: Operation,
    /// How.
    pub mode: Mode,
}

/// A request's operation as the bare purchase when it is one (so client
/// configurations written before operations existed read the same), and
/// tagged otherwise.
mod purchase_or_operation {
    use crate::msg::{Operation, Purchase};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Purchase(Purchase),
        Other(Operation),
    }

    pub fn serialize<S: Serializer>(op: &Operation, s: S) -> Result<S::Ok, S::Error> {
        match op {
            Operation::Purchase(p) => Repr::Purchase(p.clone()),
            other => Repr::Other(other.clone()),
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Operation, D::Error> {
        Ok(match Repr::deserialize(d)? {
            Repr::Purchase(p) => Operation::Purchase(p),
            Repr::Other(op) => op,
        })
    }
}

/// A client's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Client {
    /// The coordinator to ask, or every replica of a replicated coordinator
    /// (each request goes to all of them; whichever leads answers).
    pub coordinators: Vec<Id>,
    /// This client's identity (only names it; ids are per request).
    pub id: ClientId,
    /// The requests to make, in order.
    pub requests: Vec<Request>,
    /// Keep the latest ticket for each next *new* purchase instead of
    /// asking for one (a round trip) before each: a ticket only has to be
    /// older than the id's first decision, and one handed out before the
    /// previous request's outcome is older than anything about the next
    /// id. It is never carried by a retry or a lookup. A kept ticket goes
    /// stale once the coordinator has forgotten outcomes since it (every
    /// `retention` outcomes, or a new generation); the purchase is then
    /// answered "unknown", not started, as a stale ticket always is. Off
    /// in configurations written before it.
    #[serde(default)]
    pub keep_ticket: bool,
}

/// The client's state, all of it durable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClientState {
    /// The outcomes seen so far, one per finished request, in order.
    pub seen: Vec<Outcome>,
    /// The ticket of the current (new) purchase, once the coordinator gave
    /// one. Saved before the purchase goes out with it: a restarted client
    /// re-sends the same ticket, never a newer one.
    pub ticket: Option<Ticket>,
}

impl Client {
    /// The request id of the `index`-th request.
    pub fn req(&self, index: usize) -> &RequestId {
        &self.requests[index].req
    }

    /// Whether every request has an outcome.
    pub fn is_done(&self, state: &ClientState) -> bool {
        state.seen.len() >= self.requests.len()
    }

    /// Whether delivering `msg` from `src` changes nothing and sends
    /// nothing, now or in any later state (so a model checker may drop it):
    /// anything from a stranger, and everything once the client has every
    /// outcome (what it has seen only grows). Paired with
    /// [`Client::on_msg`] by its tests.
    pub fn ignores(&self, state: &ClientState, src: Id, _msg: &Msg) -> bool {
        !self.coordinators.contains(&src) || self.is_done(state)
    }

    fn send_current(&self, state: &ClientState, o: &mut Out<Node>) {
        let Some(r) = self.requests.get(state.seen.len()) else {
            return;
        };
        let req = r.req.clone();
        let msg = match r.mode {
            Mode::Lookup => Msg::Lookup { req },
            // A purchase goes as `Purchase` (its bytes of before), any
            // other operation as `Request`.
            Mode::New | Mode::Retry => match &r.op {
                Operation::Purchase(p) => Msg::Purchase {
                    req,
                    purchase: p.clone(),
                    ticket: state.ticket,
                },
                op => Msg::Request {
                    req,
                    op: op.clone(),
                    ticket: state.ticket,
                },
            },
        };
        o.broadcast(&self.coordinators, &msg);
        o.set_timer(Timer::Retry, crate::timeouts::RETRY);
    }

    /// Start or restart: (re)send the first request without an outcome.
    pub fn on_start(&self, storage: Option<&ClientState>, o: &mut Out<Node>) -> ClientState {
        let state = storage.cloned().unwrap_or_default();
        self.send_current(&state, o);
        state
    }

    /// Handle one message: only answers about the current request matter.
    pub fn on_msg(&self, state: &mut Cow<ClientState>, src: Id, msg: Msg, o: &mut Out<Node>) {
        let Some(current) = self.requests.get(state.seen.len()) else {
            return; // Done: everything else is a duplicate.
        };
        if !self.coordinators.contains(&src) {
            return; // Not from our coordinator: ignored deliberately.
        }
        let outcome = match msg {
            Msg::Outcome(outcome) if outcome.req == current.req => outcome,
            Msg::Status {
                req,
                status: Status::Unknown { ticket },
            } if req == current.req => match (current.mode, state.ticket) {
                // The coordinator does not know the id: make the purchase,
                // with this ticket from now on (saved first).
                (Mode::New, None) => {
                    let state = state.to_mut();
                    state.ticket = Some(ticket);
                    o.save(Storage::Client(state.clone()));
                    return self.send_current(state, o);
                }
                // A late answer to a re-send made before we had a ticket:
                // our ticketed purchase speaks for itself.
                (Mode::New, Some(_)) => return,
                // A retry or a lookup of an id the coordinator does not
                // know: that is the answer.
                (Mode::Retry | Mode::Lookup, _) => Outcome {
                    req,
                    txn: None,
                    verdict: Verdict::Unknown,
                },
            },
            // In progress (a lookup asks again), a duplicate of an answer
            // already filed, or not ours.
            _ => return,
        };
        let state = state.to_mut();
        state.seen.push(outcome);
        let next = self.requests.get(state.seen.len());
        if !(self.keep_ticket && next.is_some_and(|r| r.mode == Mode::New)) {
            state.ticket = None; // A ticket for this purchase only.
        }
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
            Timer::Votes(_)
            | Timer::Resend(_)
            | Timer::Query(_)
            | Timer::Learn
            | Timer::Replica
            | Timer::Flush => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    fn purchase() -> Purchase {
        Purchase {
            user: "alice".into(),
            sku: "widget".into(),
            qty: 1,
            price: 6,
        }
    }

    fn client(mode: Mode) -> Client {
        let request = |seq| Request {
            req: req(seq),
            op: purchase().into(),
            mode,
        };
        Client {
            coordinators: vec![Id::from(0)],
            id: 9,
            requests: vec![request(1), request(2)],
            keep_ticket: false,
        }
    }

    fn outcome(seq: u64) -> Outcome {
        Outcome {
            req: req(seq),
            txn: Some(txn(seq)),
            verdict: Verdict::Committed,
        }
    }

    fn deliver(c: &Client, state: &ClientState, msg: Msg) -> (ClientState, Out<Node>) {
        let mut cow = Cow::Borrowed(state);
        let mut o = Out::new();
        c.on_msg(&mut cow, Id::from(0), msg, &mut o);
        (cow.into_owned(), o)
    }

    fn sends_purchase(o: &mut Out<Node>, seq: u64, ticket: Option<Ticket>) {
        let purchase = purchase();
        let req = req(seq);
        o.send(
            Id::from(0),
            Msg::Purchase {
                req,
                purchase,
                ticket,
            },
        );
        o.set_timer(Timer::Retry, crate::timeouts::RETRY);
    }

    fn unknown(seq: u64, ticket: Ticket) -> Msg {
        Msg::Status {
            req: req(seq),
            status: Status::Unknown { ticket },
        }
    }

    /// Every state the client passes through on its way to done (with and
    /// without a ticket), every answer it could get: what `ignores` says is
    /// ignored changes nothing when delivered and sends nothing.
    #[test]
    fn what_a_client_ignores_changes_nothing_and_sends_nothing() {
        let c = client(Mode::New);
        let fresh = c.on_start(None, &mut Out::new());
        let ticketed = deliver(&c, &fresh, unknown(1, 4)).0;
        let one = deliver(&c, &ticketed, Msg::Outcome(outcome(1))).0;
        let done = deliver(&c, &one, Msg::Outcome(outcome(2))).0;
        assert!(c.is_done(&done) && !c.is_done(&one));
        let mut msgs = vec![];
        for seq in 1..=3 {
            msgs.push(Msg::Outcome(outcome(seq)));
            msgs.push(unknown(seq, 5));
        }
        let mut ignored = 0;
        for s in [&fresh, &ticketed, &one, &done] {
            for src in [Id::from(0), Id::from(7)] {
                for m in msgs.iter().filter(|m| c.ignores(s, src, m)) {
                    let mut cow = Cow::Borrowed(s);
                    let mut o = Out::new();
                    c.on_msg(&mut cow, src, m.clone(), &mut o);
                    assert_eq!(&*cow, s, "{m:?}");
                    assert!(o.is_empty(), "{m:?}: {o:?}");
                    ignored += 1;
                }
            }
        }
        // Everything from the stranger, everything once done.
        assert_eq!(ignored, 4 * msgs.len() + msgs.len());
    }

    #[test]
    fn a_new_purchase_asks_without_a_ticket_then_saves_the_one_it_gets() {
        let c = client(Mode::New);
        let mut o = Out::new();
        let state = c.on_start(None, &mut o);
        assert_eq!(cmds(&o), expect(|o| sends_purchase(o, 1, None)));
        let (with_ticket, out) = deliver(&c, &state, unknown(1, 4));
        assert_eq!(with_ticket.ticket, Some(4));
        assert_eq!(
            cmds(&out),
            expect(|o| {
                o.save(Storage::Client(with_ticket.clone()));
                sends_purchase(o, 1, Some(4));
            })
        );
        // A later "unknown" (an answer to an early re-send) changes nothing:
        // the ticket is never replaced.
        let (same, out) = deliver(&c, &with_ticket, unknown(1, 7));
        assert_eq!(same, with_ticket);
        assert!(out.is_empty());
        // A restart re-sends the saved ticket.
        let mut o = Out::new();
        c.on_start(Some(&with_ticket), &mut o);
        assert_eq!(cmds(&o), expect(|o| sends_purchase(o, 1, Some(4))));
    }

    #[test]
    fn an_outcome_is_saved_then_the_next_purchase_goes_out() {
        let c = client(Mode::New);
        let state = ClientState {
            seen: vec![],
            ticket: Some(4),
        };
        let (next, out) = deliver(&c, &state, Msg::Outcome(outcome(1)));
        assert_eq!(next.seen, vec![outcome(1)]);
        assert_eq!(next.ticket, None, "a ticket is for one purchase only");
        assert_eq!(
            cmds(&out),
            expect(|o| {
                o.save(Storage::Client(next.clone()));
                sends_purchase(o, 2, None);
            })
        );
        // A duplicate of the first outcome changes nothing.
        let (same, out) = deliver(&c, &next, Msg::Outcome(outcome(1)));
        assert_eq!(same, next);
        assert!(out.is_empty());
    }

    #[test]
    fn the_last_outcome_stops_the_retries() {
        let c = client(Mode::New);
        let state = ClientState {
            seen: vec![outcome(1)],
            ticket: None,
        };
        let (done, out) = deliver(&c, &state, Msg::Outcome(outcome(2)));
        assert!(c.is_done(&done));
        assert_eq!(
            cmds(&out),
            expect(|o| {
                o.save(Storage::Client(done.clone()));
                o.cancel_timer(Timer::Retry);
            })
        );
    }

    #[test]
    fn a_retry_never_takes_a_ticket_and_files_unknown_as_the_answer() {
        let c = client(Mode::Retry);
        let (next, _) = deliver(&c, &ClientState::default(), unknown(1, 4));
        assert_eq!(next.ticket, None);
        assert_eq!(
            next.seen,
            vec![Outcome {
                req: req(1),
                txn: None,
                verdict: Verdict::Unknown,
            }]
        );
    }

    #[test]
    fn a_lookup_asks_until_there_is_an_answer() {
        let c = client(Mode::Lookup);
        let mut o = Out::new();
        let state = c.on_start(None, &mut o);
        assert_eq!(
            cmds(&o),
            expect(|o| {
                o.send(Id::from(0), Msg::Lookup { req: req(1) });
                o.set_timer(Timer::Retry, crate::timeouts::RETRY);
            })
        );
        let in_progress = Msg::Status {
            req: req(1),
            status: Status::InProgress,
        };
        let (same, out) = deliver(&c, &state, in_progress);
        assert_eq!(same, state);
        assert!(out.is_empty());
        let (next, _) = deliver(&c, &state, Msg::Outcome(outcome(1)));
        assert_eq!(next.seen, vec![outcome(1)]);
    }

    #[test]
    fn a_kept_ticket_goes_with_the_next_new_purchase_and_never_with_a_retry() {
        let mut c = client(Mode::New);
        c.keep_ticket = true;
        c.requests.push(Request {
            mode: Mode::Retry,
            ..c.requests[0].clone()
        });
        let state = ClientState {
            seen: vec![],
            ticket: Some(4),
        };
        // The first outcome: the ticket is kept, saved, and the next new
        // purchase goes out with it at once.
        let (next, out) = deliver(&c, &state, Msg::Outcome(outcome(1)));
        assert_eq!(next.ticket, Some(4));
        assert_eq!(
            cmds(&out),
            expect(|o| {
                o.save(Storage::Client(next.clone()));
                sends_purchase(o, 2, Some(4));
            })
        );
        // The second: the next request is a retry, which never carries one.
        let (last, out) = deliver(&c, &next, Msg::Outcome(outcome(2)));
        assert_eq!(last.ticket, None);
        assert_eq!(
            cmds(&out),
            expect(|o| {
                o.save(Storage::Client(last.clone()));
                sends_purchase(o, 1, None);
            })
        );
        // Without keeping, the next new purchase asks again.
        c.keep_ticket = false;
        let (next, _) = deliver(&c, &state, Msg::Outcome(outcome(1)));
        assert_eq!(next.ticket, None);
    }
}
