//! `twopc-check replay` as people run it, on a fixture: the traces of one
//! purchase through four sans-IO cores under a correct shell (written by
//! `node/tests/trace.rs` with `TWOPC_TRACE_FIXTURE`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/trace");

fn replay(args: &[&Path]) -> (Option<i32>, String) {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_twopc-check"))
        .arg("replay")
        .args(args)
        .output()
        .expect("twopc-check runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A copy of the fixture in a fresh directory, `edit` applied to each file's text.
fn edited(name: &str, edit: impl Fn(&str, String) -> String) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("twopc-replay-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(FIXTURE).unwrap() {
        let path = e.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(dir.join(&file), edit(&file, text)).unwrap();
    }
    dir
}

#[test]
fn the_fixture_is_accepted_with_exit_zero() {
    let (code, text) = replay(&[Path::new(FIXTURE)]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.starts_with("Accepted: "), "{text}");
    assert!(text.contains("Properties held on"), "{text}");
    assert!(text.contains("atomic"), "{text}");
}

#[test]
fn a_wallet_that_never_fsyncs_is_rejected_with_exit_one() {
    let dir = edited("nofsync", |file, text| {
        if file == "wallet.jsonl" {
            text.lines()
                .filter(|l| !l.starts_with("{\"durable\""))
                .map(|l| format!("{l}\n"))
                .collect()
        } else {
            text
        }
    });
    let (code, text) = replay(&[&dir]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.starts_with("Rejected: coordinator run 1 step"),
        "{text}"
    );
    assert!(
        text.contains("before wallet's save of step 3 was durable: sent before fsync"),
        "{text}"
    );
}

#[test]
fn a_file_that_is_not_a_trace_exits_two() {
    let dir = edited("garbage", |file, text| {
        if file == "order.jsonl" {
            text + "not json\n"
        } else {
            text
        }
    });
    let (code, text) = replay(&[&dir]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("order.jsonl:8: not a trace record"), "{text}");
}

/// Every record at the same time, as a simulation whose clock did not
/// advance would write them: the replay orders them by cause (a receive
/// after its send and the sender's fsync) and still accepts.
#[test]
fn records_of_equal_times_are_ordered_by_cause() {
    let dir = edited("sametime", |_, text| {
        text.lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                for kind in ["step", "durable"] {
                    if let Some(t) = v.get_mut(kind).and_then(|r| r.get_mut("t")) {
                        *t = 0.into();
                    }
                }
                format!("{v}\n")
            })
            .collect()
    });
    let (code, text) = replay(&[&dir]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, Some(0), "{text}");
}
