//! `twopc bench`: purchases per second and latency on loopback, with fsync
//! on, for one client and for many concurrent clients; what a purchase
//! costs each node in fsyncs; and how that cost grows with the number of
//! accounts (`--accounts`), on one hot account (`--hot`) and with the age of
//! the run (`--tenths`).
//!
//! The cluster runs in this process ([`LocalCluster`]): the same runtime,
//! storage and UDP sockets as `twopc node`; or, with `--processes`, as
//! `twopc node` processes. Each client is the model's client actor making
//! its purchases one after another; a purchase's latency is from the moment
//! it can be sent to the moment its outcome arrives.
//!
//! | file | what |
//! | --- | --- |
//! | `mod.rs` | runs and measures |
//! | `cost.rs` | what a purchase costs each node: fsyncs, bytes, messages, CPU |
//! | `print.rs` | the table |
//! | `workload.rs` | who buys what ([`Spread`]), and the funds for it |
//! | `age.rs` | per-tenth throughput and latency, resident memory |
//! | `mix.rs` | `--mix`: purchases, top-ups, restocks and refunds, and their outcomes per kind |
//! | `waited.rs` | the durable writes a buyer waited for per purchase, as measured on the way |
//! | `timeline.rs` | `--timeline`: each purchase's path stitched from the nodes' timelines |
//! | `timeline_report.rs` | `--timeline`: where a purchase's time goes, segment by segment |

mod age;
mod cost;
mod mix;
mod print;
pub mod timeline;
mod timeline_report;
#[cfg(test)]
mod timeline_tests;
mod waited;
mod workload;

pub use age::{Rss, Tenth};
pub use mix::{KindOutcomes, Mix, OpKind};
pub use waited::Waited;
pub use workload::{Spread, Workload};

use crate::ops::local::LocalCluster;
use crate::runtime::cluster::Protocol;
use crate::runtime::error::{BenchError, Error, Result};
use age::Completion;
use cost::NodeCost;
use print::{print_heading, print_protocols, print_ratios, print_row};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use twopc_model::{Mode, Request, Verdict};

/// Purchases one bench client actor makes before a fresh one takes over
/// (see `run`: one actor per thousands of purchases would measure itself).
const CLIENT_PURCHASES: usize = 100;

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Purchases per measured run, shared by its clients.
    pub purchases: usize,
    /// Concurrent clients, one run each.
    pub clients: Vec<usize>,
    /// Users and skus, one run each (empty: each client its own user).
    pub accounts: Vec<usize>,
    /// Every purchase on one user and one sku.
    pub hot: bool,
    /// Print throughput and latency per tenth of each run, and memory.
    pub tenths: bool,
    /// The data directories' parent.
    pub dir: PathBuf,
    /// Run the nodes as processes of this executable (else as tasks).
    pub processes: Option<PathBuf>,
    /// Print JSON instead of a table.
    pub json: bool,
    /// One coordinator, three replicas, or each in turn (`--protocol`).
    pub protocols: Vec<Protocol>,
    /// Two-phase commit runs the one-write protocol (`--one-write`).
    pub one_write: bool,
    /// Record every node's steps under `DIR/run-N/` (in-process nodes).
    pub trace_dir: Option<PathBuf>,
    /// Which operations, in what proportions (default: purchases only).
    pub mix: Mix,
    /// Every node and client marks its steps; each run prints where a
    /// purchase's time goes (`timeline.rs`; `--processes` only).
    pub timeline: bool,
}

impl Options {
    /// The spreads to run, one per `--accounts` value.
    fn spreads(&self) -> Vec<Spread> {
        match (self.accounts.as_slice(), self.hot) {
            ([], false) => vec![Spread::PerClient],
            ([], true) => vec![Spread::Hot(1)],
            (all, hot) => all
                .iter()
                .map(|&n| {
                    if hot {
                        Spread::Hot(n)
                    } else {
                        Spread::Uniform(n)
                    }
                })
                .collect(),
        }
    }
}

