//! A log's space, written ahead of its records: so that the `fdatasync`
//! after a record never changes the file's length.
//!
//! An `fdatasync` after an append must make the new length durable too,
//! which on ext4 is a journal commit besides the data's write; one after
//! an overwrite of space already written and synced is the data's write
//! alone. On this machine's disk that was 122-128 us against 88-90 us at
//! the median (`examples/fsync_cost.rs`, docs/prealloc.md). So a log
//! (`TPCLOG04`) is created with its header followed by zeros to a whole
//! [`chunk_for`] of bytes, synced before it is renamed into place, and
//! when a record would not fit, the log is first extended with zeros to
//! the next whole chunk and `fsync`ed: the length changes there, once per
//! chunk, never in a record's `fdatasync`. Records are written in place
//! (`pwrite` at the end of the records), and a reader finds their end in
//! the zeros (`tail.rs`).
//!
//! The extension needs no fsync of the directory: a file's length is its
//! inode's, which the file's own `fsync` makes durable; the directory
//! holds only its name, unchanged. A power cut during an extension leaves
//! a part of the zeros, which reads as the same end. Zeros written are not
//! counted in `StoreStats::bytes_written` (records and snapshots); their
//! fsyncs are counted in `fsyncs`.

use super::fs::FsFile;
use std::io;

/// The most bytes a log is extended by at once.
pub const MAX_CHUNK: u64 = 1 << 20;
/// The least.
pub const MIN_CHUNK: u64 = 4096;

/// The bytes a log is extended by at once, for a store compacting at
/// `compact_min` bytes: a quarter of it, between [`MIN_CHUNK`] and
/// [`MAX_CHUNK`] (1 MiB for a node, whose floor is 4 MiB: a log is
/// extended a few times between compactions; a test's tiny floor does not
/// write a megabyte of zeros per compaction).
pub fn chunk_for(compact_min: u64) -> u64 {
    (compact_min / 4).clamp(MIN_CHUNK, MAX_CHUNK)
}

/// The length to extend a log to for `need` bytes: the next whole chunk.
pub fn extent(need: u64, chunk: u64) -> u64 {
    need.div_ceil(chunk) * chunk
}

/// Writes zeros into `file` from `from` to `to`.
pub fn fill(file: &dyn FsFile, from: u64, to: u64) -> io::Result<()> {
    let zeros = vec![0u8; (to.saturating_sub(from)).min(MAX_CHUNK) as usize];
    let mut at = from;
    while at < to {
        let n = (to - at).min(zeros.len() as u64);
        file.write_all_at(&zeros[..n as usize], at)?;
        at += n;
    }
    Ok(())
}
