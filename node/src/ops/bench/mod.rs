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
//! | `mod.rs` | runs, measures, prints the table |
//! | `workload.rs` | who buys what ([`Spread`]), and the funds for it |
//! | `age.rs` | per-tenth throughput and latency, resident memory |

mod age;
mod workload;

pub use age::{Rss, Tenth};
pub use workload::{Spread, Workload};

use crate::ops::local::LocalCluster;
use crate::runtime::cluster::{Protocol, Role};
use crate::runtime::error::{BenchError, Error, Result};
use age::Completion;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use twopc_model::Verdict;

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
    /// Record every node's steps under `DIR/run-N/` (in-process nodes).
    pub trace_dir: Option<PathBuf>,
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
    /// fsyncs per purchase at the coordinator, wallet, order service.
    pub fsyncs_per_purchase: BTreeMap<String, f64>,
    /// Bytes written to storage per purchase, per node.
    pub bytes_per_purchase: BTreeMap<String, f64>,
    /// Purchases that did not commit (should be 0).
    pub not_committed: usize,
    /// Per tenth of the run (`--tenths`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenths: Option<Vec<Tenth>>,
    /// Resident memory per node (`--tenths`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss: Option<Vec<Rss>>,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// (fsyncs, bytes written) per node, by name (every coordinator replica).
async fn fsyncs(cluster: &LocalCluster) -> Result<BTreeMap<String, (u64, u64)>> {
    let mut m = BTreeMap::new();
    for n in &cluster.cluster.nodes {
        m.insert(n.name.clone(), {
            let c = cluster.status_of(n.address, &n.name).await?.counters;
            (c.fsyncs, c.bytes_written)
        });
    }
    Ok(m)
}

