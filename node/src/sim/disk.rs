//! The simulation's disks: where a simulated node's `Save`s go, and what a
//! kill or a power cut leaves of them.
//!
//! A [`SimDisk`] belongs to one node for the whole run and outlives its
//! incarnations: [`SimDisk::open`] is a (re)start — it hands the runtime a
//! [`Store`] and the state a replay finds — and [`SimDisk::crash`] is the
//! end of an incarnation. The two kinds of crash differ exactly as on a real
//! machine: a **kill** (`kill -9`, a panic) loses what the process held in
//! memory (a staged save not yet written) but keeps every `write` the kernel
//! accepted; a **power cut** loses, besides, everything written since the
//! last fsync.

use crate::error::Result;
use crate::mutant::RuntimeMutant;
use crate::storage::{Store, StoreStats};
use rand::rngs::StdRng;
use std::sync::{Arc, Mutex};
use twopc_model::Storage;

/// How an incarnation ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crash {
    /// The process dies; the kernel's page cache survives.
    Kill,
    /// The machine loses power; unsynced writes are lost (or torn).
    PowerCut,
}

/// One node's disk across its incarnations.
pub trait SimDisk: Send {
    /// A (re)start: the store the runtime writes to and the state a replay
    /// of the disk finds (`None`: nothing saved). An error is a refusal to
    /// start (lost or damaged data).
    fn open(&mut self) -> Result<(Box<dyn Store>, Option<Storage>)>;
    /// The incarnation ends so. The store handed out by `open` is dropped by
    /// the caller before or after; either way it is not used again.
    fn crash(&mut self, kind: Crash, rng: &mut StdRng);
    /// fsyncs done so far, over every incarnation.
    fn fsyncs(&self) -> u64;
}

/// Compaction in [`MemDisk`]: a snapshot is taken every this many syncs.
const SNAPSHOT_EVERY: u64 = 16;

/// A disk that holds whole `Storage` values: the durable one, the one the
/// kernel has (written, maybe not synced), and a periodic snapshot. It
/// models durability exactly as the runtime relies on it — a sync makes the
/// newest staged state durable — without the log's byte format, so a run
/// costs little; the log's own code runs on `SimFs` instead.
#[derive(Clone, Debug, Default)]
pub struct MemDisk {
    inner: Arc<Mutex<MemInner>>,
    mutant: Option<RuntimeMutant>,
}

#[derive(Debug, Default)]
struct MemInner {
    /// What survives a power cut.
    durable: Option<Storage>,
    /// What the kernel holds: survives a kill.
    written: Option<Storage>,
    /// The last compaction's state (durable).
    snapshot: Option<Storage>,
    syncs: u64,
}

impl MemDisk {
    /// An empty disk; `mutant` may break its fsync or its restart.
    pub fn new(mutant: Option<RuntimeMutant>) -> Self {
        MemDisk {
            inner: Arc::default(),
            mutant,
        }
    }
}

impl SimDisk for MemDisk {
    fn open(&mut self) -> Result<(Box<dyn Store>, Option<Storage>)> {
        let inner = self.inner.lock().expect("disk lock");
        let found = match self.mutant {
            Some(RuntimeMutant::RestartFromSnapshot) => inner.snapshot.clone(),
            _ => inner.written.clone(),
        };
        let store = MemDiskStore {
            inner: self.inner.clone(),
            staged: None,
            no_fsync: self.mutant == Some(RuntimeMutant::NoFsync),
        };
        Ok((Box::new(store), found))
    }

    fn crash(&mut self, kind: Crash, _rng: &mut StdRng) {
        let mut inner = self.inner.lock().expect("disk lock");
        if kind == Crash::PowerCut {
            inner.written = inner.durable.clone();
        }
    }

    fn fsyncs(&self) -> u64 {
        self.inner.lock().expect("disk lock").syncs
    }
}

/// The store one incarnation writes through.
struct MemDiskStore {
    inner: Arc<Mutex<MemInner>>,
    staged: Option<Storage>,
    no_fsync: bool,
}

impl Store for MemDiskStore {
    fn stage(&mut self, storage: Storage) -> Result<()> {
        self.staged = Some(storage);
        Ok(())
    }

    fn needs_sync(&self) -> bool {
        self.staged.is_some()
    }

    fn sync(&mut self) -> Result<()> {
        let Some(storage) = self.staged.take() else {
            return Ok(());
        };
        let mut inner = self.inner.lock().expect("disk lock");
        inner.written = Some(storage.clone());
        inner.syncs += 1;
        if !self.no_fsync {
            // The snapshot is written whole and synced before it replaces
            // the old one (as `LogStore` compacts).
            if inner.syncs % SNAPSHOT_EVERY == 1 {
                inner.snapshot = Some(storage.clone());
            }
            inner.durable = Some(storage);
        }
        Ok(())
    }

    fn stats(&self) -> StoreStats {
        let inner = self.inner.lock().expect("disk lock");
        StoreStats {
            fsyncs: inner.syncs,
            ..StoreStats::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use twopc_model::ClientState;

    fn client(n: usize) -> Storage {
        Storage::Client(ClientState {
            seen: Vec::with_capacity(n),
        })
    }

    fn reopen(disk: &mut MemDisk) -> Option<Storage> {
        disk.open().unwrap().1
    }

    #[test]
    fn a_kill_keeps_synced_saves_and_loses_staged_ones() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut disk = MemDisk::new(None);
        let (mut store, found) = disk.open().unwrap();
        assert_eq!(found, None);
        store.stage(client(1)).unwrap();
        store.sync().unwrap();
        store.stage(client(2)).unwrap();
        drop(store);
        disk.crash(Crash::Kill, &mut rng);
        assert_eq!(reopen(&mut disk), Some(client(1)));
        disk.crash(Crash::PowerCut, &mut rng);
        assert_eq!(reopen(&mut disk), Some(client(1)));
    }

    #[test]
    fn without_fsync_a_power_cut_loses_what_a_kill_keeps() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut disk = MemDisk::new(Some(RuntimeMutant::NoFsync));
        let (mut store, _) = disk.open().unwrap();
        store.stage(client(1)).unwrap();
        store.sync().unwrap();
        disk.crash(Crash::Kill, &mut rng);
        assert_eq!(reopen(&mut disk), Some(client(1)));
        disk.crash(Crash::PowerCut, &mut rng);
        assert_eq!(reopen(&mut disk), None);
    }

    #[test]
    fn restart_from_snapshot_forgets_what_came_after_it() {
        let mut disk = MemDisk::new(Some(RuntimeMutant::RestartFromSnapshot));
        let (mut store, _) = disk.open().unwrap();
        for n in 1..=3 {
            store.stage(client(n)).unwrap();
            store.sync().unwrap();
        }
        // The snapshot is the first sync's state.
        assert_eq!(reopen(&mut disk), Some(client(1)));
    }
}
