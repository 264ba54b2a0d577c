//! `twopc-sim`: the node's own code in a deterministic simulated world
//! (see `twopc_node::harness::sim`). Exit codes: 0 every run kept every promise,
//! 1 some run broke one (its seed and violations are printed), 2 usage.

use clap::Parser;
use std::time::{Duration, Instant};
use twopc_node::harness::sim::{
    run, run_traced, DiskKind, Protocol, ServerTrace, SimConfig, SimReport,
};
use twopc_node::runtime::mutant::RuntimeMutant;

/// Runs the twopc runtime (core, wire codec, persist-before-send, timers)
/// with a simulated network, clock and disk: loss, duplication, delay,
/// reordering, partitions, kills and power cuts, all from one seed. A seed
/// replays exactly: `--seed N --trace` prints the same events every time.
///
/// With `--protocol replicated` the coordinator is three replicas, each its
/// own core and log on its own simulated disk, linked as TCP links them
/// (in order; broken by a partition or a restart, then made anew) with the
/// node's own frame and delta encoding; leaders and followers are killed
/// and lose power, also between a leader's early `Accept` and its fsync.
///
/// Examples:
///   twopc-sim                                 # seeds 1..=100, 200 purchases each
///   twopc-sim --seed 42 --seeds 1 --trace     # one run, every event
///   twopc-sim --seeds 1000 --purchases 1000   # a long run
///   twopc-sim --protocol replicated           # three coordinator replicas
///   twopc-sim --mutant no-fsync               # a broken runtime: must fail
///   twopc-sim --protocol replicated --mutant leader-acks-unsynced
#[derive(Parser, Debug)]
#[command(name = "twopc-sim", version, verbatim_doc_comment)]
struct Args {
    /// First seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How many seeds to run (seed, seed+1, ...).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    seeds: u64,
    /// Purchases per run.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    purchases: u64,
    /// Clients buying at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=200))]
    clients: u64,
    /// Probability that a datagram is lost.
    #[arg(long, default_value_t = 0.05, value_parser = probability)]
    loss: f64,
    /// Probability that a datagram is delivered twice.
    #[arg(long, default_value_t = 0.05, value_parser = probability)]
    duplicate: f64,
    /// Longest network delay in milliseconds (delays vary, so datagrams reorder).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    delay_max_ms: u64,
    /// Mean simulated milliseconds between crashes (0: no crashes).
    #[arg(long, default_value_t = 400)]
    crash_every_ms: u64,
    /// Share of crashes that are power cuts (unsynced writes lost) rather than kills.
    #[arg(long, default_value_t = 0.5, value_parser = probability)]
    power_cut_share: f64,
    /// Probability that a server's batch is cut short by a crash (after the
    /// save is staged, during or after the fsync, or between two sends);
    /// five times as likely for a batch whose messages to replicas leave
    /// before its fsync (a leader's `Accept`s).
    #[arg(long, default_value_t = 0.01, value_parser = probability)]
    crash_in_flush: f64,
    /// Mean simulated milliseconds between partitions (0: none).
    #[arg(long, default_value_t = 3000)]
    partition_every_ms: u64,
    /// The servers' disk: `log` runs the node's storage code (log, snapshots,
    /// synced-length marker, repair at open) on a simulated disk whose
    /// unsynced writes vanish or tear on a power cut; `mem` keeps whole
    /// states (the durability contract alone; faster).
    #[arg(long, value_enum, default_value_t = DiskKind::Log)]
    disk: DiskKind,
    /// One coordinator (`2pc`) or three replicas of it (`replicated`).
    #[arg(long, value_enum, default_value = "2pc")]
    protocol: Protocol,
    /// Run the one-write protocol (docs/one-write.md): the coordinator
    /// (or the replicas' leader) tells a purchase's commit before it saves
    /// it. With either protocol.
    #[arg(long)]
    one_write: bool,
    /// Run a deliberately broken runtime (the simulation must catch it;
    /// `leader-acks-unsynced` and `follower-acks-unsynced` break only the
    /// replicated coordinator).
    #[arg(long, value_enum)]
    mutant: Option<RuntimeMutant>,
    /// Print every event of every run (use with --seeds 1).
    #[arg(long)]
    trace: bool,
    /// Record every server step and write each run's traces to
    /// DIR/seed-N/NAME.jsonl, for `twopc-check replay DIR/seed-N`.
    #[arg(long, value_name = "DIR")]
    trace_dir: Option<std::path::PathBuf>,
    /// Stop at the first run that breaks a promise.
    #[arg(long)]
    stop_at_first: bool,
}

fn probability(s: &str) -> Result<f64, String> {
    let p: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("{p} is not a probability (0 to 1)"))
    }
}