/// What a run records as purchases complete.
#[derive(Default)]
struct Record {
    completions: Vec<Completion>,
    not_committed: usize,
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
) -> Result<BenchResult> {
    if !cluster.settle(Duration::from_secs(60)).await? {
        return Err(BenchError::NotSettled.into());
    }
    let before = fsyncs(cluster).await?;
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
        let purchases = workload.purchases(c, each);
        tasks.push(tokio::spawn(async move {
            // A client actor saves its whole list of outcomes with each one,
            // so one actor making thousands of purchases would cost more per
            // purchase as the run ages: the bench would measure itself. Each
            // bench client is a series of actors of `CLIENT_PURCHASES` each,
            // as callers making one purchase at a time (`twopc purchase`, the
            // HTTP API) are.
            let last = Arc::new(Mutex::new(Instant::now()));
            for chunk in purchases.chunks(CLIENT_PURCHASES) {
                let (record, pids, last) = (record.clone(), pids.clone(), last.clone());
                crate::ops::client::run_client(
                    &coordinators,
                    chunk.to_vec(),
                    codec.clone(),
                    Duration::from_secs(600),
                    move |o| {
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
    let after = fsyncs(cluster).await?;
    let record = std::mem::take(&mut *record.lock().unwrap());
    let mut lat: Vec<Duration> = record.completions.iter().map(|c| c.latency).collect();
    lat.sort();
    let n = lat.len();
    let per = |f: fn(&(u64, u64)) -> u64| -> BTreeMap<String, f64> {
        after
            .iter()
            .map(|(k, v)| (k.clone(), (f(v) - f(&before[k])) as f64 / n.max(1) as f64))
            .collect()
    };
    Ok(BenchResult {
        protocol: Protocol::TwoPc, // Set by the caller, which knows.
        clients,
        accounts: workload.spread.accounts(),
        hot: matches!(workload.spread, Spread::Hot(_)),
        purchases: n,
        per_second: n as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&lat, 0.50),
        p99_ms: percentile(&lat, 0.99),
        fsyncs_per_purchase: per(|v| v.0),
        bytes_per_purchase: per(|v| v.1),
        not_committed: record.not_committed,
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
    })
}

/// Prints the table's heading.
fn print_heading(opts: &Options, spreads: &[Spread]) {
    println!(
        "twopc bench: {} {}, loopback UDP, fsync on, data under {}",
        if opts.protocols == [Protocol::TwoPc] {
            "3 nodes"
        } else {
            "the cluster's nodes (a replicated one: 3 coordinator replicas, wallet, order)"
        },
        if opts.processes.is_some() {
            "as separate processes"
        } else {
            "in this process"
        },
        opts.dir.display()
    );
    if spreads != [Spread::PerClient] {
        let all: Vec<String> = spreads.iter().map(|s| s.describe()).collect();
        println!("purchases: {}", all.join("; "));
    }
    println!(
        "{}{:>8} {:>10} {:>12} {:>9} {:>9}   per purchase at coordinator{} / wallet / order",
        accounts_cell(opts, Some("accounts")),
        "clients",
        "purchases",
        "purchases/s",
        "p50 ms",
        "p99 ms",
        if opts.protocols == [Protocol::TwoPc] {
            ""
        } else {
            " (each replica)"
        }
    );
}

/// The table's first column, shown only with `--accounts`.
fn accounts_cell(opts: &Options, text: Option<&str>) -> String {
    if opts.accounts.is_empty() {
        String::new()
    } else {
        format!("{:>9} ", text.unwrap_or(""))
    }
}

fn print_row(opts: &Options, r: &BenchResult) {
    // Per node: the coordinator (each replica's, space-separated), wallet, order.
    let cells = |m: &BTreeMap<String, f64>, digits: usize| {
        let coordinators: Vec<String> = m
            .iter()
            .filter(|(name, _)| name.starts_with(Role::Coordinator.as_str()))
            .map(|(_, v)| format!("{v:.digits$}"))
            .collect();
        let mut all = vec![coordinators.join(" ")];
        for role in [Role::Wallet, Role::Order] {
            all.push(format!("{:.digits$}", m[role.as_str()]));
        }
        all.join(" / ")
    };
    let accounts = r.accounts.map(|a| a.to_string());
    println!(
        "{}{:>8} {:>10} {:>12.0} {:>9.2} {:>9.2}   fsyncs {}, bytes written {}{}",
        accounts_cell(opts, accounts.as_deref()),
        r.clients,
        r.purchases,
        r.per_second,
        r.p50_ms,
        r.p99_ms,
        cells(&r.fsyncs_per_purchase, 2),
        cells(&r.bytes_per_purchase, 0),
        if r.not_committed > 0 {
            format!("   ({} did not commit)", r.not_committed)
        } else {
            String::new()
        }
    );
}

/// With several `--accounts`, each run against the run with the first
/// count and as many clients: the cost of size, as ratios of one invocation.
fn print_ratios(results: &[BenchResult]) {
    let Some(base) = results.first().and_then(|r| r.accounts) else {
        return;
    };
    let mut printed = false;
    for r in results.iter().filter(|r| r.accounts != Some(base)) {
        let Some(b) = results
            .iter()
            .find(|b| b.accounts == Some(base) && b.clients == r.clients)
        else {
            continue;
        };
        if !printed {
            println!("ratios to the run with {base} accounts and as many clients:");
            printed = true;
        }
        println!(
            "{:>9} accounts, {:>3} clients: purchases/s {}, p50 {}, p99 {}",
            r.accounts.unwrap_or(0),
            r.clients,
            age::ratio(r.per_second, b.per_second),
            age::ratio(r.p50_ms, b.p50_ms),
            age::ratio(r.p99_ms, b.p99_ms),
        );
    }
}

/// Runs the benchmark: for each spread (`--accounts`) and each count of
/// clients, a fresh cluster with data directories under `opts.dir`, and
/// `opts.purchases` purchases shared by that many concurrent clients.
/// Prints a table (or JSON).
pub async fn run(opts: &Options) -> Result<Vec<BenchResult>> {
    let max_clients = opts.clients.iter().copied().max().unwrap_or(1).max(1);
    let spreads = opts.spreads();
    if !opts.json {
        print_heading(opts, &spreads);
    }
    let mut results = Vec::new();
    for &protocol in &opts.protocols {
        if !opts.json && opts.protocols.len() > 1 {
            println!("protocol {protocol}:");
        }
        for &spread in &spreads {
            let workload = Workload::new(spread, max_clients, opts.purchases);
            for &clients in &opts.clients {
                let r = run_one(opts, protocol, &workload, clients).await?;
                if !opts.json {
                    print_row(opts, &r);
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

/// Each protocol's commit latency (p50) with the fewest clients and
/// throughput with the most, side by side.
fn print_protocols(results: &[BenchResult]) {
    let (Some(few), Some(many)) = (
        results.iter().map(|r| r.clients).min(),
        results.iter().map(|r| r.clients).max(),
    ) else {
        return;
    };
    println!();
    println!(
        "{:<12} {:>22} {:>26}",
        "protocol",
        format!("p50 ms @ {few} client(s)"),
        format!("purchases/s @ {many} clients")
    );
    let mut protocols: Vec<Protocol> = results.iter().map(|r| r.protocol).collect();
    protocols.dedup();
    for p in protocols {
        let of = |clients| {
            results
                .iter()
                .find(|r| r.protocol == p && r.clients == clients)
        };
        let p50 = of(few).map_or("-".to_string(), |r| format!("{:.2}", r.p50_ms));
        let rate = of(many).map_or("-".to_string(), |r| format!("{:.0}", r.per_second));
        println!("{:<12} {p50:>22} {rate:>26}", p.to_string());
    }
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
    let cluster = match &opts.processes {
        Some(exe) => LocalCluster::spawn_in(&opts.dir, exe, protocol, accounts, stock).await?,
        None => {
            let traces = match &opts.trace_dir {
                Some(dir) => Some(trace_run_dir(dir)?),
                None => None,
            };
            LocalCluster::start_with(&opts.dir, protocol, accounts, stock, traces.as_deref())
                .await?
        }
    };
    // A short warm-up, not measured.
    measure(&cluster, workload, 1, 20.min(opts.purchases), None).await?;
    let clients = clients.max(1);
    let each = (opts.purchases / clients).max(1);
    let watch = opts.tenths.then(|| age::watched(cluster.pids()));
    let mut r = measure(&cluster, workload, clients, each, watch.as_deref()).await?;
    cluster.stop().await?;
    r.protocol = protocol;
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
