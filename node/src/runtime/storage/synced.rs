//! `DIR/synced`: how many bytes of the current log are known durable, so
//! that a log found shorter at start is told apart from a torn tail.
//!
//! ```text
//! synced   two 32-byte slots, written alternately, each:
//!          sequence (u64 LE), generation (u64 LE), synced length (u64 LE),
//!          crc32 of those 24 bytes (u32 LE), 4 zero bytes
//! ```
//!
//! The slot of sequence `s` is at offset `32 * (s % 2)`. A write tears at
//! most the slot being written; the other still holds the previous value.
//! The valid slot with the highest sequence is the marker. The log store
//! writes it only after the log's `fdatasync` returned, so it never claims
//! more than what is durable in the log.

use super::dir::io_err;
use super::fs::{Fs, FsFile};
use crate::runtime::error::Result;
use std::path::{Path, PathBuf};

const SLOT: usize = 32;

/// The marker's file in `dir`.
pub fn synced_path(dir: &Path) -> PathBuf {
    dir.join("synced")
}

/// A marker: bytes `len` of `log.<generation>` were durable when it was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Synced {
    /// Which write of the marker this is (alternates the slots).
    pub seq: u64,
    /// The log's generation.
    pub generation: u64,
    /// Bytes of the log, header included, durable at the time.
    pub len: u64,
}

impl Synced {
    /// The slot's bytes.
    pub fn encode(&self) -> [u8; SLOT] {
        let mut b = [0u8; SLOT];
        b[0..8].copy_from_slice(&self.seq.to_le_bytes());
        b[8..16].copy_from_slice(&self.generation.to_le_bytes());
        b[16..24].copy_from_slice(&self.len.to_le_bytes());
        let crc = crc32fast::hash(&b[..24]);
        b[24..28].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// A slot's marker, if the slot is whole and valid.
    pub fn decode(b: &[u8]) -> Option<Synced> {
        let b = b.get(..SLOT)?;
        let word = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let crc = u32::from_le_bytes(b[24..28].try_into().expect("4 bytes"));
        (crc32fast::hash(&b[..24]) == crc && b[28..] == [0; 4]).then(|| Synced {
            seq: word(0),
            generation: word(8),
            len: word(16),
        })
    }

    /// The newest valid slot of a marker file's bytes.
    pub fn parse(bytes: &[u8]) -> Option<Synced> {
        bytes
            .chunks(SLOT)
            .take(2)
            .filter_map(Synced::decode)
            .max_by_key(|s| s.seq)
    }
}

/// Reads the marker of `dir`: `None` if there is no file (a new directory,
/// or one written by a version before the marker) or no valid slot (a crash
/// during the very first write of it). Either way nothing is known to be
/// synced, which is the behaviour before the marker existed.
pub fn read(fs: &dyn Fs, dir: &Path) -> Result<Option<Synced>> {
    let path = synced_path(dir);
    match fs.read(&path) {
        Ok(bytes) => {
            let found = Synced::parse(&bytes);
            if found.is_none() {
                tracing::warn!(
                    file = %path.display(),
                    "no valid slot in the synced-length marker; assuming nothing of the log is known synced"
                );
            }
            Ok(found)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&path)(e)),
    }
}

/// The open marker file of a log store.
#[derive(Debug)]
pub struct Marker {
    file: Box<dyn FsFile>,
    path: PathBuf,
    last: Option<Synced>,
}

impl Marker {
    /// Opens (creating if needed) the marker of `dir`, whose newest valid
    /// slot is `last`. Returns whether the file was created (its directory
    /// entry then needs an fsync of `dir`).
    pub fn open(fs: &dyn Fs, dir: &Path, last: Option<Synced>) -> Result<(Marker, bool)> {
        let path = synced_path(dir);
        let created = !fs.exists(&path);
        let file = fs.open_write(&path, true).map_err(io_err(&path))?;
        Ok((Marker { file, path, last }, created))
    }

    /// Records that `len` bytes of `log.<generation>` are durable: writes the
    /// older slot, and `fdatasync`s it if `sync`. Call only after the log's
    /// own sync. Returns whether it wrote (not when nothing changed).
    ///
    /// Unsynced, the slot is still safe: it only ever claims bytes already
    /// durable in the log, so if a power loss keeps an older slot instead,
    /// that older length is true too (just less of the log is protected).
    pub fn write(&mut self, generation: u64, len: u64, sync: bool) -> Result<bool> {
        if self
            .last
            .is_some_and(|s| s.generation == generation && s.len == len)
        {
            return Ok(false);
        }
        let seq = self.last.map_or(0, |s| s.seq.wrapping_add(1));
        let new = Synced {
            seq,
            generation,
            len,
        };
        let offset = SLOT as u64 * (seq % 2);
        self.file
            .write_all_at(&new.encode(), offset)
            .map_err(io_err(&self.path))?;
        if sync {
            self.file.sync_data().map_err(io_err(&self.path))?;
        }
        self.last = Some(new);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::storage::fs::RealFs;

    #[test]
    fn slots_alternate_and_a_torn_slot_falls_back_to_the_other() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            read(&RealFs, dir.path()).unwrap(),
            None,
            "no file: nothing known"
        );
        let (mut m, created) = Marker::open(&RealFs, dir.path(), None).unwrap();
        assert!(created);
        assert!(m.write(0, 100, true).unwrap());
        assert!(!m.write(0, 100, true).unwrap(), "unchanged: no write");
        assert!(m.write(0, 150, false).unwrap());
        let got = read(&RealFs, dir.path()).unwrap().unwrap();
        assert_eq!((got.seq, got.generation, got.len), (1, 0, 150));
        // Tear the newest slot (sequence 1, at offset 32): the older one counts.
        let path = synced_path(dir.path());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[40] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let got = read(&RealFs, dir.path()).unwrap().unwrap();
        assert_eq!((got.seq, got.len), (0, 100));
        // Reopened from what was read, the next write goes over the torn slot.
        let (mut m, created) = Marker::open(&RealFs, dir.path(), Some(got)).unwrap();
        assert!(!created);
        assert!(m.write(1, 16, true).unwrap());
        let got = read(&RealFs, dir.path()).unwrap().unwrap();
        assert_eq!((got.seq, got.generation, got.len), (1, 1, 16));
        // Nothing valid at all (a crash during the first write): unknown.
        std::fs::write(&path, [0x5a; 20]).unwrap();
        assert_eq!(read(&RealFs, dir.path()).unwrap(), None);
    }

    #[test]
    fn a_slot_round_trips_and_any_flipped_bit_invalidates_it() {
        let s = Synced {
            seq: 7,
            generation: 3,
            len: 267,
        };
        let b = s.encode();
        assert_eq!(Synced::decode(&b), Some(s));
        for i in 0..SLOT * 8 {
            let mut bad = b;
            bad[i / 8] ^= 1 << (i % 8);
            assert_eq!(Synced::decode(&bad), None, "bit {i}");
        }
    }
}