/// One measured run.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    /// One coordinator or three replicas.
    pub protocol: Protocol,
    /// Two-phase commit with one write (`--one-write`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub one_write: bool,
    /// Concurrent clients.
    pub clients: usize,
    /// Users (and skus) the purchases were spread over (`--accounts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accounts: Option<usize>,
    /// Every purchase on one user and one sku (`--hot`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hot: bool,
    /// Purchases made (all committed).
    pub purchases: usize,
    /// Purchases per second.
    pub per_second: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th-percentile latency, milliseconds.
    pub p99_ms: f64,
    /// Durable writes (fsyncs) each committed purchase's buyer waited for,
    /// counted along its causal chain by the nodes (`runtime/core/waited.rs`).
    pub durable_writes_waited: Waited,
    /// fsyncs per purchase at the coordinator, wallet, order service.
    pub fsyncs_per_purchase: BTreeMap<String, f64>,
    /// Bytes written to storage per purchase, per node.
    pub bytes_per_purchase: BTreeMap<String, f64>,
    /// Messages sent per purchase, per node (datagrams, and a replica's
    /// messages to the other replicas).
    pub msgs_per_purchase: BTreeMap<String, f64>,
    /// CPU time (user and system) per purchase, per node, in milliseconds
    /// (`--processes` only: each node's own process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ms_per_purchase: Option<BTreeMap<String, f64>>,
    /// Purchases that did not commit (should be 0).
    pub not_committed: usize,
    /// With `--mix`: what became of each kind of operation (`purchases`
    /// and the figures then count every operation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mix: Option<BTreeMap<OpKind, KindOutcomes>>,
    /// Per tenth of the run (`--tenths`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenths: Option<Vec<Tenth>>,
    /// Resident memory per node (`--tenths`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss: Option<Vec<Rss>>,
    /// Where a purchase's time goes (`--timeline`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<timeline::Report>,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// What a run records as purchases complete.
#[derive(Default)]
struct Record {
    completions: Vec<Completion>,
    not_committed: usize,
    /// Committed purchases by the durable writes their outcome waited for.
    waited: BTreeMap<u8, usize>,
    by_kind: BTreeMap<OpKind, KindOutcomes>,
    /// VmRSS per watched process once the first tenth completed.
    first_tenth_rss: Vec<Option<u64>>,
}

