//! Durable storage of an actor's `Storage`: an append-only, checksummed log of
//! deltas plus a periodically compacted snapshot, in one data directory.
//!
//! | file | what |
//! | --- | --- |
//! | `record.rs` | the bytes of records, log headers and snapshots (pure) |
//! | `delta/` | a record's contents: how one state differs from the last |
//! | `fs.rs` | [`Fs`]: every file operation storage does; [`RealFs`] is `std::fs` |
//! | `simfs/` | [`SimFs`]: a disk in memory that loses unsynced writes on a power cut |
//! | `dir.rs` | the directory's lock and owner (`LOCK`, `NODE`), checked first |
//! | `replay.rs` | the one replay (read-only), for a node's start and `inspect` |
//! | `open.rs` | [`open_store`]: claim, replay, check the owner, repair, open |
//! | `synced.rs` | the synced-length marker: how much of the log is known durable |
//! | `position.rs` | the history's position, and the coordinator's `heard` sidecar |
//! | `journal.rs` | a participant's journal of committed changes, derived per record |
//! | `journal_files.rs` | the journal's segment files, written at compaction |
//! | `stamp.rs` | the cluster a directory belongs to (`CLUSTER`) |
//! | `mode.rs` | a coordinator directory that ran one write (`ONE_WRITE`) |
//! | `log.rs` | [`LogStore`]: repair at open, append, sync, compaction |
//! | `prealloc.rs` | a log's space, written with zeros ahead of its records |
//! | `tail.rs` | where a preallocated log's records end: zeros, torn or corrupt |
//! | `faulty.rs` | disk faults injected into the log (testing aids) |
//!
//! All of it does its file I/O through an `Arc<dyn Fs>`, so the same code
//! runs on the real disk and, in the simulator and `sim_tests.rs`, on a
//! [`SimFs`] whose power can be cut.
//!
//! ## Files
//!
//! ```text
//! DIR/LOCK          flock'ed for the life of the process: one node per directory
//! DIR/NODE          the node (name and role) the directory belongs to
//! DIR/CLUSTER       the cluster it belongs to (`stamp.rs`)
//! DIR/ONE_WRITE     a coordinator's, once it ran one write (`mode.rs`)
//! DIR/heard         a coordinator's positions heard from participants
//!                   (`position.rs`; written now and then, off the commit path)
//! DIR/snapshot      "TPCSNAP5", generation (u64 LE), the history position
//!                   it folds in (u64 LE), one record: the owner
//!                   (name and role), one record: where a participant's
//!                   journal resumes (`journal.rs`), one record: the full Storage
//! DIR/journal.<pos> a participant's journal entries from position pos,
//!                   written whole at a compaction (`journal_files.rs`)
//! DIR/log.<gen>     "TPCLOG04", generation (u64 LE), one record: the owner,
//!                   then records since that snapshot, each a delta of the
//!                   previous state, then zeros to the end of the file
//!                   (preallocated: `prealloc.rs`)
//! DIR/synced        the synced-length marker: generation + bytes of its log
//!                   known durable (two alternating checksummed slots)
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
//! payload a bincode `Delta` (`delta/`). No snapshot means generation 0 and
//! a log whose first record is a full state.
//!
//! ## Whose directory it is
//!
//! `NODE` is one file a person can delete; the owner is written again into
//! the header of every log and snapshot, so it survives that. [`open_store`]
//! checks both: `NODE` before anything is read, the headers after the
//! replay (another name is refused naming the header's file and both
//! names), and writes `NODE` again when it is missing and the headers agree
//! with the node starting. Directories of the previous format (`TPCLOG02`,
//! `TPCSNAP2`, no owner in the headers) are read as they are, with only
//! `NODE` to go by, until the next compaction writes the new format.
//!
//! ## Cost per save
//!
//! `Save` hands over the actor's whole durable state (every balance, every
//! finished transaction not yet settled by the coordinator's floor). Writing
//! it whole would cost O(accounts) bytes per save. Instead `diff` compares it
//! with the last state written and writes only the entries that changed or
//! went away: a prepare at a wallet of a million accounts writes one hold, a few
//! dozen bytes. When the log has grown past the size of the last snapshot
//! (and at least `compact_min` bytes) it is compacted: the full state goes to
//! `snapshot.tmp`, fsync, rename over `snapshot`, fsync the directory, then a
//! fresh empty log. Snapshots are thus written at most once per as many bytes
//! of deltas as they hold, so their amortised cost per save is at most the
//! delta's own: bytes written per save do not grow with accounts or history.
//! Diffing costs what changed, too: the model's maps are persistent
//! (`imbl::OrdMap`), the last state written and the new one share every
//! subtree the step did not touch, and `OrdMap::diff` skips shared subtrees.
//!
//! ## Durability and the torn-tail rule
//!
//! [`Store::stage`] only remembers the newest state; [`Store::sync`] diffs it
//! against the last state written, writes the record in one `pwrite` into
//! the log's preallocated zeros (`prealloc.rs`: extended by whole chunks,
//! fsynced, before a record that would not fit, so a record's `fdatasync`
//! never changes the file's length) and `fdatasync`s the log. The runtime calls `sync` before any message emitted
//! after a `Save` leaves (decided in `Core::ready`, `core/batch.rs`), so
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
//!
//! That is the rule of a log appended to (`TPCLOG03` and before, kept until
//! the next compaction). In a preallocated log (`TPCLOG04`) zeros where the
//! next record would start are the end of the records, not a torn tail; a
//! write into the zeros that never finished may have landed in any part,
//! holes included, so the bytes from a record that fails to the last
//! non-zero byte are a torn tail (cut) if no valid record starts in them,
//! and corruption (refused) if one does (`tail.rs`). A damaged *last*
//! record thus reads as torn there; the marker below still refuses it if it
//! was acknowledged and the marker on disk says so.
//!
//! ## Lost data is not a torn tail
//!
//! A torn tail can only ever be the last, unsynced batch. Without more, a
//! log cut in the middle (three purchases' records, 267 bytes, cut to 136)
//! would look like a torn tail too, and the node would start having
//! silently forgotten acknowledged purchases. So after every `fdatasync` of
//! the log, `sync` records its length in `DIR/synced` (`synced.rs`): one
//! `pwrite` of a 32-byte slot (sequence, generation, length, crc32). Order
//! is what makes it safe: the log is written and synced **first**, so the
//! marker never claims more than is durable; a crash between the two leaves
//! the previous, smaller length, which is still true. The slots alternate, so
//! a crash while writing the marker tears at most the slot being written and
//! the other still holds the previous length. (A slot that never reaches the
//! disk leaves an older one, whose length is true too.)
//!
//! At start `replay` compares: fewer bytes of whole records than the synced
//! length (the file cut inside a record or at a record boundary, zeros or an
//! incomplete record before it, the log missing) is lost acknowledged data,
//! refused with [`crate::runtime::error::Error::StorageLost`], naming the log, the
//! marker and the lengths, before anything on disk is changed. A torn tail
//! beyond the synced length is cut as above. Compaction moves the marker to
//! the new log (generation + header length) right after creating it; a crash
//! before that leaves a marker of an older generation, which says nothing
//! about the new log (created whole, so it has no torn middle to hide) and
//! counts as 0. A marker of a later generation than the snapshot means the
//! snapshot was lost: refused. No marker file (a new directory, or one
//! written before the marker existed) or no valid slot (a crash during its
//! very first write) counts as 0: today's behaviour, until the next sync.
//!
//! Cost per batch: one 32-byte `pwrite` of the marker; its `fdatasync` is
//! coalesced, done only every [`MARKER_SYNC_EVERY`] (64) batches and at each
//! compaction. That is safe because an unsynced slot only ever claims bytes
//! already durable in the log. What it gives up: after a power loss the
//! marker on disk may lag the log by up to 63 batches, whose loss would then
//! look like a torn tail again; after a process crash, a kill or a clean
//! stop the newest slot is in the page cache and is what the next start
//! reads. Measured with `twopc bench --purchases 1000 --clients 1,32` on
//! this machine (2 shared cores, /tmp on a virtio disk), two runs each:
//! before 1416 and 1578 purchases/s with 1 client, 5358 and 5563 with 32;
//! with the marker 1417 and 1580, 4933 and 9927 (the 32-client figure
//! swings that much between runs of either). The first version synced the
//! marker after every batch: 2 fsyncs per batch instead of 1, 898 and 966
//! purchases/s with 1 client. Marker syncs are counted in
//! `StoreStats::fsyncs`; marker bytes are not in `bytes_written` (log
//! records and snapshots). With the log preallocated, its length says
//! nothing of its records: the marker is exactly the durable "last synced
//! record" that makes a tail of zeros before it lost data rather than the
//! end (a copy of the preallocated file taken earlier, a disk rolled back).
//! A rename of a fresh marker file would cost a directory fsync per write.
//!
//! The marker's `pwrite` stays before the sends: moving it after them (a
//! hook the shell and the simulator would call once the batch's datagrams
//! left) keeps its meaning (it still claims only bytes already durable),
//! but saves one 32-byte write to the page cache, a few µs
//! (`examples/fsync_cost.rs`), against a marker that after a kill between
//! the sends and the write lags the log by one more batch (docs/prealloc.md).
//!
//! ## On a simulated disk
//!
//! `kill -9` keeps every write the kernel accepted; a power cut does not.
//! [`SimFs`] is a disk without a battery: unsynced file contents and
//! directory entries not yet fsynced are lost at [`SimFs::power_cut`],
//! except a seeded torn prefix of what was appended and, of each unsynced
//! `pwrite` (a record written into a preallocated log's zeros), none, all
//! or a seeded choice of its 64-byte pieces; [`SimFs::cut_power_after`] cuts it in the middle of
//! a sync, a compaction or a repair at open. `sim_tests.rs` shows, over
//! hundreds of seeds, that a cut anywhere leaves a directory that opens to
//! a state between the last completed sync and the last staged one, that
//! nothing synced is lost, and that a log whose fsyncs are skipped
//! (`DiskFaults::skip_fsync`) loses acknowledged data that the synced-length
//! marker then refuses at open.

