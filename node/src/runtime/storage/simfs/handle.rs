//! The handles a [`SimFs`](super::SimFs) gives out: open files and held locks. Each
//! belongs to the boot it was made in; after a power cut it is dead.

use super::{Disk, Pending};
use crate::runtime::storage::fs::{FsFile, LockGuard};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

/// An open file of a [`SimFs`](super::SimFs).
#[derive(Debug)]
pub(super) struct SimFile {
    pub(super) disk: Arc<Mutex<Disk>>,
    pub(super) ino: u64,
    /// The boot it was opened in.
    pub(super) boot: u64,
    /// The offset of the next `write_all`; `None`: append mode.
    pub(super) pos: Option<u64>,
}

impl SimFile {
    /// The disk, if this handle's process is still alive (no power cut since).
    fn disk(&self) -> io::Result<MutexGuard<'_, Disk>> {
        let disk = self.disk.lock().unwrap_or_else(|e| e.into_inner());
        if disk.boot != self.boot {
            return Err(io::Error::other(
                "file handle of before a power cut (simulated disk)",
            ));
        }
        Ok(disk)
    }

    fn sync(&self) -> io::Result<()> {
        let mut disk = self.disk()?;
        let inode = disk
            .inodes
            .get_mut(&self.ino)
            .expect("an open inode exists");
        inode.durable = inode.current.clone();
        inode.pending.clear();
        disk.stats.fsyncs += 1;
        disk.changed()
    }
}

impl FsFile for SimFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut disk = self.disk()?;
        let end = disk.inodes[&self.ino].current.len() as u64;
        let offset = self.pos.unwrap_or(end);
        disk.write(self.ino, offset, buf);
        disk.changed()?;
        drop(disk);
        if let Some(pos) = &mut self.pos {
            *pos += buf.len() as u64;
        }
        Ok(())
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut disk = self.disk()?;
        disk.write(self.ino, offset, buf);
        disk.changed()
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut disk = self.disk()?;
        let inode = disk
            .inodes
            .get_mut(&self.ino)
            .expect("an open inode exists");
        inode.current.resize(len as usize, 0);
        inode.pending.push(Pending::SetLen(len));
        disk.changed()
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        if let Ok(mut disk) = self.disk() {
            if let Some(inode) = disk.inodes.get_mut(&self.ino) {
                inode.open -= 1;
            }
            disk.collect();
        }
    }
}

/// A held lock of a [`SimFs`](super::SimFs); a power cut releases it too.
#[derive(Debug)]
pub(super) struct SimLock {
    pub(super) disk: Arc<Mutex<Disk>>,
    pub(super) path: PathBuf,
    pub(super) id: u64,
}

impl LockGuard for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut disk = self.disk.lock().unwrap_or_else(|e| e.into_inner());
        if disk.locks.get(&self.path) == Some(&self.id) {
            disk.locks.remove(&self.path);
        }
    }
}
