//! A participant's journal: the ordered list of the committed changes it
//! applied (a purchase's hold taken, a credit added), each with its
//! resulting level, kept for a bounded retention. On disk it is derived
//! again from the log's records and kept in segment files
//! (`journal_files.rs`). A shop's accounting
//! reconciles against it: replayed from the initial levels it gives the
//! levels now (`twopc journal`, `GET /journal/{name}`).
//!
//! It is the node's record of what its participant applied, not protocol
//! state: the model knows nothing of it. [`derive`] reads it off the
//! difference between the last state written and the new one (a
//! transaction newly `finished` as committed, and what it consumed: a hold
//! in `holds`, or a credit in `credits`, since a finished record does not
//! say which). The writer derives each record's entries when it writes the
//! record, and the replay derives them again from the same two states: the
//! record that makes a level change durable is what makes its entry
//! durable, so a crash leaves both or neither, and the journal replays to
//! the levels after any crash.
//!
//! Positions count from 1, one per entry, and never repeat: a log record's
//! entries take the next positions in order, a snapshot keeps the position
//! of its first retained entry. Only the last `retention` entries are kept
//! (a ring: dropping the oldest is O(1)), so its memory and the work per
//! commit do not grow with age. Compaction moves the entries the log will
//! no longer hold to a segment file; a snapshot written before segments
//! carries its retained entries itself, and one written before the journal
//! existed reads as an empty journal starting at position 1.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use twopc_model::{Amount, Key, PartStorage, RequestId, TxnId};

/// Entries a participant keeps unless the cluster file says otherwise
/// (`journal_retention`).
pub const DEFAULT_JOURNAL_RETENTION: usize = 100_000;

/// What a committed change did. Appended variants only (bincode).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    /// A purchase's hold, taken at commit: the level went down.
    Hold,
    /// A credit of a transaction at this participant alone (a top-up at
    /// the wallet, a restock at the order service), added at commit: the
    /// level went up.
    Credit,
    /// A refund's credit (money back at the wallet, stock back at the
    /// order service), added at commit: the level went up. Told from a
    /// [`ChangeKind::Credit`] by its transaction's parties: a refund
    /// credits both participants in one transaction, a top-up or a
    /// restock only one (see [`derive`]).
    Refund,
}

impl ChangeKind {
    /// Its name in JSON and text: `hold` or `credit` (a refund's is a
    /// credit too; its operation says `refund`).
    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::Hold => "hold",
            ChangeKind::Credit | ChangeKind::Refund => "credit",
        }
    }

    /// Whether the level went up.
    pub fn credits(self) -> bool {
        match self {
            ChangeKind::Hold => false,
            ChangeKind::Credit | ChangeKind::Refund => true,
        }
    }
}

/// One committed change, as the participant applied it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Hold or credit.
    pub kind: ChangeKind,
    /// The client's request (purchase, top-up or restock id).
    pub req: RequestId,
    /// The transaction that committed it.
    pub txn: TxnId,
    /// The account or sku.
    pub key: Key,
    /// How much (taken for a hold, added for a credit).
    pub amount: Amount,
    /// The key's level right after it.
    pub level: Amount,
}

impl Change {
    /// The amount signed: negative for a hold, positive for a credit.
    pub fn signed(&self) -> i128 {
        match self.kind.credits() {
            false => -(self.amount as i128),
            true => self.amount as i128,
        }
    }
}

/// The committed changes from `old` to `new`: every transaction newly
/// finished as committed, in transaction order, a hold if `old` held it,
/// a credit if `old` had it as a pending credit: a refund's if that credit's
/// transaction has more than one participant (its `parties`, which the
/// coordinator sends with every credit's prepare: a top-up or a restock
/// touches one participant, a refund both). A duplicate commit (already
/// finished) and an abort give none. Levels run from `old`'s, so several
/// commits on one key in one record each get the level right after them.
/// Costs what changed (the maps are persistent: `OrdMap::diff` skips shared
/// subtrees), never the history.
pub fn derive(old: &PartStorage, new: &PartStorage) -> Vec<Change> {
    use imbl::ordmap::DiffItem;
    let mut out = Vec::new();
    let mut running: Vec<(Key, Amount)> = Vec::new();
    for item in old.finished.diff(&new.finished) {
        let (txn, done) = match item {
            DiffItem::Add(txn, done) => (txn, done),
            // A finished record changed or removed (the floor settled it)
            // applies nothing.
            DiffItem::Update { .. } | DiffItem::Remove(..) => continue,
        };
        if !done.committed {
            continue;
        }
        let (kind, req, op) = if let Some(h) = old.holds.get(txn) {
            (ChangeKind::Hold, h.req.clone(), h.op.clone())
        } else if let Some(c) = old.credits.get(txn) {
            let kind = match c.parties.len() > 1 {
                true => ChangeKind::Refund,
                false => ChangeKind::Credit,
            };
            (kind, c.req.clone(), c.op.clone())
        } else {
            // Prepared and committed within one record: impossible for a
            // correct coordinator (a vote leaves only after its prepare is
            // durable, and the commit comes after the vote). Told from the
            // levels, so that the journal still adds up.
            let (Some(req), Some(op)) = (done.req.clone(), done.op.clone()) else {
                continue;
            };
            let was = old.levels.get(&op.key).copied().unwrap_or(0);
            let now = new.levels.get(&op.key).copied().unwrap_or(0);
            let kind = if now >= was {
                ChangeKind::Credit
            } else {
                ChangeKind::Hold
            };
            tracing::warn!(%txn, key = %op.key, "journal: a commit with no prepare before it in storage; its kind is told from the level");
            (kind, req, op)
        };
        let slot = match running.iter().position(|(k, _)| *k == op.key) {
            Some(i) => i,
            None => {
                let level = old.levels.get(&op.key).copied().unwrap_or(0);
                running.push((op.key.clone(), level));
                running.len() - 1
            }
        };
        let level = &mut running[slot].1;
        *level = match kind.credits() {
            false => level.saturating_sub(op.amount),
            true => level.saturating_add(op.amount),
        };
        out.push(Change {
            kind,
            req,
            txn: *txn,
            key: op.key,
            amount: op.amount,
            level: *level,
        });
    }
    out
}

