//! The log-and-snapshot store of one claimed data directory: append, sync,
//! compact. Opening it repairs what a crash may leave behind (a torn tail,
//! a half-made snapshot or log, logs of older generations) — only after the
//! directory was claimed and replayed.

use super::delta::{diff, Delta};
use super::dir::{io_err, sync_dir, DataDir, Identity};
use super::faulty::DiskFaults;
use super::fs::{Fs, FsFile, RealFs};
use super::journal::{derive, Journal, SharedJournal, DEFAULT_JOURNAL_RETENTION};
use super::journal_files;
use super::position::Heard;
use super::prealloc;
use super::record::{encode_record, log_header, snapshot};
use super::replay::{log_path, replay_in, Replayed};
use super::synced::Marker;
use super::{Store, StoreStats};
use crate::runtime::error::Result;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use twopc_model::Storage;

/// Default floor for compaction: the log is not compacted below this size.
pub const COMPACT_MIN: u64 = 4 << 20;

/// The synced-length marker is written after every log sync but
/// `fdatasync`ed only after every this many (and at compaction): see the
/// storage essay, "Lost data is not a torn tail".
pub const MARKER_SYNC_EVERY: u64 = 64;

/// The log-and-snapshot store of one data directory.
#[derive(Debug)]
pub struct LogStore {
    dir: DataDir,
    log: Box<dyn FsFile>,
    log_path: PathBuf,
    /// The node named in the headers of the logs and snapshots it writes.
    owner: Option<Identity>,
    generation: u64,
    last: Option<Storage>,
    pending: Option<Storage>,
    buf: Vec<u8>,
    /// Bytes of the log's header and records: where the next record goes.
    log_len: u64,
    /// Whether the log is preallocated (`prealloc.rs`), written in place;
    /// else (a log of the format before, until the next compaction)
    /// appended to.
    preallocated: bool,
    /// Bytes of the log file, zeros past `log_len` (preallocated only).
    allocated: u64,
    marker: Marker,
    /// Marker writes since its last `fdatasync`.
    marker_unsynced: u64,
    snapshot_len: u64,
    compact_min: u64,
    stats: StoreStats,
    faults: DiskFaults,
    /// The history's position the snapshot folds in (`super::position`).
    base: u64,
    /// Complete records in the current log: durable ones, and those in
    /// `buf` once it is synced.
    records: u64,
    /// Records encoded into `buf`, not durable yet.
    buffered: u64,
    /// A participant's journal: its durable entries (`super::journal`).
    journal: SharedJournal,
    /// Entries of the records in `buf`, not durable yet.
    journal_buffered: Vec<super::journal::Change>,
    /// The position the next journal segment starts at: the entries
    /// before it are in segments (`super::journal_files`).
    segment_next: u64,
}

impl LogStore {
    /// Locks `dir` (creating it if needed), without an owner check, and
    /// opens the store in it. Returns it with the last durable state, if any.
    pub fn open(dir: &Path) -> Result<(LogStore, Option<Storage>)> {
        Self::open_with(dir, COMPACT_MIN)
    }

    /// [`LogStore::open`] with a chosen compaction floor (tests use a small one).
    pub fn open_with(dir: &Path, compact_min: u64) -> Result<(LogStore, Option<Storage>)> {
        Self::open_in(Arc::new(RealFs), dir, compact_min)
    }

    /// [`LogStore::open_with`] on the disk `fs`.
    pub fn open_in(
        fs: Arc<dyn Fs>,
        dir: &Path,
        compact_min: u64,
    ) -> Result<(LogStore, Option<Storage>)> {
        let dir = DataDir::lock_in(fs, dir)?;
        let replayed = replay_in(&**dir.fs(), dir.path())?;
        Self::open_replayed(dir, replayed, compact_min)
    }

