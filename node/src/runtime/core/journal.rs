//! A participant's journal, asked by `twopc journal` and the HTTP API's
//! `GET /journal/{name}`: answered here, by the runtime, from the store's
//! journal (`storage/journal.rs`), never by the actor. It holds only
//! durable entries (the store adds them after the fsync of the record that
//! carries them), so a reply never shows a change a crash could undo.

use super::Core;
use crate::runtime::storage::SharedJournal;
use crate::runtime::wire::{Payload, JOURNAL_PAGE};
use std::net::SocketAddr;
use tokio::time::Instant;

impl Core {
    /// The store's journal, read by journal requests (the shell hands it
    /// over at start; `None`: the store keeps none).
    pub fn set_journal(&mut self, journal: Option<SharedJournal>) {
        self.journal = journal;
    }

    /// Answers a journal request: at most `limit` (and [`JOURNAL_PAGE`])
    /// entries from `from`; `None` at a node that keeps no journal.
    pub(super) fn on_journal(
        &mut self,
        _now: Instant,
        to: SocketAddr,
        nonce: u64,
        from: u64,
        limit: u32,
    ) {
        let limit = limit.clamp(1, JOURNAL_PAGE) as usize;
        let page = self.journal.as_ref().map(|j| {
            j.lock()
                .unwrap_or_else(|p| p.into_inner())
                .page(from, limit)
        });
        let _ = self.queue_payload(to, &Payload::JournalReply { nonce, page }, None, 0);
    }
}
