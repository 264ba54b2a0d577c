//! Where a participant's journal lives on disk: segment files beside the
//! log, each written whole at a compaction, plus the log's own records.
//!
//! ```text
//! DIR/journal.<first>   "TPCJSEG1", first position (u64 LE), one record:
//!                       the entries from `first` on (a bincode Vec<Change>)
//! ```
//!
//! The journal's entries are a function of the states the log records:
//! `derive(old, new)` for each record (`journal.rs`). So a record carries
//! none (it did, before segments: about 55 bytes each), and the replay
//! derives them again from the states it rebuilds, exactly as the writer
//! did. What the log no longer holds after a compaction is in segments:
//! a compaction first writes the entries since the last segment as a new
//! one (to `.tmp`, fsync, rename, fsync the directory), then the snapshot,
//! whose journal record is an empty journal at the position where the
//! log's entries begin (`Journal::empty_at`). So the snapshot costs what
//! the state costs, and each entry is written once, off the commit path
//! (no fsync of its own per commit): bytes per purchase do not grow with
//! the retained journal, and compaction is not held back by it.
//!
//! At open, the journal is the segments' entries before the snapshot's
//! position, then the log's. A segment at or after that position was
//! written by a compaction that crashed before its snapshot: ignored, and
//! deleted by the store (`stale`). A segment that is unreadable, or a gap
//! between segments (one deleted by hand), loses the entries before it:
//! the journal starts after the gap and the node says so (a warning; the
//! levels, which are the protocol's, are untouched). Segments whose every
//! entry is past the retention are deleted at the next compaction.
//! Snapshots of the format before segments carry their entries
//! themselves; the first compaction moves them to a segment.

use super::dir::io_err;
use super::fs::Fs;
use super::journal::{Change, Journal};
use super::record::{encode_value, read_value};
use crate::runtime::error::Result;
use std::path::{Path, PathBuf};

const SEG_MAGIC: &[u8; 8] = b"TPCJSEG1";
const SEG_HEADER: usize = 16;

/// The path of the segment starting at `first`.
pub fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("journal.{first}"))
}

/// The bytes of a segment of `entries` starting at position `first`.
pub fn segment(first: u64, entries: &[Change]) -> Vec<u8> {
    let mut bytes = SEG_MAGIC.to_vec();
    bytes.extend_from_slice(&first.to_le_bytes());
    encode_value(&entries, &mut bytes);
    bytes
}

/// The first position and the entries of a segment's bytes, or why not.
pub fn parse_segment(bytes: &[u8]) -> std::result::Result<(u64, Vec<Change>), String> {
    if bytes.len() < SEG_HEADER || &bytes[..8] != SEG_MAGIC {
        return Err("is not a journal segment (bad header)".into());
    }
    let first = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    let (entries, len) = read_value::<Vec<Change>>(&bytes[SEG_HEADER..])
        .map_err(|why| format!("its record {why}"))?;
    if SEG_HEADER + len != bytes.len() {
        return Err("has bytes after its record".into());
    }
    Ok((first, entries))
}

/// The segment files of `dir`, by first position (`.tmp` ones excluded).
pub fn segments(fs: &dyn Fs, dir: &Path) -> Result<Vec<u64>> {
    let mut found: Vec<u64> = fs
        .read_dir(dir)
        .map_err(io_err(dir))?
        .iter()
        .filter_map(|name| name.strip_prefix("journal.")?.parse().ok())
        .collect();
    found.sort_unstable();
    Ok(found)
}

/// What the segments of a directory hold before position `end`.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The journal of the entries before `end` (starting at `end`, empty,
    /// if the segments hold none that reach it).
    pub journal: Journal,
    /// Segments at or after `end`: left by a compaction that crashed before
    /// its snapshot.
    pub stale: Vec<u64>,
    /// What was lost, one line each (a damaged segment, a gap).
    pub lost: Vec<String>,
}

/// Reads the segments of `dir` up to position `end` (the position the
/// snapshot's journal starts at): the contiguous run of entries that ends
/// at `end`.
pub fn load(fs: &dyn Fs, dir: &Path, end: u64) -> Result<Loaded> {
    let mut loaded = Loaded {
        journal: Journal::empty_at(end),
        ..Loaded::default()
    };
    let mut run: Option<(u64, Vec<Change>)> = None;
    for first in segments(fs, dir)? {
        if first >= end {
            loaded.stale.push(first);
            continue;
        }
        let path = segment_path(dir, first);
        let bytes = fs.read(&path).map_err(io_err(&path))?;
        let entries = match parse_segment(&bytes) {
            Ok((named, entries)) if named == first => entries,
            Ok((named, _)) => {
                loaded.lost.push(format!(
                    "{}: names position {named}, not {first}: skipped",
                    path.display()
                ));
                continue;
            }
            Err(why) => {
                loaded
                    .lost
                    .push(format!("{}: {why}: skipped", path.display()));
                continue;
            }
        };
        run = match run {
            Some((start, mut kept)) if start + kept.len() as u64 == first => {
                kept.extend(entries);
                Some((start, kept))
            }
            Some((start, kept)) => {
                loaded.lost.push(format!(
                    "entries {}..{} are in no segment: the journal starts at {first}",
                    start + kept.len() as u64,
                    first
                ));
                Some((first, entries))
            }
            None => Some((first, entries)),
        };
    }
    match run {
        Some((start, mut kept)) if start + kept.len() as u64 >= end => {
            kept.truncate((end - start) as usize);
            loaded.journal = Journal::from_entries(start, kept);
        }
        Some((start, kept)) => loaded.lost.push(format!(
            "entries {}..{end} are in no segment: the journal starts at {end}",
            start + kept.len() as u64
        )),
        None if end > 1 => loaded.lost.push(format!(
            "no journal segment holds the entries before {end}: the journal starts there"
        )),
        None => {}
    }
    Ok(loaded)
}

/// Writes `entries` (from position `first`) as a new segment, whole: to a
/// temporary file, fsync, rename, fsync the directory. Returns the bytes
/// written and the fsyncs done.
pub fn write(fs: &dyn Fs, dir: &Path, first: u64, entries: &[Change]) -> Result<(u64, u64)> {
    let path = segment_path(dir, first);
    let tmp = dir.join(format!("journal.{first}.tmp"));
    let bytes = segment(first, entries);
    let mut f = fs.create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(&bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    fs.rename(&tmp, &path).map_err(io_err(&path))?;
    fs.sync_dir(dir).map_err(io_err(dir))?;
    Ok((bytes.len() as u64, 2))
}

/// Removes the segments of `dir` whose every entry is before `keep_from`
/// (the journal's first retained position), and every one in `also`.
/// Returns whether it removed any (the caller fsyncs the directory).
pub fn prune(fs: &dyn Fs, dir: &Path, keep_from: u64, also: &[u64]) -> Result<bool> {
    let firsts = segments(fs, dir)?;
    let mut removed = false;
    for (i, first) in firsts.iter().enumerate() {
        // A segment ends where the next begins.
        let dropped = firsts.get(i + 1).is_some_and(|next| *next <= keep_from);
        if dropped || also.contains(first) {
            let path = segment_path(dir, *first);
            fs.remove_file(&path).map_err(io_err(&path))?;
            removed = true;
        }
    }
    for name in fs.read_dir(dir).map_err(io_err(dir))? {
        if name.starts_with("journal.") && name.ends_with(".tmp") {
            let path = dir.join(&name);
            fs.remove_file(&path).map_err(io_err(&path))?;
            removed = true;
        }
    }
    Ok(removed)
}

#[cfg(test)]
#[path = "journal_files_tests.rs"]
mod tests;