    /// Opens the store in `dir`, claimed and replayed already: records the
    /// directory's owner if it is new, cuts a torn tail, discards what a
    /// crashed compaction left, and returns the store with the replayed
    /// state. Every write at start happens here. The node the directory's
    /// headers name must be its claimant, if it was claimed (checked by
    /// [`super::open_store`]); new headers name the claimant, or else keep
    /// naming the node the old ones named.
    pub fn open_replayed(
        mut dir: DataDir,
        replayed: Replayed,
        compact_min: u64,
    ) -> Result<(LogStore, Option<Storage>)> {
        let Replayed {
            generation,
            state,
            snapshot_len,
            log,
            synced,
            owner,
            base,
            position,
            mut journal,
            segment_next,
            stale_segments,
        } = replayed;
        journal.set_retention(DEFAULT_JOURNAL_RETENTION);
        dir.record_owner()?;
        let owner = dir.claimant().cloned().or(owner.map(|(o, _)| o));
        let fs = dir.fs().clone();
        let mut stats = dir.stats;
        let path = dir.path().to_path_buf();
        let tmp = path.join("snapshot.tmp");
        if fs.exists(&tmp) {
            // A compaction that crashed before its rename: the old snapshot
            // and log are intact and authoritative.
            fs.remove_file(&tmp).map_err(io_err(&tmp))?;
        }
        let log_path = log_path(&path, generation);
        let chunk = prealloc::chunk_for(compact_min);
        let (log_len, allocated, preallocated) = match log {
            Some(tail) => {
                // A torn tail is cut with the zeros after it: the space is
                // extended again before the next record.
                let allocated = match tail.torn {
                    Some(why) => {
                        cut_torn_tail(&*fs, &tail.path, tail.valid_len, &why, &mut stats)?;
                        tail.valid_len
                    }
                    None => tail.len,
                };
                (tail.valid_len, allocated, tail.preallocated)
            }
            None => {
                let (len, allocated) =
                    create_log(&*fs, &path, generation, owner.as_ref(), chunk, &mut stats)?;
                (len, allocated, true)
            }
        };
        // Logs of older generations are leftovers of a finished compaction.
        let mut removed = false;
        for name in fs.read_dir(&path).map_err(io_err(&path))? {
            let entry = path.join(&name);
            if name.starts_with("log.") && entry != log_path {
                fs.remove_file(&entry).map_err(io_err(&entry))?;
                removed = true;
            }
        }
        // Segments a crashed compaction left, and those past the retention.
        if journal_files::prune(&*fs, &path, journal.first(), &stale_segments)? {
            removed = true;
        }
        let (marker, created) = Marker::open(&*fs, &path, synced)?;
        if removed || created {
            sync_dir(&*fs, &path, &mut stats)?;
        }
        let log = match preallocated {
            true => fs.open_write(&log_path, false),
            false => fs.open_append(&log_path),
        };
        let log = log.map_err(io_err(&log_path))?;
        let store = LogStore {
            dir,
            log,
            log_path,
            owner,
            generation,
            last: state.clone(),
            pending: None,
            buf: Vec::new(),
            log_len,
            preallocated,
            allocated,
            marker,
            marker_unsynced: 0,
            snapshot_len,
            compact_min,
            stats,
            faults: DiskFaults::default(),
            base,
            records: position - base,
            buffered: 0,
            journal: std::sync::Arc::new(std::sync::Mutex::new(journal)),
            journal_buffered: Vec::new(),
            segment_next,
        };
        Ok((store, state))
    }

    /// Testing aid: the store with disk faults injected into its log.
    pub fn with_faults(mut self, faults: DiskFaults) -> Self {
        self.faults = faults;
        self
    }

    /// Keeps the last `retention` entries of the journal (at least 1; the
    /// default is [`DEFAULT_JOURNAL_RETENTION`]).
    pub fn with_journal_retention(self, retention: usize) -> Self {
        self.journal_mut().set_retention(retention);
        self
    }

    fn journal_mut(&self) -> std::sync::MutexGuard<'_, Journal> {
        // Poisoned only if a reader panicked while holding it: the journal
        // itself is never left half-changed (`extend` cannot panic).
        self.journal.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The history's position: every record ever synced to this
    /// directory's logs, compactions included (`super::position`).
    pub fn durable_position(&self) -> u64 {
        self.base + self.records
    }

    /// `twopc accept-rollback`: makes the history's position at least
    /// `at_least` (a compaction whose snapshot says so) and returns it.
    /// The state is not changed. Refused with nothing staged but unsynced.
    pub fn restamp(&mut self, at_least: u64) -> Result<u64> {
        self.sync()?;
        let base = at_least.max(self.durable_position());
        if self.last.is_some() {
            self.compact(base)?;
        }
        Ok(self.durable_position())
    }

