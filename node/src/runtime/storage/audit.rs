//! `DIR/heuristic.log`: one line per heuristic decision an operator took at
//! this coordinator (`crate::runtime::in_doubt`), appended and fsynced before the
//! decision leaves, for an auditor. Not part of the store's state: a node
//! never reads it back, `twopc inspect` ignores it, and losing it loses no
//! protocol state (the decision itself is in the log like any other save).
//! The line is made durable before the batch's own fsync: a crash between
//! the two leaves a line for a decision the log never kept, and the
//! coordinator still lists the transaction in doubt (a second decision
//! then adds a second line). A line says what an operator decided, not
//! that it took effect: `twopc status` says that.

use super::dir::{io_err, sync_dir};
use super::fs::Fs;
use super::StoreStats;
use crate::runtime::error::Result;
use crate::runtime::in_doubt::HEURISTIC_LOG;
use std::path::Path;

/// Appends `line` to `DIR/heuristic.log` (created if missing) and makes it
/// durable.
pub fn append(fs: &dyn Fs, dir: &Path, line: &str) -> Result<()> {
    let path = dir.join(HEURISTIC_LOG);
    let new = !fs.exists(&path);
    let mut f = match new {
        true => fs.create(&path),
        false => fs.open_append(&path),
    }
    .map_err(io_err(&path))?;
    f.write_all(line.as_bytes()).map_err(io_err(&path))?;
    f.sync_data().map_err(io_err(&path))?;
    if new {
        // Not counted in the node's storage counters (not its log).
        sync_dir(fs, dir, &mut StoreStats::default())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::storage::RealFs;

    #[test]
    fn each_decision_is_one_more_line() {
        let dir = tempfile::tempdir().unwrap();
        append(&RealFs, dir.path(), "one\n").unwrap();
        append(&RealFs, dir.path(), "two\n").unwrap();
        let text = std::fs::read_to_string(dir.path().join(HEURISTIC_LOG)).unwrap();
        assert_eq!(text, "one\ntwo\n");
    }
}
