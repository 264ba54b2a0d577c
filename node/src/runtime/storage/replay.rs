//! The one replay of a data directory: snapshot, then the log's records on
//! top. Read-only: it repairs nothing (the log does that, once the directory
//! is claimed), so a node's start and `twopc inspect` share it.

use super::delta::apply;
use super::dir::{io_err, Identity};
use super::fs::{Fs, RealFs};
use super::journal::{derive, Journal};
use super::journal_files;
use super::record::{parse_snapshot, scan_log, LogScan, Snapshot};
use super::synced::{self, synced_path, Synced};
use crate::runtime::error::{Error, Result};
use std::path::{Path, PathBuf};
use twopc_model::{CoordStorage, PartStorage, Storage};

/// What a data directory holds.
#[derive(Debug)]
pub struct Replayed {
    /// The generation of the snapshot (0 without one).
    pub generation: u64,
    /// The last durable state (`None`: nothing was ever saved).
    pub state: Option<Storage>,
    /// Bytes of the snapshot file (0 without one).
    pub snapshot_len: u64,
    /// The log of `generation`, if it exists.
    pub log: Option<LogTail>,
    /// The synced-length marker (`DIR/synced`), if it has a valid slot.
    pub synced: Option<Synced>,
    /// The node the headers name, and the file that names it (the snapshot
    /// if there is one, else the log). `None`: no file names one (a new
    /// directory, a store opened without an owner, or the previous format).
    pub owner: Option<(Identity, PathBuf)>,
    /// The snapshot's base position (0 without one).
    pub base: u64,
    /// The history's position: the snapshot's base plus the log's complete
    /// records (see `super::position`).
    pub position: u64,
    /// A participant's journal: the segments' entries (or an older
    /// snapshot's own), then those derived from the log's records
    /// (`super::journal_files`), all of them: the store trims it to its
    /// retention.
    pub journal: Journal,
    /// Where the next journal segment starts.
    pub segment_next: u64,
    /// Journal segments left by a compaction that crashed before its
    /// snapshot (the store deletes them).
    pub stale_segments: Vec<u64>,
}

/// How far the log of a replay is valid.
#[derive(Debug)]
pub struct LogTail {
    /// The log file.
    pub path: PathBuf,
    /// Bytes of complete, valid records (header included).
    pub valid_len: u64,
    /// Bytes of the file.
    pub len: u64,
    /// Why the bytes after `valid_len` are a torn tail, if there are any.
    pub torn: Option<String>,
    /// Whether it is preallocated (`TPCLOG04`): zeros after `valid_len`
    /// are free space, not a torn tail (`tail.rs`).
    pub preallocated: bool,
}

/// The path of the log of `generation` in `dir`.
pub fn log_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("log.{generation}"))
}

/// Replays `dir`: reads its snapshot and log, checks that they fit together
/// and every checksum, and returns the last durable state. Corruption is an
/// error naming the file and offset; so is a log shorter than the bytes the
/// synced-length marker records as durable (lost data). A torn tail after
/// them is reported, not cut.
pub fn replay(dir: &Path) -> Result<Replayed> {
    replay_in(&RealFs, dir)
}

