//! `twopc bench`: purchases per second and latency on loopback, with fsync
//! on, for one client and for many concurrent clients; and what a purchase
//! costs each node in fsyncs.
//!
//! The cluster runs in this process ([`LocalCluster`]): the same runtime,
//! storage and UDP sockets as `twopc node`. Each client is the model's
//! client actor making its purchases one after another; a purchase's latency
//! is from the moment it can be sent to the moment its outcome arrives.

use crate::cluster::Role;
use crate::error::{Error, Result};
use crate::local::LocalCluster;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use twopc_model::{Purchase, Verdict};

/// One measured run.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    /// Concurrent clients.
    pub clients: usize,
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
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// (fsyncs, bytes written) per node, by role name.
async fn fsyncs(cluster: &LocalCluster) -> Result<BTreeMap<String, (u64, u64)>> {
    let mut m = BTreeMap::new();
    for role in Role::ALL {
        m.insert(role.as_str().to_string(), {
            let c = cluster.status(role).await?.counters;
            (c.fsyncs, c.bytes_written)
        });
    }
    Ok(m)
}

async fn measure(cluster: &LocalCluster, clients: usize, each: usize) -> Result<BenchResult> {
    if !cluster.settle(Duration::from_secs(60)).await? {
        return Err(Error::Other("cluster did not settle before the run".into()));
    }
    let before = fsyncs(cluster).await?;
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let not_committed = Arc::new(Mutex::new(0usize));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let purchases: Vec<Purchase> = (0..each)
            .map(|i| Purchase {
                user: format!("user{c:02}"),
                sku: format!("sku{:02}", (c + i) % 8),
                qty: 1,
                price: 1,
            })
            .collect();
        let latencies = latencies.clone();
        let not_committed = not_committed.clone();
        let mut last = Instant::now();
        tasks.push(tokio::spawn(crate::client::run_client(
            cluster.addr(Role::Coordinator),
            purchases,
            cluster.codec.clone(),
            Duration::from_secs(600),
            move |o| {
                let now = Instant::now();
                latencies.lock().unwrap().push(now - last);
                last = now;
                if o.verdict != Verdict::Committed {
                    *not_committed.lock().unwrap() += 1;
                }
            },
        )));
    }
    for t in tasks {
        t.await
            .map_err(|e| Error::Other(format!("bench client panicked: {e}")))??;
    }
    let elapsed = started.elapsed();
    // Commits finish (participants apply, acks) after the client hears the
    // outcome; count those fsyncs too.
    cluster.settle(Duration::from_secs(60)).await?;
    let after = fsyncs(cluster).await?;
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort();
    let n = lat.len();
    let not_committed = *not_committed.lock().unwrap();
    Ok(BenchResult {
        clients,
        purchases: n,
        per_second: n as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&lat, 0.50),
        p99_ms: percentile(&lat, 0.99),
        fsyncs_per_purchase: after
            .iter()
            .map(|(k, v)| (k.clone(), (v.0 - before[k].0) as f64 / n.max(1) as f64))
            .collect(),
        bytes_per_purchase: after
            .iter()
            .map(|(k, v)| (k.clone(), (v.1 - before[k].1) as f64 / n.max(1) as f64))
            .collect(),
        not_committed,
    })
}

/// Runs the benchmark: for each count in `concurrency`, a fresh cluster with
/// data directories under `parent`, and `total` purchases shared by that many
/// concurrent clients. Prints a table (or JSON).
pub async fn run(
    total: usize,
    concurrency: &[usize],
    parent: &std::path::Path,
    processes: Option<&std::path::Path>,
    json: bool,
) -> Result<Vec<BenchResult>> {
    let max_clients = concurrency.iter().copied().max().unwrap_or(1).max(1);
    let accounts: BTreeMap<String, u64> = (0..max_clients)
        .map(|c| (format!("user{c:02}"), u64::MAX / 4))
        .collect();
    let stock: BTreeMap<String, u64> = (0..8)
        .map(|s| (format!("sku{s:02}"), u64::MAX / 4))
        .collect();
    if !json {
        println!(
            "twopc bench: 3 nodes {}, loopback UDP, fsync on, data under {}",
            if processes.is_some() {
                "as separate processes"
            } else {
                "in this process"
            },
            parent.display()
        );
        println!(
            "{:>8} {:>10} {:>12} {:>9} {:>9}   per purchase at coordinator / wallet / order",
            "clients", "purchases", "purchases/s", "p50 ms", "p99 ms"
        );
    }
    let mut results = Vec::new();
    for &clients in concurrency {
        // A fresh cluster per run: the model keeps every finished transaction,
        // so a run would otherwise pay for the history of the runs before it.
        let cluster = match processes {
            Some(exe) => {
                LocalCluster::spawn_in(parent, exe, accounts.clone(), stock.clone()).await?
            }
            None => LocalCluster::start_in(parent, accounts.clone(), stock.clone()).await?,
        };
        // A short warm-up, not measured.
        measure(&cluster, 1, 20.min(total)).await?;
        let clients = clients.max(1);
        let each = (total / clients).max(1);
        let r = measure(&cluster, clients, each).await?;
        if !json {
            let [f, b] = [&r.fsyncs_per_purchase, &r.bytes_per_purchase]
                .map(|m| Role::ALL.map(|role| m[role.as_str()]));
            println!(
                "{:>8} {:>10} {:>12.0} {:>9.2} {:>9.2}   fsyncs {:.2} / {:.2} / {:.2}, bytes written {:.0} / {:.0} / {:.0}{}",
                r.clients,
                r.purchases,
                r.per_second,
                r.p50_ms,
                r.p99_ms,
                f[0],
                f[1],
                f[2],
                b[0],
                b[1],
                b[2],
                if r.not_committed > 0 {
                    format!("   ({} did not commit)", r.not_committed)
                } else {
                    String::new()
                }
            );
        }
        results.push(r);
        cluster.stop().await?;
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&results).expect("results serialize")
        );
    }
    Ok(results)
}
