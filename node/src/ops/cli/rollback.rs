//! `twopc accept-rollback`: what an operator runs when a participant's
//! rollback alarm fired (`crate::runtime::history`) and no newer copy of its data
//! directory exists: accept the loss, explicitly, so it may vote again.

use super::commands::Exit;
use crate::runtime::error::{Error, Result};
use crate::runtime::storage::{as_participant, LogStore, Store};
use std::path::Path;

/// Raises the history position of the participant's directory `dir` to
/// `position` (what its coordinator heard, as the alarm says), changing
/// nothing else. Refused while the node runs (its lock), on a directory
/// that is not a participant's, and on one with no state.
pub(super) fn accept(dir: &Path, position: u64) -> Result<Exit> {
    if !dir.is_dir() {
        return Err(Error::RollbackNotADirectory {
            dir: dir.to_path_buf(),
        });
    }
    let (mut store, state) = LogStore::open(dir)?;
    let Some(state) = state else {
        return Err(Error::RollbackNoState {
            dir: dir.to_path_buf(),
        });
    };
    let Some(part) = as_participant(&state) else {
        return Err(Error::RollbackNotParticipant {
            dir: dir.to_path_buf(),
        });
    };
    let before = store.position().unwrap_or(0);
    if position <= before {
        println!(
            "{}: history already at position {before} (>= {position}): nothing to do",
            dir.display()
        );
        return Ok(Exit::Ok);
    }
    let after = store.restamp(position)?;
    println!(
        "{}: history moved from position {before} to {after}. The node votes again with what \
         this directory holds ({} balances or stock levels, {} holds in doubt); whatever the \
         {} lost records held is forgotten here: reconcile it with the coordinator's outcomes \
         (docs/hostile.md).",
        dir.display(),
        part.levels.len(),
        part.holds.len(),
        position - before,
    );
    Ok(Exit::Ok)
}
