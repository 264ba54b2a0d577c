//! Durable storage of an actor's `Storage`: an append-only, checksummed log of
//! deltas plus a periodically compacted snapshot, in one data directory.
//!
//! ## Files
//!
//! ```text
//! DIR/LOCK          flock'ed for the life of the process: one node per directory
//! DIR/snapshot      "TPCSNAP1", generation (u64 LE), one record: the full Storage
//! DIR/log.<gen>     "TPCLOG01", generation (u64 LE), then records since that
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
//! payload a bincode [`Delta`]. No snapshot means generation 0 and a log whose
//! first record is a full state.
//!
//! ## Cost per save
//!
//! `Save` hands over the actor's whole durable state (every balance, every
//! finished transaction). Writing it whole would cost O(accounts + history)
//! bytes per save. Instead [`diff`] compares it with the last state written,
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
//! `fdatasync`s the log. The runtime calls
//! `sync` before any message emitted after a `Save` leaves (see
//! `runtime.rs`), so **nothing that depends on a record is ever sent before
//! the record is durable**. At start the log is replayed:
//!
//! - A final record that is *incomplete* (the file ends inside its header or
//!   payload), or a tail of zero bytes (a filesystem extended the file but the
//!   data never landed), is the trace of a crash during a write whose fsync
//!   never returned. Nothing that depended on it was sent, so it is cut off
//!   (logged at warn, with the file and offset) and the node starts from the
//!   state before it, which is exactly what every peer may have seen.
//! - A *complete* record whose checksum or contents are wrong, anywhere, is
//!   corruption: the node refuses to start, naming the file and offset.