fn main() {
    let args = Args::parse();
    let base = SimConfig {
        seed: args.seed,
        purchases: args.purchases,
        clients: args.clients as usize,
        loss: args.loss,
        duplicate: args.duplicate,
        delay_max: Duration::from_millis(args.delay_max_ms),
        crash_every: Duration::from_millis(args.crash_every_ms),
        power_cut_share: args.power_cut_share,
        crash_in_flush: args.crash_in_flush,
        partition_every: Duration::from_millis(args.partition_every_ms),
        mutant: args.mutant,
        protocol: args.protocol,
        one_write: args.one_write,
        disk: args.disk,
        trace: args.trace,
        ..SimConfig::default()
    };
    if let Some(m) = args.mutant {
        if m.replicas_only() && base.protocol == Protocol::TwoPc {
            eprintln!("twopc-sim: the mutant {m} breaks only the replicated coordinator: add --protocol replicated");
            std::process::exit(2);
        }
        println!("twopc-sim: runtime mutant {m} (a broken runtime: a run must fail)");
    }
    let started = Instant::now();
    let mut last_progress = Instant::now();
    let mut total = SimReport::default();
    let mut failed = Vec::new();
    for n in 0..args.seeds {
        let cfg = SimConfig {
            seed: args.seed + n,
            ..base.clone()
        };
        let r = match &args.trace_dir {
            None => run(&cfg),
            Some(dir) => {
                let (r, traces) = run_traced(&cfg);
                if let Err(e) = write_traces(&dir.join(format!("seed-{}", cfg.seed)), &traces) {
                    eprintln!("twopc-sim: cannot write traces to {}: {e}", dir.display());
                    std::process::exit(2);
                }
                r
            }
        };
        if args.seeds == 1 || !r.violations.is_empty() {
            print_run(&r);
        }
        add(&mut total, &r);
        if !r.violations.is_empty() {
            failed.push(r.seed);
            if args.stop_at_first {
                break;
            }
        }
        if last_progress.elapsed() >= Duration::from_secs(10) {
            last_progress = Instant::now();
            eprintln!(
                "… {} of {} seeds, {} purchases, {} failed, {:.0}s",
                n + 1,
                args.seeds,
                total.purchases,
                failed.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    let wall = started.elapsed().as_secs_f64();
    println!(
        "twopc-sim: {} runs from seed {}: {} purchases ({} committed), {:.1} h simulated, \
         {} datagrams ({} lost, {} duplicated), {} kills, {} power cuts ({} in the middle of a batch), \
         {} partitions, {} refused starts, {} fsyncs{}; {} runs broke a promise{}",
        total.seed,
        args.seed,
        total.purchases,
        total.commits,
        total.sim_time.as_secs_f64() / 3600.0,
        total.datagrams,
        total.dropped,
        total.duplicated,
        total.kills,
        total.power_cuts,
        total.crashes_in_flush,
        total.partitions,
        total.refused_starts,
        total.fsyncs,
        links(&total),
        failed.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(
                " (seeds {})",
                failed
                    .iter()
                    .take(20)
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    // Wall-clock figures on stderr: stdout is the same for the same seeds.
    eprintln!(
        "twopc-sim: {wall:.1} s wall, {:.0} purchases/s",
        total.purchases as f64 / wall.max(1e-9)
    );
    std::process::exit(if failed.is_empty() { 0 } else { 1 });
}

/// Writes each server's trace as JSON lines (the format `twopc node
/// --trace` writes).
fn write_traces(dir: &std::path::Path, traces: &[ServerTrace]) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    for (name, records) in traces {
        let mut out =
            std::io::BufWriter::new(std::fs::File::create(dir.join(format!("{name}.jsonl")))?);
        for r in records {
            serde_json::to_writer(&mut out, r)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
    }
    Ok(())
}

/// Sums a run into the total (`seed` counts the runs).
fn add(total: &mut SimReport, r: &SimReport) {
    total.seed += 1;
    total.purchases += r.purchases;
    total.commits += r.commits;
    total.sim_time += r.sim_time;
    total.datagrams += r.datagrams;
    total.dropped += r.dropped;
    total.duplicated += r.duplicated;
    total.kills += r.kills;
    total.power_cuts += r.power_cuts;
    total.crashes_in_flush += r.crashes_in_flush;
    total.partitions += r.partitions;
    total.refused_starts += r.refused_starts;
    total.fsyncs += r.fsyncs;
    total.leaders += r.leaders;
    total.link_msgs += r.link_msgs;
    total.link_lost += r.link_lost;
    total.link_breaks += r.link_breaks;
    total.crashes_after_early_send += r.crashes_after_early_send;
}

/// The replicas' links, if any.
fn links(r: &SimReport) -> String {
    if r.link_msgs == 0 {
        return String::new();
    }
    format!(
        ", {} terms led, {} replica messages on links ({} lost, {} links broken), {} crashes between an early Accept and its fsync",
        r.leaders, r.link_msgs, r.link_lost, r.link_breaks, r.crashes_after_early_send
    )
}

fn print_run(r: &SimReport) {
    println!(
        "seed {}: {} purchases, {} committed, aborts {:?}; {:.1} s simulated ({:.1} s of faults), {} events, \
         {} datagrams ({} lost, {} duplicated), {} kills, {} power cuts ({} mid-batch), {} partitions{}; \
         digest {:016x}; {} violations",
        r.seed,
        r.purchases,
        r.commits,
        r.aborts,
        r.sim_time.as_secs_f64(),
        r.chaos_time.as_secs_f64(),
        r.events,
        r.datagrams,
        r.dropped,
        r.duplicated,
        r.kills,
        r.power_cuts,
        r.crashes_in_flush,
        r.partitions,
        links(r),
        r.digest,
        r.violations.len()
    );
    for v in r.violations.iter().take(10) {
        println!("  violation: {v}");
    }
    if r.violations.len() > 10 {
        println!("  … and {} more", r.violations.len() - 10);
    }
}
