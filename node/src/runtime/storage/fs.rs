//! The file operations storage does, behind one trait, so the same storage
//! code runs on the real disk ([`RealFs`]) and on a simulated one
//! ([`SimFs`](super::SimFs), `simfs/`) that loses unsynced writes on a
//! power cut.
//!
//! Storage holds its disk as an `Arc<dyn Fs>`, not as a type parameter:
//! `LogStore` stays one nameable type (the runtime's `Shell<UdpTransport,
//! LogStore>`, `twopc inspect`, the tests), the simulator picks a disk per
//! node at run time, and a virtual call costs nanoseconds next to the
//! system calls and fsyncs behind it.
//!
//! The trait covers exactly what storage does and nothing else: whole-file
//! reads (replay reads each file once), directory listings, files opened to
//! append, to write at an offset (the synced-length marker) or created
//! whole, fsyncs of files and of directories, rename, remove, `set_len`,
//! and the lock that makes a directory one process's.

use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// A disk, as storage uses it. Paths are absolute or relative as the
/// caller gives them; errors are the operating system's (or the
/// simulation's), wrapped with the path by the caller.
pub trait Fs: Send + Sync + Debug {
    /// The whole contents of a file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// The names of the entries of a directory (files and directories), in
    /// no particular order.
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Whether `path` names a file or directory.
    fn exists(&self, path: &Path) -> bool;
    /// Creates `dir` and its missing parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Creates `path`, or truncates it if it exists, open for writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Opens an existing file to append to it.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Opens a file for positional writes and `set_len`, creating it
    /// (empty) if `create` and it does not exist; never truncates.
    fn open_write(&self, path: &Path, create: bool) -> io::Result<Box<dyn FsFile>>;
    /// Renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// fsyncs a directory: its entries created, renamed or removed so far
    /// become durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Locks the file `path` (creating it if needed) exclusively, without
    /// waiting, until the returned guard is dropped. Fails with
    /// [`io::ErrorKind::WouldBlock`] if someone holds it.
    fn lock(&self, path: &Path) -> io::Result<Box<dyn LockGuard>>;
}

/// An open file.
pub trait FsFile: Send + Sync + Debug {
    /// Writes all of `buf` at the end (append mode) or at the file offset.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Writes all of `buf` at `offset` (`pwrite`).
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// `fdatasync`: the file's data (and its length) become durable.
    fn sync_data(&self) -> io::Result<()>;
    /// `fsync`: data and metadata become durable.
    fn sync_all(&self) -> io::Result<()>;
    /// Truncates or extends the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
}

/// A held lock; dropping it releases the lock.
pub trait LockGuard: Send + Sync + Debug {}

/// The real disk: `std::fs`, `flock` through `fs2`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

impl FsFile for File {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        Write::write_all(self, buf)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }
    fn sync_all(&self) -> io::Result<()> {
        File::sync_all(self)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
}

/// An open `LOCK` file; closing it releases the `flock`.
impl LockGuard for File {}

impl Fs for RealFs {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        fs::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect()
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        Ok(Box::new(File::create(path)?))
    }
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        Ok(Box::new(OpenOptions::new().append(true).open(path)?))
    }
    fn open_write(&self, path: &Path, create: bool) -> io::Result<Box<dyn FsFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)?;
        Ok(Box::new(file))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn LockGuard>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        fs2::FileExt::try_lock_exclusive(&file)
            .map_err(|_| io::Error::from(io::ErrorKind::WouldBlock))?;
        Ok(Box::new(file))
    }
}