pub use crate::delta::{apply, diff, Delta};
use crate::error::{Error, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use twopc_model::{ClientState, CoordStorage, PartStorage, Storage};

const REC_MAGIC: u8 = 0xA7;
const REC_HEADER: usize = 9;
const MAX_RECORD: usize = 1 << 30;
const SNAP_MAGIC: &[u8; 8] = b"TPCSNAP1";
const LOG_MAGIC: &[u8; 8] = b"TPCLOG01";
/// Bytes of a log file's header: magic and generation.
pub const LOG_HEADER: usize = 16;
/// Default floor for compaction: the log is not compacted below this size.
pub const COMPACT_MIN: u64 = 4 << 20;

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
/// The runtime calls `stage` for each `Save` in emitted order, and `sync`
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

fn bincode_opts() -> impl bincode::Options + Copy {
    bincode::DefaultOptions::new()
}

/// Appends the record holding `delta` to `buf`.
fn encode_record(delta: &Delta, buf: &mut Vec<u8>) {
    use bincode::Options;
    let payload = bincode_opts()
        .serialize(delta)
        .expect("storage types always serialize");
    buf.push(REC_MAGIC);
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    buf.extend_from_slice(&payload);
}

/// The result of scanning a log file.
#[derive(Debug)]
pub struct Scan {
    /// The complete, valid records.
    pub deltas: Vec<Delta>,
    /// Bytes of the file they occupy.
    pub valid_len: u64,
    /// Why the tail after `valid_len` is torn, if it is.
    pub torn: Option<String>,
}

/// Reads records from `bytes`; corrupt records are errors naming `path`.
pub fn scan(bytes: &[u8], path: &Path) -> Result<Scan> {
    use bincode::Options;
    let corrupt = |offset: usize, reason: String| Error::StorageCorrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    let mut deltas = Vec::new();
    let mut off = 0;
    let mut torn = None;
    while off < bytes.len() {
        let rest = &bytes[off..];
        if rest.iter().all(|b| *b == 0) {
            torn = Some(format!("{} zero bytes at the end", rest.len()));
            break;
        }
        if rest.len() < REC_HEADER {
            torn = Some(format!(
                "an incomplete record header ({} bytes)",
                rest.len()
            ));
            break;
        }
        if rest[0] != REC_MAGIC {
            return Err(corrupt(off, format!("bad record marker {:#04x}", rest[0])));
        }
        let len = u32::from_le_bytes(rest[1..5].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(rest[5..9].try_into().expect("4 bytes"));
        if len > MAX_RECORD {
            return Err(corrupt(off, format!("impossible record length {len}")));
        }
        if rest.len() < REC_HEADER + len {
            torn = Some(format!(
                "an incomplete record ({} of {} payload bytes)",
                rest.len() - REC_HEADER,
                len
            ));
            break;
        }
        let payload = &rest[REC_HEADER..REC_HEADER + len];
        if crc32fast::hash(payload) != crc {
            return Err(corrupt(off, "checksum mismatch".into()));
        }
        let delta: Delta = bincode_opts()
            .deserialize(payload)
            .map_err(|e| corrupt(off, format!("undecodable record: {e}")))?;
        deltas.push(delta);
        off += REC_HEADER + len;
    }
    Ok(Scan {
        deltas,
        valid_len: off as u64,
        torn,
    })
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::StorageIo {
        path: path.to_path_buf(),
        source,
    }
}

/// fsyncs a directory, so that files created or renamed in it stay.
fn sync_dir(dir: &Path, stats: &mut StoreStats) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    stats.fsyncs += 1;
    Ok(())
}

/// The log-and-snapshot store of one data directory.
#[derive(Debug)]
pub struct LogStore {
    dir: PathBuf,
    _lock: File,
    log: File,
    log_path: PathBuf,
    generation: u64,
    last: Option<Storage>,
    pending: Option<Storage>,
    buf: Vec<u8>,
    log_len: u64,
    snapshot_len: u64,
    compact_min: u64,
    stats: StoreStats,
    fault: StorageFault,
}

/// Storage faults injected on purpose (testing aids; see `faults.rs`).
#[derive(Clone, Copy, Debug, Default)]
struct StorageFault {
    /// Log fsyncs that succeed before one fails.
    fsync_fail_after: Option<u64>,
    /// Log bytes that fit before the disk is "full".
    disk_full_after: Option<u64>,
    /// Log fsyncs done by this process.
    syncs: u64,
    /// Log bytes written by this process.
    written: u64,
}

impl LogStore {
    /// Opens (creating if needed) the store in `dir`, locks it, and returns it
    /// with the last durable state, if any.
    pub fn open(dir: &Path) -> Result<(LogStore, Option<Storage>)> {
        Self::open_with(dir, COMPACT_MIN)
    }

    /// [`LogStore::open`] with a chosen compaction floor (tests use a small one).
    pub fn open_with(dir: &Path, compact_min: u64) -> Result<(LogStore, Option<Storage>)> {
        let mut stats = StoreStats::default();
        if !dir.exists() {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent, &mut stats)?;
            }
        }
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        fs2::FileExt::try_lock_exclusive(&lock).map_err(|_| Error::Locked {
            dir: dir.to_path_buf(),
            lock: lock_path.clone(),
        })?;

        let tmp = dir.join("snapshot.tmp");
        if tmp.exists() {
            // A compaction that crashed before its rename: the old snapshot
            // and log are intact and authoritative.
            fs::remove_file(&tmp).map_err(io_err(&tmp))?;
        }
        let snap_path = dir.join("snapshot");
        let (generation, mut state, snapshot_len) = if snap_path.exists() {
            let (g, s, len) = read_snapshot(&snap_path)?;
            (g, Some(s), len)
        } else {
            (0, None, 0)
        };

        let log_path = dir.join(format!("log.{generation}"));
        check_generations(dir, generation, state.is_some(), &log_path)?;
        let log_len = if log_path.exists() {
            let mut bytes = Vec::new();
            File::open(&log_path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(io_err(&log_path))?;
            let scan = scan_log(&bytes, generation, &log_path)?;
            for (i, delta) in scan.deltas.into_iter().enumerate() {
                state = Some(apply(state, delta).map_err(|reason| Error::StorageCorrupt {
                    path: log_path.clone(),
                    offset: 0,
                    reason: format!("record {i}: {reason}"),
                })?);
            }
            if let Some(why) = scan.torn {
                tracing::warn!(
                    file = %log_path.display(),
                    offset = scan.valid_len,
                    "torn tail in storage log: {why}; this write never completed, so its fsync \
                     never returned and nothing depending on it was sent: truncating it"
                );
                let f = OpenOptions::new()
                    .write(true)
                    .open(&log_path)
                    .map_err(io_err(&log_path))?;
                f.set_len(scan.valid_len).map_err(io_err(&log_path))?;
                f.sync_all().map_err(io_err(&log_path))?;
                stats.fsyncs += 1;
            }
            scan.valid_len
        } else {
            create_log(dir, generation, &mut stats)?
        };
        // Logs of older generations are leftovers of a finished compaction.
        let mut removed = false;
        for entry in fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("log.") && entry.path() != log_path {
                fs::remove_file(entry.path()).map_err(io_err(&entry.path()))?;
                removed = true;
            }
        }
        if removed {
            sync_dir(dir, &mut stats)?;
        }
        let log = OpenOptions::new()
            .append(true)
            .open(&log_path)
            .map_err(io_err(&log_path))?;
        let store = LogStore {
            dir: dir.to_path_buf(),
            _lock: lock,
            log,
            log_path,
            generation,
            last: state.clone(),
            pending: None,
            buf: Vec::new(),
            log_len,
            snapshot_len,
            compact_min,
            stats,
            fault: StorageFault::default(),
        };
        Ok((store, state))
    }

    /// Testing aid: the first `fsync_fail_after` log fsyncs succeed and the
    /// next fails; log writes fail with ENOSPC past `disk_full_after` bytes.
    pub fn inject_faults(&mut self, fsync_fail_after: Option<u64>, disk_full_after: Option<u64>) {
        self.fault.fsync_fail_after = fsync_fail_after;
        self.fault.disk_full_after = disk_full_after;
    }

    /// Replaces log and snapshot by a snapshot of the current state.
    fn compact(&mut self) -> Result<()> {
        let Some(state) = &self.last else {
            return Ok(());
        };
        let generation = self.generation + 1;
        let mut bytes = SNAP_MAGIC.to_vec();
        bytes.extend_from_slice(&generation.to_le_bytes());
        encode_record(&Delta::Full(state.clone()), &mut bytes);
        let tmp = self.dir.join("snapshot.tmp");
        let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(&bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        self.stats.fsyncs += 1;
        let snap = self.dir.join("snapshot");
        fs::rename(&tmp, &snap).map_err(io_err(&snap))?;
        let dir = self.dir.clone();
        sync_dir(&dir, &mut self.stats)?;
        // From here the snapshot is the truth; the new log starts empty.
        let log_path = self.dir.join(format!("log.{generation}"));
        let log_len = create_log(&dir, generation, &mut self.stats)?;
        let log = OpenOptions::new()
            .append(true)
            .open(&log_path)
            .map_err(io_err(&log_path))?;
        let old = std::mem::replace(&mut self.log_path, log_path);
        fs::remove_file(&old).map_err(io_err(&old))?;
        self.log = log;
        self.generation = generation;
        self.log_len = log_len;
        self.snapshot_len = bytes.len() as u64;
        self.stats.bytes_written += bytes.len() as u64;
        self.stats.compactions += 1;
        Ok(())
    }

    /// The current log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
}