/// [`replay`] on the disk `fs`.
pub fn replay_in(fs: &dyn Fs, dir: &Path) -> Result<Replayed> {
    let marker = synced::read(fs, dir)?;
    let snap_path = dir.join("snapshot");
    let mut journal = Journal::new(usize::MAX);
    let (mut segment_next, mut stale_segments) = (1, Vec::new());
    let (generation, mut state, snapshot_len, mut owner, base) = if fs.exists(&snap_path) {
        let bytes = fs.read(&snap_path).map_err(io_err(&snap_path))?;
        let Snapshot {
            generation,
            base,
            owner,
            journal: kept,
            state,
        } = parse_snapshot(&bytes, &snap_path)?;
        if kept.is_empty() {
            let loaded = journal_files::load(fs, dir, kept.first())?;
            for line in &loaded.lost {
                tracing::warn!(dir = %dir.display(), "journal: {line}; the levels are not affected");
            }
            journal = loaded.journal;
            stale_segments = loaded.stale;
            segment_next = kept.first();
        } else {
            // A snapshot from before segments: its entries are its own.
            segment_next = kept.first();
            journal = kept;
        }
        journal.set_retention(usize::MAX);
        let owner = owner.map(|o| (o, snap_path.clone()));
        (generation, Some(state), bytes.len() as u64, owner, base)
    } else {
        // No snapshot: any segment is a crashed first compaction's.
        stale_segments = journal_files::segments(fs, dir)?;
        (0, None, 0, None, 0)
    };
    let path = log_path(dir, generation);
    check_generations(fs, dir, generation, state.is_some(), &path)?;
    let known = synced_len(dir, generation, marker, &path)?;
    if !fs.exists(&path) {
        if known > 0 {
            return Err(lost(dir, &path, known, 0, 0, "the log is missing".into()));
        }
        return Ok(Replayed {
            generation,
            state,
            snapshot_len,
            log: None,
            synced: marker,
            owner,
            base,
            position: base,
            journal,
            segment_next,
            stale_segments,
        });
    }
    let bytes = fs.read(&path).map_err(io_err(&path))?;
    let LogScan {
        owner: log_owner,
        scan,
        preallocated,
    } = scan_log(&bytes, generation, &path)?;
    match (&owner, log_owner) {
        (Some((snap, snap_path)), Some(log)) if *snap != log => {
            return Err(Error::StorageCorrupt {
                path: path.clone(),
                offset: 0,
                reason: format!(
                    "its header names node {:?} ({}), but {} names {:?} ({})",
                    log.name,
                    log.role,
                    snap_path.display(),
                    snap.name,
                    snap.role
                ),
            });
        }
        (None, Some(log)) => owner = Some((log, path.clone())),
        _ => {}
    }
    if scan.valid_len < known {
        let reason = match &scan.torn {
            Some(why) if (bytes.len() as u64) >= known => {
                format!("{why} at byte {}, before the synced length", scan.valid_len)
            }
            None if preallocated && (bytes.len() as u64) >= known => format!(
                "the records end at byte {} (zeros after it), before the synced length",
                scan.valid_len
            ),
            _ => format!("the file was cut to {} bytes", bytes.len()),
        };
        return Err(lost(
            dir,
            &path,
            known,
            scan.valid_len,
            bytes.len() as u64,
            reason,
        ));
    }
    let position = base + scan.deltas.len() as u64;
    for (i, delta) in scan.deltas.into_iter().enumerate() {
        let before = match &state {
            Some(Storage::Participant(p)) => Some(p.clone()),
            _ => None,
        };
        state = Some(apply(state, delta).map_err(|reason| Error::StorageCorrupt {
            path: path.clone(),
            offset: 0,
            reason: format!("record {i}: {reason}"),
        })?);
        // The entries this record made durable, derived as the writer
        // derived them (`super::journal_files`).
        if let (Some(old), Some(Storage::Participant(now))) = (&before, &state) {
            journal.extend(derive(old, now));
        }
    }
    Ok(Replayed {
        generation,
        state,
        snapshot_len,
        log: Some(LogTail {
            path,
            valid_len: scan.valid_len,
            len: bytes.len() as u64,
            torn: scan.torn,
            preallocated,
        }),
        synced: marker,
        owner,
        base,
        position,
        journal,
        segment_next,
        stale_segments,
    })
}

/// Bytes of the log of `generation` known durable. A marker of an older
/// generation is stale (a compaction that crashed before it rewrote the
/// marker; the new log was created whole): nothing is known, as without a
/// marker. One of a later generation means the snapshot it followed is gone.
fn synced_len(dir: &Path, generation: u64, marker: Option<Synced>, log: &Path) -> Result<u64> {
    match marker {
        None => Ok(0),
        Some(m) if m.generation < generation => Ok(0),
        Some(m) if m.generation == generation => Ok(m.len),
        Some(m) => Err(lost(
            dir,
            log,
            m.len,
            0,
            0,
            format!(
                "the marker records log.{} as synced, but the snapshot is of generation {generation}",
                m.generation
            ),
        )),
    }
}