/// Makes `each` purchases from each of `clients` clients of `workload`;
/// with `watch` (name, pid) it also records tenths and memory.
async fn measure(
    cluster: &LocalCluster,
    workload: &Workload,
    clients: usize,
    each: usize,
    watch: Option<&[(String, String)]>,
    mix: &Mix,
    timeline: Option<&std::path::Path>,
) -> Result<BenchResult> {
    if !cluster.settle(Duration::from_secs(60)).await? {
        return Err(BenchError::NotSettled.into());
    }
    let pids = cluster.pids();
    let before = cost::costs(cluster, pids.as_deref()).await?;
    let record = Arc::new(Mutex::new(Record::default()));
    let first_tenth = (clients * each / 10).max(1);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let record = record.clone();
        let pids: Vec<String> = watch
            .unwrap_or_default()
            .iter()
            .map(|(_, pid)| pid.clone())
            .collect();
        let (coordinators, codec) = (
            cluster.cluster.coordinator_addresses(),
            cluster.codec.clone(),
        );
        let timeline = timeline.map(std::path::Path::to_path_buf);
        let ids: Vec<_> = (0..each)
            .map(|_| crate::ops::client::random_request_id())
            .collect();
        let ops: Vec<_> = ids
            .iter()
            .cloned()
            .zip(workload.ops(c, &ids, mix))
            .collect();
        tasks.push(tokio::spawn(async move {
            // A client actor saves its whole list of outcomes with each one,
            // so one actor making thousands of purchases would cost more per
            // purchase as the run ages: the bench would measure itself. Each
            // bench client is a series of actors of `CLIENT_PURCHASES` each,
            // as callers making one purchase at a time (`twopc purchase`, the
            // HTTP API) are.
            let last = Arc::new(Mutex::new(Instant::now()));
            for (k, chunk) in ops.chunks(CLIENT_PURCHASES).enumerate() {
                let timeline =
                    (timeline.as_ref()).map(|d| d.join(format!("client-{c}-{k}.timeline")));
                let (record, pids, last) = (record.clone(), pids.clone(), last.clone());
                let mut kinds = HashMap::with_capacity(chunk.len());
                let requests = (chunk.iter())
                    .map(|(req, (kind, op))| {
                        kinds.insert(req.clone(), *kind);
                        Request {
                            req: req.clone(),
                            op: op.clone(),
                            mode: Mode::New,
                        }
                    })
                    .collect();
                crate::ops::client::run_requests_timed(
                    &coordinators,
                    requests,
                    codec.clone(),
                    Duration::from_secs(600),
                    timeline,
                    move |o, waited| {
                        let now = Instant::now();
                        let mut last = last.lock().unwrap();
                        let mut r = record.lock().unwrap();
                        r.completions.push(Completion {
                            at: now - started,
                            latency: now - *last,
                        });
                        *last = now;
                        if o.verdict != Verdict::Committed {
                            r.not_committed += 1;
                        } else {
                            *r.waited.entry(waited).or_default() += 1;
                        }
                        let kind = kinds.get(&o.req).copied().unwrap_or(OpKind::Purchase);
                        let k = r.by_kind.entry(kind).or_default();
                        k.made += 1;
                        match o.verdict {
                            Verdict::Committed => k.committed += 1,
                            Verdict::Aborted(why) => {
                                *k.aborted.entry(why.name().to_string()).or_default() += 1
                            }
                            Verdict::Refused(_) | Verdict::Unknown => {
                                *k.aborted.entry("not_started".to_string()).or_default() += 1
                            }
                        }
                        if r.completions.len() == first_tenth {
                            r.first_tenth_rss = pids.iter().map(|p| age::rss_kib(p)).collect();
                        }
                    },
                )
                .await?;
            }
            Ok::<(), Error>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|source| Error::TaskFailed {
            task: "bench client".to_string(),
            source,
        })??;
    }
    let elapsed = started.elapsed();
    let end_rss: Vec<Option<u64>> = watch
        .unwrap_or_default()
        .iter()
        .map(|(_, pid)| age::rss_kib(pid))
        .collect();
    // Commits finish (participants apply, acks) after the client hears the
    // outcome; count those fsyncs too.
    cluster.settle(Duration::from_secs(60)).await?;
    let after = cost::costs(cluster, pids.as_deref()).await?;
    let record = std::mem::take(&mut *record.lock().unwrap());
    let mut lat: Vec<Duration> = record.completions.iter().map(|c| c.latency).collect();
    lat.sort();
    let n = lat.len();
    let per = |f: fn(&NodeCost) -> Option<u64>| cost::per_purchase(&before, &after, n, f);
    Ok(BenchResult {
        protocol: Protocol::TwoPc, // Set by the caller, which knows.
        one_write: false,          // Likewise.
        clients,
        accounts: workload.spread.accounts(),
        hot: matches!(workload.spread, Spread::Hot(_)),
        purchases: n,
        per_second: n as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&lat, 0.50),
        p99_ms: percentile(&lat, 0.99),
        durable_writes_waited: Waited::of(record.waited),
        fsyncs_per_purchase: per(|c| Some(c.fsyncs)),
        bytes_per_purchase: per(|c| Some(c.bytes)),
        msgs_per_purchase: per(|c| Some(c.msgs_out)),
        cpu_ms_per_purchase: pids.is_some().then(|| per(|c| c.cpu_ms)),
        not_committed: record.not_committed,
        mix: (!mix.is_purchases_only()).then_some(record.by_kind),
        tenths: watch.map(|_| age::tenths(&record.completions)),
        rss: watch.map(|w| {
            w.iter()
                .enumerate()
                .map(|(i, (name, _))| Rss {
                    name: name.clone(),
                    first_tenth_kib: record.first_tenth_rss.get(i).copied().flatten(),
                    end_kib: end_rss[i],
                })
                .collect()
        }),
        timeline: None, // Read by the caller once the nodes stopped.
    })
}

/// Runs the benchmark: for each spread (`--accounts`) and each count of
/// clients, a fresh cluster with data directories under `opts.dir`, and
/// `opts.purchases` purchases shared by that many concurrent clients.
/// Prints a table (or JSON).
pub async fn run(opts: &Options) -> Result<Vec<BenchResult>> {
    if opts.timeline && opts.processes.is_none() {
        return Err(BenchError::TimelineNeedsProcesses.into());
    }
    let max_clients = opts.clients.iter().copied().max().unwrap_or(1).max(1);
    let spreads = opts.spreads();
    if !opts.json {
        print_heading(opts, &spreads);
    }
    let mut results = Vec::new();
    for &protocol in &opts.protocols {
        let one_write = opts.one_write;
        if !opts.json && (opts.protocols.len() > 1 || one_write) {
            match one_write {
                true => println!("protocol {protocol}, one write:"),
                false => println!("protocol {protocol}:"),
            }
        }
        for &spread in &spreads {
            let workload = Workload::new(spread, max_clients, opts.purchases);
            for &clients in &opts.clients {
                let r = run_one(opts, protocol, &workload, clients).await?;
                if !opts.json {
                    print_row(opts, &r);
                    if let Some(t) = &r.timeline {
                        t.print(r.p50_ms);
                    }
                    if let (Some(tenths), Some(rss)) = (&r.tenths, &r.rss) {
                        age::print(tenths, rss);
                    }
                }
                results.push(r);
            }
        }
    }
    if !opts.json && opts.protocols.len() > 1 {
        print_protocols(&results);
    }
    if opts.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&results).expect("results serialize")
        );
    } else {
        print_ratios(&results);
    }
    Ok(results)
}