/// Creates `DIR/log.<generation>` whole: header to a temporary file, fsync,
/// rename, fsync the directory. Returns its length.
fn create_log(dir: &Path, generation: u64, stats: &mut StoreStats) -> Result<u64> {
    let path = dir.join(format!("log.{generation}"));
    let tmp = dir.join(format!("log.{generation}.tmp"));
    let mut header = LOG_MAGIC.to_vec();
    header.extend_from_slice(&generation.to_le_bytes());
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(&header).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    stats.fsyncs += 1;
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir(dir, stats)?;
    stats.bytes_written += header.len() as u64;
    Ok(header.len() as u64)
}

/// Scans a whole log file: its header, then its records (offsets in errors
/// and `valid_len` count from the start of the file).
pub fn scan_log(bytes: &[u8], generation: u64, path: &Path) -> Result<Scan> {
    let corrupt = |reason: String| Error::StorageCorrupt {
        path: path.to_path_buf(),
        offset: 0,
        reason,
    };
    if bytes.len() < LOG_HEADER {
        return Err(corrupt(format!(
            "truncated: {} bytes, shorter than the {LOG_HEADER}-byte header every log is created with",
            bytes.len()
        )));
    }
    if &bytes[..8] != LOG_MAGIC {
        return Err(corrupt("not a twopc log (bad header)".into()));
    }
    let found = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    if found != generation {
        return Err(corrupt(format!(
            "header says generation {found}, expected {generation}"
        )));
    }
    match scan(&bytes[LOG_HEADER..], path) {
        Ok(mut s) => {
            s.valid_len += LOG_HEADER as u64;
            Ok(s)
        }
        Err(Error::StorageCorrupt {
            path,
            offset,
            reason,
        }) => Err(Error::StorageCorrupt {
            path,
            offset: offset + LOG_HEADER as u64,
            reason,
        }),
        Err(e) => Err(e),
    }
}

