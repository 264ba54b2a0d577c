//! The deterministic simulation with the replicated coordinator
//! (`twopc-sim --protocol replicated`): three replicas, each the node's own
//! core and log on a simulated disk, linked with the node's own frames.
//! Every promise holds over many seeds of leader and follower kills, power
//! cuts (between a leader's early `Accept` and its fsync too) and
//! partitions; a seed replays exactly; and every runtime mutant — the two
//! that break only the replicated path, and the four of 2PC — is caught.

mod common;
use common::sim::{keep_every_promise, replay};
use std::process::Command;
use std::time::Duration;
use twopc_node::harness::sim::{run, DiskKind, Protocol, SimConfig, SimReport};
use twopc_node::runtime::mutant::RuntimeMutant;

fn cfg(seed: u64, mutant: Option<RuntimeMutant>) -> SimConfig {
    SimConfig {
        seed,
        mutant,
        protocol: Protocol::Replicated,
        ..SimConfig::default()
    }
}

fn seeds(first: u64, n: u64, mutant: Option<RuntimeMutant>) -> Vec<SimReport> {
    (first..first + n)
        .map(|seed| run(&cfg(seed, mutant)))
        .collect()
}

/// `TWOPC_SIM_REPLICATED_SEEDS=N` runs more (or fewer) seeds.
#[test]
fn many_seeds_keep_every_promise_with_replicas() {
    let n = std::env::var("TWOPC_SIM_REPLICATED_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let runs = seeds(1, n, None);
    keep_every_promise(
        &runs,
        n,
        &[
            ("kills", |r| r.kills),
            ("power cuts", |r| r.power_cuts),
            ("crashes mid-batch", |r| r.crashes_in_flush),
            ("crashes between an early Accept and its fsync", |r| {
                r.crashes_after_early_send
            }),
            ("partitions", |r| r.partitions),
            ("leader changes", |r| r.leaders.saturating_sub(1)),
            ("messages on links", |r| r.link_msgs),
            ("broken links", |r| r.link_breaks),
            ("lost datagrams", |r| r.dropped),
        ],
    );
}

#[test]
fn a_replicated_seed_replays_exactly() {
    let (a, b) = (run(&cfg(42, None)), run(&cfg(42, None)));
    assert_eq!(a, b, "two runs of seed 42 differ");
    assert!(a.link_msgs > 0 && a.leaders > 1, "{a:?}");
    let c = run(&cfg(43, None));
    assert_ne!(a.digest, c.digest, "seeds 42 and 43 ran the same events");
    // The same seed under 2PC is another run.
    let two_pc = run(&SimConfig {
        protocol: Protocol::TwoPc,
        ..cfg(42, None)
    });
    assert_ne!(a.digest, two_pc.digest);
    assert_eq!(two_pc.link_msgs, 0);
}

/// Each mutant breaks a promise within ten seeds, for the reason it
/// breaks; the same seeds pass without it; the binary exits 1 with each
/// of the replicated path's.
#[test]
fn every_runtime_mutant_is_caught_with_replicas() {
    for mutant in RuntimeMutant::ALL {
        let runs: Vec<SimReport> = (1..=10)
            .map(|seed| {
                run(&SimConfig {
                    // A broken run may never settle (a replica restarted
                    // from nothing waits to recover): judged by then.
                    max_time: Duration::from_secs(400),
                    ..cfg(seed, Some(mutant))
                })
            })
            .collect();
        let caught: Vec<_> = runs.iter().filter(|r| !r.violations.is_empty()).collect();
        assert!(!caught.is_empty(), "{mutant} passed 10 seeds");
        let all: Vec<&String> = caught.iter().flat_map(|r| &r.violations).collect();
        let expected = match mutant {
            // The leader counts its own acceptance that is not on its disk.
            RuntimeMutant::LeaderAcksUnsynced => "replicas hold it durably",
            // A follower acknowledges what a crash then takes from its disk.
            RuntimeMutant::FollowerAcksUnsynced => "that its disk does not hold durably",
            // The log's synced-length marker sees the loss at the next start.
            RuntimeMutant::NoFsync => "lost data that was synced",
            // An acknowledgement leaves before its save is durable.
            RuntimeMutant::SendBeforeFsync => "durably",
            RuntimeMutant::RestartFromSnapshot => "not from its last durable save",
            RuntimeMutant::TimerAfterCancel => "but was not set",
        };
        let example = all.iter().find(|v| v.contains(expected));
        assert!(
            example.is_some(),
            "{mutant}: {:?}",
            &all[..all.len().min(5)]
        );
        println!(
            "{mutant}: {} of 10 seeds caught, e.g. {}",
            caught.len(),
            example.unwrap()
        );
        if !mutant.replicas_only() {
            continue; // The binary's exit code with it: `sim.rs`.
        }
        let out = Command::new(env!("CARGO_BIN_EXE_twopc-sim"))
            .args(["--protocol", "replicated", "--seeds", "10"])
            .args(["--stop-at-first", "--mutant", mutant.name()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{mutant}: exit code");
    }
    // Without a mutant the same seeds pass, on either disk.
    for disk in [DiskKind::Log, DiskKind::Mem] {
        for seed in 1..=10 {
            let r = run(&SimConfig {
                disk,
                ..cfg(seed, None)
            });
            assert!(r.violations.is_empty(), "seed {seed} on {disk:?}: {r:?}");
        }
    }
}

/// The two replicated mutants are caught on the in-memory disk too (the
/// durability contract alone, without the log's format).
#[test]
fn the_replicated_mutants_are_caught_on_either_disk() {
    for mutant in RuntimeMutant::ALL.into_iter().filter(|m| m.replicas_only()) {
        let caught = (1..=10)
            .filter(|&seed| {
                !run(&SimConfig {
                    disk: DiskKind::Mem,
                    ..cfg(seed, Some(mutant))
                })
                .violations
                .is_empty()
            })
            .count();
        assert!(caught > 0, "{mutant} passed 10 seeds on the memory disk");
    }
}

/// A mutant of the replicated path alone is refused under 2PC (it would
/// change nothing there): exit code 2, and a hint.
#[test]
fn a_replicated_mutant_needs_the_replicated_protocol() {
    let out = Command::new(env!("CARGO_BIN_EXE_twopc-sim"))
        .args(["--seeds", "1", "--mutant", "leader-acks-unsynced"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--protocol replicated"), "{err}");
}

#[test]
fn the_binary_traces_the_replicas_links() {
    let out = Command::new(env!("CARGO_BIN_EXE_twopc-sim"))
        .args(["--protocol", "replicated", "--seed", "5", "--seeds", "1"])
        .args(["--purchases", "20", "--trace"])
        .output()
        .unwrap();
    assert!(out.status.success(), "seed 5 keeps every promise");
    let trace = String::from_utf8(out.stdout).unwrap();
    for line in [
        "replica0 => replica1: accept",
        "replica1 <= replica0: accept",
        "=> replica0: accepted",
        "-> wallet: prepare",
    ] {
        assert!(trace.contains(line), "no {line:?} in the trace");
    }
}

/// The replicas' simulated traces go through `twopc-check replay`: every
/// step of every replica and participant is one the model allows (a
/// leader's early `Accept` is the one send it lets arrive before its
/// sender's fsync), and the safety properties hold on the rebuilt states.
/// Each replicated mutant's traces are rejected: a send received before its
/// sender's save was durable.
#[test]
fn the_replay_accepts_replicated_traces_and_rejects_the_mutants() {
    let traced = |seed, mutant| {
        twopc_node::harness::sim::run_traced(&SimConfig {
            purchases: 60,
            ..cfg(seed, mutant)
        })
    };
    for seed in 1..=5 {
        let (report, traces) = traced(seed, None);
        assert!(report.violations.is_empty(), "seed {seed}: {report:?}");
        let accepted = replay(traces).unwrap_or_else(|r| panic!("seed {seed}: rejected: {r}"));
        assert!(accepted.starts > 3, "seed {seed}: restarts replayed");
    }
    for mutant in RuntimeMutant::ALL.into_iter().filter(|m| m.replicas_only()) {
        let rejected: Vec<String> = (1..=5)
            .filter_map(|seed| replay(traced(seed, Some(mutant)).1).err())
            .map(|r| r.to_string())
            .collect();
        assert!(!rejected.is_empty(), "{mutant}: every trace accepted");
        assert!(
            rejected.iter().all(|r| r.contains("sent before fsync")),
            "{mutant}: {rejected:?}"
        );
    }
}

/// One write with replicas (docs/one-write.md): the leader tells a
/// purchase's commit before its group accepts a save, and every new
/// leader resolves from the participants before it serves. Every promise
/// holds over the same faults, judged as two-phase commit is (no purchase
/// answered "unknown"); every runtime mutant is caught in some seed of
/// the first twenty; traced seeds replay as one write's.
#[test]
fn one_write_with_replicas_keeps_every_promise() {
    let one_write = |seed, mutant| SimConfig {
        one_write: true,
        ..cfg(seed, mutant)
    };
    let n = 300;
    let runs: Vec<SimReport> = (1..=n).map(|seed| run(&one_write(seed, None))).collect();
    keep_every_promise(
        &runs,
        n,
        &[
            ("kills", |r| r.kills),
            ("power cuts", |r| r.power_cuts),
            ("leader changes", |r| r.leaders.saturating_sub(1)),
            ("lost datagrams", |r| r.dropped),
        ],
    );
    for mutant in RuntimeMutant::ALL {
        let caught =
            (1..=20).any(|seed| !run(&one_write(seed, Some(mutant))).violations.is_empty());
        assert!(caught, "{mutant} not caught under one write with replicas");
    }
    for seed in 1..=5 {
        let (report, traces) = twopc_node::harness::sim::run_traced(&SimConfig {
            purchases: 60,
            ..one_write(seed, None)
        });
        assert!(report.violations.is_empty(), "seed {seed}: {report:?}");
        replay(traces).unwrap_or_else(|r| panic!("seed {seed}: rejected: {r}"));
    }
}
