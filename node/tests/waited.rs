//! The durable writes a buyer waited for, as `twopc bench` reports them
//! (counted by every node along each purchase's causal chain:
//! `runtime/core/waited.rs`): one client, a few purchases, in process.

use std::collections::BTreeMap;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_twopc");

/// Each protocol's run: committed purchases by the count they read.
fn waited_by_protocol(purchases: usize) -> BTreeMap<String, BTreeMap<u64, u64>> {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["bench", "--json", "--clients", "1", "--protocol", "both"])
        .args(["--purchases", &purchases.to_string()])
        .arg("--dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = runs.as_array().unwrap();
    runs.iter()
        .map(|r| {
            let counts = r["durable_writes_waited"]["counts"].as_object().unwrap();
            let counts = (counts.iter())
                .map(|(k, v)| (k.parse().unwrap(), v.as_u64().unwrap()))
                .collect();
            (r["protocol"].as_str().unwrap().to_string(), counts)
        })
        .collect()
}

/// Today a committed purchase waits for two durable writes in sequence:
/// the participants' prepare records (in parallel), then the decision (a
/// 2PC coordinator's fsync; a replicated one's backups' acceptance, the
/// leader's own fsync beside it). Two-phase commit reads exactly 2 on every
/// purchase. The replicated coordinator reads 2, or 3 when the purchase's
/// ticket was held behind the previous purchase's forgetting, still being
/// accepted by a backup (a leader holds what it sends after a save until
/// that save is chosen): never fewer than the two, never a chain carried
/// over from an earlier purchase.
#[test]
fn one_client_waits_for_two_durable_writes_per_purchase() {
    let runs = waited_by_protocol(20);
    let total = |c: &BTreeMap<u64, u64>| c.values().sum::<u64>();
    let two_pc = &runs["2pc"];
    assert_eq!(two_pc, &BTreeMap::from([(2, 20)]), "{runs:?}");
    let replicated = &runs["replicated"];
    assert_eq!(total(replicated), 20, "{runs:?}");
    assert!(replicated.keys().all(|k| (2..=3).contains(k)), "{runs:?}");
}