/// Refuses a data directory whose files do not fit together: a log of a
/// later generation than the snapshot (the snapshot was lost), or a snapshot
/// without its log when no interrupted compaction explains it.
fn check_generations(
    dir: &Path,
    generation: u64,
    has_snapshot: bool,
    log_path: &Path,
) -> Result<()> {
    let mut gens = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let name = entry.map_err(io_err(dir))?.file_name();
        let name = name.to_string_lossy();
        if let Some(g) = name
            .strip_prefix("log.")
            .and_then(|g| g.parse::<u64>().ok())
        {
            gens.push(g);
        }
    }
    if let Some(&later) = gens.iter().filter(|g| **g > generation).max() {
        let snap = dir.join("snapshot");
        return Err(Error::StorageCorrupt {
            path: if has_snapshot { snap } else { dir.join(format!("log.{later}")) },
            offset: 0,
            reason: format!(
                "log.{later} exists but the snapshot is {}: the snapshot of generation {later} is missing",
                if has_snapshot { format!("of generation {generation}") } else { "missing".into() }
            ),
        });
    }
    // Compaction renames the snapshot into place before it creates the new
    // log; a crash in between leaves the previous generation's log.
    if has_snapshot && !gens.contains(&generation) && !gens.contains(&(generation.wrapping_sub(1)))
    {
        return Err(Error::StorageCorrupt {
            path: log_path.to_path_buf(),
            offset: 0,
            reason: "missing: the snapshot names this log and no interrupted compaction explains its absence".into(),
        });
    }
    Ok(())
}

