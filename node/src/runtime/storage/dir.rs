//! A data directory's ownership: who may use it, checked before anything in
//! it is read for repair, cut or deleted.
//!
//! ```text
//! DIR/LOCK   flock'ed for the life of the process: one process per directory
//! DIR/NODE   the node it belongs to:  name = "wallet"
//!                                     role = "wallet"
//!            (older versions wrote the name alone, on one line)
//! ```
//!
//! Starting the wallet on the order service's data, or a participant on the
//! coordinator's log, would silently replace one node's durable state with
//! another's; [`DataDir::claim`] refuses it before the log is opened, so a
//! torn tail is never cut and an old log never deleted in a directory that
//! belongs to someone else. A directory without a `NODE` file is recorded
//! as the claimant's only when the store is opened (`log.rs`), after the
//! replay showed that its state fits the role.
//!
//! `NODE` is one deletable file, so it is not the only record: the header
//! of every log and snapshot names its node too ([`Identity`],
//! `record.rs`), and [`super::open_store`] checks that against the
//! claimant after the replay. With `NODE` deleted, the headers still refuse
//! another node (naming the file and both names), and `NODE` is written
//! again from the claimant when they agree.

use super::fs::{Fs, LockGuard, RealFs};
use super::StoreStats;
use crate::runtime::error::{Error, Result};
use crate::runtime::role::Role;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A data directory this process holds the lock of.
#[derive(Debug)]
pub struct DataDir {
    fs: Arc<dyn Fs>,
    path: PathBuf,
    _lock: Box<dyn LockGuard>,
    /// fsyncs done while creating it.
    pub(super) stats: StoreStats,
    /// The node that claimed it (`None`: locked without a claim).
    claimant: Option<Identity>,
    /// The owner to record in `NODE`, if it is not recorded yet.
    unrecorded: Option<Owner>,
}

/// A node's identity: its name and role, as the `NODE` file and the header
/// of every log and snapshot record it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The node's name in the cluster file.
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// The `NODE` file.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Owner {
    name: String,
    /// Absent in files written by older versions.
    role: Option<Role>,
}

impl Owner {
    fn parse(text: &str) -> Owner {
        toml::from_str(text).unwrap_or_else(|_| Owner {
            name: text.trim().to_string(),
            role: None,
        })
    }
}

/// The error of an I/O failure on `path`.
pub(super) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::StorageIo {
        path: path.to_path_buf(),
        source,
    }
}

/// fsyncs a directory, so that files created or renamed in it stay.
pub(super) fn sync_dir(fs: &dyn Fs, dir: &Path, stats: &mut StoreStats) -> Result<()> {
    fs.sync_dir(dir).map_err(io_err(dir))?;
    stats.fsyncs += 1;
    Ok(())
}

impl DataDir {
    /// Creates `dir` if needed and locks it, without asking who owns it (for
    /// tests and tools that fill a directory through the storage API).
    pub fn lock(dir: &Path) -> Result<DataDir> {
        DataDir::lock_in(Arc::new(RealFs), dir)
    }

