//! Trace files: JSON lines, one [`Record`] each.

use std::path::{Path, PathBuf};
use twopc_model::trace::Record;

/// The records of one node, as one file holds them.
#[derive(Clone, Debug)]
pub struct NodeTrace {
    /// Where they came from (a file name), for messages.
    pub source: String,
    /// Its records, in the order written.
    pub records: Vec<Record>,
}

/// Reads a trace file (JSON lines), or every `*.jsonl` file of a directory.
pub fn read(path: &Path) -> Result<Vec<NodeTrace>, String> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| format!("cannot read directory {}: {e}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        files.sort();
        let mut all = Vec::new();
        for f in files {
            all.extend(read(&f)?);
        }
        return Ok(all);
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read trace {}: {e}", path.display()))?;
    let records = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| format!("{}:{}: not a trace record: {e}", path.display(), i + 1))
        })
        .collect::<Result<Vec<Record>, String>>()?;
    Ok(vec![NodeTrace {
        source: path.display().to_string(),
        records,
    }])
}