fn read_snapshot(path: &Path) -> Result<(u64, Storage, u64)> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io_err(path))?;
    let corrupt = |reason: &str| Error::StorageCorrupt {
        path: path.to_path_buf(),
        offset: 0,
        reason: reason.to_string(),
    };
    if bytes.len() < 16 || &bytes[..8] != SNAP_MAGIC {
        return Err(corrupt("not a twopc snapshot"));
    }
    let generation = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    let scan = scan(&bytes[16..], path)?;
    // A snapshot is fsync'd before it is renamed into place: it is whole or
    // it is not there. Anything else is corruption, torn or not.
    match (scan.torn, scan.deltas.as_slice()) {
        (None, [Delta::Full(s)]) => Ok((generation, s.clone(), bytes.len() as u64)),
        _ => Err(corrupt(
            "snapshot is not exactly one complete full-state record",
        )),
    }
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
            }
            self.last = Some(new);
        }
        if self.buf.is_empty() {
            return Ok(()); // Saved what was already durable: nothing to write.
        }
        // One write and one fdatasync for everything staged since the last
        // sync: that is the group commit.
        if let Some(limit) = self.fault.disk_full_after {
            let room = limit.saturating_sub(self.fault.written) as usize;
            if self.buf.len() > room {
                // As a full disk does: part of the write lands, then ENOSPC.
                let _ = self.log.write_all(&self.buf[..room]);
                self.fault.written += room as u64;
                return Err(Error::StorageIo {
                    path: self.log_path.clone(),
                    source: std::io::Error::from_raw_os_error(28), // ENOSPC
                });
            }
        }
        self.log
            .write_all(&self.buf)
            .map_err(io_err(&self.log_path))?;
        self.fault.written += self.buf.len() as u64;
        if self
            .fault
            .fsync_fail_after
            .is_some_and(|n| self.fault.syncs >= n)
        {
            return Err(Error::StorageIo {
                path: self.log_path.clone(),
                source: std::io::Error::other(
                    "fsync failed (injected by --fault-fsync-fail-after)",
                ),
            });
        }
        self.log.sync_data().map_err(io_err(&self.log_path))?;
        self.fault.syncs += 1;
        self.stats.fsyncs += 1;
        self.stats.bytes_written += self.buf.len() as u64;
        self.log_len += self.buf.len() as u64;
        self.buf.clear();
        if self.log_len >= self.snapshot_len.max(self.compact_min) {
            self.compact()?;
        }
        Ok(())
    }

    fn stats(&self) -> StoreStats {
        self.stats
    }
}