    /// [`DataDir::lock`] on the disk `fs`.
    pub fn lock_in(fs: Arc<dyn Fs>, dir: &Path) -> Result<DataDir> {
        let mut stats = StoreStats::default();
        if !fs.exists(dir) {
            fs.create_dir_all(dir).map_err(io_err(dir))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(&*fs, parent, &mut stats)?;
            }
        }
        let lock_path = dir.join("LOCK");
        let lock = fs.lock(&lock_path).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock => Error::Locked {
                dir: dir.to_path_buf(),
                lock: lock_path.clone(),
            },
            _ => io_err(&lock_path)(e),
        })?;
        Ok(DataDir {
            fs,
            path: dir.to_path_buf(),
            _lock: lock,
            stats,
            claimant: None,
            unrecorded: None,
        })
    }

    /// Locks `dir` for node `name` playing `role`, and refuses a directory
    /// that another node, or this name in another role, has claimed. Reads
    /// only; the owner of an unclaimed directory is recorded by
    /// [`DataDir::record_owner`].
    pub fn claim(dir: &Path, name: &str, role: Role) -> Result<DataDir> {
        DataDir::claim_in(Arc::new(RealFs), dir, name, role)
    }

    /// [`DataDir::claim`] on the disk `fs`. (The identity in the headers of
    /// its logs and snapshot is checked after the replay: `open_store`.)
    pub fn claim_in(fs: Arc<dyn Fs>, dir: &Path, name: &str, role: Role) -> Result<DataDir> {
        let mut data = DataDir::lock_in(fs, dir)?;
        data.claimant = Some(Identity {
            name: name.to_string(),
            role,
        });
        let file = dir.join("NODE");
        match data.fs.read(&file) {
            Ok(bytes) => {
                let owner = Owner::parse(&String::from_utf8_lossy(&bytes));
                if owner.name != name {
                    return Err(Error::NotOwner {
                        dir: dir.to_path_buf(),
                        owner: owner.name,
                        name: name.to_string(),
                        file,
                    });
                }
                if owner.role.is_some_and(|r| r != role) {
                    return Err(Error::WrongRole {
                        dir: dir.to_path_buf(),
                        role,
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                data.unrecorded = Some(Owner {
                    name: name.to_string(),
                    role: Some(role),
                });
            }
            Err(e) => return Err(io_err(&file)(e)),
        }
        Ok(data)
    }

    /// Writes the `NODE` file of a directory claimed without one.
    pub fn record_owner(&mut self) -> Result<()> {
        let Some(owner) = self.unrecorded.take() else {
            return Ok(());
        };
        let file = self.path.join("NODE");
        let text = toml::to_string(&owner).expect("an owner serializes");
        let mut f = self.fs.create(&file).map_err(io_err(&file))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(io_err(&file))?;
        // Not counted: the node's counters count its storage's fsyncs.
        sync_dir(&*self.fs, &self.path, &mut StoreStats::default())
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The disk it is on.
    pub fn fs(&self) -> &Arc<dyn Fs> {
        &self.fs
    }

    /// The node that claimed it, if it was claimed (not only locked).
    pub fn claimant(&self) -> Option<&Identity> {
        self.claimant.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn a_data_dir_belongs_to_one_node_in_one_role() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = DataDir::claim(dir.path(), "wallet", Role::Wallet).unwrap();
        assert!(!dir.path().join("NODE").exists(), "claiming only reads");
        first.record_owner().unwrap();
        drop(first);
        drop(DataDir::claim(dir.path(), "wallet", Role::Wallet).unwrap());
        let err = DataDir::claim(dir.path(), "order", Role::Order)
            .unwrap_err()
            .to_string();
        assert!(err.contains("belongs to node \"wallet\""), "{err}");
        let err = DataDir::claim(dir.path(), "wallet", Role::Order).unwrap_err();
        assert!(matches!(err, Error::WrongRole { .. }), "{err}");
        let text = fs::read_to_string(dir.path().join("NODE")).unwrap();
        assert_eq!(text, "name = \"wallet\"\nrole = \"wallet\"\n");
    }

    #[test]
    fn a_node_file_of_an_older_version_names_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("NODE"), "wallet\n").unwrap();
        drop(DataDir::claim(dir.path(), "wallet", Role::Wallet).unwrap());
        let err = DataDir::claim(dir.path(), "order", Role::Order).unwrap_err();
        assert!(matches!(err, Error::NotOwner { ref owner, .. } if owner == "wallet"));
        assert_eq!(
            fs::read_to_string(dir.path().join("NODE")).unwrap(),
            "wallet\n",
            "left as it was"
        );
    }

    #[test]
    fn a_data_dir_is_locked_by_one_process() {
        let dir = tempfile::tempdir().unwrap();
        let _held = DataDir::lock(dir.path()).unwrap();
        let err = DataDir::claim(dir.path(), "wallet", Role::Wallet).unwrap_err();
        assert!(matches!(err, Error::Locked { .. }), "{err}");
    }
}
