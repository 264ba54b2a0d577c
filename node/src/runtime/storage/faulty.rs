//! Disk faults injected on purpose — testing aids, off by default (see
//! `faults.rs` for the network's). They wrap the log's writes and fsyncs:
//! `--fault-fsync-fail-after N` lets N log fsyncs succeed and fails the
//! next; `--fault-disk-full-after BYTES` lets that many log bytes land and
//! then, as a full disk does, writes part of the next record and fails with
//! "no space left on device". `skip_fsync` (tests and the simulator only)
//! makes every log fsync return success without syncing: a disk that lies,
//! or a build that forgot its fsync, which only a power cut can tell.

use super::fs::FsFile;
use std::io;

/// The disk faults of one log store, and what it has written so far.
#[derive(Clone, Copy, Debug, Default)]
pub struct DiskFaults {
    /// Log fsyncs that succeed before one fails.
    pub fsync_fail_after: Option<u64>,
    /// Log bytes that fit before the disk is "full".
    pub disk_full_after: Option<u64>,
    /// Log fsyncs report success without syncing.
    pub skip_fsync: bool,
    /// Log fsyncs done by this process.
    syncs: u64,
    /// Log bytes written by this process.
    written: u64,
}

impl DiskFaults {
    /// Faults as configured (`None`: that fault is off).
    pub fn new(fsync_fail_after: Option<u64>, disk_full_after: Option<u64>) -> Self {
        DiskFaults {
            fsync_fail_after,
            disk_full_after,
            ..DiskFaults::default()
        }
    }

    /// These faults, with every log fsync skipped (`skip_fsync`) or not.
    pub fn with_skip_fsync(mut self, skip: bool) -> Self {
        self.skip_fsync = skip;
        self
    }

    /// Writes `buf` to `file`, or as much as the "disk" has room for.
    pub fn write_all(&mut self, file: &mut dyn FsFile, buf: &[u8]) -> io::Result<()> {
        if let Some(limit) = self.disk_full_after {
            let room = limit.saturating_sub(self.written) as usize;
            if buf.len() > room {
                let _ = file.write_all(&buf[..room]);
                self.written += room as u64;
                return Err(io::Error::from_raw_os_error(28)); // ENOSPC
            }
        }
        file.write_all(buf)?;
        self.written += buf.len() as u64;
        Ok(())
    }

    /// [`DiskFaults::write_all`] at `offset` (`pwrite`, a preallocated log).
    pub fn write_all_at(&mut self, file: &dyn FsFile, buf: &[u8], offset: u64) -> io::Result<()> {
        if let Some(limit) = self.disk_full_after {
            let room = limit.saturating_sub(self.written) as usize;
            if buf.len() > room {
                let _ = file.write_all_at(&buf[..room], offset);
                self.written += room as u64;
                return Err(io::Error::from_raw_os_error(28)); // ENOSPC
            }
        }
        file.write_all_at(buf, offset)?;
        self.written += buf.len() as u64;
        Ok(())
    }

    /// `fdatasync`s `file`, unless this is the fsync that fails.
    pub fn sync_data(&mut self, file: &dyn FsFile) -> io::Result<()> {
        if self.fsync_fail_after.is_some_and(|n| self.syncs >= n) {
            return Err(io::Error::other(
                "fsync failed (injected by --fault-fsync-fail-after)",
            ));
        }
        if !self.skip_fsync {
            file.sync_data()?;
        }
        self.syncs += 1;
        Ok(())
    }
}