/// Records in `dir` (on first use) which node it belongs to, and refuses a
/// directory that belongs to another node: starting the wallet on the order
/// service's data, or a participant on the coordinator's log, would silently
/// replace one node's durable state with another's.
pub fn claim(dir: &Path, name: &str) -> Result<()> {
    let path = dir.join("NODE");
    match fs::read_to_string(&path) {
        Ok(owner) if owner.trim() == name => Ok(()),
        Ok(owner) => Err(Error::Other(format!(
            "data directory {} belongs to node {:?}, not {name:?} (see {})",
            dir.display(),
            owner.trim(),
            path.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut f = File::create(&path).map_err(io_err(&path))?;
            f.write_all(format!("{name}\n").as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(io_err(&path))?;
            sync_dir(dir, &mut StoreStats::default())
        }
        Err(e) => Err(io_err(&path)(e)),
    }
}

/// Reads the last durable state of a data directory without locking it
/// (for inspection by tools and tests; never while the node writes).
pub fn peek(dir: &Path) -> Result<Option<Storage>> {
    let snap_path = dir.join("snapshot");
    let (generation, mut state) = if snap_path.exists() {
        let (g, s, _) = read_snapshot(&snap_path)?;
        (g, Some(s))
    } else {
        (0, None)
    };
    let log_path = dir.join(format!("log.{generation}"));
    check_generations(dir, generation, state.is_some(), &log_path)?;
    if let Ok(bytes) = fs::read(&log_path) {
        for delta in scan_log(&bytes, generation, &log_path)?.deltas {
            state = Some(apply(state, delta).map_err(|reason| Error::StorageCorrupt {
                path: log_path.clone(),
                offset: 0,
                reason,
            })?);
        }
    }
    Ok(state)
}

/// A participant's storage, for tests.
pub fn as_participant(s: &Storage) -> Option<&PartStorage> {
    match s {
        Storage::Participant(p) => Some(p),
        _ => None,
    }
}

/// A coordinator's storage, for tests.
pub fn as_coordinator(s: &Storage) -> Option<&CoordStorage> {
    match s {
        Storage::Coordinator(c) => Some(c),
        _ => None,
    }
}

/// A client's storage, for tests.
pub fn as_client(s: &Storage) -> Option<&ClientState> {
    match s {
        Storage::Client(c) => Some(c),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twopc_model::participant::Finished;
    use twopc_model::{AbortReason, Hold, Op, Outcome, RequestId, TxnId, Verdict};

    fn wallet(accounts: usize) -> PartStorage {
        PartStorage {
            levels: (0..accounts)
                .map(|i| (format!("user{i:07}"), 1_000_000))
                .collect(),
            ..PartStorage::default()
        }
    }

    fn prepare(s: &mut PartStorage, n: u64) {
        let txn = TxnId { epoch: 1, n };
        let req = RequestId { client: 9, seq: n };
        let op = Op {
            key: "user0000003".into(),
            amount: 5,
        };
        s.holds.insert(txn, Hold { req, op });
    }

    fn commit(s: &mut PartStorage, n: u64) {
        let txn = TxnId { epoch: 1, n };
        let hold = s.holds.remove(&txn).unwrap();
        *s.levels.get_mut(&hold.op.key).unwrap() -= hold.op.amount;
        s.finished.insert(
            txn,
            Finished {
                req: Some(hold.req),
                op: Some(hold.op),
                committed: true,
            },
        );
    }

    /// Bytes written by the record of one save, for a wallet of `accounts`
    /// accounts that has finished `history` transactions already.
    fn bytes_per_save(accounts: usize, history: u64) -> (u64, u64) {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = LogStore::open_with(dir.path(), u64::MAX).unwrap();
        let mut s = wallet(accounts);
        for n in 0..history {
            prepare(&mut s, n);
            commit(&mut s, n);
        }
        store.stage(Storage::Participant(s.clone())).unwrap();
        store.sync().unwrap();
        let before = store.stats().bytes_written;
        prepare(&mut s, history);
        store.stage(Storage::Participant(s.clone())).unwrap();
        store.sync().unwrap();
        let prepare_bytes = store.stats().bytes_written - before;
        let before = store.stats().bytes_written;
        commit(&mut s, history);
        store.stage(Storage::Participant(s.clone())).unwrap();
        store.sync().unwrap();
        (prepare_bytes, store.stats().bytes_written - before)
    }

    #[test]
    fn bytes_per_save_do_not_grow_with_accounts_or_history() {
        // Varint encoding makes bigger numbers (txn 2000, seq 2000) a few
        // bytes longer; nothing else may grow.
        let small = bytes_per_save(10, 0);
        for big in [bytes_per_save(20_000, 0), bytes_per_save(10, 2_000)] {
            assert!(
                big.0 <= small.0 + 8 && big.1 <= small.1 + 12,
                "{small:?} vs {big:?}"
            );
        }
        assert!(small.0 < 100 && small.1 < 150, "{small:?}");
    }

    #[test]
    fn replay_returns_exactly_the_last_saved_state() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = wallet(50);
        {
            let (mut store, none) = LogStore::open(dir.path()).unwrap();
            assert_eq!(none, None);
            for n in 0..20 {
                prepare(&mut s, n);
                store.stage(Storage::Participant(s.clone())).unwrap();
                if n % 3 == 0 {
                    commit(&mut s, n);
                    store.stage(Storage::Participant(s.clone())).unwrap();
                }
                store.sync().unwrap();
            }
            // Staged but never synced: as if the process died before fsync.
            s.levels.clear();
            store.stage(Storage::Participant(s.clone())).unwrap();
        }
        let (_, loaded) = LogStore::open(dir.path()).unwrap();
        let mut expected = wallet(50);
        for n in 0..20 {
            prepare(&mut expected, n);
            if n % 3 == 0 {
                commit(&mut expected, n);
            }
        }
        assert_eq!(loaded, Some(Storage::Participant(expected)));
    }

    #[test]
    fn coordinator_and_client_deltas_replay() {
        let dir = tempfile::tempdir().unwrap();
        let outcome = |client, seq| Outcome {
            req: RequestId { client, seq },
            txn: None,
            verdict: Verdict::Aborted(AbortReason::InvalidRequest),
        };
        let mut c = CoordStorage::default();
        let (mut store, _) = LogStore::open(dir.path()).unwrap();
        for i in 0..10 {
            c.epoch = i / 3;
            c.clients.insert(i % 4, outcome(i % 4, i));
            c.commits
                .insert(TxnId { epoch: 0, n: i }, RequestId { client: 1, seq: i });
            if i > 2 {
                c.commits.remove(&TxnId { epoch: 0, n: i - 2 });
            }
            store.stage(Storage::Coordinator(c.clone())).unwrap();
            store.sync().unwrap();
        }
        drop(store);
        let (mut store, loaded) = LogStore::open(dir.path()).unwrap();
        assert_eq!(loaded, Some(Storage::Coordinator(c)));
        // A change of role writes a full record.
        let client = ClientState {
            seen: vec![outcome(1, 1), outcome(1, 2)],
        };
        store.stage(Storage::Client(client.clone())).unwrap();
        let mut more = client.clone();
        more.seen.push(outcome(1, 3));
        store.stage(Storage::Client(more.clone())).unwrap();
        store.sync().unwrap();
        drop(store);
        assert_eq!(peek(dir.path()).unwrap(), Some(Storage::Client(more)));
    }

    #[test]
    fn compaction_keeps_state_and_bounds_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = wallet(100);
        let (mut store, _) = LogStore::open_with(dir.path(), 2_000).unwrap();
        for n in 0..300 {
            prepare(&mut s, n);
            store.stage(Storage::Participant(s.clone())).unwrap();
            commit(&mut s, n);
            store.stage(Storage::Participant(s.clone())).unwrap();
            store.sync().unwrap();
        }
        assert!(store.stats().compactions >= 2, "{:?}", store.stats());
        let live = store.log_path().to_path_buf();
        drop(store);
        let logs: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                name.starts_with("log.").then_some(name)
            })
            .collect();
        assert_eq!(logs.len(), 1, "{logs:?}");
        assert!(live.ends_with(&logs[0]));
        let (_, loaded) = LogStore::open_with(dir.path(), 2_000).unwrap();
        assert_eq!(loaded, Some(Storage::Participant(s)));
    }

    #[test]
    fn torn_tail_is_cut_and_corruption_refuses_to_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = wallet(5);
        {
            let (mut store, _) = LogStore::open(dir.path()).unwrap();
            for n in 0..3 {
                prepare(&mut s, n);
                store.stage(Storage::Participant(s.clone())).unwrap();
                store.sync().unwrap();
            }
        }
        let log = dir.path().join("log.0");
        let good = fs::read(&log).unwrap();
        // Torn: half of a new record.
        let mut torn = good.clone();
        torn.extend_from_slice(&[REC_MAGIC, 50, 0, 0, 0, 1, 2, 3, 4, 5, 6]);
        fs::write(&log, &torn).unwrap();
        let (_, loaded) = LogStore::open(dir.path()).unwrap();
        assert_eq!(loaded, Some(Storage::Participant(s.clone())));
        assert_eq!(fs::read(&log).unwrap(), good, "torn tail truncated");
        // Zero-filled tail: also torn.
        let mut zeros = good.clone();
        zeros.extend_from_slice(&[0; 64]);
        fs::write(&log, &zeros).unwrap();
        assert_eq!(
            LogStore::open(dir.path()).unwrap().1,
            Some(Storage::Participant(s))
        );
        // Corrupt: a flipped byte inside the last complete record.
        let mut bad = good.clone();
        let n = bad.len();
        bad[n - 3] ^= 0x10;
        fs::write(&log, &bad).unwrap();
        let err = LogStore::open(dir.path()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::StorageCorrupt { .. }), "{msg}");
        assert!(msg.contains("log.0") && msg.contains("checksum"), "{msg}");
        // And the corrupt file is left as it was, for inspection.
        assert_eq!(fs::read(&log).unwrap(), bad);
    }

    #[test]
    fn a_data_dir_belongs_to_one_node() {
        let dir = tempfile::tempdir().unwrap();
        claim(dir.path(), "wallet").unwrap();
        claim(dir.path(), "wallet").unwrap();
        let err = claim(dir.path(), "order").unwrap_err().to_string();
        assert!(err.contains("belongs to node \"wallet\""), "{err}");
    }

    #[test]
    fn a_data_dir_is_locked_by_one_store() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, _) = LogStore::open(dir.path()).unwrap();
        let err = LogStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, Error::Locked { .. }), "{err}");
    }
}
