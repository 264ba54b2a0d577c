//! [`SimFs`]: a disk in memory, deterministic, that loses what was not
//! synced when its power is cut — for the simulator and storage's tests.
//!
//! A disk without a battery-backed cache, ext4-like:
//!
//! - Each file (an inode) has *current* contents, what reads see, and
//!   *durable* contents, what survives a power cut. `sync_data`/`sync_all`
//!   make current durable.
//! - Directory entries (creating, renaming, removing a file or directory)
//!   change the *current* listing at once and become durable only when their
//!   directory is fsynced (`sync_dir`), all of that directory's entries at
//!   once. A file fsynced but whose entry was never made durable vanishes.
//!   Directories above the ones storage creates are assumed durable.
//! - [`SimFs::power_cut`] (seeded): directory listings revert to their
//!   durable state; every file reverts to its durable contents, except that
//!   of the bytes appended since its last fsync a random prefix survives —
//!   none, all, or a torn part (a third of the time each); of each
//!   unsynced write elsewhere in the file (`pwrite`, as into a preallocated
//!   log's zeros) none, all, or a torn part: each of its 64-byte-aligned
//!   pieces on its own coin, holes included (finer than a disk's sectors,
//!   so that small records tear too); and each unsynced `set_len` survives
//!   or not, as a coin falls. Locks are released, and every file handle of
//!   before the cut fails from then on (its process is gone).
//! - [`SimFs::cut_power_after`] arms a fuse: the power is cut right after
//!   the n-th next change (a write, `set_len`, fsync, create, rename,
//!   remove), and that call fails — a cut in the middle of a sync or a
//!   compaction, with the write just made possibly torn.
//! - [`SimFs::latent_read_errors`] (optional, off by default): each read
//!   of a whole file fails with a seeded chance, as a latent sector error
//!   does; what is on the disk is unchanged.
//!
//! The same calls and the same seeds give the same disk, byte for byte.

mod handle;

use super::fs::{Fs, FsFile, LockGuard};
use handle::{SimFile, SimLock};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// A simulated disk. Clones share it.
#[derive(Clone, Debug, Default)]
pub struct SimFs {
    disk: Arc<Mutex<Disk>>,
}

/// What a [`SimFs`] has done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// fsyncs of files and directories.
    pub fsyncs: u64,
    /// Bytes written to files.
    pub bytes_written: u64,
    /// Power cuts.
    pub power_cuts: u64,
    /// Reads failed by a latent sector error.
    pub read_errors: u64,
}

#[derive(Debug, Default)]
struct Disk {
    /// Current directory entries: file path -> inode.
    files: BTreeMap<PathBuf, u64>,
    /// Durable directory entries.
    durable_files: BTreeMap<PathBuf, u64>,
    /// Current directories.
    dirs: BTreeSet<PathBuf>,
    /// Durable directories.
    durable_dirs: BTreeSet<PathBuf>,
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    /// Held locks: path -> the id of the guard holding it.
    locks: BTreeMap<PathBuf, u64>,
    next_lock: u64,
    /// Power cuts so far: handles of an earlier boot are dead.
    boot: u64,
    /// Changes left before the power is cut, and the seed of that cut.
    fuse: Option<(u64, u64)>,
    /// Latent sector errors: the chance per read, in millionths, and the
    /// generator that draws them.
    read_errors: Option<(u32, StdRng)>,
    stats: SimStats,
}

#[derive(Debug, Default)]
struct Inode {
    current: Vec<u8>,
    durable: Vec<u8>,
    /// Changes since the last fsync, in order.
    pending: Vec<Pending>,
    /// Open handles.
    open: usize,
}

#[derive(Debug)]
enum Pending {
    /// Bytes written at `offset`; `append`: at the end of the file then.
    Write {
        offset: u64,
        data: Vec<u8>,
        append: bool,
    },
    SetLen(u64),
}

