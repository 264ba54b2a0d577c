//! Simulated traces through `twopc-check replay` (the simulation tests of
//! both protocols).

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
