//! The replay of a chaos run's traces against the model, and (replicated)
//! the same traces tampered with as a broken replica would write them, which
//! the replay must reject.

use super::chaos::REPLICAS;
use serde_json::Value;
use std::time::Instant;

/// Replays the run's traces against the model: every step of every
/// incarnation, and the safety properties on the rebuilt global state
/// (judged every 100 steps and at the end: each judgement walks the whole
/// history of the run).
pub fn replay_traces(dir: &std::path::Path, seed: u64, purchases: usize) {
    let bytes: u64 = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let started = Instant::now();
    let result = twopc_checks::replay::replay_paths(
        &[dir.to_path_buf()],
        &twopc_checks::replay::Options { every: 100 },
    );
    // Replicas only: a leader's `Accept`s that arrived before its fsync.
    let early = match result.as_ref().map_or(0, |a| a.early_accepts) {
        0 => String::new(),
        n => format!(" ({n} replica Accepts received before their leader's fsync)"),
    };
    println!(
        "chaos replay (seed {seed}): {bytes} bytes of traces ({} per purchase), replayed in {:.1}s{early}: {}",
        bytes / purchases.max(1) as u64,
        started.elapsed().as_secs_f64(),
        twopc_checks::replay::report(&result).trim_end()
    );
    if let Err(r) = result {
        panic!("seed {seed}: the traces are rejected: {r}");
    }
}

/// A copy of the traces in `dir`, each node's file the text `edit` returns
/// for it (given the node's name and its text), or a hard link to the
/// original where it returns `None`; returns its directory.
fn tampered(
    dir: &std::path::Path,
    what: &str,
    mut edit: impl FnMut(&str, &str) -> Option<String>,
) -> std::path::PathBuf {
    let copy = dir.with_file_name(format!("traces-{what}"));
    std::fs::create_dir_all(&copy).unwrap();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let to = copy.join(path.file_name().unwrap());
        match edit(&name, &std::fs::read_to_string(&path).unwrap()) {
            Some(text) => std::fs::write(to, text).unwrap(),
            None => std::fs::hard_link(&path, to).unwrap(),
        }
    }
    copy
}

/// The replay of `dir`'s traces must reject them: returns the rejected
/// node, run, step and why.
fn rejected(dir: &std::path::Path, seed: u64) -> (String, usize, u64, twopc_checks::replay::Why) {
    let opts = twopc_checks::replay::Options { every: 0 };
    match twopc_checks::replay::replay_paths(&[dir.to_path_buf()], &opts) {
        Err(twopc_checks::replay::Rejection::Step {
            node,
            run,
            seq,
            why,
            ..
        }) => (node, run, seq, *why),
        other => panic!(
            "seed {seed}: tampered traces in {}: expected a rejected step, got {}",
            dir.display(),
            twopc_checks::replay::report(&other)
        ),
    }
}

/// The replay accepts the replicas' traces because they are right, not
/// because it looks away: the same traces, tampered with as a broken
/// replica would have written them, are rejected, each for its reason.
///
/// - Without the replicas' `durable` records (replicas that never fsync),
///   the first message refused is one that is not an `Accept`: a leader's
///   `Accept` may arrive before its fsync, nothing else may (a backup's
///   `Accepted`, a `Promise`, the leader's `Prepare`s and decisions).
/// - A replica that restarts having lost what it accepted (its restart's
///   storage with the accepted state removed: an older state than its last
///   durable save) lost acknowledged data: its start is refused.
pub fn replica_traces_tampered(dir: &std::path::Path, seed: u64) {
    use twopc_checks::replay::Why;
    let started = Instant::now();
    let is_replica = |name: &str| REPLICAS.contains(&name);

    let nofsync = tampered(dir, "nofsync", |name, text| {
        is_replica(name).then(|| {
            text.lines()
                .filter(|l| !l.starts_with("{\"durable\""))
                .map(|l| format!("{l}\n"))
                .collect()
        })
    });
    let (node, run, seq, why) = rejected(&nofsync, seed);
    std::fs::remove_dir_all(&nofsync).unwrap();
    println!("chaos tamper (replicas never fsync): {node} run {run} step {seq}: {why}");
    match &why {
        Why::SentBeforeDurable { msg, from, .. } => {
            assert!(is_replica(from), "seed {seed}: {why}");
            assert!(!msg.starts_with("Accept {"), "seed {seed}: {why}");
        }
        _ => panic!("seed {seed}: expected a send before fsync, got {why}"),
    }

    // The restart of a replica that had accepted the most (the leader kept
    // down, usually): the one with the highest accepted version.
    let starts = |text: &str| -> Vec<(usize, usize, Value)> {
        let mut run = 0;
        let mut found = Vec::new();
        for (i, line) in text.lines().enumerate() {
            run += usize::from(line.starts_with("{\"node\""));
            if run > 1 && line.contains("{\"start\":{\"storage\":{\"replica\"") {
                found.push((i, run, serde_json::from_str(line).unwrap()));
            }
        }
        found
    };
    let accepted = "/step/event/start/storage/replica/accepted";
    let version = |r: &Value| r.pointer(&format!("{accepted}/1"))?.as_u64();
    let mut victim: Option<(String, usize, usize, u64)> = None;
    for name in REPLICAS {
        let text = std::fs::read_to_string(dir.join(format!("{name}.jsonl"))).unwrap();
        for (line, run, r) in starts(&text) {
            if let Some(v) = version(&r) {
                if victim.as_ref().is_none_or(|(.., best)| v > *best) {
                    victim = Some((name.to_string(), line, run, v));
                }
            }
        }
    }
    let (name, line, victim_run, version) =
        victim.unwrap_or_else(|| panic!("seed {seed}: no replica restarted having accepted"));
    let amnesia = tampered(dir, "amnesia", |n, text| {
        (n == name).then(|| {
            text.lines()
                .enumerate()
                .map(|(i, l)| {
                    if i != line {
                        return format!("{l}\n");
                    }
                    let mut r: Value = serde_json::from_str(l).unwrap();
                    *r.pointer_mut(accepted).unwrap() = Value::Null;
                    format!("{r}\n")
                })
                .collect()
        })
    });
    let (node, run, seq, why) = rejected(&amnesia, seed);
    std::fs::remove_dir_all(&amnesia).unwrap();
    println!(
        "chaos tamper ({name} restarts without the version {version} it accepted): \
         {node} run {run} step {seq}: {why}"
    );
    assert!(
        matches!(why, Why::StartNotFromDurable { .. }),
        "seed {seed}: {why}"
    );
    assert_eq!((node, run, seq), (name, victim_run, 1), "seed {seed}");
    println!(
        "chaos tamper: both rejected in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}