fn write_at(buf: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let offset = offset as usize;
    if buf.len() < offset + data.len() {
        buf.resize(offset + data.len(), 0);
    }
    buf[offset..offset + data.len()].copy_from_slice(data);
}

/// Bytes of the pieces an unsynced overwrite may be torn into.
const PIECE: u64 = 64;

/// What a power cut leaves of an unsynced overwrite that is torn: each of
/// its [`PIECE`]-aligned pieces (by file offset) lands or not, as a coin
/// falls, in any combination, holes included.
fn torn_write(buf: &mut Vec<u8>, offset: u64, data: &[u8], rng: &mut impl Rng) {
    let end = offset + data.len() as u64;
    let mut at = offset;
    while at < end {
        let next = ((at / PIECE + 1) * PIECE).min(end);
        if rng.random_bool(0.5) {
            let piece = &data[(at - offset) as usize..(next - offset) as usize];
            write_at(buf, at, piece);
        }
        at = next;
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!(
            "{}: no such file or directory (simulated disk)",
            path.display()
        ),
    )
}

/// The directory `path` is in ("" for a bare name).
fn parent(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The error of the call during which the power was cut.
fn power_lost() -> io::Error {
    io::Error::other("power cut (simulated disk)")
}

impl Disk {
    /// Counts a change made; cuts the power if it was the fuse's last.
    fn changed(&mut self) -> io::Result<()> {
        match &mut self.fuse {
            Some((0, seed)) | Some((1, seed)) => {
                let seed = *seed;
                self.fuse = None;
                self.power_cut(&mut StdRng::seed_from_u64(seed));
                Err(power_lost())
            }
            Some((left, _)) => {
                *left -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn dir_exists(&self, dir: &Path) -> bool {
        dir.as_os_str().is_empty() || dir == Path::new("/") || self.dirs.contains(dir)
    }

    fn inode(&mut self, path: &Path) -> io::Result<u64> {
        self.files.get(path).copied().ok_or_else(|| not_found(path))
    }

    /// The inode at `path`, created empty if there is none.
    fn create_if_missing(&mut self, path: &Path) -> io::Result<u64> {
        if let Some(&ino) = self.files.get(path) {
            return Ok(ino);
        }
        if !self.dir_exists(&parent(path)) {
            return Err(not_found(&parent(path)));
        }
        if self.dirs.contains(path) {
            return Err(io::Error::other(format!(
                "{}: is a directory (simulated disk)",
                path.display()
            )));
        }
        let ino = self.next_inode;
        self.next_inode += 1;
        self.inodes.insert(ino, Inode::default());
        self.files.insert(path.to_path_buf(), ino);
        Ok(ino)
    }

    fn open(&mut self, disk: &Arc<Mutex<Disk>>, ino: u64, pos: Option<u64>) -> Box<dyn FsFile> {
        self.inodes
            .get_mut(&ino)
            .expect("a listed inode exists")
            .open += 1;
        Box::new(SimFile {
            disk: disk.clone(),
            ino,
            boot: self.boot,
            pos,
        })
    }

    /// Forgets inodes no entry names and no handle holds.
    fn collect(&mut self) {
        let live: BTreeSet<u64> = self
            .files
            .values()
            .chain(self.durable_files.values())
            .copied()
            .collect();
        self.inodes
            .retain(|ino, inode| inode.open > 0 || live.contains(ino));
    }

    fn write(&mut self, ino: u64, offset: u64, data: &[u8]) {
        let inode = self.inodes.get_mut(&ino).expect("an open inode exists");
        let append = offset == inode.current.len() as u64;
        write_at(&mut inode.current, offset, data);
        inode.pending.push(Pending::Write {
            offset,
            data: data.to_vec(),
            append,
        });
        self.stats.bytes_written += data.len() as u64;
    }

    fn power_cut(&mut self, rng: &mut impl Rng) {
        // Directories above the durable entries are assumed durable.
        let above: Vec<PathBuf> = self
            .durable_files
            .keys()
            .chain(self.durable_dirs.iter())
            .flat_map(|p| p.ancestors().skip(1).map(Path::to_path_buf))
            .filter(|d| !d.as_os_str().is_empty() && d != Path::new("/"))
            .collect();
        self.durable_dirs.extend(above);
        self.files = self.durable_files.clone();
        self.dirs = self.durable_dirs.clone();
        self.locks.clear();
        self.boot += 1;
        self.stats.power_cuts += 1;
        for inode in self.inodes.values_mut() {
            inode.open = 0;
        }
        self.collect();
        for inode in self.inodes.values_mut() {
            let appended: usize = inode
                .pending
                .iter()
                .map(|p| match p {
                    Pending::Write {
                        data, append: true, ..
                    } => data.len(),
                    Pending::Write { .. } | Pending::SetLen(_) => 0,
                })
                .sum();
            let mut keep = match rng.random_range(0..3) {
                0 => 0,
                1 => appended,
                _ => rng.random_range(0..=appended),
            };
            let mut contents = std::mem::take(&mut inode.durable);
            for p in inode.pending.drain(..) {
                match p {
                    Pending::Write {
                        offset,
                        data,
                        append: true,
                    } => {
                        let n = keep.min(data.len());
                        keep -= n;
                        if n > 0 {
                            write_at(&mut contents, offset, &data[..n]);
                        }
                    }
                    Pending::Write { offset, data, .. } => match rng.random_range(0..3) {
                        0 => {}
                        1 => write_at(&mut contents, offset, &data),
                        _ => torn_write(&mut contents, offset, &data, rng),
                    },
                    Pending::SetLen(len) => {
                        if rng.random_bool(0.5) {
                            contents.resize(len as usize, 0);
                        }
                    }
                }
            }
            inode.durable = contents.clone();
            inode.current = contents;
        }
    }
}

impl SimFs {
    /// An empty disk.
    pub fn new() -> Self {
        Self::default()
    }

    fn disk(&self) -> MutexGuard<'_, Disk> {
        // A panic while holding the lock leaves a disk no worse than a
        // power cut would: keep going.
        self.disk.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Cuts the power: everything not made durable is lost, but for a
    /// random part of it chosen by `seed` (see the module's comment).
    pub fn power_cut(&self, seed: u64) {
        self.power_cut_with(&mut StdRng::seed_from_u64(seed));
    }

    /// [`SimFs::power_cut`] drawing from the simulator's own generator.
    pub fn power_cut_with(&self, rng: &mut impl Rng) {
        self.disk().power_cut(rng);
    }

    /// Arms the fuse: the power is cut (with `seed`) right after the
    /// `changes`-th next change to the disk, and that call fails. Replaces
    /// a fuse armed before; `changes` 0 counts as 1.
    pub fn cut_power_after(&self, changes: u64, seed: u64) {
        self.disk().fuse = Some((changes, seed));
    }

    /// Makes each read of a file fail with a chance of `per_million`
    /// millionths, drawn from `seed` (0 turns it off).
    pub fn latent_read_errors(&self, per_million: u32, seed: u64) {
        self.disk().read_errors =
            (per_million > 0).then(|| (per_million, StdRng::seed_from_u64(seed)));
    }

    /// Disarms the fuse; returns whether one was armed.
    pub fn disarm(&self) -> bool {
        self.disk().fuse.take().is_some()
    }

    /// Counters.
    pub fn stats(&self) -> SimStats {
        self.disk().stats
    }

    /// Replaces the contents of a file, current and durable at once (a
    /// test's damage: a cut, a flipped bit). Creates it if needed, and its
    /// entry is then durable.
    pub fn overwrite(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut disk = self.disk();
        let ino = disk.create_if_missing(path)?;
        disk.durable_files.insert(path.to_path_buf(), ino);
        let inode = disk.inodes.get_mut(&ino).expect("just listed");
        inode.current = bytes.to_vec();
        inode.durable = bytes.to_vec();
        inode.pending.clear();
        Ok(())
    }
}

impl Fs for SimFs {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut disk = self.disk();
        let ino = disk.inode(path)?;
        if let Some((per_million, rng)) = &mut disk.read_errors {
            if rng.random_range(0..1_000_000) < *per_million {
                disk.stats.read_errors += 1;
                return Err(io::Error::other(format!(
                    "{}: latent sector error (simulated disk)",
                    path.display()
                )));
            }
        }
        Ok(disk.inodes[&ino].current.clone())
    }

    fn read_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let disk = self.disk();
        if !disk.dir_exists(dir) {
            return Err(not_found(dir));
        }
        let names = disk
            .files
            .keys()
            .chain(disk.dirs.iter())
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        Ok(names)
    }

    fn exists(&self, path: &Path) -> bool {
        let disk = self.disk();
        disk.files.contains_key(path) || disk.dirs.contains(path)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut disk = self.disk();
        for d in dir.ancestors() {
            if disk.files.contains_key(d) {
                return Err(io::Error::other(format!(
                    "{}: a file is in the way (simulated disk)",
                    d.display()
                )));
            }
            if !disk.dir_exists(d) {
                disk.dirs.insert(d.to_path_buf());
            }
        }
        disk.changed()
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let mut disk = self.disk();
        let ino = disk.create_if_missing(path)?;
        let inode = disk.inodes.get_mut(&ino).expect("just listed");
        if !inode.current.is_empty() {
            inode.current.clear();
            inode.pending.push(Pending::SetLen(0));
        }
        disk.changed()?;
        Ok(disk.open(&self.disk, ino, Some(0)))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let mut disk = self.disk();
        let ino = disk.inode(path)?;
        Ok(disk.open(&self.disk, ino, None))
    }

    fn open_write(&self, path: &Path, create: bool) -> io::Result<Box<dyn FsFile>> {
        let mut disk = self.disk();
        let ino = match create {
            true => disk.create_if_missing(path)?,
            false => disk.inode(path)?,
        };
        if create {
            disk.changed()?;
        }
        Ok(disk.open(&self.disk, ino, Some(0)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut disk = self.disk();
        if !disk.dir_exists(&parent(to)) {
            return Err(not_found(&parent(to)));
        }
        let ino = disk.files.remove(from).ok_or_else(|| not_found(from))?;
        disk.files.insert(to.to_path_buf(), ino);
        disk.collect();
        disk.changed()
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.disk();
        disk.files.remove(path).ok_or_else(|| not_found(path))?;
        disk.collect();
        disk.changed()
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut disk = self.disk();
        if !disk.dir_exists(dir) {
            return Err(not_found(dir));
        }
        let here = |p: &PathBuf| p.parent() == Some(dir);
        let Disk {
            files,
            durable_files,
            dirs,
            durable_dirs,
            ..
        } = &mut *disk;
        durable_files.retain(|p, _| !here(p));
        durable_files.extend(
            files
                .iter()
                .filter(|(p, _)| here(p))
                .map(|(p, i)| (p.clone(), *i)),
        );
        durable_dirs.retain(|p| !here(p));
        durable_dirs.extend(dirs.iter().filter(|p| here(p)).cloned());
        disk.stats.fsyncs += 1;
        disk.collect();
        disk.changed()
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn LockGuard>> {
        let mut disk = self.disk();
        disk.create_if_missing(path)?;
        if disk.locks.contains_key(path) {
            return Err(io::Error::from(io::ErrorKind::WouldBlock));
        }
        let id = disk.next_lock;
        disk.next_lock += 1;
        disk.locks.insert(path.to_path_buf(), id);
        Ok(Box::new(SimLock {
            disk: self.disk.clone(),
            path: path.to_path_buf(),
            id,
        }))
    }
}
