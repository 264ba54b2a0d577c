//! `twopc inspect --data-dir DIR`: what a data directory holds, and what a
//! node starting on it would do (start, repair, refuse).

use super::Exit;
use crate::runtime::error::{Error, Result};
use crate::runtime::storage;
use std::path::Path;

/// Prints the last durable state in `data_dir` and what a node would
/// repair; an error for what a node would refuse (damage, lost synced
/// data), printed by `main` with exit 1.
pub(super) fn run(data_dir: &Path) -> Result<Exit> {
    let empty = std::fs::read_dir(data_dir)
        .map(|mut entries| entries.next().is_none())
        .map_err(|source| Error::DataDirRead {
            dir: data_dir.to_path_buf(),
            source,
        })?;
    if empty {
        // Not "missing after a crashed compaction": nothing ever ran here.
        println!(
            "{}: empty: no node has saved anything here (a node started on it begins \
             from the cluster file's accounts and stock)",
            data_dir.display()
        );
        return Ok(Exit::Ok);
    }
    let replayed = storage::replay(data_dir)?;
    let repairs = storage::repairs(data_dir, &replayed)?;
    if let Some((owner, file)) = &replayed.owner {
        println!(
            "owner: node {:?} ({}), named in {}",
            owner.name,
            owner.role,
            file.display()
        );
    }
    if let Some(id) = storage::cluster_of(&storage::RealFs, data_dir)? {
        println!("cluster: {id:?} (CLUSTER)");
    }
    println!("history position: {}", replayed.position);
    match &replayed.state {
        Some(state) => println!("{state:#?}"),
        None => println!("{}: no saved state", data_dir.display()),
    }
    for line in &repairs {
        eprintln!("twopc inspect: {line}");
    }
    Ok(if repairs.is_empty() {
        Exit::Ok
    } else {
        Exit::Repair
    })
}
