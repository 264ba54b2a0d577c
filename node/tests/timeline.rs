//! `twopc bench --timeline` on real processes: every node writes its
//! timeline as it stops, and the bench stitches each purchase's path
//! across the files (`ops/bench/timeline.rs`). Structural checks only, no
//! timing thresholds: every purchase is accounted for, every segment is
//! non-negative (a hop ends in another process than it starts: a clock
//! not comparable across processes shows here), the segments' means add
//! up to the mean total (and those around the median to theirs), and the stitched purchases, one after another at
//! one client, fit in the run's measured time.

mod common;

use common::bench::bench_json;

fn bench(args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let base = [
        "--processes",
        "--clients",
        "1",
        "--purchases",
        "40",
        "--timeline",
    ];
    let runs = bench_json(&[&base, args].concat(), Some(dir.path()));
    // The timeline files are gone with the run.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("twopc-timeline-")
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
    runs[0].clone()
}

fn check(run: &serde_json::Value, coordinator_fsyncs: bool) {
    let purchases = run["purchases"].as_u64().unwrap();
    let t = &run["timeline"];
    let stitched = t["stitched"].as_u64().unwrap();
    let missing: u64 = (t["missing"].as_object().unwrap().values())
        .map(|v| v.as_u64().unwrap())
        .sum();
    // Every purchase the measured client started, stitched or said why not.
    assert_eq!(stitched + missing, purchases, "{t:#}");
    // Only its first purchase has no outcome before it.
    assert!(stitched >= purchases - 1, "{t:#}");
    assert_eq!(t["lost"].as_u64(), Some(0), "{t:#}");
    let segments = t["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 23);
    let (mut sum_of_means, mut at_p50) = (0.0, 0.0);
    for s in segments {
        let (min, p50, p90) = (
            s["min_us"].as_f64().unwrap(),
            s["p50_us"].as_f64().unwrap(),
            s["p90_us"].as_f64().unwrap(),
        );
        assert!(0.0 <= min && min <= p50 && p50 <= p90, "{s}");
        sum_of_means += s["mean_us"].as_f64().unwrap();
        at_p50 += s["at_p50_us"].as_f64().unwrap();
    }
    let at_p50_total = t["at_p50_total_us"].as_f64().unwrap();
    assert!((at_p50 - at_p50_total).abs() < 0.01, "{t:#}");
    let mean_total = t["mean_total_us"].as_f64().unwrap();
    assert!((sum_of_means - mean_total).abs() < 0.01, "{t:#}");
    let run_us = purchases as f64 / run["per_second"].as_f64().unwrap() * 1e6;
    assert!(
        mean_total * stitched as f64 <= run_us,
        "{mean_total} x {stitched} > {run_us}"
    );
    // The participant on the path fsynced its hold before voting.
    assert!(segments[14]["min_us"].as_f64().unwrap() > 0.0, "{t:#}");
    let fsynced = t["coordinator_fsynced"].as_u64().unwrap();
    match coordinator_fsyncs {
        true => assert_eq!(fsynced, stitched, "{t:#}"),
        // Some batches that take the last vote also stage a save (the
        // forgetting of an acknowledged commit rides on them): their
        // outcome waits for that fsync. Most do not.
        false => assert!(fsynced * 2 < stitched, "{t:#}"),
    }
}

/// Two-phase commit: the coordinator fsyncs its decision before the
/// outcome leaves, on every stitched purchase.
#[test]
fn a_short_run_is_cut_into_segments_that_add_up() {
    check(&bench(&[]), true);
}

/// One write: the coordinator tells the outcome without an fsync of its
/// own between the last vote and the outcome, unless that batch staged
/// something else.
#[test]
fn one_write_shows_no_coordinator_fsync_on_the_path() {
    check(&bench(&["--one-write"]), false);
}
