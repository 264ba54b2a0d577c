//! A key request, answered by the core from the participant's state: a
//! known key with a hold, an unknown key, a node that is no participant, a
//! key too long and an unsolicited reply (both counted and dropped).

use super::tests::*;
use super::*;
use crate::runtime::admin::{HoldView, KeyView, RejectReason};
use crate::runtime::wire::MAX_NAME;
use twopc_model::{Op, RequestId};

const CLIENT: &str = "127.0.0.1:9000";

/// Hands `core` a datagram from the client; the instant it did.
pub(super) fn from_client(core: &mut Core, bytes: &[u8]) -> Instant {
    let now = Instant::now();
    let from = addr(CLIENT);
    core.handle(now, Event::Datagram { from, bytes });
    now
}

/// Hands `core` an admin request from the client; the one reply it
/// queued, decoded, if it queued one.
pub(super) fn admin_reply(core: &mut Core, request: &Payload) -> Option<Payload> {
    let now = from_client(core, &datagram(request));
    let ready = core.ready(now);
    let replies: Vec<_> = (ready.sends_after_sync.iter())
        .filter(|o| matches!(o, Outgoing::Reply { .. }))
        .collect();
    match replies.as_slice() {
        [] => None,
        [reply] => Some(codec().decode(reply.datagram().unwrap()).expect("a reply")),
        more => panic!("one reply: {more:?}"),
    }
}

/// Asks `core` about `key`; the reply, if one is queued.
fn ask(core: &mut Core, key: &str) -> Option<Option<KeyView>> {
    let request = Payload::KeyRequest {
        nonce: 7,
        key: key.into(),
    };
    admin_reply(core, &request).map(|reply| match reply {
        Payload::KeyReply { nonce: 7, view } => view,
        other => panic!("a key reply: {other:?}"),
    })
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
            credited: 0,
            credits: vec![],
            credits_total: 0,
            price: None,
            repricing: vec![],
            repricing_total: 0,
            last: vec![],
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

/// A prepared top-up credited to `key` (`n`: the transaction).
fn prepare_credit(n: u64, key: &str, amount: u64) -> Msg {
    Msg::PrepareCredit {
        txn: txn(n),
        req: RequestId::new(format!("top-{n}")),
        op: Op {
            key: key.into(),
            amount,
        },
        floor: twopc_model::Floor::default(),
        parties: vec![id(ME)],
    }
}

/// A prepared credit is shown as credited, counted in neither the level
/// nor what is available; a key that exists only as a prepared credit is
/// still unknown (no level) and shows it.
#[test]
fn a_prepared_credit_shows_as_credited_and_creates_nothing_yet() {
    let mut core = wallet(10);
    from_coordinator(&mut core, prepare_credit(1, "alice", 5));
    from_coordinator(&mut core, prepare_credit(2, "carol", 7));
    let _ = core.ready(Instant::now());
    let view = ask(&mut core, "alice").unwrap().unwrap();
    assert_eq!(
        (
            view.level,
            view.available,
            view.credited,
            view.credits_total
        ),
        (Some(10), 10, 5, 1)
    );
    assert_eq!(
        view.credits,
        vec![HoldView {
            txn: "1.1".into(),
            req: "top-1".into(),
            key: "alice".into(),
            amount: 5,
        }]
    );
    let carol = ask(&mut core, "carol").unwrap().unwrap();
    assert_eq!(
        (carol.level, carol.credited, carol.credits_total),
        (None, 7, 1)
    );
}

/// The view lists the key's last committed changes from the store's
/// journal, newest first, with their positions (none for another key).
#[test]
fn a_key_lists_its_last_changes_from_the_journal() {
    use crate::runtime::storage::{Change, ChangeKind, Journal};
    let mut core = wallet(10);
    let change = |n: u64, key: &str, kind| Change {
        kind,
        req: RequestId::new(format!("r-{n}")),
        txn: twopc_model::TxnId { epoch: 1, n },
        key: key.into(),
        amount: n,
        level: 10 + n,
    };
    let mut journal = Journal::new(100);
    journal.extend([
        change(1, "alice", ChangeKind::Hold),
        change(2, "bob", ChangeKind::Credit),
        change(3, "alice", ChangeKind::Refund),
    ]);
    core.set_journal(Some(std::sync::Arc::new(std::sync::Mutex::new(journal))));
    let view = ask(&mut core, "alice").unwrap().unwrap();
    assert_eq!(
        view.last,
        vec![
            (3, change(3, "alice", ChangeKind::Refund)),
            (1, change(1, "alice", ChangeKind::Hold))
        ]
    );
    let carol = ask(&mut core, "carol").unwrap().unwrap();
    assert_eq!(carol.last, vec![]);
}
