//! What the simulation tests of both protocols share: judging many seeds'
//! reports, and simulated traces through `twopc-check replay`.

use twopc_node::harness::sim::SimReport;

/// A count the reports add up (of faults that must have happened).
pub type Count = (&'static str, fn(&SimReport) -> u64);

/// No seed of `runs` (`n` seeds of 200 purchases each) broke a promise,
/// purchases committed, and each fault of `faults` happened in more than
/// half as many runs: not a quiet run that proves nothing.
pub fn keep_every_promise(runs: &[SimReport], n: u64, faults: &[Count]) {
    let bad: Vec<_> = runs.iter().filter(|r| !r.violations.is_empty()).collect();
    assert!(
        bad.is_empty(),
        "{} of {n} seeds broke a promise; first: seed {} {:?}",
        bad.len(),
        bad[0].seed,
        &bad[0].violations[..bad[0].violations.len().min(5)]
    );
    let sum = |f: fn(&SimReport) -> u64| runs.iter().map(f).sum::<u64>();
    assert_eq!(sum(|r| r.purchases), 200 * n);
    assert!(sum(|r| r.commits) > 40 * n, "purchases commit");
    for (what, f) in faults {
        let count = sum(*f);
        assert!(count > n / 2, "only {count} {what} in {n} runs");
    }
}

/// Replays the simulation's `traces` against the model, checking the
/// properties every 200 steps.
pub fn replay(
    traces: Vec<twopc_node::harness::sim::ServerTrace>,
) -> Result<twopc_checks::replay::Accepted, twopc_checks::replay::Rejection> {
    let traces = traces
        .into_iter()
        .map(|(source, records)| twopc_checks::replay::NodeTrace { source, records })
        .collect();
    twopc_checks::replay::replay(traces, &twopc_checks::replay::Options { every: 200 })
}
