//! Durable storage of an actor's `Storage`: an append-only, checksummed log of
//! deltas plus a periodically compacted snapshot, in one data directory.
//!
//! | file | what |
//! | --- | --- |
//! | `record.rs` | the bytes of records, log headers and snapshots (pure) |
//! | `delta.rs` | a record's contents: how one state differs from the last |
//! | `dir.rs` | the directory's lock and owner (`LOCK`, `NODE`), checked first |
//! | `replay.rs` | the one replay (read-only), for a node's start and `inspect` |
//! | `log.rs` | [`LogStore`]: repair at open, append, sync, compaction |
//! | `faulty.rs` | disk faults injected into the log (testing aids) |
//!
//! ## Files
//!
//! ```text
//! DIR/LOCK          flock'ed for the life of the process: one node per directory
//! DIR/NODE          the node (name and role) the directory belongs to
//! DIR/snapshot      "TPCSNAP2", generation (u64 LE), one record: the full Storage
//! DIR/log.<gen>     "TPCLOG02", generation (u64 LE), then records since that
//!                   snapshot, each a delta of the previous state
//! DIR/snapshot.tmp  a compaction in progress (deleted at start)
//! DIR/log.<gen>.tmp a log being created (deleted at start)
//! ```
//!
//! A log is created whole (header written to `.tmp`, fsync, rename, fsync
//! the directory), so a log that is empty, shorter than its header, or
//! headed by the wrong generation was damaged after the fact: the node
//! refuses it rather than start empty as if it were new. So it does when a
//! snapshot is missing but a later generation's log exists, or a snapshot's
//! log is missing with no crash of a compaction to explain it.
//!
//! A record is `0xA7, len (u32 LE), crc32 of payload (u32 LE), payload`, the
//! payload a bincode `Delta` (`delta.rs`). No snapshot means generation 0 and
//! a log whose first record is a full state.
//!
//! ## Cost per save
//!
//! `Save` hands over the actor's whole durable state (every balance, every
//! finished transaction). Writing it whole would cost O(accounts + history)
//! bytes per save. Instead `diff` compares it with the last state written,
//! map entry by map entry, and writes only the entries that changed or went
//! away: a prepare at a wallet of a million accounts writes one hold, a few
//! dozen bytes. When the log has grown past the size of the last snapshot
//! (and at least `compact_min` bytes) it is compacted: the full state goes to
//! `snapshot.tmp`, fsync, rename over `snapshot`, fsync the directory, then a
//! fresh empty log. Snapshots are thus written at most once per as many bytes
//! of deltas as they hold, so their amortised cost per save is at most the
//! delta's own: bytes written per save do not grow with accounts or history.
//! (Diffing itself costs CPU linear in the size of the maps; the model's
//! `Save` already clones them, so this does not change the order of cost.)
//!
//! ## Durability and the torn-tail rule
//!
//! [`Store::stage`] only remembers the newest state; [`Store::sync`] diffs it
//! against the last state written, appends the record in one `write` and
//! `fdatasync`s the log. The runtime calls `sync` before any message emitted
//! after a `Save` leaves (decided in `Core::ready`, `core/mod.rs`), so
//! **nothing that depends on a record is ever sent before the record is
//! durable**. At start the log is replayed (`replay.rs`), then repaired
//! (`log.rs`):
//!
//! - A final record that is *incomplete* (the file ends inside its header or
//!   payload), or a tail of zero bytes (a filesystem extended the file but the
//!   data never landed), is the trace of a crash during a write whose fsync
//!   never returned. Nothing that depended on it was sent, so it is cut off
//!   (logged at warn, with the file and offset) and the node starts from the
//!   state before it, which is exactly what every peer may have seen.
//! - A *complete* record whose checksum or contents are wrong, anywhere, is
//!   corruption: the node refuses to start, naming the file and offset.

mod delta;
mod dir;
mod faulty;
mod log;
mod record;
mod replay;
mod synced;

#[cfg(test)]
mod tests;

pub use dir::DataDir;
pub use faulty::DiskFaults;
pub use log::{LogStore, COMPACT_MIN};
pub use replay::{as_coordinator, as_participant, inspect, repairs, replay, LogTail, Replayed};
pub use synced::Synced;

use crate::error::Result;
use twopc_model::Storage;

/// What storage has done since the node started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// fsyncs of files and directories.
    pub fsyncs: u64,
    /// Bytes written (log records and snapshots).
    pub bytes_written: u64,
    /// Snapshots written by compaction.
    pub compactions: u64,
}

/// Where the runtime keeps an actor's `Storage`.
///
/// The runtime calls `stage` with the newest `Save` of each batch (it holds
/// every earlier one: a `Save` is the whole durable state), and `sync`
/// before letting any later message leave. `needs_sync` tells it whether
/// anything staged is not durable yet.
pub trait Store: Send {
    /// Queue `storage` to become durable at the next `sync`.
    fn stage(&mut self, storage: Storage) -> Result<()>;
    /// Whether something staged is not durable yet.
    fn needs_sync(&self) -> bool;
    /// Make everything staged durable (fsync). An error is fatal to the node.
    fn sync(&mut self) -> Result<()>;
    /// Counters.
    fn stats(&self) -> StoreStats;
}

/// A store that keeps nothing across processes: for `twopc purchase`, whose
/// client forgets everything when it exits (a new invocation is a new client).
#[derive(Debug, Default)]
pub struct MemStore {
    last: Option<Storage>,
    stats: StoreStats,
}

impl Store for MemStore {
    fn stage(&mut self, storage: Storage) -> Result<()> {
        self.last = Some(storage);
        Ok(())
    }
    fn needs_sync(&self) -> bool {
        false
    }
    fn sync(&mut self) -> Result<()> {
        Ok(())
    }
    fn stats(&self) -> StoreStats {
        self.stats
    }
}
