//! A participant's history has a position, and its coordinator remembers
//! the highest it has heard: so a participant that comes back *behind* —
//! a restored backup, a log cut short with its `synced` marker deleted, an
//! empty directory — is caught before it votes on old balances.
//!
//! ## The position
//!
//! The count of records ever synced to the directory's logs: the base a
//! snapshot folds in (`record.rs`, "TPCSNAP4" and on) plus the complete records
//! of the current log. A compaction writes `base + records` as the new
//! snapshot's base and starts an empty log, so the position survives it;
//! a crash half-way through a compaction leaves either the old snapshot
//! and log or the new ones, the same position either way. Every sync that
//! writes a record raises it; nothing lowers it but losing files, which is
//! the point. A copy of the directory taken earlier has a lower position,
//! and so has a log cut short.
//!
//! A node reports only its *durable* position ([`super::Store::position`],
//! read after each sync), so a crash can never take back what it reported.
//!
//! ## What the coordinator heard: the `heard` sidecar
//!
//! A coordinator (each replica) keeps, per participant *name*, the highest
//! position that participant reported in an authenticated datagram, and
//! stamps every datagram to it with that number (the history module). It
//! writes that table to `DIR/heard` now and then (every few seconds when
//! it changed) and at shutdown, atomically (a temporary file, fsync,
//! rename, fsync of the directory): never on a purchase's path. The table
//! may therefore be stale after a crash, or missing (a coordinator on an
//! empty directory). A stale or missing entry is *lower* than what the
//! participant really reached, so it only weakens the check — a rollback
//! to a position between the two goes unnoticed — and can never raise a
//! false alarm: a participant's durable position never goes below anything
//! it reported. The check is only as strong as the last write of this file.
//!
//! ```text
//! DIR/heard      TOML, participant name = highest position heard:
//!                wallet = 1234
//!                order = 1180
//! ```

use super::dir::{io_err, sync_dir};
use super::fs::Fs;
use super::StoreStats;
use crate::runtime::error::Result;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The highest history position heard from each participant, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Heard(pub BTreeMap<String, u64>);

/// The sidecar's file in `dir`.
pub fn heard_path(dir: &Path) -> PathBuf {
    dir.join("heard")
}

impl Heard {
    /// Reads `DIR/heard`: empty if there is none. An unreadable or
    /// damaged file is logged and read as empty (it only weakens the
    /// check; see the module's doc).
    pub fn read(fs: &dyn Fs, dir: &Path) -> Heard {
        let path = heard_path(dir);
        if !fs.exists(&path) {
            return Heard::default();
        }
        let parsed = fs
            .read(&path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| String::from_utf8(bytes).map_err(|e| e.to_string()))
            .and_then(|text| toml::from_str(&text).map_err(|e| e.to_string()));
        match parsed {
            Ok(map) => Heard(map),
            Err(e) => {
                tracing::warn!(
                    file = %path.display(),
                    "cannot read the participants' history positions ({e}): starting \
                     without them (the rollback check is weaker until they are heard again)"
                );
                Heard::default()
            }
        }
    }

    /// Writes it to `DIR/heard` atomically.
    pub fn write(&self, fs: &dyn Fs, dir: &Path) -> Result<()> {
        let path = heard_path(dir);
        let tmp = dir.join("heard.tmp");
        let text = toml::to_string(&self.0).expect("a map of numbers serializes");
        let mut f = fs.create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(text.as_bytes()).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        drop(f);
        fs.rename(&tmp, &path).map_err(io_err(&path))?;
        // Not counted in the node's storage counters (not its log).
        sync_dir(fs, dir, &mut StoreStats::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::storage::{LogStore, RealFs, Store};
    use twopc_model::{PartStorage, Storage};

    fn state(n: u64) -> Storage {
        Storage::Participant(PartStorage {
            levels: [("ann".to_string(), n)].into_iter().collect(),
            ..PartStorage::default()
        })
    }

    /// The position counts synced records, survives compaction and a
    /// restart, and a copy taken earlier is behind.
    #[test]
    fn the_position_counts_synced_records_across_compactions() {
        let dir = tempfile::tempdir().unwrap();
        let copy = tempfile::tempdir().unwrap();
        let (mut store, _) = LogStore::open_with(dir.path(), 1).unwrap();
        assert_eq!(store.position(), Some(0));
        for n in 1..=5 {
            store.stage(state(n)).unwrap();
            assert_eq!(store.position(), Some(n - 1), "staged is not durable");
            store.sync().unwrap();
            assert_eq!(store.position(), Some(n));
        }
        assert!(store.stats().compactions > 0, "compacted on the way");
        drop(store);
        for f in std::fs::read_dir(dir.path()).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), copy.path().join(f.file_name())).unwrap();
        }
        let (mut store, _) = LogStore::open_with(dir.path(), 1).unwrap();
        assert_eq!(store.position(), Some(5), "survives a restart");
        store.stage(state(6)).unwrap();
        store.sync().unwrap();
        assert_eq!(store.restamp(3).unwrap(), 6, "never lowered");
        assert_eq!(store.restamp(40).unwrap(), 40);
        drop(store);
        let (store, stored) = LogStore::open_with(dir.path(), 1).unwrap();
        assert_eq!((store.position(), stored), (Some(40), Some(state(6))));
        let (store, _) = LogStore::open_with(copy.path(), 1).unwrap();
        assert_eq!(store.position(), Some(5), "the copy is behind");
    }

    #[test]
    fn heard_positions_round_trip_and_a_damaged_file_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Heard::read(&RealFs, dir.path()), Heard::default());
        let heard = Heard([("wallet".to_string(), 12), ("order".to_string(), 9)].into());
        heard.write(&RealFs, dir.path()).unwrap();
        assert_eq!(Heard::read(&RealFs, dir.path()), heard);
        assert!(!dir.path().join("heard.tmp").exists());
        std::fs::write(heard_path(dir.path()), "wallet = \"x").unwrap();
        assert_eq!(Heard::read(&RealFs, dir.path()), Heard::default());
    }
}
