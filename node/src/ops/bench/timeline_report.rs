//! `twopc bench --timeline`'s summary of the stitched paths
//! (`timeline.rs`): each segment's median, p90, minimum and mean, its
//! mean over the purchases around the median (which add up to about the
//! p50: medians do not add), and the waits told apart, as the bench prints
//! them under a run's row.

use super::timeline::{PurchasePath, Stitched, SEGMENTS};
use serde::Serialize;
use std::collections::BTreeMap;

/// A segment's median and 90th percentile, in microseconds.
#[derive(Clone, Debug, Serialize)]
pub struct SegmentTimes {
    /// What it is ([`SEGMENTS`]).
    pub segment: &'static str,
    /// Median, µs.
    pub p50_us: f64,
    /// 90th percentile, µs.
    pub p90_us: f64,
    /// The shortest, µs: never below 0, since a hop is measured from the
    /// call to `send` (the datagram cannot be read before it).
    pub min_us: f64,
    /// The mean, µs (the means add up to the mean total).
    pub mean_us: f64,
    /// The mean over the purchases whose total lies between the 40th and
    /// the 60th percentile, µs: where the time of a purchase near the
    /// median goes (these add up to `at_p50_total_us`).
    pub at_p50_us: f64,
}

/// The timeline of a run, summed up.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Purchases stitched whole.
    pub stitched: usize,
    /// Purchases not stitched, by the first mark missing.
    pub missing: BTreeMap<&'static str, usize>,
    /// Marks lost to full buffers (0 unless a run was very long).
    pub lost: u64,
    /// Each segment, in path order.
    pub segments: Vec<SegmentTimes>,
    /// The medians added up, µs.
    pub sum_of_medians_us: f64,
    /// The median of the stitched purchases' totals, µs.
    pub median_total_us: f64,
    /// The mean total of the purchases between the 40th and the 60th
    /// percentile, µs (about the median).
    pub at_p50_total_us: f64,
    /// Their mean, µs: at one client the stitched purchases follow one
    /// another, so `mean_total_us × stitched` is at most the run's time.
    pub mean_total_us: f64,
    /// Purchases whose participant was still busy with its previous batch
    /// when the Prepare was sent.
    pub prepare_waited: usize,
    /// ... of which that batch fsynced a commit.
    pub behind_commit: usize,
    /// Purchases whose coordinator fsynced before the outcome.
    pub coordinator_fsynced: usize,
    /// The participants' commit fsyncs: median and 90th percentile, µs.
    pub commit_fsync_p50_us: f64,
    /// See `commit_fsync_p50_us`.
    pub commit_fsync_p90_us: f64,
}

fn mean_us(v: &[i64]) -> f64 {
    match v.len() {
        0 => 0.0,
        n => v.iter().sum::<i64>() as f64 / n as f64 / 1e3,
    }
}

fn percentile_ns(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn percentile_us(sorted: &[i64], p: f64) -> f64 {
    percentile_ns(sorted, p) as f64 / 1e3
}

impl Report {
    /// The report of `s`.
    pub fn of(s: &Stitched) -> Report {
        let column = |f: &dyn Fn(&PurchasePath) -> i64| {
            let mut v: Vec<i64> = s.paths.iter().map(f).collect();
            v.sort_unstable();
            v
        };
        // The purchases around the median, by total.
        let totals = column(&|p| p.total);
        let (lo, hi) = (percentile_ns(&totals, 0.4), percentile_ns(&totals, 0.6));
        let band: Vec<&PurchasePath> = (s.paths.iter())
            .filter(|p| (lo..=hi).contains(&p.total))
            .collect();
        let band_mean = |f: &dyn Fn(&PurchasePath) -> i64| {
            mean_us(&band.iter().map(|p| f(p)).collect::<Vec<_>>())
        };
        let segments: Vec<SegmentTimes> = (0..SEGMENTS.len())
            .map(|i| {
                let v = column(&|p| p.segments[i]);
                SegmentTimes {
                    segment: SEGMENTS[i],
                    p50_us: percentile_us(&v, 0.5),
                    p90_us: percentile_us(&v, 0.9),
                    min_us: v.first().map_or(0.0, |&m| m as f64 / 1e3),
                    mean_us: mean_us(&v),
                    at_p50_us: band_mean(&|p| p.segments[i]),
                }
            })
            .collect();
        let mut commits = s.commit_fsyncs.clone();
        commits.sort_unstable();
        Report {
            stitched: s.paths.len(),
            missing: s.missing.clone(),
            lost: s.lost,
            sum_of_medians_us: segments.iter().map(|t| t.p50_us).sum(),
            segments,
            median_total_us: percentile_us(&column(&|p| p.total), 0.5),
            mean_total_us: mean_us(&totals),
            at_p50_total_us: band_mean(&|p| p.total),
            prepare_waited: s.paths.iter().filter(|p| p.segments[10] > 0).count(),
            behind_commit: s.paths.iter().filter(|p| p.behind_commit).count(),
            coordinator_fsynced: s.paths.iter().filter(|p| p.coordinator_fsynced).count(),
            commit_fsync_p50_us: percentile_us(&commits, 0.5),
            commit_fsync_p90_us: percentile_us(&commits, 0.9),
        }
    }

    /// Prints it under a run's row; `p50_ms` is the run's measured median.
    pub fn print(&self, p50_ms: f64) {
        let not: usize = self.missing.values().sum();
        println!(
            "  where a purchase's time goes: {} purchases stitched, {not} not{}",
            self.stitched,
            if self.lost > 0 {
                format!(" ({} marks lost to full buffers)", self.lost)
            } else {
                String::new()
            }
        );
        for (why, n) in &self.missing {
            println!("    not stitched, {why}: {n}");
        }
        println!(
            "    {:<46} {:>8} {:>8} {:>8} {:>9}",
            "segment", "p50 µs", "p90 µs", "mean µs", "at p50 µs"
        );
        for s in &self.segments {
            println!(
                "    {:<46} {:>8.1} {:>8.1} {:>8.1} {:>9.1}",
                s.segment, s.p50_us, s.p90_us, s.mean_us, s.at_p50_us
            );
        }
        println!(
            "    {:<46} {:>8.1} {:>8} {:>8.1} {:>9.1}",
            "added up", self.sum_of_medians_us, "", self.mean_total_us, self.at_p50_total_us
        );
        println!(
            "    median of the stitched purchases' totals {:.1} µs (the run's p50: {:.1} µs); \
             \"at p50\": the mean over the purchases between the 40th and 60th percentile",
            self.median_total_us,
            p50_ms * 1e3
        );
        println!(
            "    prepare sent while the participant was busy with its previous batch: {} of {} \
             (that batch fsynced a commit: {}); participants' commit fsync p50 {:.1} µs, p90 {:.1} µs; \
             coordinator fsynced before the outcome: {} of {}",
            self.prepare_waited,
            self.stitched,
            self.behind_commit,
            self.commit_fsync_p50_us,
            self.commit_fsync_p90_us,
            self.coordinator_fsynced,
            self.stitched
        );
    }
}