fn lost(dir: &Path, path: &Path, synced: u64, valid: u64, len: u64, reason: String) -> Error {
    Error::StorageLost {
        path: path.to_path_buf(),
        marker: synced_path(dir),
        synced,
        valid,
        len,
        reason,
    }
}

/// The state in `dir`'s snapshot alone, ignoring the log (`None`: no
/// snapshot). Only the runtime mutant `restart-from-snapshot` starts from it.
pub fn snapshot_in(fs: &dyn Fs, dir: &Path) -> Result<Option<Storage>> {
    let path = dir.join("snapshot");
    if !fs.exists(&path) {
        return Ok(None);
    }
    let bytes = fs.read(&path).map_err(io_err(&path))?;
    Ok(Some(parse_snapshot(&bytes, &path)?.state))
}

/// The last durable state of a data directory, read without locking it
/// (`twopc inspect`, and tests; never while a node writes to it).
pub fn inspect(dir: &Path) -> Result<Option<Storage>> {
    inspect_in(&RealFs, dir)
}

/// [`inspect`] on the disk `fs`.
pub fn inspect_in(fs: &dyn Fs, dir: &Path) -> Result<Option<Storage>> {
    replay_in(fs, dir).map(|r| r.state)
}

/// What a node starting on `dir` would repair (the directory replayed as
/// `r`), one line each, naming the file: a torn tail it would cut, the
/// leftovers of a crashed compaction or log creation it would delete, a
/// log it would create. Empty: the directory is clean. (What it would
/// refuse is `replay`'s error.)
pub fn repairs(dir: &Path, r: &Replayed) -> Result<Vec<String>> {
    repairs_in(&RealFs, dir, r)
}

/// [`repairs`] on the disk `fs`.
pub fn repairs_in(fs: &dyn Fs, dir: &Path, r: &Replayed) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let live = log_path(dir, r.generation);
    match &r.log {
        Some(tail) => {
            if let Some(why) = &tail.torn {
                found.push(format!(
                    "{}: torn tail after byte {} of {} ({why}; beyond the synced length {}): a node would cut it",
                    tail.path.display(),
                    tail.valid_len,
                    tail.len,
                    r.synced
                        .filter(|s| s.generation == r.generation)
                        .map_or(0, |s| s.len),
                ));
            }
        }
        None => found.push(format!(
            "{}: missing after a crashed compaction: a node would create it",
            live.display()
        )),
    }
    let mut names = Vec::new();
    for name in fs.read_dir(dir).map_err(io_err(dir))? {
        let stale_segment = name.strip_prefix("journal.").is_some_and(|n| {
            n.ends_with(".tmp") || n.parse().is_ok_and(|p| r.stale_segments.contains(&p))
        });
        if name == "snapshot.tmp"
            || (name.starts_with("log.") && dir.join(&name) != live)
            || stale_segment
        {
            names.push(name);
        }
    }
    names.sort();
    for name in names {
        found.push(format!(
            "{}: left by an interrupted compaction or log creation: a node would delete it",
            dir.join(name).display()
        ));
    }
    Ok(found)
}

/// A participant's storage (for inspection).
pub fn as_participant(s: &Storage) -> Option<&PartStorage> {
    match s {
        Storage::Participant(p) => Some(p),
        Storage::Coordinator(_) | Storage::Client(_) | Storage::Replica(_) => None,
    }
}

/// A coordinator's storage (for inspection).
pub fn as_coordinator(s: &Storage) -> Option<&CoordStorage> {
    match s {
        Storage::Coordinator(c) => Some(c),
        // A replica keeps the coordinator's state it accepted last.
        Storage::Replica(r) => r.accepted.as_ref().map(|a| &a.storage),
        Storage::Participant(_) | Storage::Client(_) => None,
    }
}

/// Refuses a data directory whose files do not fit together: a log of a
/// later generation than the snapshot (the snapshot was lost), or a snapshot
/// without its log when no interrupted compaction explains it.
fn check_generations(
    fs: &dyn Fs,
    dir: &Path,
    generation: u64,
    has_snapshot: bool,
    log_path: &Path,
) -> Result<()> {
    let mut gens = Vec::new();
    for name in fs.read_dir(dir).map_err(io_err(dir))? {
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