    /// Replaces log and snapshot by a snapshot of the current state, which
    /// folds in a history of `base` records.
    fn compact(&mut self, base: u64) -> Result<()> {
        let Some(state) = &self.last else {
            return Ok(());
        };
        let generation = self.generation + 1;
        let fs = self.dir.fs().clone();
        let dir = self.dir.path().to_path_buf();
        // The entries the new log will not hold go to a segment first: the
        // snapshot that says they are there must never be durable before
        // them.
        let (first, end, entries) = {
            let journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
            let from = self.segment_next.max(journal.first());
            (journal.first(), journal.end(), journal.entries_from(from))
        };
        if !entries.is_empty() {
            let from = end - entries.len() as u64;
            let (bytes, fsyncs) = journal_files::write(&*fs, &dir, from, &entries)?;
            self.stats.bytes_written += bytes;
            self.stats.fsyncs += fsyncs;
        }
        self.segment_next = end;
        let bytes = snapshot(
            generation,
            base,
            self.owner.as_ref(),
            &Journal::empty_at(end),
            state,
        );
        let tmp = dir.join("snapshot.tmp");
        let mut f = fs.create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(&bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        drop(f);
        self.stats.fsyncs += 1;
        let snap = dir.join("snapshot");
        fs.rename(&tmp, &snap).map_err(io_err(&snap))?;
        sync_dir(&*fs, &dir, &mut self.stats)?;
        // From here the snapshot is the truth; the new log starts empty.
        let chunk = prealloc::chunk_for(self.compact_min);
        let (log_len, allocated) = create_log(
            &*fs,
            &dir,
            generation,
            self.owner.as_ref(),
            chunk,
            &mut self.stats,
        )?;
        let new_path = log_path(&dir, generation);
        let log = fs.open_write(&new_path, false).map_err(io_err(&new_path))?;
        // The marker moves to the new log, whose header is durable; until
        // it does, it names the old generation, which replay reads as
        // "nothing known" (see `replay::synced_len`).
        if self.marker.write(generation, log_len, true)? {
            self.stats.fsyncs += 1;
            self.marker_unsynced = 0;
        }
        let old = std::mem::replace(&mut self.log_path, new_path);
        fs.remove_file(&old).map_err(io_err(&old))?;
        // Segments whose every entry is past the retention (their removal
        // need not be durable: one that comes back is pruned again).
        journal_files::prune(&*fs, &dir, first, &[])?;
        self.log = log;
        self.generation = generation;
        self.base = base;
        self.records = 0;
        self.log_len = log_len;
        self.preallocated = true;
        self.allocated = allocated;
        self.snapshot_len = bytes.len() as u64;
        self.stats.bytes_written += bytes.len() as u64;
        self.stats.compactions += 1;
        Ok(())
    }
}

/// Cuts the torn tail of `path` after `valid_len`: the write never
/// completed, so its fsync never returned and nothing depending on it was
/// sent; the state before it is what every peer may have seen.
fn cut_torn_tail(
    fs: &dyn Fs,
    path: &Path,
    valid_len: u64,
    why: &str,
    stats: &mut StoreStats,
) -> Result<()> {
    tracing::warn!(
        file = %path.display(),
        offset = valid_len,
        "torn tail in storage log: {why}; this write never completed, so its fsync \
         never returned and nothing depending on it was sent: truncating it"
    );
    let f = fs.open_write(path, false).map_err(io_err(path))?;
    f.set_len(valid_len).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))?;
    stats.fsyncs += 1;
    Ok(())
}

/// Creates `DIR/log.<generation>` whole: header and zeros to a whole
/// `chunk` (`prealloc.rs`) to a temporary file, fsync, rename, fsync the
/// directory. Returns the header's length and the file's.
fn create_log(
    fs: &dyn Fs,
    dir: &Path,
    generation: u64,
    owner: Option<&Identity>,
    chunk: u64,
    stats: &mut StoreStats,
) -> Result<(u64, u64)> {
    let path = log_path(dir, generation);
    let tmp = dir.join(format!("log.{generation}.tmp"));
    let header = log_header(generation, owner);
    let len = header.len() as u64;
    let allocated = prealloc::extent(len, chunk);
    let mut f = fs.create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(&header).map_err(io_err(&tmp))?;
    prealloc::fill(&*f, len, allocated).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    stats.fsyncs += 1;
    fs.rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir(fs, dir, stats)?;
    stats.bytes_written += len;
    Ok((len, allocated))
}