mod audit;
mod delta;
mod dir;
mod faulty;
mod fs;
mod journal;
mod journal_files;
mod log;
mod mode;
mod open;
mod position;
mod prealloc;
mod record;
mod replay;
mod simfs;
mod stamp;
mod synced;
mod tail;

#[cfg(test)]
mod owner_tests;
#[cfg(test)]
mod prealloc_tests;
#[cfg(test)]
mod prices_tests;
#[cfg(test)]
mod refunds_tests;
#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod tests;

pub use delta::CoordDelta;
pub use dir::{DataDir, Identity};
pub use faulty::DiskFaults;
pub use fs::{Fs, FsFile, LockGuard, RealFs};
pub use journal::{
    derive, Change, ChangeKind, Journal, Page, SharedJournal, DEFAULT_JOURNAL_RETENTION,
};
pub use log::{LogStore, COMPACT_MIN, MARKER_SYNC_EVERY};
pub use mode::check_one_write;
pub use open::open_store;
pub use position::{heard_path, Heard};
pub use replay::{
    as_coordinator, as_participant, inspect, inspect_in, repairs, repairs_in, replay, replay_in,
    snapshot_in, LogTail, Replayed,
};
pub use simfs::{SimFs, SimStats};
pub use stamp::{check_cluster, cluster_of, stamp_cluster};
pub use synced::Synced;

use crate::runtime::error::Result;
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
    /// Whether `sync` is a durable write (an fsync): what a message waits
    /// for it counts as a durable write waited for (`core/waited.rs`).
    fn writes_durably(&self) -> bool {
        true
    }
    /// The history's durable position (`position.rs`), if this store
    /// keeps one: it is what a participant reports to its coordinator.
    fn position(&self) -> Option<u64> {
        None
    }
    /// A participant's journal of committed changes (`journal.rs`), if
    /// this store keeps one.
    fn journal(&self) -> Option<SharedJournal> {
        None
    }
    /// Writes a coordinator's table of positions heard from participants
    /// beside the store (`position.rs`), if this store has a place for it.
    fn keep_heard(&mut self, _heard: &Heard) -> Result<()> {
        Ok(())
    }
    /// Appends an operator's heuristic decision to `DIR/heuristic.log`
    /// (`audit.rs`), durably, if this store has a place for it.
    fn record_heuristic(&mut self, _line: &str) -> Result<()> {
        Ok(())
    }
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
    fn writes_durably(&self) -> bool {
        false
    }
}
