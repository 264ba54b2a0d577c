//! The shop's operations from the command line, as the tests of top-ups,
//! restocks, refunds and a shop's life make them, and the replay of a
//! journal that the journal's and the shop's tests check levels with.

use super::TestCluster;
use serde_json::Value;
use std::collections::BTreeMap;

/// `twopc ARGS --json --timeout 60`: its JSON report (if any), exit code,
/// stderr.
pub fn run(c: &TestCluster, args: &[&str]) -> (Option<Value>, i32, String) {
    let out = c
        .twopc(args)
        .args(["--json", "--timeout", "60"])
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).ok();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    (json, out.status.code().unwrap_or(-1), stderr)
}

/// Runs `args` (a top-up or a restock with `--id ID`) until it commits: on a
/// starved machine one may abort by vote timeout (changing nothing), and is
/// then made again under `ID-again-N`. Returns the id that committed and
/// its report.
pub fn until_committed(c: &TestCluster, args: &[&str], id: &str) -> (String, Value) {
    for attempt in 0..5 {
        let id = match attempt {
            0 => id.to_string(),
            n => format!("{id}-again-{n}"),
        };
        let mut all = args.to_vec();
        all.extend(["--id", &id]);
        let (report, code, err) = run(c, &all);
        let report = report.unwrap_or_else(|| panic!("no report: exit {code}: {err}"));
        if report["outcome"] == "committed" {
            assert_eq!(code, 0, "{report}");
            return (id, report);
        }
        assert_eq!(report["reason"], "vote_timeout", "{report} {err}");
    }
    panic!("five in a row aborted by vote timeout")
}

/// `initial` with the journal `entries` applied in order, checking that
/// positions run from 1 without a gap, that each entry's level is the one
/// replayed, and that no transaction is journaled twice.
pub fn replay(initial: &[(&str, u64)], entries: &[Value]) -> BTreeMap<String, u64> {
    let mut levels: BTreeMap<String, u64> =
        initial.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    let mut txns = std::collections::BTreeSet::new();
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e["position"].as_u64(), Some(i as u64 + 1), "{e}");
        assert!(txns.insert(e["txn"].as_str().unwrap().to_string()), "{e}");
        let key = e["key"].as_str().unwrap().to_string();
        let level = levels.entry(key).or_insert(0);
        *level = (*level as i64 + e["amount"].as_i64().unwrap()) as u64;
        assert_eq!(e["level"].as_u64(), Some(*level), "{e}");
    }
    levels
}

/// Asserts that the refund `rma` is the last operation in each account or
/// sku view (`views`: the view and the amount the refund credited there),
/// and that its level is the view's balance or stock.
pub fn assert_refund_is_last(views: &[(&Value, u64)], rma: &str) {
    for (v, amount) in views {
        let last = &v["last"][0];
        assert_eq!(
            (&last["operation"], &last["id"], &last["amount"]),
            (
                &serde_json::json!("refund"),
                &serde_json::json!(rma),
                &serde_json::json!(amount)
            ),
            "{v}"
        );
        let level = if v.get("balance").is_some() {
            "balance"
        } else {
            "stock"
        };
        assert_eq!(last["level"], v[level], "{v}");
    }
}
