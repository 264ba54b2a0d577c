//! How a run ages (`twopc bench --tenths`): throughput and latency per
//! tenth of the run, and each node's resident memory after the first tenth
//! and at the end, so a slowdown or growth with history shows.

use super::percentile;
use serde::Serialize;
use std::time::Duration;

/// One tenth of a run: the purchases that completed in it.
#[derive(Clone, Debug, Serialize)]
pub struct Tenth {
    /// 1 to 10.
    pub tenth: usize,
    /// Purchases completed in it.
    pub purchases: usize,
    /// Purchases per second over it.
    pub per_second: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th-percentile latency, milliseconds.
    pub p99_ms: f64,
}

/// A completed purchase: when (since the run started) and how long it took.
#[derive(Clone, Copy, Debug)]
pub struct Completion {
    /// Since the start of the run.
    pub at: Duration,
    /// From the moment it could be sent to its outcome.
    pub latency: Duration,
}

/// Splits completions (in any order) into ten tenths by completion time.
pub fn tenths(completions: &[Completion]) -> Vec<Tenth> {
    let mut all = completions.to_vec();
    all.sort_by_key(|c| c.at);
    let n = all.len();
    let mut before = Duration::ZERO;
    (0..10)
        .map(|t| {
            let part = &all[t * n / 10..(t + 1) * n / 10];
            let end = part.last().map_or(before, |c| c.at);
            let span = end.saturating_sub(before).as_secs_f64();
            before = end;
            let mut lat: Vec<Duration> = part.iter().map(|c| c.latency).collect();
            lat.sort();
            Tenth {
                tenth: t + 1,
                purchases: part.len(),
                per_second: if span > 0.0 {
                    part.len() as f64 / span
                } else {
                    0.0
                },
                p50_ms: percentile(&lat, 0.50),
                p99_ms: percentile(&lat, 0.99),
            }
        })
        .collect()
}

/// Resident memory of one node (or of the bench process, whose tasks are
/// the nodes when they are not processes).
#[derive(Clone, Debug, Serialize)]
pub struct Rss {
    /// The node's name, or `bench process` (nodes and clients together).
    pub name: String,
    /// VmRSS after the first tenth of the purchases completed, KiB.
    pub first_tenth_kib: Option<u64>,
    /// VmRSS at the end of the run, KiB.
    pub end_kib: Option<u64>,
}

/// The processes to watch: the node processes, or this one.
pub fn watched(pids: Option<Vec<(String, u32)>>) -> Vec<(String, String)> {
    match pids {
        Some(pids) => pids
            .into_iter()
            .map(|(name, pid)| (name, pid.to_string()))
            .collect(),
        None => vec![("bench process".into(), "self".into())],
    }
}

/// VmRSS of `/proc/<pid>/status`, KiB (`None` where there is no /proc).
pub fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Prints a run's tenths, their last-to-first ratios and the memory.
pub fn print(tenths: &[Tenth], rss: &[Rss]) {
    println!(
        "{:>12} {:>10} {:>12} {:>9} {:>9}",
        "tenth", "purchases", "purchases/s", "p50 ms", "p99 ms"
    );
    for t in tenths {
        println!(
            "{:>12} {:>10} {:>12.0} {:>9.2} {:>9.2}",
            t.tenth, t.purchases, t.per_second, t.p50_ms, t.p99_ms
        );
    }
    if let (Some(first), Some(last)) = (tenths.first(), tenths.last()) {
        println!(
            "{:>12} purchases/s {}, p50 {}, p99 {}",
            "last/first",
            ratio(last.per_second, first.per_second),
            ratio(last.p50_ms, first.p50_ms),
            ratio(last.p99_ms, first.p99_ms),
        );
    }
    let mib = |k: Option<u64>| k.map_or("?".into(), |k| format!("{:.1}", k as f64 / 1024.0));
    for r in rss {
        println!(
            "{:>12} RSS MiB after the first tenth {}, at the end {} ({})",
            r.name,
            mib(r.first_tenth_kib),
            mib(r.end_kib),
            match (r.first_tenth_kib, r.end_kib) {
                (Some(a), Some(b)) => ratio(b as f64, a as f64),
                _ => "?".into(),
            }
        );
    }
}

/// `a / b` as `1.23x`.
pub fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}x", a / b)
    } else {
        "?".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenths_split_by_completion_time() {
        let ms = Duration::from_millis;
        // 100 purchases, one every 10 ms, the last tenth ten times slower.
        let mut done: Vec<Completion> = (0..100u64)
            .map(|i| Completion {
                at: ms(10 * (i + 1)),
                latency: ms(if i >= 90 { 50 } else { 5 }),
            })
            .collect();
        done.reverse();
        let t = tenths(&done);
        assert_eq!(t.len(), 10);
        assert!(t.iter().all(|t| t.purchases == 10));
        assert!((t[0].per_second - 100.0).abs() < 1e-6, "{t:?}");
        assert_eq!((t[0].p99_ms, t[9].p99_ms), (5.0, 50.0));
        assert_eq!(ratio(t[9].p99_ms, t[0].p99_ms), "10.00x");
        assert!(tenths(&[]).iter().all(|t| t.purchases == 0));
    }

    #[test]
    fn this_process_has_a_resident_size() {
        if std::path::Path::new("/proc/self/status").exists() {
            assert!(rss_kib("self").unwrap() > 0);
        }
    }
}
