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

use crate::runtime::error::Result;
use crate::runtime::mutant::RuntimeMutant;
use crate::runtime::role::Role;
use crate::runtime::storage::{open_store, DiskFaults, Fs, SimFs, Store, StoreStats};
use rand::rngs::StdRng;
use rand::Rng;
use std::path::PathBuf;
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
    /// Arms a power cut in the middle of the next sync (after a few of its
    /// writes); the sync then fails. A disk that cannot tear a sync does
    /// nothing and the caller cuts the power after it.
    fn cut_power_during_next_sync(&mut self, _rng: &mut StdRng) {}
}

/// Which disk the simulated nodes run on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DiskKind {
    /// The node's real storage code (`LogStore`: log, snapshots, the
    /// synced-length marker, repair at open, the owner check) on
    /// [`SimFs`], a disk whose unsynced writes vanish or tear on a power cut.
    #[default]
    Log,
    /// Whole states in memory ([`MemDisk`]): the durability contract alone,
    /// without the byte format. Faster.
    Mem,
}

/// Compaction floor in the simulation: small, so runs compact often.
const SIM_COMPACT_MIN: u64 = 4096;

/// The node's real storage code on a simulated disk: one [`SimFs`] per
/// node (one machine each), its data directory opened through
/// [`open_store`] at every start, as `twopc node` does.
#[derive(Debug)]
pub struct LogDisk {
    fs: SimFs,
    dir: PathBuf,
    name: String,
    role: Role,
    mutant: Option<RuntimeMutant>,
}

impl LogDisk {
    /// A blank disk for node `name` playing `role`.
    pub fn new(name: &str, role: Role, mutant: Option<RuntimeMutant>) -> Self {
        LogDisk {
            fs: SimFs::new(),
            dir: PathBuf::from("/data").join(name),
            name: name.to_string(),
            role,
            mutant,
        }
    }
}

impl SimDisk for LogDisk {
    fn open(&mut self) -> Result<(Box<dyn Store>, Option<Storage>)> {
        let fs: Arc<dyn Fs> = Arc::new(self.fs.clone());
        let (store, mut stored) = open_store(
            fs.clone(),
            &self.dir,
            &self.name,
            self.role,
            SIM_COMPACT_MIN,
            || Ok(None),
        )?;
        let store = match self.mutant {
            Some(RuntimeMutant::NoFsync) => {
                store.with_faults(DiskFaults::default().with_skip_fsync(true))
            }
            Some(RuntimeMutant::RestartFromSnapshot) => {
                // The actor starts from the snapshot alone; the store goes
                // on from the whole replay, so its log stays consistent.
                stored = crate::runtime::storage::snapshot_in(&*fs, &self.dir)?;
                store
            }
            _ => store,
        };
        Ok((Box::new(store), stored))
    }

    fn crash(&mut self, kind: Crash, rng: &mut StdRng) {
        self.fs.disarm();
        if kind == Crash::PowerCut {
            self.fs.power_cut_with(rng);
        }
    }

    fn fsyncs(&self) -> u64 {
        self.fs.stats().fsyncs
    }

    fn cut_power_during_next_sync(&mut self, rng: &mut StdRng) {
        // A sync appends the record, fsyncs, then writes the marker.
        self.fs
            .cut_power_after(rng.random_range(1..=3), rng.random());
    }
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
        // Told apart by the ticket: whole states, compared as values.
        Storage::Client(ClientState {
            seen: Vec::new(),
            ticket: Some(n as u64),
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