/// The retained entries and where they start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// The position of `entries[0]` (the next position if it is empty).
    first: u64,
    /// The retained entries, oldest first.
    entries: VecDeque<Change>,
    /// How many entries are kept (not written: a setting of the node).
    #[serde(skip, default = "default_retention")]
    retention: usize,
}

fn default_retention() -> usize {
    DEFAULT_JOURNAL_RETENTION
}

impl Default for Journal {
    fn default() -> Self {
        Journal {
            first: 1,
            entries: VecDeque::new(),
            retention: DEFAULT_JOURNAL_RETENTION,
        }
    }
}

/// One page of a journal, read from a position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// The position of the first retained entry (older ones were dropped).
    pub first: u64,
    /// The position of `entries[0]`: the one asked for, or `first` if that
    /// was dropped already (then `truncated`).
    pub start: u64,
    /// The position the next entry will take (one past the last).
    pub end: u64,
    /// Whether the position asked for was dropped already.
    pub truncated: bool,
    /// The entries from `start`, at most the page asked for.
    pub entries: Vec<Change>,
}

impl Page {
    /// The position to read next: one past the last entry of this page.
    pub fn next(&self) -> u64 {
        self.start + self.entries.len() as u64
    }
}

impl Journal {
    /// An empty journal keeping `retention` entries (at least 1).
    pub fn new(retention: usize) -> Journal {
        Journal {
            retention: retention.max(1),
            ..Journal::default()
        }
    }

    /// An empty journal whose next entry takes position `at` (a snapshot's
    /// journal record: the entries before `at` are in segments,
    /// `journal_files.rs`).
    pub fn empty_at(at: u64) -> Journal {
        Journal {
            first: at.max(1),
            ..Journal::default()
        }
    }

    /// The journal of `entries`, the first at position `first`, keeping
    /// them all.
    pub fn from_entries(first: u64, entries: Vec<Change>) -> Journal {
        Journal {
            first: first.max(1),
            entries: entries.into(),
            retention: usize::MAX,
        }
    }

    /// The retained entries from position `from` on (all retained ones if
    /// `from` was dropped).
    pub fn entries_from(&self, from: u64) -> Vec<Change> {
        let skip = from.saturating_sub(self.first) as usize;
        self.entries
            .range(skip.min(self.entries.len())..)
            .cloned()
            .collect()
    }

    /// Keeps only the last `retention` entries from now on (at least 1).
    pub fn set_retention(&mut self, retention: usize) {
        self.retention = retention.max(1);
        self.trim();
    }

    /// Appends `changes` at the next positions, dropping the oldest beyond
    /// the retention.
    pub fn extend(&mut self, changes: impl IntoIterator<Item = Change>) {
        self.entries.extend(changes);
        self.trim();
    }

    fn trim(&mut self) {
        while self.entries.len() > self.retention {
            self.entries.pop_front();
            self.first += 1;
        }
    }

    /// The position of the first retained entry.
    pub fn first(&self) -> u64 {
        self.first
    }

    /// The position the next entry will take.
    pub fn end(&self) -> u64 {
        self.first + self.entries.len() as u64
    }

    /// How many entries are retained.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is retained.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The newest entries on `key`, newest first, with their positions: at
    /// most `n` of them, looked for among the newest `scan` entries only (so
    /// that the cost is bounded whatever the journal's length; an older
    /// change of `key` is not found).
    pub fn last_of(&self, key: &str, n: usize, scan: usize) -> Vec<(u64, Change)> {
        let newest = self.entries.iter().enumerate().rev().take(scan);
        newest
            .filter(|(_, c)| c.key == key)
            .take(n)
            .map(|(i, c)| (self.first + i as u64, c.clone()))
            .collect()
    }

    /// At most `limit` entries from position `from` (O(limit): the ring is
    /// indexed).
    pub fn page(&self, from: u64, limit: usize) -> Page {
        let truncated = from < self.first;
        let start = from.max(self.first).min(self.end());
        let skip = (start - self.first) as usize;
        Page {
            first: self.first,
            start,
            end: self.end(),
            truncated,
            entries: self.entries.range(skip..).take(limit).cloned().collect(),
        }
    }
}

/// The journal as the store writes it and the runtime reads it (one task
/// does both; the lock is never contended).
pub type SharedJournal = Arc<Mutex<Journal>>;

#[cfg(test)]
#[path = "journal_tests.rs"]
pub(super) mod tests;
