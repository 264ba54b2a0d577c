//! The one way to open a node's data directory: claim it, replay it, check
//! whose it is, and only then repair and open it. `node.rs` starts every
//! node through it; the simulator opens its nodes' directories on a
//! simulated disk through it too.

use super::dir::DataDir;
use super::fs::Fs;
use super::log::LogStore;
use super::replay::replay_in;
use super::Store;
use crate::runtime::error::{Error, Result};
use crate::runtime::role::Role;
use std::path::Path;
use std::sync::Arc;
use twopc_model::Storage;

/// Opens the data directory `dir` on the disk `fs` for node `name` playing
/// `role`, and returns its store and the last durable state (`None`:
/// nothing was ever saved and `initial` gave nothing).
///
/// In order, each step refusing before anything on disk is changed:
///
/// 1. lock `dir` (created if missing) and check its `NODE` file: another
///    process holding it is [`Error::Locked`], another node's name
///    [`Error::NotOwner`], this name in another role [`Error::WrongRole`];
/// 2. replay it read-only: damage is [`Error::StorageCorrupt`], a log
///    shorter than the synced-length marker [`Error::StorageLost`];
/// 3. refuse a replayed state `role` cannot keep (a coordinator's for a
///    participant) with [`Error::WrongRole`]; then check the node its log
///    and snapshot headers name (which survive a deleted `NODE`): another
///    name is [`Error::NotOwner`] naming that file and both names, another
///    role [`Error::WrongRole`];
/// 4. if nothing was ever saved, call `initial` (a participant's first
///    levels, say); its error stops the start here;
/// 5. open the store: write `NODE` if it was missing, cut a torn tail,
///    delete what a crashed compaction or log creation left;
/// 6. if `initial` gave a state, stage and sync it, so it is durable before
///    the node runs and read exactly once.
///
/// `compact_min` is the compaction floor ([`super::COMPACT_MIN`] for a
/// node; tests use a small one).
pub fn open_store(
    fs: Arc<dyn Fs>,
    dir: &Path,
    name: &str,
    role: Role,
    compact_min: u64,
    initial: impl FnOnce() -> Result<Option<Storage>>,
) -> Result<(LogStore, Option<Storage>)> {
    let data = DataDir::claim_in(fs, dir, name, role)?;
    let replayed = replay_in(&**data.fs(), dir)?;
    if replayed.state.as_ref().is_some_and(|s| !role.keeps(s)) {
        return Err(Error::WrongRole {
            dir: dir.to_path_buf(),
            role,
        });
    }
    if let Some((owner, file)) = &replayed.owner {
        if owner.name != name {
            return Err(Error::NotOwner {
                dir: dir.to_path_buf(),
                owner: owner.name.clone(),
                name: name.to_string(),
                file: file.clone(),
            });
        }
        if owner.role != role {
            return Err(Error::WrongRole {
                dir: dir.to_path_buf(),
                role,
            });
        }
    }
    let first = match replayed.state {
        None => initial()?,
        Some(_) => None,
    };
    let (mut store, stored) = LogStore::open_replayed(data, replayed, compact_min)?;
    match first {
        Some(first) => {
            store.stage(first.clone())?;
            store.sync()?;
            Ok((store, Some(first)))
        }
        None => Ok((store, stored)),
    }
}
