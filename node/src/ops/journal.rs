//! A participant's journal, asked of the node that keeps it: the client
//! side of `twopc journal` and `GET /journal/{name}`, and the JSON both
//! write. The participant's runtime answers from its store
//! (`runtime/core/journal.rs`), a page of at most
//! [`crate::runtime::wire::JOURNAL_PAGE`] entries at a time.

pub use crate::ops::entry::{operation, EntryJson};
use crate::ops::views::exchange;
use crate::runtime::error::Result;
use crate::runtime::role::Role;
use crate::runtime::storage::Page;
use crate::runtime::wire::{Codec, Payload, JOURNAL_PAGE};
use serde::Serialize;
use std::net::SocketAddrV4;
use tokio::time::Instant;

/// What a node said when asked for a page of its journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PageAnswer {
    /// A page.
    Page(Page),
    /// The node keeps no journal (it is not a participant).
    NoJournal,
    /// No answer by the deadline.
    NoAnswer,
}

/// Asks the node at `addr` for at most `limit` entries (and a page) of its
/// journal from position `from`, again every 300 ms until it answers or
/// `deadline`.
pub async fn ask_page(
    addr: SocketAddrV4,
    codec: &Codec,
    from: u64,
    limit: u32,
    deadline: Instant,
) -> Result<PageAnswer> {
    let nonce: u64 = rand::random();
    let request = Payload::JournalRequest {
        nonce,
        from,
        limit: limit.min(JOURNAL_PAGE),
    };
    let answer = exchange(addr, codec, &request, deadline, |reply| match reply {
        Payload::JournalReply { nonce: m, page } if m == nonce => Some(page),
        _ => None,
    })
    .await?;
    Ok(match answer {
        Some(Some(page)) => PageAnswer::Page(page),
        Some(None) => PageAnswer::NoJournal,
        None => PageAnswer::NoAnswer,
    })
}

/// Entries read from a journal as JSON (`twopc journal --json`, one page of
/// `GET /journal/{name}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JournalJson {
    /// The node's name.
    pub node: String,
    /// The position of the first entry it still keeps.
    pub first: u64,
    /// The position asked for.
    pub from: u64,
    /// Whether `from` was dropped already (`entries` start at `first`).
    pub truncated: bool,
    /// The position to ask for next (one past the last entry listed).
    pub next: u64,
    /// The position the node's next entry will take.
    pub end: u64,
    /// The entries.
    pub entries: Vec<EntryJson>,
}

impl JournalJson {
    /// An empty listing of `node`'s journal asked from `from`, filled by
    /// [`JournalJson::add`].
    pub fn new(node: &str, from: u64) -> JournalJson {
        JournalJson {
            node: node.to_string(),
            first: 0,
            from,
            truncated: false,
            next: from,
            end: from,
            entries: Vec::new(),
        }
    }

    /// Adds `page` (the next one) of the participant of `role`.
    pub fn add(&mut self, role: Role, page: &Page) {
        if self.entries.is_empty() {
            self.first = page.first;
        }
        self.truncated |= page.truncated;
        self.end = page.end;
        self.next = page.next();
        let entries = page.entries.iter().enumerate();
        self.entries
            .extend(entries.map(|(i, c)| EntryJson::of(role, page.start + i as u64, c)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::storage::{Change, ChangeKind};
    use serde_json::json;
    use twopc_model::{RequestId, TxnId};

    #[test]
    fn entries_are_signed_and_named_by_role() {
        let hold = Change {
            kind: ChangeKind::Hold,
            req: RequestId::new("o-1"),
            txn: TxnId { epoch: 2, n: 5 },
            key: "alice".into(),
            amount: 4,
            level: 6,
        };
        let credit = Change {
            kind: ChangeKind::Credit,
            level: 10,
            ..hold.clone()
        };
        let page = Page {
            first: 3,
            start: 3,
            end: 5,
            truncated: true,
            entries: vec![hold, credit],
        };
        let mut j = JournalJson::new("wallet", 1);
        j.add(Role::Wallet, &page);
        assert_eq!(
            serde_json::to_value(&j).unwrap(),
            json!({"node": "wallet", "first": 3, "from": 1, "truncated": true, "next": 5,
                "end": 5, "entries": [
                {"position": 3, "kind": "hold", "operation": "purchase", "id": "o-1",
                 "txn": "2.5", "key": "alice", "amount": -4, "level": 6},
                {"position": 4, "kind": "credit", "operation": "topup", "id": "o-1",
                 "txn": "2.5", "key": "alice", "amount": 4, "level": 10}]})
        );
        assert_eq!(
            EntryJson::of(Role::Order, 4, &page.entries[1]).operation,
            "restock"
        );
        let refund = Change {
            kind: ChangeKind::Refund,
            ..page.entries[1].clone()
        };
        for role in [Role::Wallet, Role::Order] {
            let e = EntryJson::of(role, 5, &refund);
            assert_eq!((e.operation, e.kind, e.amount), ("refund", "credit", 4));
        }
        assert_eq!(
            j.entries[0].render(),
            "       3  purchase o-1        2.5      alice hold -4 -> 6"
        );
    }
}
