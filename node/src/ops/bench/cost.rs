//! What a purchase costs each node: fsyncs, bytes written and messages sent
//! (each node's counters, read before and after a run), and, when the nodes
//! are processes of their own, CPU time (from `/proc`).

use crate::ops::local::LocalCluster;
use crate::runtime::error::Result;
use std::collections::BTreeMap;

/// A node's running totals at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NodeCost {
    /// fsyncs done by its storage.
    pub fsyncs: u64,
    /// Bytes written to its storage.
    pub bytes: u64,
    /// Messages sent (datagrams, and a replica's to the other replicas).
    pub msgs_out: u64,
    /// CPU time used by its process, user and system, in milliseconds
    /// (`None` for a node that is a task of this process).
    pub cpu_ms: Option<u64>,
}

/// Every node's totals now, by name; `pids` (name, pid) when the nodes are
/// processes of their own.
pub async fn costs(
    cluster: &LocalCluster,
    pids: Option<&[(String, u32)]>,
) -> Result<BTreeMap<String, NodeCost>> {
    let mut m = BTreeMap::new();
    for n in &cluster.cluster.nodes {
        let c = cluster.status_of(n.address, &n.name).await?.counters;
        let pid = pids.and_then(|p| p.iter().find(|(name, _)| *name == n.name));
        let cost = NodeCost {
            fsyncs: c.fsyncs,
            bytes: c.bytes_written,
            msgs_out: c.datagrams_out,
            cpu_ms: pid.and_then(|(_, pid)| cpu_ms(*pid)),
        };
        m.insert(n.name.clone(), cost);
    }
    Ok(m)
}

/// What each node spent between `before` and `after` on each of `n`
/// purchases, as `f` reads it (nodes `f` reads nothing of are left out).
pub fn per_purchase(
    before: &BTreeMap<String, NodeCost>,
    after: &BTreeMap<String, NodeCost>,
    n: usize,
    f: fn(&NodeCost) -> Option<u64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter_map(|(name, a)| {
            let spent = f(a)?.saturating_sub(f(before.get(name)?)?);
            Some((name.clone(), spent as f64 / n.max(1) as f64))
        })
        .collect()
}

/// User and system CPU time of process `pid` so far, in milliseconds:
/// fields 14 and 15 of `/proc/PID/stat`, in clock ticks of 1/100 s (Linux's
/// USER_HZ, fixed at 100 for what `/proc` reports).
pub fn cpu_ms(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    ticks_in_stat(&stat).map(|t| t * 10)
}

/// utime + stime from a `/proc/PID/stat` line (the command name, in
/// parentheses, may hold spaces: fields are counted after its `)`).
fn ticks_in_stat(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are
    // the 12th and 13th here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_from_the_stat_line_whatever_the_name() {
        let line = "4242 (twopc node (x)) S 1 2 3 4 5 6 7 8 9 10 250 37 0 0 20 0 1 0";
        assert_eq!(ticks_in_stat(line), Some(287));
        assert_eq!(ticks_in_stat("4242 (short) S 1 2"), None);
        // This very process has a stat line, and has used some time by now.
        let me = cpu_ms(std::process::id());
        assert!(me.is_some(), "no /proc/self/stat");
    }

    #[test]
    fn per_purchase_divides_what_each_node_spent() {
        let at = |fsyncs, cpu| NodeCost {
            fsyncs,
            cpu_ms: cpu,
            ..NodeCost::default()
        };
        let before = BTreeMap::from([
            ("a".to_string(), at(10, Some(5))),
            ("b".into(), at(0, None)),
        ]);
        let after = BTreeMap::from([
            ("a".to_string(), at(30, Some(45))),
            ("b".into(), at(4, None)),
        ]);
        let fsyncs = per_purchase(&before, &after, 4, |c| Some(c.fsyncs));
        assert_eq!(
            fsyncs,
            BTreeMap::from([("a".into(), 5.0), ("b".into(), 1.0)])
        );
        let cpu = per_purchase(&before, &after, 4, |c| c.cpu_ms);
        assert_eq!(cpu, BTreeMap::from([("a".into(), 10.0)]));
    }
}