impl Store for LogStore {
    fn stage(&mut self, storage: Storage) -> Result<()> {
        // Only the newest state of a batch matters: it includes every earlier
        // one, and nothing is sent before `sync`. So diffing waits for `sync`,
        // once per batch rather than once per `Save`.
        self.pending = Some(storage);
        Ok(())
    }

    fn needs_sync(&self) -> bool {
        self.pending.is_some() || !self.buf.is_empty()
    }

    fn sync(&mut self) -> Result<()> {
        if let Some(new) = self.pending.take() {
            let delta = match &self.last {
                None => Some(Delta::Full(new.clone())),
                Some(old) => diff(old, &new),
            };
            if let Some(delta) = delta {
                encode_record(&delta, &mut self.buf);
                self.buffered += 1;
                // The entries this record makes durable, derived as the
                // replay will derive them again (`super::journal_files`).
                if let (Some(Storage::Participant(old)), Storage::Participant(now)) =
                    (&self.last, &new)
                {
                    self.journal_buffered.extend(derive(old, now));
                }
            }
            self.last = Some(new);
        }
        if self.buf.is_empty() {
            return Ok(()); // Saved what was already durable: nothing to write.
        }
        // One write and one fdatasync for everything staged since the last
        // sync: that is the group commit. In a preallocated log the write
        // goes into zeros already durable, extended first if it would not
        // fit, so the fdatasync does not change the file's length.
        let path = &self.log_path;
        if self.preallocated {
            let need = self.log_len + self.buf.len() as u64;
            if need > self.allocated {
                let to = prealloc::extent(need, prealloc::chunk_for(self.compact_min));
                prealloc::fill(&*self.log, self.allocated, to).map_err(io_err(path))?;
                self.log.sync_all().map_err(io_err(path))?;
                self.stats.fsyncs += 1;
                self.allocated = to;
            }
            self.faults
                .write_all_at(&*self.log, &self.buf, self.log_len)
                .map_err(io_err(path))?;
        } else {
            self.faults
                .write_all(&mut *self.log, &self.buf)
                .map_err(io_err(path))?;
        }
        self.faults.sync_data(&*self.log).map_err(io_err(path))?;
        self.stats.fsyncs += 1;
        self.stats.bytes_written += self.buf.len() as u64;
        self.log_len += self.buf.len() as u64;
        self.buf.clear();
        self.records += std::mem::take(&mut self.buffered);
        // The entries are durable with the record that carries them: only
        // now may a reader see them.
        let entries = std::mem::take(&mut self.journal_buffered);
        self.journal_mut().extend(entries);
        // Only now, the log's bytes durable, may the marker say so: it never
        // claims more than the log holds. Not counted in `bytes_written`.
        let sync_marker = self.marker_unsynced + 1 >= MARKER_SYNC_EVERY;
        if self
            .marker
            .write(self.generation, self.log_len, sync_marker)?
        {
            if sync_marker {
                self.stats.fsyncs += 1;
                self.marker_unsynced = 0;
            } else {
                self.marker_unsynced += 1;
            }
        }
        if self.log_len >= self.snapshot_len.max(self.compact_min) {
            self.compact(self.durable_position())?;
        }
        Ok(())
    }

    fn stats(&self) -> StoreStats {
        self.stats
    }

    fn position(&self) -> Option<u64> {
        Some(self.durable_position())
    }

    fn journal(&self) -> Option<SharedJournal> {
        Some(self.journal.clone())
    }

    fn keep_heard(&mut self, heard: &Heard) -> Result<()> {
        heard.write(&**self.dir.fs(), self.dir.path())
    }

    fn record_heuristic(&mut self, line: &str) -> Result<()> {
        super::audit::append(&**self.dir.fs(), self.dir.path(), line)
    }
}
