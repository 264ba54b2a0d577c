//! twopc's side: `twopc bench --processes --json` with the same clients,
//! workload and purchases, in its own process group so that stopping it
//! (at the end of a run, on error, on Ctrl-C) stops its node processes too.

use crate::report::Measured;
use std::path::Path;
use std::process::Stdio;
use tokio::io::AsyncReadExt;

/// The arguments of one run.
pub fn bench_args(
    clients: usize,
    accounts: u64,
    hot: bool,
    purchases: u64,
    protocol: &str,
    one_write: bool,
    dir: &Path,
) -> Vec<String> {
    let mut a: Vec<String> = ["bench", "--processes", "--json"].map(String::from).into();
    a.extend(["--clients".into(), clients.to_string()]);
    a.extend(["--accounts".into(), accounts.to_string()]);
    if hot {
        a.push("--hot".into());
    }
    a.extend(["--purchases".into(), purchases.to_string()]);
    a.extend(["--protocol".into(), protocol.to_string()]);
    if one_write {
        a.push("--one-write".into());
    }
    a.extend(["--dir".into(), dir.display().to_string()]);
    a
}

/// Kills the bench's process group (the bench and its nodes) when dropped
/// before the bench has exited.
struct Group {
    pgid: Option<i32>,
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid {
            // SAFETY: signalling the process group we created.
            unsafe { libc::kill(-pgid, libc::SIGTERM) };
        }
    }
}

/// Runs `twopc bench` once and reads its one result.
pub async fn bench(exe: &Path, args: &[String]) -> Result<Measured, String> {
    let shown = format!("{} {}", exe.display(), args.join(" "));
    let mut child = tokio::process::Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    let mut group = Group {
        pgid: child.id().map(|p| p as i32),
    };
    let mut out = String::new();
    let mut stdout = child.stdout.take().expect("piped");
    stdout
        .read_to_string(&mut out)
        .await
        .map_err(|e| format!("{shown}: reading its output: {e}"))?;
    let status = child.wait().await.map_err(|e| format!("{shown}: {e}"))?;
    group.pgid = None;
    if !status.success() {
        return Err(format!("{shown} failed ({status})"));
    }
    let mut runs: Vec<Measured> = serde_json::from_str(&out)
        .map_err(|e| format!("{shown}: its output is not bench JSON ({e}):\n{out}"))?;
    match runs.len() {
        1 => Ok(runs.remove(0)),
        n => Err(format!("{shown}: expected one run, got {n}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bench_runs_the_same_workload() {
        let a = bench_args(16, 1000, true, 2000, "2pc", false, Path::new("/tmp"));
        assert_eq!(
            a.join(" "),
            "bench --processes --json --clients 16 --accounts 1000 --hot --purchases 2000 --protocol 2pc --dir /tmp"
        );
        let a = bench_args(1, 10, false, 5, "replicated", false, Path::new("/d"));
        assert!(!a.contains(&"--hot".to_string()));
        assert!(!a.contains(&"--one-write".to_string()));
        let a = bench_args(1, 10, false, 5, "2pc", true, Path::new("/d"));
        assert!(a.contains(&"--one-write".to_string()));
    }
}
