//! `twopc bench --json` as a test's subprocess.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// The runs `twopc bench --json ARGS` prints, its data directories under
/// `dir` if given (it must succeed).
pub fn bench_json(args: &[&str], dir: Option<&Path>) -> Vec<Value> {
    let mut cmd = Command::new(super::BIN);
    cmd.args(["bench", "--json"]).args(args);
    if let Some(dir) = dir {
        cmd.arg("--dir").arg(dir);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
    runs.as_array().unwrap().clone()
}
