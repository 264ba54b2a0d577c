//! A key request, answered by the core from the participant's state: a
//! known key with a hold, an unknown key, a node that is no participant, a
//! key too long and an unsolicited reply (both counted and dropped).

use super::tests::*;
use super::*;
use crate::runtime::admin::{HoldView, KeyView, RejectReason};
use crate::runtime::wire::MAX_NAME;

const CLIENT: &str = "127.0.0.1:9000";

/// Hands `core` a datagram from the client; the instant it did.
pub(super) fn from_client(core: &mut Core, bytes: &[u8]) -> Instant {
    let now = Instant::now();
    let from = addr(CLIENT);
    core.handle(now, Event::Datagram { from, bytes });
    now
}

/// Asks `core` about `key`; the reply, if one is queued.
fn ask(core: &mut Core, key: &str) -> Option<Option<KeyView>> {
    let bytes = datagram(&Payload::KeyRequest {
        nonce: 7,
        key: key.into(),
    });
    let now = from_client(core, &bytes);
    let ready = core.ready(now);
    let replies: Vec<_> = (ready.sends_after_sync.iter())
        .filter(|o| matches!(o, Outgoing::Reply { .. }))
        .collect();
    match replies.as_slice() {
        [] => None,
        [reply] => match codec().decode(reply.datagram().unwrap()) {
            Ok(Payload::KeyReply { nonce: 7, view }) => Some(view),
            other => panic!("a key reply: {other:?}"),
        },
        more => panic!("one reply: {more:?}"),
    }
}

#[test]
fn a_known_key_shows_its_level_its_holds_and_what_is_available() {
    let mut core = wallet(10);
    from_coordinator(&mut core, prepare(1)); // holds 1 of alice
    let _ = core.ready(Instant::now());
    let view = ask(&mut core, "alice")
        .expect("answered")
        .expect("a participant");
    assert_eq!(
        view,
        KeyView {
            node: "wallet".into(),
            key: "alice".into(),
            level: Some(10),
            held: 1,
            available: 9,
            holds: vec![HoldView {
                txn: "1.1".into(),
                req: "1#1".into(),
                key: "alice".into(),
                amount: 1,
            }],
            holds_total: 1,
        }
    );
    // The level is committed only: the hold changed it nothing.
    from_coordinator(&mut core, prepare(2));
    let _ = core.ready(Instant::now());
    let view = ask(&mut core, "alice").unwrap().unwrap();
    assert_eq!((view.level, view.held, view.available), (Some(10), 2, 8));
    assert_eq!((view.holds.len(), view.holds_total), (2, 2));
    assert_eq!(core.counters().msgs_handled, 2, "asking is no message");
}

#[test]
fn an_unknown_key_has_no_level() {
    let mut core = wallet(10);
    let view = ask(&mut core, "bob").unwrap().unwrap();
    assert_eq!(
        (view.level, view.held, view.available, view.holds_total),
        (None, 0, 0, 0)
    );
    assert_eq!(view.key, "bob");
}

#[test]
fn a_node_that_is_no_participant_answers_none() {
    let mut core = coordinator(ME, "127.0.0.1:7003");
    let now = Instant::now();
    core.handle(now, Event::Start(None));
    let _ = core.ready(now);
    assert_eq!(ask(&mut core, "alice"), Some(None));
}

#[test]
fn a_key_too_long_and_an_unsolicited_reply_are_counted_and_dropped() {
    let mut core = wallet(10);
    let before = core.state().clone();
    assert_eq!(
        ask(&mut core, &"x".repeat(MAX_NAME))
            .unwrap()
            .unwrap()
            .level,
        None
    );
    assert_eq!(ask(&mut core, &"x".repeat(MAX_NAME + 1)), None);
    let reply = datagram(&Payload::KeyReply {
        nonce: 1,
        view: None,
    });
    let now = from_client(&mut core, &reply);
    assert_eq!(core.ready(now), Ready::default());
    assert_eq!(core.state(), &before);
    assert_eq!(
        core.counters().rejected,
        [(RejectReason::Undecodable, 2)].into()
    );
}
