//! `DIR/ONE_WRITE`: a coordinator directory that has run the one-write
//! protocol (docs/one-write.md) says so, and refuses to run without it.
//!
//! Under one write the coordinator tells a decision before it saves it: its
//! log may lack outcomes it told, which the participants' saved votes
//! record and which every one-write start resolves from them. A plain
//! two-phase-commit coordinator starting on that log would presume those
//! transactions aborted, and abort at one participant what the other
//! applied. So the first one-write start writes the marker (before the
//! coordinator runs), and a start without one write finds it and refuses,
//! touching nothing. Turning one write on over a 2PC directory is allowed:
//! a 2PC log saved every outcome it told, and the one-write start resolves
//! what it lacks.

use super::dir::{io_err, sync_dir};
use super::fs::Fs;
use super::StoreStats;
use crate::runtime::error::{Error, Result};
use std::path::Path;

const MARKER: &str = "ONE_WRITE";

/// Refuses a coordinator directory marked as one write's when `one_write`
/// is off; marks it (durably) when it is on. Before the coordinator runs.
pub fn check_one_write(fs: &dyn Fs, dir: &Path, one_write: bool) -> Result<()> {
    let path = dir.join(MARKER);
    let marked = match fs.read(&path) {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(io_err(&path)(e)),
    };
    match (one_write, marked) {
        (false, true) => Err(Error::OneWriteSwitchedOff {
            dir: dir.to_path_buf(),
        }),
        (true, false) => {
            let mut f = fs.create(&path).map_err(io_err(&path))?;
            f.write_all(b"this coordinator directory has run the one-write protocol\n")
                .map_err(io_err(&path))?;
            f.sync_all().map_err(io_err(&path))?;
            drop(f);
            sync_dir(fs, dir, &mut StoreStats::default())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::storage::RealFs;

    #[test]
    fn a_one_write_directory_refuses_plain_two_phase_commit() {
        let dir = tempfile::tempdir().unwrap();
        // A 2PC directory may turn one write on.
        check_one_write(&RealFs, dir.path(), false).unwrap();
        check_one_write(&RealFs, dir.path(), true).unwrap();
        assert!(dir.path().join(MARKER).exists());
        check_one_write(&RealFs, dir.path(), true).unwrap();
        let err = check_one_write(&RealFs, dir.path(), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("one_write = true"), "{err}");
        assert!(
            dir.path().join(MARKER).exists(),
            "a refusal changes nothing"
        );
    }
}