/// A fresh `DIR/run-N` for one run's traces.
fn trace_run_dir(dir: &std::path::Path) -> Result<PathBuf> {
    for n in 1.. {
        let run = dir.join(format!("run-{n}"));
        if !run.exists() {
            std::fs::create_dir_all(&run).map_err(|source| BenchError::CreateRunDir {
                path: run.clone(),
                source,
            })?;
            return Ok(run);
        }
    }
    unreachable!("some run-N is free")
}

/// One run on a fresh cluster: the model keeps every finished transaction,
/// so a run would otherwise pay for the history of the runs before it.
async fn run_one(
    opts: &Options,
    protocol: Protocol,
    workload: &Workload,
    clients: usize,
) -> Result<BenchResult> {
    let (accounts, stock) = (workload.accounts.clone(), workload.stock.clone());
    // One write applies to two-phase commit (the replicated coordinator
    // does not run it yet).
    let one_write = opts.one_write;
    // The timeline files, removed once read.
    let timeline = match opts.timeline {
        true => Some(
            tempfile::Builder::new()
                .prefix("twopc-timeline-")
                .tempdir_in(&opts.dir)
                .map_err(|source| BenchError::CreateRunDir {
                    path: opts.dir.join("twopc-timeline-*"),
                    source,
                })?,
        ),
        false => None,
    };
    let timeline_dir = timeline.as_ref().map(|t| t.path());
    let cluster = match &opts.processes {
        Some(exe) => {
            LocalCluster::spawn_timed(
                &opts.dir,
                exe,
                protocol,
                one_write,
                accounts,
                stock,
                timeline_dir,
            )
            .await?
        }
        None => {
            let traces = match &opts.trace_dir {
                Some(dir) => Some(trace_run_dir(dir)?),
                None => None,
            };
            LocalCluster::start_with(
                &opts.dir,
                protocol,
                one_write,
                accounts,
                stock,
                traces.as_deref(),
            )
            .await?
        }
    };
    // A short warm-up, not measured.
    measure(
        &cluster,
        workload,
        1,
        20.min(opts.purchases),
        None,
        &opts.mix,
        None,
    )
    .await?;
    let clients = clients.max(1);
    let each = (opts.purchases / clients).max(1);
    let watch = opts.tenths.then(|| age::watched(cluster.pids()));
    let mut r = measure(
        &cluster,
        workload,
        clients,
        each,
        watch.as_deref(),
        &opts.mix,
        timeline_dir,
    )
    .await?;
    cluster.stop().await?;
    if let Some(dir) = timeline_dir {
        // Every node wrote its file as it stopped.
        let files = timeline::read_dir(dir).map_err(BenchError::Timeline)?;
        r.timeline = Some(timeline::Report::of(&timeline::stitch(&files)));
    }
    r.protocol = protocol;
    r.one_write = one_write;
    Ok(r)
}

/// The executable to start nodes with for `--processes`: this one.
pub fn this_executable() -> Result<PathBuf> {
    std::env::current_exe().map_err(Error::ThisExecutable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(accounts: &[usize], hot: bool) -> Options {
        Options {
            purchases: 10,
            clients: vec![1],
            accounts: accounts.to_vec(),
            hot,
            tenths: false,
            dir: PathBuf::from("/tmp"),
            processes: None,
            json: true,
            trace_dir: None,
            protocols: vec![Protocol::TwoPc],
            mix: Mix::default(),
            one_write: false,
            timeline: false,
        }
    }

    #[test]
    fn one_run_per_accounts_count_uniform_or_hot() {
        assert_eq!(opts(&[], false).spreads(), [Spread::PerClient]);
        assert_eq!(opts(&[], true).spreads(), [Spread::Hot(1)]);
        assert_eq!(
            opts(&[10, 1000], false).spreads(),
            [Spread::Uniform(10), Spread::Uniform(1000)]
        );
        assert_eq!(opts(&[1000], true).spreads(), [Spread::Hot(1000)]);
    }
}
