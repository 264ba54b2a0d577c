//! `DIR/CLUSTER`: the cluster a data directory belongs to, so that one
//! cluster never runs on another's data.
//!
//! ```text
//! DIR/CLUSTER   cluster_id = "k-3f9a0c5e1b2d4e6f"
//! ```
//!
//! Written at a node's first start under a version that knows it (a
//! directory of an older version is stamped at its first start under this
//! one), after the directory was claimed and opened; checked at every start
//! *before* anything in the directory is touched, so a refused start leaves
//! it as it was. Where the id comes from is the cluster module (`cluster_id`
//! in the cluster file, else a fingerprint of the cluster key).

use super::dir::{io_err, sync_dir};
use super::fs::Fs;
use super::StoreStats;
use crate::runtime::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stamp {
    cluster_id: String,
}

/// The cluster id `dir` is stamped with, if any. An unreadable stamp is an
/// error (a person must look: deleting it re-stamps the directory).
pub fn cluster_of(fs: &dyn Fs, dir: &Path) -> Result<Option<String>> {
    let path = dir.join("CLUSTER");
    match fs.read(&path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let stamp: Stamp = toml::from_str(&text).map_err(|source| Error::StampInvalid {
                path: path.clone(),
                source,
            })?;
            Ok(Some(stamp.cluster_id))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&path)(e)),
    }
}

/// Refuses to start in `dir` if it is stamped with a cluster other than
/// `id`; `source` says where `id` came from. Reads only. Returns whether
/// the directory still needs its stamp.
pub fn check_cluster(fs: &dyn Fs, dir: &Path, id: &str, source: &str) -> Result<bool> {
    match cluster_of(fs, dir)? {
        None => Ok(true),
        Some(found) if found == id => Ok(false),
        Some(found) => Err(Error::OtherCluster {
            dir: dir.to_path_buf(),
            found,
            id: id.to_string(),
            id_from: source.to_string(),
        }),
    }
}

/// Stamps `dir` with cluster `id` (atomically: a temporary file, fsync,
/// rename, fsync of the directory).
pub fn stamp_cluster(fs: &dyn Fs, dir: &Path, id: &str) -> Result<()> {
    let path = dir.join("CLUSTER");
    let tmp = dir.join("CLUSTER.tmp");
    let text = toml::to_string(&Stamp {
        cluster_id: id.to_string(),
    })
    .expect("a stamp serializes");
    let mut f = fs.create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(text.as_bytes()).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    fs.rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir(fs, dir, &mut StoreStats::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::storage::RealFs;

    #[test]
    fn a_directory_is_stamped_once_and_refuses_another_cluster() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_cluster(&RealFs, dir.path(), "a", "test").unwrap());
        stamp_cluster(&RealFs, dir.path(), "a").unwrap();
        assert!(!check_cluster(&RealFs, dir.path(), "a", "test").unwrap());
        let err = check_cluster(&RealFs, dir.path(), "b", "the key's fingerprint")
            .unwrap_err()
            .to_string();
        assert!(err.contains("belongs to cluster \"a\""), "{err}");
        assert!(err.contains("cluster_id = \"a\""), "{err}");
        std::fs::write(dir.path().join("CLUSTER"), "junk").unwrap();
        assert!(check_cluster(&RealFs, dir.path(), "a", "test").is_err());
    }
}
