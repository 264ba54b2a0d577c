//! A journal request, answered by the core from the store's journal: a
//! page from a position (clamped to the page size, the dropped start
//! marked), a node without a journal answers none, and an unsolicited
//! reply is counted and dropped.

use super::keys_tests::{admin_reply, from_client};
use super::tests::*;
use super::*;
use crate::runtime::admin::RejectReason;
use crate::runtime::storage::{Change, ChangeKind, Journal, Page};
use crate::runtime::wire::JOURNAL_PAGE;

/// Asks `core` for its journal; the reply's page, if a reply is queued.
fn ask(core: &mut Core, from: u64, limit: u32) -> Option<Option<Page>> {
    let request = Payload::JournalRequest {
        nonce: 9,
        from,
        limit,
    };
    admin_reply(core, &request).map(|reply| match reply {
        Payload::JournalReply { nonce: 9, page } => page,
        other => panic!("a journal reply: {other:?}"),
    })
}

fn entry(n: u64) -> Change {
    Change {
        kind: ChangeKind::Hold,
        req: twopc_model::RequestId::new(format!("o-{n}")),
        txn: txn(n),
        key: "alice".into(),
        amount: 1,
        level: 1000 - n,
    }
}

#[test]
fn a_page_from_a_position_clamped_and_marked_when_dropped() {
    let mut core = wallet(10);
    let mut journal = Journal::new(150);
    journal.extend((0..200).map(entry));
    core.set_journal(Some(std::sync::Arc::new(std::sync::Mutex::new(journal))));
    let page = ask(&mut core, 1, 5).unwrap().expect("a journal");
    assert!(page.truncated);
    assert_eq!((page.first, page.start, page.end), (51, 51, 201));
    assert_eq!(page.entries, (50..55).map(entry).collect::<Vec<_>>());
    let page = ask(&mut core, 60, u32::MAX).unwrap().unwrap();
    assert!(!page.truncated);
    assert_eq!(page.entries.len(), JOURNAL_PAGE as usize);
    assert_eq!((page.start, page.next()), (60, 160));
    let page = ask(&mut core, 500, 10).unwrap().unwrap();
    assert_eq!((page.start, page.entries.len()), (201, 0));
    assert_eq!(core.counters().msgs_handled, 0, "asking is no message");
}

#[test]
fn a_node_without_a_journal_answers_none_and_a_reply_is_dropped() {
    let mut core = wallet(10);
    assert_eq!(ask(&mut core, 1, 10), Some(None));
    let before = core.state().clone();
    let reply = datagram(&Payload::JournalReply {
        nonce: 1,
        page: None,
    });
    let now = from_client(&mut core, &reply);
    assert_eq!(core.ready(now), Ready::default());
    assert_eq!(core.state(), &before);
    assert_eq!(
        core.counters().rejected,
        [(RejectReason::Undecodable, 1)].into()
    );
}
